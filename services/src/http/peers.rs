//! `GET /v1/peers`: every peer the reputation projection knows, with its score and the
//! explanation of that score (each component, its weight and why it has its value), best first,
//! with the raw counters (sightings, transfers, scrub reports) it was computed from.

use super::ApiError;
use crate::node::Node;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

/// Answer of `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeersReply {
    /// The peers, best score first.
    pub peers: Vec<PeerInfo>,
}

/// One peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerInfo {
    /// Its PeerId.
    pub peer_id: String,
    /// Whether it is a member of the cluster now.
    pub member: bool,
    /// Whether it is the node answering.
    pub me: bool,
    /// Score in [0, 1], computed now from the counters below.
    pub score: f64,
    /// How the score was reached.
    pub components: Vec<ScorePart>,
    /// `PeerSeen` events about it.
    pub seen_count: u64,
    /// Log time it was last seen (Unix ms).
    pub last_seen_log_ms: u64,
    /// Addresses it was last seen at.
    pub addresses: Vec<String>,
    /// Agent it reported.
    pub agent_version: String,
    /// Mean ping round trip, µs (0: none measured).
    pub mean_latency_us: u64,
    /// Transfers from it that completed.
    pub transfers_ok: u64,
    /// Transfers from it that failed.
    pub transfers_failed: u64,
    /// Bytes received from it.
    pub bytes: u64,
    /// Bad shards or ranges it served.
    pub bad_data: u64,
    /// Scrub passes it reported over its own shard copies.
    #[serde(default)]
    pub scrub_passes: u64,
    /// Bytes its scrub passes read.
    #[serde(default)]
    pub scrubbed_bytes: u64,
    /// Copies its scrub passes found bad (rotten, short or missing).
    #[serde(default)]
    pub scrub_bad: u64,
    /// Bad copies its scrub passes replaced by a verified copy.
    #[serde(default)]
    pub scrub_repaired: u64,
    /// Log time of its last scrub report (Unix ms; 0: none).
    #[serde(default)]
    pub last_scrub_log_ms: u64,
}

/// One component of a score.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScorePart {
    /// What it measures.
    pub name: String,
    /// Its weight.
    pub weight: f64,
    /// Its value in [0, 1].
    pub value: f64,
    /// Why.
    pub why: String,
}

pub(super) async fn list(State(node): State<Node>) -> Result<Json<PeersReply>, ApiError> {
    let members = node.member_peers();
    let me = node.peer_id().to_bytes();
    let records = node.peer_records().map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            e.to_string(),
        )
    })?;
    let mut peers: Vec<PeerInfo> = records
        .into_iter()
        .map(|(peer, r)| {
            let score = node.peer_score(&peer);
            PeerInfo {
                peer_id: libp2p::PeerId::from_bytes(&peer)
                    .map(|p| p.to_string())
                    .unwrap_or_else(|_| crate::hex::encode(&peer)),
                member: members.contains(&peer),
                me: peer == me,
                score: score.value,
                components: score
                    .components
                    .into_iter()
                    .map(|c| ScorePart {
                        name: c.name.to_string(),
                        weight: c.weight,
                        value: c.value,
                        why: c.why,
                    })
                    .collect(),
                seen_count: r.seen_count,
                last_seen_log_ms: r.last_seen_log_ms,
                addresses: r.addresses,
                agent_version: r.agent_version,
                mean_latency_us: r.latency_sum_us.checked_div(r.latency_samples).unwrap_or(0),
                transfers_ok: r.transfers_ok,
                transfers_failed: r.transfers_failed,
                bytes: r.bytes,
                bad_data: r.bad_data,
                scrub_passes: r.scrub_passes,
                scrubbed_bytes: r.scrubbed_bytes,
                scrub_bad: r.scrub_bad,
                scrub_repaired: r.scrub_repaired,
                last_scrub_log_ms: r.last_scrub_log_ms,
            }
        })
        .collect();
    peers.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.peer_id.cmp(&b.peer_id))
    });
    Ok(Json(PeersReply { peers }))
}
