//! `hearth peers`: the cluster's peers, best score first, with each score's explanation.

use super::cluster::{call, client, runtime, ServerArgs};
use crate::http::peers::PeersReply;
use clap::Args;
use std::io::Write;

/// Arguments of `hearth peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `hearth peers`.
pub fn run(args: &PeersArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let url = format!("{}/v1/peers", args.server.server.trim_end_matches('/'));
    let reply: PeersReply = runtime()?.block_on(async {
        let c = client()?;
        call(c.get(&url), "peers").await
    })?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &reply)?;
        writeln!(out)?;
        return Ok(());
    }
    for p in &reply.peers {
        let role = match (p.me, p.member) {
            (true, _) => " (this node)",
            (false, true) => "",
            (false, false) => " (not a member)",
        };
        writeln!(out, "{}{role}  score {:.3}", p.peer_id, p.score)?;
        for c in &p.components {
            writeln!(
                out,
                "    {:<12} {:.2} × {:.3}  {}",
                c.name, c.weight, c.value, c.why
            )?;
        }
        writeln!(
            out,
            "    seen {} times, {} bytes in {} transfers ({} failed, {} bad), agent {:?}",
            p.seen_count, p.bytes, p.transfers_ok, p.transfers_failed, p.bad_data, p.agent_version
        )?;
        if p.scrub_passes > 0 {
            writeln!(
                out,
                "    scrubbed its own copies {} times ({} bytes): {} bad, {} repaired",
                p.scrub_passes, p.scrubbed_bytes, p.scrub_bad, p.scrub_repaired
            )?;
        }
    }
    if reply.peers.is_empty() {
        writeln!(out, "no peers recorded yet")?;
    }
    Ok(())
}
