//! [`FormatError`]: why a data directory cannot be used (or migrated) as it is. Every message
//! is one line naming the directory or file and, where there is one, the command to run.

use std::path::PathBuf;

/// What is wrong with a data directory's format.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Written by a newer hearth: this build must not touch it.
    #[error(
        "data directory {} was written by a newer hearth: {what}, but this hearth ({build}) \
         reads {supported} at most; run a newer hearth on it",
        dir.display()
    )]
    Newer {
        /// The data directory.
        dir: PathBuf,
        /// What is newer (`data dir format 2`, `component projection_store 3`).
        what: String,
        /// What this build reads (`data dir format 1`).
        supported: String,
        /// This build (`hearth 0.1.0`).
        build: String,
    },
    /// Written by an older hearth: `hearth migrate` must upgrade it first.
    #[error(
        "data directory {d} has data dir format {found}{why}, this hearth uses format \
         {current}: run `hearth migrate --data-dir {d}` (with --dry-run to see the plan first)",
        d = dir.display()
    )]
    NeedsMigration {
        /// The data directory.
        dir: PathBuf,
        /// Its format (0: no `format.json`).
        found: u32,
        /// The format this build uses.
        current: u32,
        /// A note on `found` (` (no format.json: written before format manifests)`).
        why: String,
    },
    /// A file that says what a format is cannot be read or makes no sense.
    #[error("{}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// File IO failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A node is running on the directory (it holds a lock).
    #[error(
        "a node is running on data directory {dir} ({} is locked): stop it first",
        lock.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file held.
        lock: PathBuf,
    },
    /// The directory does not exist.
    #[error("data directory {} does not exist", dir.display())]
    Missing {
        /// The path given.
        dir: PathBuf,
    },
}

impl FormatError {
    /// An IO error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> FormatError {
        let path = path.into();
        move |source| FormatError::Io { path, source }
    }

    /// An unreadable file.
    pub fn unreadable(path: impl Into<PathBuf>, reason: impl Into<String>) -> FormatError {
        FormatError::Unreadable {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// This build, as messages name it.
pub fn build_name() -> String {
    format!("hearth {}", env!("CARGO_PKG_VERSION"))
}
