//! [`migrate()`]: `hearth migrate --data-dir DIR [--dry-run]` — detect the data directory's
//! format, plan the steps to this build's, and (unless a dry run) back up, apply, and report.
//!
//! 1. **detect**: [`crate::inspect::dir_state`]; a newer directory is refused; the node's locks
//!    are taken exclusively (a running node makes it fail at once, and no node can start during
//!    the migration), then every component's version is read from its files
//!    ([`crate::inspect::found_versions`]) — a component newer than this build is refused too;
//! 2. **plan**: [`crate::plan::plan`];
//! 3. **back up** ([`crate::backup::make_backup`]) — skipped by a dry run, as is everything after;
//! 4. **apply** each step in order;
//! 5. the [`MigrationReport`] (text or JSON), with notes on what `hearth serve` does itself (a
//!    projection whose version changed is rebuilt from the log at start).

use crate::backup::{make_backup, Backup};
use crate::check::newer;
use crate::error::FormatError;
use crate::inspect::{dir_state, found_versions, DirState, FoundVersion};
use crate::layout::lock_files;
use crate::manifest::{FormatManifest, Verdict};
use crate::plan::{plan, PlannedStep, Step};
use crate::versions::DATA_DIR_FORMAT;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// How to migrate.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Only detect and plan; change nothing.
    pub dry_run: bool,
    /// The projections this build runs (versioned names), for the notes.
    pub projections: Vec<String>,
}

/// What `hearth migrate` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The data directory.
    pub data_dir: String,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// The data dir format found (0: no `format.json`).
    pub from_format: u32,
    /// This build's.
    pub to_format: u32,
    /// Whether nothing needed doing.
    pub up_to_date: bool,
    /// Each component's version as found in its files.
    pub found: BTreeMap<String, FoundVersion>,
    /// The projections the store holds.
    pub projections_found: Vec<String>,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
    /// Whether the steps were applied.
    pub applied: bool,
    /// The backup made before applying.
    pub backup: Option<Backup>,
    /// What else to know.
    pub notes: Vec<String>,
}

/// Migrates `data_dir`; see the module docs.
pub fn migrate(data_dir: &Path, opts: &MigrateOptions) -> Result<MigrationReport, FormatError> {
    let from = match dir_state(data_dir)? {
        DirState::Missing => {
            return Err(FormatError::Missing {
                dir: data_dir.to_path_buf(),
            })
        }
        DirState::Fresh => None,
        DirState::PreManifest => Some(0),
        DirState::Manifest(m) => match m.verdict() {
            Verdict::Newer { what, supported } => return Err(newer(data_dir, what, supported)),
            Verdict::Older(v) => Some(v),
            Verdict::Current => Some(DATA_DIR_FORMAT),
        },
    };
    let mut report = MigrationReport {
        data_dir: data_dir.display().to_string(),
        dry_run: opts.dry_run,
        from_format: from.unwrap_or(DATA_DIR_FORMAT),
        to_format: DATA_DIR_FORMAT,
        up_to_date: false,
        found: BTreeMap::new(),
        projections_found: Vec::new(),
        steps: Vec::new(),
        applied: false,
        backup: None,
        notes: Vec::new(),
    };
    let Some(from) = from else {
        report.up_to_date = true;
        report.notes.push(
            "no node data yet: `hearth serve` writes format.json when it creates the node's data"
                .into(),
        );
        return Ok(report);
    };

    let _locks = lock_exclusive(data_dir)?;
    let found = found_versions(data_dir)?;
    if let Some((name, version, current)) = found.newer() {
        return Err(newer(
            data_dir,
            format!("component {name} version {version}"),
            format!("{name} version {current}"),
        ));
    }
    report.found = found.components;
    report.projections_found = found.projections;
    let mut running = opts.projections.clone();
    running.sort();
    if !report.projections_found.is_empty() && report.projections_found != running {
        report.notes.push(format!(
            "the store holds projections [{}], this build runs [{}]: `hearth serve` sets the \
             store aside (state.replaced-<ms>) and rebuilds every projection from the log at \
             start; no migration step is needed for that",
            report.projections_found.join(", "),
            running.join(", ")
        ));
    }
    report.notes.push(
        "log segments are never rewritten (the hash chain and the signatures cover them): old \
         event versions are upcast when read"
            .into(),
    );
    report.steps = plan(from).ok_or_else(|| {
        FormatError::unreadable(
            crate::layout::format_file(data_dir),
            format!("no migration from data dir format {from} to {DATA_DIR_FORMAT}"),
        )
    })?;
    report.up_to_date = report.steps.is_empty();
    if opts.dry_run || report.up_to_date {
        return Ok(report);
    }

    report.backup = Some(make_backup(data_dir, from, now_ms())?);
    for step in &report.steps {
        apply(data_dir, step.step, &report.projections_found)?;
    }
    report.applied = true;
    Ok(report)
}

fn apply(data_dir: &Path, step: Step, projections: &[String]) -> Result<(), FormatError> {
    match step {
        Step::WriteManifest => FormatManifest::current(projections.to_vec()).store(data_dir),
    }
}

/// Takes the node's lock files exclusively (those that exist: a directory whose node never
/// opened its log has none).
fn lock_exclusive(data_dir: &Path) -> Result<Vec<File>, FormatError> {
    let mut held = Vec::new();
    for lock in lock_files(data_dir) {
        let file = match File::open(&lock) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FormatError::io(&lock)(e)),
        };
        match file.try_lock() {
            Ok(()) => held.push(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(FormatError::Locked {
                    dir: data_dir.to_path_buf(),
                    lock,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(FormatError::io(&lock)(e)),
        }
    }
    Ok(held)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MigrationReport {
    /// The report as text.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let why = if self.from_format == 0 {
            " (no format.json: written before format manifests)"
        } else {
            ""
        };
        writeln!(out, "data directory  {}", self.data_dir)?;
        writeln!(
            out,
            "format          {}{why} -> {}",
            self.from_format, self.to_format
        )?;
        if !self.found.is_empty() {
            writeln!(out, "components found:")?;
            for (name, v) in &self.found {
                let version = v.version.map_or("-".to_string(), |v| v.to_string());
                writeln!(out, "  {name:<20} {version:>3}  {}", v.source)?;
            }
        }
        if !self.projections_found.is_empty() {
            writeln!(out, "projections     {}", self.projections_found.join(", "))?;
        }
        if self.up_to_date {
            writeln!(out, "up to date: nothing to do")?;
        } else {
            writeln!(out, "steps:")?;
            for (i, s) in self.steps.iter().enumerate() {
                let state = if self.applied { "done" } else { "planned" };
                writeln!(
                    out,
                    "  {}. {} -> {}: {} [{state}]",
                    i + 1,
                    s.from,
                    s.to,
                    s.what
                )?;
            }
        }
        if let Some(b) = &self.backup {
            writeln!(
                out,
                "backup          {} ({} files)",
                b.dir.display(),
                b.files.len()
            )?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        if self.dry_run && !self.up_to_date {
            writeln!(out, "dry run: nothing was changed")?;
        } else if self.applied {
            writeln!(out, "migrated to data dir format {}", self.to_format)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;

    fn pre_manifest_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(layout::CLUSTER_FILE),
            br#"{"format":1,"cluster_id":"00","node_id":1}"#,
        )
        .expect("write");
        dir
    }

    #[test]
    fn dry_run_changes_nothing_and_migrate_writes_manifest_and_backup() {
        let dir = pre_manifest_dir();
        let d = dir.path();
        let opts = MigrateOptions {
            dry_run: true,
            projections: vec!["counts-1".into()],
        };
        let before: Vec<_> = std::fs::read_dir(d).expect("ls").collect();
        let r = migrate(d, &opts).expect("dry run");
        assert_eq!((r.from_format, r.to_format, r.applied), (0, 1, false));
        assert_eq!(r.steps.len(), 1);
        assert_eq!(std::fs::read_dir(d).expect("ls").count(), before.len());

        let r = migrate(
            d,
            &MigrateOptions {
                dry_run: false,
                ..opts.clone()
            },
        )
        .expect("migrate");
        assert!(r.applied);
        let backup = r.backup.expect("backup");
        assert!(backup.dir.join("cluster.json").exists());
        assert!(backup.dir.join("backup.json").exists());
        let m = FormatManifest::load(d).expect("load").expect("written");
        assert_eq!(m.verdict(), Verdict::Current);
        let r = migrate(d, &opts).expect("again");
        assert!(r.up_to_date && r.steps.is_empty());
        let mut text = Vec::new();
        r.write_text(&mut text).expect("text");
        assert!(String::from_utf8_lossy(&text).contains("up to date"));
    }

    #[test]
    fn a_running_node_or_a_newer_dir_is_refused() {
        let dir = pre_manifest_dir();
        let d = dir.path();
        std::fs::create_dir(d.join("log")).expect("mkdir");
        let lock = File::create(d.join("log").join("LOCK")).expect("lock");
        lock.try_lock().expect("held as a node holds it");
        let e = migrate(d, &MigrateOptions::default()).expect_err("locked");
        assert!(e.to_string().contains("stop it first"), "{e}");
        drop(lock);

        let mut m = FormatManifest::current(vec![]);
        m.data_dir_format = 9;
        m.store(d).expect("store");
        let e = migrate(d, &MigrateOptions::default()).expect_err("newer");
        assert!(e.to_string().contains("format 9"), "{e}");
    }
}
