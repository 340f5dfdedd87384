//! Peers and reputation on a node: what the swarm sees becomes `PeerSeen` events
//! (rate-limited: one per connected member per `--peer-seen-every` ([`PEER_SEEN_EVERY`] by
//! default), or at once when its addresses or agent change; none for a member whose connection
//! closed or that has not answered a ping for [`SILENT_AFTER`], so the log's last sighting of a
//! member is when it was last really there), what transfers from peers did becomes
//! `TransferOutcome` events (summed per peer and reported every [`REPORT_EVERY`]), and the
//! reputation projection (`peers-1`) turns both (and the scrubber's `ShardsScrubbed` reports,
//! [`super::scrubber`]) into counters; scores are computed when asked
//! ([`hearth_projections::score`]) and used by
//! placement and by reads (better peers first).

use super::batcher::Committed;
use super::{now_ms, Node, NodeError};
use crate::net::Observation;
use bytes::Bytes;
use hearth_projections::{PeerRecord, PeersProjection, Score};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{Envelope, PeerSeen, TransferOutcome};
use libp2p::PeerId;
use prost::Message as _;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// By default, at most one `PeerSeen` per member per this interval, unless something changed.
pub const PEER_SEEN_EVERY: Duration = Duration::from_secs(60);

/// A member nothing was heard from (identify, ping: libp2p pings every 15 s) for this long is
/// no longer reported as seen, even if its connection has not closed yet.
pub const SILENT_AFTER: Duration = Duration::from_secs(45);

/// Transfer outcomes are reported this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Transfer outcomes not yet reported, per peer (PeerId bytes).
pub type PendingTransfers = parking_lot::Mutex<HashMap<Vec<u8>, TransferOutcome>>;

impl Node {
    /// Counts a transfer from `peer`: completed (`ok`, with its bytes and duration) or failed;
    /// `bad_data` when the bytes did not verify.
    pub fn record_transfer(&self, peer: &[u8], ok: bool, bytes: u64, micros: u64, bad_data: bool) {
        if peer == self.peer_id().to_bytes().as_slice() {
            return;
        }
        let mut pending = self.inner.transfers.lock();
        let t = pending
            .entry(peer.to_vec())
            .or_insert_with(|| TransferOutcome {
                peer_id: Bytes::copy_from_slice(peer),
                ..TransferOutcome::default()
            });
        if ok {
            t.transfers_ok += 1;
            t.bytes += bytes;
            t.micros += micros;
        } else {
            t.transfers_failed += 1;
        }
        if bad_data {
            t.bad_data += 1;
        }
    }

    /// Every peer in the reputation table, with its counters.
    pub fn peer_records(&self) -> Result<Vec<(Vec<u8>, PeerRecord)>, NodeError> {
        let rows = self
            .inner
            .sm
            .with_store(|s| s.scan_prefix(PeersProjection::NAME, PeersProjection::PREFIX))?
            .map_err(|e| NodeError::Blob(format!("reading the peer table: {e}")))?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| Some((k.get(1..)?.to_vec(), PeersProjection::decode(&v)?)))
            .collect())
    }

    /// The score of `peer` now (a peer the table does not know gets a neutral score).
    pub fn peer_score(&self, peer: &[u8]) -> Score {
        let key = PeersProjection::key(peer);
        let record = self
            .inner
            .sm
            .with_store(|s| s.get(PeersProjection::NAME, &key))
            .ok()
            .and_then(Result::ok)
            .flatten()
            .and_then(|v| PeersProjection::decode(&v))
            .unwrap_or_default();
        hearth_projections::score(&record, now_ms())
    }

    /// PeerId bytes of every member (voters and learners).
    pub fn member_peers(&self) -> Vec<Vec<u8>> {
        super::member_peers(&self.metrics())
            .into_iter()
            .map(|p| p.to_bytes())
            .collect()
    }

    /// Proposes a background event (peer sightings, transfer outcomes, scrub results); a
    /// failure (no leader yet, a membership change under way) is logged at debug and reported
    /// as `None` so the caller tries again later. `Some` is where it was committed (a
    /// projection may still have rejected it: see [`Committed::rejected`]).
    pub(super) async fn propose_quietly(&self, event: Event, what: &str) -> Option<Committed> {
        let env = Envelope {
            schema_version: hearth_proto::SCHEMA_VERSION,
            event: Some(event),
            ..Envelope::default()
        };
        match self.propose(Bytes::from(env.encode_to_vec())).await {
            Ok(committed) => Some(committed),
            Err(e) => {
                tracing::debug!(error = %e, "proposing {what}");
                None
            }
        }
    }

    /// Puts outcomes that could not be reported back, added to any counted since.
    fn requeue_transfer(&self, t: TransferOutcome) {
        let mut pending = self.inner.transfers.lock();
        let cur = pending
            .entry(t.peer_id.to_vec())
            .or_insert_with(|| TransferOutcome {
                peer_id: t.peer_id.clone(),
                ..TransferOutcome::default()
            });
        cur.transfers_ok += t.transfers_ok;
        cur.transfers_failed += t.transfers_failed;
        cur.bytes += t.bytes;
        cur.micros += t.micros;
        cur.bad_data += t.bad_data;
    }
}

/// What the watcher knows of one peer.
#[derive(Default)]
struct Seen {
    addresses: Vec<String>,
    agent_version: String,
    protocol_version: String,
    rtt_us: u64,
    /// When the swarm last said something about it.
    heard: Option<Instant>,
    /// What was last proposed, and when.
    proposed: Option<(Vec<String>, String, Instant)>,
}

/// Turns swarm observations of members into rate-limited `PeerSeen` events, and reports
/// transfer outcomes every [`REPORT_EVERY`].
pub(super) async fn peer_watcher(node: Node, mut rx: mpsc::Receiver<Observation>) {
    let mut seen: HashMap<PeerId, Seen> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_report = Instant::now();
    loop {
        tokio::select! {
            o = rx.recv() => match o {
                None => return,
                Some(Observation::Identified { peer, addresses, agent_version, protocol_version }) => {
                    let s = seen.entry(peer).or_default();
                    s.addresses = addresses.iter().map(ToString::to_string).collect();
                    s.agent_version = agent_version;
                    s.protocol_version = protocol_version;
                    s.heard = Some(Instant::now());
                }
                Some(Observation::RoundTrip { peer, rtt }) => {
                    let s = seen.entry(peer).or_default();
                    s.rtt_us = rtt.as_micros() as u64;
                    s.heard = Some(Instant::now());
                }
                Some(Observation::Gone { peer }) => {
                    // Reported again (at once) when it reconnects and identifies itself.
                    seen.remove(&peer);
                }
            },
            _ = tick.tick() => {
                if node.ready().is_err() {
                    continue;
                }
                let members = node.member_peers();
                let me = node.peer_id();
                let every = node.inner.settings.peer_seen_every;
                for (peer, s) in seen.iter_mut() {
                    if *peer == me || !members.contains(&peer.to_bytes()) || s.addresses.is_empty() {
                        continue;
                    }
                    if s.heard.is_none_or(|t| t.elapsed() > SILENT_AFTER) {
                        continue;
                    }
                    let due = match &s.proposed {
                        None => true,
                        Some((addrs, agent, at)) => {
                            *addrs != s.addresses || *agent != s.agent_version || at.elapsed() >= every
                        }
                    };
                    if !due {
                        continue;
                    }
                    s.proposed = Some((s.addresses.clone(), s.agent_version.clone(), Instant::now()));
                    let event = Event::PeerSeen(PeerSeen {
                        peer_id: Bytes::from(peer.to_bytes()),
                        addresses: s.addresses.clone(),
                        latency_us: s.rtt_us,
                        agent_version: s.agent_version.clone(),
                        protocol_version: s.protocol_version.clone(),
                    });
                    if node.propose_quietly(event, "a peer sighting").await.is_none() {
                        // Not in the log: try again at the next tick, not a minute later.
                        s.proposed = None;
                    }
                }
                if last_report.elapsed() >= REPORT_EVERY {
                    last_report = Instant::now();
                    let pending: Vec<TransferOutcome> =
                        node.inner.transfers.lock().drain().map(|(_, t)| t).collect();
                    for t in pending {
                        if node.propose_quietly(Event::TransferOutcome(t.clone()), "transfer outcomes").await.is_none() {
                            node.requeue_transfer(t);
                        }
                    }
                }
            }
        }
    }
}
