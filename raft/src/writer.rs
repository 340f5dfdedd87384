//! [`StoreWriter`]: the one task through which every write of a
//! [`HearthLogStore`](crate::HearthLogStore) reaches the log, in call order.
//!
//! Task: `hearth-raft store writer`, one tokio task per store, spawned by
//! [`HearthLogStore::open`](crate::HearthLogStore::open) and ended by
//! [`HearthLogStore::close`](crate::HearthLogStore::close) or when every handle of the store is
//! dropped. It receives [`Op`]s on an unbounded channel (what is queued is what openraft has in
//! flight, which the node bounds at its client API) and performs them **one after the other**, so the log sees them in exactly the order
//! openraft issued them — openraft requires that no write is applied before an earlier one
//! completes, votes and appends alike. `Log::append` enqueues and waits for durability in one
//! call, so two calls in flight at once could reach the log's queue in either order; running
//! them one at a time is what makes the order certain.
//!
//! Group commit is kept anyway: while one append is being made durable, later appends queue up
//! here, and the next round drains them all into **one** `Log::append` (one write, one
//! `fdatasync`), then completes each caller's [`LogFlushed`] callback.
//!
//! The committed log id is written without an fsync of its own: [`Op::Committed`] only marks
//! the metadata record dirty, and the record is written with the next log write. An append
//! carries it in the same request ([`Log::append_with_meta`]), so both are in one batch of the
//! log: one write, one `fdatasync`. Other writes (truncate, purge) send it alongside, where it
//! usually meets them in the log's queue. Its content is independent of that write's order:
//! the vote and purge point it carries are the ones already durable.

use crate::codec::encode_meta;
use crate::error::{Result, StoreError};
use crate::types::{LogId, RaftMeta, TypeConfig, Vote};
use hearth_log::{Log, LogPosition};
use openraft::storage::LogFlushed;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The chain hash used for a purge point past the end of the log when no snapshot supplied the
/// real one (see [`HearthLogStore::set_snapshot_chain`](crate::HearthLogStore::set_snapshot_chain)):
/// all zeros, as at the genesis of a log, meaning "the history before this point is not here".
pub const UNKNOWN_CHAIN: hearth_log::Hash = hearth_log::GENESIS_CHAIN;

/// State shared by the store's handles, its readers and its writer task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub log: Log,
    pub state: Mutex<State>,
    /// Woken when a snapshot's chain head arrives (see `purge`).
    pub chain_set: tokio::sync::Notify,
}

/// What the handles see.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Entries handed to `append` that the log has not made durable yet, oldest first. Readers
    /// serve them from here ("readable when `append` returns").
    pub pending: VecDeque<crate::types::Entry>,
    /// Vote as last saved, committed as last given, purged as last durably recorded.
    pub meta: RaftMeta,
    /// Set when a write failed: every later write fails with it.
    pub failed: Option<String>,
    /// The chain head of a snapshot's last entry, for a purge past the end of the log.
    pub snapshot_chain: Option<LogPosition>,
}

/// A write request to the writer task.
pub(crate) enum Op {
    /// Append encoded entries; `flushed` is called once they are durable.
    Append {
        entries: Vec<hearth_log::Entry>,
        bytes: usize,
        flushed: LogFlushed<TypeConfig>,
    },
    /// Remember a new committed log id (written with the next write).
    Committed(Option<LogId>),
    /// Save the vote, durably.
    Vote(Vote, oneshot::Sender<Result<()>>),
    /// Remove entries at and after the index, durably.
    Truncate(u64, oneshot::Sender<Result<()>>),
    /// Purge entries through the log id, durably.
    Purge(LogId, oneshot::Sender<Result<()>>),
    /// Write the metadata record now if it is dirty.
    Sync(oneshot::Sender<Result<()>>),
    /// Write a dirty metadata record, close the log, and end the task.
    Close(oneshot::Sender<Result<()>>),
}

/// Appends gathered for one `Log::append`.
#[derive(Default)]
struct Batch {
    entries: Vec<hearth_log::Entry>,
    bytes: usize,
    flushed: Vec<LogFlushed<TypeConfig>>,
}

/// The writer task's state.
pub(crate) struct StoreWriter {
    pub shared: Arc<Shared>,
    pub rx: mpsc::UnboundedReceiver<Op>,
    /// The metadata as this task last wrote it (or will, when dirty).
    pub meta: RaftMeta,
    pub dirty: bool,
    /// Most bytes (payloads plus record headers) in one `Log::append`.
    pub max_append_bytes: usize,
    pub failed: Option<String>,
    /// How long a purge past the end of the log waits for a snapshot's chain head.
    pub snapshot_chain_wait: std::time::Duration,
    /// Where purged entries are appended first, if anywhere.
    pub archive: Option<Log>,
}

impl StoreWriter {
    /// Runs until every handle is dropped or [`Op::Close`].
    pub async fn run(mut self) {
        let mut ops = Vec::new();
        let mut close = None;
        while let Some(op) = self.rx.recv().await {
            ops.push(op);
            while ops.len() < 4096 {
                match self.rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            let mut batch = Batch::default();
            for op in ops.drain(..) {
                match op {
                    Op::Close(done) => {
                        close = Some(done);
                        break;
                    }
                    op => self.handle(op, &mut batch).await,
                }
            }
            self.flush(&mut batch).await;
            if close.is_some() {
                break;
            }
        }
        // Ops queued after a close are dropped unanswered: their callers see the store closed.
        self.rx.close();
        let Some(done) = close else { return };
        let r = match self.check() {
            Ok(()) if self.dirty => self.write_meta().await,
            other => other,
        };
        let log = self.shared.log.clone();
        drop(self);
        let closed = log.close().await.map_err(StoreError::from);
        let _ = done.send(r.and(closed));
    }

    async fn handle(&mut self, op: Op, batch: &mut Batch) {
        match op {
            Op::Append {
                entries,
                bytes,
                flushed,
            } => {
                if !batch.entries.is_empty() && batch.bytes + bytes > self.max_append_bytes {
                    self.flush(batch).await;
                }
                batch.entries.extend(entries);
                batch.bytes += bytes;
                batch.flushed.push(flushed);
            }
            Op::Committed(c) => {
                if self.meta.committed != c {
                    self.meta.committed = c;
                    self.dirty = true;
                }
            }
            Op::Vote(vote, done) => {
                self.flush(batch).await;
                let r = self.save_vote(vote).await;
                let _ = done.send(r);
            }
            Op::Truncate(index, done) => {
                self.flush(batch).await;
                let r = self.truncate(index).await;
                let _ = done.send(r);
            }
            Op::Purge(id, done) => {
                self.flush(batch).await;
                let r = self.purge(id).await;
                let _ = done.send(r);
            }
            Op::Close(done) => {
                // handled by `run`; unreachable here, answer it anyway
                let _ = done.send(Err(StoreError::Closed));
            }
            Op::Sync(done) => {
                self.flush(batch).await;
                let r = match self.check() {
                    Ok(()) if self.dirty => self.write_meta().await,
                    other => other,
                };
                let _ = done.send(r);
            }
        }
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(StoreError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: &StoreError) {
        if self.failed.is_none() {
            tracing::error!(error = %e, "raft log store write failed; refusing further writes");
            let why = e.to_string();
            self.shared.state.lock().failed = Some(why.clone());
            self.failed = Some(why);
        }
    }

    /// `r` as the store's result; a failed log write fails the store (see [`Self::fail`]).
    fn failing(&mut self, r: hearth_log::Result<()>) -> Result<()> {
        r.map_err(|e| {
            let e = StoreError::from(e);
            self.fail(&e);
            e
        })
    }

    /// Writes the metadata record (clearing `dirty`), durably.
    async fn write_meta(&mut self) -> Result<()> {
        self.dirty = false;
        let r = self.shared.log.write_meta(encode_meta(&self.meta)).await;
        self.failing(r)
    }

    /// Runs `op` on the log, writing a dirty metadata record alongside it.
    async fn with_meta<F>(&mut self, op: F) -> Result<()>
    where
        F: std::future::Future<Output = hearth_log::Result<()>>,
    {
        let r = if self.dirty {
            self.dirty = false;
            let blob = encode_meta(&self.meta);
            let (r, m) = tokio::join!(op, self.shared.log.write_meta(blob));
            r.and(m)
        } else {
            op.await
        };
        self.failing(r)
    }

    /// Appends `entries` with a dirty metadata record in the same request, so in the same
    /// batch of the log: one write and one `fdatasync` for both.
    async fn append(&mut self, entries: Vec<hearth_log::Entry>) -> Result<()> {
        let meta = std::mem::take(&mut self.dirty).then(|| encode_meta(&self.meta));
        let log = &self.shared.log;
        let r = match meta {
            Some(meta) => log.append_with_meta(entries, meta).await,
            None => log.append(entries).await,
        };
        self.failing(r)
    }

    /// Appends the batch, then completes its callbacks.
    async fn flush(&mut self, batch: &mut Batch) {
        if batch.flushed.is_empty() {
            return;
        }
        let Batch {
            entries,
            flushed,
            bytes: _,
        } = std::mem::take(batch);
        let n = entries.len();
        let r = match self.check() {
            Ok(()) => self.append(entries).await,
            Err(e) => Err(e),
        };
        {
            // Durable (and readable from the log) or failed: either way no longer pending.
            let mut st = self.shared.state.lock();
            let n = n.min(st.pending.len());
            st.pending.drain(..n);
        }
        for cb in flushed {
            let r = r
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()));
            cb.log_io_completed(r);
        }
    }

    async fn save_vote(&mut self, vote: Vote) -> Result<()> {
        self.check()?;
        self.meta.vote = Some(vote);
        self.write_meta().await?;
        self.shared.state.lock().meta.vote = Some(vote);
        Ok(())
    }

    async fn truncate(&mut self, index: u64) -> Result<()> {
        self.check()?;
        let log = self.shared.log.clone();
        self.with_meta(log.truncate_from(index)).await
    }

    /// Records the purge point in the metadata (durably) first, then purges the log: after a
    /// crash in between, [`HearthLogStore::open`](crate::HearthLogStore::open) finishes it.
    async fn purge(&mut self, id: LogId) -> Result<()> {
        self.check()?;
        if self.meta.purged.is_some_and(|p| p.index >= id.index) {
            return Ok(());
        }
        // Archived first (durably), so a crash after the metadata below loses nothing. When
        // writing the archive fails the purge waits for a later one and the entries stay; when
        // the archive cannot continue this log (a gap: it restarted from a snapshot) the purge
        // goes ahead.
        if let Some(archive) = &self.archive {
            use crate::archive::{archive_through, ArchiveError};
            match archive_through(&self.shared.log, archive, id.index).await {
                Ok(()) => {}
                Err(e @ ArchiveError::Gap(_)) => {
                    tracing::warn!(index = id.index, error = %e, "purging without archiving");
                }
                Err(e @ ArchiveError::Write(_)) => {
                    tracing::warn!(index = id.index, error = %e, "not purging yet");
                    return Ok(());
                }
            }
        }
        self.meta.purged = Some(id);
        self.write_meta().await?;
        self.shared.state.lock().meta.purged = Some(id);
        let hint = self.wait_snapshot_chain(id).await;
        let r = purge_log(&self.shared.log, id, hint).await;
        r.inspect_err(|e| self.fail(e))
    }
}

impl StoreWriter {
    /// The snapshot chain head for a purge through `id`. When the purge goes past the end of
    /// the log (a snapshot is being installed), waits a while for the install
    /// to hand over the head of exactly that log id (`StoreOptions::snapshot_chain_wait`).
    async fn wait_snapshot_chain(&self, id: LogId) -> Option<LogPosition> {
        let matches = |h: &Option<LogPosition>| {
            h.is_some_and(|h| h.index == id.index && h.term == id.leader_id.term)
        };
        let past_end = self
            .shared
            .log
            .last()
            .is_none_or(|last| id.index > last.index);
        let deadline = tokio::time::Instant::now() + self.snapshot_chain_wait;
        loop {
            let notified = self.shared.chain_set.notified();
            let hint = self.shared.state.lock().snapshot_chain;
            if !past_end || matches(&hint) || tokio::time::Instant::now() >= deadline {
                return hint;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

/// Purges `log` through `id`: `purge_through` when the log holds that index (or nothing at or
/// below it), else `purge_to` a position past the end, chained from `hint` when it names the
/// same index and term, else from [`UNKNOWN_CHAIN`].
pub(crate) async fn purge_log(log: &Log, id: LogId, hint: Option<LogPosition>) -> Result<()> {
    let term = id.leader_id.term;
    match log.last() {
        Some(last) if id.index <= last.index => log.purge_through(id.index).await?,
        _ => {
            let chain = match hint {
                Some(h) if h.index == id.index && h.term == term => h.chain,
                _ => {
                    tracing::warn!(
                        index = id.index,
                        term,
                        "purging past the end of the log without the snapshot's chain head; \
                         the log restarts from an unknown chain"
                    );
                    UNKNOWN_CHAIN
                }
            };
            log.purge_to(LogPosition {
                index: id.index,
                term,
                chain,
            })
            .await?
        }
    }
    Ok(())
}
