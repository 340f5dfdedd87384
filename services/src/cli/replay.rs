//! `hearth replay --data-dir DIR (--to INDEX | --at TIME) --out OUT`: the projections as they
//! stood at that point of a stopped node's log, rebuilt into OUT (see [`crate::audit::replay`]),
//! for investigations: `hearth status HASH --data-dir OUT` then answers "what did we know about
//! blob X at index N".

use crate::audit::replay::{parse_time_ms, replay, Point};
use crate::audit::Progress;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `hearth replay`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    group(clap::ArgGroup::new("point").required(true).args(["to", "at"])),
    after_help = "\
The node must be stopped (its data directory is read-only to the replay). OUT must not exist \
or be empty; it is written whole or not at all, laid out like a data directory, with \
OUT/REPLAY.json describing it. Query it with the read-only CLI, e.g.
  hearth status HASH --data-dir OUT
  hearth replay --data-dir hearth-data --at 2026-05-05T18:00:00Z --out /tmp/tuesday"
)]
pub struct ReplayArgs {
    /// The stopped node's data directory.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "hearth-data")]
    pub data_dir: PathBuf,
    /// Replay through this log index (inclusive).
    #[arg(long)]
    pub to: Option<u64>,
    /// Replay through the last entry whose log time (the max of the events' proposer clocks so
    /// far, as the projections count time) is at or before TIME: RFC 3339
    /// (2026-05-05T18:00:00Z; UTC without an offset) or Unix milliseconds.
    #[arg(long, value_parser = parse_time_ms)]
    pub at: Option<u64>,
    /// The new directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Print what was written as one JSON object.
    #[arg(long, env = "HEARTH_JSON")]
    pub json: bool,
}

/// Run `hearth replay`.
pub fn run(args: &ReplayArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let point = match (args.to, args.at) {
        (Some(i), _) => Point::Index(i),
        (None, Some(ms)) => Point::LogTime(ms),
        (None, None) => anyhow::bail!("give --to INDEX or --at TIME"),
    };
    let info = replay(&args.data_dir, point, &args.out, &Progress::on_terminal())?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&info)?)?;
        return Ok(());
    }
    match info.through {
        Some(a) => writeln!(
            out,
            "replayed {} entries ({} events) through index {} (term {}), log time {}, into {}",
            info.entries,
            info.events,
            a.index,
            a.term,
            info.log_time,
            args.out.display()
        )?,
        None => writeln!(
            out,
            "replayed nothing (no entry is that early) into {}",
            args.out.display()
        )?,
    }
    if let Some(chain) = &info.chain {
        writeln!(out, "chain    {chain}")?;
    }
    writeln!(
        out,
        "query it: hearth status HASH --data-dir {}",
        args.out.display()
    )?;
    Ok(())
}
