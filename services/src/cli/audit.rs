//! `hearth audit --data-dir DIR [--json]`: the offline audit of a stopped node (see
//! [`crate::audit`]); with `--api URL`, the online audit of a running one
//! ([`super::audit_api`]). Prints the report (text, or one JSON object with `--json`) on stdout,
//! progress bars on stderr when it is a terminal, and exits with the report's code.

use crate::audit::{audit, AuditOptions, Progress};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `hearth audit`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
The node must be stopped: the audit takes the log's and the state machine's locks shared, \
opens both read-only and changes nothing in DATA_DIR. To audit a running node instead, use \
--api URL: the node checkpoints its projection store at an applied index A and audits the log \
through A in the background while writes go on (POST /v1/admin/audit, then GET \
/v1/admin/audit/ID until done); the exit codes are the same.

Phases: (1) every record's CRC, the whole hash chain and every payload hash (redacted records \
by their kept hash), on every core; (2) every event decoded and counted by kind, every \
ManifestVerified signature checked against its blob's BlobAccepted; (3) every projection \
rebuilt from the first entry into a scratch directory, through the index the live store has \
applied — or, when the log was purged and no archive reaches back, from the oldest signed \
snapshot the log continues (DATA_DIR/archive/snapshots, or --snapshot), checked first; (4) each table's digest compared, and for a table that differs, the first differing \
key with both values.

Exit codes:
  0  everything matches
  1  the audit could not run or is incomplete (e.g. a purged log), or another error
  2  the log is damaged (the message names the file and byte offset)
  3  a ManifestVerified signature does not check (the report names the index), or the signed \
     snapshot the rebuild starts from does not (the report names the file)
  4  a projection differs from its rebuild (the report names the table and key)
When several apply, the lowest of 2, 3 and 4 wins.")]
pub struct AuditArgs {
    /// The stopped node's data directory.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "hearth-data")]
    pub data_dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long, env = "HEARTH_JSON")]
    pub json: bool,
    /// Where to put the scratch directory of the rebuild (removed afterwards; default: the
    /// system's temporary directory, $TMPDIR).
    #[arg(long, env = "HEARTH_SCRATCH_DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// The archive of purged entries the node wrote (`serve --archive-dir`), read before the
    /// log so a purged log is still audited from its first entry (default:
    /// DATA_DIR/archive/log when it exists).
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Start the rebuild from this signed snapshot (an `…signed.json` a purging node keeps in
    /// DATA_DIR/archive/snapshots) instead of the first entry: its signature, stream and state
    /// are checked, then the log after it is folded in. Default: the first entry when the
    /// history is whole, else the oldest archived signed snapshot the log continues.
    #[arg(long, value_name = "SIGNED_JSON")]
    pub snapshot: Option<PathBuf>,
    /// Threads for verifying and checking signatures (default: one per core; online: 1).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Audit a *running* node instead, over HTTP (its URL): `POST /v1/admin/audit` on a
    /// consistent snapshot while writes go on, then poll for the report.
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// Admin token for --api (needed when the node's HTTP listener is not on loopback).
    #[arg(long, env = "HEARTH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// Run `hearth audit`, writing the report to `out`.
pub fn run(args: &AuditArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(api) = &args.api {
        return super::audit_api::run(
            api,
            args.admin_token.as_deref(),
            args.threads,
            args.json,
            out,
        );
    }
    let opts = AuditOptions {
        threads: args.threads,
        scratch_parent: args.scratch_dir.clone(),
        archive: args.archive.clone(),
        snapshot: args.snapshot.clone(),
    };
    let report = audit(&args.data_dir, &opts, &Progress::on_terminal())?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        report.write_text(out)?;
    }
    out.flush()?;
    if report.ok {
        return Ok(());
    }
    Err(super::Failed {
        code: report.exit_code,
        message: format!("audit failed: {}", report.findings.join("; ")),
    }
    .into())
}
