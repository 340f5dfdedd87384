//! [`LogError`]: everything the log can fail with.

use std::path::PathBuf;

/// An error from the log. [`LogError::is_fatal`] tells whether the log can still be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Bytes on disk are damaged outside the torn tail that recovery may drop. The node must not
    /// start on this log until an operator has looked at it.
    #[error("log corrupt in {file} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment (or other) file holding the damage.
        file: PathBuf,
        /// Byte offset of the damaged record or batch inside that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An IO call failed.
    #[error("log I/O error: {op} {path}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown; every write fails until
    /// the log is reopened (which recovers from what is really durable).
    #[error("log is poisoned by an earlier failed {0}; reopen it to recover")]
    Poisoned(String),
    /// An append did not continue the log (`expected` is the next index).
    #[error("append out of order: got index {got}, expected {expected}")]
    OutOfOrder {
        /// The index the append started with.
        got: u64,
        /// The index the log expects next.
        expected: u64,
    },
    /// The request is too large for one batch or one record.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The index is not in the log (purged, or past the end).
    #[error("index {index} is not in the log (first {first:?}, last {last:?})")]
    NotFound {
        /// The requested index.
        index: u64,
        /// The first index present, if any.
        first: Option<u64>,
        /// The last index present, if any.
        last: Option<u64>,
    },
    /// An argument does not make sense for the log's current state.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The hash chain does not verify.
    #[error("hash chain broken at index {index} in {file} at byte offset {offset}: {reason}")]
    ChainBroken {
        /// The first index whose chain hash does not verify.
        index: u64,
        /// The segment file holding it.
        file: PathBuf,
        /// Its byte offset.
        offset: u64,
        /// What did not match.
        reason: String,
    },
    /// The write queue stayed full for longer than `LogOptions::enqueue_timeout`; nothing was
    /// written. Retryable.
    #[error("log write queue full for {waited_ms} ms; nothing was written, retry later")]
    QueueFull {
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// The log was closed, or its writer stopped.
    #[error("log is closed")]
    Closed,
    /// The data directory is locked by another process or is of a newer format.
    #[error("cannot open log at {path}: {reason}")]
    Unusable {
        /// The log directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl LogError {
    /// Whether the error means the log must be reopened (or repaired) before it is used again.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            LogError::Corrupt { .. }
                | LogError::Poisoned(_)
                | LogError::Io { .. }
                | LogError::ChainBroken { .. }
                | LogError::Closed
                | LogError::Unusable { .. }
        )
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results from the log.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
