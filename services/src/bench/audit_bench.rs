//! `hearth bench audit`: how fast the offline audit ([`crate::audit`]) runs, and in how much
//! memory.
//!
//! In a scratch directory: the disk baseline (as every bench: 4 KiB write + fdatasync,
//! [`disk`]), then a node-shaped data directory — a log of raft entries with `--signed` pairs
//! of a sharded `BlobAccepted` and its `ManifestVerified` (signed with
//! [`hearth_projections::manifest::sign`] by a few generated keys) followed by `--events`
//! sample events ([`hearth_proto::sample`], each with its own request id), written with
//! [`Durability::Buffer`] (it is a benchmark) — and a "live" projection store rebuilt from that
//! log. Then the real [`audit`] runs on it, and its phase timings are the results: phase 1
//! (CRC + chain + payload hashes) events/s on every core, projection rebuild events/s, and the
//! audit's peak RSS (the peak is reset before the audit where Linux allows it, so building does
//! not count). Signature checks/s come from the same audit phase run on a log of the signed
//! pairs alone; CRC + chain without the payload hashes ([`hearth_log::Verification::Chain`]) is
//! timed on its own as well. Each figure is printed
//! absolute and as a ratio to the overwrite-fdatasync IOPS, like `hearth bench log`.
//!
//! The sample events are shaped like real ones but not consistent (an inline blob's hash is
//! not its bytes' hash): the blob index rejects those, so a rebuild writes a `rejected` record
//! where a real one would write a blob record.

use super::disk;
use super::report::Baseline;
use super::rss;
use super::say;
use crate::audit::report::PhaseTiming;
use crate::audit::{audit, AuditOptions, AuditReport, Progress};
use anyhow::Context as _;
use bytes::Bytes;
use hearth_log::{Durability, Log, LogOptions};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{BlobAccepted, Envelope, ErasureParams, RequestId};
use hearth_raft::{codec, Proposal};
use libp2p_identity::ed25519;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use prost::Message as _;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Targets of the issue.
pub const TARGET_CHAIN_EVENTS_PER_S: f64 = 2_000_000.0;
/// Signature checks per second.
pub const TARGET_SIGNATURES_PER_S: f64 = 20_000.0;
/// Rebuild events per second.
pub const TARGET_REBUILD_EVENTS_PER_S: f64 = 500_000.0;
/// Peak RSS of a 10 M-event audit, KiB.
pub const TARGET_RSS_KIB: u64 = 500_000_000 / 1024;

/// Entries per append call while building.
const APPEND_CHUNK: usize = 4096;
/// Distinct sample shapes (each event still gets its own request id and time).
const TEMPLATES: u64 = 1024;
/// Keys signing the manifests.
const SIGNERS: usize = 4;

/// Arguments of `hearth bench audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchAuditArgs {
    /// Directory for the scratch data directory (removed afterwards). Default: the system's
    /// temporary directory.
    #[arg(long, env = "HEARTH_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Sample events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Signed ManifestVerified events (each with its blob's BlobAccepted before it).
    #[arg(long, default_value_t = 20_000)]
    pub signed: u64,
    /// Encoded size of one sample event, bytes (approximate).
    #[arg(long, default_value_t = 256)]
    pub event_size: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What.
    pub name: String,
    /// Per second.
    pub per_s: f64,
    /// Its unit (`events`, `signatures`).
    pub unit: String,
    /// The target, per second.
    pub target_per_s: f64,
    /// Whether it is met.
    pub met: bool,
    /// `per_s / overwrite_fdatasync_iops`.
    pub ratio_to_baseline: Option<f64>,
    /// Threads the phase used.
    pub threads: usize,
}

/// The log the audit ran on.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltLog {
    /// Sample events.
    pub events: u64,
    /// Signed pairs (BlobAccepted + ManifestVerified).
    pub signed: u64,
    /// Entries in all.
    pub entries: u64,
    /// Bytes of segment data.
    pub bytes: u64,
    /// Seconds to build the log.
    pub build_secs: f64,
    /// Seconds to build the "live" projection store from it.
    pub live_rebuild_secs: f64,
}

/// Everything `hearth bench audit` measured (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct AuditBenchReport {
    /// The disk baseline.
    pub baseline: Baseline,
    /// The log audited.
    pub log: BuiltLog,
    /// The headline figures against their targets.
    pub figures: Vec<Figure>,
    /// Every phase of the audit.
    pub phases: Vec<PhaseTiming>,
    /// Peak RSS during the audit, KiB (the whole process's if the peak could not be reset).
    pub audit_peak_rss_kib: Option<u64>,
    /// Whether the peak was reset before the audit (Linux `clear_refs`).
    pub peak_reset: bool,
    /// Peak RSS of the process over the whole benchmark, KiB.
    pub process_peak_rss_kib: Option<u64>,
    /// The RSS target (for a 10 M-event audit), KiB.
    pub rss_target_kib: u64,
    /// Whether the audit itself found everything in order (it must).
    pub audit_ok: bool,
}

/// Runs the benchmark and prints the report.
pub fn run_audit_bench(args: &BenchAuditArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events + args.signed > 0,
        "--events and --signed are both 0"
    );
    let progress = std::io::stderr().is_terminal();
    let scratch = super::scratch_dir(args.dir.as_deref(), "hearth-bench-audit-")?;
    say(progress, "disk baseline");
    let baseline = disk::measure(scratch.path())?;

    // The signature set and the log.
    say(progress, format_args!("signing {} manifests", args.signed));
    let pairs = signed_pairs(args.signed);
    let data = scratch.path().join("node");
    say(
        progress,
        format_args!("building a log of {} events", args.events + 2 * args.signed),
    );
    let start = Instant::now();
    let (entries, bytes) = build_log(&data, &pairs, args.events, args.event_size)?;
    let build_secs = start.elapsed().as_secs_f64();
    let sig_data = scratch.path().join("signatures");
    build_log(&sig_data, &pairs, 0, args.event_size)?;
    live_store(&sig_data)?;
    drop(pairs);

    say(progress, "building the live projection store");
    let start = Instant::now();
    live_store(&data)?;
    let live_rebuild_secs = start.elapsed().as_secs_f64();
    // What was just written (buffered) goes to disk now, not in the middle of a timed phase.
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    let process_peak_before = rss::peak_rss_kib();

    let opts = AuditOptions {
        threads: 0,
        scratch_parent: Some(scratch.path().to_path_buf()),
        archive: None,
        snapshot: None,
    };
    say(progress, "signature checks");
    let sig_report = audit(&sig_data, &opts, &Progress::hidden())?;
    say(progress, "audit");
    let peak_reset = reset_peak_rss();
    let report = audit(&data, &opts, &Progress::on_terminal())?;
    let audit_peak = rss::peak_rss_kib();
    say(progress, "CRC + chain alone");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chain = {
        let log = crate::cli::open_log_read_only(&data)?;
        crate::audit::verify::verify_log(&log, hearth_log::Verification::Chain, cores, &|_| {})
            .context("verify the benchmark log")?
    };
    let chain_phase = PhaseTiming::new(
        "chain",
        "CRC + chain",
        chain.secs,
        chain.entries,
        "events",
        chain.threads,
    );
    let process_peak = if peak_reset {
        process_peak_before.max(audit_peak)
    } else {
        audit_peak
    };

    let iops = baseline.overwrite_fdatasync_iops;
    let phase = |r: &AuditReport, name: &str| r.phases.iter().find(|p| p.phase == name).cloned();
    let figure = |name: &str, p: Option<PhaseTiming>, per_s: Option<f64>, unit: &str, target| {
        let p = p.unwrap_or_else(|| PhaseTiming::new(name, "", 0.0, 0, unit, 0));
        let per_s = per_s.unwrap_or(p.per_s);
        Figure {
            name: name.into(),
            per_s,
            unit: unit.into(),
            target_per_s: target,
            met: per_s >= target,
            ratio_to_baseline: (iops > 0.0).then(|| per_s / iops),
            threads: p.threads,
        }
    };
    let sig_phase = phase(&sig_report, "events");
    let sig_rate = sig_phase
        .as_ref()
        .filter(|p| p.secs > 0.0)
        .map(|p| sig_report.signatures.checked as f64 / p.secs);
    let figures = vec![
        figure(
            "CRC + chain",
            Some(chain_phase),
            None,
            "events",
            TARGET_CHAIN_EVENTS_PER_S,
        ),
        figure(
            "audit phase 1: + payload hashes",
            phase(&report, "verify"),
            None,
            "events",
            TARGET_CHAIN_EVENTS_PER_S,
        ),
        figure(
            "signature checks",
            sig_phase,
            sig_rate,
            "signatures",
            TARGET_SIGNATURES_PER_S,
        ),
        figure(
            "projection rebuild",
            phase(&report, "rebuild"),
            None,
            "events",
            TARGET_REBUILD_EVENTS_PER_S,
        ),
    ];
    let result = AuditBenchReport {
        baseline,
        log: BuiltLog {
            events: args.events,
            signed: args.signed,
            entries,
            bytes,
            build_secs,
            live_rebuild_secs,
        },
        figures,
        phases: report.phases.clone(),
        audit_peak_rss_kib: audit_peak,
        peak_reset,
        process_peak_rss_kib: process_peak,
        rss_target_kib: TARGET_RSS_KIB,
        audit_ok: report.ok && sig_report.ok,
    };
    scratch
        .close()
        .context("remove the benchmark's scratch directory")?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&result)?)?;
    } else {
        write_table(&result, out)?;
    }
    anyhow::ensure!(
        result.audit_ok,
        "the audit of the benchmark log found problems: {}",
        report
            .findings
            .iter()
            .chain(&sig_report.findings)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

/// `n` sharded blob acceptances and a `ManifestVerified` of each, signed by [`SIGNERS`] keys.
fn signed_pairs(n: u64) -> Vec<(Bytes, Bytes)> {
    let keys: Vec<ed25519::Keypair> = (0..SIGNERS).map(|_| ed25519::Keypair::generate()).collect();
    (0..n)
        .map(|i| {
            let h = |tag: &str, j: u64| -> Bytes {
                blake3::hash(format!("{tag}{i}/{j}").as_bytes())
                    .as_bytes()
                    .to_vec()
                    .into()
            };
            let acc = BlobAccepted {
                blob_hash: h("blob", 0),
                size: 4 << 20,
                erasure: Some(ErasureParams {
                    data_shards: 4,
                    parity_shards: 3,
                    stripe_size: 4 << 20,
                }),
                shard_hashes: (0..7).map(|j| h("shard", j)).collect(),
                stripe_hashes: vec![h("stripe", 0)],
                inline_data: None,
                accepted_by: Bytes::new(),
                content_type: "application/octet-stream".into(),
            };
            let mv = hearth_projections::manifest::sign(&keys[i as usize % SIGNERS], &acc);
            let origin = mv.verifier.clone();
            let env = |event: Event, seq: u64| Envelope {
                schema_version: hearth_proto::SCHEMA_VERSION,
                origin: origin.clone(),
                proposed_at_unix_ms: 1_767_225_600_000 + i,
                request_id: Some(RequestId {
                    node: Bytes::from_static(b"bench-signed"),
                    seq,
                }),
                event: Some(event),
            };
            (
                env(Event::BlobAccepted(acc), 2 * i).encode_to_vec().into(),
                env(Event::ManifestVerified(mv), 2 * i + 1)
                    .encode_to_vec()
                    .into(),
            )
        })
        .collect()
}

/// Writes the log of a node data directory `data`: the pairs, then `events` sample events,
/// one raft entry each (term 1, from index 1). Returns entries and segment bytes.
fn build_log(
    data: &Path,
    pairs: &[(Bytes, Bytes)],
    events: u64,
    event_size: usize,
) -> anyhow::Result<(u64, u64)> {
    let dir = crate::paths::log_dir(data);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let opts = LogOptions {
        durability: Durability::Buffer,
        ..LogOptions::default()
    };
    let log = Log::open(&dir, opts).with_context(|| format!("open log {}", dir.display()))?;
    let templates: Vec<Envelope> = (0..TEMPLATES.min(events.max(1)))
        .map(|seed| hearth_proto::sample::sample_envelope(seed, event_size))
        .collect();
    let payloads = pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .chain((0..events).map(|i| {
            let mut env = templates[(i % TEMPLATES) as usize].clone();
            if let Some(r) = env.request_id.as_mut() {
                r.seq = i + 1; // unique per origin: the runtime applies every event
            }
            env.proposed_at_unix_ms += i / TEMPLATES;
            hearth_proto::sample::make_distinct(&mut env, i);
            Bytes::from(env.encode_to_vec())
        }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let mut index = 1u64;
    let mut chunk = Vec::with_capacity(APPEND_CHUNK);
    let flush = |chunk: &mut Vec<hearth_log::Entry>| -> anyhow::Result<()> {
        if !chunk.is_empty() {
            runtime
                .block_on(log.append(std::mem::take(chunk)))
                .context("append to the benchmark log")?;
        }
        Ok(())
    };
    for payload in payloads {
        let entry = hearth_raft::Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal::new(payload)),
        };
        chunk.push(codec::encode_entry(&entry));
        index += 1;
        if chunk.len() == APPEND_CHUNK {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    let bytes = log.stats().bytes;
    runtime.block_on(log.close()).context("close the log")?;
    Ok((index - 1, bytes))
}

/// The "live" store of `data`: rebuilt from its log where a node keeps it.
fn live_store(data: &Path) -> anyhow::Result<()> {
    let log = crate::cli::open_log_read_only(data)?;
    let dir = crate::paths::projection_store_dir(data);
    let rebuilt = crate::audit::rebuild::rebuild(
        &log,
        &dir,
        crate::node::node_projections(),
        crate::audit::rebuild::Until::End,
        hearth_log::Verification::Crc,
        &|_| {},
    )?;
    drop(rebuilt);
    Ok(())
}

/// Resets this process's peak RSS (Linux: `5` into `/proc/self/clear_refs`).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

fn mb(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "?".into(),
        |k| format!("{:.0} MB", k as f64 * 1024.0 / 1e6),
    )
}

/// The report as a table.
pub fn write_table(r: &AuditBenchReport, out: &mut dyn Write) -> std::io::Result<()> {
    let b = &r.baseline;
    writeln!(
        out,
        "disk baseline: 4 KiB write + fdatasync: extend {:.0} IOPS, overwrite {:.0} IOPS (the \
         reference for xbaseline)",
        b.fdatasync_iops, b.overwrite_fdatasync_iops
    )?;
    let l = &r.log;
    writeln!(
        out,
        "log: {} sample events + {} signed pairs = {} entries, {:.1} MB, built in {:.1} s \
         (buffered); live store rebuilt in {:.1} s",
        l.events,
        l.signed,
        l.entries,
        l.bytes as f64 / 1e6,
        l.build_secs,
        l.live_rebuild_secs
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<46} {:>7} {:>12} {:>12} {:>10} {:>4}",
        "audit", "threads", "per second", "target", "xbaseline", "met"
    )?;
    for f in &r.figures {
        writeln!(
            out,
            "{:<46} {:>7} {:>12.0} {:>12.0} {:>10} {:>4}",
            format!("{} ({}/s)", f.name, f.unit),
            f.threads,
            f.per_s,
            f.target_per_s,
            f.ratio_to_baseline
                .map_or_else(|| "-".into(), |x| format!("{x:.1}")),
            if f.met { "yes" } else { "NO" }
        )?;
    }
    writeln!(
        out,
        "{:<46} {:>7} {:>12} {:>12} {:>10} {:>4}",
        "peak RSS of the audit",
        "",
        mb(r.audit_peak_rss_kib),
        mb(Some(r.rss_target_kib)),
        "",
        match r.audit_peak_rss_kib {
            Some(k) if k <= r.rss_target_kib => "yes",
            Some(_) => "NO",
            None => "?",
        }
    )?;
    if !r.peak_reset {
        writeln!(
            out,
            "  (the peak could not be reset: it includes building the log)"
        )?;
    }
    writeln!(out)?;
    writeln!(out, "audit phases")?;
    for p in &r.phases {
        writeln!(
            out,
            "  {:<8} {:>9.3} s {:>11} {:<8} {:>12.0} {}/s  {}",
            p.phase, p.secs, p.items, p.unit, p.per_s, p.unit, p.what
        )?;
    }
    writeln!(
        out,
        "process peak RSS over the whole benchmark: {}",
        mb(r.process_peak_rss_kib)
    )?;
    Ok(())
}
