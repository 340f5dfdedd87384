//! [`Batcher`]: group commit for client writes. Writes that arrive while earlier entries are
//! being committed are proposed together as one raft entry ([`Proposal::batch`]).
//!
//! Why: openraft 0.9 handles client writes one at a time and waits for the leader's log flush
//! of each entry before it takes the next one, so one entry per write means one leader fsync
//! (and one replication round) per write. The batcher keeps at most
//! [`BatchLimits::in_flight`] entries inside raft; everything that arrives meanwhile waits in a
//! queue and goes into the next entry, up to [`BatchLimits::max_events`] events and
//! [`BatchLimits::max_bytes`] bytes. A lone write is proposed at once (no timer, no added
//! latency); under load, entries grow with the queue and the fsync cost is shared.
//!
//! Each write learns its entry's index, its position inside the entry and its own outcome
//! (applied, or rejected with the runtime's reason). A failure of the entry (this node is not
//! the leader, raft stopped) is every write's failure: none of them was committed.
//!
//! Not here: the in-flight bound in front of the queue (the node's semaphores), request ids,
//! forwarding to the leader.

use bytes::Bytes;
use hearth_raft::{HearthNode, NodeId, Proposal, TypeConfig};
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

/// How entries are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most entries proposed and not yet applied.
    pub in_flight: usize,
    /// Most events in one entry.
    pub max_events: usize,
    /// Most envelope bytes in one entry (a single larger event still goes alone).
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            in_flight: 2,
            max_events: 1024,
            max_bytes: 4 << 20,
        }
    }
}

/// One committed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Index of the entry that holds it.
    pub index: u64,
    /// Its position inside that entry.
    pub position: u32,
    /// `Some(reason)` when the projection runtime recorded it as rejected.
    pub rejected: Option<String>,
}

/// Why a write was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// This node is not the leader; the leader, when known.
    #[error("this node is not the leader")]
    NotLeader(Option<(NodeId, HearthNode)>),
    /// Raft failed or stopped.
    #[error("{0}")]
    Failed(String),
}

struct Pending {
    envelope: Bytes,
    reply: oneshot::Sender<Result<Committed, BatchError>>,
}

/// Group commit in front of a raft node. Cheap to clone; the queue closes when every clone is
/// dropped.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    /// Starts the batching task for `raft`.
    pub fn start(raft: Raft<TypeConfig>, limits: BatchLimits) -> (Batcher, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(raft, limits, rx));
        (Batcher { tx }, task)
    }

    /// Proposes `envelope` in the next entry and waits until that entry is applied.
    pub async fn submit(&self, envelope: Bytes) -> Result<Committed, BatchError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { envelope, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> BatchError {
    BatchError::Failed("the node is shutting down".into())
}

async fn run(
    raft: Raft<TypeConfig>,
    limits: BatchLimits,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let slots = Arc::new(Semaphore::new(limits.in_flight.max(1)));
    let max_events = limits.max_events.max(1);
    let mut carry: Option<Pending> = None;
    loop {
        // Take a slot first: whatever queues up while all slots are busy joins the next entry.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = first.envelope.len();
        let mut batch = vec![first];
        while batch.len() < max_events {
            let Ok(next) = rx.try_recv() else { break };
            if bytes + next.envelope.len() > limits.max_bytes {
                carry = Some(next);
                break;
            }
            bytes += next.envelope.len();
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Proposes `batch` as one entry and answers each write.
async fn commit(raft: &Raft<TypeConfig>, batch: Vec<Pending>) {
    let (envelopes, replies): (Vec<Bytes>, Vec<_>) =
        batch.into_iter().map(|p| (p.envelope, p.reply)).unzip();
    // One envelope is stored as a plain normal entry (see `hearth_raft::codec`).
    match raft.client_write(Proposal::batch(envelopes)).await {
        Ok(resp) => {
            for (position, reply) in replies.into_iter().enumerate() {
                let _ = reply.send(Ok(Committed {
                    index: resp.data.index,
                    position: position as u32,
                    rejected: resp.data.rejection(position).map(str::to_owned),
                }));
            }
        }
        Err(e) => {
            let err = match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                    BatchError::NotLeader(f.leader_id.zip(f.leader_node))
                }
                other => BatchError::Failed(other.to_string()),
            };
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}
