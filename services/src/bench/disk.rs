//! The disk baseline every benchmark is compared with: 4 KiB writes, each followed by
//! `fdatasync`, (a) extending a fresh file and (b) overwriting a preallocated, fsynced file.
//!
//! (b) is what the log does in steady state (its segments are preallocated), so log throughput
//! is reported as a ratio to the overwrite IOPS. Each test runs for about a second or
//! [`MAX_OPS`] writes, whichever comes first.

use super::report::{Baseline, Latency};
use anyhow::Context as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Size of one write.
pub const BLOCK: usize = 4096;
/// Most writes per test.
pub const MAX_OPS: u64 = 2000;
/// Longest a test runs.
pub const MAX_TIME: Duration = Duration::from_secs(1);

/// One test's result.
#[derive(Debug, Clone, Copy)]
pub struct DiskResult {
    /// Writes done.
    pub ops: u64,
    /// Writes (each with its fdatasync) per second.
    pub iops: f64,
    /// Latency of write + fdatasync.
    pub latency: Latency,
}

/// Measure both tests in a scratch directory inside `dir` (removed afterwards).
pub fn measure(dir: &Path) -> anyhow::Result<Baseline> {
    let scratch = tempfile::Builder::new()
        .prefix("hearth-bench-")
        .tempdir_in(dir)
        .with_context(|| format!("create a scratch directory in {}", dir.display()))?;
    let extend = extend_test(&scratch.path().join("extend.dat"))?;
    let overwrite = overwrite_test(&scratch.path().join("overwrite.dat"))?;
    scratch
        .close()
        .with_context(|| format!("remove scratch directory in {}", dir.display()))?;
    Ok(Baseline {
        fdatasync_iops: extend.iops,
        p50_us: extend.latency.p50_us,
        p99_us: extend.latency.p99_us,
        ops: extend.ops,
        overwrite_fdatasync_iops: overwrite.iops,
        overwrite_p50_us: overwrite.latency.p50_us,
        overwrite_p99_us: overwrite.latency.p99_us,
        overwrite_ops: overwrite.ops,
    })
}

fn block() -> Vec<u8> {
    (0..BLOCK).map(|i| (i % 251) as u8).collect()
}

/// A short overwrite probe (the reference test) in a scratch file inside `dir`: run right before
/// and right after each benchmark run, so that run's ratio is taken against the disk as it was
/// at that moment (a VM's disk drifts by 10% and more over seconds).
pub fn overwrite_probe(dir: &Path) -> anyhow::Result<DiskResult> {
    let scratch = tempfile::Builder::new()
        .prefix("hearth-bench-")
        .tempdir_in(dir)
        .with_context(|| format!("create a scratch directory in {}", dir.display()))?;
    let r = overwrite_test(&scratch.path().join("probe.dat"))?;
    scratch
        .close()
        .with_context(|| format!("remove scratch directory in {}", dir.display()))?;
    Ok(r)
}

/// 4 KiB appends to a fresh file, each followed by `fdatasync` (which must also persist the
/// new file size).
fn extend_test(path: &Path) -> anyhow::Result<DiskResult> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let buf = block();
    timed_loop(|_| {
        file.write_all(&buf)?;
        file.sync_data()
    })
    .with_context(|| format!("write + fdatasync {}", path.display()))
}

/// 4 KiB overwrites of a file that was fully written and fsynced first, each followed by
/// `fdatasync`.
fn overwrite_test(path: &Path) -> anyhow::Result<DiskResult> {
    let file = File::options()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let chunk = vec![0u8; 1 << 20];
    let total = MAX_OPS as usize * BLOCK;
    let mut written = 0;
    while written < total {
        let n = chunk.len().min(total - written);
        file.write_all_at(&chunk[..n], written as u64)
            .with_context(|| format!("preallocate {}", path.display()))?;
        written += n;
    }
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    let buf = block();
    timed_loop(|i| {
        file.write_all_at(&buf, i * BLOCK as u64)?;
        file.sync_data()
    })
    .with_context(|| format!("overwrite + fdatasync {}", path.display()))
}

/// Bandwidth of 1 MiB writes extending a fresh file, each followed by `fdatasync`, in MB/s
/// (10^6 bytes): the ceiling for writing shard files. Runs about a second (at most 256 MiB) in
/// a scratch directory inside `dir`.
pub fn write_bandwidth(dir: &Path) -> anyhow::Result<f64> {
    let scratch = tempfile::Builder::new()
        .prefix("hearth-bench-")
        .tempdir_in(dir)
        .with_context(|| format!("create a scratch directory in {}", dir.display()))?;
    let path = scratch.path().join("bandwidth.dat");
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    let chunk: Vec<u8> = (0..1usize << 20).map(|i| (i % 253) as u8).collect();
    let start = Instant::now();
    let mut written = 0u64;
    while written < 256 << 20 && start.elapsed() < MAX_TIME {
        file.write_all(&chunk)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("write + fdatasync {}", path.display()))?;
        written += chunk.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(file);
    scratch
        .close()
        .with_context(|| format!("remove scratch directory in {}", dir.display()))?;
    Ok(if secs > 0.0 {
        written as f64 / secs / 1e6
    } else {
        0.0
    })
}

/// Run `op(i)` until [`MAX_OPS`] or [`MAX_TIME`], timing each call.
fn timed_loop(mut op: impl FnMut(u64) -> std::io::Result<()>) -> std::io::Result<DiskResult> {
    let mut hist = super::report::new_histogram();
    let start = Instant::now();
    let mut ops = 0;
    while ops < MAX_OPS && start.elapsed() < MAX_TIME {
        let t = Instant::now();
        op(ops)?;
        hist.saturating_record(super::report::micros(t.elapsed()));
        ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(DiskResult {
        ops,
        iops: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        latency: Latency::from_histogram(&hist),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_measures_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = measure(dir.path()).expect("baseline");
        assert!(b.ops > 0 && b.fdatasync_iops > 0.0);
        assert!(b.overwrite_ops > 0 && b.overwrite_fdatasync_iops > 0.0);
        assert!(b.p50_us <= b.p99_us);
        let left = std::fs::read_dir(dir.path()).expect("read_dir").count();
        assert_eq!(left, 0, "scratch directory must be removed");
    }

    #[test]
    fn write_bandwidth_measures_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write_bandwidth(dir.path()).expect("bandwidth") > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
    }
}
