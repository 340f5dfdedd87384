//! `hearth bench docs`: documents on real `hearth serve` processes on loopback.
//!
//! 1. **PUT rate**: one node, `--clients` closed-loop HTTP clients, each on its own document,
//!    each PUT a small JSON change (a counter and a line of text); changes committed per
//!    second, latency p50/p99, and the ratio to the disk's fdatasync rate (the baseline).
//! 2. **Offline device**: a cluster node and a device node (`--sync-with`) sharing
//!    `--sync-docs` documents; the cluster stops, the device changes every document, the
//!    cluster comes back on the same address; the time from its restart to every change being
//!    on the cluster.
//! 3. **Memory**: `--memory-docs` small documents created on a fresh node; its resident
//!    memory afterwards (documents live on disk).

use super::blobs_bench::NodeProcess;
use super::{disk, say};
use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `hearth bench docs`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchDocsArgs {
    /// Directory for the nodes' data directories (a fresh temporary directory inside it is
    /// used and removed). Default: the system's temporary directory.
    #[arg(long, env = "HEARTH_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Concurrent clients for the PUT rate, each on its own document.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Documents each PUT client writes to in turn (its own; no two clients share one). With
    /// 1, each client's document takes every one of its changes, so its history grows by
    /// thousands of changes during the run and each change costs more than the last.
    #[arg(long, default_value_t = 1)]
    pub docs_per_client: usize,
    /// Seconds of PUTs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Documents changed offline on the device (0 skips the part).
    #[arg(long, default_value_t = 1000)]
    pub sync_docs: usize,
    /// Documents for the memory figure (0 skips the part).
    #[arg(long, default_value_t = 100_000)]
    pub memory_docs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct DocsReport {
    /// 4 KiB write + fdatasync per second on this disk.
    pub fdatasync_iops: f64,
    /// Clients.
    pub clients: usize,
    /// Documents each client wrote to in turn.
    pub docs_per_client: usize,
    /// Changes each document took on average during the run (its history grows with them).
    pub changes_per_doc: f64,
    /// Changes committed per second (target ≥ 5,000).
    pub changes_per_s: f64,
    /// `changes_per_s` ÷ `fdatasync_iops`.
    pub ratio_to_fdatasync: f64,
    /// PUT latency p50, ms.
    pub put_p50_ms: f64,
    /// PUT latency p99, ms.
    pub put_p99_ms: f64,
    /// Documents changed offline on the device.
    pub sync_docs: usize,
    /// Seconds from the cluster's restart to all of them being on it (target ≤ 5).
    pub sync_seconds: Option<f64>,
    /// Documents created for the memory figure.
    pub memory_docs: usize,
    /// The node's resident memory after creating them, MB (target ≤ 300).
    pub memory_rss_mb: Option<f64>,
    /// Documents created per second while doing so.
    pub creates_per_s: Option<f64>,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()?)
}

async fn create(c: &reqwest::Client, url: &str, body: serde_json::Value) -> anyhow::Result<String> {
    let r = c.post(format!("{url}/v1/docs")).json(&body).send().await?;
    anyhow::ensure!(r.status().is_success(), "create: {}", r.status());
    let w: crate::http::docs::DocWriteReply = r.json().await?;
    Ok(w.id)
}

async fn put(
    c: &reqwest::Client,
    url: &str,
    id: &str,
    body: &serde_json::Value,
) -> anyhow::Result<usize> {
    let r = c
        .put(format!("{url}/v1/docs/{id}"))
        .json(body)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "put: {}", r.status());
    let w: crate::http::docs::DocWriteReply = r.json().await?;
    Ok(w.changes)
}

/// Runs the benchmark and prints the report.
pub fn run_docs(args: &BenchDocsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(args.clients >= 1, "--clients must be at least 1");
    let docs_per_client = args.docs_per_client.max(1);
    let verbose = std::io::stderr().is_terminal();
    let scratch = super::scratch_dir(args.dir.as_deref(), "hearth-bench-docs-")?;
    say(verbose, "measuring the disk (4 KiB write + fdatasync)");
    let baseline = disk::measure(scratch.path())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let c = client()?;
        // 1. PUT rate.
        say(
            verbose,
            format!("PUT rate: {} clients, {} s", args.clients, args.seconds),
        );
        let node = NodeProcess::start_with(&scratch.path().join("put"), &[])?;
        let url = Arc::new(node.url.clone());
        let mut ids = Vec::new();
        for i in 0..args.clients {
            let mut mine = Vec::new();
            for _ in 0..docs_per_client {
                mine.push(create(&c, &url, json!({"client": i, "n": 0, "note": ""})).await?);
            }
            ids.push(mine);
        }
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (i, mine) in ids.into_iter().enumerate() {
            let (c, url) = (c.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new(3)?;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let id = &mine[n as usize % mine.len()];
                    n += 1;
                    let body = json!({"client": i, "n": n, "note": format!("change {n}")});
                    let t = Instant::now();
                    let changed = put(&c, &url, id, &body).await?;
                    hist.record(t.elapsed().as_micros() as u64)?;
                    anyhow::ensure!(changed == 1, "a PUT recorded {changed} changes");
                }
                anyhow::Ok(hist)
            }));
        }
        let mut hist = Histogram::<u64>::new(3)?;
        for t in tasks {
            hist.add(t.await??)?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let changes_per_s = hist.len() as f64 / elapsed;
        drop(node);

        // 2. Offline device.
        let sync_seconds = if args.sync_docs > 0 {
            say(
                verbose,
                format!("offline device: {} documents", args.sync_docs),
            );
            Some(offline_device(&c, scratch.path(), args.sync_docs).await?)
        } else {
            None
        };

        // 3. Memory.
        let (memory_rss_mb, creates_per_s) = if args.memory_docs > 0 {
            say(
                verbose,
                format!("memory: creating {} documents", args.memory_docs),
            );
            let node = NodeProcess::start_with(&scratch.path().join("memory"), &[])?;
            let url = Arc::new(node.url.clone());
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..args.clients {
                let (c, url, next) = (c.clone(), url.clone(), next.clone());
                let total = args.memory_docs;
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= total {
                            return anyhow::Ok(());
                        }
                        create(
                            &c,
                            &url,
                            json!({"title": format!("document {i}"), "done": false}),
                        )
                        .await?;
                    }
                }));
            }
            for t in tasks {
                t.await??;
            }
            let rate = args.memory_docs as f64 / started.elapsed().as_secs_f64();
            // Let background work settle, then read the node's resident memory.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rss = node.rss_kib().map(|k| k as f64 / 1024.0);
            (rss, Some(rate))
        } else {
            (None, None)
        };
        anyhow::Ok(DocsReport {
            fdatasync_iops: baseline.fdatasync_iops,
            clients: args.clients,
            docs_per_client,
            changes_per_doc: hist.len() as f64 / (args.clients * docs_per_client) as f64,
            changes_per_s,
            ratio_to_fdatasync: changes_per_s / baseline.fdatasync_iops.max(1.0),
            put_p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
            put_p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
            sync_docs: args.sync_docs,
            sync_seconds,
            memory_docs: args.memory_docs,
            memory_rss_mb,
            creates_per_s,
        })
    })?;
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "disk baseline: {:.0} fdatasync/s",
        report.fdatasync_iops
    )?;
    writeln!(
        out,
        "document PUT, {} clients on distinct documents ({} each, {:.0} changes per document): {:.0} changes/s ({:.2} × fdatasync), p50 {:.2} ms, p99 {:.2} ms  [target ≥ 5000/s]",
        report.clients,
        report.docs_per_client,
        report.changes_per_doc,
        report.changes_per_s,
        report.ratio_to_fdatasync,
        report.put_p50_ms,
        report.put_p99_ms
    )?;
    if let Some(s) = report.sync_seconds {
        writeln!(
            out,
            "{} documents changed offline on a device: on the cluster {:.2} s after it came back  [target ≤ 5 s]",
            report.sync_docs, s
        )?;
    }
    if let (Some(mb), Some(rate)) = (report.memory_rss_mb, report.creates_per_s) {
        writeln!(
            out,
            "{} documents: node RSS {:.0} MB (created at {:.0}/s)  [target ≤ 300 MB]",
            report.memory_docs, mb, rate
        )?;
    }
    Ok(())
}

/// The offline-device scenario; answers seconds from the cluster's restart to convergence.
async fn offline_device(
    c: &reqwest::Client,
    root: &std::path::Path,
    docs: usize,
) -> anyhow::Result<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let p2p = format!("/ip4/127.0.0.1/tcp/{port}");
    let cluster_args = ["--http", "127.0.0.1:0", "--p2p", p2p.as_str()];
    let cluster_dir = root.join("sync-cluster");
    let cluster = NodeProcess::start_args(&cluster_dir, &cluster_args)?;
    let info: crate::node::api::NodeInfo = c
        .get(format!("{}/v1/admin/node", cluster.url))
        .send()
        .await?
        .json()
        .await?;
    let mut ids = Vec::with_capacity(docs);
    for i in 0..docs {
        ids.push(
            create(
                c,
                &cluster.url,
                json!({"title": format!("doc {i}"), "n": 0}),
            )
            .await?,
        );
    }
    let device = NodeProcess::start_with(
        &root.join("sync-device"),
        &["--sync-with", &format!("{p2p}/p2p/{}", info.peer_id)],
    )?;
    let dev_info: crate::node::api::NodeInfo = c
        .get(format!("{}/v1/admin/node", device.url))
        .send()
        .await?
        .json()
        .await?;
    let r = c
        .post(format!("{}/v1/admin/devices", cluster.url))
        .json(&json!({"peer_id": dev_info.peer_id, "name": "bench", "write": ids}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "pair: {}", r.status());
    // Wait until the device holds every document.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let list: crate::http::docs::DocList = c
            .get(format!("{}/v1/docs?limit=1000", device.url))
            .send()
            .await?
            .json()
            .await?;
        if list.docs.len() >= docs.min(1000) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the device did not receive the documents"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(cluster); // offline
    for (i, id) in ids.iter().enumerate() {
        put(
            c,
            &device.url,
            id,
            &json!({"title": format!("doc {i}"), "n": 1}),
        )
        .await?;
    }
    let cluster = NodeProcess::start_args(&cluster_dir, &cluster_args).context("restart")?;
    let back = Instant::now();
    let mut pending: Vec<&String> = ids.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let v: crate::http::docs::DocView = c
                .get(format!("{}/v1/docs/{id}", cluster.url))
                .send()
                .await?
                .json()
                .await?;
            if v.value["n"] != json!(1) {
                still.push(id);
            }
        }
        pending = still;
        anyhow::ensure!(
            back.elapsed() < Duration::from_secs(300),
            "no convergence in 300 s"
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let seconds = back.elapsed().as_secs_f64();
    drop((device, cluster));
    Ok(seconds)
}
