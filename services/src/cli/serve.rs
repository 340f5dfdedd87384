//! `hearth serve`: run a node on a data directory until SIGTERM or Ctrl-C.
//!
//! Settings come from flags, then `HEARTH_*` environment variables (clap reads both; a flag wins),
//! then the TOML file given with `--config` (same names, `snake_case`), then the defaults in
//! [`NodeSettings`]. An empty data directory without `--join` founds a one-member cluster; with
//! `--join URL` it asks that member to add it. On a signal the node stops accepting requests,
//! lets in-flight ones finish, stops raft, flushes, and exits 0.

use crate::blobs::ErasurePolicy;
use crate::hex::encode as hex;
use crate::node::{Node, NodeSettings, Retention};
use anyhow::Context as _;
use clap::Args;
use libp2p::Multiaddr;
use serde::Deserialize;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Arguments of `hearth serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// The node's data directory (created if missing) [default: ./hearth-data].
    #[arg(long, env = "HEARTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listener (API and admin) [default: 127.0.0.1:7070]; port 0 picks a free port.
    #[arg(long, env = "HEARTH_HTTP")]
    pub http: Option<SocketAddr>,
    /// libp2p listener [default: /ip4/127.0.0.1/tcp/7071]; port 0 picks a free port.
    #[arg(long, env = "HEARTH_P2P")]
    pub p2p: Option<Multiaddr>,
    /// Join the cluster of the member at this HTTP URL (only for a data directory that belongs
    /// to no cluster yet).
    #[arg(long, env = "HEARTH_JOIN")]
    pub join: Option<String>,
    /// Stay a learner after joining (laptops that sleep should not be voters).
    #[arg(long, env = "HEARTH_LEARNER")]
    pub learner: bool,
    /// Token admin calls must carry; required when --http is not on loopback.
    #[arg(long, env = "HEARTH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Token writes (events, blobs) may carry instead of the admin token when --http is not on
    /// loopback.
    #[arg(long, env = "HEARTH_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Build a raft snapshot every this many entries [default: 100000].
    #[arg(long, env = "HEARTH_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Keep every log entry (keep-all, the default: audits start at the first entry) or purge
    /// entries a snapshot covers (purge).
    #[arg(long, env = "HEARTH_RETENTION", value_enum)]
    pub retention: Option<Retention>,
    /// Most writes in flight on this node before it answers 503 [default: 4096].
    #[arg(long, env = "HEARTH_MAX_INFLIGHT")]
    pub max_inflight: Option<usize>,
    /// Most bytes of writes in flight before it answers 503 [default: 64 MiB].
    #[arg(long, env = "HEARTH_MAX_INFLIGHT_BYTES")]
    pub max_inflight_bytes: Option<usize>,
    /// Erasure code of new blobs: `auto` (from the voter count; see ARCHITECTURE.md) or a fixed
    /// `K+M` such as `4+3` [default: auto].
    #[arg(long, env = "HEARTH_ERASURE")]
    pub erasure: Option<ErasurePolicy>,
    /// Blobs up to this many bytes travel inside their committed event instead of as shards
    /// [default: 8192].
    #[arg(long, env = "HEARTH_INLINE_THRESHOLD")]
    pub inline_threshold: Option<usize>,
    /// The largest blob accepted, in bytes [default: 1 TiB].
    #[arg(long, env = "HEARTH_MAX_BLOB_BYTES")]
    pub max_blob_bytes: Option<u64>,
    /// Disk space kept free for the log, in bytes: blob writes that would use it get 507
    /// [default: 268435456 (256 MiB)].
    #[arg(long, env = "HEARTH_DISK_RESERVE")]
    pub disk_reserve: Option<u64>,
    /// Most blob uploads in flight before the node answers 503 [default: 64].
    #[arg(long, env = "HEARTH_MAX_BLOB_PUTS")]
    pub max_blob_puts: Option<usize>,
    /// Applied entries buffered for live `GET /v1/events` streams; a consumer further behind
    /// is dropped with its resume point [default: 1024].
    #[arg(long, env = "HEARTH_EVENTS_BUFFER")]
    pub events_buffer: Option<usize>,
    /// Bytes of verified stripes kept in memory for reads; 0 turns the cache off
    /// [default: 67108864 (64 MiB)].
    #[arg(long, env = "HEARTH_CACHE_BYTES")]
    pub cache_bytes: Option<u64>,
    /// With `--retention purge`: the directory purged log entries are archived to first, so an
    /// audit still replays from the first entry [default: DATA_DIR/archive/log].
    #[arg(long, env = "HEARTH_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Memory all blob reads in progress may hold at once; more reads wait, and one waiting
    /// 30 s is answered 503 [default: 268435456 (256 MiB)].
    #[arg(long, env = "HEARTH_READ_BUFFER_BYTES")]
    pub read_buffer_bytes: Option<u64>,
    /// Scrub rate: bytes per second of this node's shard files re-hashed; 0 turns scrub off
    /// [default: 16777216 (16 MiB/s)].
    #[arg(long, env = "HEARTH_SCRUB_BYTES_PER_S")]
    pub scrub_bytes_per_s: Option<u64>,
    /// Time between scrub passes, e.g. `24h` [default: 24h].
    #[arg(long, env = "HEARTH_SCRUB_EVERY", value_parser = humantime::parse_duration)]
    pub scrub_every: Option<std::time::Duration>,
    /// A member no one has seen for this long has its shards rebuilt onto the other members
    /// (`0s`: only when it is removed), e.g. `1h` [default: 1h].
    #[arg(long, env = "HEARTH_REPAIR_GRACE", value_parser = humantime::parse_duration)]
    pub repair_grace: Option<std::time::Duration>,
    /// At most one sighting of each connected member is logged per this interval [default: 60s].
    #[arg(long, env = "HEARTH_PEER_SEEN_EVERY", value_parser = humantime::parse_duration)]
    pub peer_seen_every: Option<std::time::Duration>,
    /// As a device: keep the documents this node is paired for in sync with the cluster member
    /// at this multiaddr, which ends in `/p2p/PEER_ID` (repeatable).
    #[arg(long = "sync-with", env = "HEARTH_SYNC_WITH", value_delimiter = ',')]
    pub sync_with: Vec<String>,
    /// A TOML file with any of the settings above (flags and environment variables win).
    #[arg(long, env = "HEARTH_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file's shape: the flags' names in `snake_case`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    http: Option<SocketAddr>,
    p2p: Option<String>,
    join: Option<String>,
    learner: Option<bool>,
    admin_token: Option<String>,
    api_token: Option<String>,
    snapshot_every: Option<u64>,
    retention: Option<Retention>,
    max_inflight: Option<usize>,
    max_inflight_bytes: Option<usize>,
    erasure: Option<String>,
    inline_threshold: Option<usize>,
    max_blob_bytes: Option<u64>,
    disk_reserve: Option<u64>,
    max_blob_puts: Option<usize>,
    events_buffer: Option<usize>,
    cache_bytes: Option<u64>,
    read_buffer_bytes: Option<u64>,
    archive_dir: Option<PathBuf>,
    scrub_bytes_per_s: Option<u64>,
    #[serde(default, with = "humantime_serde_opt")]
    scrub_every: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    repair_grace: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    peer_seen_every: Option<std::time::Duration>,
    sync_with: Option<Vec<String>>,
}

/// `scrub_every = "24h"` in the TOML file.
mod humantime_serde_opt {
    use serde::Deserialize as _;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

impl ServeArgs {
    /// The node settings: flags/env, then the config file, then defaults.
    pub fn settings(&self) -> anyhow::Result<NodeSettings> {
        let file = match &self.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(crate::node::settings::DEFAULT_DATA_DIR));
        let mut s = NodeSettings::new(data_dir);
        if let Some(h) = self.http.or(file.http) {
            s.http = h;
        }
        if let Some(p) = &self.p2p {
            s.p2p = p.clone();
        } else if let Some(p) = &file.p2p {
            s.p2p = p
                .parse()
                .with_context(|| format!("config file: p2p {p:?} is not a multiaddr"))?;
        }
        s.join = self.join.clone().or(file.join);
        s.learner = self.learner || file.learner.unwrap_or(false);
        s.admin_token = self.admin_token.clone().or(file.admin_token);
        s.api_token = self.api_token.clone().or(file.api_token);
        if let Some(n) = self.snapshot_every.or(file.snapshot_every) {
            s.snapshot_every = n;
        }
        if let Some(r) = self.retention.or(file.retention) {
            s.retention = r;
        }
        if let Some(n) = self.max_inflight.or(file.max_inflight) {
            s.max_inflight = n;
        }
        if let Some(n) = self.max_inflight_bytes.or(file.max_inflight_bytes) {
            s.max_inflight_bytes = n;
        }
        if let Some(e) = self.erasure {
            s.erasure = e;
        } else if let Some(e) = &file.erasure {
            s.erasure = e.parse().context("config file")?;
        }
        if let Some(n) = self.inline_threshold.or(file.inline_threshold) {
            s.inline_threshold = n;
        }
        if let Some(n) = self.max_blob_bytes.or(file.max_blob_bytes) {
            s.max_blob_bytes = n;
        }
        if let Some(n) = self.disk_reserve.or(file.disk_reserve) {
            s.disk_reserve = n;
        }
        if let Some(n) = self.max_blob_puts.or(file.max_blob_puts) {
            s.max_blob_puts = n;
        }
        if let Some(n) = self.events_buffer.or(file.events_buffer) {
            s.events_buffer = n;
        }
        if let Some(n) = self.cache_bytes.or(file.cache_bytes) {
            s.cache_bytes = n;
        }
        if let Some(d) = self.archive_dir.clone().or(file.archive_dir) {
            s.archive_dir = Some(d);
        }
        if let Some(n) = self.read_buffer_bytes.or(file.read_buffer_bytes) {
            s.read_buffer_bytes = n;
        }
        if let Some(n) = self.scrub_bytes_per_s.or(file.scrub_bytes_per_s) {
            s.scrub_bytes_per_s = n;
        }
        if let Some(d) = self.scrub_every.or(file.scrub_every) {
            s.scrub_every = d;
        }
        if let Some(d) = self.repair_grace.or(file.repair_grace) {
            s.repair_grace = d;
        }
        if let Some(d) = self.peer_seen_every.or(file.peer_seen_every) {
            s.peer_seen_every = d;
        }
        let sync_with = if self.sync_with.is_empty() {
            file.sync_with.unwrap_or_default()
        } else {
            self.sync_with.clone()
        };
        for a in sync_with {
            let addr: libp2p::Multiaddr = a
                .parse()
                .map_err(|e| anyhow::anyhow!("--sync-with {a:?}: not a multiaddr: {e}"))?;
            if crate::docs::device_sync::peer_of(&addr).is_none() {
                anyhow::bail!("--sync-with {a}: the address must end in /p2p/PEER_ID");
            }
            s.sync_with.push(addr);
        }
        s.validate().map_err(anyhow::Error::msg)?;
        Ok(s)
    }
}

/// Runs the node until a shutdown signal.
pub fn run(args: &ServeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        // Registered before anything starts: a SIGTERM during start-up then stops the node
        // cleanly once it is up, instead of killing it half-started.
        let stop = shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(settings.http)
            .await
            .with_context(|| format!("binding the HTTP listener {}", settings.http))?;
        let http_addr = listener.local_addr().context("HTTP listener address")?;
        let data = settings.data_dir.clone();
        let node = Node::start(settings, http_addr)
            .await
            .with_context(|| format!("starting the node on {}", data.display()))?;
        report_start(&node, &data, out).await?;
        writeln!(out, "running; SIGTERM or Ctrl-C stops it")?;
        out.flush()?;

        let app = crate::http::router(node.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("serving HTTP")?;
        node.shutdown().await.context("stopping the node")?;
        writeln!(out, "stopped cleanly")?;
        Ok(())
    })
}

async fn report_start(node: &Node, data: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let report = node.start_report();
    if let Some((file, offset)) = &report.torn_tail {
        writeln!(
            out,
            "recovered: dropped a torn last batch in {} at offset {offset}",
            file.display()
        )?;
    }
    let log = node.store().log();
    let log_state = match log.last() {
        Some(last) => format!(
            "event log entries {}..={}, head {} (term {})",
            log.first_index().unwrap_or(last.index),
            last.index,
            hex(&last.chain),
            last.term
        ),
        None => "event log empty".to_string(),
    };
    writeln!(
        out,
        "hearth node: peer id {}, node {}, cluster {} ({}), data {} — {log_state}",
        node.peer_id(),
        node.node_id(),
        hex(&node.cluster_id()),
        report.how,
        data.display(),
    )?;
    writeln!(out, "http listening on {}", node.http_url())?;
    for a in node.net().listen_addrs().await.unwrap_or_default() {
        writeln!(out, "p2p listening on {a}")?;
    }
    Ok(())
}

/// A future that completes on SIGTERM or Ctrl-C; SIGTERM is caught from the moment this is
/// called.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}
