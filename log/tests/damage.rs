//! What damage means: torn tails, power loss, flipped bytes, failed writes and fsyncs,
//! redaction (and its interruption), segment deletion, metadata, the queue bound, the directory
//! lock and read-only opens. On `SimVfs` and, where convenient, on the real file system.

use bytes::Bytes;
use hearth_log::format::{align_up, SegmentHeader, RECORD_HEADER_LEN};
use hearth_log::vfs::{SimFault, SimVfs, Vfs};
use hearth_log::{
    chain_next, payload_hash, Entry, Hash, Log, LogError, LogOptions, LogPosition, OpenMode,
    GENESIS_CHAIN,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const DIR: &str = "/log";
const BATCH_HEADER_LEN: u64 = 24;

fn opts(segment_size: u64) -> LogOptions {
    LogOptions {
        segment_size,
        prepare_in_background: false,
        ..LogOptions::default()
    }
}

fn sim_open(vfs: &Arc<SimVfs>, o: &LogOptions) -> Result<Log, LogError> {
    Log::open_with(Path::new(DIR), o.clone(), OpenMode::ReadWrite, vfs.clone())
}

/// Deterministic payload of entry `index`.
fn payload(index: u64, len: usize) -> Vec<u8> {
    let seed = format!("entry-{index}/");
    seed.bytes().cycle().take(len).collect()
}

/// `n` entries from `from`, each with a `len`-byte payload.
fn batch(from: u64, n: u64, term: u64, len: usize) -> Vec<Entry> {
    (from..from + n)
        .map(|i| Entry::new(i, term, payload(i, len)))
        .collect()
}

/// Size on disk of a batch of records with these payload lengths.
fn batch_len(payloads: &[usize]) -> u64 {
    align_up(
        BATCH_HEADER_LEN
            + payloads
                .iter()
                .map(|p| (RECORD_HEADER_LEN + p) as u64)
                .sum::<u64>(),
    )
}

/// Where batches start in a segment whose header carries no metadata.
fn data_start() -> u64 {
    align_up(
        SegmentHeader {
            seq: 1,
            ..SegmentHeader::default()
        }
        .encode()
        .len() as u64,
    )
}

/// Appends one-entry batches until exactly `free` bytes are left in the active segment.
async fn fill_to_free(log: &Log, segment_size: u64, free: u64, term: u64) {
    loop {
        let seg = log.segments().last().cloned().expect("a segment");
        let have = segment_size - seg.bytes;
        assert!(have >= free, "overshot: {have} < {free}");
        let need = have - free;
        if need == 0 {
            return;
        }
        let b = if (120..=1048).contains(&need) {
            need
        } else {
            assert!(
                need > 1048,
                "cannot leave exactly {free} bytes ({need} to fill)"
            );
            920.min(need - 120)
        };
        let next = log.next_index();
        log.append(vec![Entry::new(
            next,
            term,
            payload(next, (b - BATCH_HEADER_LEN) as usize - RECORD_HEADER_LEN),
        )])
        .await
        .expect("fill append");
        assert_eq!(
            log.segments().last().map(|s| s.seq),
            Some(seg.seq),
            "fill rotated"
        );
    }
}

/// The expected chain of entries `(index, term, payload)` following `prev`.
fn chain_of<'a>(prev: Hash, entries: impl IntoIterator<Item = (u64, u64, &'a [u8])>) -> Vec<Hash> {
    let mut prev = prev;
    entries
        .into_iter()
        .map(|(i, t, p)| {
            prev = chain_next(&prev, i, t, &payload_hash(p));
            prev
        })
        .collect()
}

/// Every file of the real directory `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("dir entry").path();
        out.insert(p.clone(), std::fs::read(&p).expect("read file"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Torn tails
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Tear {
    /// The last 40 bytes of the batch (payload and padding) never landed.
    PayloadTail,
    /// Only the magic of the batch header landed.
    Header,
}

#[tokio::test]
async fn torn_last_batch_is_dropped_sim() {
    for tear in [Tear::PayloadTail, Tear::Header] {
        let vfs = SimVfs::new();
        let o = opts(32 << 10);
        let log = sim_open(&vfs, &o).unwrap();
        let mut next = 1;
        for _ in 0..80 {
            log.append(batch(next, 3, 1, 100)).await.unwrap();
            next += 3;
        }
        assert!(log.segments().len() >= 2, "the tail is in a later segment");
        let seg = log.segments().last().cloned().unwrap();
        let off = seg.bytes - batch_len(&[100; 3]);
        let keep = log.read(..=next - 4).unwrap();
        log.close().await.unwrap();

        let f = vfs.open(&seg.path).unwrap();
        let from = match tear {
            Tear::PayloadTail => seg.bytes - 40,
            Tear::Header => off + 4,
        };
        f.write_all_at(&vec![0u8; (seg.bytes - from) as usize], from)
            .unwrap();
        f.sync_data().unwrap();
        drop(f);

        let log = sim_open(&vfs, &o).unwrap();
        assert_eq!(
            log.recovery_report().torn_tail,
            Some((seg.path.clone(), off)),
            "{tear:?}"
        );
        assert_eq!(log.last().unwrap().index, next - 4, "{tear:?}");
        assert!(log.read(..).unwrap() == keep, "{tear:?}");
        assert_eq!(log.verify(..).unwrap().entries, next - 4);
        let data = vfs.read_file(&seg.path).unwrap();
        assert!(
            data[off as usize..].iter().all(|&b| b == 0),
            "the torn batch is zeroed on disk"
        );
        // appending continues where the log now ends
        assert_eq!(log.next_index(), next - 3);
        log.append(batch(next - 3, 2, 2, 50)).await.unwrap();
        log.close().await.unwrap();

        let log = sim_open(&vfs, &o).unwrap();
        assert_eq!(log.recovery_report().torn_tail, None, "{tear:?}");
        assert_eq!(log.last().unwrap().index, next - 2);
        assert!(log.read(..=next - 4).unwrap() == keep);
        let tail = log.read(next - 3..).unwrap();
        assert_eq!(tail.len(), 2);
        assert_eq!(&tail[1].payload[..], &payload(next - 2, 50)[..]);
        assert_eq!(log.verify(..).unwrap().entries, next - 2);
        log.close().await.unwrap();
    }
}

#[tokio::test]
async fn torn_last_batch_is_dropped_real_fs() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(128 << 10);
    let log = Log::open(dir.path(), o.clone()).unwrap();
    for k in 0..20 {
        log.append(batch(1 + k * 4, 4, 1, 300)).await.unwrap();
    }
    let seg = log.segments().last().cloned().unwrap();
    let off = seg.bytes - batch_len(&[300; 4]);
    let head = log.read(76..=76).unwrap()[0].clone();
    log.close().await.unwrap();

    // the file ends in the middle of the last batch (a torn extending write)
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .unwrap();
    f.set_len(off + 200).unwrap();
    f.sync_all().unwrap();
    drop(f);

    let log = Log::open(dir.path(), o.clone()).unwrap();
    assert_eq!(
        log.recovery_report().torn_tail,
        Some((seg.path.clone(), off))
    );
    assert_eq!(log.last().map(|l| l.index), Some(76));
    assert_eq!(log.last().map(|l| l.chain), Some(head.chain));
    assert_eq!(log.verify(..).unwrap().entries, 76);
    let data = std::fs::read(&seg.path).unwrap();
    assert!(data[off as usize..].iter().all(|&b| b == 0));
    log.append(batch(77, 3, 2, 10)).await.unwrap();
    log.close().await.unwrap();

    let log = Log::open(dir.path(), o).unwrap();
    assert_eq!(log.recovery_report().torn_tail, None);
    assert_eq!(log.last().map(|l| l.index), Some(79));
    assert_eq!(log.verify(..).unwrap().entries, 79);
    log.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Power loss
// ---------------------------------------------------------------------------------------------

/// Sequential appends and metadata writes with power losses at random points between them:
/// every request was acknowledged, so recovery yields exactly what was acknowledged.
#[tokio::test]
async fn power_loss_between_requests_keeps_everything_acknowledged() {
    let o = opts(16 << 10);
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let vfs = SimVfs::new();
        let mut log = sim_open(&vfs, &o).unwrap();
        let first = rng.gen_range(0..1000u64);
        let mut acked: Vec<(u64, u64, Vec<u8>)> = Vec::new();
        let mut meta: Option<Vec<u8>> = None;
        let mut term = 1;
        let mut losses = 0;
        for _ in 0..120 {
            match rng.gen_range(0..10) {
                0 => {
                    let m = payload(rng.gen(), rng.gen_range(0..100));
                    log.write_meta(Bytes::from(m.clone())).await.unwrap();
                    meta = Some(m);
                }
                1 | 2 => {
                    drop(log);
                    vfs.power_loss(rng.gen());
                    losses += 1;
                    log = sim_open(&vfs, &o).unwrap();
                    assert_eq!(log.recovery_report().torn_tail, None, "seed {seed}");
                }
                _ => {
                    let n = rng.gen_range(1..4u64);
                    let next = acked.last().map_or(first, |e| e.0 + 1);
                    term += rng.gen_range(0..2);
                    let es: Vec<Entry> = (next..next + n)
                        .map(|i| Entry::new(i, term, payload(i, rng.gen_range(0..200))))
                        .collect();
                    log.append(es.clone()).await.unwrap();
                    acked.extend(
                        es.into_iter()
                            .map(|e| (e.index, e.term, e.payload.to_vec())),
                    );
                }
            }
            let recs = log.read(..).unwrap();
            assert_eq!(recs.len(), acked.len(), "seed {seed}");
            let chains = chain_of(
                GENESIS_CHAIN,
                acked.iter().map(|(i, t, p)| (*i, *t, &p[..])),
            );
            for ((r, (i, t, p)), c) in recs.iter().zip(&acked).zip(&chains) {
                assert_eq!(
                    (r.index, r.term, &r.payload[..]),
                    (*i, *t, &p[..]),
                    "seed {seed}"
                );
                assert_eq!(&r.chain, c, "seed {seed}: chain of {i}");
            }
            assert_eq!(log.meta().map(|m| m.to_vec()), meta, "seed {seed}");
            assert_eq!(log.verify(..).unwrap().entries, acked.len() as u64);
        }
        assert!(losses > 0);
        assert!(log.segments().len() > 1 || log.stats().rotations > 0 || losses > 5);
        drop(log);
    }
}

/// Power loss while eight tasks append concurrently and a ninth writes metadata and purges:
/// the loss strikes between two VFS calls of the writer (maybe between a batch write and its
/// fsync, in a rotation, or between a purge and its segment deletions). Every acknowledged
/// request must be recovered (unacknowledged ones may be too) as a contiguous, valid log.
///
/// `SimVfs` cannot stop the process with the power, so the "dying" process is stopped from
/// doing IO first (every write and fsync fails from then on), and whatever it still changed in
/// the namespace after the loss is dropped by a second, durable-only power loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_concurrent_appends() {
    let o = LogOptions {
        prepare_in_background: true,
        ..opts(16 << 10)
    };
    let seeds = std::env::var("HEARTH_DAMAGE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60u64);
    for seed in 0..seeds {
        let vfs = SimVfs::new();
        let log = sim_open(&vfs, &o).unwrap();
        let acked = Arc::new(parking_lot::Mutex::new(BTreeMap::<u64, Vec<u8>>::new()));
        let crashed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // (metadata records written so far, last acknowledged one, last acknowledged purge)
        let ctl_acked = Arc::new(parking_lot::Mutex::new((0u64, None::<u64>, None::<u64>)));
        let mut tasks = Vec::new();
        {
            let (log, acked, crashed, ctl) = (
                log.clone(),
                acked.clone(),
                crashed.clone(),
                ctl_acked.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    ctl.lock().0 = n + 1;
                    let r = log.write_meta(Bytes::from(format!("meta-{n}"))).await;
                    if r.is_err() || crashed.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    ctl.lock().1 = Some(n);
                    // purge all but the last ~100 acknowledged entries now and then
                    let upto = acked.lock().keys().next_back().copied();
                    if let Some(upto) = upto.filter(|u| n % 3 == 0 && *u > 100) {
                        let r = log.purge_through(upto - 100).await;
                        if r.is_err() || crashed.load(std::sync::atomic::Ordering::SeqCst) {
                            return;
                        }
                        ctl.lock().2 = Some(upto - 100);
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            }));
        }
        for t in 0..8u64 {
            let (log, acked, crashed) = (log.clone(), acked.clone(), crashed.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let p = payload(t * 1_000_000 + n, (n as usize * 37 + t as usize) % 150);
                    match log.append_next(1, vec![Bytes::from(p.clone())]).await {
                        // acknowledged before the power went
                        Ok(i) if !crashed.load(std::sync::atomic::Ordering::SeqCst) => {
                            acked.lock().insert(i, p);
                        }
                        _ => return,
                    }
                }
            }));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let target = rng.gen_range(1..400);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while acked.lock().len() < target && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        assert!(
            log.poisoned().is_none(),
            "seed {seed}: {:?}",
            log.poisoned()
        );
        assert!(acked.lock().len() >= target, "seed {seed}: appends stalled");
        crashed.store(true, std::sync::atomic::Ordering::SeqCst);
        vfs.inject(SimFault::FailWrites { after: 0 });
        vfs.inject(SimFault::FailSync { after: 0 });
        vfs.inject(SimFault::FailSyncDir { after: 0 });
        vfs.power_loss(rng.gen());
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("appenders stop after the power loss")
                .unwrap();
        }
        drop(log);
        vfs.power_loss_durable_only();
        vfs.clear_faults();

        let log = match sim_open(&vfs, &o) {
            Ok(l) => l,
            Err(e) => panic!("seed {seed}: reopen after power loss failed: {e}"),
        };
        let acked = acked.lock().clone();
        let (metas_sent, meta_acked, purge_acked) = *ctl_acked.lock();
        let recs = log.read(..).unwrap();
        let max_acked = acked.keys().next_back().copied();
        assert!(
            log.last().map(|l| l.index) >= max_acked,
            "seed {seed}: last {:?} < acknowledged {max_acked:?}",
            log.last()
        );
        let purged = log.purged().map(|p| p.index);
        assert!(
            purged >= purge_acked,
            "seed {seed}: purged {purged:?} < {purge_acked:?}"
        );
        let first = purged.map_or(0, |p| p + 1);
        for (k, r) in recs.iter().enumerate() {
            assert_eq!(r.index, first + k as u64, "seed {seed}: contiguous");
            if let Some(p) = acked.get(&r.index) {
                assert_eq!(
                    &r.payload[..],
                    &p[..],
                    "seed {seed}: payload of {}",
                    r.index
                );
            }
        }
        // the metadata is the last acknowledged record or a later one
        let meta = log.meta().map(|m| String::from_utf8(m.to_vec()).unwrap());
        let meta_n = meta
            .as_deref()
            .map(|m| m["meta-".len()..].parse::<u64>().unwrap());
        assert!(
            meta_n >= meta_acked,
            "seed {seed}: meta {meta:?} < acknowledged {meta_acked:?}"
        );
        assert!(
            meta_n.is_none_or(|m| m < metas_sent),
            "seed {seed}: {meta:?}"
        );
        log.verify(..).unwrap();
        let next = log.next_index();
        log.append_next(2, vec![Bytes::from_static(b"after")])
            .await
            .unwrap();
        assert_eq!(log.last().unwrap().index, next);
        drop(log);
    }
}

/// Regression (found by this suite): with `prepare_in_background`, `Preparer::take` used to
/// mark the prepared file taken and wake the preparer thread *before* the writer renamed
/// `next.seg.prep` into place; the thread could rename its next file over it first, and a later
/// rotation then failed ("no such file: next.seg.prep") and poisoned the log. Thousands of
/// rotations of tiny segments must all succeed.
#[tokio::test]
async fn background_preparer_races_the_rotation() {
    let o = LogOptions {
        prepare_in_background: true,
        ..opts(16 << 10)
    };
    let vfs = SimVfs::new();
    let log = sim_open(&vfs, &o).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut next = 1;
    while log.stats().rotations < 2000 && std::time::Instant::now() < deadline {
        if let Err(e) = log.append(batch(next, 1, 1, 900)).await {
            panic!(
                "append {next} failed after {} rotations: {e}",
                log.stats().rotations
            );
        }
        next += 1;
    }
    log.close().await.unwrap();
}

/// A crash while a rotation is in flight: the new segment's header (and first batch) may be
/// torn or missing. Nothing in the new segment was acknowledged, so the log must open as if the
/// rotation never happened (or with the batch, if it all landed).
#[tokio::test]
async fn crash_during_rotation() {
    let o = opts(16 << 10);
    let mut outcomes = BTreeMap::<String, u32>::new();
    // the fsync that fails: 1 = the one after the prepared file's (header or batch), 2 = the next
    for after in [1u32, 2] {
        for seed in 0..100u64 {
            let vfs = SimVfs::new();
            let log = sim_open(&vfs, &o).unwrap();
            // a long metadata record, so the new segment's header is long and can tear inside
            log.write_meta(Bytes::from(vec![7u8; 900])).await.unwrap();
            log.append(batch(1, 2, 1, 10)).await.unwrap();
            fill_to_free(&log, 16 << 10, 0, 1).await;
            let last = log.last().unwrap();
            // the next batch opens a new segment; the preparation's fsync succeeds
            vfs.inject(SimFault::FailSync { after });
            let e = log
                .append(batch(last.index + 1, 1, 1, 10))
                .await
                .unwrap_err();
            assert!(matches!(e, LogError::Io { .. }), "{e}");
            vfs.clear_faults();
            drop(log);
            vfs.power_loss(seed);
            let log = match sim_open(&vfs, &o) {
                Ok(l) => l,
                Err(e) => panic!("fsync {after}, seed {seed}: no open after a torn rotation: {e}"),
            };
            let got = log.last().unwrap();
            assert!(
                got == last || got.index == last.index + 1,
                "fsync {after}, seed {seed}: {got:?}"
            );
            log.verify(..).unwrap();
            assert_eq!(log.meta().map(|m| m.len()), Some(900));
            let what = if got == last { "without" } else { "with" };
            *outcomes.entry(what.to_string()).or_default() += 1;
            log.append(batch(got.index + 1, 1, 2, 10)).await.unwrap();
            log.close().await.unwrap();
            let log = sim_open(&vfs, &o).unwrap();
            assert_eq!(log.last().unwrap().index, got.index + 1);
            drop(log);
        }
    }
    assert!(outcomes.len() == 2, "{outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// Flipped bytes
// ---------------------------------------------------------------------------------------------

const FLIP_SEGMENT: u64 = 128 << 10;
const FLIP_PAYLOAD: usize = 1000;

/// A real-fs log of 200 one-entry batches (1..=200) of `FLIP_PAYLOAD` bytes in two segments,
/// built once; each check damages its own copy.
struct FlipLog {
    dir: tempfile::TempDir,
    segs: Vec<hearth_log::SegmentInfo>,
}

impl FlipLog {
    async fn new() -> FlipLog {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), opts(FLIP_SEGMENT)).unwrap();
        for i in 1..=200 {
            log.append(batch(i, 1, 1, FLIP_PAYLOAD)).await.unwrap();
        }
        let segs = log.segments();
        assert_eq!(segs.len(), 2, "{segs:?}");
        log.close().await.unwrap();
        FlipLog { dir, segs }
    }

    /// A copy of the log, and the paths of its segments.
    fn copy(&self) -> (tempfile::TempDir, Vec<PathBuf>) {
        let to = tempfile::tempdir().unwrap();
        for (p, b) in snapshot(self.dir.path()) {
            std::fs::write(to.path().join(p.file_name().unwrap()), b).unwrap();
        }
        let segs = self
            .segs
            .iter()
            .map(|s| to.path().join(s.path.file_name().unwrap()))
            .collect();
        (to, segs)
    }

    /// Flips the byte at `flip` of segment `seg` (0 or 1) of a copy and checks that opening it
    /// (read-write and read-only) fails with `Corrupt` naming the segment and an offset in
    /// `expect`, without changing any segment.
    fn expect_corrupt(&self, what: &str, seg: usize, flip: u64, expect: &[u64]) {
        let (dir, segs) = self.copy();
        let path = &segs[seg];
        flip_file(path, flip);
        let before = snapshot(dir.path());
        let check = |e: LogError, mode: &str| match &e {
            LogError::Corrupt { file, offset, .. } => {
                assert_eq!(file, path, "{what} ({mode}): {e}");
                assert!(
                    *offset <= flip && flip - offset < 1024,
                    "{what} ({mode}): offset {offset} for a flip at {flip}"
                );
                assert!(expect.contains(offset), "{what} ({mode}): {e}");
                let msg = e.to_string();
                let name = path.file_name().unwrap().to_str().unwrap();
                assert!(msg.contains(name) && msg.contains("offset"), "{msg}");
            }
            e => panic!("{what} ({mode}): expected Corrupt, got {e}"),
        };
        check(
            Log::open(dir.path(), opts(FLIP_SEGMENT)).unwrap_err(),
            "read-write",
        );
        check(Log::open_read_only(dir.path()).unwrap_err(), "read-only");
        let after = snapshot(dir.path());
        for (p, b) in &before {
            if p.extension().is_some_and(|e| e == "seg") {
                assert_eq!(after.get(p), Some(b), "{what}: a failed open changed {p:?}");
            }
        }
    }
}

/// Offset of the `k`-th batch (from 0) of a segment of a `FlipLog`.
fn flip_batch(k: u64) -> u64 {
    data_start() + k * batch_len(&[FLIP_PAYLOAD])
}

fn flip_file(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5A;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test]
async fn flipped_payload_byte_in_the_middle_is_corrupt() {
    let log = FlipLog::new().await;
    // the flip lands in the payload of batch k of the segment
    let flip = 4096 + 300;
    let k = (flip - data_start()) / batch_len(&[FLIP_PAYLOAD]);
    let (b, r) = (flip_batch(k), flip_batch(k) + BATCH_HEADER_LEN);
    assert!(
        flip >= r + RECORD_HEADER_LEN as u64,
        "the flip is in the payload"
    );
    log.expect_corrupt("payload flip in the older segment", 0, flip, &[b, r]);
    // the same in the newest segment, with many batches after it
    log.expect_corrupt("payload flip in the newest segment", 1, flip, &[b, r]);
    // a flip in a record header (its index field) fails the batch checksum
    let b = flip_batch(5);
    let flip = b + BATCH_HEADER_LEN + 17;
    log.expect_corrupt("record header flip", 0, flip, &[b, b + BATCH_HEADER_LEN]);
    log.expect_corrupt("record header flip", 1, flip, &[b, b + BATCH_HEADER_LEN]);
}

#[tokio::test]
async fn flipped_segment_header_is_corrupt() {
    let log = FlipLog::new().await;
    // byte 40 is in the anchor field, covered by the header checksum
    log.expect_corrupt("segment header flip in the older segment", 0, 40, &[0]);
    // the newest segment's header may be torn only if no batch follows it
    log.expect_corrupt("segment header flip in the newest segment", 1, 40, &[0]);
    log.expect_corrupt("segment magic flip in the newest segment", 1, 2, &[0]);
}

#[tokio::test]
async fn flipped_batch_header_in_the_middle_is_corrupt() {
    let log = FlipLog::new().await;
    let b = flip_batch(40);
    log.expect_corrupt("header flip in the older segment", 0, b + 9, &[b]);
    log.expect_corrupt("header flip in the newest segment", 1, b + 9, &[b]);
    log.expect_corrupt("magic flip in the newest segment", 1, b + 1, &[b]);
}

/// Only the newest segment may have a torn tail.
#[tokio::test]
async fn flipped_byte_in_the_last_batch_of_an_older_segment_is_corrupt() {
    let log = FlipLog::new().await;
    let last = log.segs[0].bytes - batch_len(&[FLIP_PAYLOAD]);
    let flip = last + BATCH_HEADER_LEN + RECORD_HEADER_LEN as u64 + 500;
    log.expect_corrupt(
        "payload flip in an older segment's last batch",
        0,
        flip,
        &[last, last + BATCH_HEADER_LEN],
    );
    log.expect_corrupt(
        "header flip in an older segment's last batch",
        0,
        last + 10,
        &[last],
    );
}

/// Damage in the newest segment's last batch is dropped like a torn write (the log cannot tell
/// bit rot there from a torn write).
#[tokio::test]
async fn flipped_byte_in_the_very_last_batch_is_a_torn_tail() {
    let log = FlipLog::new().await;
    let (dir, segs) = log.copy();
    let last = log.segs[1].bytes - batch_len(&[FLIP_PAYLOAD]);
    flip_file(&segs[1], last + 300);
    let ro = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(
        ro.recovery_report().torn_tail,
        Some((segs[1].clone(), last))
    );
    assert_eq!(ro.last().unwrap().index, 199);
    drop(ro);
    let rw = Log::open(dir.path(), opts(FLIP_SEGMENT)).unwrap();
    assert_eq!(rw.last().unwrap().index, 199);
    assert_eq!(rw.verify(..).unwrap().entries, 199);
    rw.close().await.unwrap();
}

/// A flipped byte on `SimVfs` in an older segment, found at open.
#[tokio::test]
async fn flipped_byte_sim() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    for k in 0..60 {
        log.append(batch(1 + k * 3, 3, 1, 200)).await.unwrap();
    }
    let seg = log.segments()[1].clone();
    log.close().await.unwrap();
    let b = data_start(); // the first batch of the second segment
    let flip = b + BATCH_HEADER_LEN + RECORD_HEADER_LEN as u64 + 50;
    vfs.flip_byte(&seg.path, flip).unwrap();
    match sim_open(&vfs, &o).unwrap_err() {
        LogError::Corrupt { file, offset, .. } => {
            assert_eq!(file, seg.path);
            assert_eq!(offset, b + BATCH_HEADER_LEN);
        }
        e => panic!("expected Corrupt, got {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Failed writes and fsyncs
// ---------------------------------------------------------------------------------------------

/// Every kind of write request fails with `Poisoned` on a poisoned log.
async fn assert_poisoned(log: &Log) {
    let last = log.last();
    let next = log.next_index();
    let p = |r: Result<(), LogError>, what: &str| match r {
        Err(LogError::Poisoned(_)) => {}
        r => panic!("{what} on a poisoned log: {r:?}"),
    };
    p(log.append(batch(next, 1, 1, 5)).await, "append");
    p(
        log.append_next(1, vec![Bytes::from_static(b"x")])
            .await
            .map(drop),
        "append_next",
    );
    p(log.write_meta(Bytes::from_static(b"m")).await, "write_meta");
    p(
        log.truncate_after(next.saturating_sub(2)).await,
        "truncate_after",
    );
    p(
        log.purge_through(next.saturating_sub(2)).await,
        "purge_through",
    );
    p(
        log.purge_to(LogPosition {
            index: next + 10,
            term: 1,
            chain: [1; 32],
        })
        .await,
        "purge_to",
    );
    p(log.redact(next.saturating_sub(1), 0..1).await, "redact");
    assert!(log.poisoned().is_some());
    assert_eq!(log.last(), last, "nothing changed");
}

async fn injected_failure_poisons(fault: SimFault) {
    let vfs = SimVfs::new();
    let o = opts(128 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 3, 1, 20)).await.unwrap();
    log.write_meta(Bytes::from_static(b"m1")).await.unwrap();
    let before = log.read(..).unwrap();
    vfs.inject(fault);
    let e = log.append(batch(4, 2, 1, 20)).await.unwrap_err();
    assert!(matches!(e, LogError::Io { .. }), "{fault:?}: {e}");
    assert!(e.is_fatal());
    assert!(log.poisoned().is_some());
    vfs.clear_faults(); // the log stays poisoned even though the disk is fine again
    assert_poisoned(&log).await;
    // reads still work and show the acknowledged state
    assert_eq!(log.read(..).unwrap(), before);
    assert_eq!(log.verify(..).unwrap().entries, 3);
    assert_eq!(log.meta().as_deref(), Some(&b"m1"[..]));
    match log.clone().close().await {
        Ok(()) | Err(LogError::Poisoned(_)) => {}
        Err(e) => panic!("close of a poisoned log: {e}"),
    }
    drop(log);

    for (what, crash) in [("power loss", true), ("plain reopen", false)] {
        if crash {
            vfs.power_loss(11);
        }
        let log = sim_open(&vfs, &o).unwrap();
        assert!(log.poisoned().is_none());
        let last = log.last().unwrap().index;
        assert!(last == 3 || last == 5, "{fault:?}, {what}: last {last}");
        assert_eq!(log.read(..=3).unwrap(), before, "{fault:?}, {what}");
        assert_eq!(log.meta().as_deref(), Some(&b"m1"[..]));
        log.verify(..).unwrap();
        log.append(batch(last + 1, 1, 2, 20)).await.unwrap();
        log.truncate_after(last).await.unwrap();
        log.close().await.unwrap();
    }
}

#[tokio::test]
async fn injected_fsync_failure_poisons() {
    injected_failure_poisons(SimFault::FailSync { after: 0 }).await;
}

#[tokio::test]
async fn injected_write_failure_poisons() {
    injected_failure_poisons(SimFault::FailWrites { after: 0 }).await;
}

/// A failed directory fsync while rotating poisons too, and the unsynced rename is lost.
#[tokio::test]
async fn injected_dir_sync_failure_at_rotation_poisons() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 2, 1, 10)).await.unwrap();
    fill_to_free(&log, 16 << 10, 0, 1).await;
    let last = log.last().unwrap();
    vfs.inject(SimFault::FailSyncDir { after: 0 });
    let e = log
        .append(batch(last.index + 1, 1, 1, 10))
        .await
        .unwrap_err();
    assert!(matches!(e, LogError::Io { .. }), "{e}");
    assert_poisoned(&log).await;
    vfs.clear_faults();
    drop(log);
    vfs.power_loss(3);
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.last(), Some(last));
    assert_eq!(log.segments().len(), 1);
    log.append(batch(last.index + 1, 1, 1, 10)).await.unwrap();
    assert_eq!(log.segments().len(), 2);
    log.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redaction_zeroes_the_range_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(128 << 10);
    let log = Log::open(dir.path(), o.clone()).unwrap();
    log.append(batch(1, 5, 1, 64)).await.unwrap();
    let before = log.read(..).unwrap();
    log.redact(3, 10..20).await.unwrap();
    let check = |log: &Log| {
        let recs = log.read(..).unwrap();
        for (r, b) in recs.iter().zip(&before) {
            assert_eq!(
                (r.index, r.term, r.payload_hash, r.chain),
                (b.index, b.term, b.payload_hash, b.chain)
            );
            if r.index == 3 {
                assert!(r.redacted);
                let mut want = payload(3, 64);
                want[10..20].fill(0);
                assert_eq!(&r.payload[..], &want[..]);
            } else {
                assert!(!r.redacted);
                assert_eq!(r.payload, b.payload);
            }
        }
        let rep = log.verify(..).unwrap();
        assert_eq!((rep.entries, rep.redacted), (5, 1));
    };
    check(&log);
    // redacting more of the same record
    log.redact(3, 0..5).await.unwrap();
    let r = log.read(3..=3).unwrap().remove(0);
    assert!(r.payload[..5].iter().all(|&b| b == 0));
    assert_eq!(r.payload[5..10], payload(3, 64)[5..10]);
    log.redact(3, 5..10).await.unwrap();
    log.close().await.unwrap();
    let log = Log::open(dir.path(), o.clone()).unwrap();
    assert_eq!(log.recovery_report().redactions_repaired, 0);
    let r = log.read(3..=3).unwrap().remove(0);
    assert!(r.redacted && r.payload[..20].iter().all(|&b| b == 0));
    assert_eq!(r.payload[20..], payload(3, 64)[20..]);
    assert_eq!(log.verify(..).unwrap().redacted, 1);
    log.close().await.unwrap();
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(log.verify(..).unwrap().redacted, 1);
    drop(log);
}

#[tokio::test]
async fn redaction_rejects_bad_ranges() {
    let vfs = SimVfs::new();
    let log = sim_open(&vfs, &opts(128 << 10)).unwrap();
    log.append(batch(1, 5, 1, 64)).await.unwrap();
    log.append(batch(6, 1, 1, 0)).await.unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    let bad = [(3, 60..70), (3, 5..5), (3, 10..5), (3, 0..65), (6, 0..1)];
    for (i, r) in bad {
        match log.redact(i, r.clone()).await {
            Err(LogError::Invalid(msg)) => assert!(msg.contains("range"), "{msg}"),
            other => panic!("redact({i}, {r:?}): {other:?}"),
        }
    }
    match log.redact(7, 0..1).await {
        Err(LogError::NotFound { index: 7, .. }) => {}
        other => panic!("redact past the end: {other:?}"),
    }
    assert!(log.poisoned().is_none());
    assert_eq!(log.verify(..).unwrap().redacted, 0);
    log.append(batch(7, 1, 1, 5)).await.unwrap();
}

/// Regression (found by this suite): `redact` of an index that is not live (purged, truncated
/// away, or on an empty log) must fail with `NotFound`. It used to find the stale record still
/// on disk and redact it, reject the range against it, or fail with `Corrupt`.
#[tokio::test]
async fn redact_not_live_index_fails() {
    let vfs = SimVfs::new();
    let log = sim_open(&vfs, &opts(128 << 10)).unwrap();
    log.append(batch(1, 10, 1, 64)).await.unwrap();
    log.purge_through(3).await.unwrap();
    log.truncate_after(6).await.unwrap();
    let mut bad = Vec::new();
    for i in [1, 2, 3, 7, 8, 10, 11] {
        let r = log.redact(i, 0..4).await;
        if !matches!(r, Err(LogError::NotFound { .. })) {
            bad.push(format!("redact({i}) = {r:?}"));
        }
    }
    // nothing live: the log's only point is stale
    log.truncate_after(3).await.unwrap();
    let r = log.redact(5, 0..4).await;
    if !matches!(r, Err(LogError::NotFound { .. })) {
        bad.push(format!("redact(5) on an empty log = {r:?}"));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// A redaction interrupted after its intent batch is durable but before the in-place rewrite
/// is: after power loss the record is either untouched (nothing of the rewrite landed) or fully
/// redacted (recovery completes a partly landed rewrite from the intent) — never damaged.
#[tokio::test]
async fn interrupted_redaction_is_completed_or_absent() {
    let o = opts(128 << 10);
    let original = payload(3, 200);
    let mut redacted = original.clone();
    redacted[20..120].fill(0);
    let mut seen = BTreeMap::<&str, u32>::new();
    for fault in [
        // intent fsynced, rewrite written but its fsync fails: a prefix of it may land
        SimFault::FailSync { after: 1 },
        // intent fsynced, rewrite fails: nothing of it lands
        SimFault::FailWrites { after: 1 },
    ] {
        for seed in 0..60u64 {
            let vfs = SimVfs::new();
            let log = sim_open(&vfs, &o).unwrap();
            log.append(batch(1, 5, 1, 200)).await.unwrap();
            let chains: Vec<Hash> = log.read(..).unwrap().iter().map(|r| r.chain).collect();
            vfs.inject(fault);
            let e = log.redact(3, 20..120).await.unwrap_err();
            assert!(matches!(e, LogError::Io { .. }), "{e}");
            assert!(log.poisoned().is_some());
            vfs.clear_faults();
            drop(log);
            vfs.power_loss(seed);
            let log = sim_open(&vfs, &o).unwrap();
            let rep = log.recovery_report().clone();
            let r = log.read(3..=3).unwrap().remove(0);
            let outcome = if r.redacted {
                assert_eq!(&r.payload[..], &redacted[..], "{fault:?} seed {seed}");
                if rep.redactions_repaired == 1 {
                    "completed at open"
                } else {
                    "landed whole"
                }
            } else {
                assert_eq!(&r.payload[..], &original[..], "{fault:?} seed {seed}");
                assert_eq!(rep.redactions_repaired, 0);
                "absent"
            };
            if matches!(fault, SimFault::FailWrites { .. }) {
                assert_eq!(outcome, "absent", "seed {seed}");
            }
            *seen.entry(outcome).or_default() += 1;
            let recs = log.read(..).unwrap();
            assert_eq!(recs.iter().map(|r| r.chain).collect::<Vec<_>>(), chains);
            let v = log.verify(..).unwrap();
            assert_eq!(v.redacted, u64::from(r.redacted));
            // and the log goes on
            log.append(batch(6, 1, 1, 5)).await.unwrap();
            log.close().await.unwrap();
            let log = sim_open(&vfs, &o).unwrap();
            assert_eq!(log.recovery_report().redactions_repaired, 0);
            assert_eq!(log.read(3..=3).unwrap()[0].redacted, r.redacted);
            drop(log);
        }
    }
    assert_eq!(seen.len(), 3, "every outcome happens: {seen:?}");
}

// ---------------------------------------------------------------------------------------------
// Segments, purges and metadata
// ---------------------------------------------------------------------------------------------

fn seg_files(vfs: &SimVfs) -> Vec<PathBuf> {
    vfs.list_all()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect()
}

#[tokio::test]
async fn purge_deletes_old_segments_never_the_newest() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    for k in 0..60 {
        log.append(batch(1 + k * 5, 5, 1, 100)).await.unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 3, "{}", segs.len());
    assert_eq!(
        seg_files(&vfs),
        segs.iter().map(|s| s.path.clone()).collect::<Vec<_>>()
    );
    log.purge_through(150).await.unwrap();
    let kept = log.segments();
    for s in &segs {
        let gone = !kept.iter().any(|k| k.seq == s.seq);
        assert_eq!(
            gone,
            s.max_index.is_some_and(|m| m <= 150),
            "segment {} (max {:?})",
            s.seq,
            s.max_index
        );
        assert_eq!(vfs.exists(&s.path), !gone, "{:?}", s.path);
    }
    assert!(kept.len() < segs.len());
    assert_eq!(log.first_index(), Some(151));
    // the deletion is durable
    drop(log);
    vfs.power_loss_durable_only();
    assert_eq!(
        seg_files(&vfs),
        kept.iter().map(|s| s.path.clone()).collect::<Vec<_>>()
    );
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.first_index(), Some(151));
    assert_eq!(log.verify(..).unwrap().entries, 150);

    // purging everything keeps (only) the newest segment
    log.purge_through(300).await.unwrap();
    let newest = log.segments();
    assert_eq!(newest.len(), 1);
    assert_eq!(seg_files(&vfs), vec![newest[0].path.clone()]);
    assert_eq!(log.first_index(), None);
    assert_eq!(log.next_index(), 301);
    log.close().await.unwrap();
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.first_index(), None);
    assert_eq!(log.purged().map(|p| p.index), Some(300));
    log.append(batch(301, 2, 2, 10)).await.unwrap();
    assert_eq!(log.verify(..).unwrap().entries, 2);
    log.close().await.unwrap();
}

/// Regression (found by this suite): a purge record that comes before any entry of its segment
/// (here the purge batch did not fit in the active segment and opened a new one) must recover
/// once the older segments are deleted. Recovery used to take the header's anchor as the base
/// and then move it back to the purge point, so the next entry was "out of order" and the log
/// refused to open.
#[tokio::test]
async fn purge_opening_a_segment_then_reopen() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 5, 1, 100)).await.unwrap();
    // leave less room than a purge batch (24 + 96 bytes) in the first segment
    fill_to_free(&log, 16 << 10, 112, 1).await;
    let last = log.last().unwrap().index;
    log.purge_through(last - 2).await.unwrap();
    assert_eq!(log.segments().len(), 2, "the purge opened segment 2");
    log.append(batch(last + 1, 3, 1, 10)).await.unwrap();
    // delete segment 1
    log.purge_through(last + 1).await.unwrap();
    assert_eq!(log.segments().len(), 1);
    let want = log.read(..).unwrap();
    log.close().await.unwrap();
    let log = match sim_open(&vfs, &o) {
        Ok(l) => l,
        Err(e) => panic!("reopen failed: {e}"),
    };
    assert_eq!(log.read(..).unwrap(), want);
    assert_eq!(log.first_index(), Some(last + 2));
}

/// Regression (found by this suite): recovery reads back a batch whose fsync failed (it is
/// still in the page cache) and makes it part of the log, so it must make it durable before
/// anything is appended after it. It used not to: when the next batch opened a new segment, a
/// power loss took the recovered batch away, the new segment no longer continued the old one,
/// and an acknowledged append was lost with a log that refused to open.
#[tokio::test]
async fn reopen_after_failed_fsync_makes_recovered_tail_durable() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 3, 1, 10)).await.unwrap();
    // leave room for exactly one more 100-byte entry batch
    fill_to_free(&log, 16 << 10, batch_len(&[100]), 1).await;
    let last = log.last().unwrap().index;
    vfs.inject(SimFault::FailSync { after: 0 });
    log.append(batch(last + 1, 1, 1, 100)).await.unwrap_err();
    vfs.clear_faults();
    drop(log);
    // the process restarts; the unsynced batch is still readable, so recovery keeps it
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.last().unwrap().index, last + 1);
    // this one opens segment 2 and is acknowledged
    log.append(batch(last + 2, 1, 1, 100)).await.unwrap();
    assert_eq!(log.segments().len(), 2);
    drop(log);
    vfs.power_loss_durable_only();
    let log = match sim_open(&vfs, &o) {
        Ok(l) => l,
        Err(e) => panic!("the log does not open after power loss: {e}"),
    };
    assert!(
        log.last().unwrap().index >= last + 2,
        "acknowledged append lost"
    );
}

#[tokio::test]
async fn metadata_is_recovered_in_order_with_appends() {
    let vfs = SimVfs::new();
    // big enough for a batch holding the largest metadata record
    let o = opts(256 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.meta(), None);
    log.write_meta(Bytes::from_static(b"A")).await.unwrap();
    log.append(batch(1, 2, 1, 10)).await.unwrap();
    log.write_meta(Bytes::from_static(b"B")).await.unwrap();
    log.append(batch(3, 1, 1, 10)).await.unwrap();
    assert_eq!(log.meta().as_deref(), Some(&b"B"[..]));
    log.close().await.unwrap();
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.meta().as_deref(), Some(&b"B"[..]));
    // an empty metadata record is a record too
    log.write_meta(Bytes::new()).await.unwrap();
    drop(log);
    vfs.power_loss(5);
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.meta().as_deref(), Some(&b""[..]));
    // the largest metadata record is accepted, a larger one is not
    let max = hearth_log::format::MAX_META_LEN;
    log.write_meta(Bytes::from(vec![9u8; max])).await.unwrap();
    match log.write_meta(Bytes::from(vec![9u8; max + 1])).await {
        Err(LogError::TooLarge { .. }) => {}
        r => panic!("{r:?}"),
    }
    log.close().await.unwrap();
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.meta().map(|m| m.len()), Some(max));
    log.close().await.unwrap();
}

#[tokio::test]
async fn metadata_survives_rotation_and_purge() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 2, 1, 10)).await.unwrap();
    log.write_meta(Bytes::from_static(b"the vote"))
        .await
        .unwrap();
    let first_seg = log.segments()[0].path.clone();
    for k in 0..50 {
        log.append(batch(3 + k * 4, 4, 1, 150)).await.unwrap();
    }
    let last = log.last().unwrap().index;
    assert!(log.segments().len() >= 3);
    log.purge_through(last - 3).await.unwrap();
    assert!(
        !vfs.exists(&first_seg),
        "the segment holding the meta record is gone"
    );
    assert_eq!(log.meta().as_deref(), Some(&b"the vote"[..]));
    log.close().await.unwrap();
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.meta().as_deref(), Some(&b"the vote"[..]));
    assert_eq!(log.first_index(), Some(last - 2));
    drop(log);
    vfs.power_loss(9);
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.meta().as_deref(), Some(&b"the vote"[..]));
    assert_eq!(log.verify(..).unwrap().entries, 3);
    log.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Queue bound, lock, read-only
// ---------------------------------------------------------------------------------------------

/// With a tiny queue, 100 concurrent appenders all wait their turn and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_bound_makes_callers_wait() {
    let vfs = SimVfs::new();
    let o = LogOptions {
        queue_requests: 2,
        queue_bytes: 4096,
        // segments this small cap a batch at 1 KiB, so the 4 KiB byte bound is the real one
        ..opts(16 << 10)
    };
    let log = sim_open(&vfs, &o).unwrap();
    let mut tasks = Vec::new();
    for t in 0..100u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let p = payload(t, 100 + (t as usize * 97) % 800);
            let i = log.append_next(1, vec![Bytes::from(p.clone())]).await?;
            Ok::<_, LogError>((i, p))
        }));
    }
    let mut got = BTreeMap::new();
    for t in tasks {
        let (i, p) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("appenders finish")
            .unwrap()
            .unwrap();
        assert!(got.insert(i, p).is_none(), "index {i} given twice");
    }
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    let recs = log.read(..).unwrap();
    assert_eq!(recs.len(), 100);
    for r in &recs {
        assert_eq!(&r.payload[..], &got[&r.index][..]);
    }
    assert_eq!(log.verify(..).unwrap().entries, 100);
    log.close().await.unwrap();
}

/// Polls `cond` (no fixed sleeps: the test waits for the event itself), failing after 20 s.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Regression (found by this suite): `LogOptions::enqueue_timeout` bounds how long a caller
/// waits for queue space (it used to be ignored). The writer is stalled by a reader holding the
/// redaction lock while a redaction waits to rewrite a record in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_timeout_is_honoured() {
    let vfs = SimVfs::new();
    let o = LogOptions {
        queue_requests: 1,
        enqueue_timeout: Some(Duration::from_millis(50)),
        ..opts(128 << 10)
    };
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 3, 1, 20)).await.unwrap();
    // stall the writer: a reader inside `scan` holds the redaction lock, so the writer blocks
    // in the in-place rewrite of a redaction
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            log.scan(1..=1, |_| {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(Duration::from_secs(20));
                Ok(true)
            })
            .unwrap();
        })
    };
    started_rx.recv().unwrap();
    let bytes_before = log.stats().bytes;
    let redact = tokio::spawn({
        let log = log.clone();
        async move { log.redact(2, 0..4).await }
    });
    // the writer has written the redaction intent and now waits for the redaction lock
    wait_until("the redaction intent is written", || {
        log.stats().bytes > bytes_before
    })
    .await;
    // fills the one-request queue
    let queued = tokio::spawn({
        let log = log.clone();
        async move { log.append(batch(4, 1, 1, 5)).await }
    });
    wait_until("the queue is full", || log.queue_depth() == 1).await;
    // no room: must fail after about 50 ms
    let r = tokio::time::timeout(Duration::from_secs(3), log.append(batch(5, 1, 1, 5))).await;
    release_tx.send(()).unwrap();
    reader.join().unwrap();
    redact.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    match r {
        Ok(Err(LogError::QueueFull { waited_ms: 50 })) => {}
        Ok(Err(e)) => panic!("unexpected error: {e}"),
        Ok(Ok(())) => panic!("append waited for the queue although enqueue_timeout is 50 ms"),
        Err(_) => panic!("append still waiting after 3 s although enqueue_timeout is 50 ms"),
    }
}

#[tokio::test]
async fn second_open_of_a_directory_is_refused_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts(128 << 10)).unwrap();
    log.append(batch(1, 2, 1, 10)).await.unwrap();
    match Log::open(dir.path(), opts(128 << 10)) {
        Err(LogError::Unusable { path, reason }) => {
            assert_eq!(path, dir.path());
            assert!(reason.contains("lock"), "{reason}");
        }
        r => panic!("second open: {r:?}"),
    }
    // a read-only open needs no lock
    let ro = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.last().unwrap().index, 2);
    drop(ro);
    log.close().await.unwrap();
    let log = Log::open(dir.path(), opts(128 << 10)).unwrap();
    assert_eq!(log.last().unwrap().index, 2);
    // dropping (not closing) releases the lock too
    drop(log);
    let log = Log::open(dir.path(), opts(128 << 10)).unwrap();
    log.close().await.unwrap();
}

#[tokio::test]
async fn read_only_open() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    match Log::open_read_only(&missing) {
        Err(e @ LogError::Unusable { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("nope") && msg.contains("no such directory"),
                "{msg}"
            );
        }
        r => panic!("read-only open of a missing dir: {r:?}"),
    }
    assert!(!missing.exists(), "a read-only open creates nothing");

    let o = opts(128 << 10);
    let log = Log::open(dir.path(), o.clone()).unwrap();
    for k in 0..100 {
        log.append(batch(1 + k * 3, 3, 1, 400)).await.unwrap();
    }
    log.write_meta(Bytes::from_static(b"meta")).await.unwrap();
    log.redact(7, 1..3).await.unwrap();
    log.append(batch(301, 3, 1, 400)).await.unwrap();
    let seg = log.segments().last().cloned().unwrap();
    let want = log.read(..).unwrap();
    log.close().await.unwrap();
    // tear the last batch: a read-only open must report but not repair it
    let off = seg.bytes - batch_len(&[400; 3]);
    flip_file(&seg.path, seg.bytes - 10);
    let before = snapshot(dir.path());

    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(
        log.recovery_report().torn_tail,
        Some((seg.path.clone(), off))
    );
    assert_eq!(log.read(..).unwrap(), want[..want.len() - 3]);
    let rep = log.verify(..).unwrap();
    assert_eq!((rep.entries, rep.redacted), (300, 1));
    assert_eq!(log.meta().as_deref(), Some(&b"meta"[..]));
    let ro = |r: Result<(), LogError>, what: &str| match r {
        Err(LogError::Invalid(m)) => assert!(m.contains("read-only"), "{what}: {m}"),
        r => panic!("{what} on a read-only log: {r:?}"),
    };
    ro(log.append(batch(301, 1, 1, 1)).await, "append");
    ro(
        log.append_next(1, vec![Bytes::from_static(b"x")])
            .await
            .map(drop),
        "append_next",
    );
    ro(log.write_meta(Bytes::from_static(b"m")).await, "write_meta");
    ro(log.truncate_after(5).await, "truncate_after");
    ro(log.purge_through(5).await, "purge_through");
    ro(log.redact(5, 0..1).await, "redact");
    log.clone().close().await.unwrap();
    drop(log);
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a read-only open changed files"
    );

    // a read-write open repairs it
    let log = Log::open(dir.path(), o).unwrap();
    assert_eq!(
        log.recovery_report().torn_tail,
        Some((seg.path.clone(), off))
    );
    assert_eq!(log.last().unwrap().index, 300);
    log.close().await.unwrap();
    assert_ne!(snapshot(dir.path()), before);
}

// ---------------------------------------------------------------------------------------------
// Ordering, concurrency and edges
// ---------------------------------------------------------------------------------------------

/// Requests take effect in the order they were queued, across all kinds, even when the writer
/// groups them into batches.
#[tokio::test]
async fn requests_take_effect_in_queue_order() {
    let vfs = SimVfs::new();
    let o = opts(128 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    // all queued before the writer completes any (each future sends on its first poll)
    let (a, b, c, d, e, f, g) = tokio::join!(
        log.append(batch(1, 5, 1, 10)),
        log.write_meta(Bytes::from_static(b"A")),
        log.truncate_after(3),
        log.append(batch(4, 3, 2, 20)),
        log.write_meta(Bytes::from_static(b"B")),
        log.append_next(
            3,
            vec![Bytes::from_static(b"n8"), Bytes::from_static(b"n9")]
        ),
        log.purge_through(2),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    d.unwrap();
    e.unwrap();
    assert_eq!(f.unwrap(), 7);
    g.unwrap();
    let check = |log: &Log| {
        let recs = log.read(..).unwrap();
        let got: Vec<(u64, u64)> = recs.iter().map(|r| (r.index, r.term)).collect();
        assert_eq!(got, vec![(3, 1), (4, 2), (5, 2), (6, 2), (7, 3), (8, 3)]);
        assert_eq!(&recs[1].payload[..], &payload(4, 20)[..]);
        assert_eq!(&recs[4].payload[..], b"n8");
        assert_eq!(log.meta().as_deref(), Some(&b"B"[..]));
        assert_eq!(log.purged().map(|p| p.index), Some(2));
        log.verify(..).unwrap();
    };
    check(&log);
    log.close().await.unwrap();
    let log = sim_open(&vfs, &o).unwrap();
    check(&log);
    log.close().await.unwrap();
}

/// Concurrent appenders are grouped into fewer batches (and fsyncs) than requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_groups_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts(1 << 20)).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..25u64 {
                log.append_next(1, vec![Bytes::from(payload(t * 100 + n, 50))])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let st = log.stats();
    assert_eq!(st.entries, 400);
    assert!(st.batches < 400, "{st:?}");
    assert!(st.fsyncs < 400 + 2, "{st:?}");
    assert_eq!(log.verify(..).unwrap().entries, 400);
    log.close().await.unwrap();
}

/// Reads of the stable part of the log stay exact while appends, rotations, purges of older
/// entries and redactions go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_writes() {
    let vfs = SimVfs::new();
    let log = sim_open(&vfs, &opts(128 << 10)).unwrap();
    for k in 0..4 {
        log.append(batch(1 + k * 50, 50, 1, 300)).await.unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    // entries 1001.. are never purged, truncated or redacted
                    let last = log.last().unwrap().index;
                    let lo = 1001;
                    if last < lo {
                        std::thread::yield_now();
                        continue;
                    }
                    let recs = log.read(lo..=last).unwrap();
                    assert_eq!(recs.len() as u64, last - lo + 1, "reader {r}");
                    for rec in &recs {
                        if rec.index > 1000 {
                            assert!(!rec.redacted);
                            assert_eq!(&rec.payload[..], &payload(rec.index, 300)[..]);
                        }
                    }
                    if r == 1 {
                        log.verify(lo..=last).unwrap();
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut next = 201;
    for k in 0..150u64 {
        log.append(batch(next, 8, 1, 300)).await.unwrap();
        next += 8;
        if k % 10 == 0 {
            let purge = (k * 6).min(1000);
            log.purge_through(purge.max(1)).await.unwrap();
        }
        if k % 7 == 0 && next > 1010 {
            let first = log.first_index().unwrap();
            if first < 1000 {
                log.redact(first + 1, 0..10).await.unwrap();
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(log.stats().rotations > 3);
    log.verify(..).unwrap();
    log.close().await.unwrap();
}

/// A reader racing a redaction of the record it reads sees the record either whole or
/// redacted, never a checksum failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_a_redaction() {
    let vfs = SimVfs::new();
    let log = sim_open(&vfs, &opts(128 << 10)).unwrap();
    log.append(batch(1, 50, 1, 300)).await.unwrap();
    let original = payload(7, 300);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen_whole = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen_redacted = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let reader = {
        let (log, stop, original) = (log.clone(), stop.clone(), original.clone());
        let (seen_whole, seen_redacted) = (seen_whole.clone(), seen_redacted.clone());
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering::SeqCst;
            while !stop.load(SeqCst) {
                let r = log.read(7..=7).unwrap().remove(0);
                if r.redacted {
                    assert!(r.payload[..].starts_with(&[0u8; 4]));
                    assert_eq!(r.payload[r.payload.len() - 1], original[original.len() - 1]);
                    seen_redacted.fetch_add(1, SeqCst);
                } else {
                    assert_eq!(&r.payload[..], &original[..]);
                    seen_whole.fetch_add(1, SeqCst);
                }
            }
            (seen_whole.load(SeqCst), seen_redacted.load(SeqCst))
        })
    };
    use std::sync::atomic::Ordering::SeqCst;
    wait_until("the reader saw the record whole", || {
        seen_whole.load(SeqCst) > 0
    })
    .await;
    for k in 0..40usize {
        log.redact(7, k * 7..k * 7 + 4).await.unwrap();
    }
    wait_until("the reader saw it redacted", || {
        seen_redacted.load(SeqCst) > 0
    })
    .await;
    stop.store(true, SeqCst);
    let (whole, redacted) = reader.join().unwrap();
    assert!(whole > 0 && redacted > 0, "{whole} {redacted}");
    assert_eq!(log.verify(..).unwrap().redacted, 1);
    log.close().await.unwrap();
}

#[tokio::test]
async fn truncation_edges() {
    let vfs = SimVfs::new();
    let o = opts(128 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    // on an empty log: nothing to do
    log.truncate_after(5).await.unwrap();
    log.truncate_from(0).await.unwrap();
    log.append(batch(10, 10, 1, 10)).await.unwrap();
    log.truncate_after(u64::MAX).await.unwrap();
    log.truncate_from(20).await.unwrap();
    assert_eq!(log.last().unwrap().index, 19);
    // truncating from the first entry makes an unpurged log fresh: any index starts it
    log.truncate_from(10).await.unwrap();
    assert_eq!(
        (log.first_index(), log.last(), log.next_index()),
        (None, None, 0)
    );
    log.append(batch(3, 5, 2, 10)).await.unwrap();
    assert_eq!(log.first_index(), Some(3));
    assert_eq!(
        log.read(..).unwrap()[0].chain,
        chain_of(GENESIS_CHAIN, [(3, 2, &payload(3, 10)[..])])[0]
    );
    log.purge_through(4).await.unwrap();
    // at or below the purge point: refused; just above it: empties the log
    for from in [0, 3, 4] {
        match log.truncate_from(from).await {
            Err(LogError::Invalid(_)) => {}
            r => panic!("truncate_from({from}) below the purge point: {r:?}"),
        }
    }
    log.truncate_from(5).await.unwrap();
    assert_eq!((log.first_index(), log.next_index()), (None, 5));
    log.append(batch(5, 1, 3, 10)).await.unwrap();
    log.close().await.unwrap();
    let log = sim_open(&vfs, &o).unwrap();
    assert_eq!(log.first_index(), Some(5));
    assert_eq!(log.verify(..).unwrap().entries, 1);
    log.close().await.unwrap();
}

/// A log reopened with another segment size keeps working: old segments are read at their
/// real size, new ones get the new size.
#[tokio::test]
async fn reopen_with_another_segment_size() {
    let vfs = SimVfs::new();
    let mut next = 1;
    let mut want = Vec::new();
    for (round, size) in [32u64 << 10, 128 << 10, 16 << 10, 64 << 10]
        .into_iter()
        .enumerate()
    {
        let log = sim_open(&vfs, &opts(size)).unwrap();
        assert_eq!(log.read(..).unwrap(), want, "round {round}");
        for _ in 0..40 {
            log.append(batch(next, 2, round as u64, 300)).await.unwrap();
            next += 2;
        }
        want = log.read(..).unwrap();
        log.verify(..).unwrap();
        log.close().await.unwrap();
    }
    let log = Log::open_with(
        Path::new(DIR),
        opts(16 << 10),
        OpenMode::ReadOnly,
        vfs.clone(),
    )
    .unwrap();
    assert_eq!(log.read(..).unwrap(), want);
}

/// BUG: an entry index or purge position of `u64::MAX` overflows `index + 1` in the writer
/// (`Writer::push_entry`: `g.next = Some(index + 1)`; `Writer::encode_purge`:
/// `g.next = Some(pos.index + 1)`): in debug builds the writer thread panics and every later
/// request fails with `Closed`; in release builds the next index wraps to 0.
#[tokio::test]
async fn indexes_at_u64_max_are_rejected() {
    let vfs = SimVfs::new();
    let log = sim_open(&vfs, &opts(128 << 10)).unwrap();
    let r = log.append(vec![Entry::new(u64::MAX, 1, &b"x"[..])]).await;
    assert!(
        matches!(
            r,
            Err(LogError::Invalid(_)) | Err(LogError::OutOfOrder { .. })
        ),
        "append at u64::MAX: {r:?}"
    );
    let r = log
        .purge_to(LogPosition {
            index: u64::MAX,
            term: 1,
            chain: [1; 32],
        })
        .await;
    assert!(
        matches!(r, Err(LogError::Invalid(_))),
        "purge_to(u64::MAX): {r:?}"
    );
    // the log is still usable
    log.append(batch(1, 1, 1, 5)).await.unwrap();
    log.close().await.unwrap();
}

/// BUG: damage to a record that was redacted earlier is silently "repaired" at open. Recovery
/// (`recover`, the `suspects` loop) treats *any* crc failure of a record that has a redaction
/// intent as an interrupted redaction and re-applies it (`apply_redaction`), which recomputes
/// the crc over whatever bytes are there now. A flipped byte outside the redacted range is
/// thereby accepted, and as redacted payloads are not checked against their hash, `verify`
/// passes too. Suggested fix: store the expected post-redaction record crc in the intent and
/// complete a redaction only if zeroing the range and setting the flag yields exactly that crc;
/// anything else is `Corrupt`.
#[tokio::test]
async fn damage_to_a_redacted_record_is_corrupt() {
    let vfs = SimVfs::new();
    let o = opts(128 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 5, 1, 200)).await.unwrap();
    log.append(batch(6, 5, 1, 200)).await.unwrap();
    log.redact(3, 0..10).await.unwrap();
    let seg = log.segments()[0].path.clone();
    log.close().await.unwrap();
    // entry 3 is the third record of the first batch
    let rec3 = data_start() + BATCH_HEADER_LEN + 2 * (RECORD_HEADER_LEN as u64 + 200);
    let flip = rec3 + RECORD_HEADER_LEN as u64 + 150;
    vfs.flip_byte(&seg, flip).unwrap();
    match sim_open(&vfs, &o) {
        Err(LogError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, seg);
            assert_eq!(offset, rec3);
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(log) => panic!(
            "the log opened (redactions repaired: {}); entry 3 byte 150 reads {} (was {}), \
             verify: {:?}",
            log.recovery_report().redactions_repaired,
            log.read(3..=3).unwrap()[0].payload[150],
            payload(3, 200)[150],
            log.verify(..).map(|r| r.entries)
        ),
    }
}

/// BUG: a torn last batch whose landed part holds a payload that looks like a batch header is
/// reported as damage in the middle ("..., and a batch follows at offset N") and the log
/// refuses to open after an ordinary crash. `recover` calls `BatchReader::any_batch_after(offset)`,
/// which probes every 8-byte position after the torn batch's *start* — including the torn
/// batch's own payload bytes. Suggested fix: when the torn batch's header is valid, look for
/// later batches only from its declared end (`Batch::end`), and accept a candidate only if the
/// whole batch parses with valid record crcs (not just a header crc).
#[tokio::test]
async fn torn_batch_with_a_header_like_payload_is_a_torn_tail() {
    let vfs = SimVfs::new();
    let o = opts(128 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    log.append(batch(1, 5, 1, 200)).await.unwrap();
    // a payload starting with a well-formed (empty) batch header; payloads start 8-aligned
    let mut fake = vec![0u8; 64];
    hearth_log::format::finish_batch_header(&mut fake[..24], 0, 0, 0);
    let seg = log.segments()[0].clone();
    let last = log.last().unwrap();
    log.append(vec![
        Entry::new(6, 1, fake.clone()),
        Entry::new(7, 1, payload(7, 100)),
    ])
    .await
    .unwrap();
    let end = log.segments()[0].bytes;
    log.close().await.unwrap();
    // the write of that batch was torn: the second record never landed
    let rec7 = seg.bytes + BATCH_HEADER_LEN + RECORD_HEADER_LEN as u64 + 64;
    let f = vfs.open(&seg.path).unwrap();
    f.write_all_at(&vec![0u8; (end - rec7) as usize], rec7)
        .unwrap();
    f.sync_data().unwrap();
    drop(f);
    let log = match sim_open(&vfs, &o) {
        Ok(l) => l,
        Err(e) => panic!("a torn last batch made the log unopenable: {e}"),
    };
    assert_eq!(
        log.recovery_report().torn_tail,
        Some((seg.path.clone(), seg.bytes))
    );
    assert_eq!(log.last(), Some(last));
}

/// A segment missing in the middle of the sequence is damage.
#[tokio::test]
async fn missing_middle_segment_is_corrupt() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    for k in 0..40 {
        log.append(batch(1 + k * 3, 3, 1, 200)).await.unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 3);
    log.close().await.unwrap();
    vfs.remove(&segs[1].path).unwrap();
    vfs.sync_dir(Path::new(DIR)).unwrap();
    match sim_open(&vfs, &o) {
        Err(LogError::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (segs[1].path.clone(), 0));
        }
        r => panic!("expected Corrupt, got {:?}", r.map(|l| l.first_index())),
    }
}

/// BUG: losing the oldest segment(s) goes unnoticed: `recover` takes the first remaining
/// segment's anchor as the log's start, so the log opens with entries missing that were never
/// purged (`purged()` is `None` here). Segments are only deleted once every entry in them is at
/// or below the purge point, so after recovery the purge point must be at or above the first
/// segment's anchor; suggested fix: if it is not (or there is no purge point but the first
/// segment has an anchor), fail with `Corrupt` ("segment missing") naming the segment before it.
#[tokio::test]
async fn missing_oldest_segment_is_corrupt() {
    let vfs = SimVfs::new();
    let o = opts(16 << 10);
    let log = sim_open(&vfs, &o).unwrap();
    for k in 0..40 {
        log.append(batch(1 + k * 3, 3, 1, 200)).await.unwrap();
    }
    let segs = log.segments();
    log.close().await.unwrap();
    vfs.remove(&segs[0].path).unwrap();
    vfs.sync_dir(Path::new(DIR)).unwrap();
    match sim_open(&vfs, &o) {
        Err(LogError::Corrupt { .. }) => {}
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(log) => panic!(
            "opened without segment 1: first {:?}, purged {:?}",
            log.first_index(),
            log.purged()
        ),
    }
}
