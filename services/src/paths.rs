//! Where things live inside a node's data directory. Every path is derived here, in one place,
//! from the names `hearth_migrations::layout` gives (format checks look at the same files).

use std::path::{Path, PathBuf};

/// The write-ahead log's directory inside a node's data directory: `DATA_DIR/log`.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    hearth_migrations::layout::log_dir(data_dir)
}

/// The projection state machine's directory (RocksDB store, snapshots): `DATA_DIR/state`.
pub fn state_dir(data_dir: &Path) -> PathBuf {
    hearth_migrations::layout::state_dir(data_dir)
}

/// The projection store (RocksDB) inside a node's data directory: `DATA_DIR/state/state/store`
/// (the state machine's live state; see `hearth_raft::projection_sm`).
pub fn projection_store_dir(data_dir: &Path) -> PathBuf {
    hearth_raft::projection_sm::store_dir(&state_dir(data_dir))
}

/// Where purged log entries are archived (with `--retention purge`), unless `--archive-dir`
/// says otherwise: `DATA_DIR/archive/log`, a `hearth-log` directory of its own.
pub fn archive_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("archive").join("log")
}

/// Where a node that purges its log keeps its signed snapshots (see
/// `crate::audit::signed_snapshot`): `DATA_DIR/archive/snapshots`.
pub fn snapshot_archive_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("archive").join("snapshots")
}

/// The node's shard store: `DATA_DIR/shards`.
pub fn shards_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(hearth_migrations::layout::SHARDS_DIR)
}

/// The data directory's format manifest: `DATA_DIR/format.json` (see `hearth_migrations`).
pub fn format_file(data_dir: &Path) -> PathBuf {
    hearth_migrations::layout::format_file(data_dir)
}

/// The node's identity key (ed25519, mode 0600): `DATA_DIR/identity.key`.
pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join(hearth_migrations::layout::IDENTITY_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_dir_is_under_data_dir() {
        assert_eq!(log_dir(Path::new("/d")), PathBuf::from("/d/log"));
        assert_eq!(
            identity_path(Path::new("/d")),
            PathBuf::from("/d/identity.key")
        );
    }
}
