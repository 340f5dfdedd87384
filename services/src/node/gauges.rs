//! The node's gauges (names in [`crate::metrics`]): the cheap ones set at each scrape
//! ([`Node::record_scrape_gauges`]: raft term, commit, applied, lag, leadership, the repair
//! queue), the others by [`sampler`] every [`SAMPLE_EVERY`] (work lists, peer scores) and
//! every [`TIER_SCAN_EVERY`] (blobs per tier: a scan of the blob index in pages of
//! [`TIER_PAGE`] records, the state machine's lock taken per page only, so apply is never held
//! up for a whole scan).
//!
//! What it is **not**: a source of truth — the tier counts are as of a scan spread over time.

use super::Node;
use crate::metrics::{
    BLOBS, PEER_SCORE, RAFT_APPLIED_INDEX, RAFT_APPLY_LAG, RAFT_COMMIT_INDEX, RAFT_IS_LEADER,
    RAFT_LAST_LOG_INDEX, RAFT_TERM, REPAIR_QUEUE, REPLICATION_QUEUE, SAMPLE_EVERY, TIER_SCAN_EVERY,
    VERIFICATION_QUEUE,
};
use hearth_projections::{BlobIndexProjection, TIERS};
use metrics::gauge;

/// Blob records read per page of the tier scan.
pub const TIER_PAGE: usize = 256;

impl Node {
    /// Sets the gauges that cost nothing to read: raft term, commit / applied / last index,
    /// apply lag, leadership, queued repairs.
    pub fn record_scrape_gauges(&self) {
        let m = self.metrics();
        let committed = self.inner.store.meta().committed.map_or(0, |c| c.index);
        let applied = m.last_applied.map_or(0, |a| a.index);
        gauge!(RAFT_TERM).set(m.current_term as f64);
        gauge!(RAFT_COMMIT_INDEX).set(committed as f64);
        gauge!(RAFT_APPLIED_INDEX).set(applied as f64);
        gauge!(RAFT_APPLY_LAG).set(committed.saturating_sub(applied) as f64);
        gauge!(RAFT_LAST_LOG_INDEX).set(m.last_log_index.unwrap_or(0) as f64);
        gauge!(RAFT_IS_LEADER).set(if self.leads(&m) { 1.0 } else { 0.0 });
        gauge!(REPAIR_QUEUE).set(self.inner.repairer.queued() as f64);
    }

    /// Sets the work-list and peer-score gauges (small tables).
    fn record_sampled_gauges(&self) {
        if let Ok(w) = self.blob_work_list(BlobIndexProjection::WORK_PREFIX) {
            gauge!(REPLICATION_QUEUE).set(w.len() as f64);
        }
        if let Ok(v) = self.blob_work_list(BlobIndexProjection::VERIFY_PREFIX) {
            gauge!(VERIFICATION_QUEUE).set(v.len() as f64);
        }
        if let Ok(peers) = self.peer_records() {
            for (peer, _) in peers {
                let name = libp2p::PeerId::from_bytes(&peer)
                    .map(|p| p.to_string())
                    .unwrap_or_else(|_| crate::hex::encode(&peer));
                gauge!(PEER_SCORE, "peer" => name).set(self.peer_score(&peer).value);
            }
        }
    }

    /// Counts live blobs per tier, a page at a time.
    fn count_tiers(&self) -> Result<[u64; 3], super::NodeError> {
        let mut counts = [0u64; 3];
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .inner
                .sm
                .with_store(|s| {
                    s.scan_prefix_page(
                        BlobIndexProjection::NAME,
                        BlobIndexProjection::BLOB_PREFIX,
                        after.as_deref(),
                        TIER_PAGE,
                    )
                })?
                .map_err(|e| super::NodeError::Blob(format!("reading the blob index: {e}")))?;
            for (_, v) in &page {
                let Some(blob) = BlobIndexProjection::decode_blob(v) else {
                    continue;
                };
                if blob.deleted {
                    continue;
                }
                if let Some(i) = TIERS.iter().position(|t| *t == blob.tier()) {
                    counts[i] += 1;
                }
            }
            match page.last() {
                Some((k, _)) if page.len() == TIER_PAGE => after = Some(k.clone()),
                _ => return Ok(counts),
            }
        }
    }
}

/// Samples the gauges above until the node stops.
pub(super) async fn sampler(node: Node) {
    let mut next_tier_scan = tokio::time::Instant::now();
    loop {
        let n = node.clone();
        let scan = tokio::time::Instant::now() >= next_tier_scan;
        let done = tokio::task::spawn_blocking(move || {
            n.record_sampled_gauges();
            scan.then(|| n.count_tiers())
        })
        .await;
        match done {
            Ok(Some(Ok(counts))) => {
                for (tier, count) in TIERS.iter().zip(counts) {
                    gauge!(BLOBS, "tier" => *tier).set(count as f64);
                }
                next_tier_scan = tokio::time::Instant::now() + TIER_SCAN_EVERY;
            }
            Ok(Some(Err(e))) => tracing::warn!(error = %e, "metrics: counting blobs per tier"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "metrics: sampling"),
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}
