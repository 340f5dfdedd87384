//! Plain data types of the log's API.

use bytes::Bytes;
use std::time::Duration;

/// A blake3 hash, 32 raw bytes.
pub type Hash = [u8; 32];

/// The chain hash before the first entry of a new log.
pub const GENESIS_CHAIN: Hash = [0u8; 32];

/// An entry to append: raft-agnostic `(index, term, payload)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log; appends must continue from `last + 1`.
    pub index: u64,
    /// The raft term (or any monotonic epoch) of the entry.
    pub term: u64,
    /// Opaque bytes (a prost-encoded event envelope in hearth).
    pub payload: Bytes,
    /// For a copy of an entry that was redacted where it came from (raft replicating a redacted
    /// entry to another member): the payload hash *as originally appended*. The entry is then
    /// stored flagged redacted with this hash, so its chain link equals the original's.
    /// `None` for every ordinary append.
    pub redacted_from: Option<Hash>,
}

impl Entry {
    /// A new entry.
    pub fn new(index: u64, term: u64, payload: impl Into<Bytes>) -> Self {
        Entry {
            index,
            term,
            payload: payload.into(),
            redacted_from: None,
        }
    }
}

/// An entry as read back from the log, with what the log knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the log.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// The payload. For a redacted record the redacted byte range reads as zeros.
    pub payload: Bytes,
    /// blake3 of the payload as appended (kept through redaction).
    pub payload_hash: Hash,
    /// `chain[i] = blake3(chain[i-1] ‖ index ‖ term ‖ payload_hash)`.
    pub chain: Hash,
    /// Whether part of the payload was redacted (zeroed) after it was written.
    pub redacted: bool,
}

/// A point in the log: an index, its term and the chain hash through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogPosition {
    /// Index of the entry.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// Chain hash through that entry.
    pub chain: Hash,
}

/// What `fsync` the writer does before it acknowledges an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// One `fdatasync` per group-commit batch, before any append in it is acknowledged. The
    /// default; the only mode for real data.
    #[default]
    SyncData,
    /// No fsync at all: an acknowledged append may be lost on power loss. Benchmarks and tests
    /// only. Directory fsyncs are still done.
    Buffer,
}

/// How much a scan checks besides reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    /// Each record's crc32c (always done).
    #[default]
    Crc,
    /// Also the hash chain over the stored payload hashes: every link
    /// `chain[i] = blake3(chain[i-1] ‖ index ‖ term ‖ payload_hash)` is recomputed. Catches any
    /// accidental damage and any change to an entry's index, term or payload hash; a payload
    /// deliberately rewritten together with its crc is caught only by [`Verification::Full`].
    Chain,
    /// Also re-hashes every unredacted payload against its stored hash: audit grade.
    Full,
}

/// Settings of a log. `Default` is the production setting.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Size of a segment file (64 MiB). Segments are preallocated and zero-filled.
    pub segment_size: u64,
    /// Durability of appends.
    pub durability: Durability,
    /// Most requests waiting for the writer (callers wait beyond it).
    pub queue_requests: usize,
    /// Most payload bytes waiting for the writer (callers wait beyond it).
    pub queue_bytes: usize,
    /// Largest single group-commit write; also the largest single append call.
    pub max_batch_bytes: usize,
    /// Prepare the next segment in a background thread (off only in some tests).
    pub prepare_in_background: bool,
    /// How long a caller may wait for queue space before `append` fails (none: wait forever).
    pub enqueue_timeout: Option<Duration>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size: crate::format::DEFAULT_SEGMENT_SIZE,
            durability: Durability::SyncData,
            queue_requests: 4096,
            queue_bytes: 64 << 20,
            max_batch_bytes: 16 << 20,
            prepare_in_background: true,
            enqueue_timeout: None,
        }
    }
}

/// Counters of the writer, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Entries appended since open.
    pub entries: u64,
    /// Group-commit batches written since open.
    pub batches: u64,
    /// `fdatasync` calls on segments since open (directory fsyncs not included).
    pub fsyncs: u64,
    /// Bytes written to segments since open (batches and headers).
    pub bytes: u64,
    /// Segments rotated into use since open.
    pub rotations: u64,
}

/// What `verify` checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Of which redacted (verified by their kept payload hash).
    pub redacted: u64,
    /// Segment files in the log.
    pub segments: u64,
    /// Bytes of segment data holding batches.
    pub bytes: u64,
    /// First entry checked.
    pub first: Option<LogPosition>,
    /// Last entry checked; its chain hash is the head.
    pub last: Option<LogPosition>,
}
