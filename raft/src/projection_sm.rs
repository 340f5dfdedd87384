//! [`ProjectionStateMachine`]: openraft's [`RaftStateMachine`] on the projection runtime
//! ([`hearth_projections::ProjectionStore`]), with snapshots built from RocksDB checkpoints of it.
//!
//! # Layout (under the directory given to [`ProjectionStateMachine::open`])
//!
//! ```text
//! LOCK                    held (flock) while the state machine is open: one opener at a time
//! state/                  the live state; replaced as a whole by installing a snapshot
//!   store/                the ProjectionStore (RocksDB)
//!   raft-sm.meta          leader history + memberships (sealed file, replaced atomically)
//!   current.snapshot      the last built or installed snapshot stream (replaced atomically)
//! state.new/  state.old/  only while a snapshot is being installed (cleaned up on open)
//! tmp/                    scratch checkpoints of snapshot builds (emptied on open)
//! ```
//!
//! # Exactly-once, and what `applied_state` says after a crash
//!
//! openraft needs the last applied [`LogId`] (term, *leader node id*, index) and the last
//! applied membership. The projection store keeps only `(index, term)`, in the same RocksDB
//! write as the state it produced, without WAL or sync: after a crash it holds the state of some
//! prefix of the applied entries and exactly that prefix's `(index, term)`; nothing more is
//! durable until a flush. The rest comes from `raft-sm.meta`, which holds
//!
//! * `leaders`: the log id of the first applied entry of the current leader (and of the
//!   previous one): a log id's leader is the leader of the last `leaders` entry at or below its
//!   index. (With openraft's default leader ids a term may have several leaders, so the term
//!   alone does not name the leader; the index does.)
//! * `memberships`: the current membership (and the previous one), each with its log id.
//!
//! The file changes only when an applied entry has a new leader or is a membership entry (rare:
//! elections and membership changes). Then, before that entry reaches RocksDB, [`apply`] (1)
//! writes every entry before it, (2) flushes the store, so its durable applied index is the
//! entry just before, and (3) replaces the file atomically (temp + fsync + rename + directory
//! fsync) with `[current, new]`. So whatever prefix RocksDB holds after a crash, the file covers
//! it: either the durable index is below the new entry (the `current` item applies, and it is at
//! or below the durable index because of the flush) or at/after it (the `new` item applies).
//! [`open`] derives `last_applied = LogId(leader of the last leaders item ≤ index, index)` and
//! the membership = the last item with index ≤ the durable index, and checks the term against
//! the store's. Items of the file past the durable index describe entries that will be applied
//! again; re-applying writes the same file again. Every entry therefore counts exactly once:
//! after a restart openraft re-applies the log after `applied_state()`, and the store skips
//! nothing and repeats nothing.
//!
//! Two consequences: `applied_state()` after a crash may be behind what was applied before it
//! (never ahead, never inconsistent with the state), and the raft log must not be purged past
//! what the store holds durably: building a snapshot flushes (its checkpoint does), and openraft
//! purges only up to a snapshot; [`ProjectionStateMachine::flush`] returns the durable log id
//! for any other caller.
//!
//! Entries ([`committed_entry`], which a rebuild from the log uses too): `Normal(Proposal)` of
//! one envelope → [`CommittedEntry::event`], of several → [`CommittedEntry::batch`] (an
//! envelope that does not decode is recorded as rejected by the runtime; apply never fails on
//! input), `Blank` and `Membership` → [`CommittedEntry::other`].
//! Each entry answers [`Applied`] with its index and, per envelope, the runtime's rejection if
//! any, in order. openraft
//! hands entries without gaps; its conformance suite does not (it applies index 3, then 5): a gap
//! is bridged with one synthetic `other` entry at the index before, in the same RocksDB write
//! (only the applied index moves, so no state or digest changes), and logged as a warning.
//!
//! # Snapshots
//!
//! Building (a clone of the state machine is the builder): under the state machine's lock
//! (applies wait), a RocksDB checkpoint of the store into `tmp/` (flushes first: the snapshot's
//! index is durable), the digests of the same state, the last applied log id and membership;
//! then, without the lock, the checkpoint files are packed into one stream ([`crate::snapshot`])
//! with a [`SnapshotInfo`] header (log id, membership, snapshot id, digests, chain head from
//! [`ProjectionStateMachine::set_chain_head_source`]), which becomes `state/current.snapshot`.
//!
//! Installing: the stream is verified (checksum, framing, metadata equal to openraft's) before
//! anything changes, unpacked into `state.new/store` (files and directory fsynced), opened as a
//! store whose applied `(index, term)` and digests must match the header, then `raft-sm.meta`
//! (leader history and membership from the header) and `current.snapshot` are written next to it
//! and the directories fsynced. Only then is the live store closed and swapped:
//! `state` → `state.old`, `state.new` → `state`, directory fsync, `state.old` removed, store
//! reopened. Any defect before the swap leaves the old state intact and is a typed error
//! ([`SnapshotError`]). A crash during the swap is finished by [`open`]: with `state` present,
//! leftover `state.new`/`state.old` are removed; with `state` missing, `state.new` (complete,
//! since `state` is only moved away after `state.new` is durable) becomes `state`.
//!
//! `get_current_snapshot` returns `state/current.snapshot`: the last snapshot built or installed,
//! kept on disk so it survives restarts (and it lives inside `state/`, so it is replaced together
//! with the state it describes). It is never rebuilt implicitly: openraft rebuilds when it needs a
//! newer one. A build that finishes after a concurrent install does not replace the installed
//! snapshot.
//!
//! RocksDB work runs in `spawn_blocking` — [`apply`] (one memtable write per call; on a leader
//! or membership change also a flush and a small fsynced file), building and installing — so
//! an apply never holds an async worker thread. Readers ([`ProjectionStateMachine::with_store`])
//! share the live store through an `Arc` and never take the apply lock; closing the store for an
//! install first hides it from new readers and waits for the running ones.
//!
//! [`apply`]: RaftStateMachine::apply
//! [`open`]: ProjectionStateMachine::open

use crate::error::{CodecError, Result, SnapshotError, StoreError};
use crate::files::{
    exists, io_err, read_if_exists, remove_dir_if_exists, seal, sync_dir, unseal, write_atomic,
    write_new_synced,
};
use crate::snapshot::{decode_snapshot, encode_snapshot, SnapshotFile, SnapshotInfo};
use crate::types::{
    Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use hearth_projections::{CommittedEntry, Digests, Outcome, Projection, ProjectionStore};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Directory of the live state.
const STATE: &str = "state";
/// Directory of a snapshot being installed.
const STATE_NEW: &str = "state.new";
/// Directory of the replaced state during an install.
const STATE_OLD: &str = "state.old";
/// Scratch directory of snapshot builds.
const TMP: &str = "tmp";
/// Lock file, held while open.
const LOCK: &str = "LOCK";
/// The projection store, inside a state directory.
const STORE: &str = "store";
/// The state machine's metadata file, inside a state directory.
const SM_META: &str = "raft-sm.meta";
/// The current snapshot stream, inside a state directory.
const CURRENT_SNAPSHOT: &str = "current.snapshot";

/// Magic of `raft-sm.meta`.
pub const SM_META_MAGIC: [u8; 8] = *b"HRTHSMM\0";
/// Format version of `raft-sm.meta` (body: JSON of [`SmMeta`]).
pub const SM_META_VERSION: u32 = 1;

/// Tells the snapshot builder the log's chain hash through an index (see
/// [`ProjectionStateMachine::set_chain_head_source`]).
pub type ChainHeadSource = Arc<dyn Fn(u64) -> Option<[u8; 32]> + Send + Sync>;
/// Called with the metadata of every snapshot installed, before `install_snapshot` returns (see
/// [`ProjectionStateMachine::set_on_install`]).
pub type InstallHook = Arc<dyn Fn(&SnapshotInfo) + Send + Sync>;
/// Called with every snapshot that becomes current — built here or installed from the leader —
/// and its whole stream, on a blocking thread with no lock held (see
/// [`ProjectionStateMachine::set_on_current`]).
pub type CurrentHook = Arc<dyn Fn(&SnapshotInfo, &[u8]) + Send + Sync>;

/// `raft-sm.meta`: what openraft needs beyond the store's `(index, term)`. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SmMeta {
    /// Log ids of the first applied entry of the current leader and of the previous one, in
    /// index order (for an installed snapshot: its last log id).
    leaders: Vec<LogId>,
    /// The current membership and the previous one, in index order.
    memberships: Vec<StoredMembership>,
}

fn read_sm_meta(path: &Path) -> Result<SmMeta> {
    let Some(bytes) = read_if_exists(path)? else {
        return Ok(SmMeta::default());
    };
    let corrupt = |reason: String| StoreError::CorruptSmMeta {
        path: path.to_path_buf(),
        reason,
    };
    let body = unseal(&SM_META_MAGIC, SM_META_VERSION, &bytes).map_err(corrupt)?;
    serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))
}

fn write_sm_meta(path: &Path, meta: &SmMeta) -> Result<()> {
    let corrupt = |reason: String| StoreError::CorruptSmMeta {
        path: path.to_path_buf(),
        reason,
    };
    let body = serde_json::to_vec(meta).map_err(|e| corrupt(e.to_string()))?;
    let bytes = seal(&SM_META_MAGIC, SM_META_VERSION, &body).map_err(corrupt)?;
    write_atomic(path, &bytes)
}

/// The live state: the store and what openraft knows about it.
struct Inner {
    /// `None` only after [`ProjectionStateMachine::close_losing_unflushed`] or a failed swap.
    /// Shared with readers through [`Shared::reader`].
    store: Option<Arc<ProjectionStore>>,
    /// What `raft-sm.meta` says about the applied prefix (trimmed to it on open).
    meta: SmMeta,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// Set when a write failed half-way: the in-memory view may be ahead of the store, so every
    /// later call fails until the state machine is reopened.
    failed: Option<String>,
}

impl Inner {
    /// Opens the store in `state_dir` and derives openraft's view from it and `raft-sm.meta`.
    fn load(state_dir: &Path, projections: &[Arc<dyn Projection>]) -> Result<Inner> {
        let store = ProjectionStore::open(state_dir.join(STORE), projections.to_vec())?;
        sync_dir(state_dir)?;
        let file = read_sm_meta(&state_dir.join(SM_META))?;
        let (last_applied, membership, meta) = derive(store.applied(), &file)?;
        Ok(Inner {
            store: Some(Arc::new(store)),
            meta,
            last_applied,
            membership,
            failed: None,
        })
    }

    fn store(&self) -> Result<&ProjectionStore> {
        if let Some(reason) = &self.failed {
            return Err(StoreError::Failed(reason.clone()));
        }
        self.store
            .as_deref()
            .ok_or_else(|| StoreError::Failed("the projection store is closed".into()))
    }

    /// Applies `entries`; see the module docs for the order of writes.
    fn apply(&mut self, state_dir: &Path, entries: Vec<Entry>) -> Result<Vec<Applied>> {
        let mut pending: Vec<CommittedEntry> = Vec::with_capacity(entries.len());
        let mut out = Vec::with_capacity(entries.len());
        let mut rejected: BTreeMap<u64, Vec<Option<String>>> = BTreeMap::new();
        for entry in entries {
            let id = entry.log_id;
            let prev = self.last_applied;
            if let Some(prev) = prev {
                if id.index <= prev.index {
                    tracing::warn!(%id, %prev, "entry at or below the applied index: skipped");
                    out.push(Applied::at(id.index));
                    continue;
                }
            }
            let membership = match &entry.payload {
                EntryPayload::Membership(m) => Some(StoredMembership::new(Some(id), m.clone())),
                _ => None,
            };
            let new_leader = prev.map(|p| p.leader_id) != Some(id.leader_id);
            if new_leader || membership.is_some() {
                let store = self.store()?;
                note_rejections(&pending, store.apply_batch(&pending)?, &mut rejected);
                pending.clear();
                store.flush()?;
                let mut meta = SmMeta {
                    leaders: self.meta.leaders.last().cloned().into_iter().collect(),
                    memberships: Vec::new(),
                };
                if self.membership.log_id().is_some() {
                    meta.memberships.push(self.membership.clone());
                }
                if new_leader {
                    meta.leaders.push(id);
                }
                if let Some(m) = &membership {
                    meta.memberships.push(m.clone());
                }
                write_sm_meta(&state_dir.join(SM_META), &meta)?;
                self.meta = meta;
            }
            if let Some(prev) = prev {
                if id.index > prev.index + 1 {
                    tracing::warn!(%id, %prev, "gap in applied entries: bridged");
                    pending.push(CommittedEntry::other(id.index - 1, id.leader_id.term));
                }
            }
            pending.push(committed_entry(entry));
            self.last_applied = Some(id);
            if let Some(m) = membership {
                self.membership = m;
            }
            out.push(Applied::at(id.index));
        }
        let outcomes = self.store()?.apply_batch(&pending)?;
        note_rejections(&pending, outcomes, &mut rejected);
        for applied in &mut out {
            if let Some(reasons) = rejected.remove(&applied.index) {
                applied.rejected = reasons;
            }
        }
        Ok(out)
    }
}

/// What the projection runtime sees of a raft entry: `Normal` of one envelope →
/// [`CommittedEntry::event`], of several → [`CommittedEntry::batch`], `Blank` and `Membership`
/// → [`CommittedEntry::other`]; a proposal read back from a redacted log record
/// ([`Proposal::redacted_from`](crate::Proposal::redacted_from)) is marked
/// [`CommittedEntry::redacted`]. The state machine applies exactly this; a rebuild from the log
/// (the audit, `hearth replay`) must use it too so it folds the same entries.
pub fn committed_entry(entry: Entry) -> CommittedEntry {
    let id = entry.log_id;
    let term = id.leader_id.term;
    match entry.payload {
        EntryPayload::Normal(mut proposal) => {
            let redacted = proposal.redacted_from.is_some();
            if proposal.envelopes.len() == 1 {
                let envelope = proposal.envelopes.pop().unwrap_or_default();
                CommittedEntry::event(id.index, term, envelope).with_redacted(redacted)
            } else {
                CommittedEntry::batch(id.index, term, proposal.envelopes).with_redacted(redacted)
            }
        }
        EntryPayload::Blank | EntryPayload::Membership(_) => CommittedEntry::other(id.index, term),
    }
}

/// A `hearth-log` record as the projection runtime sees it: [`crate::codec::decode_record`]
/// (which checks the stored log id against the record and carries a redacted record's kept
/// hash), then [`committed_entry`]. A record that is not a raft entry is a typed error naming
/// its index.
pub fn committed_entry_of_record(rec: &hearth_log::Record) -> Result<CommittedEntry, CodecError> {
    crate::codec::decode_record(rec).map(committed_entry)
}

/// The projection store's directory inside a state machine directory (the `dir` given to
/// [`ProjectionStateMachine::open`]): `dir/state/store`. For offline readers (the audit,
/// `hearth status --data-dir`), which open it read-only.
pub fn store_dir(dir: &Path) -> PathBuf {
    dir.join(STATE).join(STORE)
}

/// `raft-sm.meta` of the live state inside a state machine directory: `dir/state/raft-sm.meta`
/// (a sealed file: [`SM_META_MAGIC`], version [`SM_META_VERSION`], …).
pub fn sm_meta_path(dir: &Path) -> PathBuf {
    dir.join(STATE).join(SM_META)
}

/// The current snapshot stream inside a state machine directory: `dir/state/current.snapshot`.
pub fn current_snapshot_path(dir: &Path) -> PathBuf {
    dir.join(STATE).join(CURRENT_SNAPSHOT)
}

/// The lock file a running state machine holds (flock, exclusive) in its directory:
/// `dir/LOCK`. An offline reader that takes it shared knows no node is using the directory,
/// and keeps one from starting while it reads.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK)
}

/// Records, per event of each entry of `batch`, whether the runtime rejected it as a whole (a
/// duplicate request id, an undecodable event), so the proposer learns it from the response.
fn note_rejections(
    batch: &[CommittedEntry],
    outcomes: Vec<Outcome>,
    into: &mut BTreeMap<u64, Vec<Option<String>>>,
) {
    for (entry, outcome) in batch.iter().zip(outcomes) {
        let reasons = outcome.event_rejections();
        if !reasons.is_empty() {
            into.insert(entry.index, reasons);
        }
    }
}

/// openraft's view of a store that has durably applied `applied`, given the metadata file;
/// also the file's contents trimmed to that prefix.
fn derive(
    applied: Option<(u64, u64)>,
    file: &SmMeta,
) -> Result<(Option<LogId>, StoredMembership, SmMeta)> {
    let Some((index, term)) = applied else {
        return Ok((None, StoredMembership::default(), SmMeta::default()));
    };
    let leader = file
        .leaders
        .iter()
        .rev()
        .find(|l| l.index <= index)
        .ok_or_else(|| {
            StoreError::Inconsistent(format!(
                "the projection store has applied index {index} (term {term}) but {SM_META} \
                 names no leader at or before it"
            ))
        })?;
    if leader.leader_id.term != term {
        return Err(StoreError::Inconsistent(format!(
            "the projection store has applied index {index} in term {term}, {SM_META} says the \
             leader from index {} is {}",
            leader.index, leader.leader_id
        )));
    }
    let last_applied = LogId::new(leader.leader_id, index);
    let membership = file
        .memberships
        .iter()
        .rev()
        .find(|m| m.log_id().is_none_or(|l| l.index <= index))
        .cloned()
        .unwrap_or_default();
    let meta = SmMeta {
        leaders: vec![*leader],
        memberships: membership
            .log_id()
            .is_some()
            .then(|| membership.clone())
            .into_iter()
            .collect(),
    };
    Ok((Some(last_applied), membership, meta))
}

#[derive(Default)]
struct Hooks {
    chain_head: Option<ChainHeadSource>,
    on_install: Option<InstallHook>,
    on_current: Option<CurrentHook>,
}

struct Shared {
    dir: PathBuf,
    /// `LOCK`, locked for as long as this state machine (any clone) lives.
    _lock: fs::File,
    projections: Vec<Arc<dyn Projection>>,
    inner: Mutex<Inner>,
    /// The store readers use, without `inner`'s lock (so reads never wait for an apply, nor
    /// block a thread that an apply needs): the same store as `inner`'s while it is healthy,
    /// `None` while it is closed, failed or being swapped. Kept equal by [`Shared::publish`].
    reader: RwLock<Option<Arc<ProjectionStore>>>,
    /// Serialises publishing and installing snapshots. Lock order: `snapshots`, then `inner`.
    snapshots: Mutex<()>,
    /// Bumped by every install; a build publishes only if it did not change meanwhile.
    generation: AtomicU64,
    /// Builds started, for unique scratch directories.
    builds: AtomicU64,
    hooks: RwLock<Hooks>,
}

impl Shared {
    fn state_dir(&self) -> PathBuf {
        self.dir.join(STATE)
    }

    /// Makes readers see `inner`'s store (none when it failed or is closed).
    fn publish(&self, inner: &Inner) {
        *self.reader.write() = match inner.failed {
            None => inner.store.clone(),
            Some(_) => None,
        };
    }

    /// Takes the live store away from readers and from `inner` and waits until the readers
    /// still using it are done (reads are short: gets and scans), so that dropping or closing
    /// it releases its RocksDB lock.
    fn take_store(&self, inner: &mut Inner) -> Option<ProjectionStore> {
        *self.reader.write() = None;
        let mut store = inner.store.take()?;
        let mut waited = 0u32;
        loop {
            match Arc::try_unwrap(store) {
                Ok(store) => return Some(store),
                Err(shared) => store = shared,
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            waited += 1;
            if waited.is_multiple_of(5_000) {
                tracing::warn!(
                    seconds = waited / 1_000,
                    "closing the projection store: still waiting for readers to finish"
                );
            }
        }
    }

    /// The store for a reader, or why there is none.
    fn reader(&self) -> Result<Arc<ProjectionStore>> {
        if let Some(store) = self.reader.read().clone() {
            return Ok(store);
        }
        // Empty only while an install swaps stores (it holds `inner`) or after a failure, which
        // `inner.store()` names.
        let inner = self.inner.lock();
        inner.store()?;
        Ok(Arc::clone(inner.store.as_ref().ok_or_else(|| {
            StoreError::Failed("the projection store is closed".into())
        })?))
    }

    /// Builds a snapshot of the current state and publishes it as the current snapshot.
    fn build(&self) -> Result<Snapshot> {
        let tmp = self.dir.join(TMP);
        fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
        let scratch = tmp.join(format!(
            "build-{}",
            self.builds.fetch_add(1, Ordering::Relaxed)
        ));
        remove_dir_if_exists(&scratch)?;
        let _cleanup = RemoveOnDrop(scratch.clone());
        let checkpoint = scratch.join("checkpoint");
        fs::create_dir(&scratch).map_err(io_err("create directory", &scratch))?;

        let (generation, last_log_id, last_membership, digests) = {
            let inner = self.inner.lock();
            let store = inner.store()?;
            let generation = self.generation.load(Ordering::SeqCst);
            let applied = store.checkpoint(&checkpoint)?;
            let (viewed, digests) = store.digests_with_applied()?;
            let expected = inner.last_applied.map(|id| (id.index, id.leader_id.term));
            if applied != expected || viewed != expected {
                return Err(StoreError::Inconsistent(format!(
                    "snapshot build: the checkpoint holds {applied:?}, its digests {viewed:?}, \
                     the state machine applied {expected:?}"
                )));
            }
            (
                generation,
                inner.last_applied,
                inner.membership.clone(),
                digests,
            )
        };

        let chain_head = {
            let hooks = self.hooks.read();
            match (&hooks.chain_head, last_log_id) {
                (Some(source), Some(id)) => source(id.index),
                _ => None,
            }
        };
        let info = SnapshotInfo {
            snapshot_id: snapshot_id(last_log_id, &last_membership, &digests),
            last_log_id,
            last_membership,
            digests,
            chain_head,
        };
        let bytes = pack_dir(&checkpoint, &info)?;

        let current = {
            let _publish = self.snapshots.lock();
            let current = self.generation.load(Ordering::SeqCst) == generation;
            if current {
                write_atomic(&self.state_dir().join(CURRENT_SNAPSHOT), &bytes)?;
            } else {
                tracing::info!(
                    snapshot = %info.snapshot_id,
                    "a snapshot was installed while this one was built: not made current"
                );
            }
            current
        };
        if current {
            self.made_current(&info, &bytes);
        }
        Ok(Snapshot {
            meta: info.meta(),
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }

    /// Runs the [`CurrentHook`], if any, on a snapshot just made current.
    fn made_current(&self, info: &SnapshotInfo, bytes: &[u8]) {
        let hook = self.hooks.read().on_current.clone();
        if let Some(hook) = hook {
            hook(info, bytes);
        }
    }

    /// The current snapshot, if one was built or installed.
    fn current(&self) -> Result<Option<Snapshot>> {
        let _publish = self.snapshots.lock();
        let Some(bytes) = read_if_exists(&self.state_dir().join(CURRENT_SNAPSHOT))? else {
            return Ok(None);
        };
        let info = decode_snapshot(&bytes)?.info;
        Ok(Some(Snapshot {
            meta: info.meta(),
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }

    /// Installs a snapshot stream; see the module docs.
    fn install(&self, meta: &SnapshotMeta, bytes: &[u8]) -> Result<SnapshotInfo> {
        let _publish = self.snapshots.lock();
        self.inner.lock().store()?;
        let decoded = decode_snapshot(bytes)?;
        let info = decoded.info;
        if info.meta() != *meta {
            return Err(SnapshotError::MetaMismatch {
                stream: info.meta().to_string(),
                given: meta.to_string(),
            }
            .into());
        }

        let new_dir = self.dir.join(STATE_NEW);
        remove_dir_if_exists(&new_dir)?;
        let prepared = self.prepare_install(&new_dir, &info, &decoded.files, bytes);
        if let Err(e) = prepared {
            if let Err(cleanup) = remove_dir_if_exists(&new_dir) {
                tracing::warn!(error = %cleanup, "could not remove a rejected snapshot");
            }
            return Err(e);
        }

        let mut inner = self.inner.lock();
        // Flushes and closes the live store (its RocksDB lock is released on drop).
        drop(self.take_store(&mut inner));
        inner.failed = Some("a snapshot install did not finish".into());
        let swapped = self.swap_in().and_then(|()| {
            let loaded = Inner::load(&self.state_dir(), &self.projections)?;
            if loaded.last_applied != info.last_log_id {
                return Err(StoreError::Inconsistent(format!(
                    "installed snapshot {}: the reopened state has applied {:?}",
                    info.snapshot_id, loaded.last_applied
                )));
            }
            Ok(loaded)
        });
        match swapped {
            Ok(loaded) => {
                *inner = loaded;
                self.publish(&inner);
                self.generation.fetch_add(1, Ordering::SeqCst);
                Ok(info)
            }
            Err(e) => {
                // Finish or undo the swap as `open` would, and serve whatever state is live.
                let recovered = recover_layout(&self.dir)
                    .and_then(|()| Inner::load(&self.state_dir(), &self.projections));
                match recovered {
                    Ok(loaded) => *inner = loaded,
                    Err(again) => inner.failed = Some(format!("{e}; then: {again}")),
                }
                self.publish(&inner);
                Err(e)
            }
        }
    }

    /// Unpacks and checks a snapshot in `new_dir`, and makes it durable there.
    fn prepare_install(
        &self,
        new_dir: &Path,
        info: &SnapshotInfo,
        files: &[SnapshotFile<'_>],
        bytes: &[u8],
    ) -> Result<()> {
        let store_dir = new_dir.join(STORE);
        fs::create_dir_all(&store_dir).map_err(io_err("create directory", &store_dir))?;
        for file in files {
            write_new_synced(&store_dir.join(file.name), file.data)?;
        }
        sync_dir(&store_dir)?;
        {
            let store = ProjectionStore::open(&store_dir, self.projections.clone())?;
            let found = store.applied();
            if found != info.applied() {
                return Err(SnapshotError::AppliedMismatch {
                    expected: info.applied(),
                    found,
                }
                .into());
            }
            let digests = store.digests()?;
            if digests != info.digests {
                let tables = digests
                    .keys()
                    .chain(info.digests.keys())
                    .filter(|t| digests.get(*t) != info.digests.get(*t))
                    .cloned()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                return Err(SnapshotError::DigestMismatch { tables }.into());
            }
            store.flush()?;
        }
        sync_dir(&store_dir)?;
        let meta = SmMeta {
            leaders: info.last_log_id.into_iter().collect(),
            memberships: info
                .last_membership
                .log_id()
                .is_some()
                .then(|| info.last_membership.clone())
                .into_iter()
                .collect(),
        };
        write_sm_meta(&new_dir.join(SM_META), &meta)?;
        write_atomic(&new_dir.join(CURRENT_SNAPSHOT), bytes)?;
        sync_dir(new_dir)?;
        sync_dir(&self.dir)
    }

    /// `state` → `state.old`, `state.new` → `state`, then removes `state.old`; durable.
    fn swap_in(&self) -> Result<()> {
        let state = self.state_dir();
        let old = self.dir.join(STATE_OLD);
        let new = self.dir.join(STATE_NEW);
        remove_dir_if_exists(&old)?;
        fs::rename(&state, &old).map_err(io_err("rename", &state))?;
        fs::rename(&new, &state).map_err(io_err("rename", &new))?;
        sync_dir(&self.dir)?;
        remove_dir_if_exists(&old)?;
        sync_dir(&self.dir)
    }
}

/// Takes the directory's lock file, so that no second opener recovers (deletes) what a live
/// state machine is working on.
fn lock_dir(dir: &Path) -> Result<fs::File> {
    let path = dir.join(LOCK);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Io {
            op: "lock (another state machine has it open)",
            path,
            source: std::io::ErrorKind::WouldBlock.into(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
    }
}

/// Brings `dir` to a state with `state/` present and no install leftovers (see the module docs).
fn recover_layout(dir: &Path) -> Result<()> {
    let state = dir.join(STATE);
    let new = dir.join(STATE_NEW);
    let old = dir.join(STATE_OLD);
    if !exists(&state)? {
        if exists(&new)? && exists(&old)? {
            tracing::warn!(dir = %dir.display(), "finishing an interrupted snapshot install");
            fs::rename(&new, &state).map_err(io_err("rename", &new))?;
        } else if exists(&old)? {
            tracing::warn!(dir = %dir.display(), "undoing an interrupted snapshot install");
            fs::rename(&old, &state).map_err(io_err("rename", &old))?;
        } else {
            fs::create_dir(&state).map_err(io_err("create directory", &state))?;
        }
        sync_dir(dir)?;
    }
    let mut removed = false;
    for leftover in [new, old, dir.join(TMP)] {
        if exists(&leftover)? {
            remove_dir_if_exists(&leftover)?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// openraft's snapshot id: the log id and a hash of the state, so the same state gets the same
/// id on every node and every build.
fn snapshot_id(last: Option<LogId>, membership: &StoredMembership, digests: &Digests) -> String {
    let mut hasher = blake3::Hasher::new();
    if let Ok(json) = serde_json::to_vec(&(last, membership, digests)) {
        hasher.update(&json);
    }
    let hash = hasher.finalize();
    let short: String = hash.as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match last {
        Some(id) => format!(
            "{}-{}-{}-{short}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => format!("empty-{short}"),
    }
}

/// Packs the regular files of a checkpoint directory into a snapshot stream.
fn pack_dir(dir: &Path, info: &SnapshotInfo) -> Result<Vec<u8>> {
    let mut contents: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err("stat", &path))?;
        let name = entry.file_name().into_string().map_err(|name| {
            StoreError::Snapshot(format!("checkpoint file name {name:?} is not UTF-8"))
        })?;
        if !kind.is_file() {
            return Err(StoreError::Snapshot(format!(
                "checkpoint {} holds {name:?}, which is not a regular file",
                dir.display()
            )));
        }
        let data = fs::read(&path).map_err(io_err("read", &path))?;
        contents.push((name, data));
    }
    let files: Vec<SnapshotFile<'_>> = contents
        .iter()
        .map(|(name, data)| SnapshotFile { name, data })
        .collect();
    Ok(encode_snapshot(info, &files)?)
}

/// Removes a scratch directory when dropped (best effort).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = remove_dir_if_exists(&self.0) {
            tracing::warn!(error = %e, "could not remove a snapshot scratch directory");
        }
    }
}

/// openraft's state machine on the projection store. Cheap to clone; clones share the state (the
/// snapshot builder is a clone). See the [module docs](crate::projection_sm) for the on-disk
/// layout, the exactly-once argument and the snapshots, and [`crate::snapshot`] for the stream
/// format.
#[derive(Clone)]
pub struct ProjectionStateMachine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProjectionStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.shared.inner.lock();
        f.debug_struct("ProjectionStateMachine")
            .field("dir", &self.shared.dir)
            .field("last_applied", &inner.last_applied)
            .field("membership", &inner.membership)
            .field("failed", &inner.failed)
            .finish()
    }
}

fn sm_error(e: StoreError, verb: ErrorVerb) -> StorageError {
    e.into_storage(ErrorSubject::StateMachine, verb)
}

/// Runs blocking work off the async runtime's worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

impl ProjectionStateMachine {
    /// Opens (creating it if needed) the state machine in `dir` (the node's state directory,
    /// e.g. `DATA/projections`) with `projections` registered; finishes or cleans up an
    /// interrupted snapshot install first.
    ///
    /// Errors: the directory is open elsewhere (its `LOCK` is held), a damaged store or metadata file, a store of another format or projection set
    /// (see [`ProjectionStore::open`]), and a store whose applied index the metadata file does
    /// not cover ([`StoreError::Inconsistent`]: the file was lost; rebuild the projections).
    pub fn open(dir: &Path, projections: Vec<Arc<dyn Projection>>) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let lock = lock_dir(dir)?;
        recover_layout(dir)?;
        let inner = Inner::load(&dir.join(STATE), &projections)?;
        Ok(ProjectionStateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                _lock: lock,
                projections,
                reader: RwLock::new(inner.store.clone()),
                inner: Mutex::new(inner),
                snapshots: Mutex::new(()),
                generation: AtomicU64::new(0),
                builds: AtomicU64::new(0),
                hooks: RwLock::new(Hooks::default()),
            }),
        })
    }

    /// Directory the state machine lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Sets how snapshot builds learn the log's chain hash through their last index: the node
    /// passes a lookup into its log (`|index| chain hash of entry index`). Without one, or when
    /// it answers `None`, a snapshot's [`SnapshotInfo::chain_head`] is `None`.
    pub fn set_chain_head_source(&self, source: Option<ChainHeadSource>) {
        self.shared.hooks.write().chain_head = source;
    }

    /// Sets a function called with the metadata of every installed snapshot before
    /// `install_snapshot` returns to openraft (which then purges its log): the node uses it to
    /// hand the snapshot's chain head to the log store (`HearthLogStore::set_snapshot_chain`).
    pub fn set_on_install(&self, hook: Option<InstallHook>) {
        self.shared.hooks.write().on_install = hook;
    }

    /// Sets a function called with every snapshot that becomes current (built, or installed
    /// from the leader) and its stream: the node archives them, signed, when it purges its log.
    /// It runs on the blocking thread that built or installed the snapshot, after the snapshot
    /// is current and before openraft hears of it (so before any purge it allows); it cannot
    /// fail the snapshot — it reports its own failures.
    pub fn set_on_current(&self, hook: Option<CurrentHook>) {
        self.shared.hooks.write().on_current = hook;
    }

    /// Runs `f` on the projection store (reads: `get`, `scan_prefix`, `digests`, …) without
    /// waiting for applies: each RocksDB write of an apply is atomic, so a read sees the state
    /// before or after it, and a multi-key view (`digests`, an iterator) is consistent within
    /// itself. Two calls may see different applied prefixes.
    pub fn with_store<R>(&self, f: impl FnOnce(&ProjectionStore) -> R) -> Result<R> {
        let store = self.shared.reader()?;
        Ok(f(&store))
    }

    /// Digests of every table of the projection store.
    pub fn digests(&self) -> Result<Digests> {
        self.with_store(ProjectionStore::digests)?
            .map_err(StoreError::from)
    }

    /// Last applied log id and membership (as `applied_state`, without a `&mut`).
    pub fn applied(&self) -> (Option<LogId>, StoredMembership) {
        let inner = self.shared.inner.lock();
        (inner.last_applied, inner.membership.clone())
    }

    /// Makes everything applied so far durable; returns the last applied log id, which is
    /// durable on return. The raft layer calls it before purging its log past anything not
    /// covered by a snapshot.
    pub fn flush(&self) -> Result<Option<LogId>> {
        let inner = self.shared.inner.lock();
        inner.store()?.flush()?;
        Ok(inner.last_applied)
    }

    /// Metadata of the current snapshot (see `get_current_snapshot`), if any.
    pub fn current_snapshot_info(&self) -> Result<Option<SnapshotInfo>> {
        let _publish = self.shared.snapshots.lock();
        let path = self.shared.state_dir().join(CURRENT_SNAPSHOT);
        match read_if_exists(&path)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode_snapshot(&bytes)?.info)),
        }
    }

    /// Closes the state machine the way a power cut would: whatever the projection store had not
    /// flushed is lost (see [`ProjectionStore::close_losing_unflushed`]); every clone fails from
    /// now on. For crash tests.
    pub fn close_losing_unflushed(self) {
        let mut inner = self.shared.inner.lock();
        if let Some(store) = self.shared.take_store(&mut inner) {
            store.close_losing_unflushed();
        }
        inner.failed = Some("closed by close_losing_unflushed".into());
    }
}

impl RaftSnapshotBuilder<TypeConfig> for ProjectionStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.build())
            .await
            .map_err(|e| sm_error(e, ErrorVerb::Read))
    }
}

impl RaftStateMachine<TypeConfig> for ProjectionStateMachine {
    type SnapshotBuilder = ProjectionStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.applied())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            let state_dir = shared.state_dir();
            let mut inner = shared.inner.lock();
            inner.store()?;
            inner.apply(&state_dir, entries).inspect_err(|e| {
                inner.failed = Some(format!("apply failed: {e}"));
                shared.publish(&inner);
            })
        })
        .await
        .map_err(|e| sm_error(e, ErrorVerb::Write))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        let owned = meta.clone();
        let bytes = snapshot.into_inner();
        let info = blocking(move || {
            let info = shared.install(&owned, &bytes)?;
            shared.made_current(&info, &bytes);
            Ok(info)
        })
        .await
        .map_err(|e| {
            e.into_storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        })?;
        let hook = self.shared.hooks.read().on_install.clone();
        if let Some(hook) = hook {
            hook(&info);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.current())
            .await
            .map_err(|e| sm_error(e, ErrorVerb::Read))
    }
}
