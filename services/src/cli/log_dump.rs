//! `hearth log dump`: print a node's log entries as decoded events, one per line.
//!
//! Text: `index term kind origin summary`. `--json`: one object per line with index, term,
//! kind, redacted, chain (hex) and the decoded event (see [`super::event_json`]). A payload that
//! does not decode as an `Envelope` is printed as `{"index", "undecodable", "len"}` instead of
//! failing the dump. Reading stops with an error at the first damaged record.

use super::event_json;
use crate::hex;
use anyhow::Context as _;
use hearth_log::Record;
use serde_json::json;
use std::io::Write;
use std::ops::Bound;
use std::path::PathBuf;

/// Arguments of `hearth log dump`.
#[derive(Debug, Clone, clap::Args)]
pub struct DumpArgs {
    /// The node's data directory (the log is in DATA_DIR/log).
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "hearth-data")]
    pub data_dir: PathBuf,
    /// First index to print (default: the log's first).
    #[arg(long, env = "HEARTH_DUMP_FROM")]
    pub from: Option<u64>,
    /// Last index to print, inclusive (default: the log's last).
    #[arg(long, env = "HEARTH_DUMP_TO")]
    pub to: Option<u64>,
    /// One JSON object per line instead of text.
    #[arg(long, env = "HEARTH_JSON")]
    pub json: bool,
}

/// Run `hearth log dump`, writing lines to `out`.
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    }
    let log = super::open_log_read_only(&args.data_dir)?;
    let (Some(first), Some(last)) = (log.first_index(), log.last().map(|p| p.index)) else {
        return Ok(()); // an empty log prints nothing
    };
    // Clamp to what the log holds, so `--from 0` or `--to 1000000` just mean "from the start"
    // and "to the end".
    let from = args.from.unwrap_or(first).max(first);
    let to = args.to.unwrap_or(last).min(last);
    if from > to {
        return Ok(());
    }

    let mut write_err: Option<std::io::Error> = None;
    let range = (Bound::Included(from), Bound::Included(to));
    log.scan(range, |rec| {
        let line = if args.json {
            json_line(&rec)
        } else {
            text_line(&rec)
        };
        match writeln!(out, "{line}") {
            Ok(()) => Ok(true),
            Err(e) => {
                write_err = Some(e);
                Ok(false)
            }
        }
    })
    .with_context(|| format!("read {}", log.dir().display()))?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    out.flush()?;
    Ok(())
}

/// One record as a JSON line.
pub fn json_line(rec: &Record) -> String {
    let v = match hearth_proto::decode_envelope(&rec.payload) {
        Ok(env) => json!({
            "index": rec.index,
            "term": rec.term,
            "kind": hearth_proto::event_kind(&env),
            "redacted": rec.redacted,
            "chain": hex::encode(&rec.chain),
            "len": rec.payload.len(),
            "event": event_json::envelope_json(&env),
        }),
        Err(e) => json!({
            "index": rec.index,
            "term": rec.term,
            "redacted": rec.redacted,
            "chain": hex::encode(&rec.chain),
            "undecodable": e.to_string(),
            "len": rec.payload.len(),
        }),
    };
    v.to_string()
}

/// One record as a text line: `index term kind origin summary`.
pub fn text_line(rec: &Record) -> String {
    let redacted = if rec.redacted { " [redacted]" } else { "" };
    match hearth_proto::decode_envelope(&rec.payload) {
        Ok(env) => {
            let summary = env
                .event
                .as_ref()
                .map(event_json::summary)
                .unwrap_or_default();
            format!(
                "{:>10} t{:<4} {:<16} origin={} {summary}{redacted}",
                rec.index,
                rec.term,
                hearth_proto::event_kind(&env),
                event_json::short_id(&env.origin),
            )
        }
        Err(e) => format!(
            "{:>10} t{:<4} {:<16} len={} ({e}){redacted}",
            rec.index,
            rec.term,
            "UNDECODABLE",
            rec.payload.len()
        ),
    }
}
