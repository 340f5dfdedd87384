//! The data directory's format, as the node sees it at start ([`check_before_start`]) and after
//! its projection store opened ([`record_projections`]): see `hearth_migrations::check`.
//!
//! A fresh data directory gets `format.json`; one written before manifests, by an older format
//! or by a newer hearth is refused with a one-line [`NodeError::Format`] naming the versions and,
//! for an older one, `hearth migrate --data-dir DIR`. Not here: migrating (`hearth migrate`).

use super::NodeError;
use std::path::Path;

/// The names of the projections a node runs (versioned: `blobs-3`).
pub fn projection_names() -> Vec<String> {
    super::node_projections()
        .iter()
        .map(|p| p.name().to_string())
        .collect()
}

/// Refuses a data directory this build must not start on; writes the manifest of a fresh one.
pub fn check_before_start(data: &Path) -> Result<(), NodeError> {
    match hearth_migrations::check_for_serve(data, &projection_names())? {
        hearth_migrations::ServeCheck::Created => {
            tracing::info!(
                data_dir = %data.display(),
                format = hearth_migrations::DATA_DIR_FORMAT,
                "new data directory: format.json written"
            );
        }
        hearth_migrations::ServeCheck::Current => {}
    }
    Ok(())
}

/// Records the projections the store now holds in `format.json` (after a rebuild at start
/// added one).
pub fn record_projections(data: &Path) -> Result<(), NodeError> {
    if hearth_migrations::record_projections(data, &projection_names())? {
        tracing::info!("format.json: projection list updated");
    }
    Ok(())
}
