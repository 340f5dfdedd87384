//! Audit phase 3 and `hearth replay`: [`rebuild`] folds the log from its first entry into a
//! fresh projection store, up to a point ([`Until`]); [`rebuild_onto`] folds it into a signed
//! snapshot's state from the entry after it.
//!
//! Three threads: a reader scans the log and maps each record to the runtime's
//! [`CommittedEntry`] exactly as the raft state machine does
//! ([`hearth_raft::committed_entry_of_record`]: normal, batch, blank, membership, redacted),
//! handing chunks over a small bounded queue; the caller's thread folds them with
//! [`ProjectionStore::rebuild`] / [`ProjectionStore::apply_all`], whose writer thread writes
//! each folded batch while the next one is folded. Memory: a few chunks of entries, two
//! batches' writes, plus RocksDB's memtables.
//!
//! Not here: where the rebuilt store goes afterwards (the audit compares and drops it, replay
//! keeps it) and checking the chain (the caller picks the [`Verification`] level).

use super::offline::{not_a_raft_entry, scan_history};
use super::progress::Tick;
use anyhow::Context as _;
use hearth_log::{Log, LogPosition, Verification};
use hearth_projections::{CommittedEntry, EntryData, Projection, ProjectionStore};
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

/// Entries per chunk handed from the reader to the applier.
const CHUNK: usize = 1024;
/// Chunks queued between them.
const QUEUE: usize = 4;

/// How far to rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Through this log index (inclusive).
    Index(u64),
    /// Through the last entry after which the log time (the max of the events'
    /// `proposed_at_unix_ms` so far, as the projections define it) is at most this, Unix ms.
    LogTime(u64),
    /// Through the log's last entry.
    End,
}

/// A rebuilt store and what went into it.
#[derive(Debug)]
pub struct Rebuilt {
    /// The store (flushed).
    pub store: ProjectionStore,
    /// Entries applied.
    pub entries: u64,
    /// Events among them.
    pub events: u64,
    /// The last entry applied (its chain hash is the log's head at that point).
    pub last: Option<LogPosition>,
    /// Log time after the last entry (the store's), Unix ms.
    pub log_time_ms: u64,
    /// Wall time, seconds.
    pub secs: f64,
}

/// What the reader saw.
#[derive(Default)]
struct ReadOut {
    entries: u64,
    events: u64,
    last: Option<LogPosition>,
    /// Log time so far (kept only when stopping at a log time).
    log_time_ms: u64,
}

/// Rebuilds `projections` from the first entry of `log` into `dir` (missing or empty) up to
/// `until`, checking each record at `level`.
pub fn rebuild(
    log: &Log,
    dir: &Path,
    projections: Vec<Arc<dyn Projection>>,
    until: Until,
    level: Verification,
    tick: Tick<'_>,
) -> anyhow::Result<Rebuilt> {
    rebuild_from(&[log], dir, projections, until, level, tick)
}

/// [`rebuild`] from `logs` read one after the other as one history (an archive of purged
/// entries, then the live log); each from after the previous one's last entry.
pub fn rebuild_from(
    logs: &[&Log],
    dir: &Path,
    projections: Vec<Arc<dyn Projection>>,
    until: Until,
    level: Verification,
    tick: Tick<'_>,
) -> anyhow::Result<Rebuilt> {
    fold(logs, 0, 0, until, level, tick, |entries| {
        ProjectionStore::rebuild(dir, projections, entries)
            .with_context(|| format!("rebuild the projections in {}", dir.display()))
    })
}

/// Like [`rebuild_from`], onto `store` — a snapshot's state — instead of an empty store: the
/// entries of `logs` after the index it has applied are folded into it, up to `until`.
pub fn rebuild_onto(
    logs: &[&Log],
    store: ProjectionStore,
    until: Until,
    level: Verification,
    tick: Tick<'_>,
) -> anyhow::Result<Rebuilt> {
    let from = store.applied().map_or(0, |(index, _)| index + 1);
    let log_time = store.log_time_ms();
    let path = store.path().to_path_buf();
    fold(logs, from, log_time, until, level, tick, move |entries| {
        store
            .apply_all(entries)
            .with_context(|| format!("fold the log into {}", path.display()))?;
        Ok(store)
    })
}

/// Reads `logs` from index `from` on a reader thread (log time so far `log_time_ms`) and
/// hands their entries to `apply` on this one.
fn fold(
    logs: &[&Log],
    from: u64,
    log_time_ms: u64,
    until: Until,
    level: Verification,
    tick: Tick<'_>,
    apply: impl FnOnce(&mut dyn Iterator<Item = CommittedEntry>) -> anyhow::Result<ProjectionStore>,
) -> anyhow::Result<Rebuilt> {
    let start = Instant::now();
    let hi = match until {
        Until::Index(i) => i,
        Until::LogTime(_) | Until::End => u64::MAX,
    };
    let (tx, rx) = sync_channel::<Vec<CommittedEntry>>(QUEUE);
    let (store, read) = std::thread::scope(|s| {
        let reader = s.spawn(move || read(logs, from, log_time_ms, hi, until, level, tx));
        let mut entries = rx.into_iter().flat_map(|chunk| {
            tick(chunk.len() as u64);
            chunk
        });
        let store = apply(&mut entries);
        drop(entries);
        // The receiver is gone now: a reader still sending stops.
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the log reader panicked")));
        (store, read)
    });
    let read = read?;
    let store = store?;
    Ok(Rebuilt {
        log_time_ms: store.log_time_ms(),
        store,
        entries: read.entries,
        events: read.events,
        last: read.last,
        secs: start.elapsed().as_secs_f64(),
    })
}

fn read(
    logs: &[&Log],
    from: u64,
    log_time_ms: u64,
    hi: u64,
    until: Until,
    level: Verification,
    tx: std::sync::mpsc::SyncSender<Vec<CommittedEntry>>,
) -> anyhow::Result<ReadOut> {
    let mut out = ReadOut {
        log_time_ms,
        ..ReadOut::default()
    };
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut failed: Option<anyhow::Error> = None;
    let mut stopped = false;
    scan_history(logs, from, hi, level, |rec| {
        let entry = match hearth_raft::committed_entry_of_record(&rec) {
            Ok(entry) => entry,
            Err(e) => {
                failed = Some(not_a_raft_entry(rec.index, e));
                return Ok(false);
            }
        };
        if let Until::LogTime(limit) = until {
            let time = log_time_after(out.log_time_ms, &entry.payload);
            if time > limit {
                return Ok(false);
            }
            out.log_time_ms = time;
        }
        out.entries += 1;
        out.events += match &entry.payload {
            EntryData::Event(_) => 1,
            EntryData::Batch(events) => events.len() as u64,
            EntryData::Other => 0,
        };
        out.last = Some(LogPosition {
            index: rec.index,
            term: rec.term,
            chain: rec.chain,
        });
        chunk.push(entry);
        if chunk.len() == CHUNK && tx.send(std::mem::take(&mut chunk)).is_err() {
            stopped = true;
            return Ok(false);
        }
        Ok(true)
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !stopped && !chunk.is_empty() {
        let _ = tx.send(chunk); // a failed send means the applier failed: it reports that
    }
    Ok(out)
}

/// The log time after an entry, as the runtime computes it: the max of the log time so far
/// and the `proposed_at_unix_ms` of every event that decodes.
fn log_time_after(so_far: u64, payload: &EntryData) -> u64 {
    let of = |bytes: &[u8]| {
        hearth_proto::decode_envelope(bytes).map_or(0, |env| env.proposed_at_unix_ms)
    };
    match payload {
        EntryData::Event(e) => so_far.max(of(e)),
        EntryData::Batch(events) => events.iter().map(|e| of(e)).fold(so_far, u64::max),
        EntryData::Other => so_far,
    }
}
