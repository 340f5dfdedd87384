//! The online audit of a running node (`POST /v1/admin/audit`, `GET /v1/admin/audit/{id}`):
//! the offline audit's four phases on a **consistent snapshot**, while writes go on.
//!
//! ```text
//! POST  → Audits::begin (one at a time, else 409)
//!       → RocksDB checkpoint of the live store under the state machine's lock (applies wait
//!         for the flush; the checkpoint holds exactly the state at applied index A)
//!       → the log made to hold A (its writer synced)                         → 202 {id, A}
//! background (spawn_blocking, node-side in `node::audit_ops`):
//!       verify CRC + chain ..=A, signatures ..=A, rebuild ..=A into a scratch dir,
//!       compare with the checkpoint's digests            → Audits::finish → GET {id} → report
//! ```
//!
//! Entries after A keep committing and being applied during all of it: the audit covers the
//! fixed range `first..=A` and the projection state at A. The checkpoint and the scratch
//! rebuild live in `DATA/state/tmp/audit-<id>/` (on the data directory's filesystem, so the
//! checkpoint's table files are hard links; the state machine empties `tmp/` when it opens,
//! so a crash leaves nothing behind) and are removed when the audit ends.
//!
//! Answering 202 and letting the client poll (instead of holding the request open) keeps a
//! long audit independent of HTTP timeouts. The last [`KEEP_FINISHED`] results stay queryable.
//! Not here: the HTTP handlers (`http::audit`) or the node glue (`node::audit_ops`).

use super::auditor::audit_store;
use super::{AuditOptions, AuditReport, Progress};
use hearth_log::Log;
use hearth_projections::ProjectionStore;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::Path;

/// Finished audits kept for `GET /v1/admin/audit/{id}`.
pub const KEEP_FINISHED: usize = 8;

/// Where an audit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditState {
    /// Taking the snapshot or running the phases.
    Running,
    /// Finished with a report (which may have found problems: see its `ok`).
    Done,
    /// Could not run to the end (`error` says why).
    Failed,
}

/// An audit as `POST` and `GET /v1/admin/audit/{id}` report it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditStatus {
    /// Its id (counts up from 1 per node process).
    pub id: u64,
    /// Where it is.
    pub state: AuditState,
    /// The snapshot's applied index: the audit covers the log through it.
    pub through_index: Option<u64>,
    /// Its term.
    pub through_term: Option<u64>,
    /// When it started, Unix ms.
    pub started_unix_ms: u64,
    /// When it ended, Unix ms.
    pub finished_unix_ms: Option<u64>,
    /// `report.ok` when done.
    pub ok: Option<bool>,
    /// The exit code `hearth audit` would give: the report's, or 2 (log damage) / 1 when it
    /// failed.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// The report (as `hearth audit --json` prints it) when done.
    pub report: Option<AuditReport>,
}

/// The node's audits: at most one running, the last few finished.
#[derive(Debug, Default)]
pub struct Audits {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_id: u64,
    list: VecDeque<AuditStatus>,
}

impl Audits {
    /// Starts a new audit; `Err(id)` of the one running.
    pub fn begin(&self, now_ms: u64) -> Result<u64, u64> {
        let mut inner = self.inner.lock();
        if let Some(running) = inner.list.iter().find(|a| a.state == AuditState::Running) {
            return Err(running.id);
        }
        inner.last_id += 1;
        let id = inner.last_id;
        inner.list.push_back(AuditStatus {
            id,
            state: AuditState::Running,
            through_index: None,
            through_term: None,
            started_unix_ms: now_ms,
            finished_unix_ms: None,
            ok: None,
            exit_code: None,
            error: None,
            report: None,
        });
        while inner.list.len() > KEEP_FINISHED + 1 {
            inner.list.pop_front();
        }
        Ok(id)
    }

    /// Records the snapshot's applied log id.
    pub fn set_range(&self, id: u64, applied: Option<(u64, u64)>) {
        if let Some(a) = self.inner.lock().list.iter_mut().find(|a| a.id == id) {
            a.through_index = applied.map(|(i, _)| i);
            a.through_term = applied.map(|(_, t)| t);
        }
    }

    /// Records how audit `id` ended.
    pub fn finish(&self, id: u64, result: anyhow::Result<AuditReport>, now_ms: u64) {
        let mut inner = self.inner.lock();
        let Some(a) = inner.list.iter_mut().find(|a| a.id == id) else {
            return;
        };
        a.finished_unix_ms = Some(now_ms);
        match result {
            Ok(report) => {
                a.state = AuditState::Done;
                a.ok = Some(report.ok);
                a.exit_code = Some(report.exit_code);
                a.report = Some(report);
            }
            Err(e) => {
                a.state = AuditState::Failed;
                a.ok = Some(false);
                a.exit_code = Some(crate::cli::exit_code(&e));
                a.error = Some(crate::cli::one_line(&e));
            }
        }
    }

    /// Audit `id`, if known.
    pub fn get(&self, id: u64) -> Option<AuditStatus> {
        self.inner.lock().list.iter().find(|a| a.id == id).cloned()
    }
}

/// Phases 1–4 of an online audit (blocking): `log` through `through` against the store
/// checkpoint in `checkpoint`, rebuilding under `scratch_parent`.
pub fn audit_checkpoint(
    log: &Log,
    archive: Option<&Log>,
    checkpoint: &Path,
    scratch_parent: &Path,
    data_dir: &Path,
    through: u64,
    threads: usize,
) -> anyhow::Result<AuditReport> {
    let live = ProjectionStore::open_read_only(checkpoint, crate::node::node_projections())
        .map_err(|e| {
            anyhow::anyhow!("open the audit's checkpoint {}: {e}", checkpoint.display())
        })?;
    let opts = AuditOptions {
        threads,
        scratch_parent: Some(scratch_parent.to_path_buf()),
        archive: None,
        snapshot: None,
    };
    audit_store(
        log,
        archive,
        &live,
        data_dir,
        Some(through),
        &opts,
        threads.max(1),
        &Progress::hidden(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audit_at_a_time_and_results_are_kept() {
        let audits = Audits::default();
        let a = audits.begin(1).expect("first");
        assert_eq!(audits.begin(2), Err(a), "one at a time");
        audits.set_range(a, Some((7, 2)));
        audits.finish(a, Err(anyhow::anyhow!("boom")), 3);
        let s = audits.get(a).expect("kept");
        assert_eq!(s.state, AuditState::Failed);
        assert_eq!((s.through_index, s.exit_code), (Some(7), Some(1)));
        let mut last = a;
        for t in 0..(KEEP_FINISHED as u64 + 3) {
            last = audits.begin(10 + t).expect("free again");
            audits.finish(last, Ok(AuditReport::default()), 11 + t);
        }
        assert!(audits.get(a).is_none(), "old results drop out");
        assert_eq!(audits.get(last).map(|s| s.state), Some(AuditState::Done));
        assert_eq!(audits.get(999).map(|s| s.id), None);
    }
}
