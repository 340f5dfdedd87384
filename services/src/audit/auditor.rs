//! [`audit`]: the four phases over a stopped node's data directory, in order, into one
//! [`AuditReport`].
//!
//! 1. **verify** ([`super::verify`]): CRC, chain and payload hashes of every entry, on every
//!    core. Damage ends the audit here with the log's error (exit code 2).
//! 2. **events** ([`super::events`]): kinds counted, `ManifestVerified` signatures checked.
//! 3. **rebuild** ([`super::rebuild`]): every projection refolded from the first entry into a
//!    scratch directory, through exactly the index the live store has applied — or, when the
//!    log was purged without an archive that reaches back (or `--snapshot` says so), from a
//!    signed snapshot ([`super::signed_snapshot`]) the log continues, checked first.
//! 4. **compare** ([`super::compare`]): digests, and the first differing key of each table
//!    that differs.
//!
//! Nothing in the data directory changes; the scratch directory is removed on every way out.

use super::compare;
use super::events::scan_events_in;
use super::offline::OfflineDir;
use super::progress::Progress;
use super::rebuild::{rebuild_from, rebuild_onto, Rebuilt, Until};
use super::report::{
    Applied, ArchiveSummary, AuditReport, BaseSnapshot, EventSummary, LogSummary, PhaseTiming,
    ProjectionSummary, SignatureSummary,
};
use super::signed_snapshot::{self, SignedSnapshot};
use super::verify::verify_log_through;
use crate::hex;
use anyhow::Context as _;
use hearth_log::Verification;
use hearth_projections::ProjectionStore;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What phase 3 can do with the live store.
enum Plan {
    /// The live store has applied nothing: compare it with an empty store.
    Empty,
    /// Rebuild through this index.
    Through(u64),
    /// Rebuild through this index onto the state of this signed snapshot.
    FromSnapshot(PathBuf, u64),
    /// The store has applied past the log's end.
    Ahead,
    /// No exact rebuild is possible (why).
    Incomplete(String),
}

/// How the audit runs.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// Threads for verifying and for signature checks (0: one per core).
    pub threads: usize,
    /// Where the scratch directory of the rebuild goes (default: the system's temporary
    /// directory).
    pub scratch_parent: Option<PathBuf>,
    /// The archive of purged entries (default: `DATA_DIR/archive/log` when it exists).
    pub archive: Option<PathBuf>,
    /// Start the rebuild from this signed snapshot (its `.signed.json`) instead of the first
    /// entry. Default: from the first entry when the history is whole, else from the oldest
    /// signed snapshot in `DATA_DIR/archive/snapshots` that the log continues.
    pub snapshot: Option<PathBuf>,
}

/// Audits the node data directory `data_dir`; see the module docs.
pub fn audit(
    data_dir: &Path,
    opts: &AuditOptions,
    progress: &Progress,
) -> anyhow::Result<AuditReport> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let dir = OfflineDir::lock(data_dir)?;
    let log = dir.open_log()?;
    let live = dir.open_store()?;
    let archive = dir.open_archive(opts.archive.as_deref())?;
    audit_store(
        &log,
        archive.as_ref(),
        &live,
        data_dir,
        None,
        opts,
        threads,
        progress,
    )
}

/// The four phases on an open log and a live store (or a checkpoint of one); `through` bounds
/// the entries read (the online audit passes the index its checkpoint applied; `None`: every
/// entry, as the offline audit does). `threads` ≥ 1.
#[allow(clippy::too_many_arguments)]
pub fn audit_store(
    log: &hearth_log::Log,
    archive: Option<&hearth_log::Log>,
    live: &ProjectionStore,
    data_dir: &Path,
    through: Option<u64>,
    opts: &AuditOptions,
    threads: usize,
    progress: &Progress,
) -> anyhow::Result<AuditReport> {
    let live_applied = live.applied();
    let mut report = AuditReport {
        data_dir: data_dir.display().to_string(),
        ..AuditReport::default()
    };
    let bound = through.unwrap_or(u64::MAX);
    // The history: the archive of purged entries (if any), then the log.
    let logs: Vec<&hearth_log::Log> = archive.into_iter().chain(std::iter::once(log)).collect();
    let first = logs.iter().find_map(|l| l.first_index());
    let total = match (first, log.last()) {
        (Some(first), Some(last)) => last.index.min(bound).saturating_sub(first) + 1,
        _ => 0,
    };

    // 1. verify (the archive, then the log, then that they meet)
    let bar = progress.phase("verify", total);
    let archived = match archive {
        Some(a) => Some(
            verify_log_through(a, bound, Verification::Full, threads, &|n| bar.inc(n))
                .with_context(|| format!("verify {}", a.dir().display()))?,
        ),
        None => None,
    };
    let check = verify_log_through(log, bound, Verification::Full, threads, &|n| bar.inc(n))
        .with_context(|| format!("verify {}", log.dir().display()))?;
    bar.finish_and_clear();
    let linked = super::offline::archive_links(archive, log);
    report.log = LogSummary {
        dir: log.dir().display().to_string(),
        first_index: check.first.map(|p| p.index),
        last_index: check.last.map(|p| p.index),
        entries: check.entries,
        redacted: check.redacted,
        payload_bytes: check.payload_bytes,
        segments: log.segments().len() as u64,
        head_chain: check.last.map(|p| hex::encode(&p.chain)),
        head_term: check.last.map(|p| p.term),
        purged_through: log.purged().map(|p| p.index),
        archive: archive.zip(archived.as_ref()).map(|(a, c)| ArchiveSummary {
            dir: a.dir().display().to_string(),
            first_index: c.first.map(|p| p.index),
            last_index: c.last.map(|p| p.index),
            entries: c.entries,
        }),
    };
    report.phases.push(PhaseTiming::new(
        "verify",
        "CRC + chain + payload hashes",
        check.secs,
        check.entries,
        "entries",
        check.threads,
    ));

    // 2. events and signatures
    let bar = progress.phase("events", total);
    let scan = scan_events_in(&logs, bound, threads, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    report.events = EventSummary {
        entries: scan.entries,
        events: scan.events,
        blobs: scan.blobs,
        kinds: scan
            .kinds
            .iter()
            .map(|(k, n)| ((*k).to_string(), *n))
            .collect(),
    };
    report.signatures = SignatureSummary {
        checked: scan.signatures_checked,
        bad: scan.signatures_bad,
        bad_listed: scan.bad.clone(),
    };
    report.phases.push(PhaseTiming::new(
        "events",
        "decode, count kinds, check signatures",
        scan.secs,
        scan.entries,
        "entries",
        scan.threads + 1,
    ));

    // 3 and 4. rebuild through the live applied index, compare
    report.projections = ProjectionSummary {
        store: live.path().display().to_string(),
        live_applied: live_applied.map(|(index, term)| Applied { index, term }),
        ..ProjectionSummary::default()
    };
    let last = check.last.map(|p| p.index);
    let plan = match live_applied {
        None => Plan::Empty,
        Some((index, _)) => {
            let base = match &opts.snapshot {
                Some(path) => Some(path.clone()),
                None if !linked => linking_snapshot(data_dir, archive, log, index)?,
                None => None,
            };
            match base {
                None if !linked => Plan::Incomplete(format!(
                    "the log was purged through index {} and a rebuild needs every entry from \
                     the first or a signed snapshot the log continues: {}, and no signed \
                     snapshot in {} links to the log; audit a node that kept its whole log",
                    log.purged().map_or(0, |p| p.index),
                    match archive {
                        None => "there is no archive of purged entries".to_owned(),
                        Some(a) => format!(
                            "the archive {} does not reach the purge point with the same chain",
                            a.dir().display()
                        ),
                    },
                    crate::paths::snapshot_archive_dir(data_dir).display()
                )),
                _ if last.is_none_or(|l| l < index) => Plan::Ahead,
                Some(path) => Plan::FromSnapshot(path, index),
                None => Plan::Through(index),
            }
        }
    };
    match plan {
        Plan::Incomplete(note) => report.projections.note = Some(note),
        Plan::FromSnapshot(path, index) => {
            let scratch =
                crate::bench::scratch_dir(opts.scratch_parent.as_deref(), "hearth-audit-")?;
            from_snapshot(
                &mut report,
                data_dir,
                &path,
                &scratch.path().join("store"),
                &logs,
                log,
                archive,
                live,
                index,
                progress,
            )?;
            scratch
                .close()
                .context("remove the audit's scratch directory")?;
        }
        Plan::Ahead => {
            // The store holds state its own log cannot produce: nothing to rebuild, and the
            // applied indexes differ (a mismatch).
            report.projections.rebuilt_applied = check.last.map(|p| Applied {
                index: p.index,
                term: p.term,
            });
        }
        Plan::Empty | Plan::Through(_) => {
            let scratch =
                crate::bench::scratch_dir(opts.scratch_parent.as_deref(), "hearth-audit-")?;
            let store_dir = scratch.path().join("store");
            let rebuilt = match plan {
                Plan::Through(index) => {
                    let todo = index.saturating_sub(first.unwrap_or(index)) + 1;
                    let bar = progress.phase("rebuild", todo);
                    let r = rebuild_from(
                        &logs,
                        &store_dir,
                        crate::node::node_projections(),
                        Until::Index(index),
                        Verification::Crc,
                        &|n| bar.inc(n),
                    )?;
                    bar.finish_and_clear();
                    report.projections.rebuilt_applied = r.last.map(|p| Applied {
                        index: p.index,
                        term: p.term,
                    });
                    report.projections.rebuilt_chain = r.last.map(|p| hex::encode(&p.chain));
                    r
                }
                // Nothing applied live: compare with an empty store.
                _ => Rebuilt {
                    store: ProjectionStore::rebuild(
                        &store_dir,
                        crate::node::node_projections(),
                        std::iter::empty(),
                    )?,
                    entries: 0,
                    events: 0,
                    last: None,
                    log_time_ms: 0,
                    secs: 0.0,
                },
            };
            compare_rebuilt(&mut report, live, rebuilt)?;
            scratch
                .close()
                .context("remove the audit's scratch directory")?;
        }
    }
    report.conclude();
    Ok(report)
}

/// Phase 4: times the rebuild, then compares its digests with the live store's.
fn compare_rebuilt(
    report: &mut AuditReport,
    live: &ProjectionStore,
    rebuilt: Rebuilt,
) -> anyhow::Result<()> {
    report.phases.push(PhaseTiming::new(
        "rebuild",
        &format!("refold {} entries into a scratch store", rebuilt.entries),
        rebuilt.secs,
        rebuilt.events,
        "events",
        2,
    ));
    let start = Instant::now();
    let (_, live_digests) = live.digests_with_applied()?;
    let rebuilt_digests = rebuilt.store.digests()?;
    report.projections.tables =
        compare::compare(&live_digests, live, &rebuilt_digests, &rebuilt.store)?;
    report.phases.push(PhaseTiming::new(
        "compare",
        "digest both stores, find first differences",
        start.elapsed().as_secs_f64(),
        report.projections.tables.len() as u64,
        "tables",
        1,
    ));
    Ok(())
}

/// The chain hash of entry `index` in the history: the log's purge point, else the entry in
/// the log or the archive.
fn chain_at(
    archive: Option<&hearth_log::Log>,
    log: &hearth_log::Log,
    index: u64,
) -> Option<[u8; 32]> {
    if let Some(p) = log.purged().filter(|p| p.index == index) {
        return Some(p.chain);
    }
    archive
        .into_iter()
        .chain(std::iter::once(log))
        .find_map(|l| l.read(index..=index).ok()?.into_iter().next())
        .map(|r| r.chain)
}

/// Whether the history holds every entry after `index` (the log was purged no further).
fn continues_after(log: &hearth_log::Log, index: u64) -> bool {
    log.purged().is_none_or(|p| p.index <= index)
}

/// The oldest signed snapshot in `DATA_DIR/archive/snapshots` at or before `applied` whose
/// claimed chain hash is the history's at its index and after which the log is whole (the
/// signature and state are checked when it is opened).
fn linking_snapshot(
    data_dir: &Path,
    archive: Option<&hearth_log::Log>,
    log: &hearth_log::Log,
    applied: u64,
) -> anyhow::Result<Option<PathBuf>> {
    let dir = crate::paths::snapshot_archive_dir(data_dir);
    for (index, path) in signed_snapshot::list(&dir)? {
        if index > applied || !continues_after(log, index) {
            continue;
        }
        let Ok(signed) = SignedSnapshot::load(&path) else {
            continue;
        };
        if signed.chain().is_some() && signed.chain() == chain_at(archive, log, index) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Phases 3 and 4 from the signed snapshot at `path`: checked and unpacked into `store_dir`,
/// then the log after it folded in through `index`, then compared with `live`.
#[allow(clippy::too_many_arguments)]
fn from_snapshot(
    report: &mut AuditReport,
    data_dir: &Path,
    path: &Path,
    store_dir: &Path,
    logs: &[&hearth_log::Log],
    log: &hearth_log::Log,
    archive: Option<&hearth_log::Log>,
    live: &ProjectionStore,
    index: u64,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut base = BaseSnapshot {
        file: path.display().to_string(),
        ..BaseSnapshot::default()
    };
    // The audited node's own PeerId (public: from its identity file), when it has one.
    let this_node = crate::identity::NodeIdentity::load(data_dir)
        .ok()
        .flatten()
        .map(|id| id.peer_id());
    let opened = SignedSnapshot::open_verified(
        path,
        store_dir,
        crate::node::node_projections(),
        this_node.as_ref(),
    );
    let (signed, signer, store) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            base.forged = e.is_forged();
            base.problem = Some(e.to_string());
            report.projections.base_snapshot = Some(base);
            report.projections.note =
                Some("the rebuild did not run: its signed snapshot does not check out".into());
            return Ok(());
        }
    };
    base.index = Some(signed.last_index);
    base.term = Some(signed.last_term);
    base.chain = Some(signed.chain_head.clone());
    base.signer = Some(signer.to_base58());
    let links = signed.chain() == chain_at(archive, log, signed.last_index)
        && continues_after(log, signed.last_index);
    if !links || signed.last_index > index {
        report.projections.note = Some(format!(
            "the signed snapshot at index {} is not part of this history up to {index}: the \
             log does not hold that index with the signed chain hash, or was purged past it, \
             or the live store applied less",
            signed.last_index
        ));
        report.projections.base_snapshot = Some(base);
        return Ok(());
    }
    report.projections.base_snapshot = Some(base);
    let bar = progress.phase("rebuild", index - signed.last_index);
    let rebuilt = rebuild_onto(logs, store, Until::Index(index), Verification::Crc, &|n| {
        bar.inc(n)
    })?;
    bar.finish_and_clear();
    report.projections.rebuilt_applied = rebuilt
        .store
        .applied()
        .map(|(index, term)| Applied { index, term });
    report.projections.rebuilt_chain = Some(
        rebuilt
            .last
            .map_or(signed.chain_head.clone(), |p| hex::encode(&p.chain)),
    );
    compare_rebuilt(report, live, rebuilt)
}
