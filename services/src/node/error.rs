//! [`NodeError`]: why a node could not start, join or serve a request.

use crate::net::NetError;
use std::path::{Path, PathBuf};

/// What can go wrong running a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// File IO on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `cluster.json` is damaged or of an unknown format.
    #[error("cluster file {} is unreadable: {reason}", path.display())]
    ClusterFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node has an identity and cluster membership but its raft state is gone: resuming
    /// would forget its votes and log, which raft's safety depends on.
    #[error(
        "node {peer_id} has an identity and belongs to cluster {cluster_id}, but its raft state \
         ({missing}) is missing, so it cannot safely resume its membership. To rejoin as a new \
         node: on a member run `hearth cluster remove {peer_id}`, move {data_dir} aside, and \
         start `hearth serve --data-dir NEW_DIR --join URL_OF_A_MEMBER`"
    )]
    LostRaftState {
        /// The node's PeerId.
        peer_id: String,
        /// The cluster it belonged to.
        cluster_id: String,
        /// What is missing.
        missing: String,
        /// The data directory.
        data_dir: String,
    },
    /// The data directory holds a raft log but no cluster file (it was deleted or never
    /// written): the node does not know which cluster it belongs to.
    #[error(
        "{data_dir} holds a raft log but no cluster.json: this node does not know its cluster \
         id or node id. Restore cluster.json from a backup, or move {data_dir} aside and join \
         as a new node"
    )]
    LostClusterFile {
        /// The data directory.
        data_dir: String,
    },
    /// The data directory's format is not this build's (see `hearth_migrations`).
    #[error("{0}")]
    Format(#[from] hearth_migrations::FormatError),
    /// A setting is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
    /// Joining a cluster failed.
    #[error("joining the cluster at {url} failed: {reason}")]
    Join {
        /// The member asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The transport failed.
    #[error("transport: {0}")]
    Net(#[from] NetError),
    /// Raft storage failed.
    #[error("raft storage: {0}")]
    Store(#[from] hearth_raft::StoreError),
    /// The event log failed.
    #[error("event log: {0}")]
    Log(#[from] hearth_log::LogError),
    /// openraft failed (fatal, or a membership change was refused).
    #[error("raft: {0}")]
    Raft(String),
    /// The shard store failed.
    #[error("shard store: {0}")]
    Shards(#[from] crate::blobs::ShardError),
    /// Reading the blob index failed.
    #[error("{0}")]
    Blob(String),
}

impl NodeError {
    /// An IO error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        NodeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
