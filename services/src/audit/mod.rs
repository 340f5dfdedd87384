//! The audit (`hearth audit`) and point-in-time replay (`hearth replay`): proving from the log
//! alone that a stopped node's state is what its log says.
//!
//! ```text
//! OfflineDir (shared locks, read-only log + store)
//!   1 verify   CRC + chain + payload hashes, index range split over the cores
//!   2 events   decode every entry: kinds, ManifestBook, ed25519 checks on worker threads
//!   3 rebuild  reader thread → CommittedEntry chunks → ProjectionStore::rebuild (scratch dir)
//!   4 compare  digests; first differing key by merging two sorted scans
//! → AuditReport (text or JSON) and its exit code
//! ```
//!
//! When the log was purged and no archive of entries reaches back, phase 3 starts from a
//! signed snapshot the node archived ([`signed_snapshot`]), checked before it is used.
//!
//! Replay is phase 3 alone, up to an index or a log time, into a directory laid out like a
//! node's so the read-only CLI can query it.
//!
//! The online audit ([`online`], `POST /v1/admin/audit`) runs the same phases on a running
//! node: on a RocksDB checkpoint of its store at an applied index A and the log through A,
//! while writes go on.
//!
//! What it is **not**: a repair tool — it changes nothing and only reports. Memory stays bounded: entries stream, the only per-blob state is
//! the [`manifest_book::ManifestBook`].

pub mod auditor;
pub mod compare;
pub mod events;
pub mod manifest_book;
pub mod offline;
pub mod online;
pub mod progress;
pub mod rebuild;
pub mod replay;
pub mod report;
pub mod signed_snapshot;
pub mod verify;

pub use auditor::{audit, AuditOptions};
pub use offline::OfflineDir;
pub use progress::Progress;
pub use report::AuditReport;
