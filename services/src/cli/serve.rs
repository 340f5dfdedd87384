//! `hearth serve`: run a node on a data directory.
//!
//! Today a node is its identity and its durable event log: `serve` creates the data directory
//! and the node's identity key ([`crate::identity`]) if needed, prints its PeerId, opens
//! (and recovers) `DATA_DIR/log` read-write, holds the directory lock so no second process can
//! open it, reports what it found, and runs until SIGTERM or Ctrl-C, when it stops the log's
//! writer after every queued write and exits 0. Raft membership, the HTTP API and the
//! libp2p swarm join this command with the cluster issue; nothing here pretends to serve them.

use crate::hex::encode as hex;
use crate::identity::NodeIdentity;
use crate::paths::log_dir;
use anyhow::Context as _;
use clap::Args;
use hearth_log::{Log, LogOptions};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `hearth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The node's data directory (created if missing).
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "./hearth-data")]
    pub data_dir: PathBuf,
}

/// Runs the node until a shutdown signal.
pub fn run(args: &ServeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
        let (identity, _created) = NodeIdentity::load_or_create(&args.data_dir)?;
        let peer = identity.peer_id();
        let dir = log_dir(&args.data_dir);
        let log = Log::open(&dir, LogOptions::default())
            .with_context(|| format!("opening the event log in {}", dir.display()))?;
        let rep = log.recovery_report();
        if let Some((file, offset)) = &rep.torn_tail {
            writeln!(
                out,
                "recovered: dropped a torn last batch in {} at offset {offset}",
                file.display()
            )?;
        }
        match log.last() {
            Some(last) => writeln!(
                out,
                "hearth node: peer id {peer}, data {} — event log entries {}..={}, head {} (term {})",
                args.data_dir.display(),
                log.first_index().unwrap_or(last.index),
                last.index,
                hex(&last.chain),
                last.term
            )?,
            None => writeln!(
                out,
                "hearth node: peer id {peer}, data {} — event log empty",
                args.data_dir.display()
            )?,
        }
        writeln!(out, "running; SIGTERM or Ctrl-C stops it")?;
        out.flush()?;
        shutdown_signal().await;
        log.close().await.context("closing the event log")?;
        writeln!(out, "stopped cleanly")?;
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
