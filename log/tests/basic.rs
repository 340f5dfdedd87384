//! Basic behaviour of the log on the real file system and on SimVfs.

use bytes::Bytes;
use hearth_log::vfs::{SimFault, SimVfs, Vfs};
use hearth_log::{Durability, Entry, Log, LogError, LogOptions, OpenMode};
use std::path::Path;
use std::sync::Arc;

fn small_opts() -> LogOptions {
    LogOptions {
        segment_size: 128 << 10,
        prepare_in_background: false,
        ..LogOptions::default()
    }
}

fn entries(from: u64, n: u64, term: u64) -> Vec<Entry> {
    (from..from + n)
        .map(|i| Entry::new(i, term, format!("payload-{i}-{term}").into_bytes()))
        .collect()
}

#[tokio::test]
async fn append_read_reopen_real_fs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_opts()).unwrap();
    assert_eq!(log.next_index(), 0);
    log.append(entries(1, 10, 1)).await.unwrap();
    log.write_meta(Bytes::from_static(b"vote-1")).await.unwrap();
    log.append(entries(11, 5, 2)).await.unwrap();
    let recs = log.read(3..=12).unwrap();
    assert_eq!(recs.len(), 10);
    assert_eq!(recs[0].index, 3);
    assert_eq!(&recs[9].payload[..], b"payload-12-2");
    let head = log.last().unwrap();
    assert_eq!(head.index, 15);
    log.close().await.unwrap();

    let log = Log::open(dir.path(), small_opts()).unwrap();
    assert_eq!(log.last(), Some(head));
    assert_eq!(log.first_index(), Some(1));
    assert_eq!(log.meta().as_deref(), Some(&b"vote-1"[..]));
    let rep = log.verify(..).unwrap();
    assert_eq!(rep.entries, 15);
    assert_eq!(rep.last, Some(head));
    log.close().await.unwrap();
}

/// Entries and a metadata record sent as one request share one batch and one fsync, and both
/// survive a reopen.
#[tokio::test]
async fn append_with_meta_is_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_opts()).unwrap();
    log.append(entries(1, 3, 1)).await.unwrap();
    let before = log.stats();
    log.append_with_meta(entries(4, 5, 1), Bytes::from_static(b"committed-3"))
        .await
        .unwrap();
    let after = log.stats();
    assert_eq!(after.batches - before.batches, 1);
    assert_eq!(after.fsyncs - before.fsyncs, 1);
    assert_eq!(after.entries - before.entries, 5);
    assert_eq!(log.meta().as_deref(), Some(&b"committed-3"[..]));
    let err = log
        .append_with_meta(entries(9, 1, 1), Bytes::from(vec![0u8; (64 << 10) + 1]))
        .await;
    assert!(matches!(err, Err(LogError::TooLarge { .. })), "{err:?}");
    let head = log.last().unwrap();
    log.close().await.unwrap();

    let log = Log::open(dir.path(), small_opts()).unwrap();
    assert_eq!(log.last(), Some(head));
    assert_eq!(head.index, 8);
    assert_eq!(log.meta().as_deref(), Some(&b"committed-3"[..]));
    log.close().await.unwrap();
}

#[tokio::test]
async fn many_segments_truncate_purge() {
    let vfs = SimVfs::new();
    let dir = Path::new("/log");
    let log = Log::open_with(dir, small_opts(), OpenMode::ReadWrite, vfs.clone()).unwrap();
    for k in 0..200u64 {
        let big: Vec<Entry> = (0..10)
            .map(|j| Entry::new(1 + k * 10 + j, 1, vec![k as u8; 500]))
            .collect();
        log.append(big).await.unwrap();
    }
    assert!(log.segments().len() > 5, "{:?}", log.segments().len());
    assert_eq!(log.read(..).unwrap().len(), 2000);
    // truncate across segments, re-append with a new term
    log.truncate_after(1500).await.unwrap();
    assert_eq!(log.last().unwrap().index, 1500);
    log.append(entries(1501, 20, 2)).await.unwrap();
    let r = log.read(1499..=1502).unwrap();
    assert_eq!(
        r.iter().map(|r| r.term).collect::<Vec<_>>(),
        vec![1, 1, 2, 2]
    );
    log.verify(..).unwrap();
    // purge
    log.purge_through(1000).await.unwrap();
    assert_eq!(log.first_index(), Some(1001));
    assert_eq!(log.read(..).unwrap().len(), 520);
    let segs_after = log.segments().len();
    log.close().await.unwrap();

    vfs.power_loss_keep_all();
    let log = Log::open_with(dir, small_opts(), OpenMode::ReadWrite, vfs.clone()).unwrap();
    assert_eq!(log.first_index(), Some(1001));
    assert_eq!(log.last().unwrap().index, 1520);
    assert_eq!(log.segments().len(), segs_after);
    log.verify(..).unwrap();
    // purge past the end: restarts after it
    let p = hearth_log::LogPosition {
        index: 5000,
        term: 3,
        chain: [7; 32],
    };
    log.purge_to(p).await.unwrap();
    assert_eq!(log.last(), None);
    assert_eq!(log.next_index(), 5001);
    log.append(entries(5001, 3, 3)).await.unwrap();
    log.verify(..).unwrap();
    log.close().await.unwrap();
    let log = Log::open_with(dir, small_opts(), OpenMode::ReadWrite, vfs.clone()).unwrap();
    assert_eq!(log.first_index(), Some(5001));
    assert_eq!(log.purged(), Some(p));
    assert_eq!(log.read(..).unwrap().len(), 3);
    log.close().await.unwrap();
}

#[tokio::test]
async fn redaction_keeps_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_opts()).unwrap();
    log.append(entries(1, 5, 1)).await.unwrap();
    log.redact(3, 2..6).await.unwrap();
    let r = &log.read(3..=3).unwrap()[0];
    assert!(r.redacted);
    assert_eq!(&r.payload[..], b"pa\0\0\0\0d-3-1");
    let rep = log.verify(..).unwrap();
    assert_eq!(rep.redacted, 1);
    log.close().await.unwrap();
    let log = Log::open(dir.path(), small_opts()).unwrap();
    assert!(log.read(3..=3).unwrap()[0].redacted);
    assert_eq!(log.verify(..).unwrap().redacted, 1);
}

/// A redacted entry copied to another log (raft shipping it to a member) keeps the original's
/// payload hash, so both logs end with the same chain and both verify.
#[tokio::test]
async fn a_copy_of_a_redacted_entry_keeps_the_chain() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Log::open(a_dir.path(), small_opts()).unwrap();
    a.append(entries(1, 4, 1)).await.unwrap();
    a.redact(2, 1..4).await.unwrap();
    let b = Log::open(b_dir.path(), small_opts()).unwrap();
    let copies = a
        .read(..)
        .unwrap()
        .into_iter()
        .map(|r| {
            let mut e = Entry::new(r.index, r.term, r.payload.clone());
            e.redacted_from = r.redacted.then_some(r.payload_hash);
            e
        })
        .collect();
    b.append(copies).await.unwrap();
    assert_eq!(a.last(), b.last());
    let rec = &b.read(2..=2).unwrap()[0];
    assert!(rec.redacted);
    assert_eq!(rec.payload, a.read(2..=2).unwrap()[0].payload);
    assert_eq!(b.verify(..).unwrap().redacted, 1);
    b.close().await.unwrap();
    let b = Log::open(b_dir.path(), small_opts()).unwrap();
    assert_eq!(a.last(), b.last());
    assert_eq!(b.verify(..).unwrap().redacted, 1);
}

#[tokio::test]
async fn fsync_failure_poisons() {
    let vfs = SimVfs::new();
    let dir = Path::new("/log");
    let log = Log::open_with(dir, small_opts(), OpenMode::ReadWrite, vfs.clone()).unwrap();
    log.append(entries(1, 3, 1)).await.unwrap();
    vfs.inject(SimFault::FailSync { after: 0 });
    let e = log.append(entries(4, 1, 1)).await.unwrap_err();
    assert!(matches!(e, LogError::Io { .. }), "{e}");
    vfs.clear_faults();
    let e = log.append(entries(4, 1, 1)).await.unwrap_err();
    assert!(matches!(e, LogError::Poisoned(_)), "{e}");
    assert!(log.poisoned().is_some());
    drop(log);
    vfs.power_loss(1);
    let log = Log::open_with(dir, small_opts(), OpenMode::ReadWrite, vfs.clone()).unwrap();
    // the failed batch was never acknowledged: it may or may not have survived, whole
    let last = log.last().unwrap().index;
    assert!(last == 3 || last == 4, "{last}");
    log.verify(..).unwrap();
    log.append(entries(last + 1, 1, 1)).await.unwrap();
}

#[tokio::test]
async fn buffer_mode_and_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        durability: Durability::Buffer,
        ..small_opts()
    };
    let log = Log::open(dir.path(), opts).unwrap();
    log.append(entries(1, 3, 1)).await.unwrap();
    assert_eq!(log.stats().fsyncs, 0);
    let e = log.append(entries(7, 1, 1)).await.unwrap_err();
    assert!(matches!(
        e,
        LogError::OutOfOrder {
            got: 7,
            expected: 4
        }
    ));
    let first = log
        .append_next(1, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
        .await
        .unwrap();
    assert_eq!(first, 4);
    // a second open of the same directory is refused
    let e = Log::open(dir.path(), LogOptions::default()).unwrap_err();
    assert!(matches!(e, LogError::Unusable { .. }), "{e}");
    let _ = Arc::new(()) as Arc<dyn std::any::Any>;
    let _: Option<&dyn Vfs> = None;
}

/// A scan callback that reads the log again while a redaction waits for the redaction lock must
/// not deadlock (readers take the lock recursively).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_read_while_a_redaction_waits() {
    use std::sync::mpsc::channel;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_opts()).unwrap();
    log.append(entries(1, 3, 1)).await.unwrap();
    let (started_tx, started_rx) = channel();
    let (go_tx, go_rx) = channel::<()>();
    let (done_tx, done_rx) = channel();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            log.scan(1..=1, |_| {
                started_tx.send(()).unwrap();
                let _ = go_rx.recv_timeout(Duration::from_secs(20));
                assert_eq!(log.read(2..=2)?.len(), 1);
                Ok(true)
            })
            .unwrap();
            done_tx.send(()).unwrap();
        })
    };
    started_rx.recv().unwrap();
    let before = log.stats().bytes;
    let redact = tokio::spawn({
        let log = log.clone();
        async move { log.redact(3, 0..2).await }
    });
    // the redaction intent is durable; the writer now goes for the redaction lock
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.stats().bytes == before {
        assert!(Instant::now() < deadline, "redaction intent never written");
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    go_tx.send(()).unwrap();
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("nested read deadlocked behind a waiting redaction");
    reader.join().unwrap();
    redact.await.unwrap().unwrap();
    assert!(log.read(3..=3).unwrap()[0].redacted);
}
