//! [`HearthLogStore`]: openraft's [`RaftLogStorage`] on a `hearth-log` [`Log`].
//!
//! The contract is on [`HearthLogStore`].

use crate::codec::{decode_meta, decode_record, encode_entry};
use crate::error::{Result, StoreError};
use crate::types::{Entry, LogId, RaftMeta, StorageError, TypeConfig, Vote};
use crate::writer::{purge_log, Op, Shared, State, StoreWriter};
use hearth_log::{format::RECORD_HEADER_LEN, Log, LogPosition};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use parking_lot::Mutex;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Settings of a [`HearthLogStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most bytes (payloads plus the log's per-record header) the writer puts in one
    /// `Log::append`. Must not exceed the log's `LogOptions::max_batch_bytes`. Default 4 MiB.
    pub max_append_bytes: usize,
    /// How long a purge past the end of the log (openraft installing a snapshot) waits for the
    /// snapshot's chain head ([`HearthLogStore::set_snapshot_chain`]) before restarting the log
    /// from [`UNKNOWN_CHAIN`](crate::UNKNOWN_CHAIN). openraft issues that purge together with
    /// the install, which runs concurrently on the state machine's task. Default 0 (no wait);
    /// a node that wires the install hook sets it (hearth: 30 s).
    pub snapshot_chain_wait: std::time::Duration,
    /// Where purged entries go first ([`crate::archive`]): when set, a purge first appends
    /// every entry it would drop to this log, durably, and is skipped (the entries kept) when
    /// that cannot be done. `None` (the default): purged entries are gone.
    pub archive: Option<Log>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_append_bytes: 4 << 20,
            snapshot_chain_wait: std::time::Duration::ZERO,
            archive: None,
        }
    }
}

/// openraft's log storage (and log reader) on a `hearth-log` [`Log`]. Cheap to clone; clones
/// share one writer task.
///
/// # Contract (what openraft relies on, and how it holds)
///
/// * **One raft entry = one log entry**, at the same index with the same term; the payload is
///   the versioned encoding of the full log id and the entry payload ([`crate::codec`]).
/// * **Order**: every write (append, vote, truncate, purge) goes through one writer task
///   (`writer.rs`) and reaches the log in call order; none is applied before an earlier
///   one completed. (The committed log id travels alongside the next of them.)
/// * **append** returns once the entries are queued and readable (served from memory until the
///   log has them); its [`LogFlushed`] callback runs once `Log::append` resolved, i.e. the
///   entries are durable (fdatasync'd by the log's group commit).
/// * **save_vote** returns once the metadata record holding the vote is durable
///   (`Log::write_meta`), written in order with the appends before it.
/// * **save_committed** returns at once; the committed log id is written with the next write
///   and has no fsync of its own. After a crash it may be older than the last one saved, never
///   newer than what was committed.
/// * Entries at or below the last purged log id are dropped by `append` (they are covered by
///   the snapshot that allowed the purge); the rest must continue the log without a gap.
/// * **truncate(id)** removes entries with index ≥ `id.index` (`Log::truncate_from`), durably.
/// * **purge(id)** records `id` as the last purged log id in the metadata record, durably, then
///   purges the log through `id.index` (`Log::purge_through`), or, past the end of the log,
///   restarts the log after it (`Log::purge_to`, see [`HearthLogStore::set_snapshot_chain`]).
///   [`HearthLogStore::open`] finishes a purge interrupted between the two.
/// * Bytes from disk are never trusted: an entry that does not decode, or whose log id
///   disagrees with its record, is a [`StoreError::CorruptEntry`] naming the index.
///
/// Reads (`try_get_log_entries`, `get_log_state`) do blocking file IO on the caller's thread;
/// the log serves them from the page cache in the common case of recent entries.
#[derive(Debug, Clone)]
pub struct HearthLogStore {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Op>,
}

fn bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let lo = match range.start_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&x) => x.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&x) => x.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (lo <= hi).then_some((lo, hi))
}

impl HearthLogStore {
    /// Opens the store on `log` (opened read-write by the caller, used by nothing else).
    /// Decodes the metadata record and finishes a purge that a crash interrupted. Spawns the
    /// writer task on the current tokio runtime.
    pub async fn open(log: Log, opts: StoreOptions) -> Result<HearthLogStore> {
        let meta = match log.meta() {
            Some(bytes) => decode_meta(&bytes).map_err(StoreError::CorruptMeta)?,
            None => RaftMeta::default(),
        };
        reconcile_purge(&log, &meta).await?;
        let shared = Arc::new(Shared {
            log,
            state: Mutex::new(State {
                meta: meta.clone(),
                ..State::default()
            }),
            chain_set: tokio::sync::Notify::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = StoreWriter {
            shared: shared.clone(),
            rx,
            meta,
            dirty: false,
            max_append_bytes: opts.max_append_bytes,
            failed: None,
            snapshot_chain_wait: opts.snapshot_chain_wait,
            archive: opts.archive,
        };
        tokio::spawn(writer.run());
        Ok(HearthLogStore { shared, tx })
    }

    /// The underlying log (for reads, verification and metrics; writes must go through the
    /// store).
    pub fn log(&self) -> &Log {
        &self.shared.log
    }

    /// The metadata as the store currently sees it (vote as saved, committed as last given,
    /// last purged log id).
    pub fn meta(&self) -> RaftMeta {
        self.shared.state.lock().meta.clone()
    }

    /// Supplies the chain hash through a snapshot's last entry, before openraft purges the log
    /// past its end after installing that snapshot: the log then restarts chained from it, so
    /// its chain hashes stay equal to the other nodes'. Without it such a purge chains from
    /// [`UNKNOWN_CHAIN`](crate::UNKNOWN_CHAIN).
    pub fn set_snapshot_chain(&self, position: LogPosition) {
        self.shared.state.lock().snapshot_chain = Some(position);
        self.shared.chain_set.notify_waiters();
    }

    /// Writes the metadata record now if a committed log id is waiting for the next write
    /// (graceful shutdown); durable on return.
    pub async fn sync(&self) -> Result<()> {
        self.call(Op::Sync).await
    }

    /// Writes a waiting committed log id, closes the log (its writer stops after every request
    /// queued before) and ends the store's writer task; later writes through any clone fail
    /// with [`StoreError::Closed`]. The log's directory lock is released once every clone of
    /// the store (and of its log) is dropped.
    pub async fn close(self) -> Result<()> {
        self.call(Op::Close).await
    }

    async fn call(&self, op: impl FnOnce(oneshot::Sender<Result<()>>) -> Op) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx.send(op(done)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Entries with index in `[lo, hi]`: from the log below the pending ones, then pending.
    fn read(&self, lo: u64, hi: u64) -> Result<Vec<Entry>> {
        let (pending, pending_first, purged) = {
            let st = self.shared.state.lock();
            let first = st.pending.front().map(|e| e.log_id.index);
            // pending entries are consecutive: entry k has index first + k
            let pending: Vec<Entry> = match first {
                Some(f) if hi >= f => {
                    let skip = usize::try_from(lo.saturating_sub(f)).unwrap_or(usize::MAX);
                    let take =
                        usize::try_from(hi - lo.max(f)).map_or(usize::MAX, |n| n.saturating_add(1));
                    st.pending.iter().skip(skip).take(take).cloned().collect()
                }
                _ => Vec::new(),
            };
            (pending, first, st.meta.purged.map(|p| p.index))
        };
        let lo = match purged {
            Some(p) => lo.max(p.saturating_add(1)),
            None => lo,
        };
        let log_hi = match pending_first {
            Some(0) => None,
            Some(f) => Some(hi.min(f - 1)),
            None => Some(hi),
        };
        let mut out = Vec::new();
        if let Some(log_hi) = log_hi.filter(|h| lo <= *h) {
            let mut bad = None;
            self.shared.log.scan(lo..=log_hi, |rec| {
                match decode_record(&rec) {
                    Ok(e) => out.push(e),
                    Err(source) => {
                        bad = Some(StoreError::CorruptEntry {
                            index: rec.index,
                            source,
                        });
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
            if let Some(e) = bad {
                return Err(e);
            }
        }
        out.extend(pending);
        Ok(out)
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>> {
        let (pending_last, purged) = {
            let st = self.shared.state.lock();
            (st.pending.back().map(|e| e.log_id), st.meta.purged)
        };
        let last = match pending_last {
            Some(id) => Some(id),
            None => match self.shared.log.last() {
                Some(pos) => Some(self.entry_at(pos.index)?.log_id),
                None => None,
            },
        };
        let last = match (last, purged) {
            (Some(l), Some(p)) if p.index >= l.index => Some(p),
            (None, p) => p,
            (l, _) => l,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    /// The entry at `index`, which the log holds.
    fn entry_at(&self, index: u64) -> Result<Entry> {
        let recs = self.shared.log.read(index..=index)?;
        let rec = recs.first().ok_or_else(|| {
            StoreError::Inconsistent(format!("the log's last entry {index} cannot be read"))
        })?;
        decode_record(rec).map_err(|source| StoreError::CorruptEntry { index, source })
    }
}

/// Finishes a purge recorded in the metadata but not (fully) done in the log, and checks that
/// the log was not purged further than the metadata says.
async fn reconcile_purge(log: &Log, meta: &RaftMeta) -> Result<()> {
    let log_purged = log.purged();
    match (meta.purged, log_purged) {
        (None, None) => Ok(()),
        (None, Some(lp)) => Err(StoreError::Inconsistent(format!(
            "the log is purged through {} but the raft metadata records no purge",
            lp.index
        ))),
        (Some(mp), Some(lp)) if lp.index > mp.index => Err(StoreError::Inconsistent(format!(
            "the log is purged through {} but the raft metadata records a purge through {} only",
            lp.index, mp.index
        ))),
        (Some(mp), Some(lp)) if lp.index == mp.index => {
            if lp.term == mp.leader_id.term {
                Ok(())
            } else {
                Err(StoreError::Inconsistent(format!(
                    "the log is purged through {} at term {}, the raft metadata says term {}",
                    lp.index, lp.term, mp.leader_id.term
                )))
            }
        }
        (Some(mp), _) => {
            let below = log.first_index().is_some_and(|f| f <= mp.index);
            let past_end = log.last().is_none_or(|l| l.index < mp.index);
            if below || past_end {
                tracing::info!(index = mp.index, "finishing an interrupted log purge");
                purge_log(log, mp, None).await?;
            }
            Ok(())
        }
    }
}

impl RaftLogReader<TypeConfig> for HearthLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((lo, hi)) = bounds(&range) else {
            return Ok(Vec::new());
        };
        self.read(lo, hi).map_err(StoreError::reading_logs)
    }
}

impl RaftLogStorage<TypeConfig> for HearthLogStore {
    type LogReader = HearthLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.log_state().map_err(StoreError::reading_logs)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.call(|done| Op::Vote(vote, done))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.shared.state.lock().meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.shared.state.lock().meta.committed = committed;
        self.tx
            .send(Op::Committed(committed))
            .map_err(|_| StoreError::Closed.writing_logs())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.shared.state.lock().meta.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Entries at or below the purge point are already covered by the state machine's
        // snapshot: appending them again is a no-op (openraft's suite does it).
        let purged = self.shared.state.lock().meta.purged.map(|p| p.index);
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| purged.is_none_or(|p| e.log_id.index > p))
            .collect();
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        for (i, e) in entries.iter().enumerate() {
            let want = first + i as u64;
            if e.log_id.index != want {
                return Err(StoreError::NotConsecutive {
                    got: e.log_id.index,
                    expected: want,
                }
                .writing_logs());
            }
        }
        let encoded: Vec<hearth_log::Entry> = entries.iter().map(encode_entry).collect();
        let bytes = encoded
            .iter()
            .map(|e| e.payload.len() + RECORD_HEADER_LEN)
            .sum();
        let mut st = self.shared.state.lock();
        if let Some(why) = &st.failed {
            return Err(StoreError::Failed(why.clone()).writing_logs());
        }
        let expected = match st.pending.back() {
            Some(e) => Some(e.log_id.index + 1),
            None => {
                let log = &self.shared.log;
                (log.last().is_some() || log.purged().is_some()).then(|| log.next_index())
            }
        };
        if let Some(expected) = expected.filter(|x| *x != first) {
            return Err(StoreError::NotConsecutive {
                got: first,
                expected,
            }
            .writing_logs());
        }
        st.pending.extend(entries);
        self.tx
            .send(Op::Append {
                entries: encoded,
                bytes,
                flushed: callback,
            })
            .map_err(|_| StoreError::Closed.writing_logs())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let index = log_id.index;
        self.call(|done| Op::Truncate(index, done))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.call(|done| Op::Purge(log_id, done))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
