//! `hearth-services`: the hearth node and the code behind the `hearth` command-line tool.
//!
//! The binary (`src/main.rs`) only parses arguments; every command lives here so tests and later
//! code (the server, the audit) can reuse it:
//! * [`audit`] — the offline audit (log integrity, manifest signatures, projections rebuilt
//!   and compared) and point-in-time replay;
//! * [`cli`] — operator commands on a data directory (`hearth serve`, `hearth id`,
//!   `hearth log verify`, `hearth log dump`);
//! * [`mod@bench`] — in-process benchmarks (`hearth bench log`), each measured against the disk's own
//!   fdatasync baseline;
//! * [`blobs`] — the pure parts of the blob paths: erasure policy, stripe layout, stripe
//!   encoding and verified rebuilding (Reed-Solomon);
//! * [`identity`] — the node's ed25519 key and PeerId (`DATA_DIR/identity.key`);
//! * [`net`] — the node's libp2p swarm (TCP + noise + yamux, identify, ping) carrying
//!   `/hearth/raft/1` requests, members-only and cluster-checked, as an actor task;
//! * [`node`] — a running node: raft on the event log, the projections, the transport, joining
//!   and membership, the write path;
//! * [`http`] — the node's HTTP API (axum);
//! * [`paths`] — where things live inside a node's data directory;
//! * [`metrics`] — every metric's name and the Prometheus exporter behind `GET /metrics`;
//! * [`telemetry`] — tracing set-up (text or JSON on stderr).
#![deny(clippy::unwrap_used)]

pub mod audit;
pub mod bench;
pub mod blobs;
pub mod cli;
pub mod docs;
pub mod fsutil;
pub mod hex;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod net;
pub mod node;
pub mod paths;
pub mod replication;
pub mod telemetry;
