//! The blob index (`"blobs-3"`) on the real runtime: any log of blob events (valid and invalid,
//! single and batched), applied incrementally with random batch sizes, reopens and crashes,
//! ends with the same digests and outcomes as a rebuild and as the in-memory model; and what
//! it folded reads back through `ProjectionStore::get` / `scan_prefix`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::replay::{after, fail, replay_equals_rebuild_and_model};
use hearth_projections::{
    BlobIndexProjection, BlobRecord, CommittedEntry, CountsProjection, EntryData, HolderRecord,
    Outcome, Projection, ProjectionRejection, ProjectionStore,
};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{
    BlobAccepted, BlobDeleted, Envelope, ErasureParams, PeerSeen, ReplicaConfirmed, RequestId,
    ShardPlaced, ShardReleased,
};
use proptest::prelude::*;
use prost::Message;

fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(BlobIndexProjection), Arc::new(CountsProjection)]
}

/// One blob of the test universe, with real hashes of its bytes, stripes and shards.
#[derive(Clone, Debug)]
struct Blob {
    data: Vec<u8>,
    k: u32,
    m: u32,
    stripe_size: u64,
    hash: Bytes,
    stripe_hashes: Vec<Bytes>,
    shard_hashes: Vec<Bytes>,
    shard_size: u64,
}

/// What the layout makes every shard's size: each stripe's chunk (`ceil(len / k)`), summed.
fn layout_shard_size(size: u64, k: u32, stripe_size: u64) -> u64 {
    let k = u64::from(k);
    (size / stripe_size) * stripe_size.div_ceil(k) + (size % stripe_size).div_ceil(k)
}

fn hash(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(blake3::hash(data).as_bytes())
}

impl Blob {
    fn new(data: Vec<u8>, k: u32, m: u32, stripe_size: u64) -> Self {
        let shard_len = data.len().div_ceil(k as usize);
        // Data shards: the blob cut in k pieces (the last one zero-padded); parity shards: the
        // xor of the data shards, each offset by its parity number. Plausible, and real bytes.
        let mut shards: Vec<Vec<u8>> = (0..k as usize)
            .map(|i| {
                let mut shard: Vec<u8> = data
                    .iter()
                    .skip(i * shard_len)
                    .take(shard_len)
                    .copied()
                    .collect();
                shard.resize(shard_len, 0);
                shard
            })
            .collect();
        for j in 0..m {
            let parity = (0..shard_len)
                .map(|b| {
                    shards[..k as usize]
                        .iter()
                        .fold(j as u8, |acc, s| acc ^ s[b])
                })
                .collect();
            shards.push(parity);
        }
        Blob {
            hash: hash(&data),
            stripe_hashes: data.chunks(stripe_size as usize).map(hash).collect(),
            shard_hashes: shards.iter().map(|s| hash(s)).collect(),
            shard_size: layout_shard_size(data.len() as u64, k, stripe_size),
            data,
            k,
            m,
            stripe_size,
        }
    }

    fn accepted(&self, inline: bool, node: u8) -> BlobAccepted {
        let mut e = BlobAccepted {
            blob_hash: self.hash.clone(),
            size: self.data.len() as u64,
            erasure: None,
            shard_hashes: Vec::new(),
            stripe_hashes: Vec::new(),
            inline_data: None,
            accepted_by: node_id(node),
            content_type: "application/octet-stream".to_owned(),
        };
        if inline {
            e.inline_data = Some(Bytes::from(self.data.clone()));
        } else {
            e.erasure = Some(ErasureParams {
                data_shards: self.k,
                parity_shards: self.m,
                stripe_size: self.stripe_size,
            });
            e.shard_hashes = self.shard_hashes.clone();
            e.stripe_hashes = self.stripe_hashes.clone();
        }
        e
    }

    /// The manifest's hash of `shard`, or a hash no manifest holds when it is out of range.
    fn shard_hash(&self, shard: u32) -> Bytes {
        self.shard_hashes
            .get(shard as usize)
            .cloned()
            .unwrap_or_else(|| hash(b"no such shard"))
    }
}

/// Blobs 0..3 can be accepted (0 is empty); blob 3 never is (events about it: "unknown blob").
fn universe() -> Vec<Blob> {
    vec![
        Blob::new(Vec::new(), 1, 1, 4),
        Blob::new(b"hello, hearth".to_vec(), 2, 1, 4),
        Blob::new((0u8..40).map(|b| b.wrapping_mul(37)).collect(), 3, 2, 16),
        Blob::new(b"never accepted".to_vec(), 2, 1, 4),
    ]
}

fn node_id(node: u8) -> Bytes {
    Bytes::from(vec![node; 4])
}

#[derive(Clone, Copy, Debug)]
enum AcceptFlaw {
    None,
    /// A 31-byte blob hash.
    ShortHash,
    /// One stripe hash missing (or a bogus inline size).
    Truncated,
}

#[derive(Clone, Debug)]
enum Ev {
    Accept {
        blob: usize,
        inline: bool,
        node: u8,
        flaw: AcceptFlaw,
    },
    Place {
        blob: usize,
        shard: u32,
        holder: u8,
        epoch: u64,
        wrong_hash: bool,
    },
    Confirm {
        blob: usize,
        shard: u32,
        holder: u8,
        wrong_hash: bool,
        wrong_size: bool,
    },
    /// A holder drops its copy of a shard.
    Release { blob: usize, shard: u32, holder: u8 },
    /// Confirms the latest `Place` of the log so far (so confirmations often hit a placement).
    ConfirmLatest { wrong_size: bool },
    /// An event the blob index ignores.
    Peer { node: u8 },
    /// A tombstone.
    Delete { blob: usize },
}

#[derive(Clone, Debug)]
enum Spec {
    Event(Ev, u64),
    Batch(Vec<(Ev, u64)>),
    Other,
}

fn flaw() -> impl Strategy<Value = AcceptFlaw> {
    prop_oneof![
        8 => Just(AcceptFlaw::None),
        1 => Just(AcceptFlaw::ShortHash),
        1 => Just(AcceptFlaw::Truncated),
    ]
}

/// Mostly blobs 0..3; now and then blob 3, which is never accepted.
fn blob_ref() -> impl Strategy<Value = usize> {
    prop_oneof![9 => 0usize..3, 1 => Just(3usize)]
}

/// Mostly in range for every blob of the universe (the smallest has 2 shards); sometimes not.
fn shard() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0u32..3, 1 => 3u32..7]
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => (0usize..3, prop::bool::weighted(0.3), 0u8..3, flaw())
            .prop_map(|(blob, inline, node, flaw)| Ev::Accept { blob, inline, node, flaw }),
        // Epochs: mostly after the acceptance (logs are shorter than 1,000 entries), sometimes
        // not, sometimes equal to or older than another decision's.
        5 => (blob_ref(), shard(), 0u8..3, prop::sample::select(vec![1u64, 5, 40, 1_000, 1_001]), prop::bool::weighted(0.1))
            .prop_map(|(blob, shard, holder, epoch, wrong_hash)| Ev::Place {
                blob, shard, holder, epoch, wrong_hash,
            }),
        4 => (blob_ref(), shard(), 0u8..3, prop::bool::weighted(0.1), prop::bool::weighted(0.1))
            .prop_map(|(blob, shard, holder, wrong_hash, wrong_size)| Ev::Confirm {
                blob, shard, holder, wrong_hash, wrong_size,
            }),
        3 => prop::bool::weighted(0.1).prop_map(|wrong_size| Ev::ConfirmLatest { wrong_size }),
        1 => (0u8..3).prop_map(|node| Ev::Peer { node }),
        1 => blob_ref().prop_map(|blob| Ev::Delete { blob }),
        2 => (blob_ref(), shard(), 0u8..3).prop_map(|(blob, shard, holder)| Ev::Release { blob, shard, holder }),
    ]
}

fn timed_ev() -> impl Strategy<Value = (Ev, u64)> {
    (ev(), 0u64..2_000)
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        8 => timed_ev().prop_map(|(ev, at)| Spec::Event(ev, at)),
        3 => proptest::collection::vec(timed_ev(), 0..6).prop_map(Spec::Batch),
        1 => Just(Spec::Other),
    ]
}

/// Builds the events of a log: the universe, the last request seq, the latest placement.
struct Builder {
    blobs: Vec<Blob>,
    seq: u64,
    latest_place: Option<Ev>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            blobs: universe(),
            seq: 0,
            latest_place: None,
        }
    }

    /// Encodes `ev` as an envelope with a request id of its own (`seq` is unique per event).
    fn payload(&mut self, ev: &Ev, proposed_at_unix_ms: u64) -> Bytes {
        let ev = match *ev {
            Ev::Place { .. } => {
                self.latest_place = Some(ev.clone());
                ev.clone()
            }
            Ev::ConfirmLatest { wrong_size } => match self.latest_place {
                Some(Ev::Place {
                    blob,
                    shard,
                    holder,
                    ..
                }) => Ev::Confirm {
                    blob,
                    shard,
                    holder,
                    wrong_hash: false,
                    wrong_size,
                },
                _ => Ev::Peer { node: 0 },
            },
            _ => ev.clone(),
        };
        let (node, event) = event(&self.blobs, &ev);
        self.seq += 1;
        let env = Envelope {
            schema_version: 1,
            origin: node_id(node),
            proposed_at_unix_ms,
            request_id: Some(RequestId {
                node: node_id(node),
                seq: self.seq,
            }),
            event: Some(event),
        };
        Bytes::from(env.encode_to_vec())
    }
}

fn event(blobs: &[Blob], ev: &Ev) -> (u8, Event) {
    match *ev {
        Ev::Accept {
            blob,
            inline,
            node,
            flaw,
        } => {
            let mut e = blobs[blob].accepted(inline, node);
            match flaw {
                AcceptFlaw::None => {}
                AcceptFlaw::ShortHash => e.blob_hash = e.blob_hash.slice(..31),
                AcceptFlaw::Truncated if inline => e.size += 1,
                AcceptFlaw::Truncated => {
                    if e.stripe_hashes.pop().is_none() {
                        e.stripe_hashes.push(hash(b"extra"));
                    }
                }
            }
            (node, Event::BlobAccepted(e))
        }
        Ev::Place {
            blob,
            shard,
            holder,
            epoch,
            wrong_hash,
        } => {
            let b = &blobs[blob];
            let shard_hash = if wrong_hash {
                hash(b"wrong shard")
            } else {
                b.shard_hash(shard)
            };
            let e = ShardPlaced {
                blob_hash: b.hash.clone(),
                shard_index: shard,
                holder: node_id(holder),
                placement_epoch: epoch,
                shard_hash,
                shard_size: b.shard_size,
            };
            // Decided by node 0 (the leader of the test), or now and then by node 1.
            (u8::from(epoch == 1_001), Event::ShardPlaced(e))
        }
        Ev::Confirm {
            blob,
            shard,
            holder,
            wrong_hash,
            wrong_size,
        } => {
            let b = &blobs[blob];
            let shard_hash = if wrong_hash {
                hash(b"wrong shard")
            } else {
                b.shard_hash(shard)
            };
            let e = ReplicaConfirmed {
                blob_hash: b.hash.clone(),
                shard_index: shard,
                holder: node_id(holder),
                shard_hash,
                shard_size: b.shard_size + u64::from(wrong_size),
            };
            (holder, Event::ReplicaConfirmed(e))
        }
        Ev::Release {
            blob,
            shard,
            holder,
        } => (
            holder,
            Event::ShardReleased(ShardReleased {
                blob_hash: blobs[blob].hash.clone(),
                shard_index: shard,
                holder: node_id(holder),
            }),
        ),
        Ev::Peer { node } => peer_seen(node),
        Ev::Delete { blob } => (
            0,
            Event::BlobDeleted(BlobDeleted {
                blob_hash: blobs[blob].hash.clone(),
            }),
        ),
        // `Builder::payload` turns it into a `Confirm` (or a `Peer`) first.
        Ev::ConfirmLatest { .. } => peer_seen(0),
    }
}

fn peer_seen(node: u8) -> (u8, Event) {
    let event = Event::PeerSeen(PeerSeen {
        peer_id: node_id(node),
        ..PeerSeen::default()
    });
    (node, event)
}

/// Entries 1..=n; the term grows every 16 entries.
fn entries(specs: &[Spec]) -> Vec<CommittedEntry> {
    let mut builder = Builder::new();
    specs
        .iter()
        .zip(1u64..)
        .map(|(spec, index)| {
            let term = 1 + index / 16;
            match spec {
                Spec::Event(ev, at) => CommittedEntry::event(index, term, builder.payload(ev, *at)),
                Spec::Batch(evs) => CommittedEntry::batch(
                    index,
                    term,
                    evs.iter()
                        .map(|(ev, at)| builder.payload(ev, *at))
                        .collect(),
                ),
                Spec::Other => CommittedEntry::other(index, term),
            }
        })
        .collect()
}

/// `log` with the inline bytes of every deleted blob of the index (its redaction work list)
/// zeroed where they were carried, and those entries flagged redacted.
fn redact(log: &[CommittedEntry], table: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<CommittedEntry> {
    let mut log = log.to_vec();
    for key in table.keys().filter(|k| k.first() == Some(&b'r')) {
        let (_, hash) = BlobIndexProjection::parse_redact_key(key).expect("work-list key");
        let blob = table
            .get(&BlobIndexProjection::blob_key(&hash))
            .and_then(|v| BlobIndexProjection::decode_blob(v))
            .expect("the deleted blob's record");
        for at in blob.inline_events {
            let entry = &mut log[(at.index - 1) as usize];
            let envelope = match &mut entry.payload {
                EntryData::Event(e) => e,
                EntryData::Batch(es) => &mut es[at.position as usize],
                EntryData::Other => panic!("inline event at a non-event entry {}", at.index),
            };
            let mut bytes = envelope.to_vec();
            let range = hearth_proto::inline_data_range(&bytes).expect("inline data");
            bytes[range].fill(0);
            *envelope = Bytes::from(bytes);
            entry.redacted = true;
        }
    }
    log
}

/// What must hold of any blob index, whatever the log: every record decodes, every holder
/// record belongs to a sharded blob of the index and to one of its shards.
fn check_invariants(table: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), TestCaseError> {
    for (key, value) in table {
        match key.first() {
            Some(b'b') => {
                prop_assert_eq!(key.len(), 33);
                let blob = BlobIndexProjection::decode_blob(value);
                prop_assert!(blob.is_some(), "undecodable blob record");
                let blob = blob.unwrap_or_default();
                prop_assert!(
                    blob.placement.is_empty() || blob.placement.len() as u64 == blob.shard_count()
                );
                if !blob.deleted && !blob.is_inline() {
                    // Unsettled blobs are on the work list; settled ones have one copy per shard.
                    let listed = table.contains_key(&BlobIndexProjection::work_key(&key[1..]));
                    prop_assert!(
                        listed
                            || (blob.durable_log_time_ms > 0
                                && u64::from(blob.holder_records) == blob.shard_count())
                    );
                }
            }
            Some(b'h') => {
                let parsed = BlobIndexProjection::parse_holder_key(key);
                prop_assert!(parsed.is_some(), "unparsable holder key {:?}", key);
                let (shard, _) = parsed.unwrap_or_default();
                let blob = table
                    .get(&BlobIndexProjection::blob_key(&key[1..33]))
                    .and_then(|v| BlobIndexProjection::decode_blob(v));
                prop_assert!(blob.is_some(), "holder of a blob not in the index");
                let blob = blob.unwrap_or_default();
                let holder = BlobIndexProjection::decode_holder(value);
                prop_assert!(holder.is_some(), "undecodable holder record");
                let holder = holder.unwrap_or_default();
                if !holder.is_current(&blob) {
                    // Left from an earlier record of the same hash: skipped by everyone.
                    continue;
                }
                prop_assert!(!blob.is_inline());
                prop_assert!(u64::from(shard) < blob.shard_count());
                prop_assert!(holder.confirmed || holder.confirmed_log_time_ms == 0);
                prop_assert!(
                    !holder.confirmed || holder.confirmed_log_time_ms >= holder.placed_log_time_ms
                );
            }
            Some(b'r') => {
                let parsed = BlobIndexProjection::parse_redact_key(key);
                prop_assert!(parsed.is_some(), "unparsable work-list key {:?}", key);
                let (deleted_index, hash) = parsed.unwrap_or_default();
                let blob = table
                    .get(&BlobIndexProjection::blob_key(&hash))
                    .and_then(|v| BlobIndexProjection::decode_blob(v))
                    .unwrap_or_default();
                prop_assert!(blob.deleted && blob.deleted_index == deleted_index);
                prop_assert!(!blob.inline_events.is_empty());
            }
            Some(b'v') => {
                prop_assert_eq!(key.len(), 33);
                let blob = table
                    .get(&BlobIndexProjection::blob_key(&key[1..]))
                    .and_then(|v| BlobIndexProjection::decode_blob(v))
                    .unwrap_or_default();
                prop_assert!(
                    !blob.deleted && blob.durable_log_time_ms > 0 && blob.verified_log_time_ms == 0
                );
            }
            Some(b'w') => {
                prop_assert_eq!(key.len(), 33);
                let blob = table
                    .get(&BlobIndexProjection::blob_key(&key[1..]))
                    .and_then(|v| BlobIndexProjection::decode_blob(v));
                prop_assert!(blob.is_some(), "work-list item of a blob not in the index");
                let blob = blob.unwrap_or_default();
                prop_assert!(!blob.deleted && !blob.is_inline());
            }
            _ => prop_assert!(false, "unexpected key {:?}", key),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn blob_index_incremental_with_restarts_equals_rebuild_and_model(
        specs in proptest::collection::vec(spec(), 1..100),
        steps in proptest::collection::vec((1usize..25, after()), 1..12),
    ) {
        let log = entries(&specs);
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (store, live, model) =
            replay_equals_rebuild_and_model(dir.path(), projections, &log, steps)?;

        let table = model.table(BlobIndexProjection::NAME).map_err(fail)?;
        check_invariants(table)?;

        // The log as the collector leaves it (deleted blobs' inline bytes zeroed, the entries
        // flagged redacted) rebuilds to the same digests.
        let redacted_dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let redacted = ProjectionStore::rebuild(redacted_dir.path().join("r"), projections(), redact(&log, table))
            .map_err(fail)?;
        prop_assert_eq!(&redacted.digests().map_err(fail)?, &live);
        let live_table = store.scan_prefix(BlobIndexProjection::NAME, b"").map_err(fail)?;
        prop_assert_eq!(live_table, table.clone().into_iter().collect::<Vec<_>>());
    }
}

/// Envelope of one event, proposed at `at` by node 9 with request seq `seq`.
fn envelope(seq: u64, at: u64, event: Event) -> Bytes {
    Bytes::from(
        Envelope {
            schema_version: 1,
            origin: node_id(9),
            proposed_at_unix_ms: at,
            request_id: Some(RequestId {
                node: node_id(9),
                seq,
            }),
            event: Some(event),
        }
        .encode_to_vec(),
    )
}

fn place(blob: &Blob, shard: u32, holder: u8, epoch: u64) -> Event {
    Event::ShardPlaced(ShardPlaced {
        blob_hash: blob.hash.clone(),
        shard_index: shard,
        holder: node_id(holder),
        placement_epoch: epoch,
        shard_hash: blob.shard_hash(shard),
        shard_size: blob.shard_size,
    })
}

fn confirm(blob: &Blob, shard: u32, holder: u8) -> Event {
    Event::ReplicaConfirmed(ReplicaConfirmed {
        blob_hash: blob.hash.clone(),
        shard_index: shard,
        holder: node_id(holder),
        shard_hash: blob.shard_hash(shard),
        shard_size: blob.shard_size,
    })
}

fn applied_cleanly(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Applied { rejected_by } => rejected_by.is_empty(),
        Outcome::Batch(outcomes) => outcomes.iter().all(applied_cleanly),
        _ => false,
    }
}

#[test]
fn accept_place_confirm_reads_back_through_the_store() -> Result<(), Box<dyn std::error::Error>> {
    let blob = universe().swap_remove(2); // 40 bytes, k = 3, m = 2, 3 stripes
    let dir = tempfile::tempdir()?;
    let log = vec![
        CommittedEntry::event(
            1,
            1,
            envelope(1, 100, Event::BlobAccepted(blob.accepted(false, 7))),
        ),
        CommittedEntry::batch(
            2,
            1,
            vec![
                envelope(2, 200, place(&blob, 4, 1, 2)),
                envelope(3, 150, place(&blob, 0, 2, 2)),
            ],
        ),
        CommittedEntry::event(3, 1, envelope(4, 300, confirm(&blob, 0, 2))),
        // The same bytes accepted (sharded) by another node: one blob, the first.
        CommittedEntry::event(
            4,
            1,
            envelope(5, 400, Event::BlobAccepted(blob.accepted(false, 8))),
        ),
        CommittedEntry::event(5, 1, envelope(6, 500, confirm(&blob, 0, 2))),
    ];
    let store = ProjectionStore::open(dir.path().join("p"), projections())?;
    let outcomes = store.apply_batch(&log)?;
    assert!(outcomes[..3].iter().all(applied_cleanly), "{outcomes:?}");
    let rejected = |reason: &str| {
        matches!(
            &outcomes[..],
            [.., Outcome::Applied { rejected_by }]
                if matches!(&rejected_by[..], [ProjectionRejection { projection: "blobs-3", reason: r }] if r.contains(reason))
        )
    };
    assert!(rejected("already confirmed"), "{:?}", outcomes[4]);
    assert!(
        matches!(&outcomes[3], Outcome::Applied { rejected_by }
            if rejected_by.len() == 1 && rejected_by[0].reason.contains("already accepted at index 1")),
        "{:?}",
        outcomes[3]
    );

    let check = |store: &ProjectionStore| -> Result<(), Box<dyn std::error::Error>> {
        let value = store
            .get(
                BlobIndexProjection::NAME,
                &BlobIndexProjection::blob_key(&blob.hash),
            )?
            .ok_or("blob not in the index")?;
        let record = BlobIndexProjection::decode_blob(&value).ok_or("undecodable blob record")?;
        assert_eq!(
            record,
            BlobRecord {
                size: 40,
                data_shards: 3,
                parity_shards: 2,
                stripe_size: 16,
                shard_hashes: blob.shard_hashes.iter().map(|h| h.to_vec()).collect(),
                stripe_hashes: blob.stripe_hashes.iter().map(|h| h.to_vec()).collect(),
                inline_data: None,
                accepted_by: node_id(7).to_vec(),
                content_type: "application/octet-stream".to_owned(),
                accepted_index: 1,
                accepted_position: 0,
                accepted_log_time_ms: 100,
                placement_epoch: 2,
                placement_by: node_id(9).to_vec(),
                placement: vec![
                    node_id(2).to_vec(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    node_id(1).to_vec()
                ],
                holder_records: 5 + 2,
                ..BlobRecord::default()
            }
        );
        let holders = store.scan_prefix(
            BlobIndexProjection::NAME,
            &BlobIndexProjection::holders_prefix(&blob.hash),
        )?;
        // The acceptor (node 7) holds every shard, confirmed at its acceptance.
        let (acceptor, holders): (Vec<_>, Vec<_>) = holders.iter().partition(|(k, _)| {
            BlobIndexProjection::parse_holder_key(k).is_some_and(|(_, h)| h == node_id(7))
        });
        assert_eq!(acceptor.len(), 5);
        assert!(acceptor
            .iter()
            .all(|(_, v)| BlobIndexProjection::decode_holder(v)
                .is_some_and(|h| h.confirmed && h.placement_epoch == 1)));
        let holders: Vec<_> = holders
            .iter()
            .map(|(k, v)| {
                (
                    BlobIndexProjection::parse_holder_key(k),
                    BlobIndexProjection::decode_holder(v),
                )
            })
            .collect();
        // Both placed by entry 2 (a batch: shard 4 first, then shard 0).
        let placed = |placed_position, placed_log_time_ms, confirmed_log_time_ms: Option<u64>| {
            HolderRecord {
                placement_epoch: 2,
                shard_size: blob.shard_size,
                placed_log_time_ms,
                confirmed: confirmed_log_time_ms.is_some(),
                confirmed_log_time_ms: confirmed_log_time_ms.unwrap_or(0),
                placed_index: 2,
                placed_position,
            }
        };
        assert_eq!(
            holders,
            vec![
                // Shard order, not log order; log time never goes back (200, then 200).
                (
                    Some((0, node_id(2).to_vec())),
                    Some(placed(1, 200, Some(300)))
                ),
                (Some((4, node_id(1).to_vec())), Some(placed(0, 200, None))),
            ]
        );
        // Another blob's prefix sees none of them.
        let other = universe().swap_remove(1);
        assert!(store
            .scan_prefix(
                BlobIndexProjection::NAME,
                &BlobIndexProjection::holders_prefix(&other.hash),
            )?
            .is_empty());
        assert_eq!(
            store.get(
                BlobIndexProjection::NAME,
                &BlobIndexProjection::blob_key(&other.hash)
            )?,
            None
        );
        Ok(())
    };
    check(&store)?;
    drop(store);
    let store = ProjectionStore::open(dir.path().join("p"), projections())?;
    check(&store)?;
    let rebuilt = ProjectionStore::rebuild(dir.path().join("r"), projections(), log)?;
    check(&rebuilt)?;
    assert_eq!(rebuilt.digests()?, store.digests()?);
    Ok(())
}
