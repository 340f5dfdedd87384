//! The writer thread: group commit.
//!
//! Task: one OS thread, `hearth-log-writer`, owns all writes. It blocks for the first queued
//! request, drains every other queued request that fits into one batch, encodes them as one
//! checksummed batch, issues **one write and one `fdatasync`**, applies the batch to the shared
//! state, and only then completes every request in it. Requests take effect in queue order.
//!
//! Structural requests (truncate, purge, redact, close) always start a batch of their own, so a
//! truncation record is the first record of its batch and the index never points a reader at a
//! batch that holds entries it removed.
//!
//! A failed write or fsync poisons the log: what reached the disk is unknown, so every later
//! request fails with [`LogError::Poisoned`] until the log is reopened.

use crate::chain::chain_next;
use crate::error::{LogError, Result};
use crate::format::{
    align_up, encode_record, finish_batch_header, parse_segment_name, segment_name, RawRecord,
    RecordKind, SegmentHeader, BATCH_HEADER_LEN, FLAG_REDACTED, RECORD_HEADER_LEN,
};
use crate::log::Shared;
use crate::preparer::Preparer;
use crate::reader::scan_raw;
use crate::recovery::{apply_redaction, redacted_record, RedactIntent};
use crate::segment::ParsedRecord;
use crate::state::SegState;
use crate::types::{Durability, Entry, Hash, LogPosition, GENESIS_CHAIN};
use crate::vfs::Vfs;
use bytes::Bytes;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

/// What a request asks for.
#[derive(Debug)]
pub(crate) enum Op {
    /// Entries with their payload hashes (computed by the caller, off the writer thread).
    /// Entries, then (when given) a metadata record in the same batch.
    Append(Vec<(Entry, Hash)>, Option<Bytes>),
    /// Payloads to append at the next indexes with this term.
    AppendNext(Vec<(Bytes, Hash)>, u64),
    Meta(Bytes),
    /// Keep entries below this index.
    TruncateFrom(u64),
    PurgeThrough(u64),
    PurgeTo(LogPosition),
    Redact(u64, Range<usize>),
    Close,
}

impl Op {
    fn is_structural(&self) -> bool {
        matches!(
            self,
            Op::TruncateFrom(_) | Op::PurgeThrough(_) | Op::PurgeTo(_) | Op::Redact(..) | Op::Close
        )
    }
}

/// A queued request. Its result is the first index for appends, 0 otherwise.
#[derive(Debug)]
pub(crate) struct Request {
    pub op: Op,
    pub done: oneshot::Sender<Result<u64>>,
    pub bytes: usize,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Encoded size of a request's records.
pub(crate) fn request_bytes(op: &Op) -> usize {
    match op {
        Op::Append(es, meta) => {
            es.iter()
                .map(|(e, _)| RECORD_HEADER_LEN + e.payload.len())
                .sum::<usize>()
                + meta.as_ref().map_or(0, |m| RECORD_HEADER_LEN + m.len())
        }
        Op::AppendNext(ps, _) => ps.iter().map(|(p, _)| RECORD_HEADER_LEN + p.len()).sum(),
        Op::Meta(m) => RECORD_HEADER_LEN + m.len(),
        _ => RECORD_HEADER_LEN + 32,
    }
}

enum Post {
    DeleteSegments,
    Redact(RedactIntent),
}

/// One batch being built, with the log's head as it will be once the batch is durable.
struct Group {
    buf: Vec<u8>,
    recs: Vec<ParsedRecord>,
    count: u32,
    sum: u32,
    next: Option<u64>,
    head: Hash,
    ok: Vec<(
        oneshot::Sender<Result<u64>>,
        u64,
        Option<OwnedSemaphorePermit>,
    )>,
    post: Vec<Post>,
    close: bool,
}

impl Group {
    fn push(&mut self, rec: RawRecord<'_>) {
        let rel = self.buf.len() - BATCH_HEADER_LEN;
        encode_record(&mut self.buf, &rec, &mut self.sum);
        self.count += 1;
        // keep what applying the record to the state needs (offsets are fixed at commit)
        let payload = match rec.kind {
            RecordKind::Entry => Bytes::new(),
            _ => Bytes::copy_from_slice(rec.payload),
        };
        self.recs.push(ParsedRecord {
            kind: rec.kind,
            flags: rec.flags,
            index: rec.index,
            term: rec.term,
            payload_hash: rec.payload_hash,
            chain: rec.chain,
            payload,
            offset: rel as u64,
            crc_ok: true,
        });
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub vfs: Arc<dyn Vfs>,
    pub dir: PathBuf,
    pub segment_size: u64,
    pub durability: Durability,
    pub max_batch: usize,
    pub shared: Arc<Shared>,
    pub rx: mpsc::Receiver<Request>,
    pub preparer: Preparer,
    pub next_seq: u64,
}

impl Writer {
    /// Runs until closed or every handle is dropped.
    pub fn run(mut self) {
        let mut carry: Option<Request> = None;
        loop {
            let first = match carry.take() {
                Some(r) => r,
                None => match self.rx.blocking_recv() {
                    Some(r) => r,
                    None => return,
                },
            };
            let mut g = self.new_group();
            let structural = first.op.is_structural();
            self.process(&mut g, first);
            if !structural || !g.close {
                while g.buf.len() < self.max_batch {
                    let Ok(r) = self.rx.try_recv() else { break };
                    if r.op.is_structural() || g.buf.len() + r.bytes > self.max_batch {
                        carry = Some(r);
                        break;
                    }
                    self.process(&mut g, r);
                }
            }
            let close = g.close;
            self.commit(g);
            if close {
                self.rx.close();
                while let Ok(r) = self.rx.try_recv() {
                    let _ = r.done.send(Err(LogError::Closed));
                }
                return;
            }
        }
    }

    fn new_group(&self) -> Group {
        let st = self.shared.state.read();
        let mut buf = Vec::with_capacity(64 << 10);
        buf.resize(BATCH_HEADER_LEN, 0);
        Group {
            buf,
            recs: Vec::new(),
            count: 0,
            sum: 0,
            next: st.expected_next(),
            head: st.head_chain(),
            ok: Vec::new(),
            post: Vec::new(),
            close: false,
        }
    }

    /// The durable position of entry `index` (or the base when `index` is the base).
    fn position_of(&self, index: u64) -> Result<LogPosition> {
        if let Some(b) = self.shared.state.read().base {
            if b.index == index {
                return Ok(b);
            }
        }
        let mut found = None;
        scan_raw(&self.shared.state, index, index, &mut |rec, _| {
            found = Some(LogPosition {
                index: rec.index,
                term: rec.term,
                chain: rec.chain,
            });
            Ok(false)
        })?;
        found.ok_or_else(|| self.not_found(index))
    }

    fn not_found(&self, index: u64) -> LogError {
        let st = self.shared.state.read();
        LogError::NotFound {
            index,
            first: st.first_index(),
            last: st.last.map(|l| l.index),
        }
    }

    /// Validates and encodes one request into the group.
    fn process(&mut self, g: &mut Group, r: Request) {
        if matches!(r.op, Op::Close) {
            // closing works on a poisoned log too: it writes nothing
            g.close = true;
            g.ok.push((r.done, 0, r.permit));
            return;
        }
        if let Some(p) = self.shared.state.read().poisoned.clone() {
            let _ = r.done.send(Err(LogError::Poisoned(p)));
            return;
        }
        let Request {
            op, done, permit, ..
        } = r;
        match self.encode(g, op) {
            Ok(v) => g.ok.push((done, v, permit)),
            Err(e) => {
                let _ = done.send(Err(e));
            }
        }
    }

    fn encode(&mut self, g: &mut Group, op: Op) -> Result<u64> {
        match op {
            Op::Append(entries, meta) => {
                let first = entries.first().map_or(0, |(e, _)| e.index);
                if first.checked_add(entries.len() as u64).is_none() {
                    return Err(LogError::Invalid(format!(
                        "entries from index {first} would run past the largest index"
                    )));
                }
                if let Some(expected) = g.next {
                    if first != expected {
                        return Err(LogError::OutOfOrder {
                            got: first,
                            expected,
                        });
                    }
                }
                for (i, (e, _)) in entries.iter().enumerate() {
                    if e.index != first + i as u64 {
                        return Err(LogError::OutOfOrder {
                            got: e.index,
                            expected: first + i as u64,
                        });
                    }
                }
                for (e, h) in &entries {
                    let flags = if e.redacted_from.is_some() {
                        FLAG_REDACTED
                    } else {
                        0
                    };
                    self.push_entry(g, e.index, e.term, &e.payload, h, flags);
                }
                if let Some(m) = meta {
                    push_meta(g, &m);
                }
                Ok(first)
            }
            Op::AppendNext(payloads, term) => {
                let first = g.next.unwrap_or(0);
                if first.checked_add(payloads.len() as u64).is_none() {
                    return Err(LogError::Invalid(
                        "the log has reached the largest index".into(),
                    ));
                }
                for (i, (p, h)) in payloads.iter().enumerate() {
                    self.push_entry(g, first + i as u64, term, p, h, 0);
                }
                Ok(first)
            }
            Op::Meta(m) => {
                push_meta(g, &m);
                Ok(0)
            }
            Op::TruncateFrom(from) => self.encode_truncate(g, from),
            Op::PurgeThrough(index) => {
                let (first, last) = self.bounds();
                if first.is_none_or(|f| index < f) {
                    return Ok(0); // nothing at or below it is left
                }
                if last.is_none_or(|l| index > l.index) {
                    return Err(LogError::Invalid(format!(
                        "purge through {index} is past the last entry; use purge_to with the \
                         snapshot's position"
                    )));
                }
                let pos = self.position_of(index)?;
                self.encode_purge(g, pos);
                Ok(0)
            }
            Op::PurgeTo(pos) => {
                if pos.index == u64::MAX {
                    return Err(LogError::Invalid(
                        "cannot purge to the largest index: nothing could follow it".into(),
                    ));
                }
                let (first, last) = self.bounds();
                let base = self.shared.state.read().base;
                if base.is_some_and(|b| pos.index <= b.index) {
                    return Ok(0);
                }
                if last.is_some_and(|l| pos.index <= l.index) {
                    let have = self.position_of(pos.index)?;
                    if have != pos {
                        return Err(LogError::Invalid(format!(
                            "purge_to({}) does not match the entry the log holds there",
                            pos.index
                        )));
                    }
                }
                let _ = first;
                self.encode_purge(g, pos);
                Ok(0)
            }
            Op::Redact(index, range) => self.encode_redact(g, index, range),
            Op::Close => {
                g.close = true;
                Ok(0)
            }
        }
    }

    fn bounds(&self) -> (Option<u64>, Option<LogPosition>) {
        let st = self.shared.state.read();
        (st.first_index(), st.last)
    }

    fn push_entry(
        &mut self,
        g: &mut Group,
        index: u64,
        term: u64,
        payload: &[u8],
        h: &Hash,
        flags: u8,
    ) {
        let chain = chain_next(&g.head, index, term, h);
        g.push(RawRecord {
            kind: RecordKind::Entry,
            flags,
            index,
            term,
            payload_hash: *h,
            chain,
            payload,
        });
        g.head = chain;
        g.next = Some(index + 1);
    }

    /// Removes every entry at or after `from`.
    fn encode_truncate(&mut self, g: &mut Group, from: u64) -> Result<u64> {
        let (first, last) = self.bounds();
        let base = self.shared.state.read().base;
        let Some(last) = last else { return Ok(0) };
        if from > last.index {
            return Ok(0);
        }
        if let Some(b) = base {
            if from <= b.index {
                return Err(LogError::Invalid(format!(
                    "cannot truncate from {from}: entries through {} are purged",
                    b.index
                )));
            }
        }
        let to_genesis = base.is_none() && first.is_some_and(|f| from <= f);
        let pos = if to_genesis {
            LogPosition {
                index: 0,
                term: 0,
                chain: GENESIS_CHAIN,
            }
        } else {
            self.position_of(from - 1)?
        };
        g.push(RawRecord {
            kind: RecordKind::Truncate,
            flags: 0,
            index: pos.index,
            term: pos.term,
            payload_hash: [0; 32],
            chain: pos.chain,
            payload: if to_genesis { &[1] } else { &[0] },
        });
        g.head = pos.chain;
        g.next = (!to_genesis).then_some(from);
        Ok(0)
    }

    fn encode_purge(&mut self, g: &mut Group, pos: LogPosition) {
        let last = self.shared.state.read().last;
        g.push(RawRecord {
            kind: RecordKind::Purge,
            flags: 0,
            index: pos.index,
            term: pos.term,
            payload_hash: [0; 32],
            chain: pos.chain,
            payload: &[],
        });
        if last.is_none_or(|l| pos.index >= l.index) {
            g.head = pos.chain;
            g.next = Some(pos.index + 1);
        }
        g.post.push(Post::DeleteSegments);
    }

    fn encode_redact(&mut self, g: &mut Group, index: u64, range: Range<usize>) -> Result<u64> {
        let (first, last) = self.bounds();
        if first.is_none_or(|f| index < f) || last.is_none_or(|l| index > l.index) {
            return Err(self.not_found(index));
        }
        let mut found = None;
        scan_raw(&self.shared.state, index, index, &mut |rec, path| {
            found = Some((path.to_path_buf(), rec.offset, rec.payload.len()));
            Ok(false)
        })?;
        let (path, record_offset, len) = found.ok_or_else(|| self.not_found(index))?;
        let file = {
            let st = self.shared.state.read();
            st.segments
                .values()
                .find(|s| s.path == path)
                .map(|s| s.file.clone())
        }
        .ok_or_else(|| LogError::Invalid("entry is not in a segment file".into()))?;
        if range.start >= range.end || range.end > len {
            return Err(LogError::Invalid(format!(
                "redaction range {range:?} is not inside the payload of entry {index} \
                 ({len} bytes)"
            )));
        }
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_segment_name)
            .ok_or_else(|| LogError::Invalid("entry is not in a segment file".into()))?;
        let (range_off, range_len) = (range.start as u32, (range.end - range.start) as u32);
        let mut rec = vec![0u8; RECORD_HEADER_LEN + len];
        file.read_exact_at(&mut rec, record_offset)
            .map_err(|e| LogError::io("read record to redact", &path, e))?;
        let crc = redacted_record(&rec, range_off, range_len)
            .map(|r| crate::format::le_u32(&r[4..8]))
            .ok_or_else(|| LogError::Invalid("redaction range outside the record".into()))?;
        let intent = RedactIntent {
            seq,
            record_offset,
            range_off,
            range_len,
            crc,
        };
        g.push(RawRecord {
            kind: RecordKind::Redact,
            flags: 0,
            index,
            term: 0,
            payload_hash: [0; 32],
            chain: [0; 32],
            payload: &intent.encode(),
        });
        g.post.push(Post::Redact(intent));
        Ok(0)
    }

    fn poison(&self, what: &str, e: &LogError) {
        tracing::error!(error = %e, "log poisoned by a failed {what}");
        self.shared.state.write().poisoned = Some(format!("{what}: {e}"));
    }

    /// Writes, fsyncs, applies and completes a group.
    fn commit(&mut self, mut g: Group) {
        if g.count == 0 {
            for (done, v, _) in g.ok {
                let _ = done.send(Ok(v));
            }
            return;
        }
        let body_len = (g.buf.len() - BATCH_HEADER_LEN) as u32;
        finish_batch_header(&mut g.buf, body_len, g.count, g.sum);
        let padded = align_up(g.buf.len() as u64) as usize;
        g.buf.resize(padded, 0);
        let result = self.write_batch(&g);
        let result = result.and_then(|(seq, offset)| {
            self.apply(&mut g, seq, offset);
            self.run_post(&g)
        });
        match result {
            Ok(()) => {
                let stats = &self.shared.stats;
                let entries = g
                    .recs
                    .iter()
                    .filter(|r| r.kind == RecordKind::Entry)
                    .count();
                stats.entries.fetch_add(entries as u64, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::ENTRIES_APPENDED).increment(entries as u64);
                metrics::counter!(crate::metrics::BATCHES).increment(1);
                metrics::counter!(crate::metrics::BYTES_WRITTEN).increment(g.buf.len() as u64);
                metrics::histogram!(crate::metrics::BATCH_RECORDS).record(f64::from(g.count));
                metrics::histogram!(crate::metrics::BATCH_BYTES).record(g.buf.len() as f64);
                for (done, v, _) in g.ok {
                    let _ = done.send(Ok(v));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let mut first = Some(e);
                for (done, _, _) in g.ok {
                    let err = first
                        .take()
                        .unwrap_or_else(|| LogError::Poisoned(msg.clone()));
                    let _ = done.send(Err(err));
                }
            }
        }
    }

    /// Rotates if needed, writes the batch and fsyncs. Returns where it went.
    fn write_batch(&mut self, g: &Group) -> Result<(u64, u64)> {
        let active = {
            let st = self.shared.state.read();
            st.segments
                .values()
                .next_back()
                .map(|s| (s.seq, s.end, s.file.clone(), s.path.clone()))
        };
        let (seq, offset, file, path, wrote) = match active {
            Some((seq, end, file, path)) if end + g.buf.len() as u64 <= self.segment_size => {
                let r = file.write_all_at(&g.buf, end);
                (seq, end, file, path, r)
            }
            _ => {
                let (seq, file, path, data_start) = self.rotate()?;
                let r = file.write_all_at(&g.buf, data_start);
                (seq, data_start, file, path, r)
            }
        };
        if let Err(e) = wrote {
            let e = LogError::io("write batch", &path, e);
            self.poison("write", &e);
            return Err(e);
        }
        if self.durability == Durability::SyncData {
            let started = std::time::Instant::now();
            if let Err(e) = file.sync_data() {
                let e = LogError::io("fdatasync segment", &path, e);
                self.poison("fsync", &e);
                return Err(e);
            }
            metrics::histogram!(crate::metrics::FSYNC_SECONDS)
                .record(started.elapsed().as_secs_f64());
            self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        self.shared
            .stats
            .bytes
            .fetch_add(g.buf.len() as u64, Ordering::Relaxed);
        Ok((seq, offset))
    }

    /// Puts a prepared segment in place (rename + directory fsync), writes its header and
    /// fsyncs it **before** any batch goes in: a torn header can then only belong to a segment
    /// that holds nothing acknowledged. Registers the segment; returns where batches start.
    fn rotate(&mut self) -> Result<(u64, Arc<dyn crate::vfs::VfsFile>, PathBuf, u64)> {
        let fail = |this: &Self, what: &str, e: LogError| {
            this.poison(what, &e);
            e
        };
        let seq = self.next_seq;
        let path = self.dir.join(segment_name(seq));
        self.preparer
            .take_to(&path)
            .map_err(|e| fail(self, "segment preparation", e))?;
        self.vfs.sync_dir(&self.dir).map_err(|e| {
            fail(
                self,
                "directory fsync",
                LogError::io("fsync log directory", &self.dir, e),
            )
        })?;
        let file = self
            .vfs
            .open(&path)
            .map_err(|e| fail(self, "open", LogError::io("open segment", &path, e)))?;
        self.next_seq += 1;
        let header = {
            let st = self.shared.state.read();
            SegmentHeader {
                seq,
                anchor: st.last.or(st.base),
                purged: st.purged,
                meta: st.meta.as_ref().map(|m| m.to_vec()),
            }
            .encode()
        };
        file.write_all_at(&header, 0).map_err(|e| {
            fail(
                self,
                "write",
                LogError::io("write segment header", &path, e),
            )
        })?;
        if self.durability == Durability::SyncData {
            file.sync_data().map_err(|e| {
                fail(
                    self,
                    "fsync",
                    LogError::io("fdatasync segment header", &path, e),
                )
            })?;
            self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        let data_start = align_up(header.len() as u64);
        self.shared
            .stats
            .bytes
            .fetch_add(data_start, Ordering::Relaxed);
        self.shared.state.write().segments.insert(
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
        self.shared.stats.rotations.fetch_add(1, Ordering::Relaxed);
        Ok((seq, file, path, data_start))
    }

    fn apply(&self, g: &mut Group, seq: u64, offset: u64) {
        let mut st = self.shared.state.write();
        for rec in &mut g.recs {
            rec.offset += offset + BATCH_HEADER_LEN as u64;
            st.apply(seq, offset, rec);
        }
        if let Some(s) = st.segments.get_mut(&seq) {
            s.end = offset + g.buf.len() as u64;
            if s.end >= self.segment_size / 4 {
                // start preparing the next segment: early enough that it is ready when this
                // one fills, late enough not to compete with appends for nothing
                self.preparer.request();
            }
        }
    }

    fn run_post(&self, g: &Group) -> Result<()> {
        for p in &g.post {
            match p {
                Post::DeleteSegments => {
                    let seqs = self.shared.state.read().purgeable_segments();
                    if seqs.is_empty() {
                        continue;
                    }
                    for seq in &seqs {
                        let path = self.dir.join(segment_name(*seq));
                        if let Err(e) = self.vfs.remove(&path) {
                            let e = LogError::io("remove purged segment", &path, e);
                            self.poison("unlink", &e);
                            return Err(e);
                        }
                    }
                    if let Err(e) = self.vfs.sync_dir(&self.dir) {
                        let e = LogError::io("fsync log directory", &self.dir, e);
                        self.poison("directory fsync", &e);
                        return Err(e);
                    }
                    self.shared.state.write().forget_segments(&seqs);
                }
                Post::Redact(intent) => {
                    let seg = self
                        .shared
                        .state
                        .read()
                        .segments
                        .get(&intent.seq)
                        .map(|s| (s.file.clone(), s.path.clone()));
                    let Some((file, path)) = seg else { continue };
                    let _guard = self.shared.redact_lock.write();
                    if let Err(e) = apply_redaction(&file, &path, intent) {
                        self.poison("redaction", &e);
                        return Err(e);
                    }
                    self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

/// Adds a metadata record to the group.
fn push_meta(g: &mut Group, meta: &[u8]) {
    g.push(RawRecord {
        kind: RecordKind::Meta,
        flags: 0,
        index: 0,
        term: 0,
        payload_hash: [0; 32],
        chain: [0; 32],
        payload: meta,
    });
}
