//! Replay speed: read every entry of a closed log back, as a projection rebuild would.
//!
//! Timed passes over the same log:
//! * **replay** (the headline `events_per_s`) — [`Verification::Chain`]: read + CRC + every
//!   chain link recomputed + a protobuf decode of every payload, on one thread;
//! * **replay on all cores** — the same, the index range split across threads (each part checks
//!   its first link against the entry before it, so the whole chain is still covered);
//! * **audit grade** — [`Verification::Full`]: also re-hashes every payload, plus the decode;
//! * **scan + decode** — CRC only, plus the decode;
//! * **verify** — [`Log::verify`] (CRC + chain + payload hashes, no decode).

use super::report::ReplayReport;
use anyhow::Context as _;
use hearth_log::{Log, Record, Verification};
use std::path::Path;
use std::time::Instant;

/// What one pass counted.
#[derive(Default)]
struct Pass {
    events: u64,
    undecodable: u64,
    payload_bytes: u64,
}

impl Pass {
    fn decode(&mut self, rec: &Record) {
        self.events += 1;
        self.payload_bytes += rec.payload.len() as u64;
        match hearth_proto::decode_envelope(&rec.payload) {
            Ok(env) => {
                std::hint::black_box(env);
            }
            Err(_) => self.undecodable += 1,
        }
    }

    fn add(&mut self, o: Pass) {
        self.events += o.events;
        self.undecodable += o.undecodable;
        self.payload_bytes += o.payload_bytes;
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// One pass over `lo..=hi` at `level` with decoding; returns the counts.
fn pass(log: &Log, lo: u64, hi: u64, level: Verification) -> anyhow::Result<Pass> {
    let mut p = Pass::default();
    log.scan_with(lo..=hi, level, |rec| {
        p.decode(&rec);
        Ok(true)
    })
    .with_context(|| format!("replay {}", log.dir().display()))?;
    Ok(p)
}

/// A timed pass split over `threads` threads.
fn parallel_pass(log: &Log, threads: u64, level: Verification) -> anyhow::Result<(Pass, f64)> {
    let (Some(first), Some(last)) = (log.first_index(), log.last()) else {
        return Ok((Pass::default(), 0.0));
    };
    let n = last.index - first + 1;
    let threads = threads.clamp(1, n.max(1));
    let start = Instant::now();
    let parts: Vec<anyhow::Result<Pass>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = first + n * t / threads;
                let hi = first + n * (t + 1) / threads - 1;
                s.spawn(move || pass(log, lo, hi, level))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("replay thread panicked")))
            })
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut total = Pass::default();
    for p in parts {
        total.add(p?);
    }
    Ok((total, secs))
}

/// Replay the log in `log_dir` (which must not be open for writing).
pub fn replay(log_dir: &Path) -> anyhow::Result<ReplayReport> {
    let log = Log::open_read_only(log_dir)
        .with_context(|| format!("open {} read-only", log_dir.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);

    let (chain, chain_secs) = parallel_pass(&log, 1, Verification::Chain)?;
    let (par, par_secs) = parallel_pass(&log, cores, Verification::Chain)?;
    let (full, full_secs) = parallel_pass(&log, 1, Verification::Full)?;
    let (crc, crc_secs) = parallel_pass(&log, 1, Verification::Crc)?;

    let start = Instant::now();
    let verified = log
        .verify(..)
        .with_context(|| format!("verify {}", log_dir.display()))?;
    let verify_secs = start.elapsed().as_secs_f64();

    Ok(ReplayReport {
        events: chain.events,
        undecodable: chain.undecodable + par.undecodable + full.undecodable + crc.undecodable,
        payload_bytes: chain.payload_bytes,
        events_per_s: rate(chain.events, chain_secs),
        mib_per_s: rate(chain.payload_bytes, chain_secs) / (1024.0 * 1024.0),
        threads: cores,
        parallel_events_per_s: rate(par.events, par_secs),
        full_events_per_s: rate(full.events, full_secs),
        scan_decode_events_per_s: rate(crc.events, crc_secs),
        verify_events_per_s: rate(verified.entries, verify_secs),
    })
}
