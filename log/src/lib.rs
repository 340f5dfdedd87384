//! `hearth-log`: hearth's durable, hash-chained write-ahead log.
//!
//! The log stores raft-agnostic entries `(index, term, payload)` in 64 MiB segment files.
//! Every entry carries `chain[i] = blake3(chain[i-1] ‖ index ‖ term ‖ blake3(payload))`, so the
//! whole history can be verified, and a payload can later be *redacted* (zeroed in place) without
//! breaking the chain. One writer thread does **group commit**: it drains every queued request
//! (appends, metadata writes, truncations, purges, redactions) into one checksummed batch, issues
//! one write and one `fdatasync`, then completes them all.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_log::LogError> {
//! use hearth_log::{Entry, Log, LogOptions};
//! let log = Log::open("data/log", LogOptions::default())?;
//! let next = log.next_index();
//! log.append(vec![Entry::new(next, 1, &b"event"[..])]).await?; // durable on return
//! for rec in log.read(next..=next)? {
//!     assert_eq!(&rec.payload[..], b"event");
//! }
//! log.write_meta(bytes::Bytes::from_static(b"vote")).await?; // in order with appends
//! let report = log.verify(..)?; // CRCs and the whole chain
//! # let _ = report; Ok(()) }
//! ```
//!
//! What it is **not**: it knows nothing of raft, events or projections (the payload is opaque;
//! the raft layer keeps its log id and membership inside it), and it is not a key-value store.
//!
//! Durability contract (see `ARCHITECTURE.md` for every fsync):
//! * `append`, `write_meta`, `truncate_after`, `purge_*` and `redact` resolve only once their
//!   effect is durable (in [`Durability::SyncData`], the default).
//! * Requests take effect in the order they were queued, across all kinds.
//! * After power loss the log recovers exactly the acknowledged requests, possibly plus whole
//!   unacknowledged batches; a torn last batch is dropped whole. Damage anywhere else is
//!   [`LogError::Corrupt`] naming file and byte offset, and the log refuses to open.
//! * A failed write or fsync poisons the log: every later write fails until it is reopened.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

mod error;
pub mod format;
pub mod metrics;
mod types;
pub mod vfs;

mod chain;
mod log;
mod preparer;
mod reader;
mod recovery;
mod segment;
mod state;
mod writer;

pub use crate::log::{Log, OpenMode, RecoveryReport, SegmentInfo};
pub use chain::{chain_next, payload_hash};
pub use error::{LogError, Result};
pub use types::{
    Durability, Entry, Hash, LogOptions, LogPosition, LogStats, Record, Verification, VerifyReport,
    GENESIS_CHAIN,
};
