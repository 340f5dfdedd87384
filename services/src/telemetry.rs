//! Tracing set-up for the binary: human text or JSON lines, always on stderr (stdout is for
//! command output), filtered by `RUST_LOG` (default [`DEFAULT_FILTER`]: warnings, so commands stay quiet).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter without `RUST_LOG`: warnings, except openraft's own, which repeat every retry while
/// a member is down (openraft keeps errors; its replication retries stay silent).
pub const DEFAULT_FILTER: &str = "warn,openraft=error,openraft::replication=off";

/// Install the global tracing subscriber. Call once, at start-up.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already set (e.g. twice in one test process).
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
