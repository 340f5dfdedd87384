//! [`StoreError`] and [`CodecError`]: what the raft storage can fail with, and how that becomes
//! openraft's [`StorageError`](openraft::StorageError) (which stops the raft node: every storage
//! error is fatal to openraft).

use crate::types::{LogId, NodeId};
use hearth_log::LogError;
use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};

/// Bytes read back from disk that do not decode as what this crate wrote.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not even a version byte.
    #[error("{what} is empty: no version byte")]
    Empty {
        /// What was being decoded.
        what: &'static str,
    },
    /// Written by a newer (or unknown) format version.
    #[error("{what} has encoding version {version}; this build reads version {supported}")]
    Version {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        version: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The protobuf body does not decode.
    #[error("{what} does not decode: {source}")]
    Protobuf {
        /// What was being decoded.
        what: &'static str,
        /// prost's error.
        #[source]
        source: prost::DecodeError,
    },
    /// A field that must be present is not.
    #[error("{what} has no {field}")]
    Missing {
        /// What was being decoded.
        what: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// The log record's index or term disagrees with the log id inside its payload.
    #[error(
        "the log record says index {record_index} term {record_term}, its payload says log id \
         {log_id}"
    )]
    Mismatch {
        /// Index in the log record header.
        record_index: u64,
        /// Term in the log record header.
        record_term: u64,
        /// Log id decoded from the payload.
        log_id: LogId,
    },
}

/// An error of [`HearthLogStore`](crate::HearthLogStore) or
/// [`MemStateMachine`](crate::MemStateMachine).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entry stored at `index` is damaged or of an unknown format.
    #[error("raft log entry {index} is unreadable: {source}")]
    CorruptEntry {
        /// The log index.
        index: u64,
        /// What is wrong with it.
        #[source]
        source: CodecError,
    },
    /// The raft metadata record (vote, committed, purged) is damaged or of an unknown format.
    #[error("raft metadata record is unreadable: {0}")]
    CorruptMeta(#[source] CodecError),
    /// The log and the raft metadata disagree in a way a crash cannot explain.
    #[error("raft log state is inconsistent: {0}")]
    Inconsistent(String),
    /// Entries handed to `append` do not continue the log.
    #[error("append does not continue the log: got index {got}, expected {expected}")]
    NotConsecutive {
        /// The index given.
        got: u64,
        /// The index expected.
        expected: u64,
    },
    /// The underlying log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// An earlier write failed, so this store refuses further writes until it is reopened.
    #[error("raft log store failed earlier ({0}); reopen it")]
    Failed(String),
    /// The store's writer task is gone (its runtime shut down).
    #[error("raft log store writer task is gone")]
    Closed,
    /// A snapshot does not decode, or does not match its metadata.
    #[error("snapshot is unusable: {0}")]
    Snapshot(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// openraft's error for this one, about `subject`, when doing `verb`.
    pub fn into_storage(
        self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
    ) -> crate::StorageError {
        let subject = match &self {
            StoreError::CorruptEntry { index, .. } => ErrorSubject::LogIndex(*index),
            _ => subject,
        };
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }

    /// As [`StoreError::into_storage`] for reading the log.
    pub fn reading_logs(self) -> crate::StorageError {
        self.into_storage(ErrorSubject::Logs, ErrorVerb::Read)
    }

    /// As [`StoreError::into_storage`] for writing the log.
    pub fn writing_logs(self) -> crate::StorageError {
        self.into_storage(ErrorSubject::Logs, ErrorVerb::Write)
    }
}
