//! [`DocRuntime`]: a node's in-memory help for documents — its Automerge actor, per-document
//! write locks, and the sync states of clients speaking the Automerge sync protocol.

use super::DocId;
use automerge::sync;
use automerge::ActorId;
use hearth_projections::DocsProjection;
use moka::sync::Cache;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Lock stripes: documents hash onto these, so memory does not grow with documents.
const STRIPES: usize = 256;
/// Sync states kept at most (least recently used go first).
const MAX_SESSIONS: u64 = 100_000;
/// A sync state unused this long is dropped (the client then starts over, which is safe: the
/// protocol recovers from a lost state with one more round trip).
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// One client's sync state for one document.
pub type SyncSession = Arc<Mutex<sync::State>>;

/// Documents' node-local runtime state. Cheap to share (`Arc` inside the node).
pub struct DocRuntime {
    actor: ActorId,
    locks: Vec<tokio::sync::Mutex<()>>,
    sessions: Cache<(String, DocId), SyncSession>,
    /// The node's documents projection: HTTP writes take loaded documents from it and hand
    /// them back changed, so a change is applied once per write.
    projection: Arc<DocsProjection>,
}

impl DocRuntime {
    /// The runtime of the node whose PeerId bytes are `peer`: its actor is derived from them, so
    /// it survives restarts (the document then knows the actor's last sequence number).
    /// `projection` is the one the node's state machine runs.
    pub fn new(peer: &[u8], projection: Arc<DocsProjection>) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"hearth.doc-actor.v1\0");
        h.update(peer);
        let actor = ActorId::from(&h.finalize().as_bytes()[..16]);
        DocRuntime {
            actor,
            locks: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            sessions: Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_idle(SESSION_IDLE)
                .build(),
            projection,
        }
    }

    /// The loaded document `doc` if it is at version `stored`, the one the store holds (taken
    /// out: give it back with [`Self::keep`] or [`Self::offer`]).
    pub fn take_loaded(&self, doc: &DocId, stored: &blake3::Hash) -> Option<automerge::AutoCommit> {
        self.projection.take_loaded(&doc.0, stored)
    }

    /// Gives back `loaded`, unchanged since it was taken, or loaded at version `stored`.
    pub fn keep(&self, doc: &DocId, stored: blake3::Hash, loaded: automerge::AutoCommit) {
        self.projection.keep_loaded(&doc.0, stored, loaded);
    }

    /// Hands over `after`: at version `stored`, then changed by exactly the change encoded as
    /// `change` (see [`DocsProjection::offer`]).
    pub fn offer(
        &self,
        doc: &DocId,
        stored: &blake3::Hash,
        change: &[u8],
        after: automerge::AutoCommit,
    ) {
        self.projection.offer(&doc.0, stored, change, after);
    }

    /// The actor this node's HTTP edits are made as.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// Holds the write lock of `doc` (one change at a time per document on this node).
    pub async fn lock(&self, doc: &DocId) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = doc
            .0
            .iter()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(*b as usize))
            % STRIPES;
        self.locks[stripe].lock().await
    }

    /// The sync state of `client` for `doc` (a new one the first time).
    pub fn session(&self, client: &str, doc: &DocId) -> SyncSession {
        self.sessions.get_with((client.to_string(), *doc), || {
            Arc::new(Mutex::new(sync::State::new()))
        })
    }
}
