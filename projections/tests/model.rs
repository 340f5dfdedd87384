//! Model test: any log, applied incrementally in random batch sizes with random reopens,
//! crashes (unflushed tail lost) and overlapping re-feeds, ends with the same digests and the
//! same outcomes as a full rebuild and as the in-memory model.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::projections;
use hearth_projections::{CommittedEntry, MemStore, Outcome, ProjectionStore};
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

#[derive(Clone, Copy, Debug)]
enum After {
    Nothing,
    Flush,
    Reopen,
    /// Lose the unflushed tail, then re-feed from `back` entries before the applied index.
    Crash {
        back: usize,
    },
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

fn after() -> impl Strategy<Value = After> {
    prop_oneof![
        6 => Just(After::Nothing),
        1 => Just(After::Flush),
        1 => Just(After::Reopen),
        1 => (0usize..6).prop_map(|back| After::Crash { back }),
    ]
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

fn applied_pos(store: &ProjectionStore) -> usize {
    store.applied().map_or(0, |(index, _)| index as usize)
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
        let open = || ProjectionStore::open(dir.path(), projections());
        let mut store = open().map_err(fail)?;
        let mut outcomes: BTreeMap<u64, Outcome> = BTreeMap::new();
        let mut pos = 0;
        let mut steps = steps.into_iter().cycle().take(64);
        while pos < log.len() {
            let (size, after) = steps.next().unwrap_or((log.len(), After::Nothing));
            let end = (pos + size).min(log.len());
            let batch = &log[pos..end];
            for (entry, outcome) in batch.iter().zip(store.apply_batch(batch).map_err(fail)?) {
                if outcome != Outcome::AlreadyApplied {
                    outcomes.insert(entry.index, outcome);
                }
            }
            pos = end;
            let high = applied_pos(&store);
            prop_assert!(high >= pos);
            match after {
                After::Nothing => {}
                After::Flush => {
                    let durable = store.flush().map_err(fail)?;
                    prop_assert_eq!(durable, log.get(high - 1).map(|e| (e.index, e.term)));
                }
                After::Reopen => {
                    drop(store);
                    store = open().map_err(fail)?;
                    prop_assert_eq!(applied_pos(&store), high, "a clean close keeps everything");
                }
                After::Crash { back } => {
                    store.close_losing_unflushed();
                    store = open().map_err(fail)?;
                    let applied = applied_pos(&store);
                    prop_assert!(applied <= high);
                    pos = applied.saturating_sub(back);
                }
            }
        }
        prop_assert_eq!(store.applied(), log.last().map(|e| (e.index, e.term)));
        let live = store.digests().map_err(fail)?;

        let rebuilt_dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rebuilt = ProjectionStore::rebuild(rebuilt_dir.path().join("r"), projections(), log.clone())
            .map_err(fail)?;
        prop_assert_eq!(&rebuilt.digests().map_err(fail)?, &live);
        prop_assert_eq!(rebuilt.log_time_ms(), store.log_time_ms());

        let mut model = MemStore::new(projections()).map_err(fail)?;
        let model_outcomes = model.apply_batch(&log).map_err(fail)?;
        prop_assert_eq!(&model.digests().map_err(fail)?, &live);
        let expected: BTreeMap<u64, Outcome> = log.iter().map(|e| e.index).zip(model_outcomes).collect();
        prop_assert_eq!(outcomes, expected);
    }
}

fn fail(e: hearth_projections::ProjectionError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}
