//! [`StoreError`], [`CodecError`] and [`SnapshotError`]: what the raft storage and the state
//! machine can fail with, and how that becomes openraft's
//! [`StorageError`](openraft::StorageError) (which stops the raft node: every storage error is
//! fatal to openraft).

use crate::types::{LogId, NodeId};
use hearth_log::LogError;
use hearth_projections::ProjectionError;
use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};
use std::path::PathBuf;

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

/// A snapshot stream (see [`crate::snapshot`]) that is damaged, of an unknown format, or that does
/// not match what it claims to be. Decoding never panics on any input: every defect is one of
/// these.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The stream ends before a field it announces.
    #[error("snapshot stream is truncated: {what} needs {need} bytes, {left} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        need: u64,
        /// Bytes left in the stream.
        left: u64,
    },
    /// The stream does not start with the snapshot magic.
    #[error("not a hearth snapshot stream (bad magic)")]
    Magic,
    /// Written by a newer (or unknown) format version.
    #[error("snapshot stream has format version {found}; this build reads version {supported}")]
    Version {
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The blake3 checksum over the stream does not match: the bytes were damaged.
    #[error("snapshot stream checksum mismatch: the stream is damaged")]
    Checksum,
    /// The metadata header does not decode.
    #[error("snapshot header does not decode: {0}")]
    Header(#[source] serde_json::Error),
    /// The framing is inconsistent (bytes after the last file, a field too large, ...).
    #[error("snapshot stream framing is invalid: {0}")]
    Framing(String),
    /// A file name in the stream is not a plain, unique file name.
    #[error("snapshot stream names an unusable file {0:?}")]
    BadFileName(String),
    /// The stream's metadata differs from the metadata openraft installs it with.
    #[error("snapshot stream holds snapshot {stream}, openraft installs it as {given}")]
    MetaMismatch {
        /// The metadata in the stream.
        stream: String,
        /// The metadata given to `install_snapshot`.
        given: String,
    },
    /// The unpacked projection store has applied a different log id than the metadata says.
    #[error("snapshot store has applied {found:?}, its metadata says {expected:?}")]
    AppliedMismatch {
        /// `(index, term)` from the metadata.
        expected: Option<(u64, u64)>,
        /// `(index, term)` the unpacked store reports.
        found: Option<(u64, u64)>,
    },
    /// The unpacked projection store's digests differ from those in the metadata (damage, or a
    /// different set of projections on the two nodes).
    #[error("snapshot store digests differ from its metadata for tables {tables:?}")]
    DigestMismatch {
        /// Tables whose digest differs, or that only one side has.
        tables: Vec<String>,
    },
}

/// An error of [`HearthLogStore`](crate::HearthLogStore), of
/// [`ProjectionStateMachine`](crate::ProjectionStateMachine) or of
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
    /// A snapshot stream is damaged or does not match its metadata.
    #[error(transparent)]
    SnapshotStream(#[from] SnapshotError),
    /// The projection store failed.
    #[error(transparent)]
    Projections(#[from] ProjectionError),
    /// A filesystem operation of the state machine failed.
    #[error("{op} {path} failed: {source}")]
    Io {
        /// The operation, e.g. `"rename"`.
        op: &'static str,
        /// The path it was on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The state machine's own metadata file is damaged or of an unknown format.
    #[error("state machine metadata {path} is unreadable: {reason}")]
    CorruptSmMeta {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A blocking task of the state machine panicked or was cancelled.
    #[error("state machine task failed: {0}")]
    Task(String),
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
