//! Devices outside the cluster: document sync over `/hearth/sync/1`.
//!
//! A device (a laptop running `hearth serve` as its own one-node cluster) is started with
//! `--sync-with MULTIADDR/p2p/PEER` (repeatable). Its [`DeviceSyncer`] asks the cluster member
//! which documents its pairing grants, then runs the Automerge sync protocol for each of them
//! (a partial sync: only those), many documents per request. Changes each side receives are
//! committed to its own log as `DocChanged`, so edits made offline are in the device's log,
//! survive restarts and flow both ways on reconnect with no user action.
//!
//! The member side ([`serve`]) checks the requester's PeerId (authenticated by the libp2p
//! handshake) against the `DevicePaired` grants: documents outside the grant are refused one
//! by one, and changes to a read-only document are refused.
//!
//! Wire: a [`SyncRequest`] in the request body (kind [`KIND_SYNC`]), a [`SyncResponse`] back;
//! prost messages whose field tags are forever.

use super::DocId;
use crate::net::{status, Protocol, RaftRequest};
use crate::node::doc_ops::{decode_sync, SyncRights};
use crate::node::Node;
use futures::StreamExt as _;
use libp2p::{Multiaddr, PeerId};
use prost::Message as _;
use std::collections::BTreeMap;
use std::time::Duration;

/// Request kind of a sync exchange.
pub const KIND_SYNC: u8 = 1;
/// Documents per request.
const DOCS_PER_REQUEST: usize = 100;
/// Documents worked on at once on either side.
const PARALLEL_DOCS: usize = 64;
/// Rounds of one sync pass before it stops (the next pass carries on).
const MAX_ROUNDS: usize = 20;
/// Pause between passes while connected, and before retrying after a failure.
pub const DEFAULT_SYNC_EVERY: Duration = Duration::from_millis(500);

/// A device's request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncRequest {
    /// One sync message per document (an empty message asks "anything for me?").
    #[prost(message, repeated, tag = "1")]
    pub docs: Vec<DocMessage>,
    /// Also answer the documents the grant names.
    #[prost(bool, tag = "2")]
    pub list: bool,
}

/// One document's sync message (or the reason it was refused, in a response).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DocMessage {
    /// The document id.
    #[prost(bytes = "vec", tag = "1")]
    pub doc_id: Vec<u8>,
    /// An Automerge sync message; empty: none.
    #[prost(bytes = "vec", tag = "2")]
    pub message: Vec<u8>,
    /// Why the document was refused (responses only); empty when it was not.
    #[prost(string, tag = "3")]
    pub error: String,
}

/// The member's answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncResponse {
    /// Answers, one per document asked about.
    #[prost(message, repeated, tag = "1")]
    pub docs: Vec<DocMessage>,
    /// Documents the device may read (when listed).
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub readable: Vec<Vec<u8>>,
    /// Documents the device may write (when listed).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub writable: Vec<Vec<u8>>,
    /// Why the whole request was refused (not paired); empty when it was not.
    #[prost(string, tag = "4")]
    pub error: String,
}

/// The member side: answers device `from`'s request body.
pub async fn serve(node: &Node, from: PeerId, body: &[u8]) -> SyncResponse {
    let req = match SyncRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return SyncResponse {
                error: format!("malformed sync request: {e}"),
                ..SyncResponse::default()
            }
        }
    };
    let grant = match node.device_grant(&from.to_bytes()) {
        Ok(Some(g)) => g,
        Ok(None) => {
            return SyncResponse {
                error: format!("device {from} is not paired with this cluster"),
                ..SyncResponse::default()
            }
        }
        Err(e) => {
            return SyncResponse {
                error: e.to_string(),
                ..SyncResponse::default()
            }
        }
    };
    let session = format!("device:{from}");
    let answers = futures::stream::iter(req.docs)
        .map(|d| {
            let (grant, session) = (&grant, &session);
            async move {
                let mut out = DocMessage {
                    doc_id: d.doc_id.clone(),
                    ..DocMessage::default()
                };
                let Some(id) = DocId::from_slice(&d.doc_id) else {
                    out.error = "not a document id".into();
                    return out;
                };
                if !grant.may_read(&id.0) {
                    out.error = format!("document {id} is not granted to this device");
                    return out;
                }
                let write = grant.may_write(&id.0);
                let rights = SyncRights {
                    write,
                    create: write,
                };
                let step = async {
                    let incoming = if d.message.is_empty() {
                        None
                    } else {
                        Some(decode_sync(&d.message)?)
                    };
                    node.sync_step(session, &id, incoming, rights).await
                };
                match step.await {
                    Ok(reply) => out.message = reply.unwrap_or_default(),
                    Err(e) => out.error = e.to_string(),
                }
                out
            }
        })
        .buffer_unordered(PARALLEL_DOCS)
        .collect::<Vec<_>>()
        .await;
    let (readable, writable) = if req.list {
        (grant.readable(), grant.write_docs.clone())
    } else {
        (Vec::new(), Vec::new())
    };
    SyncResponse {
        docs: answers,
        readable,
        writable,
        error: String::new(),
    }
}

/// Why a sync pass failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The member could not be reached or did not answer.
    #[error("{0}")]
    Net(String),
    /// The member refused the request.
    #[error("refused: {0}")]
    Refused(String),
}

/// The device side: keeps this node's granted documents in sync with one cluster member.
pub struct DeviceSyncer {
    node: Node,
    peer: PeerId,
    addr: Multiaddr,
    /// Bumped after a failure, so sync states start over on the next connection (the
    /// protocol's advice: in-flight assumptions do not survive a disconnect).
    epoch: u64,
}

/// The PeerId a `--sync-with` address names (its `/p2p/…` part).
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

impl DeviceSyncer {
    /// A syncer for the member at `addr` (which must end in `/p2p/PEER`).
    pub fn new(node: Node, addr: Multiaddr) -> Result<Self, String> {
        let peer = peer_of(&addr)
            .ok_or_else(|| format!("--sync-with {addr}: the address must end in /p2p/PEER_ID"))?;
        Ok(DeviceSyncer {
            node,
            peer,
            addr,
            epoch: 0,
        })
    }

    /// Runs until the task is aborted: a pass, then a pause, forever.
    pub async fn run(mut self, every: Duration) {
        let mut failing = false;
        loop {
            match self.pass().await {
                Ok(moved) => {
                    if failing {
                        tracing::info!(peer = %self.peer, "document sync reconnected");
                    }
                    failing = false;
                    if moved > 0 {
                        tracing::debug!(peer = %self.peer, moved, "documents synced");
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(peer = %self.peer, error = %e, "document sync failed; retrying");
                    }
                    failing = true;
                    self.epoch += 1;
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    fn session(&self) -> String {
        format!("peer:{}:{}", self.peer, self.epoch)
    }

    async fn exchange(&self, req: &SyncRequest) -> Result<SyncResponse, SyncError> {
        let net = self.node.net();
        net.add_peer_address(self.peer, self.addr.clone())
            .await
            .map_err(|e| SyncError::Net(e.to_string()))?;
        let resp = net
            .request_on(
                Protocol::Sync,
                self.peer,
                RaftRequest {
                    cluster_id: self.node.cluster_id(),
                    kind: KIND_SYNC,
                    body: req.encode_to_vec(),
                },
            )
            .await
            .map_err(|e| SyncError::Net(e.to_string()))?;
        if resp.status != status::OK {
            return Err(SyncError::Refused(status::name(resp.status).to_string()));
        }
        let resp = SyncResponse::decode(resp.body.as_slice())
            .map_err(|e| SyncError::Net(format!("malformed answer: {e}")))?;
        if !resp.error.is_empty() {
            return Err(SyncError::Refused(resp.error));
        }
        Ok(resp)
    }

    /// One pass: list the grant, then exchange messages until neither side has more (or
    /// [`MAX_ROUNDS`]). Answers how many document messages were exchanged.
    pub async fn pass(&self) -> Result<usize, SyncError> {
        let listed = self
            .exchange(&SyncRequest {
                docs: Vec::new(),
                list: true,
            })
            .await?;
        let session = self.session();
        let writable: std::collections::BTreeSet<Vec<u8>> =
            listed.writable.iter().cloned().collect();
        // First messages: ours, or an empty poll when we have nothing to say.
        let mut pending: BTreeMap<DocId, Vec<u8>> = BTreeMap::new();
        for raw in &listed.readable {
            if let Some(id) = DocId::from_slice(raw) {
                pending.insert(id, Vec::new());
            }
        }
        let mut first = true;
        let mut moved = 0;
        for _ in 0..MAX_ROUNDS {
            // Our next message for every document still in play.
            let ids: Vec<DocId> = pending.keys().copied().collect();
            let outgoing: Vec<(DocId, Option<Vec<u8>>)> = futures::stream::iter(ids)
                .map(|id| {
                    let session = &session;
                    let reply = pending.get(&id).cloned().unwrap_or_default();
                    let rights = SyncRights {
                        write: true,
                        create: true,
                    };
                    async move {
                        let incoming = if reply.is_empty() {
                            None
                        } else {
                            match decode_sync(&reply) {
                                Ok(m) => Some(m),
                                Err(e) => {
                                    tracing::warn!(doc = %id, error = %e, "bad sync reply");
                                    return (id, None);
                                }
                            }
                        };
                        match self.node.sync_step(session, &id, incoming, rights).await {
                            Ok(m) => (id, m),
                            Err(e) => {
                                tracing::warn!(doc = %id, error = %e, "document sync step failed");
                                (id, None)
                            }
                        }
                    }
                })
                .buffer_unordered(PARALLEL_DOCS)
                .collect()
                .await;
            let mut send: Vec<DocMessage> = Vec::new();
            for (id, msg) in outgoing {
                match msg {
                    Some(m) => send.push(DocMessage {
                        doc_id: id.0.to_vec(),
                        message: m,
                        error: String::new(),
                    }),
                    // Nothing from us: on the first round still ask whether they have news.
                    None if first => send.push(DocMessage {
                        doc_id: id.0.to_vec(),
                        ..DocMessage::default()
                    }),
                    None => {}
                }
            }
            first = false;
            pending.clear();
            if send.is_empty() {
                break;
            }
            moved += send.iter().filter(|d| !d.message.is_empty()).count();
            for chunk in send.chunks(DOCS_PER_REQUEST) {
                let resp = self
                    .exchange(&SyncRequest {
                        docs: chunk.to_vec(),
                        list: false,
                    })
                    .await?;
                for d in resp.docs {
                    let Some(id) = DocId::from_slice(&d.doc_id) else {
                        continue;
                    };
                    if !d.error.is_empty() {
                        if !writable.contains(&d.doc_id) {
                            tracing::debug!(doc = %id, error = %d.error, "document refused");
                        } else {
                            tracing::warn!(doc = %id, error = %d.error, "document refused");
                        }
                        continue;
                    }
                    moved += usize::from(!d.message.is_empty());
                    // Their reply (possibly none): our next step takes it in.
                    pending.insert(id, d.message);
                }
            }
            // Documents whose peer had nothing to say still get our next message if we have
            // one (e.g. changes it asked for).
        }
        Ok(moved)
    }
}

impl crate::node::network::DeviceSync for Node {
    fn sync_device(&self, from: PeerId, body: Vec<u8>) -> futures::future::BoxFuture<'_, Vec<u8>> {
        Box::pin(async move { serve(self, from, &body).await.encode_to_vec() })
    }
}
