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
//!
//! Filters ([`super::dump_filter`]): `--kind` (repeatable), `--blob`, `--peer`, and
//! `--since`/`--until`, each a log index or an RFC 3339 time compared with the *log time*
//! after the entry (the max of the events' proposer clocks so far, as the projections count
//! time; so `--until T` prints exactly the entries `hearth replay --at T` folds).

use super::dump_filter::{parse_mark, DumpFilter, Mark};
use super::event_json;
use crate::hex;
use anyhow::Context as _;
use bytes::Bytes;
use hearth_log::Record;
use hearth_proto::v1::Envelope;
use openraft::EntryPayload;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;
use std::ops::Bound;
use std::path::PathBuf;

/// Arguments of `hearth log dump`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Filters combine (all must hold). --since and --until take a log index (a bare number) or an \
RFC 3339 time (2026-05-05T18:00:00Z; UTC without an offset); a time is compared with the log \
time after each entry: the largest proposed_at of the events so far, which never goes back. \
Examples:
  hearth log dump --kind BlobAccepted --kind BlobDeleted
  hearth log dump --blob 8e4c…a99 --json
  hearth log dump --peer 12D3KooW… --since 2026-05-05T00:00:00Z --until 2026-05-06T00:00:00Z")]
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
    /// Only lines of this kind, as the dump prints it (BlobAccepted, ShardPlaced,
    /// ReplicaConfirmed, ManifestVerified, PeerSeen, BlobDeleted, RaftBlank, RaftMembership,
    /// Undecodable, …; any case). Repeat for several.
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Only events naming this blob (64 hex characters) in any blob_hash field.
    #[arg(long, value_name = "HASH")]
    pub blob: Option<String>,
    /// Only events naming this peer (PeerId, or its bytes in hex) as origin, accepting node,
    /// holder, verifier or seen peer.
    #[arg(long, value_name = "ID")]
    pub peer: Option<String>,
    /// Only from this point on: a log index, or an RFC 3339 time (log time).
    #[arg(long, value_name = "INDEX|TIME", value_parser = parse_mark)]
    pub since: Option<Mark>,
    /// Only up to this point, inclusive: a log index, or an RFC 3339 time (log time).
    #[arg(long, value_name = "INDEX|TIME", value_parser = parse_mark)]
    pub until: Option<Mark>,
}

/// Run `hearth log dump`, writing lines to `out`.
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    }
    let filter = DumpFilter::new(
        &args.kinds,
        args.blob.as_deref(),
        args.peer.as_deref(),
        args.since,
        args.until,
    )?;
    let log = super::open_log_read_only(&args.data_dir)?;
    let (Some(first), Some(last)) = (log.first_index(), log.last().map(|p| p.index)) else {
        return Ok(()); // an empty log prints nothing
    };
    // Clamp to what the log holds, so `--from 0` or `--to 1000000` just mean "from the start"
    // and "to the end".
    let (since, until) = filter.index_bounds();
    let from = args.from.into_iter().chain(since).fold(first, u64::max);
    let to = args.to.into_iter().chain(until).fold(last, u64::min);
    if from > to {
        return Ok(());
    }
    // Log time needs every entry from the first.
    let scan_from = if filter.uses_log_time() { first } else { from };

    let mut write_err: Option<std::io::Error> = None;
    let mut log_time = 0u64;
    let mut kinds_seen: BTreeSet<&'static str> = BTreeSet::new();
    let range = (Bound::Included(scan_from), Bound::Included(to));
    log.scan(range, |rec| {
        let items = items(&rec);
        if filter.uses_log_time() {
            log_time = items
                .iter()
                .filter_map(|i| i.envelope().map(|e| e.proposed_at_unix_ms))
                .fold(log_time, u64::max);
            if filter.past_until(log_time) {
                return Ok(false);
            }
            if rec.index < from || !filter.time_ok(log_time) {
                return Ok(true);
            }
        }
        for item in &items {
            kinds_seen.insert(item.kind());
            if !filter.keeps(item.kind(), item.envelope()) {
                continue;
            }
            let line = if args.json {
                item.json(&rec)
            } else {
                item.text(&rec)
            };
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
    for kind in &args.kinds {
        if !kinds_seen
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind.trim()))
        {
            eprintln!(
                "warning: no entry of kind {kind:?} in the range read (kinds seen: {})",
                kinds_seen.iter().copied().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}

/// One printed line's worth of a record: a raft entry of its own, or one event (also what
/// `GET /v1/events` streams, one SSE event each).
pub enum Item {
    /// A raft blank entry (a new leader's first).
    Blank,
    /// A raft membership change: voter sets and learners, by raft node id.
    Membership {
        voters: Vec<Vec<u64>>,
        learners: Vec<u64>,
    },
    /// An event, with its position when the entry is a batch, its encoded length, and the
    /// decoded envelope (or why it does not decode).
    Event {
        position: Option<u32>,
        len: usize,
        decoded: Result<Box<Envelope>, String>,
    },
}

/// The items of one record, in order.
pub fn items(rec: &Record) -> Vec<Item> {
    let event = |position: Option<u32>, payload: &Bytes| Item::Event {
        position,
        len: payload.len(),
        decoded: hearth_proto::decode_envelope(payload)
            .map(Box::new)
            .map_err(|e| e.to_string()),
    };
    match hearth_raft::codec::decode_entry(rec.index, rec.term, &rec.payload) {
        Ok(entry) => match entry.payload {
            EntryPayload::Blank => vec![Item::Blank],
            EntryPayload::Membership(m) => vec![Item::Membership {
                voters: m
                    .get_joint_config()
                    .iter()
                    .map(|set| set.iter().copied().collect())
                    .collect(),
                learners: m.learner_ids().collect(),
            }],
            EntryPayload::Normal(p) if p.envelopes.len() == 1 => {
                p.envelopes.iter().map(|e| event(None, e)).collect()
            }
            EntryPayload::Normal(p) => p
                .envelopes
                .iter()
                .zip(0u32..)
                .map(|(e, i)| event(Some(i), e))
                .collect(),
        },
        // Not a raft entry: a bare envelope (or garbage, reported as undecodable).
        Err(_) => vec![event(None, &rec.payload)],
    }
}

impl Item {
    /// The kind as the dump prints it (JSON spelling).
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Blank => crate::audit::events::KIND_RAFT_BLANK,
            Item::Membership { .. } => crate::audit::events::KIND_RAFT_MEMBERSHIP,
            Item::Event {
                decoded: Ok(env), ..
            } => hearth_proto::event_kind(env),
            Item::Event {
                decoded: Err(_), ..
            } => crate::audit::events::KIND_UNDECODABLE,
        }
    }

    /// The decoded event, if this is one that decodes.
    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Item::Event {
                decoded: Ok(env), ..
            } => Some(env),
            _ => None,
        }
    }

    /// The JSON line.
    pub fn json(&self, rec: &Record) -> String {
        self.json_value(rec).to_string()
    }

    /// The JSON line as a value.
    pub fn json_value(&self, rec: &Record) -> serde_json::Value {
        let mut v = json!({
            "index": rec.index,
            "term": rec.term,
            "kind": self.kind(),
            "redacted": rec.redacted,
            "chain": hex::encode(&rec.chain),
            "len": rec.payload.len(),
        });
        match self {
            Item::Blank => {}
            Item::Membership { voters, learners } => {
                v["voters"] = json!(voters);
                v["learners"] = json!(learners);
            }
            Item::Event {
                position,
                len,
                decoded,
            } => {
                match decoded {
                    Ok(env) => v["event"] = event_json::envelope_json(env),
                    Err(e) => v["undecodable"] = json!(e),
                }
                if let Some(position) = position {
                    v["position"] = json!(position);
                    v["event_len"] = json!(len);
                }
            }
        }
        v
    }

    /// The text line: `index[.position] term kind origin summary`.
    pub fn text(&self, rec: &Record) -> String {
        let redacted = if rec.redacted { " [redacted]" } else { "" };
        match self {
            Item::Blank => format!(
                "{:>10} t{:<4} {:<16}{redacted}",
                rec.index, rec.term, "RaftBlank"
            ),
            Item::Membership { voters, learners } => format!(
                "{:>10} t{:<4} {:<16} voters={voters:?} learners={learners:?}{redacted}",
                rec.index, rec.term, "RaftMembership"
            ),
            Item::Event {
                position,
                len,
                decoded,
            } => {
                let at = match position {
                    Some(p) => format!("{}.{p}", rec.index),
                    None => rec.index.to_string(),
                };
                match decoded {
                    Ok(env) => {
                        let summary = env
                            .event
                            .as_ref()
                            .map(event_json::summary)
                            .unwrap_or_default();
                        format!(
                            "{at:>10} t{:<4} {:<16} origin={} {summary}{redacted}",
                            rec.term,
                            hearth_proto::event_kind(env),
                            event_json::short_id(&env.origin),
                        )
                    }
                    Err(e) => format!(
                        "{at:>10} t{:<4} {:<16} len={len} ({e}){redacted}",
                        rec.term, "UNDECODABLE"
                    ),
                }
            }
        }
    }
}

/// One record as JSON lines (one per event).
pub fn json_lines(rec: &Record) -> Vec<String> {
    items(rec).iter().map(|i| i.json(rec)).collect()
}

/// One record as text lines (one per event): `index[.position] term kind origin summary`.
pub fn text_lines(rec: &Record) -> Vec<String> {
    items(rec).iter().map(|i| i.text(rec)).collect()
}
