//! openraft's own storage conformance suite, run unmodified on [`HearthLogStore`] over a fresh
//! `hearth-log` in a temporary directory (real files, fdatasync on).

use hearth_log::{Log, LogOptions};
use hearth_raft::{HearthLogStore, MemStateMachine, StorageError, StoreOptions, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use tempfile::TempDir;

/// Opens a fresh log in a temp dir; the guard keeps the dir alive for the test.
struct HearthBuilder;

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

impl StoreBuilder<TypeConfig, HearthLogStore, MemStateMachine, TempDir> for HearthBuilder {
    async fn build(&self) -> Result<(TempDir, HearthLogStore, MemStateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(io_err)?;
        let opts = LogOptions {
            segment_size: 256 << 10,
            prepare_in_background: false,
            ..LogOptions::default()
        };
        let log = Log::open(dir.path(), opts).map_err(io_err)?;
        let store = HearthLogStore::open(log, StoreOptions::default())
            .await
            .map_err(io_err)?;
        Ok((dir, store, MemStateMachine::new()))
    }
}

/// Every case of the suite (`Suite::test_store`: 34 cases plus `transfer_snapshot`), each on a
/// fresh store in its own tokio runtime.
#[test]
fn openraft_storage_suite() -> anyhow::Result<()> {
    Suite::test_all(HearthBuilder)?;
    Ok(())
}
