//! [`make_backup`]: before `hearth migrate` changes anything, a copy of what a migration may
//! change, in `DATA/backup-v<from>-<unix ms>/`:
//!
//! * the metadata files: `format.json` (when there is one), `cluster.json`, `peers.json`,
//!   `state/state/raft-sm.meta`;
//! * the projection store as a checkpoint: its table files (`*.sst`, immutable) hard-linked,
//!   every other file copied (RocksDB's `LOCK` and info `LOG*` files left out). The node is
//!   stopped (the migration holds its locks), so this is exactly what RocksDB's checkpoint
//!   makes, without opening the store for writing;
//! * `backup.json`: the format it was taken at, when, the files, and how to restore.
//!
//! Never the log segments (no migration rewrites them), the shard files or the identity key.
//! Every file and directory is fsynced before the migration goes on. Hard links keep the store's
//! old table files alive after the node compacts them: remove the backup once the node runs well.

use crate::error::FormatError;
use crate::layout::{self, store_dir, BACKUP_PREFIX};
use crate::manifest::{parent, write_durably};
use serde::Serialize;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// What a backup holds.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    /// The backup directory.
    pub dir: PathBuf,
    /// The data dir format it was taken at.
    pub from_format: u32,
    /// When, Unix ms.
    pub created_unix_ms: u64,
    /// Files, relative to the data directory.
    pub files: Vec<String>,
    /// How to restore.
    pub restore: String,
}

/// Backs up `data_dir` (at data dir format `from`) into a new `backup-v<from>-<now_ms>/`.
pub fn make_backup(data_dir: &Path, from: u32, now_ms: u64) -> Result<Backup, FormatError> {
    let dir = data_dir.join(format!("{BACKUP_PREFIX}{from}-{now_ms}"));
    fs::create_dir(&dir).map_err(FormatError::io(&dir))?;
    let mut files = Vec::new();
    let state = layout::state_dir(data_dir);
    let metadata = [
        layout::format_file(data_dir),
        data_dir.join(layout::CLUSTER_FILE),
        data_dir.join(layout::PEER_LIST),
        hearth_raft::projection_sm::sm_meta_path(&state),
    ];
    for src in metadata {
        if src.exists() {
            let rel = relative(data_dir, &src);
            copy_synced(&src, &dir.join(&rel))?;
            files.push(rel.display().to_string());
        }
    }
    let store = store_dir(data_dir);
    if store.is_dir() {
        let rel = relative(data_dir, &store);
        let to = dir.join(&rel);
        create_dirs(&to)?;
        let mut names: Vec<PathBuf> = fs::read_dir(&store)
            .map_err(FormatError::io(&store))?
            .map(|e| e.map(|e| e.path()).map_err(FormatError::io(&store)))
            .collect::<Result<_, _>>()?;
        names.sort();
        for src in names {
            let Some(name) = src.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !src.is_file() || name == "LOCK" || name.starts_with("LOG") {
                continue;
            }
            let dst = to.join(name);
            if name.ends_with(".sst") {
                if fs::hard_link(&src, &dst).is_err() {
                    copy_synced(&src, &dst)?;
                }
            } else {
                copy_synced(&src, &dst)?;
            }
            files.push(rel.join(name).display().to_string());
        }
        sync_dir(&to)?;
    }
    let backup = Backup {
        restore: format!(
            "stop the node, copy every file of this directory back to the same place under {} \
             (replacing the store directory as a whole), and delete format.json there when \
             this backup has none",
            data_dir.display()
        ),
        dir: dir.clone(),
        from_format: from,
        created_unix_ms: now_ms,
        files,
    };
    let json = serde_json::to_vec_pretty(&backup)
        .map_err(|e| FormatError::unreadable(&dir, e.to_string()))?;
    let info = dir.join("backup.json");
    write_durably(&info, &json).map_err(FormatError::io(&info))?;
    sync_dir(&dir)?;
    sync_dir(data_dir)?;
    Ok(backup)
}

fn relative(base: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(base).unwrap_or(path).to_path_buf()
}

/// Creates `dir` and its missing parents, fsyncing each parent whose entries changed.
fn create_dirs(dir: &Path) -> Result<(), FormatError> {
    if dir.is_dir() {
        return Ok(());
    }
    create_dirs(parent(dir))?;
    fs::create_dir(dir).map_err(FormatError::io(dir))?;
    sync_dir(parent(dir))
}

fn copy_synced(src: &Path, dst: &Path) -> Result<(), FormatError> {
    create_dirs(parent(dst))?;
    fs::copy(src, dst).map_err(FormatError::io(src))?;
    File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(FormatError::io(dst))?;
    sync_dir(parent(dst))
}

fn sync_dir(dir: &Path) -> Result<(), FormatError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FormatError::io(dir))
}
