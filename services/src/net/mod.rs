//! Node-to-node transport: one libp2p swarm per node, owned by the **`hearth-net` actor task**.
//!
//! [`NetHandle::start`] builds the swarm ([`swarm`]), starts listening, and spawns the
//! `hearth-net` task (a tokio task, traced under the `hearth-net` span), which alone owns the
//! swarm. Everything else talks to it through a cheap, cloneable [`NetHandle`] that sends
//! [`Command`]s over a bounded mpsc channel and gets answers on oneshot channels:
//! [`NetHandle::dial`], [`NetHandle::request`], [`NetHandle::listen_addrs`],
//! [`NetHandle::set_members`], [`NetHandle::set_cluster_id`], [`NetHandle::stats`],
//! [`NetHandle::shutdown`].
//!
//! Raft RPCs travel on `/hearth/raft/1` ([`codec`]) as opaque bytes: this module knows nothing
//! of openraft. Shard transfers travel on `/hearth/shard/1` with the same framing, limits and
//! checks ([`NetHandle::request_on`], [`RaftInbound::handle_shard`]). Inbound requests are checked by the actor *before* any handler runs:
//! 1. the request's cluster id must be this node's, else the answer is
//!    [`status::WRONG_CLUSTER`] (counted in [`NetStats::wrong_cluster_requests`]);
//! 2. the sender's PeerId must be in the member set given to [`NetHandle::set_members`], else the
//!    answer is [`status::NOT_MEMBER`] (counted in [`NetStats::refused_requests`]).
//!
//! Accepted requests go to the [`RaftInbound`] handler, each in its own task so a slow handler
//! never blocks the swarm; the actor sends the answer back when the task finishes. Handler tasks
//! are aborted when the actor stops.

pub mod codec;
pub mod swarm;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt as _;
use libp2p::identity::Keypair;
use libp2p::request_response::{
    self, InboundFailure, OutboundFailure, OutboundRequestId, ResponseChannel,
};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument as _;

pub use codec::{status, RaftRequest, RaftResponse, MAX_RAFT_BODY, MAX_RAFT_MESSAGE};

/// Which request-response protocol a request travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `/hearth/raft/1`: raft RPCs and forwarded writes.
    Raft,
    /// `/hearth/shard/1`: shard transfers.
    Shard,
    /// `/hearth/sync/1`: document sync with paired devices (no cluster or member check here).
    Sync,
}
use swarm::{NodeBehaviourEvent, NodeSwarm};

/// Default bound on one raft request, from sending to response.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a connection with no open stream stays up.
pub const DEFAULT_IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`NetHandle::start`] waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Capacity of the command channel into the actor.
const COMMAND_CAPACITY: usize = 256;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No response within the request timeout.
    #[error("raft request timed out")]
    Timeout,
    /// The peer answered with a refusal (see [`status`]).
    #[error("raft request refused by the peer: status {status} ({})", status::name(*status))]
    Refused {
        /// The response status.
        status: u8,
    },
    /// The peer could not be reached.
    #[error("dial failed: {0}")]
    Dial(String),
    /// The `hearth-net` actor has stopped.
    #[error("the network actor has stopped")]
    Closed,
    /// A message could not be encoded or decoded (too large or malformed).
    #[error("raft message codec error: {0}")]
    Codec(String),
    /// The connection closed before the response arrived.
    #[error("connection closed before the response arrived")]
    ConnectionClosed,
    /// The peer does not speak `/hearth/raft/1`.
    #[error("the peer does not speak /hearth/raft/1")]
    UnsupportedProtocol,
    /// Building the transport or listening failed.
    #[error("transport: {0}")]
    Transport(String),
}

/// Configuration of a node's transport.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Where to listen, e.g. `/ip4/127.0.0.1/tcp/7071` (`tcp/0` picks a free port).
    pub listen: Multiaddr,
    /// This node's cluster id; requests naming another are refused.
    pub cluster_id: [u8; 16],
    /// Bound on one outbound raft request.
    pub request_timeout: Duration,
    /// Time a connection with no open stream stays up.
    pub idle_connection_timeout: Duration,
}

impl NetConfig {
    /// Defaults (10 s request timeout, 60 s idle timeout) for `listen` and `cluster_id`.
    pub fn new(listen: Multiaddr, cluster_id: [u8; 16]) -> Self {
        Self {
            listen,
            cluster_id,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_connection_timeout: DEFAULT_IDLE_CONNECTION_TIMEOUT,
        }
    }
}

/// Handles raft requests that passed the cluster and membership checks.
///
/// The future may take as long as it needs (it runs in its own task), but the requester gives up
/// after its request timeout.
pub trait RaftInbound: Send + Sync + 'static {
    /// Answers `req` from the member `from`.
    fn handle(&self, from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse>;

    /// Answers a `/hearth/shard/1` request from the member `from`. The default refuses it.
    fn handle_shard(&self, from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse> {
        let _ = from;
        Box::pin(async move { RaftResponse::refused(req.cluster_id, status::MALFORMED) })
    }

    /// Answers a `/hearth/sync/1` request from `from`, which may be any peer (a device outside
    /// the cluster): the handler checks what it may do. The default refuses it.
    fn handle_sync(&self, from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse> {
        let _ = from;
        Box::pin(async move { RaftResponse::refused(req.cluster_id, status::NOT_MEMBER) })
    }
}

/// What the swarm learned about a peer (identify, ping), for the node's peer table.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The peer identified itself.
    Identified {
        /// The peer.
        peer: PeerId,
        /// The addresses it listens on.
        addresses: Vec<Multiaddr>,
        /// Its agent version.
        agent_version: String,
        /// Its protocol version.
        protocol_version: String,
    },
    /// A ping round trip to the peer.
    RoundTrip {
        /// The peer.
        peer: PeerId,
        /// The round-trip time.
        rtt: Duration,
    },
    /// The last connection to the peer closed: it is no longer seen (until it connects again).
    Gone {
        /// The peer.
        peer: PeerId,
    },
}

/// Counters kept by the actor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Requests refused because the sender is not a member.
    pub refused_requests: u64,
    /// Requests refused because they named another cluster.
    pub wrong_cluster_requests: u64,
    /// Requests handed to the handler.
    pub handled_requests: u64,
    /// Inbound requests that failed (unreadable, too large, timed out, connection lost).
    pub inbound_failures: u64,
    /// Incoming connections that failed before being established (e.g. garbage bytes).
    pub incoming_connection_errors: u64,
}

/// Commands to the `hearth-net` actor.
enum Command {
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    Request {
        peer: PeerId,
        protocol: Protocol,
        req: RaftRequest,
        reply: oneshot::Sender<Result<RaftResponse, NetError>>,
    },
    AddPeerAddress {
        peer: PeerId,
        addr: Multiaddr,
    },
    Connect {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    SetMembers {
        members: HashSet<PeerId>,
        reply: oneshot::Sender<()>,
    },
    SetClusterId {
        cluster_id: [u8; 16],
        reply: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<NetStats>,
    },
    SetObserver {
        observer: mpsc::Sender<Observation>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handle on the `hearth-net` actor. Cloning is cheap; the actor stops on
/// [`NetHandle::shutdown`] or when every handle is dropped.
#[derive(Clone, Debug)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
}

impl NetHandle {
    /// Builds the swarm for `keypair`, listens on `config.listen` (waiting until the listener
    /// reports its address) and spawns the `hearth-net` actor. Must be called inside a tokio
    /// runtime.
    pub async fn start(
        keypair: &Keypair,
        config: NetConfig,
        inbound: Arc<dyn RaftInbound>,
    ) -> Result<NetHandle, NetError> {
        let mut swarm = swarm::build_swarm(
            keypair,
            config.request_timeout,
            config.idle_connection_timeout,
        )?;
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| NetError::Transport(format!("listen on {}: {e}", config.listen)))?;
        let wait_listening = async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { .. } => return Ok(()),
                    SwarmEvent::ListenerError { error, .. } => {
                        return Err(NetError::Transport(format!(
                            "listen on {}: {error}",
                            config.listen
                        )))
                    }
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        return Err(NetError::Transport(format!(
                            "listen on {}: listener closed: {reason:?}",
                            config.listen
                        )))
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(LISTEN_TIMEOUT, wait_listening)
            .await
            .map_err(|_| {
                NetError::Transport(format!("listen on {}: timed out", config.listen))
            })??;

        let local_peer_id = *swarm.local_peer_id();
        let (commands, rx) = mpsc::channel(COMMAND_CAPACITY);
        let actor = Actor {
            swarm,
            cluster_id: config.cluster_id,
            inbound,
            members: HashSet::new(),
            stats: NetStats::default(),
            pending_dials: HashMap::new(),
            pending_requests: HashMap::new(),
            handlers: JoinSet::new(),
            observer: None,
            identified: HashMap::new(),
        };
        let span = tracing::info_span!("hearth-net", peer = %local_peer_id);
        tokio::spawn(actor.run(rx).instrument(span));
        Ok(NetHandle {
            commands,
            local_peer_id,
        })
    }

    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Closed)?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// Connects to `addr`; returns the PeerId the remote proved (noise handshake).
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Remembers an address for `peer`, used when a request needs a new connection.
    pub async fn add_peer_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.commands
            .send(Command::AddPeerAddress { peer, addr })
            .await
            .map_err(|_| NetError::Closed)
    }

    /// Connects to `peer` at `addrs` unless already connected (best effort, does not wait): a
    /// restarted node reaches the members it knows, so they can answer over that connection even
    /// when its own address changed.
    pub async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.commands
            .send(Command::Connect { peer, addrs })
            .await
            .map_err(|_| NetError::Closed)
    }

    /// Sends `req` to `peer` and waits for its answer (bounded by the request timeout).
    ///
    /// A response whose status is not [`status::OK`] is [`NetError::Refused`]; a body larger than
    /// [`MAX_RAFT_BODY`] is [`NetError::Codec`] without anything being sent.
    pub async fn request(&self, peer: PeerId, req: RaftRequest) -> Result<RaftResponse, NetError> {
        self.request_on(Protocol::Raft, peer, req).await
    }

    /// Like [`Self::request`], on `protocol`.
    pub async fn request_on(
        &self,
        protocol: Protocol,
        peer: PeerId,
        req: RaftRequest,
    ) -> Result<RaftResponse, NetError> {
        if req.body.len() > MAX_RAFT_BODY {
            return Err(NetError::Codec(format!(
                "request body of {} bytes exceeds the limit of {MAX_RAFT_BODY} bytes",
                req.body.len()
            )));
        }
        let resp = self
            .call(|reply| Command::Request {
                peer,
                protocol,
                req,
                reply,
            })
            .await??;
        if resp.status != status::OK {
            return Err(NetError::Refused {
                status: resp.status,
            });
        }
        Ok(resp)
    }

    /// Addresses this node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Replaces the set of PeerIds allowed to send raft requests. Returns once the actor applies it.
    pub async fn set_members(&self, members: HashSet<PeerId>) -> Result<(), NetError> {
        self.call(|reply| Command::SetMembers { members, reply })
            .await
    }

    /// Sets the cluster id checked on inbound requests (a joining node learns it from the join
    /// reply, after its swarm is already listening). Returns once the actor applies it.
    pub async fn set_cluster_id(&self, cluster_id: [u8; 16]) -> Result<(), NetError> {
        self.call(|reply| Command::SetClusterId { cluster_id, reply })
            .await
    }

    /// Sends what the swarm learns about peers (identify, ping) to `observer` (dropped when the
    /// observer is behind: observations are refreshed all the time).
    pub async fn set_observer(&self, observer: mpsc::Sender<Observation>) -> Result<(), NetError> {
        self.commands
            .send(Command::SetObserver { observer })
            .await
            .map_err(|_| NetError::Closed)
    }

    /// The actor's counters.
    pub async fn stats(&self) -> Result<NetStats, NetError> {
        self.call(|reply| Command::Stats { reply }).await
    }

    /// Stops the actor: pending requests fail with [`NetError::Closed`], handler tasks are
    /// aborted, connections and listeners close. Returns once the swarm is dropped.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.call(|reply| Command::Shutdown { reply }).await
    }
}

type HandlerOutcome = (Protocol, ResponseChannel<RaftResponse>, RaftResponse);

/// The `hearth-net` actor: owns the swarm and every piece of state that goes with it.
struct Actor {
    swarm: NodeSwarm,
    cluster_id: [u8; 16],
    inbound: Arc<dyn RaftInbound>,
    members: HashSet<PeerId>,
    stats: NetStats,
    pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetError>>>,
    /// Keyed by protocol too: each request-response behaviour numbers its requests from 1, so
    /// a raft request and a shard request can share an id.
    pending_requests:
        HashMap<(Protocol, OutboundRequestId), oneshot::Sender<Result<RaftResponse, NetError>>>,
    handlers: JoinSet<HandlerOutcome>,
    observer: Option<mpsc::Sender<Observation>>,
    /// The last identify of each connected peer, given to an observer set later: identify runs
    /// once per connection, and a node's first connections (its join) come before its observer.
    identified: HashMap<PeerId, Observation>,
}

impl Actor {
    fn observe(&mut self, o: Observation) {
        if let Some(tx) = &self.observer {
            let _ = tx.try_send(o);
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        tracing::debug!("hearth-net actor started");
        let shutdown_reply = loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => break None,
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(cmd) => self.on_command(cmd),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(done) = self.handlers.join_next(), if !self.handlers.is_empty() => {
                    match done {
                        Ok((protocol, channel, resp)) => self.respond(protocol, channel, resp),
                        Err(e) => {
                            tracing::warn!(error = %e, "raft request handler failed");
                            self.stats.inbound_failures += 1;
                        }
                    }
                }
            }
        };
        self.handlers.abort_all();
        for (_, reply) in self.pending_requests.drain() {
            let _ = reply.send(Err(NetError::Closed));
        }
        for (_, reply) in self.pending_dials.drain() {
            let _ = reply.send(Err(NetError::Closed));
        }
        drop(self.swarm);
        tracing::debug!("hearth-net actor stopped");
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial(e.to_string())));
                    }
                }
            }
            Command::Request {
                peer,
                protocol,
                req,
                reply,
            } => {
                let behaviour = self.swarm.behaviour_mut();
                let id = match protocol {
                    Protocol::Raft => behaviour.raft.send_request(&peer, req),
                    Protocol::Shard => behaviour.shard.send_request(&peer, req),
                    Protocol::Sync => behaviour.sync.send_request(&peer, req),
                };
                self.pending_requests.insert((protocol, id), reply);
            }
            Command::AddPeerAddress { peer, addr } => self.swarm.add_peer_address(peer, addr),
            Command::Connect { peer, addrs } => {
                let opts = DialOpts::peer_id(peer)
                    .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                    .addresses(addrs)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::trace!(%peer, error = %e, "connect skipped");
                }
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::SetMembers { members, reply } => {
                self.members = members;
                let _ = reply.send(());
            }
            Command::SetClusterId { cluster_id, reply } => {
                self.cluster_id = cluster_id;
                let _ = reply.send(());
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats);
            }
            Command::SetObserver { observer } => {
                for o in self.identified.values() {
                    let _ = observer.try_send(o.clone());
                }
                self.observer = Some(observer);
            }
            Command::Shutdown { reply } => {
                // Handled in `run`; unreachable here, but answer anyway.
                let _ = reply.send(());
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<NodeBehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.identified.remove(&peer_id);
                self.observe(Observation::Gone { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial(error.to_string())));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                self.stats.incoming_connection_errors += 1;
                tracing::debug!(from = %send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Raft(event)) => {
                self.on_rr_event(Protocol::Raft, event)
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Shard(event)) => {
                self.on_rr_event(Protocol::Shard, event)
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Sync(event)) => {
                self.on_rr_event(Protocol::Sync, event)
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Identify(event)) => {
                tracing::trace!(?event, "identify");
                if let libp2p::identify::Event::Received { peer_id, info, .. } = event {
                    let o = Observation::Identified {
                        peer: peer_id,
                        addresses: info.listen_addrs,
                        agent_version: info.agent_version,
                        protocol_version: info.protocol_version,
                    };
                    self.identified.insert(peer_id, o.clone());
                    self.observe(o);
                }
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Ping(event)) => {
                tracing::trace!(?event, "ping");
                if let Ok(rtt) = event.result {
                    self.observe(Observation::RoundTrip {
                        peer: event.peer,
                        rtt,
                    });
                }
            }
            _ => {}
        }
    }

    fn on_rr_event(
        &mut self,
        protocol: Protocol,
        event: request_response::Event<RaftRequest, RaftResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_request(protocol, peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending_requests.remove(&(protocol, request_id)) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "raft request failed");
                if let Some(reply) = self.pending_requests.remove(&(protocol, request_id)) {
                    let _ = reply.send(Err(outbound_error(error)));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                if !matches!(error, InboundFailure::ResponseOmission) {
                    self.stats.inbound_failures += 1;
                }
                tracing::debug!(%peer, %error, "inbound raft request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        protocol: Protocol,
        peer: PeerId,
        request: RaftRequest,
        channel: ResponseChannel<RaftResponse>,
    ) {
        if protocol == Protocol::Sync {
            // Devices belong to clusters of their own: the handler checks their pairing.
            self.stats.handled_requests += 1;
            let inbound = Arc::clone(&self.inbound);
            self.handlers.spawn(async move {
                let resp = inbound.handle_sync(peer, request).await;
                (protocol, channel, resp)
            });
            return;
        }
        if request.cluster_id != self.cluster_id {
            self.stats.wrong_cluster_requests += 1;
            tracing::warn!(%peer, "raft request for another cluster refused");
            self.respond(
                protocol,
                channel,
                RaftResponse::refused(self.cluster_id, status::WRONG_CLUSTER),
            );
            return;
        }
        if !self.members.contains(&peer) {
            self.stats.refused_requests += 1;
            tracing::warn!(%peer, "raft request from a non-member refused");
            self.respond(
                protocol,
                channel,
                RaftResponse::refused(self.cluster_id, status::NOT_MEMBER),
            );
            return;
        }
        self.stats.handled_requests += 1;
        let inbound = Arc::clone(&self.inbound);
        self.handlers.spawn(async move {
            let resp = match protocol {
                Protocol::Raft => inbound.handle(peer, request).await,
                Protocol::Shard => inbound.handle_shard(peer, request).await,
                Protocol::Sync => inbound.handle_sync(peer, request).await,
            };
            (protocol, channel, resp)
        });
    }

    fn respond(
        &mut self,
        protocol: Protocol,
        channel: ResponseChannel<RaftResponse>,
        mut resp: RaftResponse,
    ) {
        // Answers always name this node's cluster, whatever the handler filled in.
        resp.cluster_id = self.cluster_id;
        if resp.body.len() > MAX_RAFT_BODY {
            tracing::error!(
                len = resp.body.len(),
                "raft handler answer exceeds MAX_RAFT_MESSAGE; answering MALFORMED"
            );
            resp = RaftResponse::refused(self.cluster_id, status::MALFORMED);
        }
        let behaviour = self.swarm.behaviour_mut();
        let sent = match protocol {
            Protocol::Raft => behaviour.raft.send_response(channel, resp),
            Protocol::Shard => behaviour.shard.send_response(channel, resp),
            Protocol::Sync => behaviour.sync.send_response(channel, resp),
        };
        if sent.is_err() {
            tracing::debug!("raft response dropped: the requester is gone");
        }
    }
}

fn outbound_error(error: OutboundFailure) -> NetError {
    match error {
        OutboundFailure::DialFailure => NetError::Dial("no connection to the peer".into()),
        OutboundFailure::Timeout => NetError::Timeout,
        OutboundFailure::ConnectionClosed => NetError::ConnectionClosed,
        OutboundFailure::UnsupportedProtocols => NetError::UnsupportedProtocol,
        OutboundFailure::Io(e) => NetError::Codec(e.to_string()),
    }
}
