//! [`ProjectionStore`]: the projection runtime on RocksDB.
//!
//! Layout: one column family per projection (named after it), plus `meta`, `requests` and
//! `rejected` (see [`crate::format`]). Each [`ProjectionStore::apply_batch`] ends in exactly one
//! RocksDB `WriteBatch` holding every state change of the batch *and* the new `applied` log id,
//! written with the RocksDB WAL disabled and no sync: hearth's log is the write-ahead log.
//!
//! Why that is safe: the database is opened with `atomic_flush`, so every flush (explicit or
//! automatic, when a memtable fills) persists all column families up to one and the same write,
//! and a write is never torn. After a crash the store therefore holds the state of some prefix
//! of the batches, together with the `applied` id of exactly that prefix; the caller re-applies
//! the log after `applied`, and every entry is folded exactly once.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction,
    FlushOptions, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

use crate::digest::{Digester, Digests};
use crate::engine::{self, Base, Cursor, EngineError, Overlay, Tables};
use crate::entry::{CommittedEntry, Outcome};
use crate::error::{ProjectionError, Result};
use crate::format::{
    self, CF_META, CF_REJECTED, CF_REQUESTS, FORMAT_VERSION, META_APPLIED, META_FORMAT_VERSION,
    META_LOG_TIME, RESERVED_NAMES,
};
use crate::projection::Projection;

/// Entries per `WriteBatch` in [`ProjectionStore::rebuild`].
const REBUILD_BATCH: usize = 1024;

/// Memory for RocksDB's memtables across all column families, bytes; past it, the store
/// flushes. (64 MiB made a rebuild stall on its flushes at a third of the speed.)
const MEMTABLE_BUDGET: usize = 128 << 20;

/// The projection runtime on RocksDB: folds committed log entries into every registered
/// [`Projection`], exactly once across restarts.
///
/// Contract:
///
/// * [`apply_batch`](Self::apply_batch) is all or nothing: when it returns `Ok`, every entry of
///   the batch is applied and visible to readers; on `Err` nothing changed (in memory or on
///   disk). Calls are serialised.
/// * Nothing is durable when `apply_batch` returns. What is durable is a *prefix* of the applied
///   batches, consistent with [`applied`](Self::applied) as read after reopening:
///   [`flush`](Self::flush) makes everything applied so far durable, and dropping the store
///   flushes too. After a crash the caller must re-apply its log from `applied() + 1`; entries
///   at or below `applied` are skipped, so handing over too many is harmless.
/// * Bad input never fails: undecodable payloads, duplicate request ids and events a projection
///   refuses are recorded in `rejected` and reported in the [`Outcome`]s. Errors are RocksDB
///   failures, a damaged store, or an entry index that leaves a gap.
/// * Digests depend on the contents only (see [`Digester`]), so a store and its rebuild from
///   the same log have equal digests, whatever RocksDB did with its files.
pub struct ProjectionStore {
    path: PathBuf,
    db: DB,
    projections: Vec<Arc<dyn Projection>>,
    /// Table names by engine table number: the projections, then `requests`, `rejected`.
    tables: Vec<&'static str>,
    cursor: Mutex<Cursor>,
    /// Whether dropping the store flushes (false only in [`ProjectionStore::close_losing_unflushed`]).
    flush_on_drop: bool,
}

impl ProjectionStore {
    /// Opens the store in `dir`, creating it (and `dir`) when `dir` is missing or empty.
    ///
    /// Refuses (typed errors): a non-empty directory that is not a projection store, a store of
    /// a newer format ([`ProjectionError::UnsupportedFormat`]), and a projection that was not
    /// registered since the store's first entry ([`ProjectionError::NeedsRebuild`]). A projection
    /// that was registered before and is missing from `projections` now is no longer maintained:
    /// its column family stays, but registering it again later requires a rebuild.
    pub fn open(dir: impl AsRef<Path>, projections: Vec<Arc<dyn Projection>>) -> Result<Self> {
        let path = dir.as_ref().to_path_buf();
        validate_projections(&projections)?;
        let existing = existing_column_families(&path)?;
        if let Some(cfs) = &existing {
            if !cfs.iter().any(|cf| cf == CF_META) {
                return Err(ProjectionError::NotAStore {
                    path,
                    reason: "a RocksDB database without the `meta` column family".into(),
                });
            }
        }
        let mut names: BTreeSet<String> = existing.into_iter().flatten().collect();
        names.extend(["default", CF_META, CF_REQUESTS, CF_REJECTED].map(String::from));
        names.extend(projections.iter().map(|p| p.name().to_owned()));
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
        let db = DB::open_cf_descriptors(&db_options(&path)?, &path, descriptors)
            .map_err(db_error(&path, "open"))?;

        let mut store = Self::assemble(path, db, projections, true);
        let cursor = store.init_meta(&names)?;
        *store
            .cursor
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = cursor;
        Ok(store)
    }

    /// Opens an existing store in `dir` read-only: nothing in `dir` changes, and applying or
    /// flushing fails. Reads see what the store holds durably (its flushed state and the
    /// applied index of exactly that state). For offline readers of a stopped node's store
    /// (the audit, `hearth status --data-dir`); RocksDB does not lock a read-only store, so the
    /// caller makes sure no node is writing it.
    ///
    /// Refuses what [`open`](Self::open) refuses, plus a missing or empty directory
    /// ([`ProjectionError::NotAStore`]) and a registered projection the store has never
    /// maintained ([`ProjectionError::NeedsRebuild`], even before any entry).
    pub fn open_read_only(
        dir: impl AsRef<Path>,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self> {
        let path = dir.as_ref().to_path_buf();
        validate_projections(&projections)?;
        let Some(cfs) = existing_column_families(&path)? else {
            return Err(ProjectionError::NotAStore {
                path,
                reason: "no store here (missing or empty directory)".into(),
            });
        };
        if !cfs.iter().any(|cf| cf == CF_META) {
            return Err(ProjectionError::NotAStore {
                path,
                reason: "a RocksDB database without the `meta` column family".into(),
            });
        }
        let db = DB::open_cf_for_read_only(&db_options(&path)?, &path, &cfs, false)
            .map_err(db_error(&path, "open read-only"))?;
        let mut store = Self::assemble(path, db, projections, false);
        let (version, cursor) = store.read_meta()?;
        if version.is_none() {
            return Err(store.corrupt("no format version"));
        }
        for projection in &store.projections {
            let marker = format::projection_marker(projection.name());
            if store.meta_get(&marker)?.is_none() || store.db.cf_handle(projection.name()).is_none()
            {
                return Err(ProjectionError::NeedsRebuild {
                    path: store.path.clone(),
                    projection: projection.name().to_owned(),
                    applied: cursor.applied.map_or(0, |(index, _)| index),
                });
            }
        }
        *store
            .cursor
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = cursor;
        Ok(store)
    }

    /// A store on an opened `db`: the digested tables are the projections', then the runtime's.
    fn assemble(
        path: PathBuf,
        db: DB,
        projections: Vec<Arc<dyn Projection>>,
        flush_on_drop: bool,
    ) -> Self {
        let mut tables: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
        tables.extend([CF_REQUESTS, CF_REJECTED]);
        Self {
            path,
            db,
            projections,
            tables,
            cursor: Mutex::new(Cursor::default()),
            flush_on_drop,
        }
    }

    /// Reads and checks the format version (`None`: a fresh store) and the cursor.
    fn read_meta(&self) -> Result<(Option<u32>, Cursor)> {
        let version = self.meta_get(META_FORMAT_VERSION)?;
        let applied = self.meta_get(META_APPLIED)?;
        let version = match version {
            None if applied.is_some() => {
                return Err(self.corrupt("`applied` without a format version"))
            }
            None => None,
            Some(bytes) => match format::decode_u32(&bytes) {
                Some(found) if found > FORMAT_VERSION => {
                    return Err(ProjectionError::UnsupportedFormat {
                        path: self.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    })
                }
                Some(FORMAT_VERSION) => Some(FORMAT_VERSION),
                Some(found) => return Err(self.corrupt(format!("format version {found}"))),
                None => {
                    return Err(self.corrupt(format!("format version of {} bytes", bytes.len())))
                }
            },
        };
        let applied = applied
            .map(|bytes| {
                format::decode_applied(&bytes)
                    .ok_or_else(|| self.corrupt(format!("`applied` of {} bytes", bytes.len())))
            })
            .transpose()?;
        let log_time_ms = match self.meta_get(META_LOG_TIME)? {
            None => 0,
            Some(bytes) => format::decode_u64(&bytes)
                .ok_or_else(|| self.corrupt(format!("`log_time` of {} bytes", bytes.len())))?,
        };
        Ok((
            version,
            Cursor {
                applied,
                log_time_ms,
            },
        ))
    }

    /// Checks the format version, loads the cursor, and maintains the projection markers.
    fn init_meta(&self, column_families: &BTreeSet<String>) -> Result<Cursor> {
        let meta = self.cf(CF_META)?;
        let (version, cursor) = self.read_meta()?;
        let mut batch = WriteBatch::default();
        if version.is_none() {
            batch.put_cf(meta, META_FORMAT_VERSION, FORMAT_VERSION.to_le_bytes());
        }
        for projection in &self.projections {
            let marker = format::projection_marker(projection.name());
            if self.meta_get(&marker)?.is_some() {
                continue;
            }
            if let Some((index, _)) = cursor.applied {
                return Err(ProjectionError::NeedsRebuild {
                    path: self.path.clone(),
                    projection: projection.name().to_owned(),
                    applied: index,
                });
            }
            batch.put_cf(meta, marker, []);
        }
        let registered: BTreeSet<&str> = self.projections.iter().map(|p| p.name()).collect();
        for name in column_families {
            if !registered.contains(name.as_str()) && !RESERVED_NAMES.contains(&name.as_str()) {
                batch.delete_cf(meta, format::projection_marker(name));
            }
        }
        self.db
            .write_opt(batch, &unlogged())
            .map_err(db_error(&self.path, "write meta"))?;
        self.flush_all()?;
        Ok(cursor)
    }

    /// Rebuilds a store from a log into `dir`, which must be missing or empty, and flushes it.
    ///
    /// `entries` is the log from its first entry (or from any entry, for a partial view): they
    /// are applied in order, in batches, exactly as a live store applies them; the resulting
    /// digests equal those of a live store that applied the same entries.
    pub fn rebuild(
        dir: impl AsRef<Path>,
        projections: Vec<Arc<dyn Projection>>,
        entries: impl IntoIterator<Item = CommittedEntry>,
    ) -> Result<Self> {
        let path = dir.as_ref();
        if !dir_is_missing_or_empty(path)? {
            return Err(ProjectionError::TargetNotEmpty {
                path: path.to_path_buf(),
            });
        }
        let store = Self::open(path, projections)?;
        store.apply_all(entries)?;
        Ok(store)
    }

    /// Applies `entries` (in log order, continuing from [`applied`](Self::applied)) in
    /// batches, as [`rebuild`](Self::rebuild) does, and flushes: how a snapshot's state is
    /// brought forward by the log after it.
    ///
    /// Pipelined over two threads: while this one folds a batch, a writer thread writes the
    /// previous one to RocksDB; the fold reads that batch's writes from memory until they are
    /// written. Each batch is still one `WriteBatch` holding its `applied` id, so the store is
    /// as consistent as after [`apply_batch`](Self::apply_batch) at every point. On error the
    /// batches written so far stay applied.
    pub fn apply_all(&self, entries: impl IntoIterator<Item = CommittedEntry>) -> Result<()> {
        let mut guard = self.lock();
        let cfs = self.table_cfs()?;
        let (written, folded) = std::thread::scope(|s| {
            // Capacity 0: a send returns when the writer takes the batch, that is once it has
            // written the one before, so at most one folded batch is not yet in RocksDB.
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Arc<Overlay>, Cursor)>(0);
            let start = *guard;
            let cfs = &cfs;
            let writer = s.spawn(move || {
                let mut written = start;
                for (overlay, cursor) in rx {
                    if let Err(e) = self.write_overlay(cfs, &overlay, cursor) {
                        return (written, Err(e));
                    }
                    written = cursor;
                }
                (written, Ok(()))
            });
            let folded = self.fold_all(cfs, start, entries, &tx);
            drop(tx);
            let (written, wrote) = writer.join().unwrap_or_else(|_| {
                (
                    start,
                    Err(self.corrupt("the projection writer thread panicked")),
                )
            });
            (written, wrote.and(folded))
        });
        *guard = written;
        folded?;
        self.flush_all()
    }

    /// The folding half of [`apply_all`](Self::apply_all): batches of `entries` from `cursor`,
    /// each handed to the writer through `tx` once folded.
    fn fold_all(
        &self,
        cfs: &[&ColumnFamily],
        mut cursor: Cursor,
        entries: impl IntoIterator<Item = CommittedEntry>,
        tx: &SyncSender<(Arc<Overlay>, Cursor)>,
    ) -> Result<()> {
        let rocks = RocksBase {
            db: &self.db,
            cfs,
            error: RefCell::new(None),
        };
        let mut unwritten: Option<Arc<Overlay>> = None;
        let mut entries = entries.into_iter();
        let mut chunk = Vec::with_capacity(REBUILD_BATCH);
        loop {
            chunk.clear();
            chunk.extend(entries.by_ref().take(REBUILD_BATCH));
            if chunk.is_empty() {
                return Ok(());
            }
            let base = Layered {
                top: unwritten.as_deref(),
                base: &rocks,
            };
            let mut next = cursor;
            let overlay = self.fold_batch(&mut next, &chunk, &base, &rocks, |_| ())?;
            if next == cursor {
                continue;
            }
            let overlay = Arc::new(overlay);
            if tx.send((Arc::clone(&overlay), next)).is_err() {
                // The writer failed; it reports why.
                return Ok(());
            }
            unwritten = Some(overlay);
            cursor = next;
        }
    }

    /// Applies committed entries in log order; returns one [`Outcome`] per entry.
    ///
    /// For each entry: skipped if its index is at or below [`applied`](Self::applied); an index
    /// that leaves a gap after `applied` is an error ([`ProjectionError::NonContiguous`]; the
    /// first entry of a fresh store may have any index). A non-event only advances the applied
    /// index. An event is decoded (undecodable → rejected), advances log time to
    /// `max(log time, proposed_at_unix_ms)`, is rejected if it carries a request id that was
    /// applied before,
    /// and otherwise goes through every projection in registration order.
    ///
    /// The whole batch is one RocksDB write without WAL and without sync (see the type's
    /// contract for what is durable when).
    pub fn apply_batch(&self, entries: &[CommittedEntry]) -> Result<Vec<Outcome>> {
        let mut guard = self.lock();
        let mut cursor = *guard;
        let cfs = self.table_cfs()?;
        let rocks = RocksBase {
            db: &self.db,
            cfs: &cfs,
            error: RefCell::new(None),
        };
        let mut outcomes = Vec::with_capacity(entries.len());
        let overlay = self.fold_batch(&mut cursor, entries, &rocks, &rocks, |outcome| {
            outcomes.push(outcome)
        })?;
        if cursor == *guard {
            return Ok(outcomes);
        }
        self.write_overlay(&cfs, &overlay, cursor)?;
        *guard = cursor;
        Ok(outcomes)
    }

    /// Folds `entries` from `cursor` (advanced) over `base`, whose reads end in `rocks`;
    /// returns the batch's writes and hands each entry's outcome to `outcome`.
    fn fold_batch(
        &self,
        cursor: &mut Cursor,
        entries: &[CommittedEntry],
        base: &dyn Base,
        rocks: &RocksBase<'_>,
        mut outcome: impl FnMut(Outcome),
    ) -> Result<Overlay> {
        let mut overlay = Overlay::new(Tables::new(self.projections.len()));
        for entry in entries {
            let applied = engine::apply_entry(&self.projections, cursor, entry, base, &mut overlay)
                .map_err(|e| self.engine_error(e));
            if let Some(e) = rocks.error.borrow_mut().take() {
                return Err(db_error(&self.path, "read")(e));
            }
            outcome(applied?);
        }
        Ok(overlay)
    }

    /// Writes a batch's `overlay` and the `cursor` after it as one `WriteBatch` (`cfs`: the
    /// tables' column families, [`table_cfs`](Self::table_cfs)).
    fn write_overlay(
        &self,
        cfs: &[&ColumnFamily],
        overlay: &Overlay,
        cursor: Cursor,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (cf, writes) in cfs.iter().zip(&overlay.tables) {
            for (key, value) in writes {
                match value {
                    Some(value) => batch.put_cf(*cf, key, value),
                    None => batch.delete_cf(*cf, key),
                }
            }
        }
        let meta = self.cf(CF_META)?;
        if let Some((index, term)) = cursor.applied {
            batch.put_cf(meta, META_APPLIED, format::encode_applied(index, term));
        }
        batch.put_cf(meta, META_LOG_TIME, cursor.log_time_ms.to_le_bytes());
        self.db
            .write_opt(batch, &unlogged())
            .map_err(db_error(&self.path, "write"))
    }

    /// Last applied `(index, term)`; `None` before the first entry. Not necessarily durable:
    /// see [`flush`](Self::flush).
    pub fn applied(&self) -> Option<(u64, u64)> {
        self.lock().applied
    }

    /// Log time after the last applied entry, Unix ms (0 before any event).
    pub fn log_time_ms(&self) -> u64 {
        self.lock().log_time_ms
    }

    /// Flushes every memtable (atomically across column families) and waits for it; returns the
    /// applied `(index, term)`, which is durable on return. The raft layer calls this before
    /// purging its log up to that index.
    pub fn flush(&self) -> Result<Option<(u64, u64)>> {
        let guard = self.lock();
        self.flush_all()?;
        Ok(guard.applied)
    }

    /// Writes a RocksDB checkpoint of the store into `dir`, which must not exist yet, after a
    /// flush; returns the applied `(index, term)` the checkpoint holds. [`open`](Self::open) on
    /// `dir` gives a store with the same digests. Applies wait while it runs.
    ///
    /// RocksDB hard-links the table files where it can and syncs what it writes; the caller
    /// that publishes the checkpoint (renames it into place) syncs the parent directory.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<Option<(u64, u64)>> {
        let target = dir.as_ref();
        let exists = target
            .try_exists()
            .map_err(io_error(target, "stat checkpoint target"))?;
        if exists {
            return Err(ProjectionError::TargetNotEmpty {
                path: target.to_path_buf(),
            });
        }
        let guard = self.lock();
        self.flush_all()?;
        Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(target))
            .map_err(db_error(&self.path, "checkpoint"))?;
        Ok(guard.applied)
    }

    /// Canonical digest of one table: a projection's name, `requests` or `rejected`.
    pub fn digest(&self, name: &str) -> Result<[u8; 32]> {
        let snapshot = self.db.snapshot();
        self.digest_at(&snapshot, name)
    }

    /// Digests of every projection and of the `requests` and `rejected` tables, all from one
    /// consistent view.
    pub fn digests(&self) -> Result<Digests> {
        Ok(self.digests_with_applied()?.1)
    }

    /// [`digests`](Self::digests) together with the applied `(index, term)` of the same view.
    pub fn digests_with_applied(&self) -> Result<(Option<(u64, u64)>, Digests)> {
        let snapshot = self.db.snapshot();
        let applied = snapshot
            .get_cf(self.cf(CF_META)?, META_APPLIED)
            .map_err(db_error(&self.path, "read"))?
            .map(|bytes| {
                format::decode_applied(&bytes)
                    .ok_or_else(|| self.corrupt(format!("`applied` of {} bytes", bytes.len())))
            })
            .transpose()?;
        let digests = self
            .tables
            .iter()
            .map(|name| Ok(((*name).to_owned(), self.digest_at(&snapshot, name)?)))
            .collect::<Result<_>>()?;
        Ok((applied, digests))
    }

    /// The committed value of `key` in a table (a projection's name, `requests`, `rejected`).
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.table_cf(table)?;
        self.db
            .get_cf(cf, key)
            .map_err(db_error(&self.path, "read"))
    }

    /// Every committed `(key, value)` of a table whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_prefix_from(table, prefix, prefix)
    }

    /// Like [`scan_prefix`](Self::scan_prefix), starting at the first key at or after `from`.
    pub fn scan_prefix_from(
        &self,
        table: &str,
        prefix: &[u8],
        from: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_prefix_from_limit(table, prefix, from, usize::MAX)
    }

    /// Like [`scan_prefix_from`](Self::scan_prefix_from), at most `limit` rows (a page).
    pub fn scan_prefix_from_limit(
        &self,
        table: &str,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let cf = self.table_cf(table)?;
        let mut out = Vec::new();
        let from = if from < prefix { prefix } else { from };
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(from, Direction::Forward))
        {
            let (key, value) = item.map_err(db_error(&self.path, "iterate"))?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    /// At most `limit` committed `(key, value)`s of a table whose key starts with `prefix`,
    /// from the first key *after* `after` (from the prefix's start when `None`), in key order:
    /// one page of a scan that callers holding a lock can take in small steps.
    pub fn scan_prefix_page(
        &self,
        table: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let cf = self.table_cf(table)?;
        let start = after.filter(|a| *a >= prefix).unwrap_or(prefix);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(start, Direction::Forward))
        {
            let (key, value) = item.map_err(db_error(&self.path, "iterate"))?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            if after.is_some_and(|a| &key[..] <= a) {
                continue;
            }
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    /// Every committed `(key, value)` of a table in key order, streamed from one consistent
    /// view taken when this is called (memory stays bounded however large the table is). Used
    /// to find where two stores differ (the audit merges two such scans).
    pub fn iter(&self, table: &str) -> Result<TableIter<'_>> {
        let cf = self.table_cf(table)?;
        Ok(TableIter {
            path: &self.path,
            inner: self.db.iterator_cf(cf, IteratorMode::Start),
        })
    }

    /// Flushes, then compacts a table's whole key range down to the last level, so values that
    /// were overwritten or deleted (a deleted blob's inline bytes) no longer sit in older
    /// files (the store writes no RocksDB WAL, so the flush leaves no other copy).
    pub fn compact(&self, table: &str) -> Result<()> {
        self.flush_all()?;
        let cf = self.table_cf(table)?;
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.db
            .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
        Ok(())
    }

    /// Directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the registered projections, in registration order.
    pub fn projection_names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// Closes the store the way a power cut would: whatever was not flushed is lost (a normal
    /// drop flushes). For crash tests of this crate and of the layers above it.
    pub fn close_losing_unflushed(mut self) {
        self.flush_on_drop = false;
    }

    fn digest_at(&self, snapshot: &rocksdb::Snapshot<'_>, name: &str) -> Result<[u8; 32]> {
        let cf = self.table_cf(name)?;
        let mut digester = Digester::new(name);
        for item in snapshot.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item.map_err(db_error(&self.path, "iterate"))?;
            digester.add(&key, &value);
        }
        Ok(digester.finish())
    }

    fn flush_all(&self) -> Result<()> {
        let mut cfs = self.table_cfs()?;
        cfs.push(self.cf(CF_META)?);
        let mut opts = FlushOptions::default();
        opts.set_wait(true);
        self.db
            .flush_cfs_opt(&cfs, &opts)
            .map_err(db_error(&self.path, "flush"))
    }

    fn lock(&self) -> MutexGuard<'_, Cursor> {
        // The cursor is only replaced after a successful write, so it is valid even if a
        // projection panicked while the lock was held.
        self.cursor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(CF_META)?, key)
            .map_err(db_error(&self.path, "read meta"))
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| self.corrupt(format!("column family {name:?} missing after open")))
    }

    fn table_cf(&self, name: &str) -> Result<&ColumnFamily> {
        if !self.tables.contains(&name) {
            return Err(ProjectionError::UnknownTable {
                path: self.path.clone(),
                name: name.into(),
            });
        }
        self.cf(name)
    }

    fn table_cfs(&self) -> Result<Vec<&ColumnFamily>> {
        self.tables.iter().map(|name| self.cf(name)).collect()
    }

    fn corrupt(&self, what: impl Into<String>) -> ProjectionError {
        ProjectionError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    fn engine_error(&self, e: EngineError) -> ProjectionError {
        match e {
            EngineError::NonContiguous { applied, found } => ProjectionError::NonContiguous {
                path: self.path.clone(),
                applied,
                found,
            },
            EngineError::Corrupt(what) => self.corrupt(what),
        }
    }
}

impl Drop for ProjectionStore {
    /// Flushes, so a clean shutdown restarts without re-applying anything. An error cannot be
    /// reported from here and loses nothing that the log cannot replay; call
    /// [`ProjectionStore::flush`] first to see it.
    fn drop(&mut self) {
        if self.flush_on_drop {
            let _ = self.flush_all();
        }
    }
}

impl std::fmt::Debug for ProjectionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cursor = *self.lock();
        f.debug_struct("ProjectionStore")
            .field("path", &self.path)
            .field("projections", &self.projection_names())
            .field("applied", &cursor.applied)
            .field("log_time_ms", &cursor.log_time_ms)
            .finish()
    }
}

// The raft layer shares the store between tasks.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ProjectionStore>();
};

/// A table's `(key, value)` pairs in key order: see [`ProjectionStore::iter`].
pub struct TableIter<'a> {
    path: &'a Path,
    inner: rocksdb::DBIteratorWithThreadMode<'a, DB>,
}

impl Iterator for TableIter<'_> {
    type Item = Result<(Box<[u8]>, Box<[u8]>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        Some(item.map_err(db_error(self.path, "iterate")))
    }
}

impl std::fmt::Debug for TableIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableIter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Committed state read through RocksDB; remembers the first read error.
struct RocksBase<'a> {
    db: &'a DB,
    cfs: &'a [&'a ColumnFamily],
    error: RefCell<Option<rocksdb::Error>>,
}

impl Base for RocksBase<'_> {
    fn get(&self, table: usize, key: &[u8]) -> Option<Vec<u8>> {
        let cf = self.cfs.get(table)?;
        match self.db.get_cf(*cf, key) {
            Ok(value) => value,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }
}

/// A batch folded but not yet written, over the committed state: how the fold of the next batch
/// sees it while [`ProjectionStore::apply_all`]'s writer writes it.
struct Layered<'a> {
    top: Option<&'a Overlay>,
    base: &'a dyn Base,
}

impl Base for Layered<'_> {
    fn get(&self, table: usize, key: &[u8]) -> Option<Vec<u8>> {
        match self.top {
            Some(top) => top.get(self.base, table, key),
            None => self.base.get(table, key),
        }
    }
}

/// Checks that projection names are usable column family names: non-empty, not reserved, and
/// unique.
pub(crate) fn validate_projections(projections: &[Arc<dyn Projection>]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for projection in projections {
        let name = projection.name();
        let reason = if name.is_empty() {
            "a projection has an empty name".to_owned()
        } else if RESERVED_NAMES.contains(&name) {
            format!("projection name {name:?} is reserved")
        } else if !seen.insert(name) {
            format!("projection name {name:?} is registered twice")
        } else {
            continue;
        };
        return Err(ProjectionError::InvalidProjections { reason });
    }
    Ok(())
}

fn db_options(path: &Path) -> Result<Options> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Every flush persists all column families up to the same write: `applied` never gets
    // ahead of (or behind) the state it describes. Required because writes skip the WAL.
    opts.set_atomic_flush(true);
    // One budget for the memtables of every column family, immutable ones awaiting their flush
    // included: without it each family may hold two 64 MiB memtables, and a rebuild that
    // writes faster than RocksDB flushes reached 530 MB resident on a 1 M-event audit.
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    opts.set_keep_log_file_num(4);
    opts.set_max_log_file_size(8 << 20);
    // RocksDB's own flush on close is off so that `close_losing_unflushed` can skip it; `Drop`
    // flushes instead. (The Rust binding has no setter for it, hence the options string.)
    opts.get_options_from_string("avoid_flush_during_shutdown=true")
        .map_err(db_error(path, "configure"))
}

fn cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    // Most point lookups are for keys that are absent (a new request id, a new blob): bloom
    // filters in the table files and in the memtable answer those without searching.
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    opts.set_memtable_whole_key_filtering(true);
    opts.set_memtable_prefix_bloom_ratio(0.1);
    opts
}

/// The hearth log is the write-ahead log: no RocksDB WAL, no sync.
fn unlogged() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.disable_wal(true);
    opts.set_sync(false);
    opts
}

/// The column families of the store in `path`: `None` when there is no store yet (missing or
/// empty directory); an error when the directory holds something else.
fn existing_column_families(path: &Path) -> Result<Option<Vec<String>>> {
    if dir_is_missing_or_empty(path)? {
        return Ok(None);
    }
    let current = path.join("CURRENT");
    let has_current = current.try_exists().map_err(io_error(&current, "stat"))?;
    if !has_current {
        return Err(ProjectionError::NotAStore {
            path: path.to_path_buf(),
            reason: "the directory is not empty and has no RocksDB CURRENT file".into(),
        });
    }
    DB::list_cf(&Options::default(), path)
        .map(Some)
        .map_err(db_error(path, "list column families"))
}

fn dir_is_missing_or_empty(path: &Path) -> Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_error(path, "read directory")(e)),
    }
}

fn db_error(path: &Path, op: &'static str) -> impl FnOnce(rocksdb::Error) -> ProjectionError {
    let path = path.to_path_buf();
    move |source| ProjectionError::Db { path, op, source }
}

fn io_error(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ProjectionError {
    let path = path.to_path_buf();
    move |source| ProjectionError::Io { path, op, source }
}
