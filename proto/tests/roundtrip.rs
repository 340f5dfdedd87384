//! Round trips of every message, decode errors, and sample sizes.

use bytes::Bytes;
use hearth_proto::sample::sample_envelope;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{
    BlobAccepted, Envelope, ErasureParams, ManifestVerified, PeerSeen, ReplicaConfirmed, RequestId,
    ScrubbedShard, ShardPlaced, ShardsScrubbed,
};
use hearth_proto::{decode_envelope, encode, event_kind, ProtoError, SCHEMA_VERSION};
use proptest::prelude::*;
use prost::Message;

fn filled(byte: u8, len: usize) -> Bytes {
    Bytes::from(vec![byte; len])
}

fn peer(n: u8) -> Bytes {
    let mut id = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    id.extend_from_slice(&[n; 32]);
    Bytes::from(id)
}

fn request_id() -> RequestId {
    RequestId {
        node: peer(1),
        seq: 42,
    }
}

fn erasure() -> ErasureParams {
    ErasureParams {
        data_shards: 4,
        parity_shards: 3,
        stripe_size: 1 << 20,
    }
}

fn blob_accepted() -> BlobAccepted {
    BlobAccepted {
        blob_hash: filled(0xb1, 32),
        size: 5 << 20,
        erasure: Some(erasure()),
        shard_hashes: (0..7).map(|i| filled(i, 32)).collect(),
        stripe_hashes: (0..5).map(|i| filled(0x50 + i, 32)).collect(),
        inline_data: None,
        accepted_by: peer(1),
        content_type: "image/jpeg".to_owned(),
    }
}

fn inline_blob_accepted() -> BlobAccepted {
    BlobAccepted {
        blob_hash: filled(0xb2, 32),
        size: 0,
        erasure: None,
        shard_hashes: Vec::new(),
        stripe_hashes: Vec::new(),
        inline_data: Some(Bytes::new()),
        accepted_by: peer(2),
        content_type: String::new(),
    }
}

fn shard_placed() -> ShardPlaced {
    ShardPlaced {
        blob_hash: filled(0xb1, 32),
        shard_index: 6,
        holder: peer(3),
        placement_epoch: 9,
        shard_hash: filled(6, 32),
        shard_size: 1 << 18,
    }
}

fn replica_confirmed() -> ReplicaConfirmed {
    ReplicaConfirmed {
        blob_hash: filled(0xb1, 32),
        shard_index: 6,
        holder: peer(3),
        shard_hash: filled(6, 32),
        shard_size: 1 << 18,
    }
}

fn manifest_verified() -> ManifestVerified {
    ManifestVerified {
        blob_hash: filled(0xb1, 32),
        verifier: peer(4),
        manifest_hash: filled(0x3a, 32),
        signature: filled(0x51, 64),
        verifier_public_key: filled(4, 32),
    }
}

fn peer_seen() -> PeerSeen {
    PeerSeen {
        peer_id: peer(5),
        addresses: vec![
            "/ip4/192.168.1.5/tcp/4001".to_owned(),
            "/ip4/192.168.1.5/udp/4001/quic-v1".to_owned(),
        ],
        latency_us: 1_234,
        agent_version: "hearth/0.1.0".to_owned(),
        protocol_version: "/hearth/1".to_owned(),
    }
}

fn shards_scrubbed() -> ShardsScrubbed {
    ShardsScrubbed {
        holder: peer(6),
        checked: 7,
        bytes: 600_000,
        bad: 2,
        repaired: 1,
        bad_shards: vec![
            ScrubbedShard {
                blob_hash: filled(0xb1, 32),
                shard_index: 3,
            },
            ScrubbedShard {
                blob_hash: filled(0xb1, 32),
                shard_index: 5,
            },
        ],
    }
}

fn all_events() -> Vec<Event> {
    vec![
        Event::BlobAccepted(blob_accepted()),
        Event::BlobAccepted(inline_blob_accepted()),
        Event::ShardPlaced(shard_placed()),
        Event::ReplicaConfirmed(replica_confirmed()),
        Event::ManifestVerified(manifest_verified()),
        Event::PeerSeen(peer_seen()),
        Event::ShardsScrubbed(shards_scrubbed()),
    ]
}

fn envelope(event: Event) -> Envelope {
    Envelope {
        schema_version: SCHEMA_VERSION,
        origin: peer(1),
        proposed_at_unix_ms: 1_767_225_600_000,
        request_id: Some(request_id()),
        event: Some(event),
    }
}

/// Encodes `msg`, decodes it back and checks that nothing changed.
fn assert_round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M) {
    let bytes = msg.encode_to_vec();
    assert_eq!(bytes.len(), msg.encoded_len());
    let back = M::decode(bytes.as_slice()).unwrap();
    assert_eq!(&back, msg);
}

#[test]
fn envelope_with_each_event_round_trips() {
    let kinds: Vec<&str> = all_events()
        .into_iter()
        .map(|event| {
            let env = envelope(event);
            assert_round_trip(&env);
            let back = decode_envelope(&env.encode_to_bytes()).unwrap();
            assert_eq!(back, env);
            assert_eq!(encode(&env), env.encode_to_bytes());
            event_kind(&back)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "BlobAccepted",
            "BlobAccepted",
            "ShardPlaced",
            "ReplicaConfirmed",
            "ManifestVerified",
            "PeerSeen",
            "ShardsScrubbed"
        ]
    );
}

#[test]
fn each_message_alone_round_trips() {
    assert_round_trip(&request_id());
    assert_round_trip(&erasure());
    assert_round_trip(&blob_accepted());
    assert_round_trip(&inline_blob_accepted());
    assert_round_trip(&shard_placed());
    assert_round_trip(&replica_confirmed());
    assert_round_trip(&manifest_verified());
    assert_round_trip(&peer_seen());
    assert_round_trip(&shards_scrubbed());
}

#[test]
fn inline_empty_blob_keeps_its_presence() {
    let env = envelope(Event::BlobAccepted(inline_blob_accepted()));
    let back = decode_envelope(&env.encode_to_bytes()).unwrap();
    let Some(Event::BlobAccepted(blob)) = back.event else {
        panic!("expected BlobAccepted, got {back:?}");
    };
    assert_eq!(blob.inline_data, Some(Bytes::new()));
}

#[test]
fn newer_schema_version_is_rejected() {
    let mut env = envelope(Event::PeerSeen(peer_seen()));
    env.schema_version = SCHEMA_VERSION + 1;
    let err = decode_envelope(&env.encode_to_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::UnsupportedSchemaVersion { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&(SCHEMA_VERSION + 1).to_string()));
}

#[test]
fn unset_schema_version_is_rejected() {
    let mut env = envelope(Event::PeerSeen(peer_seen()));
    env.schema_version = 0;
    let err = decode_envelope(&env.encode_to_bytes()).unwrap_err();
    assert!(
        matches!(err, ProtoError::UnsupportedSchemaVersion { found: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn missing_event_is_rejected() {
    let mut env = envelope(Event::PeerSeen(peer_seen()));
    env.event = None;
    assert_eq!(event_kind(&env), "Unknown");
    let err = decode_envelope(&env.encode_to_bytes()).unwrap_err();
    assert!(matches!(err, ProtoError::MissingEvent), "{err:?}");
}

#[test]
fn garbage_is_a_decode_error() {
    let inputs: [&[u8]; 5] = [
        &[0xff; 16],                    // a varint that never ends
        &[0x12, 0x40, 0x01],            // length prefix past the end
        &[0x07],                        // invalid wire type
        &[0x0a],                        // key without a value
        b"this is not protobuf at all", // text
    ];
    for input in inputs {
        let err = decode_envelope(input).unwrap_err();
        assert!(matches!(err, ProtoError::Decode(_)), "{input:?}: {err:?}");
    }
}

#[test]
fn sample_sizes_are_within_tolerance() {
    for size in [128, 256, 1024, 4096] {
        for seed in 0..20 {
            let env = sample_envelope(seed, size);
            let len = env.encoded_len();
            assert!(len.abs_diff(size) <= 16, "seed {seed}, size {size}: {len}");
            assert_eq!(decode_envelope(&env.encode_to_bytes()).unwrap(), env);
        }
    }
}

#[test]
fn samples_are_deterministic_and_varied() {
    assert_eq!(sample_envelope(7, 1024), sample_envelope(7, 1024));
    assert_eq!(event_kind(&sample_envelope(2, 1024)), "BlobAccepted");
    assert_eq!(event_kind(&sample_envelope(3, 1024)), "PeerSeen");
    assert_ne!(sample_envelope(2, 1024), sample_envelope(4, 1024));
}

#[test]
fn distinct_samples_are_different_valid_inline_blobs_of_the_same_size() {
    use hearth_proto::sample::make_distinct;
    use hearth_proto::v1::envelope::Event;
    let template = sample_envelope(2, 256);
    let mut seen = std::collections::HashSet::new();
    for n in 0..100 {
        let mut env = template.clone();
        make_distinct(&mut env, n);
        assert_eq!(env.encoded_len(), template.encoded_len());
        let Some(Event::BlobAccepted(b)) = &env.event else {
            panic!("not a blob: {env:?}");
        };
        let data = b.inline_data.as_ref().expect("inline");
        assert_eq!(&b.blob_hash[..], blake3::hash(data).as_bytes());
        assert!(seen.insert(b.blob_hash.clone()), "{n} repeats a blob");
    }
    let mut seen_peer = sample_envelope(3, 256);
    make_distinct(&mut seen_peer, 9);
    assert_eq!(
        seen_peer,
        sample_envelope(3, 256),
        "other kinds are left alone"
    );
}

fn bytes_of(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn arb_erasure() -> impl Strategy<Value = ErasureParams> {
    (any::<u32>(), any::<u32>(), any::<u64>()).prop_map(|(k, m, stripe)| ErasureParams {
        data_shards: k,
        parity_shards: m,
        stripe_size: stripe,
    })
}

fn arb_event() -> impl Strategy<Value = Event> {
    let hashes = || proptest::collection::vec(bytes_of(40), 0..8);
    prop_oneof![
        (
            bytes_of(40),
            any::<u64>(),
            proptest::option::of(arb_erasure()),
            hashes(),
            hashes(),
            proptest::option::of(bytes_of(300)),
            bytes_of(40),
            ".{0,40}",
        )
            .prop_map(
                |(blob_hash, size, erasure, shard_hashes, stripe_hashes, inline_data, by, ct)| {
                    Event::BlobAccepted(BlobAccepted {
                        blob_hash,
                        size,
                        erasure,
                        shard_hashes,
                        stripe_hashes,
                        inline_data,
                        accepted_by: by,
                        content_type: ct,
                    })
                }
            ),
        (
            bytes_of(40),
            any::<u32>(),
            bytes_of(40),
            any::<u64>(),
            bytes_of(40),
            any::<u64>()
        )
            .prop_map(
                |(blob_hash, shard_index, holder, epoch, shard_hash, size)| {
                    Event::ShardPlaced(ShardPlaced {
                        blob_hash,
                        shard_index,
                        holder,
                        placement_epoch: epoch,
                        shard_hash,
                        shard_size: size,
                    })
                }
            ),
        (
            bytes_of(40),
            any::<u32>(),
            bytes_of(40),
            bytes_of(40),
            any::<u64>()
        )
            .prop_map(|(blob_hash, shard_index, holder, shard_hash, size)| {
                Event::ReplicaConfirmed(ReplicaConfirmed {
                    blob_hash,
                    shard_index,
                    holder,
                    shard_hash,
                    shard_size: size,
                })
            }),
        (
            bytes_of(40),
            bytes_of(40),
            bytes_of(40),
            bytes_of(70),
            bytes_of(40)
        )
            .prop_map(|(blob_hash, verifier, manifest_hash, signature, key)| {
                Event::ManifestVerified(ManifestVerified {
                    blob_hash,
                    verifier,
                    manifest_hash,
                    signature,
                    verifier_public_key: key,
                })
            }),
        (
            bytes_of(40),
            proptest::collection::vec(".{0,60}", 0..5),
            any::<u64>(),
            ".{0,30}",
            ".{0,30}"
        )
            .prop_map(|(peer_id, addresses, latency_us, agent, protocol)| {
                Event::PeerSeen(PeerSeen {
                    peer_id,
                    addresses,
                    latency_us,
                    agent_version: agent,
                    protocol_version: protocol,
                })
            }),
    ]
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        1..=SCHEMA_VERSION,
        bytes_of(40),
        any::<u64>(),
        proptest::option::of((bytes_of(40), any::<u64>())),
        arb_event(),
    )
        .prop_map(|(version, origin, at, request, event)| Envelope {
            schema_version: version,
            origin,
            proposed_at_unix_ms: at,
            request_id: request.map(|(node, seq)| RequestId { node, seq }),
            event: Some(event),
        })
}

proptest! {
    #[test]
    fn any_envelope_round_trips(env in arb_envelope()) {
        let bytes = env.encode_to_bytes();
        prop_assert_eq!(bytes.len(), env.encoded_len());
        prop_assert_eq!(decode_envelope(&bytes).unwrap(), env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_envelope(&input);
    }
}
