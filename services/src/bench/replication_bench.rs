//! `hearth bench replication`: how long a large blob takes from **accepted** to **durable** on
//! a cluster of real `hearth serve` processes on loopback (default 3 nodes, the `auto` code:
//! 2+1), against the disk: the time to write the blob's bytes × (k+m)/k with fdatasync (1 MiB
//! writes, each followed by `fdatasync`), which is what the members must write between them.
//!
//! Each round PUTs a fresh blob to the leader (answered at **accepted**: the writer holds every
//! shard), then polls its status until the tier is **durable** (the leader placed the shards,
//! the holders fetched, verified, fsynced and confirmed them). The target is accepted →
//! durable ≤ 2 × the disk time.

use super::blobs_bench::{parse_size, NodeProcess};
use super::{disk, say};
use anyhow::Context as _;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `hearth bench replication`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchReplicationArgs {
    /// Directory for the nodes' data directories (a fresh temporary directory inside it is
    /// used and removed). Default: the system's temporary directory.
    #[arg(long, env = "HEARTH_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Blob size.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub size: u64,
    /// Cluster size (2 to 7).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Blobs to put, one after the other.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationReport {
    /// Blob size, bytes.
    pub size: u64,
    /// Cluster size.
    pub nodes: usize,
    /// The code the blobs got.
    pub k: u32,
    /// Parity shards.
    pub m: u32,
    /// 1 MiB write + fdatasync bandwidth of the disk, MB/s.
    pub fsync_write_mb_per_s: f64,
    /// Seconds to write size × (k+m)/k at that bandwidth: the disk baseline.
    pub disk_seconds: f64,
    /// PUT (to accepted) seconds, per round.
    pub put_seconds: Vec<f64>,
    /// Accepted → durable seconds, per round.
    pub durable_seconds: Vec<f64>,
    /// Seconds to write size × 1.75 (the 4+3 expansion) at that bandwidth: the issue's
    /// baseline, whatever code the blobs got.
    pub target_disk_seconds: f64,
    /// Median accepted → durable ÷ `target_disk_seconds` (target ≤ 2).
    pub median_target_ratio: f64,
    /// Best and median accepted → durable as a ratio of the disk baseline.
    pub best_ratio: f64,
    /// Median ratio.
    pub median_ratio: f64,
}

/// Runs the benchmark and prints the report.
pub fn run_replication(args: &BenchReplicationArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!((2..=7).contains(&args.nodes), "--nodes must be 2 to 7");
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(
        args.size > 8 << 10,
        "--size must be above the inline threshold (8 KiB)"
    );
    let verbose = std::io::stderr().is_terminal();
    let scratch = super::scratch_dir(args.dir.as_deref(), "hearth-bench-replication-")?;
    say(verbose, "measuring the disk (1 MiB write + fdatasync)");
    let bw = disk::write_bandwidth(scratch.path())?;
    say(verbose, format!("starting {} nodes", args.nodes));
    let first = NodeProcess::start_with(&scratch.path().join("n0"), &[])?;
    let leader = first.url.clone();
    let mut nodes = vec![first];
    for i in 1..args.nodes {
        nodes.push(NodeProcess::start_with(
            &scratch.path().join(format!("n{i}")),
            &["--join", &leader],
        )?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()?;
        wait_voters(&c, &leader, args.nodes).await?;
        let mut put_seconds = Vec::new();
        let mut durable_seconds = Vec::new();
        let (mut k, mut m) = (0, 0);
        for round in 0..args.rounds {
            let data: Vec<u8> = (0..args.size)
                .map(|i| ((i * 2_654_435_761 + round as u64 * 7_919) >> 11) as u8)
                .collect();
            let started = Instant::now();
            let r = c
                .put(format!("{leader}/v1/blobs"))
                .body(data)
                .send()
                .await
                .context("put")?;
            anyhow::ensure!(r.status().is_success(), "put: {}", r.status());
            let reply: crate::http::blobs::BlobReply = r.json().await?;
            let accepted = Instant::now();
            put_seconds.push((accepted - started).as_secs_f64());
            (k, m) = (reply.k, reply.m);
            loop {
                let st: crate::http::blobs::BlobStatus = c
                    .get(format!("{leader}/v1/blobs/{}/status", reply.hash))
                    .send()
                    .await?
                    .json()
                    .await?;
                if st.tier != "accepted" {
                    break;
                }
                anyhow::ensure!(
                    accepted.elapsed() < Duration::from_secs(600),
                    "blob not durable after 600 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            durable_seconds.push(accepted.elapsed().as_secs_f64());
            say(
                verbose,
                format!(
                    "round {round}: put {:.2} s, accepted → durable {:.2} s",
                    put_seconds[round], durable_seconds[round]
                ),
            );
        }
        let disk_seconds = args.size as f64 * f64::from(k + m) / f64::from(k.max(1)) / (bw * 1e6);
        let mut sorted = durable_seconds.clone();
        sorted.sort_by(f64::total_cmp);
        let ratio = |x: f64| {
            if disk_seconds > 0.0 {
                x / disk_seconds
            } else {
                0.0
            }
        };
        let target_disk_seconds = args.size as f64 * 1.75 / (bw * 1e6);
        Ok::<_, anyhow::Error>(ReplicationReport {
            target_disk_seconds,
            median_target_ratio: sorted[sorted.len() / 2]
                / target_disk_seconds.max(f64::MIN_POSITIVE),
            size: args.size,
            nodes: args.nodes,
            k,
            m,
            fsync_write_mb_per_s: bw,
            disk_seconds,
            best_ratio: ratio(sorted[0]),
            median_ratio: ratio(sorted[sorted.len() / 2]),
            put_seconds,
            durable_seconds,
        })
    })?;
    drop(nodes);
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "disk: 1 MiB write + fdatasync {:.0} MB/s → {} bytes × {}/{} in {:.2} s",
            report.fsync_write_mb_per_s,
            report.size,
            report.k + report.m,
            report.k,
            report.disk_seconds
        )?;
        for (i, (p, d)) in report
            .put_seconds
            .iter()
            .zip(&report.durable_seconds)
            .enumerate()
        {
            writeln!(
                out,
                "round {i}: PUT (accepted) {p:.2} s, accepted → durable {d:.2} s = {:.2} × disk",
                d / report.disk_seconds.max(f64::MIN_POSITIVE)
            )?;
        }
        writeln!(
            out,
            "accepted → durable: best {:.2} × disk, median {:.2} × disk; median {:.2} × the time \
             to write {} bytes × 1.75 with fdatasync ({:.2} s; target ≤ 2)",
            report.best_ratio,
            report.median_ratio,
            report.median_target_ratio,
            report.size,
            report.target_disk_seconds
        )?;
    }
    Ok(())
}

async fn wait_voters(c: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = c.get(format!("{url}/v1/admin/cluster")).send().await {
            if let Ok(st) = r.json::<crate::node::api::ClusterStatus>().await {
                if st.voters.len() == n && st.leader.is_some() {
                    return Ok(());
                }
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the cluster did not form in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
