//! openraft's network on the node's libp2p transport: [`Network`] (the `RaftNetworkFactory`),
//! [`Conn`] (one target's `RaftNetwork`) and [`Inbound`] (the `/hearth/raft/1` request handler
//! that feeds received RPCs to the local raft).
//!
//! Each RPC is one request on `/hearth/raft/1`: `kind` from [`hearth_raft::rpc::kind`] (plus
//! [`FORWARD_WRITE`] for a client write a follower forwards to its leader), body encoded by
//! [`hearth_raft::rpc`]. The transport has already checked the cluster id and that the sender
//! is a member before [`Inbound`] sees a request; a body that does not decode is answered
//! `MALFORMED` and changes nothing.

use crate::net::{
    status, NetError, NetHandle, RaftInbound, RaftRequest, RaftResponse, MAX_RAFT_BODY,
};
use crate::node::forward::{self, ForwardReply};
use futures::future::BoxFuture;
use hearth_raft::rpc::{self, kind, ReplyOutcome};
use hearth_raft::{HearthNode, NodeId, TypeConfig};
use libp2p::{Multiaddr, PeerId};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::Raft;
use std::sync::{Arc, OnceLock};

/// Request kind of a client write forwarded from a follower to the leader (body: the event
/// envelope; answer: a [`ForwardReply`]).
pub const FORWARD_WRITE: u8 = 16;

/// A message-carrying error for openraft's error wrappers.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Msg(pub String);

/// openraft's network factory: one [`Conn`] per target.
#[derive(Clone)]
pub struct Network {
    net: NetHandle,
    cluster_id: [u8; 16],
}

impl Network {
    /// A factory sending through `net` with `cluster_id` in every request.
    pub fn new(net: NetHandle, cluster_id: [u8; 16]) -> Self {
        Network { net, cluster_id }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, node: &HearthNode) -> Conn {
        let peer = node.peer_id.parse::<PeerId>().ok();
        if let Some(peer) = peer {
            for addr in node
                .addrs
                .iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
            {
                let _ = self.net.add_peer_address(peer, addr).await;
            }
        }
        Conn {
            net: self.net.clone(),
            cluster_id: self.cluster_id,
            target,
            peer,
            peer_text: node.peer_id.clone(),
        }
    }
}

/// One raft target: sends RPCs to its PeerId.
pub struct Conn {
    net: NetHandle,
    cluster_id: [u8; 16],
    target: NodeId,
    peer: Option<PeerId>,
    peer_text: String,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, HearthNode, RaftError<NodeId, E>>;

fn unreachable(msg: impl Into<String>) -> Unreachable {
    Unreachable::new(&Msg(msg.into()))
}

fn network(msg: impl Into<String>) -> NetworkError {
    NetworkError::new(&Msg(msg.into()))
}

impl Conn {
    /// Sends one request and returns the reply outcome, or the transport failure as openraft's
    /// error (unreachable peers are retried by openraft with backoff).
    async fn call<E: std::error::Error>(
        &self,
        kind: u8,
        body: Vec<u8>,
        option: &RPCOption,
    ) -> Result<ReplyOutcome, RpcErr<E>> {
        let peer = self.peer.ok_or_else(|| {
            RPCError::Unreachable(unreachable(format!(
                "node {} has no valid PeerId ({:?})",
                self.target, self.peer_text
            )))
        })?;
        let req = RaftRequest {
            cluster_id: self.cluster_id,
            kind,
            body,
        };
        let sent = tokio::time::timeout(option.hard_ttl(), self.net.request(peer, req)).await;
        let resp = match sent {
            Err(_) => {
                return Err(RPCError::Timeout(openraft::error::Timeout {
                    action: match kind {
                        kind::VOTE => openraft::RPCTypes::Vote,
                        kind::INSTALL_SNAPSHOT => openraft::RPCTypes::InstallSnapshot,
                        _ => openraft::RPCTypes::AppendEntries,
                    },
                    id: self.target,
                    target: self.target,
                    timeout: option.hard_ttl(),
                }))
            }
            Ok(Err(e @ (NetError::Codec(_) | NetError::Refused { .. }))) => {
                return Err(RPCError::Network(network(e.to_string())))
            }
            Ok(Err(e)) => return Err(RPCError::Unreachable(unreachable(e.to_string()))),
            Ok(Ok(resp)) => resp,
        };
        rpc::decode_reply(&resp.body)
            .map_err(|e| RPCError::Network(network(format!("undecodable reply: {e}"))))
    }

    #[allow(clippy::result_large_err)] // openraft's own error type; returned to openraft as is
    fn response<T, E: std::error::Error>(
        &self,
        outcome: ReplyOutcome,
        decode: impl FnOnce(&[u8]) -> Result<T, hearth_raft::CodecError>,
    ) -> Result<T, RpcErr<E>> {
        match outcome {
            ReplyOutcome::Response(bytes) => decode(&bytes)
                .map_err(|e| RPCError::Network(network(format!("undecodable response: {e}")))),
            ReplyOutcome::Fatal(msg) => Err(RPCError::Unreachable(unreachable(format!(
                "node {} cannot serve raft: {msg}",
                self.target
            )))),
            ReplyOutcome::SnapshotMismatch(_) => Err(RPCError::Network(network(
                "unexpected snapshot mismatch answer",
            ))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let body = rpc::encode_append_request(&req);
        if body.len() > MAX_RAFT_BODY {
            // openraft retries with at most this many entries.
            let hint = (req.entries.len() as u64 / 2).max(1);
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(hint),
            ));
        }
        let outcome = self.call(kind::APPEND_ENTRIES, body, &option).await?;
        self.response(outcome, rpc::decode_append_response)
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let body = rpc::encode_snapshot_request(&req);
        match self.call(kind::INSTALL_SNAPSHOT, body, &option).await? {
            ReplyOutcome::SnapshotMismatch(m) => Err(RPCError::RemoteError(RemoteError::new(
                self.target,
                RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m.to_openraft())),
            ))),
            other => self.response(other, rpc::decode_snapshot_response),
        }
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        let outcome = self
            .call(kind::VOTE, rpc::encode_vote_request(&req), &option)
            .await?;
        self.response(outcome, rpc::decode_vote_response)
    }
}

/// What the inbound handler needs from the node for forwarded client writes.
pub trait WriteSink: Send + Sync + 'static {
    /// Proposes `envelope` on this node, which must be the leader (no further forwarding).
    fn write_as_leader(&self, envelope: Vec<u8>) -> BoxFuture<'_, ForwardReply>;
}

/// What the inbound handler needs from the node for document sync with paired devices.
pub trait DeviceSync: Send + Sync + 'static {
    /// Answers device `from`'s `/hearth/sync/1` request body.
    fn sync_device(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'_, Vec<u8>>;
}

/// Where shard pushes (`/hearth/shard/1` kind `PUSH`) go: the node.
pub trait PushSink: Send + Sync + 'static {
    /// Answers member `from`'s push request body (an error: the body is malformed).
    fn receive_push(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>>;
}

/// The `/hearth/raft/1` handler: hands RPCs to the local raft once it exists.
#[derive(Default)]
pub struct Inbound {
    raft: OnceLock<Raft<TypeConfig>>,
    sink: OnceLock<Arc<dyn WriteSink>>,
    shards: OnceLock<crate::blobs::ShardStore>,
    devices: OnceLock<Arc<dyn DeviceSync>>,
    pushes: OnceLock<Arc<dyn PushSink>>,
}

impl Inbound {
    /// A handler with no raft yet (requests are answered "starting" until [`Inbound::set`]).
    pub fn new() -> Arc<Self> {
        Arc::new(Inbound::default())
    }

    /// Connects the handler to the node's raft and write path.
    pub fn set(
        &self,
        raft: Raft<TypeConfig>,
        sink: Arc<dyn WriteSink>,
        shards: crate::blobs::ShardStore,
        devices: Arc<dyn DeviceSync>,
        pushes: Arc<dyn PushSink>,
    ) {
        let _ = self.raft.set(raft);
        let _ = self.sink.set(sink);
        let _ = self.shards.set(shards);
        let _ = self.devices.set(devices);
        let _ = self.pushes.set(pushes);
    }
}

fn fatal(msg: impl std::fmt::Display) -> Vec<u8> {
    rpc::encode_reply(ReplyOutcome::Fatal(msg.to_string()))
}

fn ok(body: Vec<u8>) -> Vec<u8> {
    rpc::encode_reply(ReplyOutcome::Response(body))
}

impl Inbound {
    async fn answer(&self, req: RaftRequest) -> Result<Vec<u8>, hearth_raft::CodecError> {
        if req.kind == FORWARD_WRITE {
            let Some(sink) = self.sink.get() else {
                return Ok(forward::encode(&ForwardReply::unavailable(
                    "node is starting",
                )));
            };
            return Ok(forward::encode(&sink.write_as_leader(req.body).await));
        }
        let Some(raft) = self.raft.get() else {
            // Decode anyway so a malformed body is reported as such.
            match req.kind {
                kind::VOTE => {
                    rpc::decode_vote_request(&req.body)?;
                }
                kind::APPEND_ENTRIES => {
                    rpc::decode_append_request(&req.body)?;
                }
                kind::INSTALL_SNAPSHOT => {
                    rpc::decode_snapshot_request(&req.body)?;
                }
                _ => {}
            }
            return Ok(fatal("node is starting"));
        };
        Ok(match req.kind {
            kind::VOTE => match raft.vote(rpc::decode_vote_request(&req.body)?).await {
                Ok(resp) => ok(rpc::encode_vote_response(&resp)),
                Err(e) => fatal(e),
            },
            kind::APPEND_ENTRIES => {
                match raft
                    .append_entries(rpc::decode_append_request(&req.body)?)
                    .await
                {
                    Ok(resp) => ok(rpc::encode_append_response(&resp)),
                    Err(e) => fatal(e),
                }
            }
            kind::INSTALL_SNAPSHOT => {
                match raft
                    .install_snapshot(rpc::decode_snapshot_request(&req.body)?)
                    .await
                {
                    Ok(resp) => ok(rpc::encode_snapshot_response(&resp)),
                    Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                        rpc::encode_reply(ReplyOutcome::SnapshotMismatch((&m).into()))
                    }
                    Err(e) => fatal(e),
                }
            }
            other => return Err(unknown_kind(other)),
        })
    }
}

fn unknown_kind(kind: u8) -> hearth_raft::CodecError {
    hearth_raft::CodecError::Version {
        what: "raft rpc kind",
        version: kind,
        supported: rpc::RPC_VERSION,
    }
}

impl RaftInbound for Inbound {
    fn handle_shard(&self, from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse> {
        Box::pin(async move {
            let cluster_id = req.cluster_id;
            let (Some(shards), Some(pushes)) = (self.shards.get(), self.pushes.get()) else {
                return RaftResponse::refused(cluster_id, status::MALFORMED);
            };
            let answered = if req.kind == crate::replication::wire::kind::PUSH {
                pushes.receive_push(from, req.body).await
            } else {
                crate::replication::transfer::serve(shards, req.kind, &req.body).await
            };
            match answered {
                Ok(body) => RaftResponse::ok(cluster_id, body),
                Err(e) => {
                    tracing::warn!(%from, error = %e, "shard request refused");
                    RaftResponse::refused(cluster_id, status::MALFORMED)
                }
            }
        })
    }

    fn handle_sync(&self, from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse> {
        Box::pin(async move {
            let cluster_id = req.cluster_id;
            let Some(devices) = self.devices.get() else {
                return RaftResponse::refused(cluster_id, status::MALFORMED);
            };
            if req.kind != crate::docs::device_sync::KIND_SYNC {
                return RaftResponse::refused(cluster_id, status::MALFORMED);
            }
            RaftResponse::ok(cluster_id, devices.sync_device(from, req.body).await)
        })
    }

    fn handle(&self, from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse> {
        Box::pin(async move {
            let cluster_id = req.cluster_id;
            match self.answer(req).await {
                Ok(body) => RaftResponse::ok(cluster_id, body),
                Err(e) => {
                    tracing::warn!(%from, error = %e, "malformed raft request refused");
                    RaftResponse::refused(cluster_id, status::MALFORMED)
                }
            }
        })
    }
}
