//! [`ClusterFile`]: `DATA_DIR/cluster.json`, the node's membership of one cluster — the cluster
//! id (random, created with the cluster) and this node's raft node id (assigned when it joined).
//!
//! Written once, crash-safely, when the node founds or joins a cluster, before its raft state
//! exists; read at every start. Its presence means "this data directory belongs to a cluster":
//! a node with this file but no raft log has lost its raft state and must not resume.

use crate::fsutil::write_durably;
use crate::hex;
use crate::node::NodeError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Format version of `cluster.json`.
pub const CLUSTER_FILE_FORMAT: u32 = hearth_migrations::versions::CLUSTER_FILE_FORMAT;

/// The file's name inside the data directory.
pub const CLUSTER_FILE: &str = hearth_migrations::layout::CLUSTER_FILE;

/// What `cluster.json` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterFile {
    /// The cluster's id, carried in every inter-node message.
    pub cluster_id: [u8; 16],
    /// This node's raft node id.
    pub node_id: u64,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    cluster_id: String,
    node_id: u64,
}

/// Where the file lives for `data_dir`.
pub fn cluster_file_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CLUSTER_FILE)
}

/// Parses a cluster id written as 32 hex digits.
pub fn parse_cluster_id(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl ClusterFile {
    /// A new cluster with a random id, founded by node `node_id`.
    pub fn found(node_id: u64) -> Self {
        ClusterFile {
            cluster_id: rand::random(),
            node_id,
        }
    }

    /// The cluster id as 32 hex digits.
    pub fn cluster_id_hex(&self) -> String {
        hex::encode(&self.cluster_id)
    }

    /// Reads the file of `data_dir`; `None` when there is none.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, NodeError> {
        let path = cluster_file_path(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NodeError::io(&path, e)),
        };
        let bad = |reason: String| NodeError::ClusterFile {
            path: path.clone(),
            reason,
        };
        let disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if disk.format != CLUSTER_FILE_FORMAT {
            return Err(bad(format!(
                "format {} (this build reads format {CLUSTER_FILE_FORMAT})",
                disk.format
            )));
        }
        let cluster_id = parse_cluster_id(&disk.cluster_id).ok_or_else(|| {
            bad(format!(
                "cluster id {:?} is not 32 hex digits",
                disk.cluster_id
            ))
        })?;
        Ok(Some(ClusterFile {
            cluster_id,
            node_id: disk.node_id,
        }))
    }

    /// Writes the file of `data_dir` crash-safely (temp file, fsync, rename, directory fsync).
    pub fn store(&self, data_dir: &Path) -> Result<(), NodeError> {
        let path = cluster_file_path(data_dir);
        let disk = OnDisk {
            format: CLUSTER_FILE_FORMAT,
            cluster_id: self.cluster_id_hex(),
            node_id: self.node_id,
        };
        let mut bytes = serde_json::to_vec_pretty(&disk).map_err(|e| NodeError::ClusterFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_durably(&path, &bytes).map_err(|e| NodeError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(ClusterFile::load(dir.path()).expect("load"), None);
        let c = ClusterFile::found(42);
        c.store(dir.path()).expect("store");
        assert_eq!(ClusterFile::load(dir.path()).expect("load"), Some(c));
        std::fs::write(cluster_file_path(dir.path()), b"{not json").expect("write");
        let err = ClusterFile::load(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains("cluster.json"), "{err}");
        std::fs::write(
            cluster_file_path(dir.path()),
            br#"{"format":9,"cluster_id":"00","node_id":1}"#,
        )
        .expect("write");
        assert!(ClusterFile::load(dir.path()).is_err());
    }

    #[test]
    fn parses_cluster_ids() {
        assert_eq!(parse_cluster_id(&"ab".repeat(16)), Some([0xab; 16]));
        assert_eq!(parse_cluster_id("abc"), None);
        assert_eq!(parse_cluster_id(&"zz".repeat(16)), None);
    }
}
