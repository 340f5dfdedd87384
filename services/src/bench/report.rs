//! Benchmark results: the JSON shape of `hearth bench log --json` and its text table.
//!
//! Latencies are microseconds from an HdrHistogram (3 significant digits). Every log figure is
//! also given as a ratio to the disk's own overwrite-fdatasync IOPS ([`Baseline`]), because
//! absolute numbers drift between machines.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// Highest latency the histograms track: one hour, in µs.
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// A latency histogram in µs.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds")
}

/// A duration as whole µs, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Percentiles of one histogram, in µs.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl Latency {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// The disk baseline: 4 KiB write + fdatasync.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Baseline {
    /// IOPS extending a fresh file.
    pub fdatasync_iops: f64,
    /// Median latency extending, µs.
    pub p50_us: u64,
    /// p99 latency extending, µs.
    pub p99_us: u64,
    /// Writes done extending.
    pub ops: u64,
    /// IOPS overwriting a preallocated file (what the log does): the reference for ratios.
    pub overwrite_fdatasync_iops: f64,
    /// Median latency overwriting, µs.
    pub overwrite_p50_us: u64,
    /// p99 latency overwriting, µs.
    pub overwrite_p99_us: u64,
    /// Writes done overwriting.
    pub overwrite_ops: u64,
}

/// One closed-loop run of the log benchmark.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Events per append call.
    pub batch: usize,
    /// Seconds measured (after warm-up).
    pub seconds: f64,
    /// Events appended in the measured window.
    pub events: u64,
    /// Append calls acknowledged in the measured window.
    pub append_calls: u64,
    /// Events per second.
    pub events_per_s: f64,
    /// Append calls per second.
    pub append_calls_per_s: f64,
    /// Segment fdatasyncs per second.
    pub fsyncs_per_s: f64,
    /// Events per fdatasync (group-commit factor); null with `--durability buffer`.
    pub events_per_fsync: Option<f64>,
    /// Median ack latency of an append call, µs.
    pub p50_us: u64,
    /// p99 ack latency, µs.
    pub p99_us: u64,
    /// p99.9 ack latency, µs.
    pub p999_us: u64,
    /// Largest ack latency, µs.
    pub max_us: u64,
    /// `events_per_s / overwrite_fdatasync_iops`; null if the baseline is zero.
    pub ratio_to_baseline: Option<f64>,
    /// The overwrite fdatasync IOPS the ratio is taken against: the mean of probes right
    /// before and right after this run.
    pub baseline_iops: f64,
}

/// Replay of the largest run's log, single-threaded (see `bench::replay`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Entries replayed.
    pub events: u64,
    /// Of which did not decode as an `Envelope` (should be 0).
    pub undecodable: u64,
    /// Payload bytes replayed.
    pub payload_bytes: u64,
    /// Events per second of read + CRC + chain + protobuf decode, one thread (the headline).
    pub events_per_s: f64,
    /// Payload MiB per second of the same.
    pub mib_per_s: f64,
    /// Threads used for `parallel_events_per_s` (the machine's cores).
    pub threads: u64,
    /// Events per second of the same split over `threads` threads.
    pub parallel_events_per_s: f64,
    /// Events per second of read + CRC + chain + payload re-hash + decode (audit grade), one
    /// thread.
    pub full_events_per_s: f64,
    /// Events per second of read + CRC + protobuf decode (no chain check).
    pub scan_decode_events_per_s: f64,
    /// Events per second of `verify` (CRC + chain + payload hashes, no decode).
    pub verify_events_per_s: f64,
}

/// The `--events N` memory check: RSS before and after appending N events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryReport {
    /// Events appended.
    pub events: u64,
    /// RSS before the first append, KiB.
    pub rss_start_kib: Option<u64>,
    /// RSS after the last append, KiB.
    pub rss_end_kib: Option<u64>,
}

/// Settings the benchmark ran with.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchConfig {
    /// Directory measured.
    pub dir: String,
    /// `sync-data` or `buffer`.
    pub durability: String,
    /// Target encoded size of one event, bytes.
    pub event_size: usize,
    /// Events per append call.
    pub batch: usize,
    /// Measured time per run, ms (null in `--events` mode).
    pub duration_ms: Option<u64>,
    /// Warm-up before measuring, ms.
    pub warmup_ms: u64,
}

/// Everything `hearth bench log` measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    /// Settings.
    pub config: BenchConfig,
    /// The disk baseline.
    pub baseline: Baseline,
    /// One entry per client count.
    pub runs: Vec<RunReport>,
    /// Replay of the largest run.
    pub replay: ReplayReport,
    /// Present in `--events` mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// Peak RSS of the process at the end (VmHWM, else VmRSS), KiB.
    pub rss_kib: Option<u64>,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"))
}

fn kib(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| format!("{v} KiB"))
}

/// The report as a readable table.
pub fn write_table(r: &BenchReport, out: &mut dyn Write) -> std::io::Result<()> {
    let b = &r.baseline;
    writeln!(
        out,
        "disk baseline in {}: 4 KiB write + fdatasync",
        r.config.dir
    )?;
    writeln!(
        out,
        "  extend     {:>9.0} IOPS  p50 {:>6} us  p99 {:>6} us  ({} ops)",
        b.fdatasync_iops, b.p50_us, b.p99_us, b.ops
    )?;
    writeln!(
        out,
        "  overwrite  {:>9.0} IOPS  p50 {:>6} us  p99 {:>6} us  ({} ops)  <- the reference; \
         re-probed before and after each run",
        b.overwrite_fdatasync_iops, b.overwrite_p50_us, b.overwrite_p99_us, b.overwrite_ops
    )?;
    writeln!(out)?;
    let window = r
        .config
        .duration_ms
        .map_or_else(|| "until done".to_string(), |ms| format!("{ms} ms/run"));
    writeln!(
        out,
        "log appends: durability {}, event {} B, {window}, warm-up {} ms",
        r.config.durability, r.config.event_size, r.config.warmup_ms
    )?;
    writeln!(
        out,
        "{:>7} {:>5} {:>11} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "clients",
        "batch",
        "events/s",
        "calls/s",
        "fsyncs/s",
        "ev/fsync",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "base IOPS",
        "xbaseline"
    )?;
    for run in &r.runs {
        writeln!(
            out,
            "{:>7} {:>5} {:>11.0} {:>10.0} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>9.0} {:>9}",
            run.clients,
            run.batch,
            run.events_per_s,
            run.append_calls_per_s,
            run.fsyncs_per_s,
            opt(run.events_per_fsync, 1),
            run.p50_us,
            run.p99_us,
            run.p999_us,
            run.baseline_iops,
            opt(run.ratio_to_baseline, 2),
        )?;
    }
    writeln!(out)?;
    let rp = &r.replay;
    writeln!(
        out,
        "replay of the largest run: {} events ({} undecodable)\n  \
         read+crc+chain+decode      {:>10.0} ev/s ({:.1} MiB/s) on 1 thread, {:.0} ev/s on {}\n  \
         + payload re-hash (audit)  {:>10.0} ev/s on 1 thread\n  \
         read+crc+decode            {:>10.0} ev/s on 1 thread\n  \
         verify (no decode)         {:>10.0} ev/s on 1 thread",
        rp.events,
        rp.undecodable,
        rp.events_per_s,
        rp.mib_per_s,
        rp.parallel_events_per_s,
        rp.threads,
        rp.full_events_per_s,
        rp.scan_decode_events_per_s,
        rp.verify_events_per_s
    )?;
    if let Some(m) = &r.memory {
        writeln!(
            out,
            "memory over {} events: RSS {} at start, {} at end",
            m.events,
            kib(m.rss_start_kib),
            kib(m.rss_end_kib)
        )?;
    }
    writeln!(out, "peak RSS: {}", kib(r.rss_kib))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles() {
        let mut h = new_histogram();
        for v in 1..=1000 {
            h.record(v).expect("record");
        }
        let l = Latency::from_histogram(&h);
        assert!((495..=505).contains(&l.p50_us), "{l:?}");
        assert!((985..=995).contains(&l.p99_us), "{l:?}");
        assert_eq!(Latency::from_histogram(&new_histogram()).p50_us, 0);
        assert_eq!(micros(Duration::from_nanos(10)), 1);
    }

    #[test]
    fn json_has_the_documented_keys() {
        let r = BenchReport {
            runs: vec![RunReport::default()],
            ..Default::default()
        };
        let v = serde_json::to_value(&r).expect("json");
        for k in ["baseline", "runs", "replay", "rss_kib"] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        for k in [
            "fdatasync_iops",
            "overwrite_fdatasync_iops",
            "overwrite_p99_us",
        ] {
            assert!(v["baseline"].get(k).is_some(), "missing baseline.{k}");
        }
        for k in [
            "clients",
            "events_per_fsync",
            "p999_us",
            "ratio_to_baseline",
        ] {
            assert!(v["runs"][0].get(k).is_some(), "missing runs[0].{k}");
        }
        let mut text = Vec::new();
        write_table(&r, &mut text).expect("table");
        assert!(String::from_utf8_lossy(&text).contains("xbaseline"));
    }
}
