//! What openraft's suite does not check: durability across reopen and power loss, group commit,
//! failure handling, damaged bytes, and the purge paths that touch the log's chain.

use bytes::Bytes;
use hearth_log::vfs::{SimFault, SimVfs};
use hearth_log::{Log, LogOptions, LogPosition, OpenMode};
use hearth_raft::{
    codec, Entry, HearthLogStore, LogId, Proposal, RaftMeta, StorageError, StoreError,
    StoreOptions, Vote, UNKNOWN_CHAIN,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, ErrorSubject, RaftLogReader};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

const DIR: &str = "/log";

fn opts() -> LogOptions {
    LogOptions {
        segment_size: 256 << 10,
        prepare_in_background: false,
        ..LogOptions::default()
    }
}

fn sim_log(vfs: &Arc<SimVfs>) -> Log {
    Log::open_with(Path::new(DIR), opts(), OpenMode::ReadWrite, vfs.clone()).unwrap()
}

async fn sim_store(vfs: &Arc<SimVfs>) -> HearthLogStore {
    HearthLogStore::open(sim_log(vfs), StoreOptions::default())
        .await
        .unwrap()
}

fn log_id(term: u64, node: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn event(term: u64, node: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, node, index),
        payload: EntryPayload::Normal(Proposal::new(format!("event-{index}").into_bytes())),
    }
}

fn events(term: u64, node: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|i| event(term, node, i)).collect()
}

async fn all(store: &mut HearthLogStore) -> Vec<Entry> {
    store.try_get_log_entries(..).await.unwrap()
}

#[tokio::test]
async fn reopen_keeps_entries_vote_committed_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = HearthLogStore::open(
        Log::open(dir.path(), opts()).unwrap(),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    store.blocking_append(events(1, 7, 1..=10)).await.unwrap();
    store.save_vote(&Vote::new_committed(1, 7)).await.unwrap();
    store.save_committed(Some(log_id(1, 7, 6))).await.unwrap();
    store.purge(log_id(1, 7, 3)).await.unwrap();
    store.truncate(log_id(1, 7, 9)).await.unwrap();
    store.blocking_append(events(2, 5, 9..=9)).await.unwrap();
    store.close().await.unwrap();

    let log = Log::open(dir.path(), opts()).unwrap();
    let mut store = HearthLogStore::open(log, StoreOptions::default())
        .await
        .unwrap();
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 7, 3)));
    assert_eq!(st.last_log_id, Some(log_id(2, 5, 9)));
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 7))
    );
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 7, 6)));
    let mut want = events(1, 7, 4..=8);
    want.push(event(2, 5, 9));
    assert_eq!(all(&mut store).await, want);
    // the log's own view agrees, and its chain verifies
    assert_eq!(store.log().first_index(), Some(4));
    store.log().verify(..).unwrap();
}

/// `save_committed` has no write of its own: it is written with the next append.
#[tokio::test]
async fn committed_rides_on_the_next_write() {
    let vfs = SimVfs::new();
    let mut store = sim_store(&vfs).await;
    store.blocking_append(events(1, 1, 1..=3)).await.unwrap();
    let syncs = vfs.syncs();
    store.save_committed(Some(log_id(1, 1, 3))).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        vfs.syncs(),
        syncs,
        "save_committed must not fsync by itself"
    );
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 3)));

    store.blocking_append(events(1, 1, 4..=4)).await.unwrap();
    drop(store);
    vfs.power_loss_durable_only();
    let mut store = sim_store(&vfs).await;
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 3)));
    assert_eq!(all(&mut store).await, events(1, 1, 1..=4));
}

/// What was acknowledged (append callback, `save_vote`, `truncate`, `purge`) survives power loss.
#[tokio::test]
async fn acknowledged_writes_survive_power_loss() {
    let vfs = SimVfs::new();
    let mut store = sim_store(&vfs).await;
    store.blocking_append(events(1, 2, 0..=20)).await.unwrap();
    store.save_vote(&Vote::new(2, 3)).await.unwrap();
    store.truncate(log_id(1, 2, 15)).await.unwrap();
    store.purge(log_id(1, 2, 4)).await.unwrap();
    store.blocking_append(events(2, 3, 15..=16)).await.unwrap();
    drop(store);
    vfs.power_loss(7);

    let mut store = sim_store(&vfs).await;
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 2, 4)));
    assert_eq!(st.last_log_id, Some(log_id(2, 3, 16)));
    let mut want = events(1, 2, 5..=14);
    want.extend(events(2, 3, 15..=16));
    assert_eq!(all(&mut store).await, want);
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Polls every future in order until all are done (a tiny `join_all`).
async fn join_in_order<T>(mut futs: Vec<BoxFut<T>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Appends issued back to back (openraft does not wait for the callback before the next) are
/// made durable together: one `Log::append`, one group commit.
#[tokio::test(flavor = "current_thread")]
async fn back_to_back_appends_share_one_group_commit() {
    let vfs = SimVfs::new();
    let store = sim_store(&vfs).await;
    let before = store.log().stats();
    let futs: Vec<BoxFut<Result<(), StorageError>>> = (1..=200)
        .map(|i| {
            let mut s = store.clone();
            Box::pin(async move { s.blocking_append([event(1, 1, i)]).await }) as BoxFut<_>
        })
        .collect();
    for r in join_in_order(futs).await {
        r.unwrap();
    }
    let after = store.log().stats();
    assert_eq!(after.entries - before.entries, 200);
    assert_eq!(after.batches - before.batches, 1, "{after:?}");
    let mut store = store;
    assert_eq!(all(&mut store).await, events(1, 1, 1..=200));
}

/// Entries are readable as soon as `append` returns, before they are durable.
#[tokio::test(flavor = "current_thread")]
async fn appended_entries_are_readable_before_the_callback() {
    let vfs = SimVfs::new();
    let mut store = sim_store(&vfs).await;
    store.blocking_append(events(1, 1, 1..=2)).await.unwrap();
    let mut s = store.clone();
    let mut append = Box::pin(async move { s.blocking_append(events(1, 1, 3..=5)).await });
    // one poll: `append` has returned, the callback has not run (the writer task has not)
    assert!(futures_poll_once(append.as_mut()).await.is_pending());
    assert_eq!(all(&mut store).await, events(1, 1, 1..=5));
    // ranges inside the pending entries, and across the log and the pending entries
    let got = store.try_get_log_entries(4..5).await.unwrap();
    assert_eq!(got, events(1, 1, 4..=4));
    let got = store.try_get_log_entries(2..=3).await.unwrap();
    assert_eq!(got, events(1, 1, 2..=3));
    let got = store.try_get_log_entries(5..100).await.unwrap();
    assert_eq!(got, events(1, 1, 5..=5));
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, Some(log_id(1, 1, 5)));
    assert_eq!(store.log().last().map(|p| p.index), Some(2));
    append.await.unwrap();
    assert_eq!(store.log().last().map(|p| p.index), Some(5));
    assert_eq!(all(&mut store).await, events(1, 1, 1..=5));
}

async fn futures_poll_once<F: Future + Unpin>(mut f: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut f).poll(cx))).await
}

/// A damaged entry payload is a typed error naming the index, never a panic.
#[tokio::test]
async fn damaged_entry_is_a_typed_error() {
    let vfs = SimVfs::new();
    let log = sim_log(&vfs);
    let good = codec::encode_entry(&event(1, 1, 1));
    let mut bad = good.payload.to_vec();
    bad.truncate(bad.len() - 2);
    let mut newer = codec::encode_entry(&event(1, 1, 3)).payload.to_vec();
    newer[0] = 200;
    log.append(vec![
        good,
        hearth_log::Entry::new(2, 1, bad),
        hearth_log::Entry::new(3, 1, newer),
    ])
    .await
    .unwrap();
    let mut store = HearthLogStore::open(log, StoreOptions::default())
        .await
        .unwrap();

    assert_eq!(
        store.try_get_log_entries(1..2).await.unwrap(),
        vec![event(1, 1, 1)]
    );
    for (index, what) in [(2u64, "does not decode"), (3, "version 200")] {
        let err = store.try_get_log_entries(index..=index).await.unwrap_err();
        let msg = err.into_io().unwrap().to_string();
        assert!(
            msg.contains(&format!("{:?}", ErrorSubject::<u64>::LogIndex(index))),
            "{msg}"
        );
        assert!(msg.contains(&format!("raft log entry {index}")), "{msg}");
        assert!(msg.contains(what), "{msg}");
    }
    // the last entry is read for the log state: the error surfaces there too
    assert!(store.get_log_state().await.is_err());
}

/// A damaged metadata record refuses to open, with a typed error.
#[tokio::test]
async fn damaged_meta_refuses_to_open() {
    let vfs = SimVfs::new();
    let log = sim_log(&vfs);
    log.write_meta(Bytes::from_static(&[1, 0xff, 0xff]))
        .await
        .unwrap();
    let err = HearthLogStore::open(log, StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CorruptMeta(_)), "{err}");
}

/// A failed fsync fails the append's callback, and every later write.
#[tokio::test]
async fn failed_fsync_fails_the_callback_and_later_writes() {
    let vfs = SimVfs::new();
    let mut store = sim_store(&vfs).await;
    store.blocking_append(events(1, 1, 1..=2)).await.unwrap();
    vfs.inject(SimFault::FailSync { after: 0 });
    assert!(store.blocking_append(events(1, 1, 3..=3)).await.is_err());
    vfs.clear_faults();
    let err = store.save_vote(&Vote::new(2, 1)).await.unwrap_err();
    assert!(err.to_string().contains("failed earlier"), "{err}");
    let err = store
        .blocking_append(events(1, 1, 3..=3))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed earlier"), "{err}");
}

/// A crash between recording the purge point and purging the log: the next open finishes it.
#[tokio::test]
async fn interrupted_purge_is_finished_at_open() {
    let vfs = SimVfs::new();
    let mut store = sim_store(&vfs).await;
    store.blocking_append(events(1, 4, 1..=10)).await.unwrap();
    // the metadata write succeeds, the purge's write fails
    vfs.inject(SimFault::FailWrites { after: 1 });
    assert!(store.purge(log_id(1, 4, 6)).await.is_err());
    let _ = store.close().await;
    vfs.clear_faults();
    vfs.power_loss_durable_only();

    let log = sim_log(&vfs);
    assert_eq!(log.purged(), None, "the log itself was not purged");
    let mut store = HearthLogStore::open(log, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.log().purged().map(|p| p.index), Some(6));
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 4, 6)));
    assert_eq!(all(&mut store).await, events(1, 4, 7..=10));
}

/// A log purged further than the raft metadata says is not something a crash can cause.
#[tokio::test]
async fn log_purged_without_metadata_refuses_to_open() {
    let vfs = SimVfs::new();
    let log = sim_log(&vfs);
    log.append(
        events(1, 1, 1..=3)
            .iter()
            .map(codec::encode_entry)
            .collect(),
    )
    .await
    .unwrap();
    log.purge_through(2).await.unwrap();
    let err = HearthLogStore::open(log, StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Inconsistent(_)), "{err}");
}

/// A purge past the end (after a snapshot install) restarts the log chained from the
/// snapshot's chain head when it was supplied, else from `UNKNOWN_CHAIN`.
#[tokio::test]
async fn purge_past_the_end_chains_from_the_snapshot() {
    let vfs = SimVfs::new();
    let mut store = sim_store(&vfs).await;
    store.blocking_append(events(1, 1, 1..=5)).await.unwrap();
    let head = LogPosition {
        index: 20,
        term: 2,
        chain: [9; 32],
    };
    store.set_snapshot_chain(head);
    store.purge(log_id(2, 3, 20)).await.unwrap();
    assert_eq!(store.log().purged(), Some(head));
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(2, 3, 20)));
    assert_eq!(st.last_log_id, Some(log_id(2, 3, 20)));
    store.blocking_append(events(3, 3, 21..=22)).await.unwrap();
    assert_eq!(all(&mut store).await, events(3, 3, 21..=22));
    store.log().verify(..).unwrap();

    // no chain supplied for this position
    store.purge(log_id(3, 3, 30)).await.unwrap();
    assert_eq!(store.log().purged().map(|p| p.chain), Some(UNKNOWN_CHAIN));
    assert_eq!(
        store.meta(),
        RaftMeta {
            vote: None,
            committed: None,
            purged: Some(log_id(3, 3, 30)),
        }
    );
}
