//! `hearth log dump`: print a node's log entries as decoded events, one per line.
//!
//! A node's log holds raft entries (`hearth_raft::codec`): a normal entry carries one event, or
//! several when the leader group-committed them, and each event gets its own line with its
//! `position` in the entry; raft's own entries (blank, membership) get one line each. A payload
//! that is not a raft entry is read as a bare envelope (logs written by `hearth bench log`).
//!
//! Text: `index[.position] term kind origin summary`. `--json`: one object per line with index,
//! position, term, kind, redacted, chain (hex) and the decoded event (see
//! [`super::event_json`]). A payload that does not decode is printed as `{"index",
//! "undecodable", "len"}` instead of failing the dump. Reading stops with an error at the first
//! damaged record.

use super::event_json;
use crate::hex;
use anyhow::Context as _;
use bytes::Bytes;
use hearth_log::Record;
use openraft::EntryPayload;
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
        let lines = if args.json {
            json_lines(&rec)
        } else {
            text_lines(&rec)
        };
        for line in lines {
            if let Err(e) = writeln!(out, "{line}") {
                write_err = Some(e);
                return Ok(false);
            }
        }
        Ok(true)
    })
    .with_context(|| format!("read {}", log.dir().display()))?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    out.flush()?;
    Ok(())
}

/// What one record holds.
enum Content {
    /// Events, each with its position (one for a plain normal entry or a bare envelope).
    Events(Vec<(Option<u32>, Bytes)>),
    /// A raft blank entry (a new leader's first).
    Blank,
    /// A raft membership change: voter sets and learners, by raft node id.
    Membership {
        voters: Vec<Vec<u64>>,
        learners: Vec<u64>,
    },
}

fn content(rec: &Record) -> Content {
    match hearth_raft::codec::decode_entry(rec.index, rec.term, &rec.payload) {
        Ok(entry) => match entry.payload {
            EntryPayload::Blank => Content::Blank,
            EntryPayload::Membership(m) => Content::Membership {
                voters: m
                    .get_joint_config()
                    .iter()
                    .map(|set| set.iter().copied().collect())
                    .collect(),
                learners: m.learner_ids().collect(),
            },
            EntryPayload::Normal(p) if p.envelopes.len() == 1 => {
                Content::Events(p.envelopes.into_iter().map(|e| (None, e)).collect())
            }
            EntryPayload::Normal(p) => Content::Events(
                p.envelopes
                    .into_iter()
                    .zip(0u32..)
                    .map(|(e, i)| (Some(i), e))
                    .collect(),
            ),
        },
        // Not a raft entry: a bare envelope (or garbage, reported as undecodable).
        Err(_) => Content::Events(vec![(None, rec.payload.clone())]),
    }
}

/// One record as JSON lines (one per event).
pub fn json_lines(rec: &Record) -> Vec<String> {
    let base = |kind: &str| {
        json!({
            "index": rec.index,
            "term": rec.term,
            "kind": kind,
            "redacted": rec.redacted,
            "chain": hex::encode(&rec.chain),
            "len": rec.payload.len(),
        })
    };
    match content(rec) {
        Content::Blank => vec![base("RaftBlank").to_string()],
        Content::Membership { voters, learners } => {
            let mut v = base("RaftMembership");
            v["voters"] = json!(voters);
            v["learners"] = json!(learners);
            vec![v.to_string()]
        }
        Content::Events(events) => events
            .into_iter()
            .map(|(position, payload)| {
                let mut v = match hearth_proto::decode_envelope(&payload) {
                    Ok(env) => {
                        let mut v = base(hearth_proto::event_kind(&env));
                        v["event"] = event_json::envelope_json(&env);
                        v
                    }
                    Err(e) => {
                        let mut v = base("Undecodable");
                        v["undecodable"] = json!(e.to_string());
                        v
                    }
                };
                if let Some(position) = position {
                    v["position"] = json!(position);
                    v["event_len"] = json!(payload.len());
                }
                v.to_string()
            })
            .collect(),
    }
}

/// One record as text lines (one per event): `index[.position] term kind origin summary`.
pub fn text_lines(rec: &Record) -> Vec<String> {
    let redacted = if rec.redacted { " [redacted]" } else { "" };
    let at = |position: Option<u32>| match position {
        Some(p) => format!("{}.{p}", rec.index),
        None => rec.index.to_string(),
    };
    match content(rec) {
        Content::Blank => vec![format!(
            "{:>10} t{:<4} {:<16}{redacted}",
            rec.index, rec.term, "RaftBlank"
        )],
        Content::Membership { voters, learners } => vec![format!(
            "{:>10} t{:<4} {:<16} voters={voters:?} learners={learners:?}{redacted}",
            rec.index, rec.term, "RaftMembership"
        )],
        Content::Events(events) => events
            .into_iter()
            .map(
                |(position, payload)| match hearth_proto::decode_envelope(&payload) {
                    Ok(env) => {
                        let summary = env
                            .event
                            .as_ref()
                            .map(event_json::summary)
                            .unwrap_or_default();
                        format!(
                            "{:>10} t{:<4} {:<16} origin={} {summary}{redacted}",
                            at(position),
                            rec.term,
                            hearth_proto::event_kind(&env),
                            event_json::short_id(&env.origin),
                        )
                    }
                    Err(e) => format!(
                        "{:>10} t{:<4} {:<16} len={} ({e}){redacted}",
                        at(position),
                        rec.term,
                        "UNDECODABLE",
                        payload.len()
                    ),
                },
            )
            .collect(),
    }
}
