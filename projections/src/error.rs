//! [`ProjectionError`]: everything that can go wrong in the projection runtime.

use std::path::PathBuf;

/// Errors of the projection runtime.
///
/// Bad *input* never produces one of these: an undecodable payload, a duplicate request id or an
/// event a projection refuses is recorded as rejected (see [`crate::Outcome`]). What remains is
/// RocksDB failing ([`ProjectionError::Db`]), a store this build must not touch (a newer format,
/// damage, a projection added after entries were applied), and caller mistakes (a gap in the
/// entry indexes, an unknown projection name).
///
/// None of them leaves a half-applied batch behind: after an error from
/// [`crate::ProjectionStore::apply_batch`] the store is as it was before the call, so the caller
/// may retry or (better, for [`ProjectionError::Db`]) stop applying and surface the fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// A RocksDB operation failed (IO error, corruption detected by RocksDB, lock held by another
    /// process, ...).
    #[error("projection store {path}: RocksDB {op} failed: {source}")]
    Db {
        /// Directory of the store.
        path: PathBuf,
        /// The operation that failed, e.g. `"write"`.
        op: &'static str,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// A filesystem operation around the store failed.
    #[error("projection store {path}: {op} failed: {source}")]
    Io {
        /// The path the operation was on.
        path: PathBuf,
        /// The operation that failed, e.g. `"read directory"`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store was written by a newer hearth whose format this build does not know.
    #[error(
        "projection store {path}: format version {found} is newer than the newest this build \
         supports ({supported}); run a newer hearth, or rebuild the projections from the log \
         into a fresh directory"
    )]
    UnsupportedFormat {
        /// Directory of the store.
        path: PathBuf,
        /// Version found in the store.
        found: u32,
        /// Newest version this build supports ([`crate::format::FORMAT_VERSION`]).
        supported: u32,
    },
    /// The directory holds something that is not a projection store.
    #[error("{path} is not a hearth projection store: {reason}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What is missing or unexpected.
        reason: String,
    },
    /// The store's own bookkeeping is damaged (a malformed `applied` record, ...).
    #[error("projection store {path} is damaged: {what}; rebuild it from the log")]
    Corrupt {
        /// Directory of the store (`<memory>` for a [`crate::MemStore`]).
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A projection was registered on a store that already applied entries without it: its
    /// state would miss those entries.
    #[error(
        "projection store {path}: projection {projection:?} is new but the store has already \
         applied entries up to index {applied}; rebuild the store from the log"
    )]
    NeedsRebuild {
        /// Directory of the store.
        path: PathBuf,
        /// The projection's versioned name.
        projection: String,
        /// Last index the store had applied.
        applied: u64,
    },
    /// The set of projections is unusable: duplicate, empty or reserved names.
    #[error("invalid projection set: {reason}")]
    InvalidProjections {
        /// What is wrong with it.
        reason: String,
    },
    /// An entry does not follow the last applied one (a gap in the log indexes).
    #[error(
        "projection store {path}: entry index {found} does not follow the applied index {applied}"
    )]
    NonContiguous {
        /// Directory of the store.
        path: PathBuf,
        /// Last applied index.
        applied: u64,
        /// Index of the offending entry.
        found: u64,
    },
    /// A digest or read named a table the store does not have.
    #[error("projection store {path}: no projection or table named {name:?}")]
    UnknownTable {
        /// Directory of the store.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// [`crate::ProjectionStore::rebuild`] or [`crate::ProjectionStore::checkpoint`] was pointed at a directory
    /// that already has content.
    #[error("{path} is not empty (or already exists); pick a fresh directory")]
    TargetNotEmpty {
        /// The directory.
        path: PathBuf,
    },
}

/// Result type of this crate.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;
