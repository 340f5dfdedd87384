//! The archive of purged entries: before the store purges its log through an index, every
//! entry up to it is appended to a second `hearth-log` [`Log`] (the archive), durably — same
//! index, term and payload, and a redacted entry stays redacted under its kept payload hash —
//! so the archive's chain is the live log's chain, and the two together are the whole history
//! an audit replays from the first entry.
//!
//! The archive can only continue the live log without a gap: it starts at the live log's first
//! entry, and only while the live log has never been purged (a log that restarted from a
//! snapshot's position chains from a hash the archive never saw). When that does not hold,
//! [`archive_through`] answers [`ArchiveError::Gap`]: the history is already incomplete on
//! this node, and the purge goes ahead (with a warning). When writing the archive fails it
//! answers [`ArchiveError::Write`] and the store skips that purge: the entries stay in the live
//! log (disk is traded for history, never the reverse).
//!
//! Not here: redacting archived entries (the node's redactor does that to both logs), and
//! reading the archive (the audit opens it read-only).

use hearth_log::{Entry, Log};

/// Why entries could not be archived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The archive cannot continue the live log (it started late, or the log restarted from
    /// a snapshot): archiving is over for this node's history, purging is not.
    #[error("the archive cannot continue the log: {0}")]
    Gap(String),
    /// Reading, writing or checking failed: purging now would lose entries.
    #[error("archiving failed: {0}")]
    Write(String),
}

/// Entries read from the live log per step.
const STEP: u64 = 256;

/// Appends to `archive` every entry of `live` after the archive's last one, through `upto`
/// (clamped to the live log's last entry), and checks that both logs then have the same chain
/// at the archive's head. `Ok` when there was nothing to add. An `Err` names why the purge must
/// not go ahead.
pub async fn archive_through(live: &Log, archive: &Log, upto: u64) -> Result<(), ArchiveError> {
    let Some(live_last) = live.last() else {
        return Ok(());
    };
    let upto = upto.min(live_last.index);
    let next = match archive.last() {
        Some(a) => a.index + 1,
        None => {
            if let Some(p) = live.purged() {
                return Err(ArchiveError::Gap(format!(
                    "the log was purged through {} before it had an archive: the archive could \
                     not start where the history does",
                    p.index
                )));
            }
            match live.first_index() {
                Some(f) => f,
                None => return Ok(()),
            }
        }
    };
    if next > upto {
        return Ok(());
    }
    if live.first_index().is_some_and(|f| f > next) {
        return Err(ArchiveError::Gap(format!(
            "the archive ends at {} and the log starts at {}",
            next.saturating_sub(1),
            live.first_index().unwrap_or(0)
        )));
    }
    let mut at = next;
    while at <= upto {
        let end = (at + STEP - 1).min(upto);
        let log = live.clone();
        let records = tokio::task::spawn_blocking(move || log.read(at..=end))
            .await
            .map_err(|e| ArchiveError::Write(format!("reading entries {at}..={end}: {e}")))?
            .map_err(|e| ArchiveError::Write(format!("reading entries {at}..={end}: {e}")))?;
        if records.len() as u64 != end - at + 1 {
            return Err(ArchiveError::Write(format!(
                "reading entries {at}..={end}: {} found",
                records.len()
            )));
        }
        let entries: Vec<Entry> = records
            .into_iter()
            .map(|r| Entry {
                index: r.index,
                term: r.term,
                payload: r.payload,
                redacted_from: r.redacted.then_some(r.payload_hash),
            })
            .collect();
        archive.append(entries).await.map_err(|e| {
            ArchiveError::Write(format!(
                "appending entries {at}..={end} to the archive: {e}"
            ))
        })?;
        at = end + 1;
    }
    let head = archive.last().map(|p| (p.index, p.chain));
    let log = live.clone();
    let want = tokio::task::spawn_blocking(move || log.read(upto..=upto))
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|r| r.into_iter().next())
        .map(|r| (r.index, r.chain));
    if head != want {
        return Err(ArchiveError::Gap(format!(
            "the archive's head {head:?} is not the log's entry {upto}: its chain differs"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_log::LogOptions;

    async fn filled(dir: &std::path::Path, n: u64) -> Log {
        let log = Log::open(dir, LogOptions::default()).expect("open");
        let entries = (1..=n)
            .map(|i| Entry::new(i, 1, format!("entry {i}").into_bytes()))
            .collect();
        log.append(entries).await.expect("append");
        log
    }

    #[tokio::test]
    async fn the_archive_continues_the_log_with_the_same_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = filled(&dir.path().join("live"), 600).await;
        live.redact(7, 0..3).await.expect("redact");
        let archive = Log::open(dir.path().join("archive"), LogOptions::default()).expect("open");
        archive_through(&live, &archive, 300).await.expect("first");
        live.purge_through(300).await.expect("purge");
        // Idempotent, then continued past the purge point.
        archive_through(&live, &archive, 300).await.expect("again");
        archive_through(&live, &archive, 10_000)
            .await
            .expect("rest");
        assert_eq!(archive.first_index(), Some(1));
        assert_eq!(archive.last(), live.last());
        let rec = archive.read(7..=7).expect("read").remove(0);
        assert!(rec.redacted, "a redacted entry stays redacted");
        assert_eq!(archive.verify(..).expect("verify").entries, 600);
    }

    #[tokio::test]
    async fn a_log_purged_before_it_had_an_archive_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = filled(&dir.path().join("live"), 40).await;
        live.purge_through(10).await.expect("purge");
        let archive = Log::open(dir.path().join("archive"), LogOptions::default()).expect("open");
        let e = archive_through(&live, &archive, 20)
            .await
            .expect_err("no start");
        assert!(
            matches!(&e, ArchiveError::Gap(why) if why.contains("purged through 10")),
            "{e}"
        );
        assert_eq!(archive.last(), None);
    }
}
