//! Reading batches and records out of one segment file.
//!
//! [`BatchReader`] walks a segment from a batch offset, reading large chunks and handing out
//! batch bodies as zero-copy `Bytes` slices; [`parse_batch`] splits a body into records and
//! checks the batch's invariant checksum. Neither decides what damage *means*: recovery and
//! the reader do.

use crate::error::{LogError, Result};
use crate::format::{
    align_up, decode_record, invariant_sum, probe_batch, BatchHeader, BatchProbe, RecordKind,
    BATCH_HEADER_LEN, RECORD_HEADER_LEN,
};
use crate::types::Hash;
use crate::vfs::VfsFile;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// A batch read from disk: its file offset, checked header and record bytes.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub offset: u64,
    pub header: BatchHeader,
    pub body: Bytes,
}

impl Batch {
    /// Offset just past this batch (aligned): where the next batch starts.
    pub fn end(&self) -> u64 {
        align_up(self.offset + (BATCH_HEADER_LEN as u64) + u64::from(self.header.body_len))
    }
}

/// What comes next in a segment.
#[derive(Debug)]
pub(crate) enum Next {
    Batch(Batch),
    /// Zeros: nothing was ever written here.
    End,
    /// Something that is not a batch, at this offset.
    Bad {
        offset: u64,
        reason: &'static str,
    },
}

/// Sequential batch reader over one segment file.
pub(crate) struct BatchReader<'a> {
    file: &'a Arc<dyn VfsFile>,
    path: &'a Path,
    pos: u64,
    limit: u64,
    chunk: usize,
    buf: Bytes,
    buf_off: u64,
}

impl<'a> BatchReader<'a> {
    /// Reads from `pos`, never past `limit` (the file length or the known end of data), in
    /// chunks of `chunk` bytes.
    pub fn new(
        file: &'a Arc<dyn VfsFile>,
        path: &'a Path,
        pos: u64,
        limit: u64,
        chunk: usize,
    ) -> Self {
        BatchReader {
            file,
            path,
            pos,
            limit,
            chunk,
            buf: Bytes::new(),
            buf_off: pos,
        }
    }

    /// The offset of the next batch.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Makes `[pos, pos+n)` available; returns false if it runs past `limit`.
    fn ensure(&mut self, pos: u64, n: usize) -> Result<bool> {
        if pos + n as u64 > self.limit {
            return Ok(false);
        }
        let have = pos >= self.buf_off && pos + n as u64 <= self.buf_off + self.buf.len() as u64;
        if have {
            return Ok(true);
        }
        let want = (n.max(self.chunk) as u64).min(self.limit - pos) as usize;
        let mut v = vec![0u8; want];
        let mut got = 0;
        while got < want {
            let r = self
                .file
                .read_at(&mut v[got..], pos + got as u64)
                .map_err(|e| LogError::io("read segment", self.path, e))?;
            if r == 0 {
                break;
            }
            got += r;
        }
        v.truncate(got);
        self.buf = Bytes::from(v);
        self.buf_off = pos;
        Ok(got >= n)
    }

    fn slice(&self, pos: u64, n: usize) -> Bytes {
        let s = (pos - self.buf_off) as usize;
        self.buf.slice(s..s + n)
    }

    /// Reads the next batch and advances past it.
    pub fn next_batch(&mut self) -> Result<Next> {
        let pos = self.pos;
        if !self.ensure(pos, BATCH_HEADER_LEN)? {
            return Ok(Next::End);
        }
        let hdr = self.slice(pos, BATCH_HEADER_LEN);
        let header = match probe_batch(&hdr) {
            BatchProbe::End => return Ok(Next::End),
            BatchProbe::Bad(reason) => {
                return Ok(Next::Bad {
                    offset: pos,
                    reason,
                })
            }
            BatchProbe::Header(h) => h,
        };
        let body_len = header.body_len as usize;
        let body_pos = pos + BATCH_HEADER_LEN as u64;
        if !self.ensure(body_pos, body_len)? {
            return Ok(Next::Bad {
                offset: pos,
                reason: "batch runs past the end of the segment",
            });
        }
        let batch = Batch {
            offset: pos,
            header,
            body: self.slice(body_pos, body_len),
        };
        self.pos = batch.end();
        Ok(Next::Batch(batch))
    }

    /// Looks for a complete, valid batch (header, checksums, every record's crc) starting at an
    /// aligned offset in `[from, limit)`: used to tell a torn tail (nothing valid after it) from
    /// damage in the middle. Payload bytes that merely look like a batch header do not count.
    pub fn any_batch_after(&mut self, from: u64) -> Result<Option<u64>> {
        let mut pos = align_up(from);
        while pos + BATCH_HEADER_LEN as u64 <= self.limit {
            if !self.ensure(pos, BATCH_HEADER_LEN)? {
                return Ok(None);
            }
            let h = self.slice(pos, BATCH_HEADER_LEN);
            if let BatchProbe::Header(bh) = probe_batch(&h) {
                let body_pos = pos + BATCH_HEADER_LEN as u64;
                if body_pos + u64::from(bh.body_len) <= self.limit
                    && self.ensure(body_pos, bh.body_len as usize)?
                {
                    let batch = Batch {
                        offset: pos,
                        header: bh,
                        body: self.slice(body_pos, bh.body_len as usize),
                    };
                    if parse_batch(&batch).is_ok_and(|recs| recs.iter().all(|r| r.crc_ok)) {
                        return Ok(Some(pos));
                    }
                }
            }
            pos += crate::format::ALIGN;
        }
        Ok(None)
    }
}

/// One record of a batch.
#[derive(Debug, Clone)]
pub(crate) struct ParsedRecord {
    pub kind: RecordKind,
    pub flags: u8,
    pub index: u64,
    pub term: u64,
    pub payload_hash: Hash,
    pub chain: Hash,
    pub payload: Bytes,
    /// File offset of the record.
    pub offset: u64,
    /// Whether the record crc matched.
    pub crc_ok: bool,
}

/// Splits a batch into records, checking structure and the invariant checksum. Record crcs are
/// checked but reported per record (`crc_ok`): a crc failure with intact invariants is either a
/// torn tail or an interrupted redaction, which the caller tells apart.
pub(crate) fn parse_batch(batch: &Batch) -> std::result::Result<Vec<ParsedRecord>, &'static str> {
    let body = &batch.body;
    let mut out = Vec::with_capacity(batch.header.count as usize);
    let mut at = 0usize;
    let mut sum = 0u32;
    while at < body.len() {
        let (raw, len, crc_ok) = decode_record(&body[at..])?;
        sum = invariant_sum(sum, &body[at..at + RECORD_HEADER_LEN]);
        out.push(ParsedRecord {
            kind: raw.kind,
            flags: raw.flags,
            index: raw.index,
            term: raw.term,
            payload_hash: raw.payload_hash,
            chain: raw.chain,
            payload: body.slice(at + RECORD_HEADER_LEN..at + len),
            offset: batch.offset + (BATCH_HEADER_LEN + at) as u64,
            crc_ok,
        });
        at += len;
    }
    if out.len() != batch.header.count as usize {
        return Err("batch record count mismatch");
    }
    if sum != batch.header.body_sum {
        return Err("batch checksum mismatch");
    }
    Ok(out)
}
