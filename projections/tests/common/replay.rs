//! The property both model proptests check: a log applied in random batches, with flushes,
//! reopens and crashes in between, ends with the digests and outcomes of a rebuild and of the
//! in-memory model (`MemStore`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hearth_projections::{
    CommittedEntry, Digests, MemStore, Outcome, Projection, ProjectionError, ProjectionStore,
};
use proptest::prelude::*;

/// What happens to the store after a batch.
#[derive(Clone, Copy, Debug)]
pub enum After {
    Nothing,
    Flush,
    Reopen,
    /// Lose the unflushed tail, then re-feed from `back` entries before the applied index.
    Crash {
        back: usize,
    },
}

/// Mostly nothing; now and then a flush, a reopen or a crash.
pub fn after() -> impl Strategy<Value = After> {
    prop_oneof![
        6 => Just(After::Nothing),
        1 => Just(After::Flush),
        1 => Just(After::Reopen),
        1 => (0usize..6).prop_map(|back| After::Crash { back }),
    ]
}

/// A projection error as a proptest failure.
pub fn fail(e: ProjectionError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn applied_pos(store: &ProjectionStore) -> usize {
    store.applied().map_or(0, |(index, _)| index as usize)
}

/// Applies `log` to a store in `dir` in batches of the sizes `steps` give (each followed by its
/// [`After`]), then checks it against a rebuild and the model; returns the live store, its
/// digests and the model.
pub fn replay_equals_rebuild_and_model(
    dir: &Path,
    projections: fn() -> Vec<Arc<dyn Projection>>,
    log: &[CommittedEntry],
    steps: Vec<(usize, After)>,
) -> Result<(ProjectionStore, Digests, MemStore), TestCaseError> {
    let open = || ProjectionStore::open(dir, projections());
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
    let rebuilt =
        ProjectionStore::rebuild(rebuilt_dir.path().join("r"), projections(), log.to_vec())
            .map_err(fail)?;
    prop_assert_eq!(&rebuilt.digests().map_err(fail)?, &live);
    prop_assert_eq!(rebuilt.log_time_ms(), store.log_time_ms());

    let mut model = MemStore::new(projections()).map_err(fail)?;
    let model_outcomes = model.apply_batch(log).map_err(fail)?;
    prop_assert_eq!(&model.digests().map_err(fail)?, &live);
    let expected: BTreeMap<u64, Outcome> =
        log.iter().map(|e| e.index).zip(model_outcomes).collect();
    prop_assert_eq!(outcomes, expected);
    Ok((store, live, model))
}
