//! The scrub worker, on every member: re-hashes this node's shard files at a bounded rate
//! (`--scrub-bytes-per-s`), one pass every `--scrub-every`, and puts right what it finds.
//!
//! Only shards this node is a confirmed holder of are checked (a copy it released, or one
//! still arriving, is not its to vouch for). A file whose blake3 or size differs from the
//! manifest, or that is gone, is replaced: copied from another confirmed holder, or rebuilt
//! from any `k` other shards — checked against the manifest, fsynced and renamed over the bad
//! one ([`crate::blobs::ShardReceiver`]), so the confirmation in the index stays true. Results
//! are logged (`scrub` target) and counted in [`ScrubReport`].

use super::{Node, NodeError};
use std::io::Read as _;
use std::time::{Duration, Instant};

/// What one scrub pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Shard files re-hashed.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Files that did not match (rotten, short or missing).
    pub bad: u64,
    /// Bad files replaced by a verified copy.
    pub repaired: u64,
}

/// Bytes read per step (the unit of rate limiting).
const STEP: usize = 1 << 20;

impl Node {
    /// One scrub pass over this node's shards at `bytes_per_s` (0: unbounded).
    pub async fn scrub_once(&self, bytes_per_s: u64) -> Result<ScrubReport, NodeError> {
        let mut report = ScrubReport::default();
        if self.ready().is_err() {
            return Ok(report);
        }
        let me = self.peer_id().to_bytes();
        let started = Instant::now();
        let dirs = self.shards().blob_dirs()?;
        for (hash, _) in dirs {
            let Some(blob) = self.blob(&hash)?.filter(|b| !b.deleted && !b.is_inline()) else {
                continue;
            };
            let holders = self.blob_holders(&hash)?;
            for (shard, holder, record) in &holders {
                if *holder != me || !record.confirmed {
                    continue;
                }
                let expected = blob.shard_hash(*shard).to_vec();
                let path = self.shards().shard_path(&hash, *shard);
                let size = record.shard_size;
                // Hash in steps, sleeping to keep the rate.
                let mut ok = true;
                let mut hasher = blake3::Hasher::new();
                let mut read_total = 0u64;
                match std::fs::File::open(&path) {
                    Err(_) => ok = false,
                    Ok(file) => {
                        let mut state = Some((file, vec![0u8; STEP]));
                        loop {
                            let Some((mut f, mut buf)) = state.take() else {
                                break;
                            };
                            let read = tokio::task::spawn_blocking(move || {
                                let n = f.read(&mut buf);
                                (f, buf, n)
                            })
                            .await;
                            let Ok((f, buf, n)) = read else {
                                ok = false;
                                break;
                            };
                            let n = match n {
                                Ok(0) => break,
                                Ok(n) => n,
                                Err(_) => {
                                    ok = false;
                                    break;
                                }
                            };
                            hasher.update(&buf[..n]);
                            state = Some((f, buf));
                            read_total += n as u64;
                            report.bytes += n as u64;
                            if bytes_per_s > 0 {
                                let due = Duration::from_secs_f64(
                                    report.bytes as f64 / bytes_per_s as f64,
                                );
                                if let Some(wait) = due.checked_sub(started.elapsed()) {
                                    tokio::time::sleep(wait).await;
                                }
                            }
                        }
                    }
                }
                report.checked += 1;
                if ok && read_total == size && hasher.finalize().as_bytes()[..] == expected[..] {
                    continue;
                }
                report.bad += 1;
                tracing::warn!(target: "scrub", hash = %crate::hex::encode(&hash), shard, "scrub found a bad shard copy");
                match self
                    .obtain_shard(&hash, &blob, &holders, *shard, &expected, size)
                    .await
                {
                    Ok(()) => {
                        report.repaired += 1;
                        self.stripe_cache()
                            .remove_blob(&hash, blob.stripe_hashes.len() as u64);
                        tracing::info!(target: "scrub", hash = %crate::hex::encode(&hash), shard, "scrub replaced a bad shard copy");
                    }
                    Err(e) => {
                        tracing::warn!(target: "scrub", hash = %crate::hex::encode(&hash), shard, error = %e, "scrub could not repair a shard")
                    }
                }
            }
        }
        Ok(report)
    }
}

/// The scrub worker: a pass every `scrub_every` (the first one `scrub_every` after start-up).
pub(super) async fn scrubber(node: Node) {
    let (rate, every) = (
        node.inner.settings.scrub_bytes_per_s,
        node.inner.settings.scrub_every,
    );
    if rate == 0 {
        return;
    }
    loop {
        tokio::time::sleep(every).await;
        match node.scrub_once(rate).await {
            Ok(r) if r.bad > 0 => {
                tracing::warn!(target: "scrub", ?r, "scrub pass found bad shards")
            }
            Ok(r) => tracing::debug!(target: "scrub", ?r, "scrub pass"),
            Err(e) => tracing::warn!(target: "scrub", error = %e, "scrub pass failed"),
        }
    }
}
