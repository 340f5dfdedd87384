//! [`MemStateMachine`]: a minimal in-memory [`RaftStateMachine`], enough to run openraft's
//! storage suite and single-process tests. The real state machine delegates to the
//! projections; this one only counts events.
//!
//! It keeps the last applied log id, the last membership and the number of normal entries
//! applied. A snapshot is that state as JSON; it lives in memory only (nothing here is
//! durable: after a restart the state machine is empty and openraft re-applies the log).

use crate::error::{Result, StoreError};
use crate::types::{
    Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::Arc;

/// What the in-memory state machine holds; also its snapshot format (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemState {
    /// The last applied log id.
    pub last_applied: Option<LogId>,
    /// The last applied membership.
    pub last_membership: StoredMembership,
    /// Normal entries applied.
    pub events: u64,
}

#[derive(Debug, Default)]
struct Inner {
    state: MemState,
    /// The current snapshot: its metadata and data.
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Snapshots built so far, for unique snapshot ids.
    built: u64,
}

/// An in-memory state machine. Cheap to clone; clones share the state (the snapshot builder is
/// a clone).
#[derive(Debug, Clone, Default)]
pub struct MemStateMachine {
    inner: Arc<Mutex<Inner>>,
}

impl MemStateMachine {
    /// An empty state machine.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the current state.
    pub fn state(&self) -> MemState {
        self.inner.lock().state.clone()
    }

    fn install(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<()> {
        let state: MemState = serde_json::from_slice(&data)
            .map_err(|e| StoreError::Snapshot(format!("snapshot {}: {e}", meta.snapshot_id)))?;
        if state.last_applied != meta.last_log_id || state.last_membership != meta.last_membership {
            return Err(StoreError::Snapshot(format!(
                "snapshot {} holds state through {:?}, its metadata says {:?}",
                meta.snapshot_id, state.last_applied, meta.last_log_id
            )));
        }
        let mut inner = self.inner.lock();
        inner.state = state;
        inner.snapshot = Some((meta.clone(), data));
        Ok(())
    }
}

fn sm_error(e: StoreError, verb: ErrorVerb) -> StorageError {
    e.into_storage(ErrorSubject::StateMachine, verb)
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let mut inner = self.inner.lock();
        let data = serde_json::to_vec(&inner.state)
            .map_err(|e| sm_error(StoreError::Snapshot(e.to_string()), ErrorVerb::Read))?;
        inner.built += 1;
        let last = inner.state.last_applied;
        let snapshot_id = match last {
            Some(id) => format!(
                "{}-{}-{}-{}",
                id.leader_id.term, id.leader_id.node_id, id.index, inner.built
            ),
            None => format!("none-{}", inner.built),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: inner.state.last_membership.clone(),
            snapshot_id,
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotBuilder = MemStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.inner.lock();
        Ok((
            inner.state.last_applied,
            inner.state.last_membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock();
        let mut out = Vec::new();
        for entry in entries {
            let id = entry.log_id;
            inner.state.last_applied = Some(id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(_) => inner.state.events += 1,
                EntryPayload::Membership(m) => {
                    inner.state.last_membership = StoredMembership::new(Some(id), m);
                }
            }
            out.push(Applied::at(id.index));
        }
        Ok(out)
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
        self.install(meta, snapshot.into_inner())
            .map_err(|e| sm_error(e, ErrorVerb::Write))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
