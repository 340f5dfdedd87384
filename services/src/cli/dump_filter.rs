//! [`DumpFilter`]: which lines `hearth log dump` prints — by event kind, by blob, by peer, and
//! by position in the log (`--since`/`--until`: a log index, or a time compared with the log
//! time).
//!
//! Blob and peer filters look at the decoded event as [`super::event_json`] renders it: a blob
//! matches any `blob_hash` field, a peer any `origin`, `accepted_by`, `holder`, `verifier` or
//! `peer_id` field, at any depth — so events added to the schema later are covered as soon as
//! the dump can show them. Pure matching, no IO.

use crate::hex;
use hearth_proto::v1::Envelope;
use serde_json::Value;

/// Fields that name a blob.
const BLOB_FIELDS: [&str; 1] = ["blob_hash"];
/// Fields that name a peer.
const PEER_FIELDS: [&str; 5] = ["origin", "accepted_by", "holder", "verifier", "peer_id"];

/// A point for `--since`/`--until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A log index.
    Index(u64),
    /// A log time, Unix ms.
    Time(u64),
}

/// Parses `--since`/`--until`: a bare integer is a log **index**; anything else must be an
/// RFC 3339 time (`2026-05-05T18:00:00Z`; UTC without an offset).
pub fn parse_mark(s: &str) -> Result<Mark, String> {
    let s = s.trim();
    if let Ok(index) = s.parse::<u64>() {
        return Ok(Mark::Index(index));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!(
            "{s:?} is neither a log index nor an RFC 3339 time such as 2026-05-05T18:00:00Z ({e})"
        )
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis();
    Ok(Mark::Time(
        u64::try_from(ms).map_err(|_| format!("{s:?} is too late"))?,
    ))
}

/// What `hearth log dump` keeps. The default keeps everything.
#[derive(Debug, Clone, Default)]
pub struct DumpFilter {
    /// Kinds to keep (lower case); empty: every kind.
    pub kinds: Vec<String>,
    /// Blob hash to look for.
    pub blob: Option<Vec<u8>>,
    /// Peer (PeerId bytes) to look for.
    pub peer: Option<Vec<u8>>,
    /// First point to keep.
    pub since: Option<Mark>,
    /// Last point to keep.
    pub until: Option<Mark>,
}

impl DumpFilter {
    /// A filter from the command line's values; a malformed blob hash or peer id is an error.
    pub fn new(
        kinds: &[String],
        blob: Option<&str>,
        peer: Option<&str>,
        since: Option<Mark>,
        until: Option<Mark>,
    ) -> anyhow::Result<Self> {
        let blob = blob
            .map(|b| {
                hex::decode(b.trim())
                    .filter(|h| h.len() == 32)
                    .ok_or_else(|| {
                        anyhow::anyhow!("--blob {b:?} is not a blob hash (64 hex characters)")
                    })
            })
            .transpose()?;
        let peer = peer.map(parse_peer).transpose()?;
        Ok(DumpFilter {
            kinds: kinds
                .iter()
                .map(|k| k.trim().to_ascii_lowercase())
                .collect(),
            blob,
            peer,
            since,
            until,
        })
    }

    /// Whether positions are filtered by log time (then the dump reads from the first entry
    /// to know it).
    pub fn uses_log_time(&self) -> bool {
        matches!(self.since, Some(Mark::Time(_))) || matches!(self.until, Some(Mark::Time(_)))
    }

    /// The index bounds the filter implies (`--since N`, `--until N`).
    pub fn index_bounds(&self) -> (Option<u64>, Option<u64>) {
        let lo = match self.since {
            Some(Mark::Index(i)) => Some(i),
            _ => None,
        };
        let hi = match self.until {
            Some(Mark::Index(i)) => Some(i),
            _ => None,
        };
        (lo, hi)
    }

    /// Whether an entry with log time `log_time_ms` (after it) is inside the time bounds.
    pub fn time_ok(&self, log_time_ms: u64) -> bool {
        let after = match self.since {
            Some(Mark::Time(t)) => log_time_ms >= t,
            _ => true,
        };
        let before = match self.until {
            Some(Mark::Time(t)) => log_time_ms <= t,
            _ => true,
        };
        after && before
    }

    /// Whether entries with log time `log_time_ms` and later are all past `--until TIME`.
    pub fn past_until(&self, log_time_ms: u64) -> bool {
        matches!(self.until, Some(Mark::Time(t)) if log_time_ms > t)
    }

    /// Whether a line of kind `kind` (as the dump prints it) carrying `env` (when it is a
    /// decodable event) is kept.
    pub fn keeps(&self, kind: &str, env: Option<&Envelope>) -> bool {
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
            return false;
        }
        if self.blob.is_none() && self.peer.is_none() {
            return true;
        }
        let Some(env) = env else {
            return false; // raft entries and undecodable events name no blob or peer
        };
        let json = super::event_json::envelope_json(env);
        let names = |fields: &[&str], want: &[u8]| names_value(&json, fields, &hex::encode(want));
        self.blob.as_deref().is_none_or(|b| names(&BLOB_FIELDS, b))
            && self.peer.as_deref().is_none_or(|p| names(&PEER_FIELDS, p))
    }
}

/// Whether any of `fields`, at any depth of `v`, is the string `want` (or a list holding it).
fn names_value(v: &Value, fields: &[&str], want: &str) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, child)| {
            (fields.contains(&k.as_str())
                && match child {
                    Value::String(s) => s == want,
                    Value::Array(items) => items.iter().any(|i| i.as_str() == Some(want)),
                    _ => false,
                })
                || names_value(child, fields, want)
        }),
        Value::Array(items) => items.iter().any(|i| names_value(i, fields, want)),
        _ => false,
    }
}

/// A peer: its PeerId (`12D3KooW…`) or the PeerId's bytes in hex.
fn parse_peer(s: &str) -> anyhow::Result<Vec<u8>> {
    let s = s.trim();
    if let Ok(id) = s.parse::<libp2p_identity::PeerId>() {
        return Ok(id.to_bytes());
    }
    hex::decode(s)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--peer {s:?} is neither a PeerId nor hex bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::v1::envelope::Event;
    use hearth_proto::v1::{BlobDeleted, ShardPlaced};

    fn env(event: Event) -> Envelope {
        Envelope {
            schema_version: 1,
            origin: vec![1, 2, 3].into(),
            proposed_at_unix_ms: 5,
            request_id: None,
            event: Some(event),
        }
    }

    #[test]
    fn kinds_blobs_and_peers() {
        let blob = [7u8; 32];
        let placed = env(Event::ShardPlaced(ShardPlaced {
            blob_hash: blob.to_vec().into(),
            holder: vec![9, 9].into(),
            ..Default::default()
        }));
        let deleted = env(Event::BlobDeleted(BlobDeleted {
            blob_hash: vec![8; 32].into(),
        }));
        let all = DumpFilter::default();
        assert!(all.keeps("ShardPlaced", Some(&placed)) && all.keeps("RaftBlank", None));

        let kinds = DumpFilter::new(
            &["shardplaced".into(), "RaftBlank".into()],
            None,
            None,
            None,
            None,
        )
        .expect("filter");
        assert!(kinds.keeps("ShardPlaced", Some(&placed)));
        assert!(kinds.keeps("RaftBlank", None));
        assert!(!kinds.keeps("BlobDeleted", Some(&deleted)));

        let by_blob =
            DumpFilter::new(&[], Some(&hex::encode(&blob)), None, None, None).expect("filter");
        assert!(by_blob.keeps("ShardPlaced", Some(&placed)));
        assert!(!by_blob.keeps("BlobDeleted", Some(&deleted)));
        assert!(!by_blob.keeps("RaftBlank", None));

        let holder = DumpFilter::new(&[], None, Some("0909"), None, None).expect("filter");
        assert!(holder.keeps("ShardPlaced", Some(&placed)));
        assert!(!holder.keeps("BlobDeleted", Some(&deleted)));
        let origin = DumpFilter::new(&[], None, Some("010203"), None, None).expect("filter");
        assert!(origin.keeps("BlobDeleted", Some(&deleted)));

        assert!(DumpFilter::new(&[], Some("abc"), None, None, None).is_err());
        assert!(DumpFilter::new(&[], None, Some("not a peer"), None, None).is_err());
    }

    #[test]
    fn marks_are_indexes_or_times() {
        assert_eq!(parse_mark("42"), Ok(Mark::Index(42)));
        assert_eq!(
            parse_mark("2026-01-01T00:00:00Z"),
            Ok(Mark::Time(1_767_225_600_000))
        );
        assert!(parse_mark("soon").is_err());
        let f = DumpFilter::new(&[], None, None, Some(Mark::Time(10)), Some(Mark::Time(20)))
            .expect("filter");
        assert!(f.uses_log_time());
        assert!(!f.time_ok(9) && f.time_ok(10) && f.time_ok(20) && !f.time_ok(21));
        assert!(f.past_until(21) && !f.past_until(20));
        let g = DumpFilter::new(&[], None, None, Some(Mark::Index(3)), Some(Mark::Index(9)))
            .expect("filter");
        assert_eq!(g.index_bounds(), (Some(3), Some(9)));
        assert!(!g.uses_log_time() && g.time_ok(0));
    }
}
