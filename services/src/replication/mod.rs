//! Replication across the family: where shards go ([`placement`]), how they move between
//! members ([`transfer`] over `/hearth/shard/1`, bodies in [`wire`]).
//!
//! The workers that drive it (deciding placements on the leader, fetching and confirming on
//! holders, releasing surplus copies, verifying manifests) live in the node
//! (`crate::node::replicator`), because they read the node's projections and propose events.
//!
//! What it is **not**: the blob index (which decides, at apply, whether a placement, a
//! confirmation or a release stands: `hearth_projections::BlobIndexProjection`).

pub mod placement;
pub mod transfer;
pub mod wire;
