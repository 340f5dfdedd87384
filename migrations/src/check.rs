//! What the node and the offline readers accept ([`check_for_serve`], [`check_readable`]),
//! and keeping the manifest's projection list true ([`record_projections`]).
//!
//! | directory | `hearth serve` | offline readers (`status --data-dir`, `audit`, `replay`, `log …`) |
//! |---|---|---|
//! | missing or fresh | writes `format.json`, starts | (their own "no log" errors) |
//! | current manifest | starts | read |
//! | older manifest, or none with node data (format 0) | refused: run `hearth migrate` | read (the layout is the same; a future format change may refuse) |
//! | newer manifest or component | refused, naming both versions | refused likewise |
//!
//! `hearth cluster recover`, which changes a stopped node's data, follows the serve column
//! without creating anything ([`check_for_offline_write`]).
//!
//! Why a pre-manifest directory is refused rather than upgraded silently: the issue asks that
//! every upgrade be an operator's decision with a backup and a report; writing the manifest is
//! cheap, but the rule must hold before there are steps that are not. Fresh directories (tests,
//! `make run`, a new node) just work.

use crate::error::{build_name, FormatError};
use crate::inspect::{dir_state, DirState};
use crate::manifest::{FormatManifest, Verdict};
use crate::versions::DATA_DIR_FORMAT;
use std::path::Path;

/// What [`check_for_serve`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeCheck {
    /// The directory is of this build's format.
    Current,
    /// The directory was fresh: `format.json` was written.
    Created,
}

/// Checks `data_dir` before a node starts on it; see the module docs. `projections` are the
/// names of the projections the node runs (recorded in a new manifest).
pub fn check_for_serve(data_dir: &Path, projections: &[String]) -> Result<ServeCheck, FormatError> {
    match dir_state(data_dir)? {
        DirState::Missing => {
            std::fs::create_dir_all(data_dir).map_err(FormatError::io(data_dir))?;
            create(data_dir, projections)
        }
        DirState::Fresh => create(data_dir, projections),
        DirState::PreManifest => Err(needs_migration(data_dir, 0)),
        DirState::Manifest(m) => match m.verdict() {
            Verdict::Current => Ok(ServeCheck::Current),
            Verdict::Older(found) => Err(needs_migration(data_dir, found)),
            Verdict::Newer { what, supported } => Err(newer(data_dir, what, supported)),
        },
    }
}

/// Checks `data_dir` before an offline command reads it: only a newer format is refused.
/// Returns the manifest, if any.
pub fn check_readable(data_dir: &Path) -> Result<Option<FormatManifest>, FormatError> {
    match dir_state(data_dir)? {
        DirState::Manifest(m) => match m.verdict() {
            Verdict::Newer { what, supported } => Err(newer(data_dir, what, supported)),
            Verdict::Current | Verdict::Older(_) => Ok(Some(m)),
        },
        DirState::Missing | DirState::Fresh | DirState::PreManifest => Ok(None),
    }
}

/// Checks `data_dir` before an offline command *changes* it (`hearth cluster recover`): like
/// [`check_for_serve`], but nothing is created for a fresh or missing directory.
pub fn check_for_offline_write(data_dir: &Path) -> Result<(), FormatError> {
    match dir_state(data_dir)? {
        DirState::Missing | DirState::Fresh => Ok(()),
        DirState::PreManifest => Err(needs_migration(data_dir, 0)),
        DirState::Manifest(m) => match m.verdict() {
            Verdict::Current => Ok(()),
            Verdict::Older(found) => Err(needs_migration(data_dir, found)),
            Verdict::Newer { what, supported } => Err(newer(data_dir, what, supported)),
        },
    }
}

/// Records `projections` in the manifest when they differ from what it lists (after the node
/// opened its store, which rebuilds a projection it lacks). Returns whether it wrote.
pub fn record_projections(data_dir: &Path, projections: &[String]) -> Result<bool, FormatError> {
    let Some(mut m) = FormatManifest::load(data_dir)? else {
        return Ok(false);
    };
    let mut want = projections.to_vec();
    want.sort();
    if m.projections == want {
        return Ok(false);
    }
    m.projections = want;
    m.written_by = build_name();
    m.store(data_dir)?;
    Ok(true)
}

fn create(data_dir: &Path, projections: &[String]) -> Result<ServeCheck, FormatError> {
    let mut names = projections.to_vec();
    names.sort();
    FormatManifest::current(names).store(data_dir)?;
    Ok(ServeCheck::Created)
}

pub(crate) fn needs_migration(data_dir: &Path, found: u32) -> FormatError {
    FormatError::NeedsMigration {
        dir: data_dir.to_path_buf(),
        found,
        current: DATA_DIR_FORMAT,
        why: if found == 0 {
            " (no format.json: written before format manifests)".into()
        } else {
            String::new()
        },
    }
}

pub(crate) fn newer(data_dir: &Path, what: String, supported: String) -> FormatError {
    FormatError::Newer {
        dir: data_dir.to_path_buf(),
        what,
        supported,
        build: build_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;

    #[test]
    fn serve_creates_refuses_old_and_newer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("data");
        let names = vec!["counts-1".to_string()];
        assert_eq!(
            check_for_serve(&d, &names).expect("fresh"),
            ServeCheck::Created
        );
        assert_eq!(
            check_for_serve(&d, &names).expect("again"),
            ServeCheck::Current
        );

        std::fs::remove_file(layout::format_file(&d)).expect("rm");
        std::fs::write(d.join(layout::CLUSTER_FILE), br#"{"format":1}"#).expect("write");
        let e = check_for_serve(&d, &names).expect_err("pre-manifest");
        let msg = e.to_string();
        assert!(
            msg.contains("hearth migrate --data-dir") && msg.contains("format 0"),
            "{msg}"
        );
        assert!(check_readable(&d).expect("readable").is_none());

        let mut m = FormatManifest::current(names.clone());
        m.data_dir_format = 2;
        m.store(&d).expect("store");
        let msg = check_for_serve(&d, &names).expect_err("newer").to_string();
        assert!(
            msg.contains("newer hearth")
                && msg.contains("data dir format 2")
                && msg.contains("data dir format 1"),
            "{msg}"
        );
        assert!(check_readable(&d).is_err());
    }

    #[test]
    fn projections_are_recorded_when_they_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        assert!(!record_projections(d, &["a-1".into()]).expect("no manifest"));
        check_for_serve(d, &["a-1".into()]).expect("create");
        assert!(!record_projections(d, &["a-1".into()]).expect("same"));
        assert!(record_projections(d, &["b-2".into(), "a-1".into()]).expect("changed"));
        let m = FormatManifest::load(d).expect("load").expect("some");
        assert_eq!(m.projections, vec!["a-1".to_string(), "b-2".into()]);
    }
}
