//! Crash test with real processes (sled style): the test re-executes its own binary as a child
//! that appends to a log on the real file system as fast as it can and prints a line for every
//! acknowledged append; the parent SIGKILLs it at a random moment, reopens the log and checks
//! that every acknowledged entry is there, intact, in a contiguous log with a valid chain.
//!
//! SIGKILL loses no page-cache data, so this tests the process-crash half of the contract:
//! recovery after a kill at any point — mid-batch, mid-rotation, mid-recovery (a child may be
//! killed while it is still opening the log) — and that acknowledgements are never premature.

use bytes::Bytes;
use hearth_log::{Log, LogOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "HEARTH_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "HEARTH_CRASH_ROUND";
const ROUNDS: u32 = 50;
const SEED: u64 = 0x4845_4152_5448; // "HEARTH"
const TASKS: u64 = 8;

fn opts() -> LogOptions {
    LogOptions {
        segment_size: 1 << 20,
        ..LogOptions::default()
    }
}

/// FNV-1a, to derive payload lengths from tags identically in parent and child.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The payload named `tag` (its content does not depend on the index it lands at).
fn payload(tag: &str) -> Vec<u8> {
    let len = 1 + (fnv(tag) % 600) as usize;
    tag.bytes().chain(*b"|").cycle().take(len).collect()
}

/// The child: appends forever from `TASKS` concurrent tasks and reports every acknowledged
/// append as `ACK <first_index> <count> <tag>` (payload `k` of the call is `payload("<tag>.k")`).
/// Returns at once unless run by `crash_recovery_with_sigkill`.
#[test]
fn child_append_loop() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let round: u32 = std::env::var(ROUND_ENV)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let log = match Log::open(&dir, opts()) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("child: open failed: {e}");
                std::process::exit(2);
            }
        };
        {
            let mut out = std::io::stdout().lock();
            // (on a line of its own: the test harness has printed "test ... " without one)
            writeln!(out, "\nOPEN {}", log.next_index()).expect("stdout");
            out.flush().expect("stdout");
        }
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let tag = format!("r{round}t{t}n{n}");
                    let count = 1 + (t % 3) as usize;
                    let payloads = (0..count)
                        .map(|k| Bytes::from(payload(&format!("{tag}.{k}"))))
                        .collect();
                    match log.append_next(1, payloads).await {
                        Ok(first) => {
                            let mut out = std::io::stdout().lock();
                            writeln!(out, "ACK {first} {count} {tag}").expect("stdout");
                            out.flush().expect("stdout");
                        }
                        Err(e) => {
                            eprintln!("child: append failed: {e}");
                            std::process::exit(3);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Kills and reaps the child on every path out of the parent.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the child printed: `OPEN` (sent on `opened`) and complete `ACK` lines.
fn read_stdout(out: impl Read, opened: mpsc::Sender<()>) -> Vec<(u64, u64, String)> {
    let mut acks = Vec::new();
    let mut r = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return acks,
            Ok(_) => {}
        }
        // a line cut short by the kill has no newline: the append was not reported
        let Some(l) = line.strip_suffix('\n') else {
            return acks;
        };
        let mut f = l.split(' ');
        match f.next() {
            Some("OPEN") => {
                let _ = opened.send(());
            }
            Some("ACK") => {
                let first = f.next().and_then(|x| x.parse().ok());
                let count = f.next().and_then(|x| x.parse().ok());
                let tag = f.next();
                match (first, count, tag) {
                    (Some(first), Some(count), Some(tag)) => {
                        acks.push((first, count, tag.to_string()))
                    }
                    _ => panic!("bad line from the child: {l:?}"),
                }
            }
            _ => {} // the test harness's own output
        }
    }
}

/// Reopens the log in the parent and checks it against everything acknowledged so far.
async fn check_log(dir: &Path, acked: &BTreeMap<u64, String>, round: u32) -> (u64, u64) {
    let log = Log::open(dir, opts()).unwrap_or_else(|e| panic!("round {round}: reopen: {e}"));
    let recs = log.read(..).unwrap();
    let max_acked = acked.keys().next_back().copied();
    let last = log.last().map(|l| l.index);
    assert!(
        last >= max_acked,
        "round {round}: last {last:?} < acknowledged {max_acked:?}"
    );
    if !acked.is_empty() {
        assert_eq!(log.first_index(), Some(0), "round {round}");
    }
    for (k, r) in recs.iter().enumerate() {
        assert_eq!(
            r.index, k as u64,
            "round {round}: indexes contiguous from 0"
        );
        if let Some(tag) = acked.get(&r.index) {
            assert_eq!(
                &r.payload[..],
                &payload(tag)[..],
                "round {round}: payload of acknowledged entry {}",
                r.index
            );
        }
    }
    let rep = log
        .verify(..)
        .unwrap_or_else(|e| panic!("round {round}: verify: {e}"));
    assert_eq!(rep.entries, recs.len() as u64, "round {round}");
    assert_eq!(rep.last, log.last(), "round {round}");
    let torn = u64::from(log.recovery_report().torn_tail.is_some());
    let segments = rep.segments;
    log.close().await.unwrap();
    (torn, segments)
}

#[tokio::test]
async fn crash_recovery_with_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let started = Instant::now();
    let (mut torn_tails, mut killed_before_open, mut segments) = (0, 0, 0);
    for round in 0..ROUNDS {
        let mut child = ChildGuard(
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_append_loop",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &dir)
                .env(ROUND_ENV, round.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let mut stderr = child.0.stderr.take().unwrap();
        let (opened_tx, opened_rx) = mpsc::channel();
        let out = std::thread::spawn(move || read_stdout(stdout, opened_tx));
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        // most rounds kill a running appender; every fourth may kill it while it opens the log
        let delay = Duration::from_millis(rng.gen_range(5..=60));
        if round % 4 != 0 && opened_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!(
                "round {round}: the child never opened the log: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(delay);
        let exited = child.0.try_wait().unwrap();
        child.0.kill().unwrap_or(());
        child.0.wait().unwrap();
        assert!(
            child.0.try_wait().unwrap().is_some(),
            "round {round}: child left running"
        );
        let acks = out.join().unwrap();
        let stderr = err.join().unwrap();
        assert!(
            exited.is_none(),
            "round {round}: the child exited on its own ({exited:?}): {stderr}"
        );
        if opened_rx.try_recv().is_err() && round % 4 == 0 && acks.is_empty() {
            killed_before_open += 1;
        }
        for (first, count, tag) in acks {
            for k in 0..count {
                let t = format!("{tag}.{k}");
                if let Some(old) = acked.insert(first + k, t.clone()) {
                    panic!(
                        "round {round}: index {} acknowledged twice ({old}, then {t}): an \
                         acknowledged entry was lost",
                        first + k
                    );
                }
            }
        }
        let (torn, segs) = check_log(&dir, &acked, round).await;
        torn_tails += torn;
        segments = segs;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{ROUNDS} rounds in {elapsed:?}: {} entries acknowledged, {segments} segments, \
         {torn_tails} torn tails recovered, {killed_before_open} children killed before opening",
        acked.len()
    );
    assert!(!acked.is_empty(), "nothing was ever acknowledged");
    assert!(segments > 1, "no rotation happened");
}
