//! Deterministic sample events for benchmarks and tests.
//!
//! [`sample_envelope`] makes a plausible [`Envelope`] of (roughly) a requested
//! encoded size. The same arguments always give the same bytes. Ids and inline
//! data are pseudo-random; an inline blob's `blob_hash` is its blake3 (the blob
//! index folds it). [`make_distinct`] turns one template into many different
//! events.

use bytes::Bytes;
use prost::Message;

use crate::v1::envelope::Event;
use crate::v1::{BlobAccepted, Envelope, PeerSeen, RequestId};
use crate::SCHEMA_VERSION;

/// `proposed_at_unix_ms` of seed 0: 2026-01-01T00:00:00Z.
const BASE_UNIX_MS: u64 = 1_767_225_600_000;
/// Sample nodes form a family cluster of this many machines.
const FAMILY_SIZE: u64 = 7;
/// Prefix of an ed25519 libp2p PeerId: identity multihash (0x00, length 36)
/// of the protobuf `PublicKey { type: Ed25519, data: <32 bytes> }`.
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
/// Agent version of sample peers; padding is appended as semver build metadata.
const AGENT_VERSION: &str = "hearth/0.1.0";
/// Encoded cost of `AGENT_VERSION` in a `PeerSeen` (tag + length + text).
const AGENT_COST: usize = AGENT_VERSION.len() + 2;
/// Protocol version of sample peers.
const PROTOCOL_VERSION: &str = "/hearth/1";
const CONTENT_TYPES: [&str; 4] = [
    "application/octet-stream",
    "text/plain; charset=utf-8",
    "application/json",
    "image/jpeg",
];

/// A deterministic, plausible event of about `payload_size` encoded bytes.
///
/// Even `kind_seed`s give a `BlobAccepted` of a small blob carried inline (the
/// inline bytes make up the size), odd ones a `PeerSeen` (addresses and the
/// agent version make up the size). When `payload_size` is below the smallest
/// `BlobAccepted`, a `PeerSeen` is made instead. For `payload_size >= 128` the
/// encoded length is within a few bytes of `payload_size` (tested to ±16);
/// below the smallest possible event (about 140 bytes) the smallest event is
/// returned.
pub fn sample_envelope(kind_seed: u64, payload_size: usize) -> Envelope {
    let blob = |pad| {
        envelope(
            kind_seed,
            Event::BlobAccepted(blob_accepted(kind_seed, pad)),
        )
    };
    if kind_seed.is_multiple_of(2) && blob(0).encoded_len() <= payload_size {
        fit(payload_size, blob)
    } else {
        fit(payload_size, |pad| {
            envelope(kind_seed, Event::PeerSeen(peer_seen(kind_seed, pad)))
        })
    }
}

/// Makes `env` (a [`sample_envelope`]) the `n`th distinct event of its template: an inline
/// blob gets `n` in its first bytes and the matching hash, so a workload built from a few
/// templates stores as many different blobs as it has events, as real traffic does. (The
/// same inline bytes accepted again are folded into one blob record that lists every copy;
/// repeating a template thousands of times measures that list, not the workload.) Other
/// events are left as they are.
pub fn make_distinct(env: &mut Envelope, n: u64) {
    let Some(Event::BlobAccepted(blob)) = env.event.as_mut() else {
        return;
    };
    let Some(data) = blob.inline_data.as_ref() else {
        return;
    };
    let mut data = data.to_vec();
    let tag = n.to_le_bytes();
    let k = data.len().min(tag.len());
    data[..k].copy_from_slice(&tag[..k]);
    blob.blob_hash = Bytes::copy_from_slice(blake3::hash(&data).as_bytes());
    blob.inline_data = Some(Bytes::from(data));
}

/// Finds a padding for `build` whose envelope encodes to `target` bytes, or
/// the closest one found in a few corrective steps (length prefixes make the
/// size not exactly linear in the padding).
fn fit(target: usize, build: impl Fn(usize) -> Envelope) -> Envelope {
    let mut pad = 0;
    let mut best = build(pad);
    let mut best_err = best.encoded_len().abs_diff(target);
    let mut current_len = best.encoded_len();
    for _ in 0..8 {
        if current_len == target {
            break;
        }
        let next = if current_len < target {
            pad + (target - current_len)
        } else {
            pad.saturating_sub(current_len - target)
        };
        if next == pad {
            break;
        }
        pad = next;
        let env = build(pad);
        current_len = env.encoded_len();
        if current_len.abs_diff(target) < best_err {
            best_err = current_len.abs_diff(target);
            best = env;
        }
    }
    best
}

/// Envelope metadata for `seed` around `event`.
fn envelope(seed: u64, event: Event) -> Envelope {
    let origin = peer_id(seed % FAMILY_SIZE);
    Envelope {
        schema_version: SCHEMA_VERSION,
        origin: origin.clone(),
        proposed_at_unix_ms: BASE_UNIX_MS + seed.wrapping_mul(37) % (365 * 86_400_000),
        request_id: Some(RequestId {
            node: origin,
            seq: seed / FAMILY_SIZE + 1,
        }),
        event: Some(event),
    }
}

/// A small blob of `pad` bytes carried inline.
fn blob_accepted(seed: u64, pad: usize) -> BlobAccepted {
    let mut rng = SplitMix64(seed ^ 0xb10b);
    let data = rng.bytes(pad);
    BlobAccepted {
        // A valid inline blob: the hash is the bytes' (the blob index folds it).
        blob_hash: Bytes::copy_from_slice(blake3::hash(&data).as_bytes()),
        size: pad as u64,
        erasure: None,
        shard_hashes: Vec::new(),
        stripe_hashes: Vec::new(),
        inline_data: Some(data),
        accepted_by: peer_id(seed % FAMILY_SIZE),
        content_type: CONTENT_TYPES[(seed / 2 % 4) as usize].to_owned(),
    }
}

/// A peer sighting whose variable fields take about `pad` encoded bytes.
fn peer_seen(seed: u64, pad: usize) -> PeerSeen {
    let mut rng = SplitMix64(seed ^ 0x5ee1);
    // Some other member of the family than the origin (`seed % FAMILY_SIZE`).
    let peer = (seed % FAMILY_SIZE + 1 + seed / 2 % (FAMILY_SIZE - 1)) % FAMILY_SIZE;
    let mut seen = PeerSeen {
        peer_id: peer_id(peer),
        addresses: Vec::new(),
        latency_us: 150 + rng.next() % 20_000,
        agent_version: String::new(),
        protocol_version: String::new(),
    };
    let mut left = pad;
    if left >= PROTOCOL_VERSION.len() + 2 + AGENT_COST {
        seen.protocol_version = PROTOCOL_VERSION.to_owned();
        left -= PROTOCOL_VERSION.len() + 2;
    }
    for i in 0.. {
        let addr = address(peer, i);
        let cost = string_cost(&addr);
        if left < cost + AGENT_COST {
            break;
        }
        seen.addresses.push(addr);
        left -= cost;
    }
    if left >= AGENT_COST {
        seen.agent_version = AGENT_VERSION.to_owned();
        left -= AGENT_COST;
        if left > 0 {
            // Semver build metadata: "+" and hex digits.
            seen.agent_version.push('+');
            for _ in 1..left {
                let digit = (rng.next() % 16) as u32;
                seen.agent_version
                    .push(char::from_digit(digit, 16).unwrap_or('0'));
            }
        }
    }
    seen
}

/// The `i`th multiaddr of sample node `node`.
fn address(node: u64, i: usize) -> String {
    let host = 10 + node * 31 % 200 + (i / 3) as u64;
    match i % 3 {
        0 => format!("/ip4/192.168.1.{host}/tcp/4001"),
        1 => format!("/ip4/192.168.1.{host}/udp/4001/quic-v1"),
        _ => format!("/ip6/fd00::{host:x}/tcp/4001"),
    }
}

/// Encoded cost of a string field: tag, length varint, text.
fn string_cost(s: &str) -> usize {
    1 + prost::encoding::encoded_len_varint(s.len() as u64) + s.len()
}

/// The libp2p PeerId bytes of sample node `node`.
fn peer_id(node: u64) -> Bytes {
    let mut id = PEER_ID_PREFIX.to_vec();
    id.extend_from_slice(&SplitMix64(0x9e11 + node).bytes(32));
    Bytes::from(id)
}

/// SplitMix64: a tiny deterministic generator; not for cryptography.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        Bytes::from(out)
    }
}
