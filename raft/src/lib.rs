//! `hearth-raft`: openraft's log storage on hearth's write-ahead log, and its state machine on
//! hearth's projections.
//!
//! [`HearthLogStore`] implements openraft's (0.9, `storage-v2`) [`RaftLogStorage`] on a
//! [`hearth_log::Log`]: each raft entry is one log entry (same index, same term, the full log
//! id and payload encoded in the entry's payload by [`codec`]); the vote, the committed log id
//! and the last purged log id live in the log's in-order metadata record. It passes openraft's
//! own conformance suite (`openraft::testing::Suite`, run unmodified in `tests/suite.rs`).
//! [`TypeConfig`] fixes the raft types: `u64` node ids, [`HearthNode`] (libp2p PeerId and
//! addresses) as node info, [`Proposal`] (an encoded event envelope) as application data.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hearth_log::{Log, LogOptions};
//! use hearth_raft::{HearthLogStore, MemStateMachine, StoreOptions};
//! let log = Log::open("data/log", LogOptions::default())?;
//! let store = HearthLogStore::open(log, StoreOptions::default()).await?;
//! let sm = MemStateMachine::new();
//! // openraft::Raft::<hearth_raft::TypeConfig>::new(id, config, network, store, sm).await?;
//! # let _ = (store, sm); Ok(()) }
//! ```
//!
//! [`ProjectionStateMachine`] is openraft's `RaftStateMachine` on the projection runtime
//! (`hearth_projections::ProjectionStore`): every committed entry is folded exactly once across
//! crashes, and snapshots are RocksDB checkpoints of the store packed into one verified stream
//! ([`snapshot`]). It passes the same conformance suite (`tests/suite_projections.rs`).
//! [`MemStateMachine`] is an in-memory stand-in for tests.
//!
//! What it is **not**: the network (`RaftNetwork` over libp2p) and the node (start-up, cluster
//! id, membership changes) live in `services/`.
//!
//! [`RaftLogStorage`]: openraft::storage::RaftLogStorage
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod archive;
pub mod codec;
mod error;
mod files;
mod log_store;
mod mem_sm;
pub mod projection_sm;
pub mod rpc;
pub mod snapshot;
mod types;
mod writer;

pub use error::{CodecError, Result, SnapshotError, StoreError};
pub use log_store::{HearthLogStore, StoreOptions};
pub use mem_sm::{MemState, MemStateMachine};
pub use projection_sm::{
    committed_entry, committed_entry_of_record, ChainHeadSource, CurrentHook, InstallHook,
    ProjectionStateMachine,
};
pub use snapshot::SnapshotInfo;
pub use types::{
    Applied, Entry, HearthNode, LogId, Membership, NodeId, Proposal, RaftMeta, Snapshot,
    SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote,
};
pub use writer::UNKNOWN_CHAIN;
