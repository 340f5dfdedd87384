//! [`Progress`]: one indicatif bar per audit or replay phase on stderr, only when stderr is a
//! terminal (hidden otherwise, so scripts and tests see nothing). Phases report through a
//! [`Tick`], which worker threads may call concurrently.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Called with the number of items done since the last call; callable from any thread.
pub type Tick<'a> = &'a (dyn Fn(u64) + Sync);

/// Items between two calls of a [`Batched`] tick.
pub const TICK_EVERY: u64 = 4096;

/// Counts items one at a time and calls its [`Tick`] once per [`TICK_EVERY`] of them, so a
/// scan does not touch the bar for every entry; [`Batched::finish`] reports the rest.
pub struct Batched<'a> {
    tick: Tick<'a>,
    pending: u64,
}

impl<'a> Batched<'a> {
    /// Nothing counted yet.
    pub fn new(tick: Tick<'a>) -> Self {
        Batched { tick, pending: 0 }
    }

    /// One more item done.
    pub fn one(&mut self) {
        self.pending += 1;
        if self.pending == TICK_EVERY {
            (self.tick)(self.pending);
            self.pending = 0;
        }
    }

    /// Reports the items not reported yet.
    pub fn finish(self) {
        (self.tick)(self.pending);
    }
}

/// Progress bars for the phases of a long command.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Bars on stderr when it is a terminal.
    pub fn on_terminal() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// No bars.
    pub fn hidden() -> Progress {
        Progress { enabled: false }
    }

    /// A bar for one phase of `total` items (hidden when disabled); finish it with
    /// `finish_and_clear`.
    pub fn phase(&self, name: &str, total: u64) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {human_pos}/{human_len} {per_sec}, {eta} left",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(name.to_string());
        bar
    }
}
