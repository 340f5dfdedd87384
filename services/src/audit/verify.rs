//! Audit phase 1, [`verify_log`]: every record's CRC, the whole hash chain and every
//! unredacted payload's hash ([`Verification::Full`]), on several threads.
//!
//! The index range is cut into one part per thread; each part is scanned with
//! [`Log::scan_with`], which checks the part's first link against the entry just before it,
//! so together the parts cover every link of the chain. A redacted record verifies by the
//! payload hash it kept (its zeroed bytes are not re-hashed) and is counted.
//!
//! Not here: what the payloads mean (phases 2 and 3 decode them).

use super::progress::{Batched, Tick};
use hearth_log::{Log, LogError, LogPosition, Verification};
use std::time::Instant;

/// What phase 1 checked.
#[derive(Debug, Clone, Default)]
pub struct ChainCheck {
    /// Entries checked.
    pub entries: u64,
    /// Of which redacted (checked by their kept payload hash).
    pub redacted: u64,
    /// Payload bytes read.
    pub payload_bytes: u64,
    /// First entry.
    pub first: Option<LogPosition>,
    /// Last entry: its chain hash is the head.
    pub last: Option<LogPosition>,
    /// Threads used.
    pub threads: usize,
    /// Wall time, seconds.
    pub secs: f64,
}

/// One part's counts.
#[derive(Default)]
struct Part {
    entries: u64,
    redacted: u64,
    payload_bytes: u64,
    first: Option<LogPosition>,
    last: Option<LogPosition>,
}

/// Checks every entry of `log` at `level` on `threads` threads (at least 1); the audit uses
/// [`Verification::Full`]. The first damage found is the error ([`LogError::Corrupt`] or
/// [`LogError::ChainBroken`], naming file and offset).
pub fn verify_log(
    log: &Log,
    level: Verification,
    threads: usize,
    tick: Tick<'_>,
) -> Result<ChainCheck, LogError> {
    verify_log_through(log, u64::MAX, level, threads, tick)
}

/// [`verify_log`] of the entries up to `through` (inclusive): the online audit's fixed range
/// while writes go on after it.
pub fn verify_log_through(
    log: &Log,
    through: u64,
    level: Verification,
    threads: usize,
    tick: Tick<'_>,
) -> Result<ChainCheck, LogError> {
    let start = Instant::now();
    let (Some(first), Some(last)) = (log.first_index(), log.last()) else {
        return Ok(ChainCheck {
            threads: 1,
            ..ChainCheck::default()
        });
    };
    let last = last.index.min(through);
    if last < first {
        return Ok(ChainCheck {
            threads: 1,
            ..ChainCheck::default()
        });
    }
    let n = last - first + 1;
    let threads = (threads.max(1) as u64).min(n);
    let parts: Vec<Result<Part, LogError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = first + n * t / threads;
                let hi = first + n * (t + 1) / threads - 1;
                s.spawn(move || verify_part(log, lo, hi, level, tick))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(LogError::Invalid("a verify thread panicked".into())))
            })
            .collect()
    });
    let mut check = ChainCheck {
        threads: threads as usize,
        ..ChainCheck::default()
    };
    for part in parts {
        let part = part?;
        check.entries += part.entries;
        check.redacted += part.redacted;
        check.payload_bytes += part.payload_bytes;
        check.first = check.first.or(part.first);
        check.last = part.last.or(check.last);
    }
    check.secs = start.elapsed().as_secs_f64();
    Ok(check)
}

fn verify_part(
    log: &Log,
    lo: u64,
    hi: u64,
    level: Verification,
    tick: Tick<'_>,
) -> Result<Part, LogError> {
    let mut part = Part::default();
    let mut ticks = Batched::new(tick);
    log.scan_with(lo..=hi, level, |rec| {
        let pos = LogPosition {
            index: rec.index,
            term: rec.term,
            chain: rec.chain,
        };
        part.first.get_or_insert(pos);
        part.last = Some(pos);
        part.entries += 1;
        part.redacted += u64::from(rec.redacted);
        part.payload_bytes += rec.payload.len() as u64;
        ticks.one();
        Ok(true)
    })?;
    ticks.finish();
    Ok(part)
}
