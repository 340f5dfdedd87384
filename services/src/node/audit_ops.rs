//! The node's side of the online audit (see [`crate::audit::online`]): take the snapshot,
//! make sure the log holds its index, run the phases in the background, keep the result.
//!
//! Task: one `spawn_blocking` per audit (the phases), owned by a node task so shutdown aborts
//! the waiting; the blocking work then finishes on its own and removes its directory.

use super::{now_ms, AdminError, Node};
use crate::audit::online::{audit_checkpoint, AuditStatus};
use std::path::PathBuf;
use std::time::Duration;

/// How long the audit waits for the log to hold the snapshot's index.
const LOG_CATCH_UP: Duration = Duration::from_secs(10);

impl Node {
    /// Starts an online audit with `threads` worker threads (≥ 1): returns once the snapshot
    /// is taken (its index is in the answer); the phases run in the background. One at a time:
    /// [`AdminError::Conflict`] while one runs.
    pub async fn start_audit(&self, threads: usize) -> Result<AuditStatus, AdminError> {
        let audits = &self.inner.audits;
        let id = audits.begin(now_ms()).map_err(|running| {
            AdminError::Conflict(format!(
                "audit {running} is running; see GET /v1/admin/audit/{running}"
            ))
        })?;
        let dir = crate::paths::state_dir(&self.inner.settings.data_dir)
            .join("tmp")
            .join(format!("audit-{id}-{}", std::process::id()));
        let applied = match self.audit_snapshot(&dir).await {
            Ok(applied) => applied,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                let message = crate::cli::one_line(&e);
                audits.finish(id, Err(e), now_ms());
                return Err(AdminError::Failed(message));
            }
        };
        audits.set_range(id, applied);
        let through = applied.map_or(0, |(index, _)| index);
        let node = self.clone();
        let log = self.inner.store.log().clone();
        let archive = self.inner.archive.clone();
        let data_dir = self.inner.settings.data_dir.clone();
        let threads = threads.max(1);
        self.spawn(async move {
            let work_dir = dir.clone();
            let result = tokio::task::spawn_blocking(move || {
                let result = audit_checkpoint(
                    &log,
                    archive.as_ref(),
                    &work_dir.join("checkpoint"),
                    &work_dir,
                    &data_dir,
                    through,
                    threads,
                );
                let _ = std::fs::remove_dir_all(&work_dir);
                result
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the audit task failed: {e}")));
            if let Ok(r) = &result {
                tracing::info!(id, through, ok = r.ok, "online audit finished");
            }
            node.inner.audits.finish(id, result, now_ms());
        });
        audits
            .get(id)
            .ok_or_else(|| AdminError::Failed(format!("audit {id} vanished")))
    }

    /// Audit `id` of this node process, if known.
    pub fn audit_status(&self, id: u64) -> Option<AuditStatus> {
        self.inner.audits.get(id)
    }

    /// Checkpoints the store into `dir/checkpoint` (applies wait for it) and waits until the
    /// log holds the checkpoint's applied index. Returns that applied `(index, term)`.
    async fn audit_snapshot(&self, dir: &std::path::Path) -> anyhow::Result<Option<(u64, u64)>> {
        let sm = self.inner.sm.clone();
        let dir: PathBuf = dir.to_path_buf();
        let applied = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            let checkpoint = dir.join("checkpoint");
            Ok(sm.with_store(|store| store.checkpoint(&checkpoint))??)
        })
        .await??;
        let Some((index, term)) = applied else {
            return Ok(None);
        };
        let deadline = tokio::time::Instant::now() + LOG_CATCH_UP;
        loop {
            let log = self.inner.store.log();
            if log.last().is_some_and(|last| last.index >= index) {
                return Ok(Some((index, term)));
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the log does not hold the snapshot's index {index} after {LOG_CATCH_UP:?}"
            );
            self.inner.store.sync().await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
