//! [`PeersProjection`] (`"peers-1"`): peer reputation as raw counters, folded from `PeerSeen`,
//! `TransferOutcome` and `ShardsScrubbed` (a node's report on its own copies). The score is
//! **not** stored: [`score`] computes it (with its explanation) when asked, from the counters
//! and the asker's clock, so the digest never depends on when it is taken. A log without
//! `ShardsScrubbed` folds to the same bytes as before the scrub counters existed (zero fields
//! are not encoded), so the name stays `peers-1`.
//!
//! | key | value |
//! |---|---|
//! | `p` ‖ PeerId bytes | [`PeerRecord`] (protobuf) |

use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{Envelope, PeerSeen, ShardsScrubbed, TransferOutcome};
use prost::Message;

use crate::projection::{Applied, ApplyCtx, Projection, StateTx};

/// First byte of a peer record's key.
const PEER_TAG: u8 = b'p';

/// Most addresses kept per peer.
const MAX_ADDRESSES: usize = 16;

/// Most `bad_shards` entries a `ShardsScrubbed` may carry (the proposer caps its list here).
pub const MAX_SCRUBBED_SHARDS: usize = 64;

/// What the cluster's log says about one peer. Field tags are forever.
#[derive(Clone, PartialEq, Message)]
pub struct PeerRecord {
    /// `PeerSeen` events about it.
    #[prost(uint64, tag = "1")]
    pub seen_count: u64,
    /// Log time (Unix ms) it was first seen.
    #[prost(uint64, tag = "2")]
    pub first_seen_log_ms: u64,
    /// Log time (Unix ms) it was last seen.
    #[prost(uint64, tag = "3")]
    pub last_seen_log_ms: u64,
    /// Addresses it was last seen at (multiaddr text).
    #[prost(string, repeated, tag = "4")]
    pub addresses: Vec<String>,
    /// Agent version it last reported.
    #[prost(string, tag = "5")]
    pub agent_version: String,
    /// Sum of the ping round trips reported, µs.
    #[prost(uint64, tag = "6")]
    pub latency_sum_us: u64,
    /// Ping round trips reported.
    #[prost(uint64, tag = "7")]
    pub latency_samples: u64,
    /// Transfers from it that completed.
    #[prost(uint64, tag = "8")]
    pub transfers_ok: u64,
    /// Transfers from it that failed.
    #[prost(uint64, tag = "9")]
    pub transfers_failed: u64,
    /// Bytes received from it.
    #[prost(uint64, tag = "10")]
    pub bytes: u64,
    /// Total time of the completed transfers, µs.
    #[prost(uint64, tag = "11")]
    pub transfer_micros: u64,
    /// Bytes it served that failed verification (counted per shard or range).
    #[prost(uint64, tag = "12")]
    pub bad_data: u64,
    /// Scrub passes it reported over its own copies (`ShardsScrubbed` events about it).
    #[prost(uint64, tag = "13")]
    pub scrub_passes: u64,
    /// Bytes its scrub passes read.
    #[prost(uint64, tag = "14")]
    pub scrubbed_bytes: u64,
    /// Copies its scrub passes found bad in its own store (rotten, short or missing).
    #[prost(uint64, tag = "15")]
    pub scrub_bad: u64,
    /// Of those, the copies it replaced by a verified copy.
    #[prost(uint64, tag = "16")]
    pub scrub_repaired: u64,
    /// Log time (Unix ms) of its last scrub report.
    #[prost(uint64, tag = "17")]
    pub last_scrub_log_ms: u64,
}

/// The peer reputation table.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeersProjection;

impl PeersProjection {
    /// Versioned name and column family.
    pub const NAME: &'static str = "peers-1";

    /// Prefix of every key.
    pub const PREFIX: &'static [u8] = &[PEER_TAG];

    /// Key of a peer's record.
    pub fn key(peer: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + peer.len());
        key.push(PEER_TAG);
        key.extend_from_slice(peer);
        key
    }

    /// Decodes a stored record; `None` when the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<PeerRecord> {
        PeerRecord::decode(bytes).ok()
    }
}

impl Projection for PeersProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn apply(&self, ctx: &ApplyCtx, event: &Envelope, tx: &mut dyn StateTx) -> Applied {
        let result = match &event.event {
            Some(Event::PeerSeen(e)) => seen(ctx, e, tx),
            Some(Event::TransferOutcome(e)) => transfers(e, tx),
            Some(Event::ShardsScrubbed(e)) => scrubbed(ctx, &event.origin, e, tx),
            _ => Ok(()),
        };
        match result {
            Ok(()) => Applied::Ok,
            Err(reason) => Applied::Rejected(reason),
        }
    }
}

fn read(tx: &dyn StateTx, key: &[u8]) -> Result<PeerRecord, String> {
    match tx.get(key) {
        None => Ok(PeerRecord::default()),
        Some(bytes) => PeerRecord::decode(bytes.as_slice())
            .map_err(|e| format!("stored peer record is malformed: {e}")),
    }
}

fn seen(ctx: &ApplyCtx, e: &PeerSeen, tx: &mut dyn StateTx) -> Result<(), String> {
    if e.peer_id.is_empty() {
        return Err("PeerSeen without a peer".into());
    }
    let key = PeersProjection::key(&e.peer_id);
    let mut r = read(tx, &key)?;
    r.seen_count += 1;
    if r.first_seen_log_ms == 0 {
        r.first_seen_log_ms = ctx.log_time_ms;
    }
    r.last_seen_log_ms = ctx.log_time_ms;
    if !e.addresses.is_empty() {
        r.addresses = e.addresses.iter().take(MAX_ADDRESSES).cloned().collect();
    }
    if !e.agent_version.is_empty() {
        r.agent_version = e.agent_version.clone();
    }
    if e.latency_us > 0 {
        r.latency_sum_us = r.latency_sum_us.saturating_add(e.latency_us);
        r.latency_samples += 1;
    }
    tx.put(&key, &r.encode_to_vec());
    Ok(())
}

fn transfers(e: &TransferOutcome, tx: &mut dyn StateTx) -> Result<(), String> {
    if e.peer_id.is_empty() {
        return Err("TransferOutcome without a peer".into());
    }
    let key = PeersProjection::key(&e.peer_id);
    let mut r = read(tx, &key)?;
    r.transfers_ok = r.transfers_ok.saturating_add(e.transfers_ok);
    r.transfers_failed = r.transfers_failed.saturating_add(e.transfers_failed);
    r.bytes = r.bytes.saturating_add(e.bytes);
    r.transfer_micros = r.transfer_micros.saturating_add(e.micros);
    r.bad_data = r.bad_data.saturating_add(e.bad_data);
    tx.put(&key, &r.encode_to_vec());
    Ok(())
}

fn scrubbed(
    ctx: &ApplyCtx,
    origin: &[u8],
    e: &ShardsScrubbed,
    tx: &mut dyn StateTx,
) -> Result<(), String> {
    if e.holder.is_empty() {
        return Err("ShardsScrubbed without a holder".into());
    }
    if libp2p_identity::PeerId::from_bytes(&e.holder).is_err() {
        return Err("ShardsScrubbed: the holder is not a PeerId".into());
    }
    if e.holder.as_ref() != origin {
        return Err("ShardsScrubbed: a node reports only its own copies (holder ≠ origin)".into());
    }
    if e.checked == 0 {
        return Err("ShardsScrubbed: a pass that checked nothing".into());
    }
    if e.bad > e.checked || e.repaired > e.bad {
        return Err(format!(
            "ShardsScrubbed: inconsistent counts (checked {}, bad {}, repaired {})",
            e.checked, e.bad, e.repaired
        ));
    }
    if e.bad_shards.len() > MAX_SCRUBBED_SHARDS || e.bad_shards.len() as u64 > e.bad {
        return Err(format!(
            "ShardsScrubbed: {} bad shards listed (at most {MAX_SCRUBBED_SHARDS}, and at most bad = {})",
            e.bad_shards.len(),
            e.bad
        ));
    }
    if e.bad_shards.iter().any(|s| s.blob_hash.len() != 32) {
        return Err("ShardsScrubbed: a bad shard's blob hash is not 32 bytes".into());
    }
    let key = PeersProjection::key(&e.holder);
    let mut r = read(tx, &key)?;
    r.scrub_passes = r.scrub_passes.saturating_add(1);
    r.scrubbed_bytes = r.scrubbed_bytes.saturating_add(e.bytes);
    r.scrub_bad = r.scrub_bad.saturating_add(e.bad);
    r.scrub_repaired = r.scrub_repaired.saturating_add(e.repaired);
    r.last_scrub_log_ms = ctx.log_time_ms;
    tx.put(&key, &r.encode_to_vec());
    Ok(())
}

/// One part of a score.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// What it measures.
    pub name: &'static str,
    /// Its weight in the score (the weights add up to 1).
    pub weight: f64,
    /// Its value in [0, 1].
    pub value: f64,
    /// Why it has that value, in words.
    pub why: String,
}

/// A peer's score in [0, 1] and how it was reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// Σ weight × value.
    pub value: f64,
    /// The components.
    pub components: Vec<Component>,
}

/// The score of `r` as seen at `now_ms` (Unix ms, the asker's clock): reliability of its
/// transfers (0.4), integrity of what it served and of its own copies (0.3:
/// `0.5^bad_data × 0.8^scrub_bad` — rot its scrub found on its own disk is a weaker sign than
/// serving bad bytes), how recently it was seen (0.2) and its round-trip time (0.1). A peer
/// with no history scores 0.75 on reliability and latency, so new members are neither
/// favoured nor shunned.
pub fn score(r: &PeerRecord, now_ms: u64) -> Score {
    let reliability =
        (r.transfers_ok as f64 + 1.0) / ((r.transfers_ok + r.transfers_failed) as f64 + 2.0);
    let integrity = 0.5f64.powf(r.bad_data as f64) * 0.8f64.powf(r.scrub_bad as f64);
    let age_h = now_ms.saturating_sub(r.last_seen_log_ms) as f64 / 3_600_000.0;
    let recency = if r.seen_count == 0 {
        0.5
    } else {
        1.0 / (1.0 + age_h / 24.0)
    };
    let avg_ms = if r.latency_samples == 0 {
        None
    } else {
        Some(r.latency_sum_us as f64 / r.latency_samples as f64 / 1000.0)
    };
    let latency = avg_ms.map_or(0.75, |ms| 1.0 / (1.0 + ms / 50.0));
    let components = vec![
        Component {
            name: "reliability",
            weight: 0.4,
            value: reliability,
            why: format!(
                "{} transfers ok, {} failed ((ok + 1) / (all + 2))",
                r.transfers_ok, r.transfers_failed
            ),
        },
        Component {
            name: "integrity",
            weight: 0.3,
            value: integrity,
            why: format!(
                "{} bad shards or ranges served (× 0.5 each), {} bad copies found by its own \
                 scrub in {} passes (× 0.8 each)",
                r.bad_data, r.scrub_bad, r.scrub_passes
            ),
        },
        Component {
            name: "recency",
            weight: 0.2,
            value: recency,
            why: if r.seen_count == 0 {
                "never seen".into()
            } else {
                format!("last seen {age_h:.1} h ago (1 / (1 + hours / 24))")
            },
        },
        Component {
            name: "latency",
            weight: 0.1,
            value: latency,
            why: avg_ms.map_or("no round trip measured".into(), |ms| {
                format!("mean round trip {ms:.2} ms (1 / (1 + ms / 50))")
            }),
        },
    ];
    let value = components
        .iter()
        .map(|c| c.weight * c.value)
        .sum::<f64>()
        .clamp(0.0, 1.0);
    Score { value, components }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemState;
    use bytes::Bytes;
    use hearth_proto::v1::ScrubbedShard;

    fn env(event: Event) -> Envelope {
        Envelope {
            schema_version: 1,
            event: Some(event),
            ..Envelope::default()
        }
    }

    fn ctx(index: u64) -> ApplyCtx {
        ApplyCtx {
            index,
            position: 0,
            log_time_ms: 10_000 + index,
            redacted: false,
        }
    }

    #[test]
    fn counts_sightings_and_transfers_and_scores_on_demand() {
        let mut st = MemState::new();
        let peer = Bytes::from_static(b"peer-a");
        let seen = Event::PeerSeen(PeerSeen {
            peer_id: peer.clone(),
            addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
            latency_us: 400,
            agent_version: "hearth/0.1.0".into(),
            protocol_version: String::new(),
        });
        assert_eq!(
            st.apply(&PeersProjection, &ctx(1), &env(seen.clone())),
            Applied::Ok
        );
        assert_eq!(st.apply(&PeersProjection, &ctx(2), &env(seen)), Applied::Ok);
        let good = Event::TransferOutcome(TransferOutcome {
            peer_id: peer.clone(),
            transfers_ok: 8,
            transfers_failed: 0,
            bytes: 1 << 20,
            micros: 5_000,
            bad_data: 0,
        });
        assert_eq!(st.apply(&PeersProjection, &ctx(3), &env(good)), Applied::Ok);
        let r = st
            .get(&PeersProjection::key(&peer))
            .and_then(|v| PeersProjection::decode(&v))
            .expect("record");
        assert_eq!(
            (r.seen_count, r.first_seen_log_ms, r.last_seen_log_ms),
            (2, 10_001, 10_002)
        );
        assert_eq!(
            (r.latency_samples, r.transfers_ok, r.bytes),
            (2, 8, 1 << 20)
        );
        let s = score(&r, 10_002);
        assert!(s.value > 0.9, "{s:?}");
        assert!((s.components.iter().map(|c| c.weight).sum::<f64>() - 1.0).abs() < 1e-9);

        // Serving bad data costs it.
        let bad = Event::TransferOutcome(TransferOutcome {
            peer_id: peer.clone(),
            transfers_ok: 1,
            bad_data: 2,
            ..TransferOutcome::default()
        });
        assert_eq!(st.apply(&PeersProjection, &ctx(4), &env(bad)), Applied::Ok);
        let worse = st
            .get(&PeersProjection::key(&peer))
            .and_then(|v| PeersProjection::decode(&v))
            .expect("record");
        assert!(score(&worse, 10_004).value < s.value - 0.2);
        // A day later it is still remembered, a little less well.
        assert!(score(&worse, 10_004 + 86_400_000).value < score(&worse, 10_004).value);
        // No peer: rejected, nothing written.
        let before = st.clone();
        let none = Event::PeerSeen(PeerSeen::default());
        assert!(matches!(
            st.apply(&PeersProjection, &ctx(5), &env(none)),
            Applied::Rejected(_)
        ));
        assert_eq!(st, before);
    }

    fn scrubbed_event(holder: &Bytes, checked: u64, bad: u64, repaired: u64) -> ShardsScrubbed {
        ShardsScrubbed {
            holder: holder.clone(),
            checked,
            bytes: checked * 1000,
            bad,
            repaired,
            bad_shards: (0..bad.min(MAX_SCRUBBED_SHARDS as u64))
                .map(|i| ScrubbedShard {
                    blob_hash: Bytes::from(vec![7u8; 32]),
                    shard_index: i as u32,
                })
                .collect(),
        }
    }

    /// An envelope proposed by `origin`.
    fn env_from(origin: &Bytes, event: Event) -> Envelope {
        Envelope {
            origin: origin.clone(),
            ..env(event)
        }
    }

    fn record(st: &MemState, peer: &[u8]) -> PeerRecord {
        st.get(&PeersProjection::key(peer))
            .and_then(|v| PeersProjection::decode(&v))
            .expect("record")
    }

    #[test]
    fn folds_scrub_reports_into_the_holders_record() {
        let mut st = MemState::new();
        let holder = Bytes::from(libp2p_identity::PeerId::random().to_bytes());
        let clean = Event::ShardsScrubbed(scrubbed_event(&holder, 7, 0, 0));
        assert_eq!(
            st.apply(&PeersProjection, &ctx(1), &env_from(&holder, clean)),
            Applied::Ok
        );
        let rot = Event::ShardsScrubbed(scrubbed_event(&holder, 7, 2, 1));
        assert_eq!(
            st.apply(&PeersProjection, &ctx(2), &env_from(&holder, rot)),
            Applied::Ok
        );
        let r = record(&st, &holder);
        assert_eq!(
            (
                r.scrub_passes,
                r.scrubbed_bytes,
                r.scrub_bad,
                r.scrub_repaired,
                r.last_scrub_log_ms
            ),
            (2, 14_000, 2, 1, 10_002)
        );
        // A scrub report is not a sighting nor a transfer.
        assert_eq!((r.seen_count, r.transfers_ok, r.bad_data), (0, 0, 0));
    }

    #[test]
    fn rejects_malformed_scrub_reports_and_writes_nothing() {
        let mut st = MemState::new();
        let holder = Bytes::from(libp2p_identity::PeerId::random().to_bytes());
        let other = Bytes::from(libp2p_identity::PeerId::random().to_bytes());
        let ok = scrubbed_event(&holder, 4, 1, 1);
        assert_eq!(
            st.apply(
                &PeersProjection,
                &ctx(1),
                &env_from(&holder, Event::ShardsScrubbed(ok.clone()))
            ),
            Applied::Ok
        );
        let too_many = ShardsScrubbed {
            bad: 100,
            checked: 100,
            bad_shards: vec![
                ScrubbedShard {
                    blob_hash: Bytes::from(vec![1u8; 32]),
                    shard_index: 0,
                };
                MAX_SCRUBBED_SHARDS + 1
            ],
            ..ok.clone()
        };
        let cases: Vec<(&str, Bytes, ShardsScrubbed)> = vec![
            (
                "no holder",
                holder.clone(),
                ShardsScrubbed {
                    holder: Bytes::new(),
                    ..ok.clone()
                },
            ),
            (
                "holder not a PeerId",
                Bytes::from_static(b"peer-a"),
                ShardsScrubbed {
                    holder: Bytes::from_static(b"peer-a"),
                    ..ok.clone()
                },
            ),
            ("about another node", other.clone(), ok.clone()),
            (
                "checked nothing",
                holder.clone(),
                ShardsScrubbed {
                    checked: 0,
                    bad: 0,
                    repaired: 0,
                    bad_shards: vec![],
                    ..ok.clone()
                },
            ),
            (
                "more bad than checked",
                holder.clone(),
                ShardsScrubbed {
                    checked: 1,
                    bad: 2,
                    ..ok.clone()
                },
            ),
            (
                "more repaired than bad",
                holder.clone(),
                ShardsScrubbed {
                    repaired: 2,
                    ..ok.clone()
                },
            ),
            ("too many bad shards", holder.clone(), too_many),
            (
                "short blob hash",
                holder.clone(),
                ShardsScrubbed {
                    bad_shards: vec![ScrubbedShard {
                        blob_hash: Bytes::from_static(b"short"),
                        shard_index: 0,
                    }],
                    ..ok.clone()
                },
            ),
        ];
        for (what, origin, e) in cases {
            let before = st.clone();
            let applied = st.apply(
                &PeersProjection,
                &ctx(2),
                &env_from(&origin, Event::ShardsScrubbed(e)),
            );
            assert!(
                matches!(applied, Applied::Rejected(_)),
                "{what}: {applied:?}"
            );
            assert_eq!(st, before, "{what}: nothing written");
        }
        assert_eq!(record(&st, &holder).scrub_passes, 1);
    }

    #[test]
    fn rot_found_by_its_own_scrub_lowers_integrity_less_than_bad_data() {
        let base = PeerRecord {
            seen_count: 3,
            last_seen_log_ms: 10_000,
            latency_sum_us: 900,
            latency_samples: 3,
            transfers_ok: 20,
            scrub_passes: 2,
            ..PeerRecord::default()
        };
        let scrub_rot = PeerRecord {
            scrub_bad: 2,
            ..base.clone()
        };
        let served_bad = PeerRecord {
            bad_data: 2,
            ..base.clone()
        };
        let (clean, rotten, bad) = (
            score(&base, 10_000),
            score(&scrub_rot, 10_000),
            score(&served_bad, 10_000),
        );
        assert!(rotten.value < clean.value, "{rotten:?} vs {clean:?}");
        assert!(bad.value < rotten.value, "{bad:?} vs {rotten:?}");
        let integrity = |s: &Score| {
            s.components
                .iter()
                .find(|c| c.name == "integrity")
                .cloned()
                .expect("integrity")
        };
        assert!((integrity(&rotten).value - 0.64).abs() < 1e-9);
        let why = integrity(&rotten).why;
        assert!(
            why.contains("2 bad copies found by its own scrub") && why.contains("0 bad shards"),
            "{why}"
        );
    }

    /// Old records (no scrub fields) encode to the same bytes as before the fields existed, so
    /// the digest of a log without `ShardsScrubbed` is unchanged.
    #[test]
    fn records_without_scrub_reports_encode_as_before() {
        #[derive(Clone, PartialEq, Message)]
        struct Before {
            #[prost(uint64, tag = "1")]
            seen_count: u64,
            #[prost(uint64, tag = "3")]
            last_seen_log_ms: u64,
            #[prost(string, repeated, tag = "4")]
            addresses: Vec<String>,
            #[prost(uint64, tag = "8")]
            transfers_ok: u64,
            #[prost(uint64, tag = "12")]
            bad_data: u64,
        }
        let now = PeerRecord {
            seen_count: 4,
            last_seen_log_ms: 99,
            addresses: vec!["/ip4/10.0.0.1/tcp/7".into()],
            transfers_ok: 3,
            bad_data: 1,
            ..PeerRecord::default()
        };
        let before = Before {
            seen_count: 4,
            last_seen_log_ms: 99,
            addresses: vec!["/ip4/10.0.0.1/tcp/7".into()],
            transfers_ok: 3,
            bad_data: 1,
        };
        assert_eq!(now.encode_to_vec(), before.encode_to_vec());
    }
}
