//! The upgrade steps between data directory formats ([`STEPS`]) and the plan from a format to
//! this build's ([`plan`]). Pure: no IO (applying a step is [`crate::migrate()`]'s job).
//!
//! Adding a format: bump [`crate::DATA_DIR_FORMAT`], append a [`Step`] from the previous
//! format, keep the old fixture (`migrations/fixtures/v<N>/`) and add one for the new format,
//! and test the old fixture's migration.

use crate::versions::DATA_DIR_FORMAT;
use serde::Serialize;

/// One upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// 0 → 1: write `format.json` (nothing else changes: every component of a pre-manifest
    /// directory already has version 1).
    WriteManifest,
}

/// A step with the formats it goes between and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    /// From this data dir format.
    pub from: u32,
    /// To this one.
    pub to: u32,
    /// The step.
    pub step: Step,
    /// What it does, for the report.
    pub what: &'static str,
}

/// Every step, in order.
pub const STEPS: &[PlannedStep] = &[PlannedStep {
    from: 0,
    to: 1,
    step: Step::WriteManifest,
    what: "write format.json (data dir format 1 and the version of every component)",
}];

/// The steps from data dir format `from` to this build's, in order; empty when `from` is
/// current; `None` when there is no path (a format this build has no step from).
pub fn plan(from: u32) -> Option<Vec<PlannedStep>> {
    let mut at = from;
    let mut steps = Vec::new();
    while at < DATA_DIR_FORMAT {
        let step = STEPS.iter().find(|s| s.from == at)?;
        steps.push(*step);
        at = step.to;
    }
    (at == DATA_DIR_FORMAT).then_some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_older_format_has_a_path_to_the_current_one() {
        for from in 0..DATA_DIR_FORMAT {
            let steps = plan(from).expect("a path");
            assert_eq!(steps.first().map(|s| s.from), Some(from));
            assert_eq!(steps.last().map(|s| s.to), Some(DATA_DIR_FORMAT));
            assert!(steps.windows(2).all(|w| w[0].to == w[1].from));
        }
        assert_eq!(plan(DATA_DIR_FORMAT), Some(vec![]));
        assert_eq!(plan(0).expect("path")[0].step, Step::WriteManifest);
        assert_eq!(plan(DATA_DIR_FORMAT + 1), None);
    }
}
