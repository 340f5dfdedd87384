//! [`ProjectionStateMachine`] on real RocksDB stores in temp dirs: events reach the counts
//! projection; a crash (unflushed state lost) followed by re-applying the log from
//! `applied_state` converges to the same digests; snapshots round-trip between state machines;
//! damaged snapshots are refused with the old state intact; interrupted installs are finished
//! or undone on open.

use hearth_projections::{CountsProjection, Digests, Projection};
use hearth_proto::sample::sample_envelope;
use hearth_raft::snapshot::{decode_snapshot, encode_snapshot, SnapshotFile};
use hearth_raft::{
    Applied, Entry, LogId, Membership, ProjectionStateMachine, Proposal, SnapshotError,
    SnapshotInfo, StoredMembership,
};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(CountsProjection)]
}

fn open(dir: &Path) -> ProjectionStateMachine {
    ProjectionStateMachine::open(dir, projections()).expect("open state machine")
}

fn lid(term: u64, node: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn entry(log_id: LogId, payload: EntryPayload<hearth_raft::TypeConfig>) -> Entry {
    Entry { log_id, payload }
}

fn event(log_id: LogId, seed: u64) -> Entry {
    let envelope = sample_envelope(seed, 200).encode_to_bytes();
    entry(log_id, EntryPayload::Normal(Proposal::new(envelope)))
}

fn membership(voters: &[u64]) -> Membership {
    Membership::new(vec![voters.iter().copied().collect::<BTreeSet<_>>()], None)
}

/// A log of 60 entries with four leaders (two of them in the same term, as openraft's default
/// leader ids allow), three membership changes, an undecodable payload, a duplicate request and
/// a batch entry holding one new event, one duplicate and one undecodable payload.
fn history() -> Vec<Entry> {
    let mut out = Vec::new();
    for index in 1..=60u64 {
        let (term, node) = match index {
            1..=15 => (1, 1),
            16..=35 => (2, 2),
            36..=45 => (2, 3),
            _ => (3, 1),
        };
        let id = lid(term, node, index);
        out.push(match index {
            1 | 16 | 36 => entry(id, EntryPayload::Blank),
            2 => entry(id, EntryPayload::Membership(membership(&[1]))),
            26 => entry(id, EntryPayload::Membership(membership(&[1, 2]))),
            46 => entry(id, EntryPayload::Membership(membership(&[1, 2, 3]))),
            40 => entry(
                id,
                EntryPayload::Normal(Proposal::new(&b"not an envelope"[..])),
            ),
            41 => event(id, 3), // the same request as index 5: rejected as a duplicate
            // A proposer's batch: a new event, the same request as index 6, garbage.
            50 => entry(
                id,
                EntryPayload::Normal(Proposal::batch(vec![
                    sample_envelope(48, 200).encode_to_bytes(),
                    sample_envelope(4, 200).encode_to_bytes(),
                    bytes::Bytes::from_static(b"not an envelope"),
                ])),
            ),
            _ => event(id, index - 2),
        });
    }
    out
}

/// The membership in force after applying `history()` through `index`.
fn membership_at(history: &[Entry], index: u64) -> StoredMembership {
    history
        .iter()
        .take_while(|e| e.log_id.index <= index)
        .filter_map(|e| match &e.payload {
            EntryPayload::Membership(m) => Some(StoredMembership::new(Some(e.log_id), m.clone())),
            _ => None,
        })
        .last()
        .unwrap_or_default()
}

/// Applies `entries` in chunks of 7 (several calls, several RocksDB writes).
async fn apply_all(sm: &mut ProjectionStateMachine, entries: &[Entry]) -> Vec<Applied> {
    let mut out = Vec::new();
    for chunk in entries.chunks(7) {
        out.extend(sm.apply(chunk.to_vec()).await.expect("apply"));
    }
    out
}

async fn state(sm: &mut ProjectionStateMachine) -> (Option<LogId>, StoredMembership, Digests) {
    let (applied, membership) = sm.applied_state().await.expect("applied_state");
    (applied, membership, sm.digests().expect("digests"))
}

fn count(sm: &ProjectionStateMachine, key: &[u8]) -> u64 {
    sm.with_store(|s| s.get(CountsProjection::NAME, key))
        .expect("store")
        .expect("get")
        .as_deref()
        .and_then(CountsProjection::decode_count)
        .unwrap_or(0)
}

#[tokio::test]
async fn applied_events_reach_the_counts_projection() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    assert_eq!(
        sm.applied_state().await.unwrap(),
        (None, Default::default())
    );

    let history = history();
    let replies = apply_all(&mut sm, &history).await;
    let indexes: Vec<u64> = replies.iter().map(|a| a.index).collect();
    assert_eq!(indexes, (1..=60).collect::<Vec<_>>());

    // 60 entries - 3 blank - 3 membership - 1 undecodable - 1 duplicate = 52 counted events
    // (the batch at 50 counts one).
    let kinds: u64 = ["BlobAccepted", "PeerSeen"]
        .iter()
        .map(|k| count(&sm, &CountsProjection::kind_key(k)))
        .sum();
    assert_eq!(kinds, 52);
    let rejected = sm
        .with_store(|s| s.scan_prefix("rejected", b""))
        .unwrap()
        .unwrap();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert_eq!(replies[4].rejected, [None], "index 5: applied");
    assert!(
        replies[0].rejected.is_empty(),
        "a blank entry has no events"
    );
    assert!(replies[39].rejection(0).unwrap().starts_with("undecodable"));
    assert!(replies[40].rejection(0).unwrap().starts_with("duplicate"));
    let batch = &replies[49].rejected;
    assert_eq!(batch.len(), 3, "{batch:?}");
    assert_eq!(batch[0], None);
    assert!(batch[1]
        .as_deref()
        .unwrap()
        .contains("first applied at index 6"));
    assert!(batch[2].as_deref().unwrap().starts_with("undecodable"));

    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(lid(3, 1, 60)));
    assert_eq!(mem, membership_at(&history, 60));
    assert_eq!(sm.flush().unwrap(), Some(lid(3, 1, 60)));

    // One opener at a time.
    assert!(ProjectionStateMachine::open(dir.path(), projections()).is_err());

    // A clean reopen keeps everything.
    let before = state(&mut sm).await;
    drop(sm);
    let mut sm = open(dir.path());
    assert_eq!(state(&mut sm).await, before);
}

#[tokio::test]
async fn crash_then_reapply_from_applied_state_is_exactly_once() {
    let history = history();
    let reference_dir = tempfile::tempdir().unwrap();
    let mut reference = open(reference_dir.path());
    apply_all(&mut reference, &history).await;
    let want = state(&mut reference).await;

    // Index of the last leader or membership change at or before `k`: the state machine
    // flushed everything before it.
    let last_change = |k: u64| {
        history
            .iter()
            .take_while(|e| e.log_id.index <= k)
            .filter(|e| {
                matches!(e.payload, EntryPayload::Membership(_))
                    || e.log_id.index == 1
                    || history[e.log_id.index as usize - 2].log_id.leader_id != e.log_id.leader_id
            })
            .map(|e| e.log_id.index)
            .last()
            .unwrap_or(0)
    };

    let mut lost_some = false;
    for k in [1u64, 2, 3, 10, 15, 16, 20, 26, 30, 36, 41, 46, 47, 55, 60] {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        apply_all(&mut sm, &history[..k as usize]).await;
        sm.close_losing_unflushed();

        let mut sm = open(dir.path());
        let (applied, mem) = sm.applied_state().await.unwrap();
        let durable = applied.map_or(0, |id| id.index);
        lost_some |= durable < k;
        assert!(durable <= k, "k={k}: applied {applied:?} is ahead");
        assert!(
            durable + 1 >= last_change(k),
            "k={k}: applied {applied:?}, but everything before index {} was flushed",
            last_change(k)
        );
        if let Some(id) = applied {
            assert_eq!(
                id,
                history[id.index as usize - 1].log_id,
                "k={k}: wrong log id"
            );
        }
        assert_eq!(
            mem,
            membership_at(&history, durable),
            "k={k}: wrong membership"
        );

        // What openraft does on restart: re-apply the log after `applied_state`.
        apply_all(&mut sm, &history[durable as usize..]).await;
        assert_eq!(
            state(&mut sm).await,
            want,
            "k={k}: re-applied state differs"
        );
    }
    assert!(lost_some, "no crash lost anything: the test proves nothing");
}

#[tokio::test]
async fn snapshot_round_trip_between_state_machines() {
    let history = history();
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path());
    leader.set_chain_head_source(Some(Arc::new(|index| Some([index as u8; 32]))));
    apply_all(&mut leader, &history[..50]).await;
    assert!(leader.get_current_snapshot().await.unwrap().is_none());

    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(lid(3, 1, 50)));
    assert_eq!(snapshot.meta.last_membership, membership_at(&history, 50));
    let current = leader
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("current snapshot");
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(current.snapshot.get_ref(), snapshot.snapshot.get_ref());
    let info = leader.current_snapshot_info().unwrap().expect("info");
    assert_eq!(info.chain_head, Some([50; 32]));
    assert_eq!(info.digests, leader.digests().unwrap());

    // The leader moves on; the snapshot stays what it was.
    apply_all(&mut leader, &history[50..]).await;

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path());
    apply_all(&mut follower, &history[..5]).await; // some older state, replaced by the snapshot
    let installed: Arc<Mutex<Vec<SnapshotInfo>>> = Arc::default();
    let seen = Arc::clone(&installed);
    follower.set_on_install(Some(Arc::new(move |info: &SnapshotInfo| {
        seen.lock().unwrap().push(info.clone())
    })));
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    *data = *current.snapshot;
    follower
        .install_snapshot(&current.meta, data)
        .await
        .unwrap();
    assert_eq!(*installed.lock().unwrap(), vec![info.clone()]);

    let (applied, mem) = follower.applied_state().await.unwrap();
    assert_eq!(
        (applied, mem.clone()),
        (Some(lid(3, 1, 50)), membership_at(&history, 50))
    );
    assert_eq!(follower.digests().unwrap(), info.digests);
    let follower_current = follower
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("installed");
    assert_eq!(follower_current.meta, snapshot.meta);

    // Both continue from the snapshot to the same state, and the install is durable.
    apply_all(&mut follower, &history[50..]).await;
    assert_eq!(state(&mut follower).await, state(&mut leader).await);
    follower.close_losing_unflushed();
    let mut follower = open(follower_dir.path());
    let (applied, _) = follower.applied_state().await.unwrap();
    let durable = applied.map_or(0, |id| id.index);
    assert!(durable >= 50);
    apply_all(&mut follower, &history[durable as usize..]).await;
    assert_eq!(state(&mut follower).await, state(&mut leader).await);
    assert_eq!(
        follower
            .get_current_snapshot()
            .await
            .unwrap()
            .map(|s| s.meta),
        Some(snapshot.meta)
    );
}

#[tokio::test]
async fn an_empty_state_machine_snapshots_and_installs() {
    let a_dir = tempfile::tempdir().unwrap();
    let mut a = open(a_dir.path());
    let snapshot = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, None);
    let b_dir = tempfile::tempdir().unwrap();
    let mut b = open(b_dir.path());
    b.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(state(&mut b).await, state(&mut a).await);
}

#[tokio::test]
async fn damaged_snapshots_are_refused_and_the_old_state_stays() {
    let history = history();
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path());
    apply_all(&mut leader, &history[..30]).await;
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let meta = snapshot.meta.clone();
    let good = snapshot.snapshot.into_inner();

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path());
    apply_all(&mut follower, &history[..12]).await;
    let before = state(&mut follower).await;

    let decoded = decode_snapshot(&good).unwrap();
    let mut wrong_digests = decoded.info.clone();
    wrong_digests.digests.insert("counts-1".into(), [0; 32]);
    let files: Vec<SnapshotFile<'_>> = decoded.files.clone();
    let lying = encode_snapshot(&wrong_digests, &files).unwrap();
    let mut wrong_meta = meta.clone();
    wrong_meta.snapshot_id.push_str("-other");
    // A file dropped from the checkpoint (checksummed, so only the store can notice).
    let missing: Vec<SnapshotFile<'_>> = decoded
        .files
        .iter()
        .copied()
        .filter(|f| !f.name.ends_with(".sst"))
        .collect();
    let incomplete = encode_snapshot(&decoded.info, &missing).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    assert!(matches!(
        decode_snapshot(&flipped),
        Err(SnapshotError::Checksum)
    ));

    let cases: Vec<(&str, Vec<u8>, &hearth_raft::SnapshotMeta, &str)> = vec![
        ("flipped byte", flipped, &meta, "checksum mismatch"),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            &meta,
            "checksum mismatch",
        ),
        ("empty", Vec::new(), &meta, "truncated"),
        ("wrong digests", lying, &meta, "digests differ"),
        (
            "metadata mismatch",
            good.clone(),
            &wrong_meta,
            "openraft installs it as",
        ),
        (
            "missing table files",
            incomplete,
            &meta,
            "RocksDB open failed",
        ),
    ];
    for (what, bytes, meta, expected) in cases {
        let mut data = follower.begin_receiving_snapshot().await.unwrap();
        *data = std::io::Cursor::new(bytes);
        let err = follower.install_snapshot(meta, data).await;
        let message = format!("{:?}", err.expect_err(what));
        assert!(message.contains(expected), "{what}: {message}");
        assert_eq!(state(&mut follower).await, before, "{what}: state changed");
        assert!(
            follower.get_current_snapshot().await.unwrap().is_none(),
            "{what}"
        );
        assert!(
            !follower_dir.path().join("state.new").exists(),
            "{what}: leftovers"
        );
    }

    // Still usable: it applies on, and accepts the intact snapshot.
    apply_all(&mut follower, &history[12..20]).await;
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    *data = std::io::Cursor::new(good);
    follower.install_snapshot(&meta, data).await.unwrap();
    assert_eq!(state(&mut follower).await.2, leader.digests().unwrap());
}

/// Copies a directory tree (plain files only), for simulating crashes mid-install.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn an_interrupted_install_is_finished_or_discarded_on_open() {
    let history = history();
    let new_dir = tempfile::tempdir().unwrap();
    let mut newer = open(new_dir.path());
    apply_all(&mut newer, &history).await;
    let newer_state = state(&mut newer).await;
    drop(newer);

    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    apply_all(&mut sm, &history[..20]).await;
    let older_state = state(&mut sm).await;
    drop(sm);

    // Crash before the swap: `state` and a (possibly incomplete) `state.new`.
    copy_tree(&new_dir.path().join("state"), &dir.path().join("state.new"));
    let mut sm = open(dir.path());
    assert_eq!(state(&mut sm).await, older_state);
    assert!(!dir.path().join("state.new").exists());
    drop(sm);

    // Crash between the two renames: `state.old` and a complete `state.new`.
    copy_tree(&new_dir.path().join("state"), &dir.path().join("state.new"));
    std::fs::rename(dir.path().join("state"), dir.path().join("state.old")).unwrap();
    let mut sm = open(dir.path());
    assert_eq!(state(&mut sm).await, newer_state);
    assert!(!dir.path().join("state.old").exists());
}
