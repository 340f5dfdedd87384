//! [`AuditReport`]: everything `hearth audit` found — as one JSON object (`--json`) or as
//! text — and the exit code it earns ([`AuditReport::exit_code`]).

use super::compare::TableComparison;
use super::events::BadSignature;
use crate::cli::{EXIT_BAD_SIGNATURE, EXIT_ERROR, EXIT_MISMATCH, EXIT_OK};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// The archive of purged entries as phase 1 found it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveSummary {
    /// Its directory.
    pub dir: String,
    /// Its first entry.
    pub first_index: Option<u64>,
    /// Its last entry.
    pub last_index: Option<u64>,
    /// Entries checked in it (those the live log also still holds are counted once, there).
    pub entries: u64,
}

/// The log as phase 1 found it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogSummary {
    /// The log directory.
    pub dir: String,
    /// First index (`None`: an empty log).
    pub first_index: Option<u64>,
    /// Last index.
    pub last_index: Option<u64>,
    /// Entries verified (CRC, chain link, payload hash).
    pub entries: u64,
    /// Of which redacted (verified by their kept payload hash).
    pub redacted: u64,
    /// Payload bytes read.
    pub payload_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Chain hash of the last entry (hex).
    pub head_chain: Option<String>,
    /// Term of the last entry.
    pub head_term: Option<u64>,
    /// Index through which the log was purged, if it was.
    pub purged_through: Option<u64>,
    /// The archive of purged entries read before the log, if any: its directory and last
    /// entry (the history then starts at the archive's first entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveSummary>,
}

/// Phase 2's counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventSummary {
    /// Entries read.
    pub entries: u64,
    /// Events (envelopes) in them.
    pub events: u64,
    /// Distinct blobs accepted.
    pub blobs: u64,
    /// Entries and events per kind, by the names `hearth log dump` prints.
    pub kinds: BTreeMap<String, u64>,
}

/// `ManifestVerified` signatures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignatureSummary {
    /// Checked.
    pub checked: u64,
    /// Of which bad.
    pub bad: u64,
    /// The first bad ones, in log order.
    pub bad_listed: Vec<BadSignature>,
}

/// A log position as `{index, term}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Log index.
    pub index: u64,
    /// Its term.
    pub term: u64,
}

/// The rebuild against the live store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectionSummary {
    /// The projection store audited.
    pub store: String,
    /// What the live store has applied (durably).
    pub live_applied: Option<Applied>,
    /// What the rebuild applied (the same index, when the log holds it).
    pub rebuilt_applied: Option<Applied>,
    /// Chain hash of the log through the rebuilt index (hex).
    pub rebuilt_chain: Option<String>,
    /// Every table: live digest, rebuilt digest, match, first difference.
    pub tables: Vec<TableComparison>,
    /// Tables that differ.
    pub mismatches: u64,
    /// Why the rebuild did not run or cannot match, if so.
    pub note: Option<String>,
    /// The signed snapshot the rebuild started from, when it did not start at the first entry.
    pub base_snapshot: Option<BaseSnapshot>,
}

/// A signed snapshot the rebuild started from (see `crate::audit::signed_snapshot`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BaseSnapshot {
    /// Its signed file.
    pub file: String,
    /// The last index it includes (once its signature checked).
    pub index: Option<u64>,
    /// Its term.
    pub term: Option<u64>,
    /// The log's chain hash through that index, as signed (hex).
    pub chain: Option<String>,
    /// The member that signed it (PeerId).
    pub signer: Option<String>,
    /// Why it could not be used, if so.
    pub problem: Option<String>,
    /// Whether the problem is a forgery or damage (a bad signature, or a stream or state other
    /// than the signed one): exit code 3, as for a bad `ManifestVerified` signature.
    pub forged: bool,
}

/// Timing of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTiming {
    /// `verify`, `events`, `rebuild`, `compare`.
    pub phase: String,
    /// What it does.
    pub what: String,
    /// Wall time, seconds.
    pub secs: f64,
    /// Items processed.
    pub items: u64,
    /// What an item is (`entries`, `events`, `tables`).
    pub unit: String,
    /// Items per second.
    pub per_s: f64,
    /// Threads used.
    pub threads: usize,
}

impl PhaseTiming {
    /// A timing line.
    pub fn new(phase: &str, what: &str, secs: f64, items: u64, unit: &str, threads: usize) -> Self {
        PhaseTiming {
            phase: phase.into(),
            what: what.into(),
            secs,
            items,
            unit: unit.into(),
            per_s: if secs > 0.0 { items as f64 / secs } else { 0.0 },
            threads,
        }
    }
}

/// Everything the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// Whether everything checked out (exit code 0).
    pub ok: bool,
    /// The process exit code: 0, 1 (incomplete), 3 (bad signature), 4 (projection mismatch);
    /// log damage (2) ends the audit before a report.
    pub exit_code: i32,
    /// The data directory audited.
    pub data_dir: String,
    /// What is wrong, one line each (empty when ok).
    pub findings: Vec<String>,
    /// Phase 1.
    pub log: LogSummary,
    /// Phase 2.
    pub events: EventSummary,
    /// Phase 2's signature checks.
    pub signatures: SignatureSummary,
    /// Phases 3 and 4.
    pub projections: ProjectionSummary,
    /// Timings.
    pub phases: Vec<PhaseTiming>,
}

impl AuditReport {
    /// Fills `findings`, `ok` and `exit_code` from the sections; the lowest non-zero code wins.
    pub fn conclude(&mut self) {
        let mut findings = Vec::new();
        let mut codes = Vec::new();
        if self.signatures.bad > 0 {
            let first = self
                .signatures
                .bad_listed
                .first()
                .map(|b| {
                    format!(
                        ", first at index {}{}: {}",
                        b.index,
                        b.position.map(|p| format!(".{p}")).unwrap_or_default(),
                        b.reason
                    )
                })
                .unwrap_or_default();
            findings.push(format!(
                "{} bad ManifestVerified signature(s){first}",
                self.signatures.bad
            ));
            codes.push(EXIT_BAD_SIGNATURE);
        }
        let p = &self.projections;
        if let Some(b) = &p.base_snapshot {
            if let Some(problem) = &b.problem {
                findings.push(format!("signed snapshot: {problem}"));
                codes.push(if b.forged {
                    EXIT_BAD_SIGNATURE
                } else {
                    EXIT_ERROR
                });
            }
        }
        let rebuilt = p.note.is_none();
        if rebuilt && p.live_applied != p.rebuilt_applied {
            findings.push(format!(
                "the live store has applied {} but the rebuild from the log reached {}",
                show_applied(p.live_applied),
                show_applied(p.rebuilt_applied)
            ));
            codes.push(EXIT_MISMATCH);
        }
        for t in p.tables.iter().filter(|t| !t.matches) {
            let at = t
                .first_difference
                .as_ref()
                .map(|d| format!(", first differing key {}", d.key))
                .unwrap_or_default();
            findings.push(format!(
                "projection {} differs from its rebuild{at}",
                t.table
            ));
            codes.push(EXIT_MISMATCH);
        }
        if let Some(note) = &p.note {
            findings.push(format!("audit incomplete: {note}"));
            codes.push(EXIT_ERROR);
        }
        self.projections.mismatches = p.tables.iter().filter(|t| !t.matches).count() as u64;
        let code = codes
            .into_iter()
            .filter(|&c| c != EXIT_ERROR)
            .min()
            .or_else(|| (!findings.is_empty()).then_some(EXIT_ERROR))
            .unwrap_or(EXIT_OK);
        self.findings = findings;
        self.exit_code = code;
        self.ok = code == EXIT_OK;
    }

    /// The report as text.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let verdict = if self.ok { "OK" } else { "FAILED" };
        writeln!(out, "audit of {}: {verdict}", self.data_dir)?;
        for f in &self.findings {
            writeln!(out, "  ! {f}")?;
        }
        let l = &self.log;
        match (l.first_index, l.last_index) {
            (Some(a), Some(b)) => writeln!(
                out,
                "log         {a} ..= {b}: {} entries ({} redacted), {} segment(s), {} payload bytes",
                l.entries, l.redacted, l.segments, l.payload_bytes
            )?,
            _ => writeln!(out, "log         empty")?,
        }
        if let (Some(h), Some(t)) = (&l.head_chain, l.head_term) {
            writeln!(out, "head        {h} (term {t})")?;
        }
        if let Some(p) = l.purged_through {
            writeln!(out, "purged      through index {p}")?;
        }
        let e = &self.events;
        writeln!(
            out,
            "events      {} in {} entries, {} blobs",
            e.events, e.entries, e.blobs
        )?;
        for (kind, n) in &e.kinds {
            writeln!(out, "  {kind:<20} {n:>12}")?;
        }
        let s = &self.signatures;
        writeln!(out, "signatures  {} checked, {} bad", s.checked, s.bad)?;
        for b in &s.bad_listed {
            writeln!(
                out,
                "  bad at index {}{}: blob {} verifier {}: {}",
                b.index,
                b.position.map(|p| format!(".{p}")).unwrap_or_default(),
                b.blob,
                b.verifier,
                b.reason
            )?;
        }
        let p = &self.projections;
        writeln!(
            out,
            "projections live applied {}, rebuilt {}",
            show_applied(p.live_applied),
            show_applied(p.rebuilt_applied)
        )?;
        if let Some(b) = &p.base_snapshot {
            match (b.index, b.term, &b.signer) {
                (Some(i), Some(t), Some(signer)) => writeln!(
                    out,
                    "  from signed snapshot {} at index {i} (term {t}), signed by {signer}",
                    b.file
                )?,
                _ => writeln!(out, "  from signed snapshot {}", b.file)?,
            }
        }
        if let Some(note) = &p.note {
            writeln!(out, "  {note}")?;
        }
        for t in &p.tables {
            let mark = if t.matches { "match" } else { "MISMATCH" };
            writeln!(out, "  {:<12} {mark}", t.table)?;
            writeln!(
                out,
                "    live    {}",
                t.live.as_deref().unwrap_or("(missing)")
            )?;
            writeln!(
                out,
                "    rebuilt {}",
                t.rebuilt.as_deref().unwrap_or("(missing)")
            )?;
            if let Some(d) = &t.first_difference {
                let show = |v: &Option<String>, len: Option<usize>| match (v, len) {
                    (Some(v), Some(n)) => format!("{v} ({n} bytes)"),
                    _ => "(absent)".to_string(),
                };
                writeln!(out, "    first differing key {}", d.key)?;
                if d.shown_from > 0 {
                    writeln!(out, "      (values shown from byte {})", d.shown_from)?;
                }
                writeln!(out, "      live    {}", show(&d.live, d.live_len))?;
                writeln!(out, "      rebuilt {}", show(&d.rebuilt, d.rebuilt_len))?;
            }
        }
        writeln!(out, "phases")?;
        for ph in &self.phases {
            writeln!(
                out,
                "  {:<8} {:<52} {:>8.3} s {:>10} {:<8} {:>10.0} {}/s",
                ph.phase,
                format!("{} ({} thread{})", ph.what, ph.threads, plural(ph.threads)),
                ph.secs,
                ph.items,
                ph.unit,
                ph.per_s,
                ph.unit
            )?;
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn show_applied(a: Option<Applied>) -> String {
    a.map_or_else(
        || "nothing".to_string(),
        |a| format!("index {} (term {})", a.index, a.term),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::compare::Difference;

    fn table(name: &str, matches: bool) -> TableComparison {
        TableComparison {
            table: name.into(),
            live: Some("aa".into()),
            rebuilt: Some(if matches { "aa" } else { "bb" }.into()),
            matches,
            first_difference: (!matches).then(|| Difference {
                key: "62".into(),
                live: Some("01".into()),
                live_len: Some(1),
                rebuilt: None,
                rebuilt_len: None,
                shown_from: 0,
            }),
        }
    }

    #[test]
    fn lowest_code_wins() {
        let mut r = AuditReport::default();
        r.projections.tables = vec![table("counts-1", true)];
        r.conclude();
        assert_eq!((r.ok, r.exit_code), (true, 0));

        r.projections.tables.push(table("blobs-2", false));
        r.conclude();
        assert_eq!(r.exit_code, EXIT_MISMATCH);
        assert!(r.findings[0].contains("blobs-2") && r.findings[0].contains("62"));

        r.signatures.bad = 1;
        r.conclude();
        assert_eq!(r.exit_code, EXIT_BAD_SIGNATURE);

        let mut incomplete = AuditReport::default();
        incomplete.projections.note = Some("purged".into());
        incomplete.conclude();
        assert_eq!(incomplete.exit_code, EXIT_ERROR);
        incomplete.signatures.bad = 2;
        incomplete.conclude();
        assert_eq!(incomplete.exit_code, EXIT_BAD_SIGNATURE);

        let mut text = Vec::new();
        r.write_text(&mut text).expect("write");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.contains("FAILED") && text.contains("MISMATCH"),
            "{text}"
        );
    }
}
