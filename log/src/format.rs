//! Every on-disk constant and encoding of the log, in one place.
//!
//! # Files in a log directory
//! * `{seq:020}.seg` — segments, `seq` counting up from 1 with no gaps. Each is preallocated to
//!   [`DEFAULT_SEGMENT_SIZE`] and zero-filled, so appends overwrite rather than extend.
//! * `next.seg.prep` — the next segment, prepared (allocated, zero-filled, fsynced) in advance.
//! * `*.tmp` — a segment being prepared; removed at open.
//! * `LOCK` — held (flock) by the process that has the log open read-write.
//!
//! # Segment layout
//! ```text
//! [segment header][pad to 8][batch][pad to 8][batch]...[zeros]
//! ```
//! Segment header (little-endian):
//! ```text
//!  0  magic      8  b"HRTHWAL\0"
//!  8  version    4  FORMAT_VERSION
//! 12  hdr_len    4  bytes from 0 to the end of the crc
//! 16  seq        8
//! 24  flags      4  bit0: anchor present, bit1: purged present, bit2: meta present
//! 28  meta_len   4
//! 32  anchor    48  (index 8, term 8, chain 32): the entry before this segment's first entry
//! 80  purged    48  (index 8, term 8, chain 32): the last purged entry
//! 128 meta       meta_len bytes (the latest metadata record)
//! ..  crc        4  crc32c of bytes [0, hdr_len - 4)
//! ```
//! Batch (one group-commit write), 8-byte aligned:
//! ```text
//!  0  magic      4  b"HBAT"
//!  4  hdr_crc    4  crc32c of bytes [8, 24)
//!  8  body_len   4  bytes of records that follow the header
//! 12  count      4  number of records
//! 16  body_sum   4  crc32c over every record's invariant fields (see below)
//! 20  reserved   4  zero
//! 24  records    body_len bytes, then zero padding to 8
//! ```
//! Record:
//! ```text
//!  0  len        4  RECORD_HEADER_LEN + payload_len
//!  4  crc        4  crc32c of bytes [8, len): flags, fields and payload
//!  8  kind       1  RecordKind
//!  9  flags      1  bit0: REDACTED
//! 10  reserved   2
//! 12  payload_len 4
//! 16  index      8
//! 24  term       8
//! 32  payload_hash 32  blake3(payload as appended)
//! 64  chain      32  blake3(prev_chain ‖ index ‖ term ‖ payload_hash)
//! 96  payload
//! ```
//! `body_sum` covers each record's `len, kind, payload_len, index, term, payload_hash, chain` —
//! everything a redaction leaves alone — so a redaction (which rewrites flags, payload bytes and
//! the record crc) keeps the batch valid, while any torn byte of a batch fails either `body_sum`
//! or a record crc.

use crate::types::{Hash, LogPosition};

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Smallest segment size accepted (tests use small segments).
pub const MIN_SEGMENT_SIZE: u64 = 4096;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HRTHWAL\0";
/// Format version written by this build; newer versions are refused.
pub const FORMAT_VERSION: u32 = 1;
/// Fixed part of the segment header (before the metadata bytes and the crc).
pub const SEGMENT_HEADER_FIXED: usize = 128;
/// Largest metadata record.
pub const MAX_META_LEN: usize = 64 << 10;
/// Batch magic.
pub const BATCH_MAGIC: [u8; 4] = *b"HBAT";
/// Batch header length.
pub const BATCH_HEADER_LEN: usize = 24;
/// Record header length.
pub const RECORD_HEADER_LEN: usize = 96;
/// Batches start at multiples of this.
pub const ALIGN: u64 = 8;
/// Record flag: part of the payload was zeroed after it was written.
pub const FLAG_REDACTED: u8 = 1;

const H_ANCHOR: u32 = 1;
const H_PURGED: u32 = 2;
const H_META: u32 = 4;

/// Segment file name for `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

/// The `seq` of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Name of the prepared next segment.
pub const PREPARED_NAME: &str = "next.seg.prep";
/// Name of the segment being prepared.
pub const PREPARING_NAME: &str = "next.seg.tmp";
/// Name of the lock file.
pub const LOCK_NAME: &str = "LOCK";

/// Rounds `n` up to [`ALIGN`].
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A log entry `(index, term, payload)`.
    Entry = 1,
    /// The metadata record (payload = metadata bytes); the latest one wins.
    Meta = 2,
    /// Entries after `index` are removed; `term`/`chain` are those of entry `index`.
    Truncate = 3,
    /// Entries through `index` are purged; `term`/`chain` are those of entry `index`.
    Purge = 4,
    /// Intent to redact entry `index`: payload = offset u32 ‖ len u32 of the zeroed range.
    Redact = 5,
}

impl RecordKind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Option<RecordKind> {
        Some(match b {
            1 => RecordKind::Entry,
            2 => RecordKind::Meta,
            3 => RecordKind::Truncate,
            4 => RecordKind::Purge,
            5 => RecordKind::Redact,
            _ => return None,
        })
    }
}

/// State carried in every segment header, so older segments can be deleted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentHeader {
    /// Segment sequence number.
    pub seq: u64,
    /// The entry just before this segment's first entry (`None`: the log had no entry and no
    /// purge yet, so the first entry starts the chain from genesis).
    pub anchor: Option<LogPosition>,
    /// The last purged entry.
    pub purged: Option<LogPosition>,
    /// The latest metadata record.
    pub meta: Option<Vec<u8>>,
}

fn put_pos(buf: &mut [u8], p: &Option<LogPosition>) {
    if let Some(p) = p {
        buf[0..8].copy_from_slice(&p.index.to_le_bytes());
        buf[8..16].copy_from_slice(&p.term.to_le_bytes());
        buf[16..48].copy_from_slice(&p.chain);
    }
}

fn get_pos(buf: &[u8]) -> LogPosition {
    LogPosition {
        index: le_u64(&buf[0..8]),
        term: le_u64(&buf[8..16]),
        chain: hash_at(buf, 16),
    }
}

/// Reads a little-endian u64 from an 8-byte slice.
pub fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Reads a little-endian u32 from a 4-byte slice.
pub fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Reads a 32-byte hash at `off`.
pub fn hash_at(b: &[u8], off: usize) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&b[off..off + 32]);
    h
}

impl SegmentHeader {
    /// Encoded length (without padding).
    pub fn encoded_len(&self) -> usize {
        SEGMENT_HEADER_FIXED + self.meta.as_ref().map_or(0, |m| m.len()) + 4
    }

    /// Encodes the header (without padding).
    pub fn encode(&self) -> Vec<u8> {
        let len = self.encoded_len();
        let mut b = vec![0u8; len];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        let mut flags = 0;
        if self.anchor.is_some() {
            flags |= H_ANCHOR;
        }
        if self.purged.is_some() {
            flags |= H_PURGED;
        }
        if self.meta.is_some() {
            flags |= H_META;
        }
        b[24..28].copy_from_slice(&flags.to_le_bytes());
        let meta_len = self.meta.as_ref().map_or(0, |m| m.len());
        b[28..32].copy_from_slice(&(meta_len as u32).to_le_bytes());
        put_pos(&mut b[32..80], &self.anchor);
        put_pos(&mut b[80..128], &self.purged);
        if let Some(m) = &self.meta {
            b[128..128 + m.len()].copy_from_slice(m);
        }
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The header length declared by the first 16 bytes, after checking magic and version.
    /// `Ok(None)` means the bytes are all zero (a segment renamed into place but never written).
    pub fn peek_len(first16: &[u8]) -> Result<Option<usize>, String> {
        if first16.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if first16[0..8] != SEGMENT_MAGIC {
            return Err("bad segment magic".into());
        }
        let version = le_u32(&first16[8..12]);
        if version != FORMAT_VERSION {
            return Err(format!(
                "segment format version {version}, this build reads {FORMAT_VERSION}"
            ));
        }
        let len = le_u32(&first16[12..16]) as usize;
        if !(SEGMENT_HEADER_FIXED + 4..=SEGMENT_HEADER_FIXED + MAX_META_LEN + 4).contains(&len) {
            return Err(format!("bad segment header length {len}"));
        }
        Ok(Some(len))
    }

    /// Decodes a whole header of the length `peek_len` returned.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, String> {
        let len = b.len();
        if len < SEGMENT_HEADER_FIXED + 4 {
            return Err("segment header too short".into());
        }
        let crc = le_u32(&b[len - 4..]);
        if crc32c::crc32c(&b[..len - 4]) != crc {
            return Err("segment header checksum mismatch".into());
        }
        let flags = le_u32(&b[24..28]);
        let meta_len = le_u32(&b[28..32]) as usize;
        if SEGMENT_HEADER_FIXED + meta_len + 4 != len {
            return Err("segment header metadata length mismatch".into());
        }
        Ok(SegmentHeader {
            seq: le_u64(&b[16..24]),
            anchor: (flags & H_ANCHOR != 0).then(|| get_pos(&b[32..80])),
            purged: (flags & H_PURGED != 0).then(|| get_pos(&b[80..128])),
            meta: (flags & H_META != 0).then(|| b[128..128 + meta_len].to_vec()),
        })
    }
}

/// A record as laid out in a batch; payload borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Kind.
    pub kind: RecordKind,
    /// Flags.
    pub flags: u8,
    /// Index field.
    pub index: u64,
    /// Term field.
    pub term: u64,
    /// Payload hash field.
    pub payload_hash: Hash,
    /// Chain field.
    pub chain: Hash,
    /// Payload bytes.
    pub payload: &'a [u8],
}

/// Appends an encoded record to `out` and returns its invariant-field bytes' crc contribution
/// via `sum` (crc32c extended over the record's invariant fields).
pub fn encode_record(out: &mut Vec<u8>, rec: &RawRecord<'_>, sum: &mut u32) {
    let start = out.len();
    let len = RECORD_HEADER_LEN + rec.payload.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // crc, filled below
    out.push(rec.kind as u8);
    out.push(rec.flags);
    out.extend_from_slice(&[0u8; 2]);
    out.extend_from_slice(&(rec.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&rec.index.to_le_bytes());
    out.extend_from_slice(&rec.term.to_le_bytes());
    out.extend_from_slice(&rec.payload_hash);
    out.extend_from_slice(&rec.chain);
    out.extend_from_slice(rec.payload);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    *sum = invariant_sum(*sum, &out[start..start + RECORD_HEADER_LEN]);
}

/// Extends `sum` over the invariant fields of a record header.
pub fn invariant_sum(sum: u32, hdr: &[u8]) -> u32 {
    let s = crc32c::crc32c_append(sum, &hdr[0..4]); // len
    let s = crc32c::crc32c_append(s, &hdr[8..9]); // kind
    crc32c::crc32c_append(s, &hdr[12..RECORD_HEADER_LEN]) // payload_len .. chain
}

/// Record crc over `rec[8..]`.
pub fn record_crc(rec: &[u8]) -> u32 {
    crc32c::crc32c(&rec[8..])
}

/// Fills in the batch header at `buf[0..BATCH_HEADER_LEN]` for a body of `body_len` bytes.
pub fn finish_batch_header(buf: &mut [u8], body_len: u32, count: u32, body_sum: u32) {
    buf[0..4].copy_from_slice(&BATCH_MAGIC);
    buf[8..12].copy_from_slice(&body_len.to_le_bytes());
    buf[12..16].copy_from_slice(&count.to_le_bytes());
    buf[16..20].copy_from_slice(&body_sum.to_le_bytes());
    buf[20..24].copy_from_slice(&[0u8; 4]);
    let crc = crc32c::crc32c(&buf[8..24]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// A decoded, checked batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Bytes of records.
    pub body_len: u32,
    /// Number of records.
    pub count: u32,
    /// Checksum over the records' invariant fields.
    pub body_sum: u32,
}

/// What is at a batch position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchProbe {
    /// All zeros: the end of the written part of the segment.
    End,
    /// A header whose magic and crc check out.
    Header(BatchHeader),
    /// Anything else.
    Bad(&'static str),
}

/// Checks the 24 header bytes at a batch position.
pub fn probe_batch(h: &[u8]) -> BatchProbe {
    if h.iter().all(|&b| b == 0) {
        return BatchProbe::End;
    }
    if h[0..4] != BATCH_MAGIC {
        return BatchProbe::Bad("bad batch magic");
    }
    if crc32c::crc32c(&h[8..24]) != le_u32(&h[4..8]) {
        return BatchProbe::Bad("batch header checksum mismatch");
    }
    BatchProbe::Header(BatchHeader {
        body_len: le_u32(&h[8..12]),
        count: le_u32(&h[12..16]),
        body_sum: le_u32(&h[16..20]),
    })
}

/// Decodes one record at the start of `b` (which holds at least the record). Checks the record
/// crc; returns the record and its length, or why it is bad.
pub fn decode_record(b: &[u8]) -> Result<(RawRecord<'_>, usize, bool), &'static str> {
    if b.len() < RECORD_HEADER_LEN {
        return Err("record runs past its batch");
    }
    let len = le_u32(&b[0..4]) as usize;
    let payload_len = le_u32(&b[12..16]) as usize;
    if len != RECORD_HEADER_LEN + payload_len || len > b.len() {
        return Err("bad record length");
    }
    let kind = RecordKind::from_u8(b[8]).ok_or("unknown record kind")?;
    let crc_ok = record_crc(&b[..len]) == le_u32(&b[4..8]);
    Ok((
        RawRecord {
            kind,
            flags: b[9],
            index: le_u64(&b[16..24]),
            term: le_u64(&b[24..32]),
            payload_hash: hash_at(b, 32),
            chain: hash_at(b, 64),
            payload: &b[RECORD_HEADER_LEN..len],
        },
        len,
        crc_ok,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader {
            seq: 7,
            anchor: Some(LogPosition {
                index: 5,
                term: 2,
                chain: [9; 32],
            }),
            purged: None,
            meta: Some(b"vote".to_vec()),
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::peek_len(&b[..16]), Ok(Some(b.len())));
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut bad = b.clone();
        bad[40] ^= 1;
        assert!(SegmentHeader::decode(&bad).is_err());
    }

    #[test]
    fn segment_names() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("x.seg"), None);
        assert_eq!(parse_segment_name(PREPARED_NAME), None);
    }

    #[test]
    fn record_round_trip_and_redaction_keeps_sum() {
        let mut out = Vec::new();
        let mut sum = 0;
        let rec = RawRecord {
            kind: RecordKind::Entry,
            flags: 0,
            index: 3,
            term: 1,
            payload_hash: [1; 32],
            chain: [2; 32],
            payload: b"hello",
        };
        encode_record(&mut out, &rec, &mut sum);
        let (d, len, ok) = decode_record(&out).expect("decodes");
        assert!(ok);
        assert_eq!(len, out.len());
        assert_eq!(d.payload, b"hello");
        // redact: flags + payload + crc change, invariant sum does not
        out[9] = FLAG_REDACTED;
        out[RECORD_HEADER_LEN] = 0;
        let crc = record_crc(&out);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(invariant_sum(0, &out[..RECORD_HEADER_LEN]), sum);
        assert!(decode_record(&out).expect("decodes").2);
    }
}
