//! Opening a log: scan every segment, rebuild the in-memory state, and decide what damage means.
//!
//! * A batch that fails its checks in the **last** segment with no well-formed batch after it
//!   is a torn tail (a write interrupted by a crash): dropped whole, and in read-write mode its
//!   bytes are zeroed and fsynced so nothing stale can ever be read back.
//! * A record whose crc fails inside an otherwise intact batch, with a later redaction intent
//!   for exactly that record, is an interrupted redaction: it is completed.
//! * Anything else — damage in an older segment, damage followed by valid batches, a missing
//!   segment, a broken chain — is [`LogError::Corrupt`] naming the file and byte offset.

use crate::chain::chain_next;
use crate::error::{LogError, Result};
use crate::format::{
    align_up, le_u32, le_u64, parse_segment_name, segment_name, RecordKind, SegmentHeader, ALIGN,
    FLAG_REDACTED, PREPARED_NAME, PREPARING_NAME, RECORD_HEADER_LEN,
};
use crate::log::{OpenMode, RecoveryReport};
use crate::segment::{parse_batch, BatchReader, Next, ParsedRecord};
use crate::state::{SegState, State};
use crate::vfs::{Vfs, VfsFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SCAN_CHUNK: usize = 1 << 20;

/// A redaction intent: zero `range_len` bytes at `range_off` of the payload of the record at
/// `(seq, record_offset)`; `crc` is the record's crc once redacted, so recovery completes an
/// interrupted redaction only when the record is exactly that one (other damage stays damage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RedactIntent {
    pub seq: u64,
    pub record_offset: u64,
    pub range_off: u32,
    pub range_len: u32,
    pub crc: u32,
}

impl RedactIntent {
    pub fn encode(&self) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.record_offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.range_off.to_le_bytes());
        b[20..24].copy_from_slice(&self.range_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.crc.to_le_bytes());
        b
    }
    pub fn decode(b: &[u8]) -> Option<RedactIntent> {
        (b.len() == 28).then(|| RedactIntent {
            seq: le_u64(&b[0..8]),
            record_offset: le_u64(&b[8..16]),
            range_off: le_u32(&b[16..20]),
            range_len: le_u32(&b[20..24]),
            crc: le_u32(&b[24..28]),
        })
    }
}

/// The bytes of a record after redacting `range_off..range_off+range_len` of its payload:
/// flag set, range zeroed, crc rewritten. `rec` is the whole record as on disk.
pub(crate) fn redacted_record(rec: &[u8], range_off: u32, range_len: u32) -> Option<Vec<u8>> {
    let start = RECORD_HEADER_LEN.checked_add(range_off as usize)?;
    let end = start.checked_add(range_len as usize)?;
    if rec.len() < RECORD_HEADER_LEN || end > rec.len() {
        return None;
    }
    let mut out = rec.to_vec();
    out[start..end].fill(0);
    out[9] |= FLAG_REDACTED;
    let crc = crate::format::record_crc(&out);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Some(out)
}

/// What recovery hands to the log.
pub(crate) struct Recovered {
    pub state: State,
    pub report: RecoveryReport,
    /// The next segment sequence number to create.
    pub next_seq: u64,
}

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> LogError {
    LogError::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

struct Pending {
    seq: u64,
    path: PathBuf,
    offset: u64,
    recs: Vec<ParsedRecord>,
}

struct Scan {
    state: State,
    suspects: Vec<(u64, PathBuf, u64)>,
    intents: Vec<RedactIntent>,
}

impl Scan {
    /// Applies a batch known to be followed by more data (or accepted as the last one).
    fn apply(&mut self, p: Pending) -> Result<()> {
        for rec in &p.recs {
            if !rec.crc_ok {
                if rec.kind != RecordKind::Entry {
                    return Err(corrupt(
                        &p.path,
                        rec.offset,
                        "control record checksum mismatch",
                    ));
                }
                self.suspects.push((p.seq, p.path.clone(), rec.offset));
            }
            if rec.kind == RecordKind::Entry {
                if let Some(expect) = self.state.expected_next() {
                    if rec.index != expect {
                        return Err(corrupt(
                            &p.path,
                            rec.offset,
                            format!("entry index {} where {expect} was expected", rec.index),
                        ));
                    }
                }
                let chain = chain_next(
                    &self.state.head_chain(),
                    rec.index,
                    rec.term,
                    &rec.payload_hash,
                );
                if chain != rec.chain {
                    return Err(LogError::ChainBroken {
                        index: rec.index,
                        file: p.path.clone(),
                        offset: rec.offset,
                        reason: "chain hash does not follow from the previous entry".into(),
                    });
                }
            }
            if rec.kind == RecordKind::Redact {
                let intent = RedactIntent::decode(&rec.payload)
                    .ok_or_else(|| corrupt(&p.path, rec.offset, "bad redaction record"))?;
                self.intents.push(intent);
            }
            self.state.apply(p.seq, p.offset, rec);
        }
        Ok(())
    }
}

/// Zeroes `[from, file end)` where it is not zero already, then fsyncs.
pub(crate) fn zero_tail(file: &Arc<dyn VfsFile>, path: &Path, from: u64) -> Result<()> {
    let len = file
        .len()
        .map_err(|e| LogError::io("stat segment", path, e))?;
    let mut pos = from;
    let mut buf = vec![0u8; 1 << 20];
    let zeros = vec![0u8; 1 << 20];
    let mut wrote = false;
    while pos < len {
        let n = ((len - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)
            .map_err(|e| LogError::io("read segment tail", path, e))?;
        if buf[..n].iter().any(|&b| b != 0) {
            file.write_all_at(&zeros[..n], pos)
                .map_err(|e| LogError::io("zero torn tail", path, e))?;
            wrote = true;
        }
        pos += n as u64;
    }
    if wrote {
        file.sync_data()
            .map_err(|e| LogError::io("fsync zeroed tail", path, e))?;
    }
    Ok(())
}

/// Rewrites one record as redacted (zeroes the range, sets the flag, rewrites the crc) and
/// fsyncs — only if the result is exactly the record the intent describes (its crc).
pub(crate) fn apply_redaction(
    file: &Arc<dyn VfsFile>,
    path: &Path,
    intent: &RedactIntent,
) -> Result<()> {
    let mut hdr = [0u8; RECORD_HEADER_LEN];
    file.read_exact_at(&mut hdr, intent.record_offset)
        .map_err(|e| LogError::io("read record to redact", path, e))?;
    let len = le_u32(&hdr[0..4]) as usize;
    let payload_len = le_u32(&hdr[12..16]) as usize;
    if len != RECORD_HEADER_LEN + payload_len {
        return Err(corrupt(
            path,
            intent.record_offset,
            "redaction target is not a record",
        ));
    }
    let mut rec = vec![0u8; len];
    file.read_exact_at(&mut rec, intent.record_offset)
        .map_err(|e| LogError::io("read record to redact", path, e))?;
    let out = redacted_record(&rec, intent.range_off, intent.range_len)
        .filter(|out| le_u32(&out[4..8]) == intent.crc)
        .ok_or_else(|| {
            corrupt(
                path,
                intent.record_offset,
                "record checksum mismatch (damage in a record being redacted)",
            )
        })?;
    file.write_all_at(&out[4..], intent.record_offset + 4)
        .map_err(|e| LogError::io("write redaction", path, e))?;
    file.sync_data()
        .map_err(|e| LogError::io("fsync redaction", path, e))
}

/// Reads and checks a segment header; `Ok(None)` if the header area is all zeros.
fn read_header(file: &Arc<dyn VfsFile>, path: &Path, flen: u64) -> Result<Option<SegmentHeader>> {
    if flen < 16 {
        return Ok(None);
    }
    let mut first16 = [0u8; 16];
    file.read_exact_at(&mut first16, 0)
        .map_err(|e| LogError::io("read segment header", path, e))?;
    let Some(hdr_len) = SegmentHeader::peek_len(&first16).map_err(|r| corrupt(path, 0, r))? else {
        return Ok(None);
    };
    let mut hb = vec![0u8; hdr_len];
    file.read_exact_at(&mut hb, 0)
        .map_err(|_| corrupt(path, 0, "segment header truncated"))?;
    SegmentHeader::decode(&hb)
        .map(Some)
        .map_err(|r| corrupt(path, 0, r))
}

/// Scans the log directory and rebuilds the state.
pub(crate) fn recover(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    segment_size: u64,
    mode: OpenMode,
) -> Result<Recovered> {
    let rw = mode == OpenMode::ReadWrite;
    let names = vfs
        .list(dir)
        .map_err(|e| LogError::io("list log directory", dir, e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    seqs.sort_unstable();
    let mut dir_dirty = false;
    if rw {
        if names.iter().any(|n| n == PREPARING_NAME) {
            let p = dir.join(PREPARING_NAME);
            vfs.remove(&p).map_err(|e| LogError::io("remove", &p, e))?;
            dir_dirty = true;
        }
        if names.iter().any(|n| n == PREPARED_NAME) {
            let p = dir.join(PREPARED_NAME);
            let ok = vfs
                .open(&p)
                .and_then(|f| f.len())
                .is_ok_and(|l| l == segment_size);
            if !ok {
                vfs.remove(&p).map_err(|e| LogError::io("remove", &p, e))?;
                dir_dirty = true;
            }
        }
    }
    for w in seqs.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(corrupt(
                &dir.join(segment_name(w[0] + 1)),
                0,
                "segment missing: the sequence has a gap",
            ));
        }
    }

    let mut report = RecoveryReport::default();
    let mut scan = Scan {
        state: State::default(),
        suspects: Vec::new(),
        intents: Vec::new(),
    };
    let mut pending: Option<Pending> = None;
    let mut next_seq = seqs.last().map_or(1, |s| s + 1);
    let n = seqs.len();
    let mut torn: Option<(u64, u64)> = None; // (seq, offset)
    let mut first_anchor: Option<(crate::types::LogPosition, PathBuf)> = None;
    for (i, &seq) in seqs.iter().enumerate() {
        let is_last = i + 1 == n;
        let path = dir.join(segment_name(seq));
        let file = vfs
            .open(&path)
            .map_err(|e| LogError::io("open segment", &path, e))?;
        let flen = file
            .len()
            .map_err(|e| LogError::io("stat segment", &path, e))?;
        let header = match read_header(&file, &path, flen) {
            Ok(Some(h)) => h,
            Ok(None) | Err(LogError::Corrupt { .. }) if is_last => {
                // The newest segment's header is written and fsynced before any batch goes in,
                // so a missing or torn one means the rotation never finished and nothing in it
                // was acknowledged — unless a well-formed batch is there, which is damage.
                let mut reader = BatchReader::new(&file, &path, 0, flen, SCAN_CHUNK);
                if let Some(at) = reader.any_batch_after(ALIGN)? {
                    return Err(corrupt(
                        &path,
                        0,
                        format!("segment header is damaged but a batch follows at offset {at}"),
                    ));
                }
                if rw {
                    vfs.remove(&path)
                        .map_err(|e| LogError::io("remove unfinished segment", &path, e))?;
                    dir_dirty = true;
                    next_seq = seq;
                }
                continue;
            }
            Ok(None) => {
                return Err(corrupt(
                    &path,
                    0,
                    "segment header missing in an older segment",
                ));
            }
            Err(e) => return Err(e),
        };
        let hdr_len = header.encoded_len();
        if header.seq != seq {
            return Err(corrupt(
                &path,
                16,
                "segment header names another sequence number",
            ));
        }
        if i == 0 {
            first_anchor = header.anchor.map(|a| (a, path.clone()));
            // the anchor is the log's head when this segment was started (an entry in a
            // deleted segment, or the purge point); the header's purge point is the base
            scan.state.last = header.anchor;
            scan.state.base = header.purged;
            scan.state.purged = header.purged;
            scan.state.meta = header.meta.clone().map(Into::into);
        } else {
            // the previous segment's last batch is followed by this one: apply it
            if let Some(p) = pending.take() {
                scan.apply(p)?;
            }
            let head = scan.state.last.or(scan.state.base);
            if header.anchor != head {
                return Err(corrupt(
                    &path,
                    32,
                    "segment does not continue the previous one",
                ));
            }
        }
        let data_start = align_up(hdr_len as u64);
        scan.state.segments.insert(
            seq,
            SegState {
                seq,
                path: path.clone(),
                file: file.clone(),
                data_start,
                end: data_start,
                max_index: None,
                min_index: None,
            },
        );
        report.segments += 1;
        let mut reader = BatchReader::new(&file, &path, data_start, flen, SCAN_CHUNK);
        loop {
            // (offset of the failure, reason, where a later valid batch could start)
            let failure = match reader.next_batch()? {
                Next::End => break,
                Next::Bad { offset, reason } => (offset, reason, offset + ALIGN),
                Next::Batch(b) => match parse_batch(&b) {
                    Ok(recs) => {
                        if let Some(p) = pending.take() {
                            scan.apply(p)?;
                        }
                        if let Some(s) = scan.state.segments.get_mut(&seq) {
                            s.end = b.end();
                        }
                        report.bytes += b.end() - b.offset;
                        pending = Some(Pending {
                            seq,
                            path: path.clone(),
                            offset: b.offset,
                            recs,
                        });
                        continue;
                    }
                    Err(reason) => (b.offset, reason, b.end()),
                },
            };
            let (offset, reason, search_from) = failure;
            if !is_last {
                return Err(corrupt(&path, offset, reason));
            }
            if let Some(after) = reader.any_batch_after(search_from)? {
                return Err(corrupt(
                    &path,
                    offset,
                    format!("{reason}, and a batch follows at offset {after}"),
                ));
            }
            torn = Some((seq, offset));
            break;
        }
    }
    // The last batch: complete unless a record in it fails its crc (a torn write).
    if let Some(p) = pending.take() {
        if p.recs.iter().all(|r| r.crc_ok) {
            scan.apply(p)?;
        } else {
            report.bytes -= scan
                .state
                .segments
                .get(&p.seq)
                .map_or(0, |s| s.end - p.offset);
            if let Some(s) = scan.state.segments.get_mut(&p.seq) {
                s.end = p.offset;
            }
            torn = Some((p.seq, p.offset));
        }
    }
    if let Some((seq, offset)) = torn {
        let seg = scan.state.segments.get(&seq);
        let path = seg.map_or_else(|| dir.join(segment_name(seq)), |s| s.path.clone());
        tracing::warn!(file = %path.display(), offset, "dropping torn last batch of the log");
        if rw {
            if let Some(s) = seg {
                zero_tail(&s.file, &s.path, offset)?;
            }
        }
        report.torn_tail = Some((path, offset));
    }
    // Interrupted redactions are completed; any other crc failure is damage.
    for (seq, path, offset) in &scan.suspects {
        let Some(intent) = scan
            .intents
            .iter()
            .find(|i| i.seq == *seq && i.record_offset == *offset)
        else {
            return Err(corrupt(path, *offset, "record checksum mismatch"));
        };
        if rw {
            if let Some(s) = scan.state.segments.get(seq) {
                apply_redaction(&s.file, &s.path, intent)?;
                report.redactions_repaired += 1;
            }
        }
    }
    // Entries before the oldest segment must have been purged: otherwise segments are missing.
    if let Some((anchor, path)) = &first_anchor {
        if scan.state.purged.is_none_or(|p| p.index < anchor.index) {
            return Err(corrupt(
                path,
                32,
                format!(
                    "older segments are missing: entries through {} were never purged but are \
                     not in the log",
                    anchor.index
                ),
            ));
        }
    }
    if rw {
        // What recovery read may sit only in the page cache (a write whose fsync failed before
        // the crash or reopen); entries appended from now on chain onto it, so make it durable
        // before anything new is acknowledged. Cheap for files with nothing dirty.
        for s in scan.state.segments.values() {
            s.file
                .sync_data()
                .map_err(|e| LogError::io("fsync recovered segment", &s.path, e))?;
        }
    }
    if dir_dirty || rw {
        vfs.sync_dir(dir)
            .map_err(|e| LogError::io("fsync log directory", dir, e))?;
    }
    if let Some(p) = scan.state.purged {
        // a purge recorded in a segment header may be older than the anchor; keep base the later
        if scan.state.base.is_none_or(|b| b.index < p.index) {
            scan.state.base = Some(p);
        }
    }
    Ok(Recovered {
        state: scan.state,
        report,
        next_seq,
    })
}
