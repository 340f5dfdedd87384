//! Operator commands on a node's data directory, and how their failures become exit codes.
//!
//! Every command returns `anyhow::Result`; the binary prints a failure as ONE line
//! `error: …` on stderr and exits with [`exit_code`]:
//! * `0` — success;
//! * `1` — any other failure (bad path, I/O, …);
//! * `2` — the log is damaged ([`LogError::Corrupt`] / [`LogError::ChainBroken`]; the message
//!   names the file and byte offset);
//! * `3` — `hearth audit`: a `ManifestVerified` signature does not check;
//! * `4` — `hearth audit`: a projection differs from its rebuild from the log;
//! * `64` — the command line could not be parsed (`EX_USAGE`; clap's own message).
//!
//! A command that ran to the end but found something wrong (the audit) returns [`Failed`]
//! with its code after printing its report.

pub mod audit;
pub mod audit_api;
pub mod blob;
pub mod cluster;
pub mod doc;
pub mod dump_filter;
pub mod event_json;
pub mod events;
pub mod id;
pub mod log_dump;
pub mod log_verify;
pub mod migrate;
pub mod peers;
pub mod replay;
pub mod serve;
pub mod status_offline;

use anyhow::Context as _;
use hearth_log::{Log, LogError};
use std::path::Path;

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code of a failure that is not damage.
pub const EXIT_ERROR: i32 = 1;
/// Exit code when the log is damaged.
pub const EXIT_DAMAGE: i32 = 2;
/// Exit code of an audit that found a bad `ManifestVerified` signature.
pub const EXIT_BAD_SIGNATURE: i32 = 3;
/// Exit code of an audit that found a projection differing from its rebuild.
pub const EXIT_MISMATCH: i32 = 4;
/// Exit code of a command line that does not parse.
pub const EXIT_USAGE: i32 = 64;

/// A command that ran to the end and found something wrong: its exit code and a one-line
/// summary (the report itself went to stdout).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    /// The process exit code.
    pub code: i32,
    /// What was found.
    pub message: String,
}

/// The process exit code for a failed command: a [`Failed`]'s own code; [`EXIT_DAMAGE`] when
/// any cause in the chain is log damage (including an entry that is not a raft entry); else
/// [`EXIT_ERROR`].
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(failed) = err.chain().find_map(|c| c.downcast_ref::<Failed>()) {
        return failed.code;
    }
    let damaged = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<LogError>(),
            Some(LogError::Corrupt { .. } | LogError::ChainBroken { .. })
        ) || cause.downcast_ref::<hearth_raft::CodecError>().is_some()
    });
    if damaged {
        EXIT_DAMAGE
    } else {
        EXIT_ERROR
    }
}

/// The whole cause chain of `err` on one line (`outer: inner: root`), newlines flattened.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace(['\n', '\r'], " ")
}

/// Whether the failure is only that stdout's reader went away (`hearth log dump | head`): not an
/// error worth reporting.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Open the log of the node data directory `data_dir` read-only, after checking that the
/// directory and its log exist (so a typo gives a clear message rather than an empty log) and
/// that its format is not newer than this build's (`hearth_migrations::check_readable`).
pub fn open_log_read_only(data_dir: &Path) -> anyhow::Result<Log> {
    if !data_dir.is_dir() {
        anyhow::bail!("data directory {} does not exist", data_dir.display());
    }
    hearth_migrations::check_readable(data_dir)?;
    let dir = crate::paths::log_dir(data_dir);
    if !dir.is_dir() {
        anyhow::bail!(
            "no log in data directory {} ({} does not exist)",
            data_dir.display(),
            dir.display()
        );
    }
    Log::open_read_only(&dir).with_context(|| format!("cannot open log {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn damage_maps_to_exit_2() {
        let e = anyhow::Error::new(LogError::Corrupt {
            file: PathBuf::from("00000001.seg"),
            offset: 4296,
            reason: "crc mismatch".into(),
        })
        .context("cannot open log");
        assert_eq!(exit_code(&e), EXIT_DAMAGE);
        let line = one_line(&e);
        assert!(
            line.contains("00000001.seg") && line.contains("offset 4296"),
            "{line}"
        );
        assert_eq!(exit_code(&anyhow::anyhow!("nope")), EXIT_ERROR);
    }

    #[test]
    fn missing_dir_is_a_clear_error() {
        let e = open_log_read_only(Path::new("/nonexistent/hearth")).expect_err("must fail");
        assert!(one_line(&e).contains("does not exist"));
        assert_eq!(exit_code(&e), EXIT_ERROR);
    }
}
