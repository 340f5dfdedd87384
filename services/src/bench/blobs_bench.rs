//! `hearth bench blobs`: PUT and GET throughput and latency of one node over HTTP on loopback.
//!
//! The node is a real `hearth serve` child process (this binary) with a fixed 4+3 code, its own
//! data directory in a scratch directory, and free ports; the clients run in this process, so
//! the CPU each side uses is measured separately (the client's share of the CPU time of both);
//! each client is one bare keep-alive connection ([`HttpConn`](super::http_conn::HttpConn)).
//! For each size and client count: a closed-loop PUT run of distinct blobs, then a GET run over
//! the blobs it stored; for blobs of 16 MiB and more also a degraded GET (3 of the 7 shard files
//! deleted before each request, so every read rebuilds). The disk baseline is `hearth bench
//! log`'s plus the bandwidth of 1 MiB writes each followed by fdatasync.

use super::http_conn::HttpConn;
use super::report::{micros, new_histogram, Baseline, Latency};
use super::{disk, say};
use anyhow::{bail, Context as _};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use hyper::Method;
use serde::Serialize;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sizes from this one up also get a degraded GET run.
const DEGRADED_FROM: u64 = 16 << 20;
/// Disk a PUT run leaves free beyond its uploads in flight: the node's log reserve and the
/// blobs the run stores.
const PUT_HEADROOM: u64 = 3 << 30;
/// Degraded GETs per run.
const DEGRADED_READS: usize = 5;

/// Arguments of `hearth bench blobs`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchBlobsArgs {
    /// Directory for the node's data directory (a fresh temporary directory inside it is used
    /// and removed). Default: the system's temporary directory.
    #[arg(long, env = "HEARTH_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Blob sizes, e.g. `4KiB,1MiB,64MiB`.
    #[arg(long, value_delimiter = ',', default_value = "4KiB,1MiB,64MiB", value_parser = parse_size)]
    pub sizes: Vec<u64>,
    /// Closed-loop client counts, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
    /// Measured time per run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `4096`, `4KiB`, `1MiB`, `2GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((t, 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 4096, 4KiB, 1MiB, 2GiB)"))
}

/// The disk figures of this benchmark.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BlobBaseline {
    /// 4 KiB write + fdatasync IOPS, extending a file.
    pub fdatasync_iops: f64,
    /// 1 MiB write + fdatasync bandwidth, MB/s.
    pub fsync_write_mb_per_s: f64,
    /// The full `bench log` baseline.
    pub log: Baseline,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct BlobRun {
    /// `put`, `get` or `get_degraded`.
    pub op: &'static str,
    /// Blob size.
    pub size_bytes: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests completed per second.
    pub req_per_s: f64,
    /// Blob bytes per second, MB/s.
    pub mb_per_s: f64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// p99 latency, µs.
    pub p99_us: u64,
    /// Requests completed.
    pub requests: u64,
    /// The clients' share of the CPU time used by clients and node together.
    pub client_cpu_share: Option<f64>,
}

/// The whole report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct BlobReport {
    /// Disk figures.
    pub baseline: BlobBaseline,
    /// The runs.
    pub runs: Vec<BlobRun>,
    /// The node's peak resident memory, KiB.
    pub server_peak_rss_kib: Option<u64>,
    /// Runs left out, and why (a disk too small for that many uploads at once).
    pub skipped: Vec<String>,
}

/// A `hearth serve` child process of a benchmark; killed (and reaped) on every way out.
pub(crate) struct NodeProcess {
    child: Child,
    pub(crate) url: String,
    data: PathBuf,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeProcess {
    fn start(data: &Path) -> anyhow::Result<NodeProcess> {
        // Reads measure the shard path (and the degraded read is not served from memory).
        Self::start_with(data, &["--erasure", "4+3", "--cache-bytes", "0"])
    }

    /// Starts `hearth serve --data-dir DATA` on free loopback ports with `extra` arguments and
    /// waits until it runs.
    pub(crate) fn start_with(data: &Path, extra: &[&str]) -> anyhow::Result<NodeProcess> {
        let mut args = vec!["--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0"];
        args.extend_from_slice(extra);
        Self::start_args(data, &args)
    }

    /// Starts `hearth serve --data-dir DATA ARGS` (listeners included in `args`) and waits
    /// until it runs.
    pub(crate) fn start_args(data: &Path, args: &[&str]) -> anyhow::Result<NodeProcess> {
        let exe = std::env::current_exe().context("locating the hearth binary")?;
        let mut child = Command::new(exe)
            .args(["serve", "--data-dir"])
            .arg(data)
            .args(args)
            .env_remove("HEARTH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting hearth serve")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut node = NodeProcess {
            child,
            url: String::new(),
            data: data.to_path_buf(),
        };
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading the node's output")?;
            if let Some(url) = line.strip_prefix("http listening on ") {
                node.url = url.to_string();
            }
            if line.starts_with("running") {
                break;
            }
        }
        if node.url.is_empty() {
            bail!("the node did not start");
        }
        Ok(node)
    }

    /// User + system CPU seconds of the node so far.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may contain spaces) start after ") ".
        let rest = stat.rsplit_once(") ")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks > 0.0).then(|| (utime + stime) / ticks)
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// The node's resident memory now, KiB.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits (at most 60 s) until all 7 shard files of `hash` exist and no rebuild is running.
    async fn wait_for_shards(&self, hash: &str) -> anyhow::Result<()> {
        let dir = self.shard_path(hash, 0).with_file_name("");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let names: Vec<String> = std::fs::read_dir(&dir)
                .with_context(|| format!("list {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            let complete = (0..7).all(|i| names.contains(&i.to_string()));
            if complete && !names.iter().any(|n| n.ends_with(".rebuild")) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "shards of {hash} not rebuilt in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn shard_path(&self, hash: &str, i: u32) -> PathBuf {
        self.data
            .join("shards/blobs")
            .join(&hash[..2])
            .join(hash)
            .join(i.to_string())
    }
}

/// User + system CPU seconds of this process so far.
fn own_cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is writable memory of the right type; getrusage fills it when it returns 0.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: getrusage returned 0.
    let ru = unsafe { ru.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Runs the benchmark and prints the report.
pub fn run_blobs(args: &BenchBlobsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.sizes.is_empty(),
        "--sizes must name at least one size"
    );
    super::check_clients(&args.clients)?;
    let scratch = super::scratch_dir(args.dir.as_deref(), "hearth-bench-blobs-")?;
    let progress = std::io::stderr().is_terminal();
    say(progress, "disk baseline");
    let log = disk::measure(scratch.path())?;
    let bandwidth = disk::write_bandwidth(scratch.path())?;
    let baseline = BlobBaseline {
        fdatasync_iops: log.fdatasync_iops,
        fsync_write_mb_per_s: bandwidth,
        log,
    };
    let node = NodeProcess::start(&scratch.path().join("node"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let runs = rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .context("HTTP client")?;
        let mut runs = Vec::new();
        let mut skipped = Vec::new();
        for &size in &args.sizes {
            let base: Bytes = (0..size)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into();
            let mut stored: Vec<String> = Vec::new();
            for &clients in &args.clients {
                // Every upload in flight holds its shards (7/4 of its size) on disk, and the
                // node keeps its log reserve: a run that cannot fit would measure refusals.
                let free = crate::fsutil::free_bytes(scratch.path()).unwrap_or(u64::MAX);
                let needs = (clients as u64 * 2 + 2).saturating_mul(size) + PUT_HEADROOM;
                if needs > free {
                    skipped.push(format!(
                        "PUT {size} bytes with {clients} clients: needs ~{:.1} GB free, {:.1} GB are",
                        needs as f64 / 1e9,
                        free as f64 / 1e9
                    ));
                    continue;
                }
                say(
                    progress,
                    format_args!("PUT {size} bytes, {clients} clients"),
                );
                let (run, hashes) = measure(
                    &node,
                    "put",
                    size,
                    clients,
                    args.duration,
                    &base,
                    &[],
                )
                .await?;
                stored.extend(hashes);
                runs.push(run);
            }
            anyhow::ensure!(!stored.is_empty(), "no blob of {size} bytes was stored");
            for &clients in &args.clients {
                say(
                    progress,
                    format_args!("GET {size} bytes, {clients} clients"),
                );
                let (run, _) = measure(
                    &node,
                    "get",
                    size,
                    clients,
                    args.duration,
                    &base,
                    &stored,
                )
                .await?;
                runs.push(run);
            }
            if size >= DEGRADED_FROM {
                say(progress, format_args!("degraded GET {size} bytes"));
                runs.push(degraded(&node, &client, size, &stored[0]).await?);
            }
        }
        anyhow::Ok((runs, skipped))
    })?;
    let (runs, skipped) = runs;
    let report = BlobReport {
        baseline,
        runs,
        server_peak_rss_kib: node.peak_rss_kib(),
        skipped,
    };
    drop(node);
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&report, out)?;
    }
    Ok(())
}

/// A distinct body of `size` bytes: `base` with the first 16 bytes replaced by `(tag, seq)`,
/// as pieces that share `base`'s memory.
fn body(base: &Bytes, tag: u64, seq: u64) -> Vec<Bytes> {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&tag.to_le_bytes());
    head[8..].copy_from_slice(&seq.to_le_bytes());
    let n = base.len().min(16);
    vec![Bytes::copy_from_slice(&head[..n]), base.slice(n..)]
}

async fn measure(
    node: &NodeProcess,
    op: &'static str,
    size: u64,
    clients: usize,
    duration: Duration,
    base: &Bytes,
    stored: &[String],
) -> anyhow::Result<(BlobRun, Vec<String>)> {
    static TAG: AtomicU64 = AtomicU64::new(1);
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = (own_cpu_seconds(), node.cpu_seconds());
    let start = Instant::now();
    let stored = Arc::new(stored.to_vec());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (stop, base, stored) = (stop.clone(), base.clone(), stored.clone());
        let url = node.url.clone();
        let tag = TAG.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let mut conn = HttpConn::connect(&url).await?;
            let mut hist = new_histogram();
            let mut hashes = Vec::new();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if op == "put" {
                    let reply = conn
                        .expect_ok(Method::PUT, "/v1/blobs", body(&base, tag, seq), true)
                        .await?;
                    let reply: crate::http::blobs::BlobReply =
                        serde_json::from_slice(reply.body.as_deref().unwrap_or_default())
                            .context("the PUT's answer")?;
                    hashes.push(reply.hash);
                } else {
                    let hash = &stored[(c + seq as usize * clients) % stored.len()];
                    let path = format!("/v1/blobs/{hash}");
                    let got = conn
                        .expect_ok(Method::GET, &path, Vec::new(), false)
                        .await?
                        .len;
                    if got != size {
                        bail!("GET returned {got} bytes, expected {size}");
                    }
                }
                let _ = hist.record(micros(t.elapsed()));
                seq += 1;
            }
            anyhow::Ok((hist, hashes))
        }));
    }
    // Large blobs take long per request: run until the duration and at least one request each.
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut hist = new_histogram();
    let mut hashes = Vec::new();
    for t in tasks {
        let (h, mut hs) = t.await.context("bench client")??;
        hist.add(&h).context("merging histograms")?;
        hashes.append(&mut hs);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((
        run_of(op, size, clients, secs, &hist, cpu_share(node, cpu_before)),
        hashes,
    ))
}

fn cpu_share(node: &NodeProcess, before: (f64, Option<f64>)) -> Option<f64> {
    let client = own_cpu_seconds() - before.0;
    let server = node.cpu_seconds()? - before.1?;
    (client + server > 0.0).then(|| client / (client + server))
}

fn run_of(
    op: &'static str,
    size: u64,
    clients: usize,
    secs: f64,
    hist: &Histogram<u64>,
    client_cpu_share: Option<f64>,
) -> BlobRun {
    let lat = Latency::from_histogram(hist);
    let requests = hist.len();
    let req_per_s = requests as f64 / secs;
    BlobRun {
        op,
        size_bytes: size,
        clients,
        req_per_s,
        mb_per_s: req_per_s * size as f64 / 1e6,
        p50_us: lat.p50_us,
        p99_us: lat.p99_us,
        requests,
        client_cpu_share,
    }
}

/// GETs of `hash` with 3 of its 7 shard files deleted before each one (reads repair them).
async fn degraded(
    node: &NodeProcess,
    client: &reqwest::Client,
    size: u64,
    hash: &str,
) -> anyhow::Result<BlobRun> {
    let mut hist = new_histogram();
    let cpu_before = (own_cpu_seconds(), node.cpu_seconds());
    let mut secs = 0.0;
    for _ in 0..DEGRADED_READS {
        // The previous read's background rebuild finishes first, so each read starts from
        // exactly 3 lost shards (and the rebuild this read starts runs alongside it).
        node.wait_for_shards(hash).await?;
        for i in [0, 3, 5] {
            let p = node.shard_path(hash, i);
            std::fs::remove_file(&p).with_context(|| format!("remove {}", p.display()))?;
        }
        let t = Instant::now();
        let resp = client
            .get(format!("{}/v1/blobs/{hash}", node.url))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("degraded GET answered {}", resp.status());
        }
        // Counted as it streams, like the healthy GETs (collecting 64 MiB in the client took
        // as much CPU as the node's rebuilding, and the two share the cores).
        let mut got = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(piece) = stream.next().await {
            got += piece?.len() as u64;
        }
        anyhow::ensure!(got == size, "degraded GET returned {got} bytes");
        secs += t.elapsed().as_secs_f64();
        let _ = hist.record(micros(t.elapsed()));
    }
    Ok(run_of(
        "get_degraded",
        size,
        1,
        secs,
        &hist,
        cpu_share(node, cpu_before),
    ))
}

fn write_table(r: &BlobReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "disk baseline: 4 KiB write + fdatasync {:.0} IOPS; 1 MiB write + fdatasync {:.0} MB/s",
        r.baseline.fdatasync_iops, r.baseline.fsync_write_mb_per_s
    )?;
    writeln!(
        out,
        "{:<13} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "op", "size", "clients", "req/s", "MB/s", "p50 µs", "p99 µs", "client%"
    )?;
    for run in &r.runs {
        writeln!(
            out,
            "{:<13} {:>10} {:>7} {:>9.0} {:>9.1} {:>9} {:>9} {:>8}",
            run.op,
            run.size_bytes,
            run.clients,
            run.req_per_s,
            run.mb_per_s,
            run.p50_us,
            run.p99_us,
            run.client_cpu_share
                .map_or("-".into(), |x| format!("{:.0}%", x * 100.0)),
        )?;
    }
    if let Some(kib) = r.server_peak_rss_kib {
        writeln!(out, "node peak RSS: {:.1} MB", kib as f64 / 1024.0)?;
    }
    for why in &r.skipped {
        writeln!(out, "skipped: {why}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("7B"), Ok(7));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4KB").is_err());
    }
}
