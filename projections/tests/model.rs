//! Model test: any log, applied incrementally in random batch sizes with random reopens,
//! crashes (unflushed tail lost) and overlapping re-feeds, ends with the same digests and the
//! same outcomes as a full rebuild and as the in-memory model.

mod common;

use bytes::Bytes;
use common::projections;
use common::replay::{after, replay_equals_rebuild_and_model};
use hearth_projections::CommittedEntry;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Spec {
    /// An event; few nodes and sequence numbers, so request ids repeat.
    Event {
        seed: u64,
        node: u8,
        seq: u64,
        proposed: u64,
    },
    /// Bytes that are (almost always) not an envelope.
    Garbage(Vec<u8>),
    /// Several events (or garbage) in one entry, as a proposer's batch.
    Batch(Vec<Spec>),
    /// A membership or blank entry.
    Other,
}

fn event_spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        8 => (0u64..40, 0u8..3, 0u64..12, 0u64..2_000)
            .prop_map(|(seed, node, seq, proposed)| Spec::Event { seed, node, seq, proposed }),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Spec::Garbage),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        9 => event_spec(),
        2 => proptest::collection::vec(event_spec(), 0..5).prop_map(Spec::Batch),
        1 => Just(Spec::Other),
    ]
}

fn payload(spec: &Spec) -> Bytes {
    match spec {
        Spec::Event {
            seed,
            node,
            seq,
            proposed,
        } => common::event_bytes(*seed, *node, *seq, *proposed),
        Spec::Garbage(bytes) => Bytes::from(bytes.clone()),
        Spec::Batch(_) | Spec::Other => Bytes::new(),
    }
}

/// Entries 1..=n; the term grows every 16 entries.
fn entries(specs: &[Spec]) -> Vec<CommittedEntry> {
    specs
        .iter()
        .zip(1u64..)
        .map(|(spec, index)| {
            let term = 1 + index / 16;
            match spec {
                Spec::Event { .. } | Spec::Garbage(_) => {
                    CommittedEntry::event(index, term, payload(spec))
                }
                Spec::Batch(specs) => {
                    CommittedEntry::batch(index, term, specs.iter().map(payload).collect())
                }
                Spec::Other => CommittedEntry::other(index, term),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_with_restarts_equals_rebuild_and_model(
        specs in proptest::collection::vec(spec(), 1..120),
        steps in proptest::collection::vec((1usize..25, after()), 1..12),
    ) {
        let log = entries(&specs);
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        replay_equals_rebuild_and_model(dir.path(), projections, &log, steps)?;
    }
}
