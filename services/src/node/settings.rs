//! [`NodeSettings`]: everything a node is configured with, with the defaults a family cluster
//! on small machines wants. `hearth serve` fills it from flags, `HEARTH_*` environment variables
//! and a TOML file (in that order of precedence); benchmarks and tests build it directly.

use super::batcher::BatchLimits;
use crate::blobs::ErasurePolicy;
use libp2p::Multiaddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default HTTP listener.
pub const DEFAULT_HTTP: &str = "127.0.0.1:7070";
/// Default libp2p listener.
pub const DEFAULT_P2P: &str = "/ip4/127.0.0.1/tcp/7071";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./hearth-data";

/// How long a voter may go unsighted before its shards are rebuilt elsewhere: long enough that
/// a reboot or an evening offline moves nothing, short enough that a dead disk does not leave
/// the family's blobs one loss from gone for a day.
pub const DEFAULT_REPAIR_GRACE: Duration = Duration::from_secs(3600);

/// How the log is kept once snapshots exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Retention {
    /// Keep every entry (the default): audits start at the first one.
    KeepAll,
    /// Purge entries once a snapshot covers them (snapshot-and-purge). Nodes that fall behind
    /// catch up by snapshot.
    Purge,
}

/// A node's settings.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The data directory.
    pub data_dir: PathBuf,
    /// HTTP listener (API and admin). Port 0 picks a free port.
    pub http: SocketAddr,
    /// libp2p listener. Port 0 picks a free port.
    pub p2p: Multiaddr,
    /// HTTP URL of a member to join through, for a data directory that belongs to no cluster.
    pub join: Option<String>,
    /// Join as a learner and stay one (not promoted to voter).
    pub learner: bool,
    /// Token admin calls must carry (`Authorization: Bearer …`). Required when the HTTP
    /// listener is not on loopback.
    pub admin_token: Option<String>,
    /// Token writes (events, blobs) may carry instead of the admin token when the HTTP listener
    /// is not on loopback, so apps need not hold the admin token.
    pub api_token: Option<String>,
    /// Build a snapshot every this many entries (it bounds catch-up time).
    pub snapshot_every: u64,
    /// Whether snapshots allow purging the log.
    pub retention: Retention,
    /// Most proposals in flight on this node; beyond, the API answers 503.
    pub max_inflight: usize,
    /// Most bytes of proposals in flight on this node; beyond, the API answers 503.
    pub max_inflight_bytes: usize,
    /// Erasure code of new blobs.
    pub erasure: ErasurePolicy,
    /// Blobs up to this many bytes are carried inside their `BlobAccepted` event.
    pub inline_threshold: usize,
    /// The largest blob accepted (413 beyond).
    pub max_blob_bytes: u64,
    /// Disk space kept free for the log: a blob write that would eat into it gets 507.
    pub disk_reserve: u64,
    /// Most blob uploads in flight on this node; beyond, the API answers 503.
    pub max_blob_puts: usize,
    /// Applied entries the live event stream buffers; a `GET /v1/events` consumer further
    /// behind is dropped with its resume point.
    pub events_buffer: usize,
    /// Bytes of verified stripes kept in memory for reads (0: no cache).
    pub cache_bytes: u64,
    /// With `retention = purge`: where purged entries are archived first (a `hearth-log`
    /// directory); `None`: `DATA_DIR/archive/log`.
    pub archive_dir: Option<PathBuf>,
    /// Memory that blob reads in progress may hold at once, over all of them (read-ahead
    /// pieces and the shard chunks they are rebuilt from); reads beyond it wait.
    pub read_buffer_bytes: u64,
    /// Shard directories no committed event references (a crash between their fsync and the
    /// commit) are removed at start-up once they are this old.
    pub orphan_grace: Duration,
    /// Scrub: this node's shard files are re-hashed at most this many bytes per second
    /// (0: no scrub).
    pub scrub_bytes_per_s: u64,
    /// Scrub: a full pass over this node's shards starts this long after the previous one (and
    /// after start-up).
    pub scrub_every: Duration,
    /// A voter no member has sighted (no `PeerSeen` in the log) for this long is treated as
    /// gone by the leader's placement: its shards are rebuilt onto the other members, without
    /// waiting for an operator to remove it (zero: only removal does that).
    pub repair_grace: Duration,
    /// At most one `PeerSeen` per connected member per this interval (unless its addresses or
    /// agent change).
    pub peer_seen_every: Duration,
    /// Cluster members this node (a device outside their cluster) keeps its granted documents
    /// in sync with, over `/hearth/sync/1`: multiaddrs ending in `/p2p/PEER_ID`.
    pub sync_with: Vec<libp2p::Multiaddr>,
    /// Pause between two document sync passes with each of `sync_with`.
    pub sync_every: Duration,
    /// How the leader groups writes into raft entries (group commit).
    pub batch: BatchLimits,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout range.
    pub election_timeout: (Duration, Duration),
}

impl NodeSettings {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeSettings {
            data_dir: data_dir.into(),
            http: SocketAddr::from(([127, 0, 0, 1], 7070)),
            p2p: loopback_tcp(7071),
            join: None,
            learner: false,
            admin_token: None,
            api_token: None,
            snapshot_every: 100_000,
            retention: Retention::KeepAll,
            max_inflight: 4096,
            max_inflight_bytes: 64 << 20,
            batch: BatchLimits::default(),
            erasure: ErasurePolicy::Auto,
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            max_blob_bytes: 1 << 40,
            disk_reserve: 256 << 20,
            orphan_grace: Duration::from_secs(600),
            max_blob_puts: 64,
            events_buffer: super::event_feed::DEFAULT_BUFFER,
            cache_bytes: 64 << 20,
            archive_dir: None,
            read_buffer_bytes: 256 << 20,
            scrub_bytes_per_s: 16 << 20,
            scrub_every: Duration::from_secs(24 * 3600),
            repair_grace: DEFAULT_REPAIR_GRACE,
            peer_seen_every: super::peers::PEER_SEEN_EVERY,
            sync_with: Vec::new(),
            sync_every: crate::docs::device_sync::DEFAULT_SYNC_EVERY,
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(500), Duration::from_millis(1000)),
        }
    }

    /// Settings for an ephemeral node on loopback (free ports): tests and benchmarks.
    pub fn loopback(data_dir: impl Into<PathBuf>) -> Self {
        let mut s = Self::new(data_dir);
        s.http = SocketAddr::from(([127, 0, 0, 1], 0));
        s.p2p = loopback_tcp(0);
        s
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), String> {
        if !self.http.ip().is_loopback() && self.admin_token.as_deref().unwrap_or("").is_empty() {
            return Err(format!(
                "the HTTP listener {} is not on loopback, so admin calls need a token: set \
                 --admin-token (or HEARTH_ADMIN_TOKEN)",
                self.http
            ));
        }
        let (lo, hi) = self.election_timeout;
        if self.heartbeat.is_zero() || lo <= self.heartbeat || hi <= lo {
            return Err(format!(
                "raft timeouts must satisfy 0 < heartbeat ({:?}) < election min ({lo:?}) < \
                 election max ({hi:?})",
                self.heartbeat
            ));
        }
        if self.peer_seen_every.is_zero() {
            return Err("peer-seen-every must be more than zero".into());
        }
        if !self.repair_grace.is_zero() && self.repair_grace < 3 * self.peer_seen_every {
            return Err(format!(
                "repair-grace ({}) must be at least three times peer-seen-every ({}), so a \
                 member that is up is never taken for gone (or 0 to repair only on removal)",
                humantime::format_duration(self.repair_grace),
                humantime::format_duration(self.peer_seen_every)
            ));
        }
        if self.snapshot_every == 0 {
            return Err("snapshot-every must be at least 1".into());
        }
        if self.max_inflight == 0 || self.max_inflight_bytes < MAX_EVENT_BYTES {
            return Err(format!(
                "max-inflight must be at least 1 and max-inflight-bytes at least {MAX_EVENT_BYTES}"
            ));
        }
        if self.events_buffer == 0 {
            return Err("events-buffer must be at least 1".into());
        }
        if self.max_blob_puts == 0 {
            return Err("max-blob-puts must be at least 1".into());
        }
        if self.inline_threshold > MAX_INLINE_THRESHOLD {
            return Err(format!(
                "inline-threshold must be at most {MAX_INLINE_THRESHOLD} bytes (an event carries \
                 the blob and must stay under the {MAX_EVENT_BYTES}-byte event limit)"
            ));
        }
        if self.batch.in_flight == 0
            || self.batch.max_events == 0
            || self.batch.max_bytes < MAX_EVENT_BYTES
            || self.batch.max_bytes > MAX_BATCH_BYTES
        {
            return Err(format!(
                "a batch must allow at least 1 entry in flight, 1 event and between \
                 {MAX_EVENT_BYTES} and {MAX_BATCH_BYTES} bytes"
            ));
        }
        Ok(())
    }

    /// openraft's configuration for these settings.
    pub fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "hearth".into(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: self.election_timeout.0.as_millis() as u64,
            election_timeout_max: self.election_timeout.1.as_millis() as u64,
            // One chunk per request; each request has the transport's timeout, so the time
            // allowed grows with the snapshot's size (chunks × per-chunk timeout).
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES as u64,
            install_snapshot_timeout: SNAPSHOT_CHUNK_TIMEOUT.as_millis() as u64,
            // An AppendEntries of this many largest events still fits a raft message; larger
            // batches are split by the network (PayloadTooLarge).
            max_payload_entries: 4096,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: match self.retention {
                Retention::KeepAll => u64::MAX,
                Retention::Purge => 0,
            },
            purge_batch_size: 1,
            replication_lag_threshold: 5000,
            ..openraft::Config::default()
        }
    }
}

/// The largest event envelope a client may propose. Together with `max_payload_entries` the
/// network splits AppendEntries so every message stays under the transport's limit.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Default size up to which blobs travel inline in their event.
pub const DEFAULT_INLINE_THRESHOLD: usize = 8 << 10;

/// The largest inline threshold: half the event limit, leaving room for the event's other
/// fields.
pub const MAX_INLINE_THRESHOLD: usize = MAX_EVENT_BYTES / 2;

/// The largest batch entry: far enough under the transport's message limit that an
/// AppendEntries holding one such entry always fits.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// Size of one snapshot chunk on the wire.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;

/// Time allowed for one snapshot chunk (4 MiB at a slow 1 MB/s, with margin).
pub const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

/// `/ip4/127.0.0.1/tcp/PORT`.
pub fn loopback_tcp(port: u16) -> Multiaddr {
    use libp2p::multiaddr::Protocol;
    Multiaddr::empty()
        .with(Protocol::Ip4([127, 0, 0, 1].into()))
        .with(Protocol::Tcp(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_public_http_needs_a_token() {
        let mut s = NodeSettings::new("/tmp/x");
        assert_eq!(s.http.to_string(), DEFAULT_HTTP);
        assert_eq!(s.p2p.to_string(), DEFAULT_P2P);
        s.validate().expect("defaults are valid");
        let c = s.raft_config().validate().expect("raft config");
        assert_eq!(c.max_in_snapshot_log_to_keep, u64::MAX);
        s.http = "0.0.0.0:7070".parse().expect("addr");
        assert!(s
            .validate()
            .expect_err("needs a token")
            .contains("admin-token"));
        s.admin_token = Some("secret".into());
        s.validate().expect("with a token");
        s.heartbeat = Duration::from_millis(600);
        assert!(s.validate().is_err());
    }

    #[test]
    fn the_repair_grace_must_outlast_several_sightings() {
        let mut s = NodeSettings::new("/tmp/x");
        assert_eq!(s.repair_grace, DEFAULT_REPAIR_GRACE);
        s.peer_seen_every = Duration::from_secs(2);
        s.repair_grace = Duration::from_secs(5);
        let e = s.validate().expect_err("too short");
        assert!(e.contains("repair-grace (5s)") && e.contains("(2s)"), "{e}");
        s.repair_grace = Duration::from_secs(6);
        s.validate().expect("three sightings");
        s.repair_grace = Duration::ZERO;
        s.validate().expect("zero: repair on removal only");
        s.peer_seen_every = Duration::ZERO;
        assert!(s.validate().is_err());
    }
}
