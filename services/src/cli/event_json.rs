//! Decoded events as JSON values and as one-line text summaries, for `hearth log dump`.
//!
//! Built by hand from the prost fields (the generated types have no serde): ids and hashes are
//! lower-case hex, field names are the protobuf field names, and the event body sits under the
//! snake-case name of its `oneof` case (`"blob_accepted": {…}`).

use crate::hex;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{
    BlobAccepted, Envelope, ManifestVerified, PeerSeen, ReplicaConfirmed, ShardPlaced,
};
use serde_json::{json, Value};

/// Inline blob bytes longer than this are shown as a prefix only.
const INLINE_PREVIEW_BYTES: usize = 32;

/// A node id (libp2p PeerId bytes) in short form. PeerId bytes of ed25519 keys share a constant
/// 6-byte prefix, so the *tail* is what tells peers apart.
pub fn short_id(id: &[u8]) -> String {
    if id.is_empty() {
        "-".to_string()
    } else {
        hex::encode(&id[id.len().saturating_sub(6)..])
    }
}

/// A hash in short form (its first 8 bytes).
pub fn short_hash(h: &[u8]) -> String {
    if h.is_empty() {
        "-".to_string()
    } else {
        hex::short(h, 8)
    }
}

/// The whole envelope as JSON: metadata plus the event under its `oneof` case name.
pub fn envelope_json(env: &Envelope) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("schema_version".into(), json!(env.schema_version));
    obj.insert("origin".into(), json!(hex::encode(&env.origin)));
    obj.insert("proposed_at_unix_ms".into(), json!(env.proposed_at_unix_ms));
    obj.insert(
        "request_id".into(),
        match &env.request_id {
            Some(r) => json!({ "node": hex::encode(&r.node), "seq": r.seq }),
            None => Value::Null,
        },
    );
    if let Some(event) = &env.event {
        let (name, body) = event_json(event);
        obj.insert(name.into(), body);
    }
    Value::Object(obj)
}

/// The `oneof` case name and body of an event.
pub fn event_json(event: &Event) -> (&'static str, Value) {
    match event {
        Event::BlobAccepted(e) => ("blob_accepted", blob_accepted(e)),
        Event::ShardPlaced(e) => ("shard_placed", shard_placed(e)),
        Event::ReplicaConfirmed(e) => ("replica_confirmed", replica_confirmed(e)),
        Event::ManifestVerified(e) => ("manifest_verified", manifest_verified(e)),
        Event::PeerSeen(e) => ("peer_seen", peer_seen(e)),
        Event::BlobDeleted(e) => (
            "blob_deleted",
            json!({ "blob_hash": hex::encode(&e.blob_hash) }),
        ),
        Event::DocChanged(e) => (
            "doc_changed",
            json!({
                "doc_id": hex::encode(&e.doc_id),
                "actor": hex::encode(&e.actor),
                "change_bytes": e.change.len(),
            }),
        ),
        Event::DevicePaired(e) => (
            "device_paired",
            json!({
                "device": hex::encode(&e.device),
                "name": e.name,
                "read_docs": e.read_docs.iter().map(|d| hex::encode(d)).collect::<Vec<_>>(),
                "write_docs": e.write_docs.iter().map(|d| hex::encode(d)).collect::<Vec<_>>(),
                "revoked": e.revoked,
            }),
        ),
        Event::TransferOutcome(e) => (
            "transfer_outcome",
            json!({
                "peer_id": hex::encode(&e.peer_id),
                "transfers_ok": e.transfers_ok,
                "transfers_failed": e.transfers_failed,
                "bytes": e.bytes,
                "micros": e.micros,
                "bad_data": e.bad_data,
            }),
        ),
        Event::ShardReleased(e) => (
            "shard_released",
            json!({
                "blob_hash": hex::encode(&e.blob_hash),
                "shard_index": e.shard_index,
                "holder": hex::encode(&e.holder),
            }),
        ),
        Event::ShardsScrubbed(e) => (
            "shards_scrubbed",
            json!({
                "holder": hex::encode(&e.holder),
                "checked": e.checked,
                "bytes": e.bytes,
                "bad": e.bad,
                "repaired": e.repaired,
                "bad_shards": e.bad_shards.iter().map(|s| json!({
                    "blob_hash": hex::encode(&s.blob_hash),
                    "shard_index": s.shard_index,
                })).collect::<Vec<_>>(),
            }),
        ),
        Event::ParityAdded(e) => (
            "parity_added",
            json!({
                "blob_hash": hex::encode(&e.blob_hash),
                "accepted_index": e.accepted_index,
                "parity_shards": e.parity_shards,
                "added_shard_hashes": e.added_shard_hashes.iter().map(|h| hex::encode(h)).collect::<Vec<_>>(),
                "added_by": hex::encode(&e.added_by),
            }),
        ),
    }
}

fn hex_list(items: &[bytes::Bytes]) -> Value {
    Value::Array(items.iter().map(|b| json!(hex::encode(b))).collect())
}

fn blob_accepted(e: &BlobAccepted) -> Value {
    json!({
        "blob_hash": hex::encode(&e.blob_hash),
        "size": e.size,
        "erasure": e.erasure.as_ref().map(|p| json!({
            "data_shards": p.data_shards,
            "parity_shards": p.parity_shards,
            "stripe_size": p.stripe_size,
        })),
        "shard_hashes": hex_list(&e.shard_hashes),
        "stripe_hashes": hex_list(&e.stripe_hashes),
        "inline_data": e.inline_data.as_ref().map(|d| json!({
            "len": d.len(),
            "hex_prefix": hex::short(d, INLINE_PREVIEW_BYTES),
            "truncated": d.len() > INLINE_PREVIEW_BYTES,
        })),
        "accepted_by": hex::encode(&e.accepted_by),
        "content_type": e.content_type,
    })
}

fn shard_placed(e: &ShardPlaced) -> Value {
    json!({
        "blob_hash": hex::encode(&e.blob_hash),
        "shard_index": e.shard_index,
        "holder": hex::encode(&e.holder),
        "placement_epoch": e.placement_epoch,
        "shard_hash": hex::encode(&e.shard_hash),
        "shard_size": e.shard_size,
    })
}

fn replica_confirmed(e: &ReplicaConfirmed) -> Value {
    json!({
        "blob_hash": hex::encode(&e.blob_hash),
        "shard_index": e.shard_index,
        "holder": hex::encode(&e.holder),
        "shard_hash": hex::encode(&e.shard_hash),
        "shard_size": e.shard_size,
    })
}

fn manifest_verified(e: &ManifestVerified) -> Value {
    json!({
        "blob_hash": hex::encode(&e.blob_hash),
        "verifier": hex::encode(&e.verifier),
        "manifest_hash": hex::encode(&e.manifest_hash),
        "signature": hex::encode(&e.signature),
        "verifier_public_key": hex::encode(&e.verifier_public_key),
    })
}

fn peer_seen(e: &PeerSeen) -> Value {
    json!({
        "peer_id": hex::encode(&e.peer_id),
        "addresses": e.addresses,
        "latency_us": e.latency_us,
        "agent_version": e.agent_version,
        "protocol_version": e.protocol_version,
    })
}

/// A compact one-line summary of an event's body (no index, kind or origin).
pub fn summary(event: &Event) -> String {
    match event {
        Event::BlobAccepted(e) => {
            let layout = match (&e.inline_data, &e.erasure) {
                (Some(d), _) => format!("inline={}B", d.len()),
                (None, Some(p)) => format!("rs={}+{}", p.data_shards, p.parity_shards),
                (None, None) => "layout=?".to_string(),
            };
            let mut s = format!(
                "blob={} size={} {layout} by={}",
                short_hash(&e.blob_hash),
                e.size,
                short_id(&e.accepted_by)
            );
            if !e.content_type.is_empty() {
                s.push_str(&format!(" type={:?}", e.content_type));
            }
            s
        }
        Event::ShardPlaced(e) => format!(
            "blob={} shard={} holder={} epoch={} size={}",
            short_hash(&e.blob_hash),
            e.shard_index,
            short_id(&e.holder),
            e.placement_epoch,
            e.shard_size
        ),
        Event::ReplicaConfirmed(e) => format!(
            "blob={} shard={} holder={} size={}",
            short_hash(&e.blob_hash),
            e.shard_index,
            short_id(&e.holder),
            e.shard_size
        ),
        Event::ManifestVerified(e) => format!(
            "blob={} verifier={} manifest={}",
            short_hash(&e.blob_hash),
            short_id(&e.verifier),
            short_hash(&e.manifest_hash)
        ),
        Event::PeerSeen(e) => format!(
            "peer={} latency={}us addrs={} agent={:?}",
            short_id(&e.peer_id),
            e.latency_us,
            e.addresses.len(),
            e.agent_version
        ),
        Event::BlobDeleted(e) => format!("blob={}", short_hash(&e.blob_hash)),
        Event::DocChanged(e) => format!(
            "doc={} actor={} change={}B",
            hex::encode(&e.doc_id),
            short_id(&e.actor),
            e.change.len()
        ),
        Event::DevicePaired(e) => format!(
            "device={} name={:?} read={} write={} revoked={}",
            short_id(&e.device),
            e.name,
            e.read_docs.len(),
            e.write_docs.len(),
            e.revoked
        ),
        Event::TransferOutcome(e) => format!(
            "peer={} ok={} failed={} bytes={} bad={}",
            short_id(&e.peer_id),
            e.transfers_ok,
            e.transfers_failed,
            e.bytes,
            e.bad_data
        ),
        Event::ShardReleased(e) => format!(
            "blob={} shard={} holder={}",
            short_hash(&e.blob_hash),
            e.shard_index,
            short_id(&e.holder)
        ),
        Event::ShardsScrubbed(e) => {
            let mut s = format!(
                "holder={} checked={} bytes={} bad={} repaired={}",
                short_id(&e.holder),
                e.checked,
                e.bytes,
                e.bad,
                e.repaired
            );
            if let Some(first) = e.bad_shards.first() {
                s.push_str(&format!(
                    " first_bad={}/{}",
                    short_hash(&first.blob_hash),
                    first.shard_index
                ));
            }
            s
        }
        Event::ParityAdded(e) => format!(
            "blob={} m={} added={} by={}",
            short_hash(&e.blob_hash),
            e.parity_shards,
            e.added_shard_hashes.len(),
            short_id(&e.added_by)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::v1::RequestId;

    #[test]
    fn peer_seen_to_json_and_summary() {
        let env = Envelope {
            schema_version: 1,
            origin: vec![0, 0x24, 8, 1, 0x12, 0x20, 0xaa, 0xbb].into(),
            proposed_at_unix_ms: 7,
            request_id: Some(RequestId {
                node: vec![1].into(),
                seq: 3,
            }),
            event: Some(Event::PeerSeen(PeerSeen {
                peer_id: vec![0xab; 38].into(),
                addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
                latency_us: 250,
                agent_version: "hearth/0.1".into(),
                protocol_version: "1".into(),
            })),
        };
        let v = envelope_json(&env);
        assert_eq!(v["origin"], "002408011220aabb");
        assert_eq!(v["request_id"]["seq"], 3);
        assert_eq!(v["peer_seen"]["latency_us"], 250);
        assert_eq!(short_id(&env.origin), "08011220aabb");
        let s = summary(env.event.as_ref().expect("event"));
        assert!(s.contains("latency=250us") && s.contains("addrs=1"), "{s}");
    }

    #[test]
    fn shards_scrubbed_to_json_and_summary() {
        use hearth_proto::v1::{ScrubbedShard, ShardsScrubbed};
        let event = Event::ShardsScrubbed(ShardsScrubbed {
            holder: vec![0xab; 38].into(),
            checked: 7,
            bytes: 600_000,
            bad: 2,
            repaired: 2,
            bad_shards: vec![ScrubbedShard {
                blob_hash: vec![0xcd; 32].into(),
                shard_index: 3,
            }],
        });
        let (name, v) = event_json(&event);
        assert_eq!(name, "shards_scrubbed");
        assert_eq!(
            (v["checked"].as_u64(), v["bad"].as_u64()),
            (Some(7), Some(2))
        );
        assert_eq!(v["bad_shards"][0]["shard_index"], 3);
        assert_eq!(v["bad_shards"][0]["blob_hash"], "cd".repeat(32));
        let s = summary(&event);
        assert!(
            s.contains("holder=abababababab") && s.contains("bad=2 repaired=2"),
            "{s}"
        );
        assert!(s.contains("first_bad=cdcdcdcdcdcdcdcd/3"), "{s}");
    }
}
