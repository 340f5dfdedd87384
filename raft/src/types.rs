//! [`TypeConfig`]: the types hearth plugs into openraft, and short aliases for openraft's
//! generic types instantiated with them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A raft node id: a `u64` assigned when the node joins (collision-checked by the joiner's
/// leader). Events name nodes by libp2p PeerId, never by this number.
pub type NodeId = u64;

/// What openraft keeps about a node in the membership: how to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HearthNode {
    /// The node's libp2p PeerId, in its string form (`12D3Koo…`).
    pub peer_id: String,
    /// The node's listen multiaddrs, in their string form (`/ip4/…/tcp/…`).
    pub addrs: Vec<String>,
    /// The node's HTTP API base URL (`http://127.0.0.1:7070`), where admin calls are forwarded
    /// to the leader; empty when unknown.
    #[serde(default)]
    pub http: String,
}

/// The application data of a normal raft entry: one or more event envelopes, each the bytes of
/// a prost-encoded `hearth_proto::v1::Envelope`, applied in order. A proposer batches the writes
/// that arrive while its previous entry is being committed into one entry, so one log fsync and
/// one replication round trip carry many events. This crate treats the envelopes as opaque.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The encoded envelopes, in the order they are applied.
    pub envelopes: Vec<Bytes>,
    /// Set when the entry was read from a log where part of it had been redacted (inline
    /// bytes of a deleted blob zeroed in place): the entry's payload hash as originally
    /// appended. It travels with the entry to other members so their copy is stored redacted
    /// with the same hash and their chain stays equal; the state machine tells the projections
    /// (a redacted event may carry zeros where its data was). `None` for every new proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_from: Option<[u8; 32]>,
}

impl Proposal {
    /// A proposal carrying one `envelope`.
    pub fn new(envelope: impl Into<Bytes>) -> Self {
        Proposal {
            envelopes: vec![envelope.into()],
            redacted_from: None,
        }
    }

    /// A proposal carrying `envelopes`, applied in order.
    pub fn batch(envelopes: Vec<Bytes>) -> Self {
        Proposal {
            envelopes,
            redacted_from: None,
        }
    }
}

/// What applying an entry answers: the log index it was applied at (a read may wait until a
/// node has applied it, for read-your-writes) and, per envelope, whether it was rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The index of the applied entry.
    pub index: u64,
    /// One item per envelope of a normal entry, in order (empty for other entries): `Some`
    /// with the reason when the projection runtime recorded the event as rejected instead of
    /// folding it (a duplicate request id, an undecodable event). The entry stays in the log.
    #[serde(default)]
    pub rejected: Vec<Option<String>>,
}

impl Applied {
    /// Applied at `index`, nothing rejected.
    pub fn at(index: u64) -> Self {
        Applied {
            index,
            rejected: Vec::new(),
        }
    }

    /// The outcome of the envelope at `position`: `Some(reason)` when it was rejected.
    pub fn rejection(&self, position: usize) -> Option<&str> {
        self.rejected.get(position).and_then(|r| r.as_deref())
    }
}

openraft::declare_raft_types!(
    /// hearth's raft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = HearthNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A raft log id: term, leader node id, index.
pub type LogId = openraft::LogId<NodeId>;
/// A raft vote.
pub type Vote = openraft::Vote<NodeId>;
/// A raft membership config.
pub type Membership = openraft::Membership<NodeId, HearthNode>;
/// A membership with the log id it was stored at.
pub type StoredMembership = openraft::StoredMembership<NodeId, HearthNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, HearthNode>;
/// A snapshot with its data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// openraft's storage error, as this crate returns it.
pub type StorageError = openraft::StorageError<NodeId>;

/// What the store keeps in the log's metadata record besides entries: one small blob, written
/// in order with appends, the latest one wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftMeta {
    /// The last saved vote.
    pub vote: Option<Vote>,
    /// The last saved committed log id (saved without an fsync of its own).
    pub committed: Option<LogId>,
    /// The last purged log id, with its leader node id (the log itself keeps only index,
    /// term and chain hash of its purge point).
    pub purged: Option<LogId>,
}
