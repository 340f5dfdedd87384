//! [`replay`]: the projections as they stood at a point of the log — through a log index, or
//! through the last entry at or before a log time — rebuilt from the first entry into a new
//! directory laid out like a node's data directory (`OUT/state/state/store`), so the
//! read-only CLI answers against it (`hearth status HASH --data-dir OUT`). `OUT/REPLAY.json`
//! ([`ReplayInfo`]) says what it holds.
//!
//! The rebuild goes into a hidden temporary directory next to `OUT`, renamed to `OUT` only
//! when complete (and removed on any failure), so `OUT` is never half-written. The log is
//! read at audit grade (CRC, chain, payload hashes) up to the point.
//!
//! Not a node: `OUT` has no log and no identity, and must not be served.

use super::offline::{archive_links, OfflineDir};
use super::progress::Progress;
use super::rebuild::{rebuild_from, Until};
use super::report::Applied;
use crate::hex;
use anyhow::Context as _;
use hearth_log::{Log, Verification};
use serde::Serialize;
use std::path::Path;

/// The description written into the output directory.
pub const REPLAY_INFO: &str = "REPLAY.json";

/// Where to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Through this log index.
    Index(u64),
    /// Through the last entry whose log time (max of the events' proposer clocks so far) is at
    /// most this, Unix ms.
    LogTime(u64),
}

impl Point {
    fn describe(self) -> String {
        match self {
            Point::Index(i) => format!("--to {i}"),
            Point::LogTime(ms) => format!("--at {} ({ms} ms)", rfc3339_ms(ms)),
        }
    }
}

/// A timestamp for `--at`/`--since`/`--until`: Unix milliseconds, or RFC 3339
/// (`2026-05-01T12:00:00Z`, `2026-05-01 12:00:00`; UTC when no offset is given).
pub fn parse_time_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is neither Unix milliseconds nor an RFC 3339 time ({e})"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis();
    u64::try_from(ms).map_err(|_| format!("{s:?} is too far in the future"))
}

/// Unix ms as RFC 3339 (UTC, milliseconds).
pub fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// What a replay output holds (`OUT/REPLAY.json`, and what `hearth replay` prints).
#[derive(Debug, Clone, Serialize)]
pub struct ReplayInfo {
    /// The data directory replayed.
    pub source: String,
    /// What was asked for.
    pub requested: String,
    /// The last entry folded in (`None`: none).
    pub through: Option<Applied>,
    /// The log's chain hash through it (hex).
    pub chain: Option<String>,
    /// Log time after it, Unix ms, and as RFC 3339.
    pub log_time_ms: u64,
    /// The same as text.
    pub log_time: String,
    /// Entries folded in.
    pub entries: u64,
    /// Events among them.
    pub events: u64,
    /// The hearth version that wrote it.
    pub hearth_version: String,
}

/// Replays the log of `data_dir` up to `point` into `out`, which must not exist or be empty.
pub fn replay(
    data_dir: &Path,
    point: Point,
    out: &Path,
    progress: &Progress,
) -> anyhow::Result<ReplayInfo> {
    check_out(out)?;
    let dir = OfflineDir::lock(data_dir)?;
    let log = dir.open_log()?;
    // A purged log replays from its archive of purged entries, when that reaches it.
    let archive = dir.open_archive(None)?;
    let logs: Vec<&Log> = archive.iter().chain(std::iter::once(&log)).collect();
    let first = logs.iter().find_map(|l| l.first_index());
    let (Some(first), Some(last)) = (first, log.last().map(|p| p.index)) else {
        anyhow::bail!(
            "the log of {} is empty: nothing to replay",
            data_dir.display()
        );
    };
    if let Some(p) = log
        .purged()
        .filter(|_| !archive_links(archive.as_ref(), &log))
    {
        anyhow::bail!(
            "the log of {} was purged through index {} and no archive of purged entries reaches \
             it: a replay needs every entry from the first",
            data_dir.display(),
            p.index
        );
    }
    let (until, todo) = match point {
        Point::Index(i) if i < first || i > last => {
            anyhow::bail!("--to {i} is not in the log, which holds indexes {first} ..= {last}")
        }
        Point::Index(i) => (Until::Index(i), i - first + 1),
        Point::LogTime(ms) => (Until::LogTime(ms), last - first + 1),
    };

    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".hearth-replay-")
        .tempdir_in(parent)
        .with_context(|| format!("create a temporary directory in {}", parent.display()))?;
    let store_dir = crate::paths::projection_store_dir(tmp.path());
    let bar = progress.phase("replay", todo);
    let rebuilt = rebuild_from(
        &logs,
        &store_dir,
        crate::node::node_projections(),
        until,
        Verification::Full,
        &|n| bar.inc(n),
    )?;
    bar.finish_and_clear();
    let info = ReplayInfo {
        source: data_dir.display().to_string(),
        requested: point.describe(),
        through: rebuilt.last.map(|p| Applied {
            index: p.index,
            term: p.term,
        }),
        chain: rebuilt.last.map(|p| hex::encode(&p.chain)),
        log_time_ms: rebuilt.log_time_ms,
        log_time: rfc3339_ms(rebuilt.log_time_ms),
        entries: rebuilt.entries,
        events: rebuilt.events,
        hearth_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    drop(rebuilt); // closes (and flushes) the store before it moves
    crate::fsutil::write_durably(
        &tmp.path().join(REPLAY_INFO),
        &serde_json::to_vec_pretty(&info)?,
    )
    .context("write the replay description")?;
    check_out(out)?; // nobody filled it meanwhile
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, out) {
        let _ = std::fs::remove_dir_all(&kept);
        return Err(e).with_context(|| format!("move the replay into {}", out.display()));
    }
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", parent.display()))?;
    Ok(info)
}

/// `out` must not exist, or be an empty directory.
fn check_out(out: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(out).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => {
            anyhow::bail!(
                "{} exists and is not empty: pick a new directory",
                out.display()
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            anyhow::bail!("{} exists and is not a directory", out.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", out.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_ms_or_rfc3339() {
        assert_eq!(parse_time_ms("1767225600000"), Ok(1_767_225_600_000));
        assert_eq!(parse_time_ms("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
        assert_eq!(parse_time_ms("2026-01-01 00:00:01"), Ok(1_767_225_601_000));
        assert!(parse_time_ms("yesterday").is_err());
        assert_eq!(rfc3339_ms(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
    }

    #[test]
    fn out_must_be_new_or_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(check_out(&dir.path().join("new")).is_ok());
        assert!(check_out(dir.path()).is_ok());
        std::fs::write(dir.path().join("x"), b"x").expect("write");
        let e = check_out(dir.path()).expect_err("not empty");
        assert!(e.to_string().contains("not empty"));
        assert!(check_out(&dir.path().join("x")).is_err());
    }
}
