//! The scrub worker, on every member: re-hashes this node's shard files at a bounded rate
//! (`--scrub-bytes-per-s`), one pass every `--scrub-every`, and puts right what it finds.
//!
//! Only shards this node is a confirmed holder of are checked (a copy it released, or one
//! still arriving, is not its to vouch for). A file whose blake3 or size differs from the
//! manifest, or that is gone, is replaced: copied from another confirmed holder, or rebuilt
//! from any `k` other shards — checked against the manifest, fsynced and renamed over the bad
//! one ([`crate::blobs::ShardReceiver`]), so the confirmation in the index stays true. Results
//! are logged (`scrub` target), counted in [`ScrubReport`] and the scrub metrics, and recorded:
//! every pass that checked at least one file ends with one `ShardsScrubbed` event about this
//! node (its counts and up to [`MAX_SCRUBBED_SHARDS`] of the bad copies), which the
//! reputation projection (`peers-1`) adds to this node's record. A report that cannot be
//! proposed (no leader, say) is logged and dropped; the next pass reports its own.

use super::{Node, NodeError};
use bytes::Bytes;
use hearth_projections::MAX_SCRUBBED_SHARDS;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{ScrubbedShard, ShardsScrubbed};
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
    /// Log index of the `ShardsScrubbed` event that recorded the pass; `None` when the pass
    /// checked nothing (nothing to report), the proposal failed or a projection rejected it.
    pub recorded_at: Option<u64>,
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
        let mut bad_shards: Vec<ScrubbedShard> = Vec::new();
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
                if bad_shards.len() < MAX_SCRUBBED_SHARDS {
                    bad_shards.push(ScrubbedShard {
                        blob_hash: Bytes::copy_from_slice(&hash),
                        shard_index: *shard,
                    });
                }
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
        metrics::counter!(crate::metrics::SCRUB_CHECKED).increment(report.checked);
        metrics::counter!(crate::metrics::SCRUB_BYTES).increment(report.bytes);
        metrics::counter!(crate::metrics::SCRUB_BAD).increment(report.bad);
        metrics::counter!(crate::metrics::SCRUB_REPAIRED).increment(report.repaired);
        if report.checked > 0 {
            report.recorded_at = self.record_scrub(&me, &report, bad_shards).await;
        }
        Ok(report)
    }

    /// Proposes the `ShardsScrubbed` of a pass; the index it was committed at, or `None` (and
    /// a warning) when it was not committed or the reputation projection refused it.
    async fn record_scrub(
        &self,
        me: &[u8],
        report: &ScrubReport,
        bad_shards: Vec<ScrubbedShard>,
    ) -> Option<u64> {
        let event = Event::ShardsScrubbed(ShardsScrubbed {
            holder: Bytes::copy_from_slice(me),
            checked: report.checked,
            bytes: report.bytes,
            bad: report.bad,
            repaired: report.repaired,
            bad_shards,
        });
        match self.propose_quietly(event, "scrub results").await {
            None => {
                tracing::warn!(target: "scrub", ?report, "the scrub results were not recorded (not committed); the next pass reports its own");
                None
            }
            Some(c) => {
                if let Some(reason) = &c.rejected {
                    tracing::warn!(target: "scrub", index = c.index, %reason, "the scrub results were committed but rejected");
                    return None;
                }
                Some(c.index)
            }
        }
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
