//! The node's metrics: every metric's name as a constant, its description, and the Prometheus
//! exporter (`metrics-exporter-prometheus`, installed as the process-wide recorder of the
//! [`metrics`] facade) that `GET /metrics` renders.
//!
//! Where each is recorded:
//! * the log (`hearth_log::metrics`): appends, batches, batch sizes, fsync latency — in the
//!   writer thread;
//! * HTTP (`crate::http::track`): requests by matched route template, method and status, and
//!   their latency — a middleware layer on the router;
//! * blobs (`crate::http::blobs`): bytes received by `PUT`, bytes answered by `GET`;
//! * the live event stream (`crate::http::events_stream`): open streams, events sent, lagging
//!   consumers dropped;
//! * the scrubber (`crate::node::scrubber`): shard files re-hashed, bytes read, bad copies found
//!   and repaired — added at the end of each pass;
//! * gauges (`crate::node::gauges`): raft term / commit / applied / apply lag and the repair
//!   queue at each scrape (cheap reads); the replication and verification work lists, peer
//!   scores and blobs per tier from a sampler task (a paged scan of the blob index every
//!   [`TIER_SCAN_EVERY`], so a scrape never walks the index).
//!
//! What it is **not**: a per-node registry. The recorder is global to the process; in-process
//! clusters (`hearth bench cluster`, some tests) share one set of series. `hearth serve` runs
//! one node per process, so there it is the node's.

pub mod exposition;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Counter: HTTP requests answered, by `route` (the matched path template, `unmatched` for
/// none), `method` and `status`.
pub const HTTP_REQUESTS: &str = "hearth_http_requests_total";
/// Histogram: seconds from a request's arrival to its response head, by `route` and `method`.
pub const HTTP_SECONDS: &str = "hearth_http_request_seconds";
/// Gauge: the raft term this node is in.
pub const RAFT_TERM: &str = "hearth_raft_term";
/// Gauge: the highest log index this node knows committed.
pub const RAFT_COMMIT_INDEX: &str = "hearth_raft_commit_index";
/// Gauge: the highest log index this node has applied to its projections.
pub const RAFT_APPLIED_INDEX: &str = "hearth_raft_applied_index";
/// Gauge: committed − applied on this node.
pub const RAFT_APPLY_LAG: &str = "hearth_raft_apply_lag";
/// Gauge: the last index in this node's log.
pub const RAFT_LAST_LOG_INDEX: &str = "hearth_raft_last_log_index";
/// Gauge: 1 while this node is the leader, else 0.
pub const RAFT_IS_LEADER: &str = "hearth_raft_is_leader";
/// Counter: blob bytes received by `PUT /v1/blobs`.
pub const BLOB_BYTES_IN: &str = "hearth_blob_bytes_in_total";
/// Counter: blob bytes answered by `GET /v1/blobs/{hash}` (the range planned when the body
/// starts; a client leaving early is still counted whole).
pub const BLOB_BYTES_OUT: &str = "hearth_blob_bytes_out_total";
/// Gauge: blobs in the blob index by `tier` (`accepted`, `durable`, `verified`; deleted ones
/// not counted), from the last scan.
pub const BLOBS: &str = "hearth_blobs";
/// Gauge: sharded blobs on the replication work list (placement not satisfied or surplus
/// copies not released).
pub const REPLICATION_QUEUE: &str = "hearth_replication_queue";
/// Gauge: durable blobs waiting for a verification.
pub const VERIFICATION_QUEUE: &str = "hearth_verification_queue";
/// Gauge: repair jobs queued on this node (shard rebuilds and chunk rewrites a read found).
pub const REPAIR_QUEUE: &str = "hearth_repair_queue";
/// Gauge: each known peer's reputation score in [0, 1], by `peer` (PeerId).
pub const PEER_SCORE: &str = "hearth_peer_score";
/// Gauge: open `GET /v1/events` streams.
pub const EVENT_STREAMS: &str = "hearth_event_streams";
/// Counter: events sent on `GET /v1/events` streams.
pub const EVENT_STREAM_SENT: &str = "hearth_event_stream_sent_total";
/// Counter: `GET /v1/events` streams dropped because they fell behind the live buffer.
pub const EVENT_STREAM_LAGGED: &str = "hearth_event_stream_lagged_total";
/// Counter: shard files the scrubber re-hashed (a missing file counts).
pub const SCRUB_CHECKED: &str = "hearth_scrub_checked_total";
/// Counter: bytes the scrubber read.
pub const SCRUB_BYTES: &str = "hearth_scrub_bytes_total";
/// Counter: shard copies the scrubber found bad (rotten, short or missing).
pub const SCRUB_BAD: &str = "hearth_scrub_bad_total";
/// Counter: bad shard copies the scrubber replaced by a verified copy.
pub const SCRUB_REPAIRED: &str = "hearth_scrub_repaired_total";
/// Counter: shards this node pushed to their placed holders, by how the push ended
/// (`outcome`: `done`, `held`, `not_placed`, `busy`, `out_of_order`, `failed`, `error`).
pub const SHARD_PUSHES: &str = "hearth_shard_pushes_total";

/// How often the sampler scans the blob index for [`BLOBS`].
pub const TIER_SCAN_EVERY: Duration = Duration::from_secs(60);
/// How often the sampler reads the work lists and peer scores.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Histogram buckets (seconds) for latencies: 50 µs … 10 s.
const SECONDS_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Histogram buckets for records per batch.
const RECORD_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
/// Histogram buckets for bytes per batch: 256 B … 16 MiB.
const BYTE_BUCKETS: [f64; 10] = [
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 8388608.0, 16777216.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process-wide one (once; later calls return the
/// same handle) and describes every metric. `None` when another recorder was installed first
/// (then `/metrics` answers 503).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(build).as_ref()
}

fn build() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(hearth_log::metrics::BATCH_RECORDS.into()),
                &RECORD_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(hearth_log::metrics::BATCH_BYTES.into()),
                &BYTE_BUCKETS,
            )
        });
    let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the Prometheus recorder is not installed");
            return None;
        }
    };
    describe();
    Some(handle)
}

/// The current metrics in the Prometheus text format, or `None` without the recorder.
pub fn render() -> Option<String> {
    let handle = install()?;
    handle.run_upkeep();
    Some(handle.render())
}

/// Registers every metric's description (and unit) with the installed recorder.
fn describe() {
    hearth_log::metrics::describe();
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "HTTP request latency to the response head, by route and method"
    );
    describe_gauge!(RAFT_TERM, "The raft term this node is in");
    describe_gauge!(
        RAFT_COMMIT_INDEX,
        "Highest log index this node knows committed"
    );
    describe_gauge!(
        RAFT_APPLIED_INDEX,
        "Highest log index applied to this node's projections"
    );
    describe_gauge!(
        RAFT_APPLY_LAG,
        Unit::Count,
        "Committed minus applied entries on this node"
    );
    describe_gauge!(RAFT_LAST_LOG_INDEX, "Last index in this node's log");
    describe_gauge!(RAFT_IS_LEADER, "1 while this node is the raft leader");
    describe_counter!(
        BLOB_BYTES_IN,
        Unit::Bytes,
        "Blob bytes received by PUT /v1/blobs"
    );
    describe_counter!(
        BLOB_BYTES_OUT,
        Unit::Bytes,
        "Blob bytes answered by GET /v1/blobs/{hash}"
    );
    describe_gauge!(
        BLOBS,
        Unit::Count,
        "Blobs in the blob index by tier (last scan)"
    );
    describe_gauge!(
        REPLICATION_QUEUE,
        Unit::Count,
        "Sharded blobs on the replication work list"
    );
    describe_gauge!(
        VERIFICATION_QUEUE,
        Unit::Count,
        "Durable blobs waiting for verification"
    );
    describe_gauge!(REPAIR_QUEUE, Unit::Count, "Repair jobs queued on this node");
    describe_gauge!(PEER_SCORE, "Reputation score of each known peer, 0 to 1");
    describe_gauge!(EVENT_STREAMS, Unit::Count, "Open GET /v1/events streams");
    describe_counter!(
        EVENT_STREAM_SENT,
        Unit::Count,
        "Events sent on GET /v1/events streams"
    );
    describe_counter!(
        EVENT_STREAM_LAGGED,
        Unit::Count,
        "Event streams dropped for falling behind the live buffer"
    );
    describe_counter!(
        SCRUB_CHECKED,
        Unit::Count,
        "Shard files re-hashed by the scrubber"
    );
    describe_counter!(SCRUB_BYTES, Unit::Bytes, "Bytes read by the scrubber");
    describe_counter!(
        SCRUB_BAD,
        Unit::Count,
        "Shard copies the scrubber found rotten, short or missing"
    );
    describe_counter!(
        SCRUB_REPAIRED,
        Unit::Count,
        "Bad shard copies the scrubber replaced by a verified copy"
    );
    describe_counter!(
        SHARD_PUSHES,
        Unit::Count,
        "Shards pushed to their placed holders, by outcome"
    );
}

/// Every metric name defined here and in the log crate.
pub const ALL: &[&str] = &[
    hearth_log::metrics::ENTRIES_APPENDED,
    hearth_log::metrics::BATCHES,
    hearth_log::metrics::BYTES_WRITTEN,
    hearth_log::metrics::BATCH_RECORDS,
    hearth_log::metrics::BATCH_BYTES,
    hearth_log::metrics::FSYNC_SECONDS,
    HTTP_REQUESTS,
    HTTP_SECONDS,
    RAFT_TERM,
    RAFT_COMMIT_INDEX,
    RAFT_APPLIED_INDEX,
    RAFT_APPLY_LAG,
    RAFT_LAST_LOG_INDEX,
    RAFT_IS_LEADER,
    BLOB_BYTES_IN,
    BLOB_BYTES_OUT,
    BLOBS,
    REPLICATION_QUEUE,
    VERIFICATION_QUEUE,
    REPAIR_QUEUE,
    PEER_SCORE,
    EVENT_STREAMS,
    EVENT_STREAM_SENT,
    EVENT_STREAM_LAGGED,
    SCRUB_CHECKED,
    SCRUB_BYTES,
    SCRUB_BAD,
    SCRUB_REPAIRED,
    SHARD_PUSHES,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in Grafana dashboard names only metrics that exist.
    #[test]
    fn the_dashboard_names_only_real_metrics() {
        let dashboard = include_str!("../../../ops/grafana/hearth.json");
        let v: serde_json::Value = serde_json::from_str(dashboard).expect("dashboard is JSON");
        assert!(v["panels"].as_array().is_some_and(|p| !p.is_empty()));
        let mut used = 0;
        for (i, _) in dashboard.match_indices("hearth_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                ALL.contains(&base),
                "the dashboard names unknown metric {name}"
            );
            used += 1;
        }
        assert!(used >= 20, "{used}");
    }
}
