//! `hearth migrate --data-dir DIR [--dry-run] [--json]`: upgrades a stopped node's data
//! directory to this build's format, with a backup and a report (see `hearth_migrations`).

use std::io::Write;
use std::path::PathBuf;

/// Arguments of `hearth migrate`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
The node must be stopped: the migration takes its locks exclusively.

Detects the data directory's format (format.json; none = format 0, every data directory written \
before format manifests), reads every component's version from its files, plans the steps to \
this build's format and, unless --dry-run, backs up what the steps may change into \
DATA_DIR/backup-v<FROM>-<UNIX_MS>/ (metadata files and a hard-linked checkpoint of the \
projection store; never the log segments, which no migration rewrites), applies the steps and \
prints a report. A data directory written by a newer hearth is refused.

Exit codes: 0 migrated, up to date, or dry run; 1 refused or failed (one line says why).")]
pub struct MigrateArgs {
    /// The stopped node's data directory.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "hearth-data")]
    pub data_dir: PathBuf,
    /// Only detect and plan: change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object instead of text.
    #[arg(long, env = "HEARTH_JSON")]
    pub json: bool,
}

/// Run `hearth migrate`, writing the report to `out`.
pub fn run(args: &MigrateArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let opts = hearth_migrations::MigrateOptions {
        dry_run: args.dry_run,
        projections: crate::node::data_format::projection_names(),
    };
    let report = hearth_migrations::migrate(&args.data_dir, &opts)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        report.write_text(out)?;
    }
    Ok(())
}
