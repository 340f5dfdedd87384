//! One closed-loop run of the log benchmark: N client tasks, each appending `batch` events per
//! call and waiting for the durable ack before the next call.
//!
//! Clients use [`Log::append_next`], which lets the log's writer assign the indexes, so
//! concurrent clients never need to agree on an order among themselves and many appends are in
//! flight at once — exactly what the writer's group commit feeds on.
//!
//! Each run uses a fresh log in a `hearth-bench-*` temporary directory; the caller gets the
//! directory back (to replay it) and it is removed when dropped.

use super::report::{micros, new_histogram, RunReport};
use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hearth_log::{Durability, Log, LogOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Term of every benchmark entry.
const TERM: u64 = 1;

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Measure for this long after the warm-up.
    After(Duration),
    /// Append exactly this many events (no warm-up; everything is measured).
    Events(u64),
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Concurrent client tasks.
    pub clients: usize,
    /// Events per append call.
    pub batch: usize,
    /// Durability of the log.
    pub durability: Durability,
    /// When to stop.
    pub stop: Stop,
    /// Appends before measuring starts (ignored with [`Stop::Events`]).
    pub warmup: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The figures.
    pub report: RunReport,
    /// Events in the log at the end (measured or not).
    pub events_written: u64,
    /// The temporary directory holding the (closed) log; removed when dropped.
    pub dir: TempDir,
    /// The log directory inside `dir`.
    pub log_dir: PathBuf,
}

/// State shared by the client tasks of one run.
struct Shared {
    log: Log,
    /// Events claimed by clients so far (for [`Stop::Events`]).
    claimed: AtomicU64,
    /// Events to append in [`Stop::Events`] mode.
    limit: Option<u64>,
    batch: u64,
    payloads: Arc<Vec<Bytes>>,
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// What one client measured.
struct ClientStats {
    hist: Histogram<u64>,
    calls: u64,
}

/// Run one closed-loop benchmark in a fresh log under `base`. `payloads` are encoded events,
/// used round-robin by index; `baseline_iops` is the disk's overwrite fdatasync IOPS.
pub fn run(
    base: &Path,
    cfg: &RunConfig,
    payloads: Arc<Vec<Bytes>>,
    baseline_iops: f64,
) -> anyhow::Result<RunOutcome> {
    anyhow::ensure!(cfg.clients > 0, "need at least one client");
    anyhow::ensure!(cfg.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(!payloads.is_empty(), "no payloads");
    let dir = tempfile::Builder::new()
        .prefix("hearth-bench-")
        .tempdir_in(base)
        .with_context(|| format!("create a temporary directory in {}", base.display()))?;
    let log_dir = crate::paths::log_dir(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hearth-bench")
        .build()
        .context("start the tokio runtime")?;
    let (report, events_written) = runtime.block_on(run_async(&log_dir, cfg, payloads))?;
    drop(runtime);
    let report = RunReport {
        ratio_to_baseline: (baseline_iops > 0.0).then(|| report.events_per_s / baseline_iops),
        baseline_iops,
        ..report
    };
    Ok(RunOutcome {
        report,
        events_written,
        dir,
        log_dir,
    })
}

async fn run_async(
    log_dir: &Path,
    cfg: &RunConfig,
    payloads: Arc<Vec<Bytes>>,
) -> anyhow::Result<(RunReport, u64)> {
    let opts = LogOptions {
        durability: cfg.durability,
        ..LogOptions::default()
    };
    let log =
        Log::open(log_dir, opts).with_context(|| format!("open log {}", log_dir.display()))?;
    let events_mode = matches!(cfg.stop, Stop::Events(_));
    let shared = Arc::new(Shared {
        claimed: AtomicU64::new(0),
        limit: match cfg.stop {
            Stop::Events(n) => Some(n),
            Stop::After(_) => None,
        },
        batch: cfg.batch as u64,
        payloads,
        measuring: AtomicBool::new(events_mode),
        stop: AtomicBool::new(false),
        log: log.clone(),
    });
    let handles: Vec<_> = (0..cfg.clients)
        .map(|_| tokio::spawn(client(shared.clone())))
        .collect();

    // Start of the measured window: after the warm-up in timed mode, at once with `--events`.
    if !events_mode {
        sleep_unless_stopped(&shared, cfg.warmup).await;
    }
    let (s0, t0) = (log.stats(), Instant::now());
    shared.measuring.store(true, Ordering::SeqCst);
    // End of the window: after `window` in timed mode, else when every client is done.
    let mut end = None;
    if let Stop::After(window) = cfg.stop {
        sleep_unless_stopped(&shared, window).await;
        shared.stop.store(true, Ordering::SeqCst);
        end = Some((log.stats(), t0.elapsed()));
    }

    let mut hist = new_histogram();
    let mut calls = 0;
    let mut failure = None;
    for h in handles {
        match h.await {
            Ok(Ok(c)) => {
                hist.add(&c.hist).context("merge latency histograms")?;
                calls += c.calls;
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(anyhow::anyhow!("client task failed: {e}"))),
        }
    }
    let (s1, elapsed) = end.unwrap_or_else(|| (log.stats(), t0.elapsed()));
    let events_written = log.stats().entries;
    let closed = log.close().await;
    if let Some(e) = failure {
        return Err(e);
    }
    closed.context("close the log")?;

    let secs = elapsed.as_secs_f64().max(1e-9);
    let events = s1.entries - s0.entries;
    let fsyncs = s1.fsyncs - s0.fsyncs;
    let lat = super::report::Latency::from_histogram(&hist);
    let report = RunReport {
        clients: cfg.clients,
        batch: cfg.batch,
        seconds: secs,
        events,
        append_calls: calls,
        events_per_s: events as f64 / secs,
        append_calls_per_s: calls as f64 / secs,
        fsyncs_per_s: fsyncs as f64 / secs,
        events_per_fsync: (fsyncs > 0).then(|| events as f64 / fsyncs as f64),
        p50_us: lat.p50_us,
        p99_us: lat.p99_us,
        p999_us: lat.p999_us,
        max_us: lat.max_us,
        ratio_to_baseline: None,
        baseline_iops: 0.0,
    };
    Ok((report, events_written))
}

/// Sleep for `d`, returning early if a client failed (it sets `stop`).
async fn sleep_unless_stopped(shared: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !shared.stop.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
}

/// One closed-loop client. On error it stops the whole run.
async fn client(sh: Arc<Shared>) -> anyhow::Result<ClientStats> {
    let result = client_loop(&sh).await;
    if result.is_err() {
        sh.stop.store(true, Ordering::SeqCst);
    }
    result
}

async fn client_loop(sh: &Shared) -> anyhow::Result<ClientStats> {
    let mut stats = ClientStats {
        hist: new_histogram(),
        calls: 0,
    };
    let n_payloads = sh.payloads.len() as u64;
    while !sh.stop.load(Ordering::SeqCst) {
        let claimed = sh.claimed.fetch_add(sh.batch, Ordering::Relaxed);
        let n = match sh.limit {
            Some(limit) if claimed >= limit => break,
            Some(limit) => sh.batch.min(limit - claimed),
            None => sh.batch,
        };
        let payloads: Vec<Bytes> = (claimed..claimed + n)
            .map(|i| sh.payloads[(i % n_payloads) as usize].clone())
            .collect();
        let measured = sh.measuring.load(Ordering::SeqCst);
        let started = Instant::now();
        sh.log
            .append_next(TERM, payloads)
            .await
            .with_context(|| format!("append {n} events"))?;
        if measured && !sh.stop.load(Ordering::SeqCst) {
            stats.hist.saturating_record(micros(started.elapsed()));
            stats.calls += 1;
        }
    }
    Ok(stats)
}
