//! `hearth put FILE`, `hearth get HASH [-o FILE]`, `hearth status HASH [--json]` and
//! `hearth rm HASH`: blobs through a running member's HTTP API (`status --data-dir` reads a
//! stopped node's or a replay's blob index instead: [`super::status_offline`]).
//!
//! `put` streams the file with its length, shows a progress bar on a terminal for files over
//! 4 MiB, and prints the tier, code and log index, then the hash as the last line of stdout.
//! `get` streams the blob to stdout or to FILE (written as `FILE.part`, renamed when complete),
//! checks its blake3 against the hash it asked for, and fails (leaving no FILE) otherwise.

use super::cluster::ServerArgs;
use crate::hex;
use crate::http::blobs::{BlobReply, BlobStatus, DeleteReply};
use crate::node::api::ErrorBody;
use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Files at least this large get a progress bar (on a terminal).
const PROGRESS_FROM: u64 = 4 << 20;
/// Bytes read from the file per piece.
const PIECE: usize = 1 << 20;

/// Arguments of `hearth put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The file to store.
    file: PathBuf,
    /// Wait until the blob reaches this tier (or the timeout), then report the tier reached.
    #[arg(
        long,
        value_parser = clap::builder::PossibleValuesParser::new(hearth_projections::TIERS),
        default_value = "accepted"
    )]
    wait: String,
    /// How long --wait may take (e.g. 30s, 5m; at most 10m).
    #[arg(long, default_value = "30s")]
    timeout: humantime::Duration,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The blob's hash (64 hex characters).
    hash: String,
    /// Write the blob to this file instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The blob's hash (64 hex characters).
    hash: String,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
    /// Offline: read the blob index of this data directory (a stopped node's, or a `hearth
    /// replay` output) instead of asking --server; answers as of the index it has applied.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The blob's hash (64 hex characters).
    hash: String,
    #[command(flatten)]
    server: ServerArgs,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn progress(len: u64) -> ProgressBar {
    if len < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:40}] {bytes_per_sec}, {eta} left")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn failure(resp: reqwest::Response, what: &str) -> anyhow::Error {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    anyhow::anyhow!("{what}: {status}: {}", ErrorBody::message_of(&text))
}

/// The JSON answer of a successful response; otherwise the server's error as one line.
async fn answer<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> anyhow::Result<T> {
    if !resp.status().is_success() {
        return Err(failure(resp, what).await);
    }
    resp.json::<T>()
        .await
        .with_context(|| format!("{what}: unreadable answer"))
}

/// `hearth put FILE`.
pub fn put(args: &PutArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let path = &args.file;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    let bar = progress(len);
    let url = format!(
        "{}/v1/blobs?wait={}&timeout={}ms",
        args.server.server.trim_end_matches('/'),
        args.wait,
        args.timeout.as_millis()
    );
    let reply: BlobReply = runtime()?.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let reader_bar = bar.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; PIECE];
            loop {
                let item = match file.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        reader_bar.inc(n as u64);
                        Ok(Bytes::copy_from_slice(&buf[..n]))
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut req = reqwest::Client::new()
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(t) = args.server.write_token() {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("PUT {url}"))?;
        let _ = reader.await;
        answer(resp, "put").await
    })?;
    bar.finish_and_clear();
    let code = match reply.k {
        0 => "inline".to_string(),
        k => format!("{k}+{}", reply.m),
    };
    writeln!(
        out,
        "{} {} bytes, {code}, {} at log index {}",
        path.display(),
        reply.size,
        reply.tier,
        reply.index
    )?;
    writeln!(out, "{}", reply.hash)?;
    if !hearth_projections::tier_reached(&reply.tier, &args.wait) {
        anyhow::bail!(
            "the blob is stored ({}) but reached only the {} tier within {}, not {}",
            reply.hash,
            reply.tier,
            args.timeout,
            args.wait
        );
    }
    Ok(())
}

/// `hearth get HASH`.
pub fn get(args: &GetArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (want, url) = blob_url(&args.server, &args.hash, "")?;
    let part = args.output.as_ref().map(|p| part_path(p));
    let result = runtime()?.block_on(async {
        let resp = reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            return Err(failure(resp, "get").await);
        }
        let bar = progress(resp.content_length().unwrap_or(0));
        let mut sink: Box<dyn Write> = match &part {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(&mut *out),
        };
        let mut hasher = blake3::Hasher::new();
        let mut body = resp.bytes_stream();
        while let Some(piece) = body.next().await {
            let piece = piece.context("get: the transfer broke off")?;
            hasher.update(&piece);
            sink.write_all(&piece)?;
            bar.inc(piece.len() as u64);
        }
        sink.flush()?;
        bar.finish_and_clear();
        if hasher.finalize().as_bytes()[..] != want[..] {
            bail!("get: the bytes received do not match hash {}", args.hash);
        }
        anyhow::Ok(())
    });
    match (&part, &args.output, result) {
        (Some(part), Some(output), Ok(())) => std::fs::rename(part, output)
            .with_context(|| format!("cannot rename {} to {}", part.display(), output.display())),
        (Some(part), _, Err(e)) => {
            let _ = std::fs::remove_file(part);
            Err(e)
        }
        (_, _, r) => r,
    }
}

/// `hearth status HASH`.
pub fn status(args: &StatusArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (hash, url) = blob_url(&args.server, &args.hash, "/status")?;
    if let Some(data_dir) = &args.data_dir {
        return super::status_offline::status(&hash, data_dir, args.json, out);
    }
    let st: BlobStatus = runtime()?.block_on(async {
        let resp = reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        answer(resp, "status").await
    })?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &st)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "blob     {}", st.hash)?;
    writeln!(out, "size     {} bytes", st.size)?;
    writeln!(
        out,
        "tier     {} (log index {})",
        st.tier, st.accepted_index
    )?;
    let leaving: Vec<String> = st
        .if_member_leaves
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m.peer_id,
                if m.survives { "survives" } else { "LOST" }
            )
        })
        .collect();
    writeln!(out, "survives {} member loss(es)", st.survives)?;
    if !leaving.is_empty() {
        writeln!(out, "if one leaves  {}", leaving.join(", "))?;
    }
    if st.inline {
        writeln!(out, "stored   inline in the log")?;
        return Ok(());
    }
    writeln!(
        out,
        "code     {}+{}, stripes of {} bytes",
        st.k, st.m, st.stripe_size
    )?;
    writeln!(out, "{:>5} {:<9} holders", "shard", "local")?;
    for sh in &st.shards {
        let holders: Vec<String> = sh
            .holders
            .iter()
            .map(|h| {
                let mark = if h.confirmed { "" } else { " (unconfirmed)" };
                format!("{}{mark}", h.peer_id)
            })
            .collect();
        writeln!(
            out,
            "{:>5} {:<9} {}",
            sh.index,
            sh.local,
            holders.join(", ")
        )?;
    }
    Ok(())
}

/// `hearth rm HASH`.
pub fn rm(args: &RmArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (_, url) = blob_url(&args.server, &args.hash, "")?;
    let reply: DeleteReply = runtime()?.block_on(async {
        let mut req = reqwest::Client::new().delete(&url);
        if let Some(t) = args.server.write_token() {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("DELETE {url}"))?;
        answer(resp, "rm").await
    })?;
    writeln!(out, "deleted {} at log index {}", reply.hash, reply.index)?;
    Ok(())
}

/// The hash's bytes and the URL of `/v1/blobs/HASH{suffix}` on the server; a clear error for
/// something that is not a blob hash.
fn blob_url(server: &ServerArgs, hash: &str, suffix: &str) -> anyhow::Result<(Vec<u8>, String)> {
    let bytes = hex::decode(hash)
        .filter(|h| h.len() == 32)
        .with_context(|| format!("{hash:?} is not a blob hash (64 hex characters)"))?;
    let url = format!(
        "{}/v1/blobs/{}{suffix}",
        server.server.trim_end_matches('/'),
        hash.to_ascii_lowercase()
    );
    Ok((bytes, url))
}

fn part_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}
