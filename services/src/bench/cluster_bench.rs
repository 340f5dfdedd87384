//! `hearth bench cluster`: committed events/s and commit latency of a real cluster — N nodes
//! in this process, each with its own data directory, HTTP listener and libp2p swarm on
//! 127.0.0.1 — written through the leader's client-write path ([`Node::propose`]), compared
//! with a one-node cluster measured in the same run and with the disk baseline.

use super::report::{micros, new_histogram, Baseline, Latency};
use super::{disk, say};
use crate::node::batcher::BatchLimits;
use crate::node::{Node, NodeSettings};
use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hearth_proto::v1::Envelope;
use prost::Message as _;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `hearth bench cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchClusterArgs {
    /// Directory for the nodes' data directories (a fresh temporary directory inside it is
    /// used and removed). Default: the system's temporary directory.
    #[arg(long, env = "HEARTH_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Closed-loop client counts, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub clients: Vec<usize>,
    /// Measured time per run (after a warm-up of a tenth of it, at most 500 ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Event envelope size in bytes.
    #[arg(long, default_value_t = 256)]
    pub event_size: usize,
    /// Group commit: most raft entries the leader keeps in flight (tuning; see the node's
    /// batcher).
    #[arg(long, default_value_t = BatchLimits::default().in_flight)]
    pub batch_in_flight: usize,
    /// Group commit: most events in one raft entry.
    #[arg(long, default_value_t = BatchLimits::default().max_events)]
    pub batch_max_events: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRun {
    /// Concurrent clients.
    pub clients: usize,
    /// Committed (and applied) events per second.
    pub events_per_s: f64,
    /// Median commit latency, µs.
    pub p50_us: u64,
    /// p99 commit latency, µs.
    pub p99_us: u64,
    /// p99.9 commit latency, µs.
    pub p999_us: u64,
    /// Largest commit latency, µs.
    pub max_us: u64,
    /// Events committed in the measured window.
    pub events: u64,
    /// `events_per_s` / the disk's overwrite fdatasync IOPS.
    pub ratio_to_baseline: Option<f64>,
    /// Leader log entries per leader log fdatasync during the run (group-commit factor).
    pub leader_entries_per_fsync: Option<f64>,
    /// Leader log entries per log write batch during the run.
    pub leader_entries_per_batch: Option<f64>,
    /// Events per raft entry on the leader during the run (the batcher's group-commit factor).
    pub events_per_entry: Option<f64>,
}

/// The whole report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// The disk baseline, as in `hearth bench log`.
    pub baseline: Baseline,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// The same runs on a one-node cluster.
    pub single_node: Vec<ClusterRun>,
    /// The runs on the N-node cluster.
    pub runs: Vec<ClusterRun>,
}

/// Runs the benchmark and prints the report.
pub fn run_cluster(args: &BenchClusterArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!((1..=7).contains(&args.nodes), "--nodes must be 1 to 7");
    super::check_clients(&args.clients)?;
    anyhow::ensure!(args.event_size > 0, "--event-size must be at least 1");
    let scratch = super::scratch_dir(args.dir.as_deref(), "hearth-bench-cluster-")?;
    let progress = std::io::stderr().is_terminal();
    say(progress, "disk baseline (4 KiB write + fdatasync)");
    let baseline = disk::measure(scratch.path())?;

    // Templates; each proposal is a distinct event made from one (`make_distinct`).
    let payloads: Arc<Vec<Envelope>> = Arc::new(
        (0..1024u64)
            .map(|seed| {
                let mut env = hearth_proto::sample::sample_envelope(seed, args.event_size);
                // The node assigns a fresh request id to each proposal.
                env.request_id = None;
                env
            })
            .collect(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (single_node, runs) = rt.block_on(async {
        say(progress, "one-node cluster");
        let single = measure_cluster(
            &scratch.path().join("single"),
            1,
            args,
            &payloads,
            &baseline,
            progress,
        )
        .await?;
        say(progress, format_args!("{}-node cluster", args.nodes));
        let runs = measure_cluster(
            &scratch.path().join("cluster"),
            args.nodes,
            args,
            &payloads,
            &baseline,
            progress,
        )
        .await?;
        anyhow::Ok((single, runs))
    })?;
    let report = ClusterReport {
        baseline,
        nodes: args.nodes,
        single_node,
        runs,
    };
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&report, out)?;
    }
    Ok(())
}

async fn start_node(
    dir: &Path,
    join: Option<String>,
    batch: BatchLimits,
) -> anyhow::Result<(Node, tokio::sync::oneshot::Sender<()>)> {
    let mut settings = NodeSettings::loopback(dir);
    settings.join = join;
    settings.batch = batch;
    let listener = tokio::net::TcpListener::bind(settings.http).await?;
    let addr = listener.local_addr()?;
    let node = Node::start(settings, addr).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = crate::http::router(node.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    Ok((node, stop_tx))
}

async fn measure_cluster(
    dir: &Path,
    n: usize,
    args: &BenchClusterArgs,
    payloads: &Arc<Vec<Envelope>>,
    baseline: &Baseline,
    progress: bool,
) -> anyhow::Result<Vec<ClusterRun>> {
    let mut nodes = Vec::new();
    let limits = BatchLimits {
        in_flight: args.batch_in_flight,
        max_events: args.batch_max_events,
        ..BatchLimits::default()
    };
    let first = start_node(&dir.join("n0"), None, limits).await?;
    let url = first.0.http_url().to_string();
    nodes.push(first);
    for i in 1..n {
        nodes.push(start_node(&dir.join(format!("n{i}")), Some(url.clone()), limits).await?);
    }
    let leader = nodes[0].0.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = leader.status();
        if st.voters.len() == n && st.leader == Some(leader.node_id()) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the cluster did not form: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut runs = Vec::new();
    for &clients in &args.clients {
        say(progress, format_args!("  {clients} clients"));
        let before = leader.store().log().stats();
        let run = closed_loop(&leader, clients, args.duration, payloads).await?;
        let after = leader.store().log().stats();
        let entries = (after.entries - before.entries) as f64;
        let fsyncs = after.fsyncs - before.fsyncs;
        let batches = after.batches - before.batches;
        let (events, all_events, secs, hist) = run;
        let lat = Latency::from_histogram(&hist);
        let eps = events as f64 / secs;
        runs.push(ClusterRun {
            clients,
            events_per_s: eps,
            p50_us: lat.p50_us,
            p99_us: lat.p99_us,
            p999_us: lat.p999_us,
            max_us: lat.max_us,
            events,
            ratio_to_baseline: (baseline.overwrite_fdatasync_iops > 0.0)
                .then(|| eps / baseline.overwrite_fdatasync_iops),
            leader_entries_per_fsync: (fsyncs > 0).then(|| entries / fsyncs as f64),
            leader_entries_per_batch: (batches > 0).then(|| entries / batches as f64),
            events_per_entry: (entries > 0.0).then(|| all_events as f64 / entries),
        });
    }
    for (node, stop) in nodes.into_iter().rev() {
        let _ = stop.send(());
        node.shutdown().await?;
    }
    Ok(runs)
}

/// `clients` tasks propose back to back for warm-up + `duration`; returns events committed in
/// the measured window, events committed in all (warm-up included), the window's length in
/// seconds and its latency histogram.
async fn closed_loop(
    leader: &Node,
    clients: usize,
    duration: Duration,
    payloads: &Arc<Vec<Envelope>>,
) -> anyhow::Result<(u64, u64, f64, Histogram<u64>)> {
    let warmup = (duration / 10).min(Duration::from_millis(500));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // One sequence for every run of the process: no event repeats one of an earlier run.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (node, measuring, stop, payloads) = (
            leader.clone(),
            measuring.clone(),
            stop.clone(),
            payloads.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut events = 0u64;
            let mut all = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let mut env = payloads[n as usize % payloads.len()].clone();
                hearth_proto::sample::make_distinct(&mut env, n);
                let payload = Bytes::from(env.encode_to_vec());
                let t = Instant::now();
                node.propose(payload)
                    .await
                    .map_err(|e| anyhow::anyhow!("write failed: {e}"))?;
                all += 1;
                if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    let _ = hist.record(micros(t.elapsed()));
                    events += 1;
                }
            }
            anyhow::Ok((events, all, hist))
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let mut hist = new_histogram();
    let mut events = 0;
    let mut all = 0;
    for t in tasks {
        let (e, a, h) = t.await.context("bench client")??;
        events += e;
        all += a;
        hist.add(&h).context("merging histograms")?;
    }
    Ok((events, all, secs, hist))
}

fn write_table(r: &ClusterReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "disk baseline: overwrite 4 KiB + fdatasync {:.0} IOPS (p50 {} µs), extend {:.0} IOPS",
        r.baseline.overwrite_fdatasync_iops, r.baseline.overwrite_p50_us, r.baseline.fdatasync_iops
    )?;
    writeln!(
        out,
        "{:>5} {:>7} {:>10} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9}",
        "nodes",
        "clients",
        "events/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "×baseline",
        "×1 node",
        "ev/entry"
    )?;
    for (nodes, runs) in [(1, &r.single_node), (r.nodes, &r.runs)] {
        for run in runs.iter() {
            let single = r
                .single_node
                .iter()
                .find(|s| s.clients == run.clients)
                .map(|s| run.events_per_s / s.events_per_s.max(f64::MIN_POSITIVE));
            writeln!(
                out,
                "{:>5} {:>7} {:>10.0} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9}",
                nodes,
                run.clients,
                run.events_per_s,
                run.p50_us,
                run.p99_us,
                run.p999_us,
                run.ratio_to_baseline
                    .map_or("-".into(), |x| format!("{x:.2}")),
                single.map_or("-".into(), |x| format!("{x:.2}")),
                run.events_per_entry
                    .map_or("-".into(), |x| format!("{x:.1}")),
            )?;
        }
    }
    Ok(())
}
