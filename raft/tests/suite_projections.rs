//! openraft's own storage conformance suite, run unmodified on [`HearthLogStore`] with the real
//! state machine: a [`ProjectionStateMachine`] (with [`CountsProjection`]) in the same temporary
//! directory as the log (real files, fdatasync on, RocksDB underneath).

use hearth_log::{Log, LogOptions};
use hearth_projections::CountsProjection;
use hearth_raft::{HearthLogStore, ProjectionStateMachine, StorageError, StoreOptions, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use std::sync::Arc;
use tempfile::TempDir;

/// Opens a fresh log and state machine in a temp dir; the guard keeps the dir alive.
struct ProjectionsBuilder;

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

impl StoreBuilder<TypeConfig, HearthLogStore, ProjectionStateMachine, TempDir>
    for ProjectionsBuilder
{
    async fn build(
        &self,
    ) -> Result<(TempDir, HearthLogStore, ProjectionStateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(io_err)?;
        let opts = LogOptions {
            segment_size: 256 << 10,
            prepare_in_background: false,
            ..LogOptions::default()
        };
        let log = Log::open(dir.path().join("log"), opts).map_err(io_err)?;
        let store = HearthLogStore::open(log, StoreOptions::default())
            .await
            .map_err(io_err)?;
        let sm = ProjectionStateMachine::open(
            &dir.path().join("projections"),
            vec![Arc::new(CountsProjection)],
        )
        .map_err(io_err)?;
        Ok((dir, store, sm))
    }
}

/// Every case of the suite (`Suite::test_store` plus `transfer_snapshot`), each on a fresh log
/// and state machine in its own tokio runtime.
#[test]
fn openraft_storage_suite_with_projection_state_machine() -> anyhow::Result<()> {
    Suite::test_all(ProjectionsBuilder)?;
    Ok(())
}
