//! Reading live entries through the sparse index, with optional chain verification.
//!
//! A read takes the state lock only to look up index points and segment handles, never while
//! it does IO, so long scans do not stall the writer. A read that races a truncation or purge
//! of the same range may see either side of it; raft never does that.

use crate::chain::{chain_next, payload_hash};
use crate::error::{LogError, Result};
use crate::format::{RecordKind, FLAG_REDACTED};
use crate::segment::{parse_batch, BatchReader, Next, ParsedRecord};
use crate::state::State;
use crate::types::{Hash, Record, GENESIS_CHAIN};
use parking_lot::RwLock;
use std::path::{Path, PathBuf};

/// Chunk size for short reads and for scans.
const SMALL_CHUNK: usize = 64 << 10;
const LARGE_CHUNK: usize = 1 << 20;

impl ParsedRecord {
    pub(crate) fn to_record(&self) -> Record {
        Record {
            index: self.index,
            term: self.term,
            payload: self.payload.clone(),
            payload_hash: self.payload_hash,
            chain: self.chain,
            redacted: self.flags & FLAG_REDACTED != 0,
        }
    }
}

/// Where to scan from: a point and the bounds of its run.
struct Run {
    seq: u64,
    offset: u64,
    /// The next point's index (entries from here on belong to the next run).
    next: u64,
    file: std::sync::Arc<dyn crate::vfs::VfsFile>,
    path: PathBuf,
    end: u64,
}

fn find_run(state: &RwLock<State>, index: u64) -> Result<Run> {
    let st = state.read();
    let k = st.points.partition_point(|p| p.index <= index);
    if k == 0 {
        return Err(LogError::NotFound {
            index,
            first: st.first_index(),
            last: st.last.map(|l| l.index),
        });
    }
    let p = st.points[k - 1];
    let next = st.points.get(k).map_or(u64::MAX, |n| n.index);
    let seg = st.segments.get(&p.seq).ok_or_else(|| LogError::Corrupt {
        file: PathBuf::from(crate::format::segment_name(p.seq)),
        offset: p.offset,
        reason: "index points into a missing segment".into(),
    })?;
    Ok(Run {
        seq: p.seq,
        offset: p.offset,
        next,
        file: seg.file.clone(),
        path: seg.path.clone(),
        end: seg.end,
    })
}

/// Calls `f` with every live entry in `[lo, hi]` in order, each checked against its crc. `f`
/// returns whether to go on.
pub(crate) fn scan_raw(
    state: &RwLock<State>,
    lo: u64,
    hi: u64,
    f: &mut dyn FnMut(&ParsedRecord, &Path) -> Result<bool>,
) -> Result<()> {
    let mut cur = lo;
    let chunk = if hi - lo > 256 {
        LARGE_CHUNK
    } else {
        SMALL_CHUNK
    };
    while cur <= hi {
        let run = find_run(state, cur)?;
        let mut reader = BatchReader::new(&run.file, &run.path, run.offset, run.end, chunk);
        'run: loop {
            match reader.next_batch()? {
                Next::End => break 'run,
                Next::Bad { offset, reason } => {
                    return Err(LogError::Corrupt {
                        file: run.path.clone(),
                        offset,
                        reason: reason.into(),
                    })
                }
                Next::Batch(b) => {
                    let recs = parse_batch(&b).map_err(|reason| LogError::Corrupt {
                        file: run.path.clone(),
                        offset: b.offset,
                        reason: reason.into(),
                    })?;
                    for rec in &recs {
                        if rec.kind != RecordKind::Entry || rec.index < cur {
                            continue;
                        }
                        if rec.index >= run.next {
                            break 'run;
                        }
                        if rec.index != cur {
                            return Err(LogError::Corrupt {
                                file: run.path.clone(),
                                offset: rec.offset,
                                reason: format!("expected index {cur}, found {}", rec.index),
                            });
                        }
                        if !rec.crc_ok {
                            return Err(LogError::Corrupt {
                                file: run.path.clone(),
                                offset: rec.offset,
                                reason: format!("record checksum mismatch (index {cur})"),
                            });
                        }
                        if !f(rec, &run.path)? {
                            return Ok(());
                        }
                        cur += 1;
                        if cur > hi {
                            return Ok(());
                        }
                    }
                }
            }
        }
        if run.next == u64::MAX || run.next > cur {
            // the run ended (segment end or next point) before the entry we need
            let st = state.read();
            if st.last.is_some_and(|l| cur > l.index) {
                return Ok(());
            }
            return Err(LogError::Corrupt {
                file: run.path.clone(),
                offset: reader.pos(),
                reason: format!("entry {cur} missing: segment {} ends before it", run.seq),
            });
        }
    }
    Ok(())
}

/// Clamps a requested range to the live entries: `None` if nothing is in it.
pub(crate) fn clamp(state: &RwLock<State>, lo: u64, hi: u64) -> Option<(u64, u64)> {
    let st = state.read();
    let first = st.first_index()?;
    let last = st.last?.index;
    let lo = lo.max(first);
    let hi = hi.min(last);
    (lo <= hi).then_some((lo, hi))
}

/// Like [`scan_raw`] but also recomputes the chain and, with `rehash`, every unredacted
/// payload hash.
pub(crate) fn scan_verified(
    state: &RwLock<State>,
    lo: u64,
    hi: u64,
    rehash: bool,
    f: &mut dyn FnMut(&ParsedRecord, &Path) -> Result<bool>,
) -> Result<()> {
    let (first, base) = {
        let st = state.read();
        (st.first_index(), st.base)
    };
    let mut prev: Option<Hash> = None;
    let start = if Some(lo) == first {
        prev = Some(base.map_or(GENESIS_CHAIN, |b| b.chain));
        lo
    } else {
        lo - 1
    };
    scan_raw(state, start, hi, &mut |rec, path| {
        let Some(p) = prev else {
            prev = Some(rec.chain);
            return Ok(true);
        };
        let expect = chain_next(&p, rec.index, rec.term, &rec.payload_hash);
        if expect != rec.chain {
            return Err(LogError::ChainBroken {
                index: rec.index,
                file: path.to_path_buf(),
                offset: rec.offset,
                reason: "chain hash does not follow from the previous entry".into(),
            });
        }
        if rehash
            && rec.flags & FLAG_REDACTED == 0
            && payload_hash(&rec.payload) != rec.payload_hash
        {
            return Err(LogError::ChainBroken {
                index: rec.index,
                file: path.to_path_buf(),
                offset: rec.offset,
                reason: "payload does not match its hash".into(),
            });
        }
        prev = Some(rec.chain);
        f(rec, path)
    })
}
