//! In-process benchmarks (`hearth bench …`).
//!
//! Every benchmark first measures the directory's disk ([`disk`]: 4 KiB write + fdatasync) and
//! reports its figures both absolute and as a ratio to that baseline. `hearth bench log` then
//! sweeps closed-loop client counts over a fresh log each ([`log_bench`]), replays the largest
//! run ([`replay`]) and prints a table or one JSON object ([`report`]). `hearth bench audit`
//! ([`audit_bench`]) times the offline audit's phases on a generated log; `hearth bench stream`
//! ([`stream_bench`]) the commit → delivery latency of the live event stream.

pub mod audit_bench;
pub mod blobs_bench;
pub mod cluster_bench;
pub mod disk;
pub mod docs_bench;
pub mod http_conn;
pub mod log_bench;
pub mod replay;
pub mod replication_bench;
pub mod report;
pub mod rss;
pub mod stream_bench;

use anyhow::Context as _;
use bytes::Bytes;
use hearth_log::Durability;
use log_bench::{RunConfig, RunOutcome, Stop};
use prost::Message as _;
use report::{BenchConfig, BenchReport, MemoryReport};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Distinct pre-encoded events, reused round-robin so generating them is not measured.
pub const DISTINCT_PAYLOADS: u64 = 1024;
/// Longest warm-up before a run is measured.
pub const MAX_WARMUP: Duration = Duration::from_millis(500);

/// Progress on stderr when it is a terminal.
pub(crate) fn say(on: bool, msg: impl std::fmt::Display) {
    if on {
        eprintln!("bench: {msg}");
    }
}

/// A fresh scratch directory `PREFIX…` inside `dir` (default: the system's temporary
/// directory), removed when dropped.
pub(crate) fn scratch_dir(
    dir: Option<&std::path::Path>,
    prefix: &str,
) -> anyhow::Result<tempfile::TempDir> {
    let parent = dir.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
    std::fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .with_context(|| format!("temporary directory in {}", parent.display()))
}

/// `--clients`: one or more counts, each at least 1.
pub(crate) fn check_clients(clients: &[usize]) -> anyhow::Result<()> {
    anyhow::ensure!(
        !clients.is_empty() && clients.iter().all(|&c| c > 0),
        "--clients must be one or more counts of at least 1"
    );
    Ok(())
}

/// Durability of the benchmark log (`--durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// One fdatasync per group commit (production).
    SyncData,
    /// No fsync: measures the log's CPU path only.
    Buffer,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::SyncData => Durability::SyncData,
            DurabilityArg::Buffer => Durability::Buffer,
        }
    }
}

impl DurabilityArg {
    fn name(self) -> &'static str {
        match self {
            DurabilityArg::SyncData => "sync-data",
            DurabilityArg::Buffer => "buffer",
        }
    }
}

/// Arguments of `hearth bench log`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchLogArgs {
    /// Directory on the disk to measure; logs are created in temporary subdirectories.
    #[arg(long, env = "HEARTH_BENCH_DIR")]
    pub dir: PathBuf,
    /// Client counts to sweep (comma-separated).
    #[arg(
        long,
        env = "HEARTH_BENCH_CLIENTS",
        value_delimiter = ',',
        default_value = "1,16,64,256"
    )]
    pub clients: Vec<usize>,
    /// Events per append call.
    #[arg(long, env = "HEARTH_BENCH_BATCH", default_value_t = 1)]
    pub batch: usize,
    /// Encoded size of one event, bytes (approximate).
    #[arg(long, env = "HEARTH_BENCH_EVENT_SIZE", default_value_t = 256)]
    pub event_size: usize,
    /// Measured time per client count (after a warm-up of a tenth of it, at most 500ms).
    #[arg(long, env = "HEARTH_BENCH_DURATION", default_value = "5s",
          value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// fdatasync per group commit (`sync-data`) or none (`buffer`).
    #[arg(
        long,
        env = "HEARTH_BENCH_DURABILITY",
        value_enum,
        default_value = "sync-data"
    )]
    pub durability: DurabilityArg,
    /// Instead of timed runs: append exactly this many events with the largest client count
    /// and report RSS at start and end (memory check).
    #[arg(long, env = "HEARTH_BENCH_EVENTS")]
    pub events: Option<u64>,
    /// Print one JSON object instead of the table.
    #[arg(long, env = "HEARTH_JSON")]
    pub json: bool,
}

/// Progress lines on stderr, only when stderr is a terminal.
struct Progress(bool);

impl Progress {
    fn say(&self, msg: impl std::fmt::Display) {
        if self.0 {
            eprintln!("bench: {msg}");
        }
    }
}

/// Run `hearth bench log`, writing the table or JSON to `out`.
pub fn run_log(args: &BenchLogArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(!args.clients.is_empty(), "--clients is empty");
    anyhow::ensure!(
        args.clients.iter().all(|&c| c > 0),
        "--clients must all be at least 1"
    );
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(args.event_size > 0, "--event-size must be at least 1");
    anyhow::ensure!(args.events != Some(0), "--events must be at least 1");
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let progress = Progress(std::io::stderr().is_terminal());

    progress.say(format_args!(
        "disk baseline in {} (4 KiB write + fdatasync)",
        args.dir.display()
    ));
    let baseline = disk::measure(&args.dir)?;
    progress.say(format_args!(
        "baseline: extend {:.0} IOPS, overwrite {:.0} IOPS",
        baseline.fdatasync_iops, baseline.overwrite_fdatasync_iops
    ));

    let payloads: Arc<Vec<Bytes>> = Arc::new(
        (0..DISTINCT_PAYLOADS)
            .map(|seed| {
                Bytes::from(
                    hearth_proto::sample::sample_envelope(seed, args.event_size).encode_to_vec(),
                )
            })
            .collect(),
    );

    let warmup = (args.duration / 10).min(MAX_WARMUP);
    let (stop, client_counts) = match args.events {
        Some(n) => {
            let max = args.clients.iter().copied().max().unwrap_or(1);
            (Stop::Events(n), vec![max])
        }
        None => (Stop::After(args.duration), args.clients.clone()),
    };

    let mut runs = Vec::new();
    let mut largest: Option<RunOutcome> = None;
    let mut memory = None;
    for clients in client_counts {
        progress.say(format_args!(
            "log: {clients} clients, batch {}, {}",
            args.batch,
            match stop {
                Stop::After(d) => humantime::format_duration(d).to_string(),
                Stop::Events(n) => format!("{n} events"),
            }
        ));
        let cfg = RunConfig {
            clients,
            batch: args.batch,
            durability: args.durability.into(),
            stop,
            warmup,
        };
        let rss_start = rss::rss_kib();
        let before = disk::overwrite_probe(&args.dir)?;
        let mut outcome = log_bench::run(&args.dir, &cfg, payloads.clone(), 0.0)?;
        let after = disk::overwrite_probe(&args.dir)?;
        let reference = (before.iops + after.iops) / 2.0;
        outcome.report.baseline_iops = reference;
        outcome.report.ratio_to_baseline =
            (reference > 0.0).then(|| outcome.report.events_per_s / reference);
        if let Stop::Events(n) = stop {
            memory = Some(MemoryReport {
                events: n,
                rss_start_kib: rss_start,
                rss_end_kib: rss::rss_kib(),
            });
        }
        let r = &outcome.report;
        progress.say(format_args!(
            "  {:.0} events/s, {:.0} fsyncs/s, p99 {} us",
            r.events_per_s, r.fsyncs_per_s, r.p99_us
        ));
        runs.push(outcome.report.clone());
        if largest
            .as_ref()
            .is_none_or(|l| outcome.events_written > l.events_written)
        {
            largest = Some(outcome); // the previous largest's directory is removed here
        }
    }

    let replay = match &largest {
        Some(l) => {
            progress.say(format_args!("replay: {} events", l.events_written));
            replay::replay(&l.log_dir)?
        }
        None => report::ReplayReport::default(),
    };
    if let Some(l) = largest {
        l.dir
            .close()
            .with_context(|| format!("remove the benchmark log in {}", args.dir.display()))?;
    }

    let report = BenchReport {
        config: BenchConfig {
            dir: args.dir.display().to_string(),
            durability: args.durability.name().to_string(),
            event_size: args.event_size,
            batch: args.batch,
            duration_ms: match stop {
                Stop::After(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                Stop::Events(_) => None,
            },
            warmup_ms: match stop {
                Stop::After(_) => u64::try_from(warmup.as_millis()).unwrap_or(u64::MAX),
                Stop::Events(_) => 0,
            },
        },
        baseline,
        runs,
        replay,
        memory,
        rss_kib: rss::peak_rss_kib(),
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        report::write_table(&report, out)?;
    }
    out.flush()?;
    Ok(())
}
