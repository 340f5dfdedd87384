//! The log's in-memory state: segments, the sparse index, and the head, base and purge points.
//!
//! Shared by the writer (which changes it only after a batch is durable) and readers (which
//! see only durable, acknowledged state). Memory does not grow with the number of entries: the
//! index keeps one [`Point`] per [`INDEX_STRIDE`] bytes of batches, per segment and per
//! truncation, not one per entry.

use crate::format::RecordKind;
use crate::segment::ParsedRecord;
use crate::types::{LogPosition, GENESIS_CHAIN};
use crate::vfs::VfsFile;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A new index point is added once a batch starts this many bytes past the previous point.
pub(crate) const INDEX_STRIDE: u64 = 256 << 10;

/// One segment file.
#[derive(Debug, Clone)]
pub(crate) struct SegState {
    pub seq: u64,
    pub path: PathBuf,
    pub file: Arc<dyn VfsFile>,
    /// Where batches start (after the header).
    pub data_start: u64,
    /// End of the last durable batch (aligned): the next batch goes here.
    pub end: u64,
    /// Largest entry index physically in this segment (live or truncated away).
    pub max_index: Option<u64>,
    /// Smallest live entry index in it, for reporting.
    pub min_index: Option<u64>,
}

/// A sparse index point: scanning the segment `seq` from the batch at `offset` yields live
/// entries from `index` on, up to the next point's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    pub index: u64,
    pub seq: u64,
    pub offset: u64,
}

/// Everything readers and the writer share.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub segments: BTreeMap<u64, SegState>,
    pub points: Vec<Point>,
    /// The position before the first live entry (`None`: no purge and no entry before it: the
    /// chain starts from genesis at whatever index the first entry has).
    pub base: Option<LogPosition>,
    /// The last live entry.
    pub last: Option<LogPosition>,
    /// The last purged entry.
    pub purged: Option<LogPosition>,
    /// The latest metadata record.
    pub meta: Option<Bytes>,
    /// Set when a write or fsync failed.
    pub poisoned: Option<String>,
    /// Whether the next entry must start a new index point (after a truncation or reset).
    pub force_point: bool,
}

impl State {
    /// The chain hash the next entry continues from.
    pub fn head_chain(&self) -> [u8; 32] {
        self.last
            .or(self.base)
            .map(|p| p.chain)
            .unwrap_or(GENESIS_CHAIN)
    }

    /// The index the next entry must have; `None` when the log is fresh (any index starts it).
    pub fn expected_next(&self) -> Option<u64> {
        self.last.or(self.base).map(|p| p.index + 1)
    }

    /// The first live index.
    pub fn first_index(&self) -> Option<u64> {
        let last = self.last?;
        match self.base {
            Some(b) if last.index <= b.index => None,
            Some(b) => Some(b.index + 1),
            None => Some(self.points.first().map_or(last.index, |p| p.index)),
        }
    }

    /// Applies one durable record found at `(seq, batch_offset)`. Used by recovery and by the
    /// writer after a batch is durable, so both build the same state.
    pub fn apply(&mut self, seq: u64, batch_offset: u64, rec: &ParsedRecord) {
        match rec.kind {
            RecordKind::Entry => {
                let need_point = self.force_point
                    || match self.points.last() {
                        None => true,
                        Some(p) => p.seq != seq || batch_offset >= p.offset + INDEX_STRIDE,
                    };
                if need_point {
                    self.points.push(Point {
                        index: rec.index,
                        seq,
                        offset: batch_offset,
                    });
                }
                self.force_point = false;
                self.last = Some(LogPosition {
                    index: rec.index,
                    term: rec.term,
                    chain: rec.chain,
                });
                if let Some(s) = self.segments.get_mut(&seq) {
                    s.max_index = Some(s.max_index.map_or(rec.index, |m| m.max(rec.index)));
                    s.min_index.get_or_insert(rec.index);
                }
            }
            RecordKind::Meta => self.meta = Some(rec.payload.clone()),
            RecordKind::Truncate => {
                let to_genesis = rec.payload.first() == Some(&1);
                let keep = if to_genesis { None } else { Some(rec.index) };
                self.points.retain(|p| keep.is_some_and(|k| p.index <= k));
                if to_genesis {
                    self.last = None;
                    self.base = None;
                } else {
                    let pos = LogPosition {
                        index: rec.index,
                        term: rec.term,
                        chain: rec.chain,
                    };
                    if self.base.is_some_and(|b| b.index == rec.index) {
                        self.last = None;
                    } else {
                        self.last = Some(pos);
                    }
                }
                self.force_point = true;
            }
            RecordKind::Purge => {
                let pos = LogPosition {
                    index: rec.index,
                    term: rec.term,
                    chain: rec.chain,
                };
                self.purged = Some(pos);
                if self.last.is_none_or(|l| l.index <= pos.index) {
                    // purged everything (possibly past the end): restart after it
                    self.last = None;
                    self.points.clear();
                    self.force_point = true;
                }
                self.base = Some(pos);
                // keep the last point at or before the new first index, drop older ones
                let first = pos.index + 1;
                let keep_from = self
                    .points
                    .iter()
                    .rposition(|p| p.index <= first)
                    .unwrap_or(0);
                self.points.drain(..keep_from);
            }
            RecordKind::Redact => {}
        }
    }

    /// Segments that may be deleted after a purge: oldest first, not the newest, every entry in
    /// them at or below the purge point.
    pub fn purgeable_segments(&self) -> Vec<u64> {
        let Some(purged) = self.purged else {
            return Vec::new();
        };
        let newest = self.segments.keys().next_back().copied();
        let mut out = Vec::new();
        for (seq, s) in &self.segments {
            if Some(*seq) == newest {
                break;
            }
            if s.max_index.is_some_and(|m| m > purged.index) {
                break;
            }
            out.push(*seq);
        }
        out
    }

    /// Forgets deleted segments and any index point into them.
    pub fn forget_segments(&mut self, seqs: &[u64]) {
        for seq in seqs {
            self.segments.remove(seq);
        }
        self.points.retain(|p| !seqs.contains(&p.seq));
    }
}
