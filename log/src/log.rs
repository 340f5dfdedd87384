//! [`Log`]: the handle applications use; it queues writes to the writer thread and reads
//! through the shared state.

use crate::chain::payload_hash;
use crate::error::{LogError, Result};
use crate::format::{
    LOCK_NAME, MAX_META_LEN, MIN_SEGMENT_SIZE, PREPARED_NAME, SEGMENT_HEADER_FIXED,
};
use crate::preparer::Preparer;
use crate::reader::{clamp, scan_raw, scan_verified};
use crate::recovery::recover;
use crate::state::State;
use crate::types::{Entry, LogOptions, LogPosition, LogStats, Record, Verification, VerifyReport};
use crate::vfs::{StdVfs, Vfs};
use crate::writer::{request_bytes, Op, Request, Writer};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::ops::{Bound, Range, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// How to open a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Recover (dropping a torn tail on disk), lock the directory, start the writer.
    ReadWrite,
    /// Scan and read only: nothing on disk is changed and writes fail. For `log verify`/`dump`.
    ReadOnly,
}

/// What recovery found when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files found.
    pub segments: u64,
    /// Bytes of batches recovered.
    pub bytes: u64,
    /// A torn last batch that was (read-write) or would be (read-only) dropped: file, offset.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Redactions interrupted by a crash and completed at open.
    pub redactions_repaired: u64,
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number.
    pub seq: u64,
    /// File path.
    pub path: PathBuf,
    /// Bytes used (header and batches).
    pub bytes: u64,
    /// Largest entry index physically in it.
    pub max_index: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub entries: AtomicU64,
    pub batches: AtomicU64,
    pub fsyncs: AtomicU64,
    pub bytes: AtomicU64,
    pub rotations: AtomicU64,
}

/// State shared by handles, readers and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: RwLock<State>,
    /// Readers hold it shared while reading (recursively, so a scan callback may read again
    /// while a redaction waits); a redaction's in-place rewrite holds it exclusive.
    pub redact_lock: RwLock<()>,
    pub stats: Stats,
}

struct Inner {
    dir: PathBuf,
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Request>>,
    bytes: Arc<Semaphore>,
    queue_bytes: usize,
    max_batch: usize,
    enqueue_timeout: Option<std::time::Duration>,
    thread: Mutex<Option<JoinHandle<()>>>,
    report: RecoveryReport,
    _lock: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("dir", &self.dir).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// The write-ahead log. Cheap to clone; all clones share one writer. Dropping the last clone
/// stops the writer after the requests already queued (use [`Log::close`] to wait for it).
#[derive(Debug, Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

fn bounds(range: impl RangeBounds<u64>) -> (u64, u64) {
    let lo = match range.start_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&0) => return (1, 0),
        Bound::Excluded(&x) => x - 1,
        Bound::Unbounded => u64::MAX,
    };
    (lo, hi)
}

impl Log {
    /// Opens (creating if needed) the log in `dir` read-write on the real file system.
    pub fn open(dir: impl AsRef<Path>, opts: LogOptions) -> Result<Log> {
        Self::open_with(dir, opts, OpenMode::ReadWrite, Arc::new(StdVfs))
    }

    /// Opens an existing log read-only: nothing on disk changes, writes fail.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Log> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(LogError::Unusable {
                path: dir.to_path_buf(),
                reason: "no such directory".into(),
            });
        }
        Self::open_with(
            dir,
            LogOptions::default(),
            OpenMode::ReadOnly,
            Arc::new(StdVfs),
        )
    }

    /// Opens a log on any [`Vfs`] (tests use the fault-injecting `SimVfs`).
    pub fn open_with(
        dir: impl AsRef<Path>,
        opts: LogOptions,
        mode: OpenMode,
        vfs: Arc<dyn Vfs>,
    ) -> Result<Log> {
        let dir = dir.as_ref().to_path_buf();
        if opts.segment_size < MIN_SEGMENT_SIZE {
            return Err(LogError::Invalid(format!(
                "segment size {} is below the minimum {MIN_SEGMENT_SIZE}",
                opts.segment_size
            )));
        }
        let header_room = (SEGMENT_HEADER_FIXED + MAX_META_LEN + 8) as u64;
        let max_batch = (opts.max_batch_bytes as u64)
            .min(opts.segment_size.saturating_sub(header_room + 64))
            .max(1024) as usize;
        let lock = if mode == OpenMode::ReadWrite {
            vfs.create_dir_all(&dir)
                .map_err(|e| LogError::io("create log directory", &dir, e))?;
            let lock = vfs
                .lock(&dir.join(LOCK_NAME))
                .map_err(|e| LogError::Unusable {
                    path: dir.clone(),
                    reason: format!("cannot lock it (is another hearth process using it?): {e}"),
                })?;
            Some(lock)
        } else {
            None
        };
        let rec = recover(&vfs, &dir, opts.segment_size, mode)?;
        let shared = Arc::new(Shared {
            state: RwLock::new(rec.state),
            redact_lock: RwLock::new(()),
            stats: Stats::default(),
        });
        let mut inner = Inner {
            dir: dir.clone(),
            shared: shared.clone(),
            tx: None,
            bytes: Arc::new(Semaphore::new(opts.queue_bytes.max(max_batch))),
            queue_bytes: opts.queue_bytes.max(max_batch),
            max_batch,
            enqueue_timeout: opts.enqueue_timeout,
            thread: Mutex::new(None),
            report: rec.report,
            _lock: lock.flatten(),
        };
        if mode == OpenMode::ReadWrite {
            let (tx, rx) = mpsc::channel(opts.queue_requests.max(1));
            let have_prepared = vfs.exists(&dir.join(PREPARED_NAME));
            let preparer = Preparer::start(
                vfs.clone(),
                dir.clone(),
                opts.segment_size,
                opts.prepare_in_background,
                have_prepared,
            );
            let writer = Writer {
                vfs,
                dir,
                segment_size: opts.segment_size,
                durability: opts.durability,
                max_batch,
                shared,
                rx,
                preparer,
                next_seq: rec.next_seq,
            };
            let t = std::thread::Builder::new()
                .name("hearth-log-writer".into())
                .spawn(move || writer.run())
                .map_err(|e| LogError::io("spawn writer thread", &inner.dir, e))?;
            inner.tx = Some(tx);
            *inner.thread.lock() = Some(t);
        }
        Ok(Log {
            inner: Arc::new(inner),
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// What recovery found at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    async fn submit(&self, op: Op) -> Result<u64> {
        let tx = self
            .inner
            .tx
            .as_ref()
            .ok_or_else(|| LogError::Invalid("the log is open read-only".into()))?;
        let bytes = request_bytes(&op);
        if bytes > self.inner.max_batch {
            return Err(LogError::TooLarge {
                what: "request",
                size: bytes as u64,
                limit: self.inner.max_batch as u64,
            });
        }
        let permits = bytes.min(self.inner.queue_bytes) as u32;
        let (done, rx) = oneshot::channel();
        let enqueue = async {
            let permit = self
                .inner
                .bytes
                .clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|_| LogError::Closed)?;
            tx.send(Request {
                op,
                done,
                bytes,
                permit: Some(permit),
            })
            .await
            .map_err(|_| LogError::Closed)
        };
        match self.inner.enqueue_timeout {
            None => enqueue.await?,
            Some(t) => {
                tokio::time::timeout(t, enqueue)
                    .await
                    .map_err(|_| LogError::QueueFull {
                        waited_ms: t.as_millis() as u64,
                    })??
            }
        }
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// Appends entries; they must continue the log (`entries[0].index == next_index()`, except
    /// on a fresh log) and be consecutive. Resolves once they are durable.
    pub async fn append(&self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.submit(Op::Append(with_hashes(entries), None))
            .await
            .map(|_| ())
    }

    /// [`append`](Self::append) and [`write_meta`](Self::write_meta) as **one** request: the
    /// entries and then the metadata record go into the same batch, so they cost one write and
    /// one `fdatasync` and become durable together (two separate calls made at once may be
    /// taken apart by the writer and pay for two). Resolves once both are durable.
    pub async fn append_with_meta(&self, entries: Vec<Entry>, meta: Bytes) -> Result<()> {
        if meta.len() > MAX_META_LEN {
            return Err(LogError::TooLarge {
                what: "metadata",
                size: meta.len() as u64,
                limit: MAX_META_LEN as u64,
            });
        }
        if entries.is_empty() {
            return self.write_meta(meta).await;
        }
        self.submit(Op::Append(with_hashes(entries), Some(meta)))
            .await
            .map(|_| ())
    }

    /// Appends payloads at the next indexes (assigned by the writer, so concurrent callers
    /// never collide). Resolves with the first index once durable.
    pub async fn append_next(&self, term: u64, payloads: Vec<Bytes>) -> Result<u64> {
        if payloads.is_empty() {
            return Err(LogError::Invalid("append_next with no payloads".into()));
        }
        let hashed = payloads
            .into_iter()
            .map(|p| {
                let h = payload_hash(&p);
                (p, h)
            })
            .collect();
        self.submit(Op::AppendNext(hashed, term)).await
    }

    /// Writes the metadata record (for raft: the vote), in order with appends; durable on return.
    pub async fn write_meta(&self, meta: Bytes) -> Result<()> {
        if meta.len() > MAX_META_LEN {
            return Err(LogError::TooLarge {
                what: "metadata",
                size: meta.len() as u64,
                limit: MAX_META_LEN as u64,
            });
        }
        self.submit(Op::Meta(meta)).await.map(|_| ())
    }

    /// Removes every entry after `index` (keeps `index`); durable on return.
    pub async fn truncate_after(&self, index: u64) -> Result<()> {
        match index.checked_add(1) {
            Some(from) => self.truncate_from(from).await,
            None => Ok(()),
        }
    }

    /// Removes every entry at or after `index` (raft's inclusive truncate); durable on return.
    /// Removing every entry of a log that was never purged makes it fresh again (any index may
    /// start it); entries at or below a purge point cannot be removed.
    pub async fn truncate_from(&self, index: u64) -> Result<()> {
        self.submit(Op::TruncateFrom(index)).await.map(|_| ())
    }

    /// Purges entries through `index` (which must not be past the last entry); the log durably
    /// remembers the purged position, reads start after it, and whole segments are deleted.
    pub async fn purge_through(&self, index: u64) -> Result<()> {
        self.submit(Op::PurgeThrough(index)).await.map(|_| ())
    }

    /// Purges through `position`, which may be past the last entry (after installing a
    /// snapshot): the log then restarts at `position.index + 1`, chaining from its hash.
    pub async fn purge_to(&self, position: LogPosition) -> Result<()> {
        self.submit(Op::PurgeTo(position)).await.map(|_| ())
    }

    /// Zeroes `range` of entry `index`'s payload in place. The record is flagged redacted, its
    /// crc rewritten and fsynced; its payload hash is kept, so the chain still verifies.
    pub async fn redact(&self, index: u64, range: Range<usize>) -> Result<()> {
        self.submit(Op::Redact(index, range)).await.map(|_| ())
    }

    /// Stops the writer after every request queued before it, and waits for it.
    pub async fn close(self) -> Result<()> {
        if self.inner.tx.is_some() {
            match self.submit(Op::Close).await {
                Ok(_) | Err(LogError::Closed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Live entries in `range` (clamped to what the log holds), each checked against its crc.
    /// Blocking file IO: call from a blocking context for large ranges.
    pub fn read(&self, range: impl RangeBounds<u64>) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.scan(range, |r| {
            out.push(r);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `f` on each live entry in `range` in order (crc-checked); `f` returns whether to
    /// go on.
    pub fn scan(
        &self,
        range: impl RangeBounds<u64>,
        f: impl FnMut(Record) -> Result<bool>,
    ) -> Result<()> {
        self.scan_with(range, Verification::Crc, f)
    }

    /// Like [`Log::scan`], and also recomputes every chain hash and unredacted payload hash.
    pub fn scan_verified(
        &self,
        range: impl RangeBounds<u64>,
        f: impl FnMut(Record) -> Result<bool>,
    ) -> Result<()> {
        self.scan_with(range, Verification::Full, f)
    }

    /// Calls `f` on each live entry in `range` in order after the checks `level` names; the
    /// first failed check is an error naming file and offset. `f` returns whether to go on.
    /// Blocking file IO.
    pub fn scan_with(
        &self,
        range: impl RangeBounds<u64>,
        level: Verification,
        mut f: impl FnMut(Record) -> Result<bool>,
    ) -> Result<()> {
        let (lo, hi) = bounds(range);
        let Some((lo, hi)) = clamp(&self.inner.shared.state, lo, hi) else {
            return Ok(());
        };
        let _g = self.inner.shared.redact_lock.read_recursive();
        let state = &self.inner.shared.state;
        let mut cb = |r: &crate::segment::ParsedRecord, _: &Path| f(r.to_record());
        match level {
            Verification::Crc => scan_raw(state, lo, hi, &mut cb),
            Verification::Chain => scan_verified(state, lo, hi, false, &mut cb),
            Verification::Full => scan_verified(state, lo, hi, true, &mut cb),
        }
    }

    /// Checks every record's crc, the chain and every unredacted payload hash in `range`.
    pub fn verify(&self, range: impl RangeBounds<u64>) -> Result<VerifyReport> {
        let mut rep = VerifyReport::default();
        let (lo, hi) = bounds(range);
        if let Some((lo, hi)) = clamp(&self.inner.shared.state, lo, hi) {
            let _g = self.inner.shared.redact_lock.read_recursive();
            scan_verified(&self.inner.shared.state, lo, hi, true, &mut |r, _| {
                let pos = LogPosition {
                    index: r.index,
                    term: r.term,
                    chain: r.chain,
                };
                rep.first.get_or_insert(pos);
                rep.last = Some(pos);
                rep.entries += 1;
                if r.flags & crate::format::FLAG_REDACTED != 0 {
                    rep.redacted += 1;
                }
                Ok(true)
            })?;
        }
        let st = self.inner.shared.state.read();
        rep.segments = st.segments.len() as u64;
        rep.bytes = st.segments.values().map(|s| s.end - s.data_start).sum();
        Ok(rep)
    }

    /// The first live index, if any entry is live.
    pub fn first_index(&self) -> Option<u64> {
        self.inner.shared.state.read().first_index()
    }

    /// The last live entry.
    pub fn last(&self) -> Option<LogPosition> {
        self.inner.shared.state.read().last
    }

    /// The index the next append must start with (0 on a fresh log, which accepts any index).
    pub fn next_index(&self) -> u64 {
        self.inner.shared.state.read().expected_next().unwrap_or(0)
    }

    /// The last purged entry, if anything was purged.
    pub fn purged(&self) -> Option<LogPosition> {
        self.inner.shared.state.read().purged
    }

    /// The latest metadata record.
    pub fn meta(&self) -> Option<Bytes> {
        self.inner.shared.state.read().meta.clone()
    }

    /// Whether a failed write or fsync poisoned the log, and why.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.shared.state.read().poisoned.clone()
    }

    /// Requests queued for the writer and not yet taken by it.
    pub fn queue_depth(&self) -> usize {
        self.inner
            .tx
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Writer counters since open.
    pub fn stats(&self) -> LogStats {
        let s = &self.inner.shared.stats;
        LogStats {
            entries: s.entries.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            rotations: s.rotations.load(Ordering::Relaxed),
        }
    }

    /// The segment files, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let st = self.inner.shared.state.read();
        st.segments
            .values()
            .map(|s| SegmentInfo {
                seq: s.seq,
                path: s.path.clone(),
                bytes: s.end,
                max_index: s.max_index,
            })
            .collect()
    }
}

/// Each entry with the payload hash its record carries (a redacted entry keeps its original's).
fn with_hashes(entries: Vec<Entry>) -> Vec<(Entry, crate::Hash)> {
    entries
        .into_iter()
        .map(|e| {
            let h = e.redacted_from.unwrap_or_else(|| payload_hash(&e.payload));
            (e, h)
        })
        .collect()
}
