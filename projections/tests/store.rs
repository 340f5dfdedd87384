//! The RocksDB runtime: exactly-once across restarts and crashes, rejections, log time,
//! versioning, checkpoints, rebuilds.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{event, projections, Ledger};
use hearth_projections::{
    format, CommittedEntry, CountsProjection, MemStore, Outcome, Projection, ProjectionError,
    ProjectionStore, Rejection,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// 1..=n: events from 3 nodes with unique request ids, a non-event every 10th entry.
fn log(n: u64) -> Vec<CommittedEntry> {
    (1..=n)
        .map(|i| {
            if i.is_multiple_of(10) {
                CommittedEntry::other(i, 1)
            } else {
                event(i, i, (i % 3) as u8, i, 1_000 + i)
            }
        })
        .collect()
}

fn count(store: &ProjectionStore, key: &[u8]) -> Option<u64> {
    store
        .get(CountsProjection::NAME, key)
        .ok()
        .flatten()
        .and_then(|v| CountsProjection::decode_count(&v))
}

#[test]
fn apply_then_digests_match_the_in_memory_model() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    let mut model = MemStore::new(projections())?;
    let entries = log(50);
    let outcomes = store.apply_batch(&entries)?;
    assert_eq!(outcomes, model.apply_batch(&entries)?);
    assert_eq!(store.applied(), Some((50, 1)));
    let digests = store.digests()?;
    assert_eq!(digests, model.digests()?);
    let names: Vec<_> = digests.keys().cloned().collect();
    assert_eq!(names, ["counts-1", "ledger-1", "rejected", "requests"]);
    assert_eq!(count(&store, &CountsProjection::kind_key("NotAKind")), None);
    let kinds: u64 = store
        .scan_prefix(CountsProjection::NAME, b"kind/")?
        .iter()
        .filter_map(|(_, v)| CountsProjection::decode_count(v))
        .sum();
    assert_eq!(kinds, 45, "every event counted once, non-events not at all");
    Ok(())
}

#[test]
fn flushed_state_survives_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    store.apply_batch(&log(30))?;
    assert_eq!(store.flush()?, Some((30, 1)));
    let before = store.digests_with_applied()?;
    let log_time = store.log_time_ms();
    drop(store);
    let store = ProjectionStore::open(dir.path(), projections())?;
    assert_eq!(store.applied(), Some((30, 1)));
    assert_eq!(store.log_time_ms(), log_time);
    assert_eq!(store.digests_with_applied()?, before);
    // Handing over the whole log again changes nothing.
    let outcomes = store.apply_batch(&log(30))?;
    assert!(outcomes.iter().all(|o| *o == Outcome::AlreadyApplied));
    assert_eq!(store.digests_with_applied()?, before);
    Ok(())
}

#[test]
fn a_plain_drop_flushes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    store.apply_batch(&log(20))?;
    let digests = store.digests()?;
    drop(store);
    let store = ProjectionStore::open(dir.path(), projections())?;
    assert_eq!(store.applied(), Some((20, 1)));
    assert_eq!(store.digests()?, digests);
    Ok(())
}

#[test]
fn a_crash_loses_the_unflushed_tail_and_reapplying_it_is_exactly_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let entries = log(60);
    let store = ProjectionStore::open(dir.path(), projections())?;
    store.apply_batch(&entries[..25])?;
    store.flush()?;
    store.apply_batch(&entries[25..40])?;
    store.apply_batch(&entries[40..])?;
    let live = store.digests()?;
    store.close_losing_unflushed();

    let store = ProjectionStore::open(dir.path(), projections())?;
    let applied = store.applied().map_or(0, |(i, _)| i);
    assert_eq!(
        applied, 25,
        "the flushed prefix survives, the memtable is lost"
    );
    // The log is re-applied from a point at or before `applied`: the overlap is skipped.
    let outcomes = store.apply_batch(&entries[20..])?;
    assert!(outcomes[..5].iter().all(|o| *o == Outcome::AlreadyApplied));
    assert_eq!(store.applied(), Some((60, 1)));
    assert_eq!(store.digests()?, live);

    let rebuilt_dir = tempfile::tempdir()?;
    let rebuilt = ProjectionStore::rebuild(rebuilt_dir.path(), projections(), entries)?;
    assert_eq!(rebuilt.digests()?, live);
    Ok(())
}

/// The exactly-once argument rests on these RocksDB settings; RocksDB records the options it
/// runs with in its OPTIONS file.
#[test]
fn rocksdb_runs_with_atomic_flush_and_without_flush_on_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let _store = ProjectionStore::open(dir.path(), projections())?;
    let mut options = String::new();
    for entry in std::fs::read_dir(dir.path())? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("OPTIONS-") {
            options = std::fs::read_to_string(entry.path())?;
        }
    }
    assert!(options.contains("atomic_flush=true"), "{options}");
    assert!(
        options.contains("avoid_flush_during_shutdown=true"),
        "{options}"
    );
    assert!(options.contains("compression=kLZ4Compression"), "{options}");
    Ok(())
}

#[test]
fn duplicate_request_is_rejected_and_counted_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    let first = event(1, 1, 9, 42, 1_000);
    let retry_same_batch = event(2, 1, 9, 42, 2_000);
    let retry_later = event(3, 1, 9, 42, 3_000);
    let other_node_same_seq = event(4, 1, 8, 42, 3_000);
    let outcomes = store.apply_batch(&[first, retry_same_batch])?;
    assert!(matches!(outcomes[0], Outcome::Applied { .. }));
    assert_eq!(
        outcomes[1],
        Outcome::Rejected(Rejection::DuplicateRequest { first_index: 1 })
    );
    store.flush()?;
    drop(store);
    let store = ProjectionStore::open(dir.path(), projections())?;
    let outcomes = store.apply_batch(&[retry_later, other_node_same_seq])?;
    assert_eq!(
        outcomes[0],
        Outcome::Rejected(Rejection::DuplicateRequest { first_index: 1 })
    );
    assert!(matches!(outcomes[1], Outcome::Applied { .. }));
    assert_eq!(
        count(&store, &CountsProjection::kind_key("PeerSeen")),
        Some(2)
    );
    let rejected = store.scan_prefix(format::CF_REJECTED, &[])?;
    let keys: Vec<_> = rejected.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        [format::rejected_key(2, ""), format::rejected_key(3, "")]
    );
    assert!(String::from_utf8_lossy(&rejected[0].1).starts_with("duplicate request"));
    assert_eq!(
        store.get(format::CF_REQUESTS, &format::request_key(&[9; 4], 42))?,
        Some(1u64.to_le_bytes().to_vec())
    );
    Ok(())
}

#[test]
fn a_batch_entry_applies_each_event_in_order_with_its_own_outcome() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    let ev = |seed, node, seq, proposed| common::event_bytes(seed, node, seq, proposed);
    let outcomes = store.apply_batch(&[
        event(1, 1, 9, 1, 1_000),
        CommittedEntry::batch(
            2,
            1,
            vec![
                ev(2, 9, 2, 2_000),                       // applied
                ev(3, 9, 1, 2_100),                       // duplicate of entry 1
                Bytes::from_static(b"\xff not protobuf"), // undecodable
                ev(4, 8, 5, 1_500),                       // ledger-1 rejects seq 5
                ev(5, 8, 6, 1_600),                       // applied
                ev(6, 8, 6, 1_700),                       // duplicate inside the batch
            ],
        ),
        CommittedEntry::batch(3, 1, Vec::new()),
    ])?;
    let Outcome::Batch(inner) = &outcomes[1] else {
        panic!("unexpected outcome {outcomes:?}");
    };
    assert_eq!(inner.len(), 6);
    assert!(matches!(&inner[0], Outcome::Applied { rejected_by } if rejected_by.is_empty()));
    assert_eq!(
        inner[1],
        Outcome::Rejected(Rejection::DuplicateRequest { first_index: 1 })
    );
    assert!(matches!(
        inner[2],
        Outcome::Rejected(Rejection::Undecodable { .. })
    ));
    assert!(matches!(&inner[3], Outcome::Applied { rejected_by } if rejected_by.len() == 1));
    assert!(matches!(&inner[4], Outcome::Applied { rejected_by } if rejected_by.is_empty()));
    assert_eq!(
        inner[5],
        Outcome::Rejected(Rejection::DuplicateRequest { first_index: 2 })
    );
    assert_eq!(outcomes[2], Outcome::Batch(Vec::new()));
    let reasons = outcomes[1].event_rejections();
    // Three rejected by the runtime, one by a projection (named in the reason).
    assert_eq!(reasons.iter().filter(|r| r.is_some()).count(), 4);
    assert!(reasons[3]
        .as_deref()
        .is_some_and(|r| r.starts_with("ledger-1: ")));
    assert_eq!(outcomes[0].event_rejections(), [None]);

    assert_eq!(store.applied(), Some((3, 1)));
    assert_eq!(
        store.log_time_ms(),
        2_100,
        "every event of the batch moves log time"
    );
    assert_eq!(
        store.get("ledger-1", b"total")?,
        Some(3u64.to_le_bytes().to_vec()),
        "entry 1, and positions 0 and 4 of the batch (ledger-1 rejected position 3)"
    );
    let keys: Vec<_> = store
        .scan_prefix(format::CF_REJECTED, &[])?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            format::batch_rejected_key(2, 1, ""),
            format::batch_rejected_key(2, 2, ""),
            format::batch_rejected_key(2, 3, "ledger-1"),
            format::batch_rejected_key(2, 5, ""),
        ]
    );
    // The model agrees, and so does a rebuild.
    let mut model = MemStore::new(projections())?;
    let log = [
        event(1, 1, 9, 1, 1_000),
        CommittedEntry::batch(2, 1, vec![ev(2, 9, 2, 2_000), ev(3, 9, 1, 2_100)]),
    ];
    model.apply_batch(&log)?;
    let rebuilt_dir = tempfile::tempdir()?;
    let rebuilt = ProjectionStore::rebuild(rebuilt_dir.path(), projections(), log)?;
    assert_eq!(model.digests()?, rebuilt.digests()?);
    Ok(())
}

#[test]
fn undecodable_payload_is_rejected_and_the_index_advances() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    let mut no_event = common::envelope(1, 1, 1, 5);
    no_event.event = None;
    let mut future_schema = common::envelope(1, 1, 2, 5);
    future_schema.schema_version = 99;
    let outcomes = store.apply_batch(&[
        CommittedEntry::event(1, 1, Bytes::from_static(b"\xff\xff\xff not protobuf")),
        CommittedEntry::event(2, 1, Bytes::new()),
        CommittedEntry::event(3, 1, no_event.encode_to_bytes()),
        CommittedEntry::event(4, 2, future_schema.encode_to_bytes()),
    ])?;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::Rejected(Rejection::Undecodable { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(store.applied(), Some((4, 2)));
    assert_eq!(store.log_time_ms(), 0, "undecodable entries carry no time");
    assert_eq!(store.scan_prefix(format::CF_REJECTED, &[])?.len(), 4);
    assert!(store.scan_prefix(CountsProjection::NAME, &[])?.is_empty());
    Ok(())
}

#[test]
fn non_events_advance_the_index_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    let empty = store.digests()?;
    let outcomes =
        store.apply_batch(&[CommittedEntry::other(0, 0), CommittedEntry::other(1, 1)])?;
    assert_eq!(outcomes, [Outcome::NotAnEvent, Outcome::NotAnEvent]);
    assert_eq!(store.applied(), Some((1, 1)));
    assert_eq!(store.digests()?, empty);
    Ok(())
}

#[test]
fn log_time_is_the_max_of_proposer_clocks_even_when_clocks_go_backwards() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    store.apply_batch(&[event(1, 1, 1, 1, 5_000), event(2, 3, 2, 1, 3_000)])?;
    assert_eq!(store.log_time_ms(), 5_000);
    // Ledger records the log time each event was applied at.
    let seen = store.get(
        Ledger.name(),
        &[b"seen/".as_slice(), &common::envelope(3, 2, 1, 0).origin].concat(),
    )?;
    assert_eq!(
        seen.as_deref().map(|v| &v[..8]),
        Some(5_000u64.to_le_bytes().as_slice())
    );
    store.apply_batch(&[event(3, 5, 1, 2, 7_000), event(4, 7, 1, 3, 6_999)])?;
    assert_eq!(store.log_time_ms(), 7_000);
    drop(store);
    let store = ProjectionStore::open(dir.path(), projections())?;
    assert_eq!(store.log_time_ms(), 7_000, "log time survives a restart");
    Ok(())
}

#[test]
fn a_projection_rejection_drops_only_that_projections_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    let outcomes = store.apply_batch(&[event(1, 1, 1, 5, 10)])?;
    let Outcome::Applied { rejected_by } = &outcomes[0] else {
        panic!("unexpected outcome {outcomes:?}");
    };
    assert_eq!(rejected_by.len(), 1);
    assert_eq!(rejected_by[0].projection, "ledger-1");
    assert_eq!(store.get("ledger-1", b"poison")?, None);
    assert_eq!(
        store.get("ledger-1", b"total")?,
        None,
        "the rejected event's writes are all dropped"
    );
    assert_eq!(
        count(&store, &CountsProjection::kind_key("PeerSeen")),
        Some(1)
    );
    assert!(store
        .get(format::CF_REJECTED, &format::rejected_key(1, "ledger-1"))?
        .is_some());
    Ok(())
}

#[test]
fn a_gap_in_the_indexes_is_an_error_and_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    store.apply_batch(&log(3))?;
    let before = store.digests_with_applied()?;
    let err = store.apply_batch(&[event(4, 4, 1, 4, 0), event(6, 6, 1, 6, 0)]);
    assert!(
        matches!(
            err,
            Err(ProjectionError::NonContiguous {
                applied: 4,
                found: 6,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(store.applied(), Some((3, 1)));
    assert_eq!(store.digests_with_applied()?, before);
    Ok(())
}

#[test]
fn checkpoint_round_trip() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path().join("live"), projections())?;
    store.apply_batch(&log(40))?;
    let target = dir.path().join("checkpoint");
    assert_eq!(store.checkpoint(&target)?, Some((40, 1)));
    let live = store.digests()?;
    store.apply_batch(&log(45)[40..])?; // later applies do not reach the checkpoint
    assert!(matches!(
        store.checkpoint(&target),
        Err(ProjectionError::TargetNotEmpty { .. })
    ));
    let copy = ProjectionStore::open(&target, projections())?;
    assert_eq!(copy.applied(), Some((40, 1)));
    assert_eq!(copy.digests()?, live);
    copy.apply_batch(&log(45)[40..])?;
    assert_eq!(copy.digests()?, store.digests()?);
    Ok(())
}

#[test]
fn rebuild_refuses_a_non_empty_directory() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("something"), b"x")?;
    let err = ProjectionStore::rebuild(dir.path(), projections(), log(3));
    assert!(
        matches!(err, Err(ProjectionError::TargetNotEmpty { .. })),
        "{err:?}"
    );
    let fresh = dir.path().join("fresh");
    let store = ProjectionStore::rebuild(&fresh, projections(), log(3))?;
    assert_eq!(store.applied(), Some((3, 1)));
    Ok(())
}

/// Many rebuild batches (the rebuild folds one while it writes the one before): request ids
/// repeat across batch boundaries, so later batches must see earlier writes whether they are
/// written yet or not. The result equals the in-memory model, and so does a store brought
/// forward from a partial state with `apply_all`.
#[test]
fn a_rebuild_of_many_batches_equals_the_model() -> TestResult {
    let n = 5_000u64;
    let entries: Vec<CommittedEntry> = (1..=n)
        .map(|i| {
            if i.is_multiple_of(97) {
                CommittedEntry::other(i, 1 + i / 1_000)
            } else {
                // 3 nodes × 1,500 sequence numbers: most ids come back about 1,500 entries
                // later, one or two batches on.
                let seq = i.wrapping_mul(7_919) % 1_500;
                event(i, i % 40, (i % 3) as u8, seq, 1_000 + (i * 13) % 5_000)
            }
        })
        .collect();
    let mut model = MemStore::new(projections())?;
    model.apply_batch(&entries)?;
    let expected = model.digests()?;

    let dir = tempfile::tempdir()?;
    let rebuilt =
        ProjectionStore::rebuild(dir.path().join("rebuilt"), projections(), entries.clone())?;
    assert_eq!(rebuilt.applied(), model.applied());
    assert_eq!(rebuilt.log_time_ms(), model.log_time_ms());
    assert_eq!(rebuilt.digests()?, expected);
    let rejected = model.table("rejected")?.len();
    assert!(rejected > 1_000, "duplicates were rejected: {rejected}");

    let forward = ProjectionStore::open(dir.path().join("forward"), projections())?;
    forward.apply_batch(&entries[..1_234])?;
    forward.apply_all(entries[1_000..].iter().cloned())?;
    assert_eq!(forward.applied(), model.applied());
    assert_eq!(forward.digests()?, expected);
    drop(forward);
    let reopened = ProjectionStore::open(dir.path().join("forward"), projections())?;
    assert_eq!(
        reopened.digests_with_applied()?,
        (model.applied(), expected)
    );
    Ok(())
}

#[test]
fn open_refuses_a_directory_that_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("notes.txt"), b"hello")?;
    let err = ProjectionStore::open(dir.path(), projections());
    assert!(
        matches!(err, Err(ProjectionError::NotAStore { .. })),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn open_refuses_a_newer_format() -> TestResult {
    let dir = tempfile::tempdir()?;
    ProjectionStore::open(dir.path(), projections())?.apply_batch(&log(2))?;
    {
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path())?;
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), cfs)?;
        let meta = db.cf_handle(format::CF_META).ok_or("no meta")?;
        db.put_cf(
            meta,
            format::META_FORMAT_VERSION,
            (format::FORMAT_VERSION + 1).to_le_bytes(),
        )?;
    }
    let err = ProjectionStore::open(dir.path(), projections()).map(|_| ());
    match err {
        Err(ProjectionError::UnsupportedFormat {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (2, 1));
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    let message = ProjectionStore::open(dir.path(), projections())
        .err()
        .map(|e| e.to_string());
    assert!(message.is_some_and(|m| m.contains("format version 2 is newer")));
    Ok(())
}

#[test]
fn a_projection_added_to_a_used_store_needs_a_rebuild() -> TestResult {
    let dir = tempfile::tempdir()?;
    let counts_only: Vec<Arc<dyn Projection>> = vec![Arc::new(CountsProjection)];
    ProjectionStore::open(dir.path(), counts_only.clone())?.apply_batch(&log(5))?;
    for _ in 0..2 {
        // Refused now and on every later attempt: the empty column family it created does
        // not make the projection complete.
        let err = ProjectionStore::open(dir.path(), projections());
        assert!(
            matches!(&err, Err(ProjectionError::NeedsRebuild { projection, applied: 5, .. }) if projection == "ledger-1"),
            "{err:?}"
        );
    }
    // Dropping a projection, applying without it, then registering it again: also refused.
    let dir = tempfile::tempdir()?;
    ProjectionStore::open(dir.path(), projections())?.apply_batch(&log(5))?;
    ProjectionStore::open(dir.path(), counts_only)?.apply_batch(&log(6)[5..])?;
    let err = ProjectionStore::open(dir.path(), projections());
    assert!(
        matches!(err, Err(ProjectionError::NeedsRebuild { .. })),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn invalid_projection_sets_are_refused() -> TestResult {
    struct Named(&'static str);
    impl Projection for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn apply(
            &self,
            _: &hearth_projections::ApplyCtx,
            _: &hearth_proto::v1::Envelope,
            _: &mut dyn hearth_projections::StateTx,
        ) -> hearth_projections::Applied {
            hearth_projections::Applied::Ok
        }
    }
    let dir = tempfile::tempdir()?;
    for set in [
        vec![Arc::new(Named("meta")) as Arc<dyn Projection>],
        vec![Arc::new(Named(""))],
        vec![Arc::new(Named("a-1")), Arc::new(Named("a-1"))],
    ] {
        let err = ProjectionStore::open(dir.path(), set);
        assert!(
            matches!(err, Err(ProjectionError::InvalidProjections { .. })),
            "{err:?}"
        );
    }
    Ok(())
}

#[test]
fn unknown_tables_are_typed_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::open(dir.path(), projections())?;
    assert!(matches!(
        store.digest("meta"),
        Err(ProjectionError::UnknownTable { .. })
    ));
    assert!(matches!(
        store.get("nope-1", b"k"),
        Err(ProjectionError::UnknownTable { .. })
    ));
    Ok(())
}

/// A log built field by field (not from the sample generator), so the golden digests depend on
/// this crate's encodings only.
fn golden_log() -> Vec<CommittedEntry> {
    use hearth_proto::v1::{envelope::Event, Envelope, PeerSeen, RequestId};
    (1..=12u64)
        .map(|i| match i {
            6 => CommittedEntry::other(i, 1),
            9 => CommittedEntry::event(i, 1, Bytes::from_static(b"garbage")),
            _ => {
                // Entry 10 retries entry 4's request.
                let (node, seq) = if i == 10 {
                    (vec![1u8; 4], 4)
                } else {
                    (vec![(i % 3) as u8; 4], i)
                };
                let env = Envelope {
                    schema_version: 1,
                    origin: node.clone().into(),
                    proposed_at_unix_ms: 1_000 + (i % 4) * 10,
                    request_id: Some(RequestId {
                        node: node.into(),
                        seq,
                    }),
                    event: Some(Event::PeerSeen(PeerSeen {
                        peer_id: vec![i as u8].into(),
                        addresses: vec!["/ip4/127.0.0.1/tcp/7071".into()],
                        latency_us: i,
                        agent_version: "hearth/test".into(),
                        protocol_version: "/hearth/1".into(),
                    })),
                };
                CommittedEntry::event(i, 1, env.encode_to_bytes())
            }
        })
        .collect()
}

/// Pins the store encodings and the digest: if this fails, a persisted or exchanged format
/// changed. That needs a new projection name or format version (and `DIGEST_CONTEXT` for the
/// digest), not just a new expected value.
#[test]
fn golden_digests() -> TestResult {
    let hex = |d: &[u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let dir = tempfile::tempdir()?;
    let store = ProjectionStore::rebuild(dir.path(), projections(), golden_log())?;
    // What the log holds: 9 events applied (6 is not an event, 9 is garbage, 10 a retry).
    assert_eq!(
        count(&store, &CountsProjection::kind_key("PeerSeen")),
        Some(9)
    );
    let rejected: Vec<Vec<u8>> = store
        .scan_prefix(format::CF_REJECTED, &[])?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        rejected,
        [
            format::rejected_key(5, "ledger-1"),
            format::rejected_key(9, ""),
            format::rejected_key(10, "")
        ]
    );
    assert_eq!(store.log_time_ms(), 1_030);

    // The digest as documented, computed independently of `Digester`.
    let mut hasher = blake3::Hasher::new_derive_key(format::DIGEST_CONTEXT);
    let framed = |h: &mut blake3::Hasher, bytes: &[u8]| {
        h.update(&(bytes.len() as u32).to_le_bytes());
        h.update(bytes);
    };
    framed(&mut hasher, b"counts-1");
    for (key, value) in store.scan_prefix(CountsProjection::NAME, &[])? {
        framed(&mut hasher, &key);
        framed(&mut hasher, &value);
    }
    assert_eq!(
        *hasher.finalize().as_bytes(),
        store.digest(CountsProjection::NAME)?
    );

    let digests: Vec<(String, String)> = store
        .digests()?
        .iter()
        .map(|(k, v)| (k.clone(), hex(v)))
        .collect();
    let expected: Vec<(String, String)> = GOLDEN
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(digests, expected);
    Ok(())
}

const GOLDEN: [(&str, &str); 4] = [
    (
        "counts-1",
        "c0a645dfe45f21c967f2eef2b6438d25b7f0355484666767e7769a569fc5bc2d",
    ),
    (
        "ledger-1",
        "6bb50bed5b960cc9ccb030171c08c23b483e44921456ebe757088968d91fc395",
    ),
    (
        "rejected",
        "e9a7170b05d5a2ea1750bc95efef028be111959a1d3a771543591fca8dcd287c",
    ),
    (
        "requests",
        "a6286d83095f3a9844680256c00d862ebbb091dff8333ea1982ec7c8fd89e2fa",
    ),
];

/// Every file name, size and modification time under `dir`.
fn listing(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            (e.path(), m.len(), m.modified().expect("mtime"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn read_only_open_reads_the_flushed_state_and_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let live = ProjectionStore::open(dir.path(), projections())?;
    live.apply_batch(&log(30))?;
    let (applied, digests) = live.digests_with_applied()?;
    let log_time = live.log_time_ms();
    drop(live);
    let before = listing(dir.path());

    let ro = ProjectionStore::open_read_only(dir.path(), projections())?;
    assert_eq!(ro.applied(), applied);
    assert_eq!(ro.log_time_ms(), log_time);
    assert_eq!(ro.digests_with_applied()?, (applied, digests));
    // The streamed scan is the table in key order, the same pairs as a prefix scan of all.
    let streamed: Vec<(Vec<u8>, Vec<u8>)> = ro
        .iter(CountsProjection::NAME)?
        .map(|kv| kv.map(|(k, v)| (k.into_vec(), v.into_vec())))
        .collect::<Result<_, _>>()?;
    assert!(!streamed.is_empty());
    assert_eq!(streamed, ro.scan_prefix(CountsProjection::NAME, b"")?);
    assert!(ro.apply_batch(&log(31)[30..]).is_err(), "writes must fail");
    assert!(ro.iter("no-such-table").is_err());
    drop(ro);
    assert_eq!(
        listing(dir.path()),
        before,
        "a read-only open changes nothing"
    );

    let empty = tempfile::tempdir()?;
    assert!(matches!(
        ProjectionStore::open_read_only(empty.path(), projections()),
        Err(ProjectionError::NotAStore { .. })
    ));
    let counts_only: Vec<Arc<dyn Projection>> = vec![Arc::new(CountsProjection)];
    let other = tempfile::tempdir()?;
    drop(ProjectionStore::open(other.path(), counts_only)?);
    assert!(matches!(
        ProjectionStore::open_read_only(other.path(), projections()),
        Err(ProjectionError::NeedsRebuild { .. })
    ));
    Ok(())
}
