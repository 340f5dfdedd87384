//! `hearth log verify`: check every record's CRC and the whole hash chain of a node's log.
//!
//! Opens the log read-only (nothing on disk changes), runs [`hearth_log::Log::verify`] over all
//! of it and prints what it checked and the head chain hash. Damage fails the command with the
//! log's own error, which names the file and byte offset (exit code 2, see [`super::exit_code`]).
//! A torn last batch — which the next read-write open would drop — is not damage: it is reported
//! as a warning.

use crate::hex;
use anyhow::Context as _;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `hearth log verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The node's data directory (the log is in DATA_DIR/log).
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "hearth-data")]
    pub data_dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long, env = "HEARTH_JSON")]
    pub json: bool,
}

/// Run `hearth log verify`, writing the report to `out` and warnings to stderr.
pub fn run(args: &VerifyArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let log = super::open_log_read_only(&args.data_dir)?;
    let dir = log.dir().to_path_buf();
    let recovery = log.recovery_report().clone();
    let report = log
        .verify(..)
        .with_context(|| format!("verify {}", dir.display()))?;

    if let Some((file, offset)) = &recovery.torn_tail {
        eprintln!(
            "warning: torn last batch in {} at byte offset {offset} (an interrupted write; \
             the next read-write open drops it)",
            file.display()
        );
    }

    let head = report.last.map(|p| hex::encode(&p.chain));
    if args.json {
        let v = json!({
            "ok": true,
            "log_dir": dir.display().to_string(),
            "entries": report.entries,
            "segments": report.segments,
            "bytes": report.bytes,
            "redacted": report.redacted,
            "first_index": report.first.map(|p| p.index),
            "last_index": report.last.map(|p| p.index),
            "last_term": report.last.map(|p| p.term),
            "head_chain": head,
            "torn_tail": recovery.torn_tail.as_ref().map(|(f, o)| json!({
                "file": f.display().to_string(),
                "offset": o,
            })),
            "redactions_repaired": recovery.redactions_repaired,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "log OK: {}", dir.display())?;
        writeln!(out, "  entries   {}", report.entries)?;
        match (report.first, report.last) {
            (Some(f), Some(l)) => writeln!(out, "  indexes   {} ..= {}", f.index, l.index)?,
            _ => writeln!(out, "  indexes   (empty)")?,
        }
        writeln!(out, "  segments  {}", report.segments)?;
        writeln!(out, "  bytes     {}", report.bytes)?;
        writeln!(out, "  redacted  {}", report.redacted)?;
        match report.last {
            Some(l) => writeln!(
                out,
                "  head      {} (index {}, term {})",
                hex::encode(&l.chain),
                l.index,
                l.term
            )?,
            None => writeln!(out, "  head      (none)")?,
        }
        if let Some((file, offset)) = &recovery.torn_tail {
            writeln!(
                out,
                "  torn tail {} at byte offset {offset}",
                file.display()
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
