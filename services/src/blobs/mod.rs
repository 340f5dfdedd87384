//! Blobs: content-addressed (blake3), Reed-Solomon erasure-coded byte strings.
//!
//! The pieces of the blob write and read paths below the HTTP API:
//!
//! * [`policy`]: which `k + m` a blob gets when it is accepted (`auto` from the voter count, or
//!   a fixed code for the cluster);
//! * [`layout`]: how a blob of a given size is cut into stripes and each stripe into `k` data
//!   and `m` parity chunks, where every stripe sits inside every shard, and which stripes a byte
//!   range touches;
//! * [`stripe`]: encoding one stripe into its chunks, and rebuilding a stripe from any `k` of
//!   them, checked against the stripe's blake3 hash before anything is returned;
//! * [`shard_store`]: the node's shard files — a streaming writer that encodes, hashes and
//!   durably publishes a blob's shards, chunk reads and repairs;
//! * [`reader`]: verified byte ranges of a blob, rebuilding missing or rotten chunks on the way;
//! * [`cache`]: the memory cache of verified stripes the reader looks in first;
//! * [`read_budget`]: the node-wide bound on memory held by reads in progress;
//! * [`repairer`]: putting those shards right in the background (whole missing files rebuilt,
//!   rotten chunks rewritten).
//!
//! What it is **not** (yet): the HTTP routes and the committed events;
//! the blob index projection lives in `hearth-projections` (`BlobIndexProjection`).

pub mod cache;
pub mod layout;
pub mod policy;
pub mod read_budget;
pub mod reader;
pub mod repairer;
pub mod shard_store;
pub mod stripe;

pub use cache::StripeCache;
pub use layout::{Layout, LayoutError};
pub use policy::{ErasurePolicy, PolicyError};
pub use read_budget::ReadBudget;
pub use reader::{apply_repairs, read_range, Manifest, ReadReport, Repair};
pub use repairer::{rebuild_shards, Repairer};
pub use shard_store::{ReceiveError, ShardError, ShardReceiver, ShardStore, ShardWriter, Written};
pub use stripe::{StripeCodec, StripeError};
