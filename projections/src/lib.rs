//! `hearth-projections`: the projection runtime. It folds hearth's committed log into queryable
//! state kept in RocksDB, exactly once per entry, identically on every node.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use hearth_projections::{CommittedEntry, CountsProjection, Outcome, ProjectionStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = ProjectionStore::open(dir.path().join("projections"), vec![Arc::new(CountsProjection)])?;
//! let event = hearth_proto::sample::sample_envelope(1, 200).encode_to_bytes();
//! let outcomes = store.apply_batch(&[
//!     CommittedEntry::other(1, 1),             // e.g. a raft membership entry
//!     CommittedEntry::event(2, 1, event.clone()),
//!     CommittedEntry::event(3, 1, event),       // same request id: applied once
//! ])?;
//! assert!(matches!(outcomes[2], Outcome::Rejected(_)));
//! assert_eq!(store.applied(), Some((3, 1)));
//! let count = store.get(CountsProjection::NAME, &CountsProjection::kind_key("PeerSeen"))?;
//! assert_eq!(count.as_deref().and_then(CountsProjection::decode_count), Some(1));
//! let digests = store.digests()?; // canonical: compare with a rebuild from the log
//! # let _ = digests; Ok(()) }
//! ```
//!
//! Pieces:
//!
//! * [`Projection`]: a pure, deterministic fold `apply(state, event)` over its own key-value
//!   state, seen through [`StateTx`]. No clock (time is *log time*, [`ApplyCtx::log_time_ms`] =
//!   max of the proposers' clocks so far), no randomness, no IO, never an error: an event whose
//!   preconditions fail is [`Applied::Rejected`] and recorded. [`MemState`] tests a fold on
//!   plain data. [`CountsProjection`] is the first real projection.
//! * [`BlobIndexProjection`] (`"blobs-2"`): the blob index, folded from `BlobAccepted`,
//!   `ShardPlaced` and `ReplicaConfirmed`: each blob's manifest ([`BlobRecord`]) and the holder
//!   of each of its shards ([`HolderRecord`]), read back with [`ProjectionStore::get`] and
//!   [`ProjectionStore::scan_prefix`].
//! * [`ProjectionStore`]: the runtime on RocksDB. One column family per projection plus `meta`,
//!   `requests` (request-id de-duplication) and `rejected` ([`format`](mod@format)). The applied log id is
//!   written in the same `WriteBatch` as the state it produced, without RocksDB's WAL.
//! * [`MemStore`]: the same runtime over `BTreeMap`s (the model the RocksDB store is tested
//!   against). Both share the decision logic, which does no IO.
//! * Canonical digests ([`Digester`]) of every table, for audits and replica comparison.
//!
//! What it is **not**: it is not the log (`hearth-log` is, and it is the write-ahead log of
//! this store too: nothing here is durable until [`ProjectionStore::flush`], and a restart
//! re-applies the log after [`ProjectionStore::applied`]) and it is not raft (`hearth-raft`
//! decides what is committed and calls [`ProjectionStore::apply_batch`]). Projections are
//! **disposable**: they can always be rebuilt from the log ([`ProjectionStore::rebuild`]), and a
//! rebuild must reproduce the live digests; that is the audit.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

mod blob_index;
mod counts;
mod digest;
mod docs;
mod engine;
mod entry;
mod error;
pub mod format;
pub mod hot;
pub mod manifest;
mod mem;
mod mem_store;
mod peers;
mod projection;
mod store;

pub use blob_index::{
    tier_reached, BlobIndexProjection, BlobRecord, EventRef, HolderRecord, TIERS,
};
pub use counts::CountsProjection;
pub use digest::{Digester, Digests};
pub use docs::{apply_change, DeviceGrant, DocMeta, DocsProjection, StoredDoc, DOC_ID_LEN};
pub use entry::{CommittedEntry, EntryData, Outcome, ProjectionRejection, Rejection};
pub use error::{ProjectionError, Result};
pub use mem::MemState;
pub use mem_store::MemStore;
pub use peers::{score, Component, PeerRecord, PeersProjection, Score, MAX_SCRUBBED_SHARDS};
pub use projection::{Applied, ApplyCtx, Projection, StateTx};
pub use store::{ProjectionStore, TableIter};
