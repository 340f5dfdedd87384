//! The names, inside a data directory, of what format checks and migrations look at. The
//! node's own paths (`hearth_services::paths`) are built from these names, so the two agree.
//!
//! Not here: the layout inside the log directory (`hearth_log::format`) or the state machine
//! directory (`hearth_raft::projection_sm`).

use std::path::{Path, PathBuf};

/// The format manifest.
pub const FORMAT_FILE: &str = "format.json";
/// The write-ahead log's directory.
pub const LOG_DIR: &str = "log";
/// The projection state machine's directory.
pub const STATE_DIR: &str = "state";
/// The shard files' directory.
pub const SHARDS_DIR: &str = "shards";
/// The cluster file (cluster id, node id).
pub const CLUSTER_FILE: &str = "cluster.json";
/// The persisted peer list.
pub const PEER_LIST: &str = "peers.json";
/// The node's identity key.
pub const IDENTITY_KEY: &str = "identity.key";
/// Prefix of the backups `hearth migrate` makes: `backup-v<from>-<unix ms>`.
pub const BACKUP_PREFIX: &str = "backup-v";

/// `DATA/format.json`.
pub fn format_file(data_dir: &Path) -> PathBuf {
    data_dir.join(FORMAT_FILE)
}

/// `DATA/log`.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(LOG_DIR)
}

/// `DATA/state`.
pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_DIR)
}

/// `DATA/state/state/store`: the projection store (RocksDB).
pub fn store_dir(data_dir: &Path) -> PathBuf {
    hearth_raft::projection_sm::store_dir(&state_dir(data_dir))
}

/// The lock files a running node holds (flock, exclusive): the log's and the state machine's.
pub fn lock_files(data_dir: &Path) -> [PathBuf; 2] {
    [
        log_dir(data_dir).join(hearth_log::format::LOCK_NAME),
        hearth_raft::projection_sm::lock_path(&state_dir(data_dir)),
    ]
}
