//! [`Node`]: one running hearth node — its identity, event log, raft, projections and libp2p
//! transport — and the operations the HTTP API and the benchmarks call on it.
//!
//! Start-up ([`Node::start`]):
//! 1. the identity key is loaded or created; `cluster.json` ([`cluster_file`]) and the log
//!    directory decide what the data directory is: a member resuming, a fresh node (founds a
//!    one-member cluster, or joins with `--join URL`), or a member that lost its raft state
//!    (refused, with what to do);
//! 2. the log ([`hearth_raft::HearthLogStore`]) and the projection state machine
//!    ([`hearth_raft::ProjectionStateMachine`], running [`CountsProjection`] and
//!    [`BlobIndexProjection`]) and the shard store (`DATA/shards`) open and recover;
//! 3. the libp2p swarm starts ([`network`]); a joiner then asks a member over HTTP to add it
//!    (the leader assigns a collision-checked node id and adds it as a learner), stores
//!    `cluster.json`, and accepts raft messages from the leader named in the reply;
//! 4. raft starts; background tasks keep the transport's member set equal to the raft
//!    membership, redial members, and (unless `--learner`) ask the leader to promote this
//!    node to voter once it has caught up.
//!
//! Writes ([`Node::propose`]) are bounded in flight (count and bytes; beyond, [`ProposeError::Busy`]
//! → HTTP 503 with `Retry-After`), a follower forwards them to the leader over
//! `/hearth/raft/1`, and the leader group-commits them ([`batcher`]: writes that arrive while
//! earlier entries commit share the next raft entry). What this module is **not**: HTTP (see [`crate::http`]) or argument parsing.

pub mod api;
mod audit_ops;
pub mod batcher;
mod blob_ops;
pub mod cluster_file;
pub mod cluster_read;
pub mod data_format;
pub mod doc_ops;
mod error;
pub mod event_feed;
pub mod forward;
pub mod gauges;
pub mod network;
pub mod peer_list;
pub mod peers;
mod redactor;
pub mod replicator;
pub mod scrubber;
pub mod settings;
pub mod shard_push;
pub mod verifier;
pub mod widener;

pub use blob_ops::RoomGuard;
pub use cluster_file::ClusterFile;
pub use error::NodeError;
pub use settings::{NodeSettings, Retention};

use crate::hex;
use crate::identity::NodeIdentity;
use crate::net::{NetConfig, NetHandle, RaftRequest};
use crate::paths::{log_dir, state_dir};
use api::{ClusterStatus, JoinReply, JoinRequest, MemberInfo, NodeInfo};
use batcher::{BatchError, Batcher, Committed};
use bytes::Bytes;
use forward::{code, ForwardReply};
use futures::future::BoxFuture;
use hearth_log::{Log, LogOptions, LogPosition};
use hearth_projections::{BlobIndexProjection, CountsProjection};
use hearth_raft::{
    HearthLogStore, HearthNode, NodeId, ProjectionStateMachine, StoreOptions, TypeConfig,
};
use libp2p::{Multiaddr, PeerId};
use network::{Inbound, Network, WriteSink, FORWARD_WRITE};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft, ServerState};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Why a write was not committed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// Too many writes in flight on this node (or on the leader): retry after a moment.
    #[error("too many writes in flight; retry shortly")]
    Busy,
    /// There is no leader right now (an election is under way): retry after a moment.
    #[error("no leader: {0}")]
    Unavailable(String),
    /// The event is not acceptable.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// The event is larger than the limit.
    #[error("event of {0} bytes exceeds the limit of {max} bytes", max = settings::MAX_EVENT_BYTES)]
    TooLarge(usize),
    /// The node failed.
    #[error("node failure: {0}")]
    Failed(String),
}

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Only the leader does this; the caller forwards to `leader_http` (if known).
    #[error("this node is not the leader")]
    NotLeader {
        /// The leader's HTTP URL, when known.
        leader_http: Option<String>,
    },
    /// The request conflicts with the cluster's state.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The node failed.
    #[error("{0}")]
    Failed(String),
}

/// What a started node reports about how it started.
#[derive(Debug, Clone)]
pub struct StartReport {
    /// `founded`, `joined` or `resumed`.
    pub how: &'static str,
    /// The log's recovery, if it dropped a torn tail: file and offset.
    pub torn_tail: Option<(std::path::PathBuf, u64)>,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    settings: NodeSettings,
    peer_id: PeerId,
    /// This node's identity key, which signs the manifests it verifies.
    signing: libp2p_identity::ed25519::Keypair,
    /// Transfer outcomes per peer not yet reported.
    transfers: peers::PendingTransfers,
    cluster: ClusterFile,
    http_url: String,
    raft: Raft<TypeConfig>,
    net: NetHandle,
    store: HearthLogStore,
    /// The archive of purged entries (with `retention = purge`).
    archive: Option<Log>,
    sm: ProjectionStateMachine,
    inflight_count: Semaphore,
    inflight_bytes: Semaphore,
    batcher: Batcher,
    shards: crate::blobs::ShardStore,
    repairer: crate::blobs::Repairer,
    cache: crate::blobs::StripeCache,
    read_budget: crate::blobs::ReadBudget,
    blob_puts: Semaphore,
    /// Disk bytes promised to uploads still writing their shards (see `Node::reserve_room`).
    room_promised: Arc<parking_lot::Mutex<u64>>,
    seq: AtomicU64,
    /// The redactor's cursor: deletions up to this log index have had their inline bytes
    /// redacted from this node's log (0 at start: the work list is checked again).
    redacted_through: AtomicU64,
    /// On the leader: voters unseen past the repair grace period, with how long (ms), as the
    /// replicator last found them.
    gone: parking_lot::Mutex<Vec<(Vec<u8>, u64)>>,
    /// Shard pushes: received and in progress, pulls running, pushes tried.
    pushes: shard_push::Pushes,
    /// Documents: actor, write locks, sync sessions.
    docs: crate::docs::DocRuntime,
    client: reqwest::Client,
    /// Applied entries for `GET /v1/events`.
    feed: event_feed::EventFeed,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    report: StartReport,
    audits: crate::audit::online::Audits,
}

/// How long start-up waits for an answer to a join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often members are redialled.
const REDIAL_EVERY: Duration = Duration::from_secs(2);
/// How long a promotion waits for a learner to catch up.
const PROMOTE_CATCH_UP: Duration = Duration::from_secs(120);
/// How long a membership change waits for one in progress to finish.
const CHANGE_RETRY: Duration = Duration::from_secs(20);
/// How far behind a learner may be when promoted.
const PROMOTE_MAX_LAG: u64 = 1000;

/// This node's clock, Unix ms (never inside a projection: there time is log time).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn raft_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Raft(e.to_string())
}

/// Whether `dir` holds a log with anything in it.
fn log_has_state(log: &Log) -> bool {
    log.last().is_some() || log.meta().is_some() || log.purged().is_some()
}

/// A node id for a new member: random (53 bits, exact in JSON), never 0, never in `taken`.
fn fresh_node_id(taken: &BTreeSet<u64>) -> u64 {
    loop {
        let id = rand::random::<u64>() & ((1 << 53) - 1);
        if id != 0 && !taken.contains(&id) {
            return id;
        }
    }
}

impl Node {
    /// Starts the node described by `settings`, whose HTTP API will be served at `http_addr`
    /// (already bound by the caller). See the module docs for the steps.
    pub async fn start(settings: NodeSettings, http_addr: SocketAddr) -> Result<Node, NodeError> {
        settings.validate().map_err(NodeError::Config)?;
        crate::metrics::install(); // once per process; the log's metrics start at recovery
        let data = settings.data_dir.clone();
        std::fs::create_dir_all(&data).map_err(|e| NodeError::io(&data, e))?;
        data_format::check_before_start(&data)?;
        let (identity, _created) =
            NodeIdentity::load_or_create(&data).map_err(|e| NodeError::Config(e.to_string()))?;
        let peer_id = identity.peer_id();
        let signing = identity
            .keypair()
            .clone()
            .try_into_ed25519()
            .map_err(|e| NodeError::Config(format!("the identity key is not ed25519: {e}")))?;
        let existing = ClusterFile::load(&data)?;
        let log_path = log_dir(&data);
        if let Some(c) = &existing {
            if !log_path.exists() {
                return Err(NodeError::LostRaftState {
                    peer_id: peer_id.to_string(),
                    cluster_id: c.cluster_id_hex(),
                    missing: log_path.display().to_string(),
                    data_dir: data.display().to_string(),
                });
            }
        }
        let log = Log::open(&log_path, LogOptions::default())?;
        if existing.is_none() && log_has_state(&log) {
            return Err(NodeError::LostClusterFile {
                data_dir: data.display().to_string(),
            });
        }
        let torn_tail = log.recovery_report().torn_tail.clone();
        // With purging on, what is purged goes to the archive first.
        let archive = match settings.retention {
            Retention::Purge => {
                let dir = settings
                    .archive_dir
                    .clone()
                    .unwrap_or_else(|| crate::paths::archive_dir(&data));
                Some(Log::open(&dir, LogOptions::default())?)
            }
            Retention::KeepAll => None,
        };
        let store = HearthLogStore::open(
            log,
            StoreOptions {
                snapshot_chain_wait: Duration::from_secs(30),
                archive: archive.clone(),
                ..StoreOptions::default()
            },
        )
        .await?;
        let docs_projection = Arc::new(hearth_projections::DocsProjection::default());
        let sm = open_state_machine(&data, store.log(), &docs_projection)?;
        data_format::record_projections(&data)?;
        let shards = crate::blobs::ShardStore::open(crate::paths::shards_dir(&data))?;
        {
            let s = store.clone();
            sm.set_chain_head_source(Some(Arc::new(move |index| {
                s.log()
                    .read(index..=index)
                    .ok()?
                    .into_iter()
                    .next()
                    .map(|r| r.chain)
            })));
            if archive.is_some() {
                // Purging: every current snapshot is archived, signed, before raft may purge
                // what it covers, so an audit can start from it.
                let dir = crate::paths::snapshot_archive_dir(&data);
                let key = signing.clone();
                sm.set_on_current(Some(Arc::new(move |info, stream| {
                    match crate::audit::signed_snapshot::archive(&dir, &key, info, stream) {
                        Ok(path) => tracing::info!(
                            snapshot = %info.snapshot_id,
                            path = %path.display(),
                            "archived a signed snapshot"
                        ),
                        Err(e) => tracing::warn!(
                            snapshot = %info.snapshot_id,
                            error = %e,
                            "could not archive a signed snapshot (audits start from the \
                             archived log instead)"
                        ),
                    }
                })));
            }
            let s = store.clone();
            sm.set_on_install(Some(Arc::new(move |info| {
                if let (Some(id), Some(chain)) = (info.last_log_id, info.chain_head) {
                    s.set_snapshot_chain(LogPosition {
                        index: id.index,
                        term: id.leader_id.term,
                        chain,
                    });
                }
            })));
        }

        // A joiner learns its cluster id from the join reply, after its swarm listens.
        let inbound = Inbound::new();
        let net = NetHandle::start(
            identity.keypair(),
            NetConfig::new(
                settings.p2p.clone(),
                existing.map(|c| c.cluster_id).unwrap_or([0; 16]),
            ),
            inbound.clone(),
        )
        .await?;
        let addrs: Vec<String> = net
            .listen_addrs()
            .await?
            .iter()
            .map(|a| a.to_string())
            .collect();
        let http_url = format!("http://{http_addr}");
        let me = HearthNode {
            peer_id: peer_id.to_string(),
            addrs: addrs.clone(),
            http: http_url.clone(),
        };
        let client = reqwest::Client::builder()
            .timeout(JOIN_TIMEOUT)
            .build()
            .map_err(|e| NodeError::Config(format!("HTTP client: {e}")))?;

        let (cluster, how, joined) = match (existing, &settings.join) {
            (Some(c), join) => {
                if join.is_some() {
                    tracing::warn!(
                        "--join ignored: this data directory already belongs to cluster {}",
                        c.cluster_id_hex()
                    );
                }
                (c, "resumed", None)
            }
            (None, None) => {
                let c = ClusterFile::found(fresh_node_id(&BTreeSet::new()));
                c.store(&data)?;
                (c, "founded", None)
            }
            (None, Some(url)) => {
                let reply = join_cluster(&client, url, &settings, &me).await?;
                let id = cluster_file::parse_cluster_id(&reply.cluster_id).ok_or_else(|| {
                    NodeError::Join {
                        url: url.clone(),
                        reason: format!("bad cluster id {:?} in the reply", reply.cluster_id),
                    }
                })?;
                let c = ClusterFile {
                    cluster_id: id,
                    node_id: reply.node_id,
                };
                // Accept raft messages from the members named in the reply (the leader among
                // them) before anything else arrives.
                let members: HashSet<PeerId> = reply
                    .members
                    .iter()
                    .filter_map(|m| m.peer_id.parse().ok())
                    .collect();
                net.set_members(members).await?;
                c.store(&data)?;
                (c, "joined", Some(reply))
            }
        };
        net.set_cluster_id(cluster.cluster_id).await?;

        let config = Arc::new(
            settings
                .raft_config()
                .validate()
                .map_err(|e| NodeError::Config(e.to_string()))?,
        );
        let raft = Raft::new(
            cluster.node_id,
            config,
            Network::new(net.clone(), cluster.cluster_id),
            store.clone(),
            sm.clone(),
        )
        .await
        .map_err(raft_err)?;

        let (batcher, batch_task) = Batcher::start(raft.clone(), settings.batch);
        let (repairer, repair_task) = crate::blobs::Repairer::start(shards.clone());
        let node = Node {
            inner: Arc::new(Inner {
                batcher,
                shards,
                repairer,
                cache: crate::blobs::StripeCache::new(settings.cache_bytes),
                read_budget: crate::blobs::ReadBudget::new(settings.read_buffer_bytes),
                blob_puts: Semaphore::new(settings.max_blob_puts),
                room_promised: Arc::default(),
                inflight_count: Semaphore::new(settings.max_inflight),
                inflight_bytes: Semaphore::new(settings.max_inflight_bytes),
                seq: AtomicU64::new(now_ms() * 1000),
                redacted_through: AtomicU64::new(0),
                gone: parking_lot::Mutex::new(Vec::new()),
                pushes: Default::default(),
                docs: crate::docs::DocRuntime::new(&peer_id.to_bytes(), docs_projection),
                feed: event_feed::EventFeed::new(settings.events_buffer),
                settings,
                peer_id,
                signing,
                transfers: Default::default(),
                cluster,
                http_url,
                raft: raft.clone(),
                net: net.clone(),
                store,
                archive,
                sm,
                client,
                tasks: Mutex::new(Vec::new()),
                report: StartReport { how, torn_tail },
                audits: Default::default(),
            }),
        };
        inbound.set(
            raft.clone(),
            Arc::new(node.clone()),
            node.inner.shards.clone(),
            Arc::new(node.clone()),
            Arc::new(node.clone()),
        );
        node.inner.tasks.lock().extend([batch_task, repair_task]);
        // Known peers first, best first, in parallel: before the membership redial.
        let known = node.reconnect_known_peers().await;
        if known > 0 {
            tracing::info!(peers = known, "reconnecting to the saved peers");
        }

        if how == "founded" {
            let members = BTreeMap::from([(cluster.node_id, me)]);
            raft.initialize(members).await.map_err(raft_err)?;
        }
        node.spawn(membership_watcher(node.clone()));
        node.spawn(orphan_sweeper(node.clone()));
        node.spawn(collector(node.clone()));
        node.spawn(redialer(node.clone()));
        node.spawn(replicator::replicator(node.clone()));
        node.spawn(verifier::verifier(node.clone()));
        node.spawn(scrubber::scrubber(node.clone()));
        node.spawn(widener::widener(node.clone()));
        for addr in &node.inner.settings.sync_with {
            let syncer = crate::docs::device_sync::DeviceSyncer::new(node.clone(), addr.clone())
                .map_err(NodeError::Config)?;
            node.spawn(syncer.run(node.inner.settings.sync_every));
        }
        let (observer, observations) = tokio::sync::mpsc::channel(1024);
        node.inner.net.set_observer(observer).await?;
        node.spawn(peers::peer_watcher(node.clone(), observations));
        node.spawn(peer_list::peer_list_saver(node.clone()));
        node.spawn(event_feed::feed_task(node.clone()));
        node.spawn(gauges::sampler(node.clone()));
        if let Some(reply) = joined {
            if !node.inner.settings.learner {
                node.spawn(promote_self(node.clone(), reply));
            }
        }
        Ok(node)
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tasks.lock().push(tokio::spawn(fut));
    }

    /// How the node started.
    pub fn start_report(&self) -> &StartReport {
        &self.inner.report
    }

    /// The node's raft.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.inner.raft
    }

    /// The node's transport.
    pub fn net(&self) -> &NetHandle {
        &self.inner.net
    }

    /// The node's log store.
    pub fn store(&self) -> &HearthLogStore {
        &self.inner.store
    }

    /// The node's raft node id.
    pub fn node_id(&self) -> NodeId {
        self.inner.cluster.node_id
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> [u8; 16] {
        self.inner.cluster.cluster_id
    }

    /// The node's HTTP base URL.
    pub fn http_url(&self) -> &str {
        &self.inner.http_url
    }

    /// The admin token, if one is set.
    pub fn admin_token(&self) -> Option<&str> {
        self.inner.settings.admin_token.as_deref()
    }

    /// The token writes (events, blobs) may carry instead of the admin token, if one is set.
    pub fn api_token(&self) -> Option<&str> {
        self.inner.settings.api_token.as_deref()
    }

    /// Whether admin calls must carry the token (the HTTP listener is not on loopback).
    pub fn admin_token_required(&self) -> bool {
        !self.inner.settings.http.ip().is_loopback()
    }

    /// Ready = a leader is known and everything committed (as this node knows) is applied.
    pub fn ready(&self) -> Result<(), String> {
        let m = self.inner.raft.metrics().borrow().clone();
        if let Err(e) = &m.running_state {
            return Err(format!("raft stopped: {e}"));
        }
        if m.current_leader.is_none() {
            return Err("no leader".into());
        }
        let committed = self.inner.store.meta().committed.map(|c| c.index);
        let applied = m.last_applied.map(|a| a.index);
        if committed > applied {
            return Err(format!(
                "applying: applied {applied:?}, committed {committed:?}"
            ));
        }
        Ok(())
    }

    /// Proposes one event envelope (prost-encoded `hearth.v1.Envelope`) and waits until it is
    /// committed and applied; answers the entry's index, the event's position in it, and
    /// whether the runtime rejected it. A missing origin, request id or proposer time is filled in by
    /// this node; a client that retries after a timeout must resend the same bytes (same
    /// request id), and the retry is then recorded as a duplicate instead of applied twice.
    pub async fn propose(&self, envelope: Bytes) -> Result<Committed, ProposeError> {
        if envelope.len() > settings::MAX_EVENT_BYTES {
            return Err(ProposeError::TooLarge(envelope.len()));
        }
        let mut env = hearth_proto::decode_envelope(&envelope)
            .map_err(|e| ProposeError::Invalid(e.to_string()))?;
        let mut changed = false;
        if env.origin.is_empty() {
            env.origin = Bytes::from(self.inner.peer_id.to_bytes());
            changed = true;
        }
        if env.request_id.is_none() {
            env.request_id = Some(hearth_proto::v1::RequestId {
                node: Bytes::from(self.inner.peer_id.to_bytes()),
                seq: self.inner.seq.fetch_add(1, Ordering::Relaxed),
            });
            changed = true;
        }
        if env.proposed_at_unix_ms == 0 {
            env.proposed_at_unix_ms = now_ms();
            changed = true;
        }
        let bytes = if changed {
            env.encode_to_bytes()
        } else {
            envelope
        };
        let _count = self
            .inner
            .inflight_count
            .try_acquire()
            .map_err(|_| ProposeError::Busy)?;
        let _bytes = self
            .inner
            .inflight_bytes
            .try_acquire_many(bytes.len().max(1) as u32)
            .map_err(|_| ProposeError::Busy)?;
        match self.inner.batcher.submit(bytes.clone()).await {
            Ok(committed) => Ok(committed),
            Err(BatchError::NotLeader(Some((id, leader)))) if id != self.node_id() => {
                self.forward(&leader, bytes).await
            }
            Err(BatchError::NotLeader(_)) => Err(ProposeError::Unavailable(
                "no leader elected yet".to_string(),
            )),
            Err(BatchError::Failed(e)) => Err(ProposeError::Failed(e)),
        }
    }

    async fn forward(&self, leader: &HearthNode, bytes: Bytes) -> Result<Committed, ProposeError> {
        let peer: PeerId = leader
            .peer_id
            .parse()
            .map_err(|_| ProposeError::Unavailable("the leader's PeerId is invalid".into()))?;
        let req = RaftRequest {
            cluster_id: self.cluster_id(),
            kind: FORWARD_WRITE,
            body: bytes.to_vec(),
        };
        let resp = self
            .inner
            .net
            .request(peer, req)
            .await
            .map_err(|e| ProposeError::Unavailable(format!("forwarding to the leader: {e}")))?;
        let reply = forward::decode(&resp.body)
            .map_err(|e| ProposeError::Failed(format!("the leader's answer: {e}")))?;
        match reply.code {
            code::OK => Ok(Committed {
                index: reply.index,
                position: reply.position,
                rejected: (!reply.rejected.is_empty()).then_some(reply.rejected),
            }),
            code::BUSY => Err(ProposeError::Busy),
            code::INVALID => Err(ProposeError::Invalid(reply.message)),
            code::UNAVAILABLE => Err(ProposeError::Unavailable(reply.message)),
            _ => Err(ProposeError::Failed(reply.message)),
        }
    }

    fn metrics(&self) -> openraft::RaftMetrics<NodeId, HearthNode> {
        self.inner.raft.metrics().borrow().clone()
    }

    /// The leader's HTTP URL, when another node leads and its URL is known.
    pub fn leader_http(&self) -> Option<String> {
        let m = self.metrics();
        let leader = m.current_leader?;
        if leader == self.node_id() {
            return None;
        }
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.http.clone())
            .filter(|h| !h.is_empty())
    }

    /// Whether this node is the leader in `m`.
    fn leads(&self, m: &openraft::RaftMetrics<NodeId, HearthNode>) -> bool {
        m.current_leader == Some(self.node_id()) && m.state == ServerState::Leader
    }

    fn require_leader(&self) -> Result<openraft::RaftMetrics<NodeId, HearthNode>, AdminError> {
        let m = self.metrics();
        if self.leads(&m) {
            Ok(m)
        } else if m.current_leader.is_none() {
            Err(AdminError::Unavailable(
                "no leader elected yet; retry".into(),
            ))
        } else {
            Err(AdminError::NotLeader {
                leader_http: self.leader_http(),
            })
        }
    }

    /// Adds `req`'s node as a learner (leader only): assigns it a fresh node id, checked
    /// against every current member.
    pub async fn admit(&self, req: JoinRequest) -> Result<JoinReply, AdminError> {
        let m = self.require_leader()?;
        let peer: PeerId = req
            .peer_id
            .parse()
            .map_err(|_| AdminError::BadRequest(format!("invalid PeerId {:?}", req.peer_id)))?;
        if req.addrs.is_empty() || req.addrs.iter().any(|a| a.parse::<Multiaddr>().is_err()) {
            return Err(AdminError::BadRequest(
                "addrs must be one or more valid multiaddrs".into(),
            ));
        }
        let membership = m.membership_config.membership();
        if let Some((id, _)) = membership.nodes().find(|(_, n)| n.peer_id == req.peer_id) {
            return Err(AdminError::Conflict(format!(
                "peer {peer} is already member node {id}; if it lost its data, remove it first \
                 (hearth cluster remove {peer}) and join with a fresh data directory"
            )));
        }
        let taken: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
        let node_id = fresh_node_id(&taken);
        let node = HearthNode {
            peer_id: req.peer_id.clone(),
            addrs: req.addrs.clone(),
            http: req.http.clone(),
        };
        // Let the joiner's requests in as soon as it exists.
        self.allow_peer(peer, &node).await;
        self.retry_in_progress(|| self.inner.raft.add_learner(node_id, node.clone(), false))
            .await?;
        let status = self.status();
        Ok(JoinReply {
            cluster_id: hex::encode(&self.cluster_id()),
            node_id,
            leader_peer_id: self.inner.peer_id.to_string(),
            members: status.members,
        })
    }

    async fn allow_peer(&self, peer: PeerId, node: &HearthNode) {
        let mut members = member_peers(&self.metrics());
        members.insert(peer);
        let _ = self.inner.net.set_members(members).await;
        for addr in node_addrs(node) {
            let _ = self.inner.net.add_peer_address(peer, addr).await;
        }
    }

    /// Makes learner `node_id` a voter once it has caught up (leader only).
    pub async fn promote(&self, node_id: u64) -> Result<ClusterStatus, AdminError> {
        let m = self.require_leader()?;
        let membership = m.membership_config.membership();
        if membership.get_node(&node_id).is_none() {
            return Err(AdminError::BadRequest(format!(
                "node {node_id} is not a member"
            )));
        }
        if membership.voter_ids().any(|v| v == node_id) {
            return Ok(self.status());
        }
        let deadline = tokio::time::Instant::now() + PROMOTE_CATCH_UP;
        loop {
            let m = self.require_leader()?;
            let last = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&node_id).cloned().flatten())
                .map(|l| l.index);
            if matched.is_some_and(|i| i + PROMOTE_MAX_LAG >= last) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AdminError::Unavailable(format!(
                    "node {node_id} has not caught up (matched {matched:?}, leader at {last}); \
                     retry"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), true)
            .await?;
        let status = self.status();
        for w in &status.warnings {
            tracing::warn!("{w}");
        }
        Ok(status)
    }

    /// `change_membership`, retried while another membership change is still in progress
    /// (a promotion finishing its joint phase), for at most [`CHANGE_RETRY`].
    async fn change_membership(
        &self,
        changes: ChangeMembers<NodeId, HearthNode>,
        retain: bool,
    ) -> Result<(), AdminError> {
        self.retry_in_progress(|| self.inner.raft.change_membership(changes.clone(), retain))
            .await
    }

    /// Runs a membership change, again while another is in progress, for at most
    /// [`CHANGE_RETRY`].
    async fn retry_in_progress<F, Fut, T>(&self, mut f: F) -> Result<(), AdminError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
            Output = Result<T, RaftError<NodeId, ClientWriteError<NodeId, HearthNode>>>,
        >,
    {
        let deadline = tokio::time::Instant::now() + CHANGE_RETRY;
        loop {
            match f().await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    openraft::error::ChangeMembershipError::InProgress(_),
                ))) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(admin_raft_err(e, self)),
            }
        }
    }

    /// Removes the member with PeerId `peer_id` (leader only).
    pub async fn remove(&self, peer_id: &str) -> Result<ClusterStatus, AdminError> {
        let m = self.require_leader()?;
        let membership = m.membership_config.membership().clone();
        let Some((id, _)) = membership.nodes().find(|(_, n)| n.peer_id == peer_id) else {
            return Err(AdminError::BadRequest(format!("{peer_id} is not a member")));
        };
        let id = *id;
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(AdminError::Conflict(
                    "cannot remove the last voter; the cluster would have none".into(),
                ));
            }
            self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await?;
        } else {
            self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await?;
        }
        Ok(self.status())
    }

    /// The cluster as this node sees it (the leader also knows each member's replication).
    pub fn status(&self) -> ClusterStatus {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: Vec<u64> = membership.learner_ids().collect();
        let last = m.last_log_index;
        let is_leader = m.current_leader == Some(self.node_id());
        let members = membership
            .nodes()
            .map(|(id, n)| {
                let matched = if *id == self.node_id() {
                    last
                } else if is_leader {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(id).cloned().flatten())
                        .map(|l| l.index)
                } else {
                    None
                };
                MemberInfo {
                    node_id: *id,
                    peer_id: n.peer_id.clone(),
                    addrs: n.addrs.clone(),
                    http: n.http.clone(),
                    role: if voters.contains(id) {
                        "voter"
                    } else {
                        "learner"
                    }
                    .into(),
                    matched_index: matched,
                    lag: match (is_leader, last, matched) {
                        (true, Some(l), Some(mi)) => Some(l.saturating_sub(mi)),
                        (true, Some(l), None) => Some(l),
                        _ => None,
                    },
                }
            })
            .collect();
        let mut warnings = Vec::new();
        if voters.len().is_multiple_of(2) && !voters.is_empty() {
            warnings.push(format!(
                "the cluster has an even number of voters ({}): it tolerates no more failures \
                 than with one voter fewer; add or remove a voter",
                voters.len()
            ));
        }
        if membership.get_joint_config().len() > 1 {
            warnings.push("a membership change is in progress (joint configuration)".into());
        }
        if is_leader {
            for (peer, silent_ms) in self.inner.gone.lock().iter() {
                let peer = libp2p::PeerId::from_bytes(peer)
                    .map_or_else(|_| hex::encode(peer), |p| p.to_string());
                warnings.push(format!(
                    "member {peer} has not been seen for {} (repair grace {}): its shards are \
                     rebuilt on the other members; remove it if it is not coming back",
                    humantime::format_duration(Duration::from_secs(silent_ms / 1000)),
                    humantime::format_duration(self.inner.settings.repair_grace)
                ));
            }
        }
        ClusterStatus {
            cluster_id: hex::encode(&self.cluster_id()),
            answered_by: self.node_id(),
            leader: m.current_leader,
            leader_peer_id: m
                .current_leader
                .and_then(|l| membership.get_node(&l))
                .map(|n| n.peer_id.clone()),
            term: m.current_term,
            voters: voters.into_iter().collect(),
            learners,
            commit_index: self.inner.store.meta().committed.map(|c| c.index),
            members,
            warnings,
        }
    }

    /// This node's own state: log range and head, applied index, projection digests.
    pub fn info(&self) -> NodeInfo {
        let m = self.metrics();
        let log = self.inner.store.log();
        let digests = self
            .inner
            .sm
            .digests()
            .map(|d| {
                d.iter()
                    .map(|(name, hash)| (name.to_string(), hex::encode(hash)))
                    .collect()
            })
            .unwrap_or_default();
        NodeInfo {
            node_id: self.node_id(),
            peer_id: self.inner.peer_id.to_string(),
            cluster_id: hex::encode(&self.cluster_id()),
            state: format!("{:?}", m.state),
            first_index: log.first_index(),
            last_index: log.last().map(|p| p.index),
            head_chain: log.last().map(|p| hex::encode(&p.chain)),
            applied_index: m.last_applied.map(|a| a.index),
            digests,
            snapshot_index: m.snapshot.map(|s| s.index),
        }
    }

    /// The position (term, chain hash) of entry `index` in this node's log.
    pub fn entry(&self, index: u64) -> Option<api::EntryInfo> {
        let rec = self
            .inner
            .store
            .log()
            .read(index..=index)
            .ok()?
            .into_iter()
            .next()?;
        let envelopes_blake3 =
            match hearth_raft::codec::decode_entry(rec.index, rec.term, &rec.payload) {
                Ok(hearth_raft::Entry {
                    payload: openraft::EntryPayload::Normal(p),
                    ..
                }) => p
                    .envelopes
                    .iter()
                    .map(|e| blake3::hash(e).to_hex().to_string())
                    .collect(),
                _ => Vec::new(),
            };
        Some(api::EntryInfo {
            index: rec.index,
            term: rec.term,
            chain: hex::encode(&rec.chain),
            envelopes_blake3,
        })
    }

    /// The HTTP client the node uses to reach other members.
    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// Stops the node: raft stops (no new entries), background tasks end, the transport closes,
    /// the state machine and the log are flushed and closed.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        for t in self.inner.tasks.lock().drain(..) {
            t.abort();
        }
        // The latest view of the peers, for the next start's reconnect.
        let node = self.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || node.save_peer_list()).await {
            tracing::warn!(error = %e, "saving the peer list");
        }
        let _ = self.inner.raft.shutdown().await;
        let _ = self.inner.net.shutdown().await;
        self.inner.sm.flush()?;
        self.inner.store.sync().await?;
        Ok(())
    }
}

/// The projections every node runs; `docs` is shared with the node's document writers.
fn projections(
    docs: &Arc<hearth_projections::DocsProjection>,
) -> Vec<Arc<dyn hearth_projections::Projection>> {
    vec![
        Arc::new(CountsProjection),
        Arc::new(BlobIndexProjection),
        Arc::new(hearth_projections::PeersProjection),
        docs.clone(),
    ]
}

/// The projections every node runs, for offline readers of a node's data directory: the audit
/// and `hearth replay` rebuild exactly these.
pub fn node_projections() -> Vec<Arc<dyn hearth_projections::Projection>> {
    projections(&Arc::default())
}

/// Opens the projection state machine. A store built by an older version, without a projection
/// this one adds, is set aside (`DATA/state.replaced-<ms>`) and rebuilt from the log — the
/// projections are derived state — when the log still holds every entry; with a purged log it
/// is refused, naming the projection.
fn open_state_machine(
    data: &std::path::Path,
    log: &Log,
    docs: &Arc<hearth_projections::DocsProjection>,
) -> Result<ProjectionStateMachine, NodeError> {
    let dir = state_dir(data);
    match ProjectionStateMachine::open(&dir, projections(docs)) {
        Err(hearth_raft::StoreError::Projections(
            e @ hearth_projections::ProjectionError::NeedsRebuild { .. },
        )) if log.first_index().is_none_or(|first| first <= 1) => {
            let aside = data.join(format!("state.replaced-{}", now_ms()));
            tracing::warn!(
                reason = %e,
                aside = %aside.display(),
                "a projection is new: setting the old projection state aside and rebuilding \
                 every projection from the log"
            );
            std::fs::rename(&dir, &aside).map_err(|e| NodeError::io(&dir, e))?;
            std::fs::File::open(data)
                .and_then(|d| d.sync_all())
                .map_err(|e| NodeError::io(data, e))?;
            Ok(ProjectionStateMachine::open(&dir, projections(docs))?)
        }
        other => Ok(other?),
    }
}

fn admin_raft_err(
    e: RaftError<NodeId, ClientWriteError<NodeId, HearthNode>>,
    node: &Node,
) -> AdminError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => AdminError::NotLeader {
            leader_http: node.leader_http(),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            AdminError::Conflict(e.to_string())
        }
        RaftError::Fatal(e) => AdminError::Failed(e.to_string()),
    }
}

/// A node's listen addresses (unparsable ones skipped).
fn node_addrs(n: &HearthNode) -> Vec<Multiaddr> {
    n.addrs.iter().filter_map(|a| a.parse().ok()).collect()
}

/// Every member but `except`, as PeerId and listen addresses (unparsable PeerIds skipped).
fn member_addrs(
    m: &openraft::RaftMetrics<NodeId, HearthNode>,
    except: Option<NodeId>,
) -> Vec<(PeerId, Vec<Multiaddr>)> {
    m.membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| Some(**id) != except)
        .filter_map(|(_, n)| Some((n.peer_id.parse().ok()?, node_addrs(n))))
        .collect()
}

fn member_peers(m: &openraft::RaftMetrics<NodeId, HearthNode>) -> HashSet<PeerId> {
    member_addrs(m, None).into_iter().map(|(p, _)| p).collect()
}

impl network::PushSink for Node {
    fn receive_push(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move { Node::receive_push(self, from, &body).await })
    }
}

impl WriteSink for Node {
    fn write_as_leader(&self, envelope: Vec<u8>) -> BoxFuture<'_, ForwardReply> {
        Box::pin(async move {
            let Ok(_count) = self.inner.inflight_count.try_acquire() else {
                return ForwardReply {
                    code: code::BUSY,
                    ..ForwardReply::default()
                };
            };
            match self.inner.batcher.submit(Bytes::from(envelope)).await {
                Ok(c) => ForwardReply {
                    code: code::OK,
                    index: c.index,
                    rejected: c.rejected.unwrap_or_default(),
                    message: String::new(),
                    position: c.position,
                },
                Err(BatchError::NotLeader(_)) => {
                    ForwardReply::unavailable("the receiver is no longer the leader")
                }
                Err(BatchError::Failed(e)) => ForwardReply {
                    code: code::FAILED,
                    message: e,
                    ..ForwardReply::default()
                },
            }
        })
    }
}

/// Once, after start-up: waits until the node has applied everything committed and the grace
/// period has passed, then removes shard directories no committed blob references.
async fn orphan_sweeper(node: Node) {
    let grace = node.inner.settings.orphan_grace;
    tokio::time::sleep(grace).await;
    while node.ready().is_err() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n = node.clone();
    match tokio::task::spawn_blocking(move || n.sweep_orphans(grace)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::warn!(removed = n, "swept orphaned shard directories"),
        Ok(Err(e)) => tracing::warn!(error = %e, "sweeping orphaned shard directories"),
        Err(e) => tracing::warn!(error = %e, "sweeping orphaned shard directories"),
    }
}

/// How often the collector looks for deleted blobs' shards.
const COLLECT_EVERY: Duration = Duration::from_secs(5);

/// On every member: removes the shards of blobs deleted (by a tombstone committed anywhere)
/// and redacts their inline bytes from this node's log.
async fn collector(node: Node) {
    loop {
        tokio::time::sleep(COLLECT_EVERY).await;
        let n = node.clone();
        match tokio::task::spawn_blocking(move || n.collect_deleted()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(blobs = n, "removed the shards of deleted blobs"),
            Ok(Err(e)) => tracing::warn!(error = %e, "collecting deleted blobs"),
            Err(e) => tracing::warn!(error = %e, "collecting deleted blobs"),
        }
        match node.redact_deleted().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "redacted deleted blobs' bytes from the log"),
            Err(e) => tracing::warn!(error = %e, "redacting deleted blobs"),
        }
    }
}

/// Keeps the transport's member set (who may send raft requests) equal to the raft membership.
async fn membership_watcher(node: Node) {
    let mut rx = node.inner.raft.metrics();
    let mut last: Option<(HashSet<PeerId>, usize)> = None;
    loop {
        let (peers, voters, addrs) = {
            let m = rx.borrow_and_update();
            let voters = m.membership_config.membership().voter_ids().count();
            (member_peers(&m), voters, member_addrs(&m, None))
        };
        if last.as_ref().map(|(p, _)| p) != Some(&peers) {
            if !peers.is_empty() {
                let _ = node.inner.net.set_members(peers.clone()).await;
            }
            for (p, list) in addrs {
                for a in list {
                    let _ = node.inner.net.add_peer_address(p, a).await;
                }
            }
        }
        if last.as_ref().map(|(_, v)| *v) != Some(voters) && voters > 0 && voters.is_multiple_of(2)
        {
            tracing::warn!(
                voters,
                "the cluster has an even number of voters: it tolerates no more failures than \
                 with one fewer"
            );
        }
        last = Some((peers, voters));
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Dials every other member now and then, so a node whose address changed, or that restarted,
/// is reachable again over the connection it opens.
async fn redialer(node: Node) {
    loop {
        for (p, addrs) in member_addrs(&node.metrics(), Some(node.node_id())) {
            let _ = node.inner.net.connect(p, addrs).await;
        }
        tokio::time::sleep(REDIAL_EVERY).await;
    }
}

/// Asks the leader to make this node a voter, retrying (through elections) until it is one.
async fn promote_self(node: Node, reply: JoinReply) {
    let body = api::PromoteRequest {
        node_id: node.node_id(),
    };
    let mut fallback = reply
        .members
        .iter()
        .find(|m| m.peer_id == reply.leader_peer_id)
        .map(|m| m.http.clone());
    loop {
        let m = node.metrics();
        if m.membership_config
            .membership()
            .voter_ids()
            .any(|v| v == node.node_id())
        {
            tracing::info!("promoted to voter");
            return;
        }
        let target = node.leader_http().or_else(|| fallback.clone());
        if let Some(url) = target {
            let mut req = node
                .inner
                .client
                .post(format!("{url}/v1/admin/promote"))
                .timeout(PROMOTE_CATCH_UP + Duration::from_secs(10))
                .json(&body);
            if let Some(t) = node.admin_token() {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    // The membership change reaches this node through raft; loop to see it.
                    fallback = None;
                }
                Ok(r) => tracing::info!(status = %r.status(), "promotion not done yet; retrying"),
                Err(e) => tracing::info!(error = %e, "promotion request failed; retrying"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asks the member at `url` to add this node; follows one redirect to the leader.
async fn join_cluster(
    client: &reqwest::Client,
    url: &str,
    settings: &NodeSettings,
    me: &HearthNode,
) -> Result<JoinReply, NodeError> {
    let url = url.trim_end_matches('/').to_string();
    let err = |reason: String| NodeError::Join {
        url: url.clone(),
        reason,
    };
    let body = JoinRequest {
        peer_id: me.peer_id.clone(),
        addrs: me.addrs.clone(),
        http: me.http.clone(),
    };
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let mut req = client.post(format!("{url}/v1/admin/join")).json(&body);
        if let Some(t) = &settings.admin_token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json::<JoinReply>()
                .await
                .map_err(|e| err(format!("unreadable reply: {e}")));
        }
        let message = api::ErrorBody::message_of(&resp.text().await.unwrap_or_default());
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        return Err(err(format!("{status}: {message}")));
    }
}
