//! [`OfflineDir`]: read-only access to a *stopped* node's data directory, for the audit,
//! `hearth replay` and `hearth status --data-dir`.
//!
//! A running node holds two exclusive `flock`s: the log's (`DATA/log/LOCK`) and the state
//! machine's (`DATA/state/LOCK`). An [`OfflineDir`] takes both **shared** (without creating
//! either file), so it fails at once, in one line, when a node is running, and a node started
//! while it is held fails to lock instead of writing under the reader. The log and the
//! projection store are then opened read-only: nothing in the directory changes.
//!
//! Not a way to read a *running* node: for that, ask it over HTTP (`--server`).

use anyhow::Context as _;
use hearth_log::Log;
use hearth_projections::ProjectionStore;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A stopped node's data directory, locked against a node starting while it is read.
#[derive(Debug)]
pub struct OfflineDir {
    data_dir: PathBuf,
    _locks: Vec<File>,
}

impl OfflineDir {
    /// Checks `data_dir` exists and is not of a newer format than this build reads, and takes
    /// the node's locks shared. Fails with one line naming the lock when a node is running on it.
    pub fn lock(data_dir: &Path) -> anyhow::Result<OfflineDir> {
        if !data_dir.is_dir() {
            anyhow::bail!("data directory {} does not exist", data_dir.display());
        }
        hearth_migrations::check_readable(data_dir)?;
        let mut locks = Vec::new();
        for path in [
            crate::paths::log_dir(data_dir).join(hearth_log::format::LOCK_NAME),
            hearth_raft::projection_sm::lock_path(&crate::paths::state_dir(data_dir)),
        ] {
            if let Some(lock) = lock_shared(&path)? {
                locks.push(lock);
            }
        }
        Ok(OfflineDir {
            data_dir: data_dir.to_path_buf(),
            _locks: locks,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.data_dir
    }

    /// The log, opened read-only.
    pub fn open_log(&self) -> anyhow::Result<Log> {
        crate::cli::open_log_read_only(&self.data_dir)
    }

    /// The archive of purged entries, opened read-only: `dir`, or `DATA_DIR/archive/log` when
    /// that exists; `None` when there is none.
    pub fn open_archive(&self, dir: Option<&Path>) -> anyhow::Result<Option<Log>> {
        let default = crate::paths::archive_dir(&self.data_dir);
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None if default.is_dir() => default,
            None => return Ok(None),
        };
        Log::open_read_only(&dir)
            .map(Some)
            .with_context(|| format!("cannot open the archive {}", dir.display()))
    }

    /// The projection store, opened read-only with every projection a node runs.
    pub fn open_store(&self) -> anyhow::Result<ProjectionStore> {
        let dir = crate::paths::projection_store_dir(&self.data_dir);
        if !dir.is_dir() {
            anyhow::bail!(
                "no projection store in data directory {} ({} does not exist)",
                self.data_dir.display(),
                dir.display()
            );
        }
        match ProjectionStore::open_read_only(&dir, crate::node::node_projections()) {
            Err(hearth_projections::ProjectionError::NeedsRebuild { projection, .. }) => {
                anyhow::bail!(
                    "the projection store in {} was written by an older hearth: it lacks the \
                     projection {projection}; start the node once (hearth serve), which rebuilds \
                     its projections from the log, then run this again",
                    self.data_dir.display()
                )
            }
            other => {
                other.with_context(|| format!("cannot open projection store {}", dir.display()))
            }
        }
    }
}

/// Takes `path` (a lock file) shared; `None` when it does not exist (nothing to lock).
fn lock_shared(path: &Path) -> anyhow::Result<Option<File>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "a node is running on this data directory ({} is locked): stop it first, or ask it \
             over HTTP with --server",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Whether `archive` and `log` together hold the whole history: the log was never purged, or
/// the archive's entry at the purge point has the chain the log restarted from.
pub fn archive_links(archive: Option<&Log>, log: &Log) -> bool {
    match (archive, log.purged()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(p)) => a
            .read(p.index..=p.index)
            .ok()
            .and_then(|r| r.into_iter().next())
            .is_some_and(|r| r.chain == p.chain),
    }
}

/// The error for log entry `index`, which does not decode as a raft entry (`e` says why).
pub fn not_a_raft_entry(
    index: u64,
    e: impl std::error::Error + Send + Sync + 'static,
) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "entry {index} of the log is not a raft entry (the node could not have applied it)"
    ))
}

/// Calls `f` on every entry of `logs` from `start` through `through`, checked at `level`,
/// reading them one after the other as one history (an archive of purged entries, then the
/// live log): each from after the previous one's last entry, since an archive may still share
/// entries with the live log when a purge was skipped. `f` returning `false` stops the whole
/// scan.
pub fn scan_history(
    logs: &[&Log],
    start: u64,
    through: u64,
    level: hearth_log::Verification,
    mut f: impl FnMut(hearth_log::Record) -> hearth_log::Result<bool>,
) -> anyhow::Result<()> {
    let mut from = start;
    for &log in logs {
        let next = log.last().map_or(from, |l| l.index + 1).max(from);
        let mut go_on = true;
        log.scan_with(from..=through, level, |rec| {
            go_on = f(rec)?;
            Ok(go_on)
        })
        .with_context(|| format!("read {}", log.dir().display()))?;
        if !go_on {
            break;
        }
        from = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_one_clear_line_and_missing_locks_are_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path();
        assert!(
            OfflineDir::lock(data).is_ok(),
            "no lock files: nothing to lock"
        );

        let state = crate::paths::state_dir(data);
        std::fs::create_dir_all(&state).expect("state dir");
        let lock = hearth_raft::projection_sm::lock_path(&state);
        let held = File::create(&lock).expect("lock file");
        held.try_lock().expect("exclusive, as a node holds it");
        let err = OfflineDir::lock(data).expect_err("a node holds it");
        let line = crate::cli::one_line(&err);
        assert!(
            line.contains("a node is running") && line.contains("LOCK"),
            "{line}"
        );
        drop(held);

        let reader = OfflineDir::lock(data).expect("free again");
        let node = File::open(&lock).expect("open");
        assert!(
            node.try_lock().is_err(),
            "a node cannot take it while a reader holds it"
        );
        drop(reader);
        assert!(OfflineDir::lock(&data.join("missing")).is_err());
    }
}
