//! [`BlobIndexProjection`] (`"blobs-2"`): the blob index. Which blobs the cluster accepted (their
//! manifests), and which holder was assigned, and has confirmed, each of their shards.
//!
//! Keys and values (version 2), inside the `blobs-2` column family. Version 2 added
//! [`BlobRecord::inline_events`] and folds a repeated inline accept as a copy (version 1
//! rejected it); a node whose store has only `blobs-1` rebuilds the index from its log.
//!
//! | key | value |
//! |---|---|
//! | `b` ‖ blob hash (32 bytes) | [`BlobRecord`] (protobuf): the manifest and where the log accepted it |
//! | `h` ‖ blob hash (32 bytes) ‖ shard index u32 BE ‖ holder (PeerId bytes, ≥ 1 byte) | [`HolderRecord`] (protobuf): placement epoch, shard size, confirmation |
//! | `r` ‖ deletion index u64 BE ‖ blob hash (32 bytes) | empty: a deleted blob whose bytes some log entries carry inline, in deletion order (every member's collector redacts them) |
//!
//! The hash and the shard index have fixed sizes, so a key is unambiguous, and a prefix scan of
//! [`BlobIndexProjection::holders_prefix`] lists one blob's holders in shard order (then holder
//! byte order).
//!
//! Folded events (every other kind is ignored: no writes, [`Applied::Ok`]):
//!
//! * `BlobAccepted`: a new blob, inline (`inline_data` present, checked against `size` and the
//!   hash) or sharded (valid erasure parameters, `k + m` shard hashes, one stripe hash per
//!   stripe). A hash already in the index is not accepted again: two nodes accepting the same
//!   bytes end as one blob, the first in log order. A later *inline* accept of the same bytes
//!   is folded as a copy (recorded in [`BlobRecord::inline_events`], since its entry holds the
//!   bytes too); a later sharded one is rejected. In a redacted entry
//!   ([`ApplyCtx::redacted`]) inline data that reads as zeros is not hash-checked: it is a
//!   deleted blob's, already checked when the entry was first applied.
//! * `ShardPlaced`: shard `s` of a known sharded blob is assigned to a holder, with the
//!   manifest's shard hash; a newer placement epoch for the same `(blob, shard, holder)`
//!   replaces the record and resets its confirmation, an equal or older one is rejected.
//! * `ReplicaConfirmed`: the holder of a placed shard stored it, with the manifest's hash and
//!   the placed size; confirmed once.
//! * `BlobDeleted`: a tombstone. The record stays, marked deleted, without its inline bytes
//!   (its `inline_events` stay, so every member's collector can redact them from its log);
//!   placing or confirming its shards is rejected, deleting it again is rejected, and accepting
//!   the same bytes again starts a new record (placements then need a newer epoch).
//! * `ParityAdded`: more parity shards for a sharded blob of the same acceptance (`m` only
//!   grows; one 32-byte hash per added shard; the proposer is `added_by`), which becomes their
//!   confirmed holder; the blob goes back on the work list (its placement covers fewer shards)
//!   and on the verification list (its manifest changed).
//!
//! A stored value that does not decode (a damaged store) makes the event touching it a
//! rejection, never a panic. Readers ([`BlobIndexProjection::decode_blob`],
//! [`BlobIndexProjection::decode_holder`]) see such a value as absent.

use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{
    BlobAccepted, Envelope, ManifestVerified, ParityAdded, ReplicaConfirmed, ShardPlaced,
    ShardReleased,
};
use prost::Message;

use crate::projection::{Applied, ApplyCtx, Projection, StateTx};

/// Length of a blob, shard or stripe hash (blake3).
const HASH_LEN: usize = 32;
/// Most shards (`k + m`) a blob may have.
const MAX_SHARDS: u64 = 256;
/// First byte of a blob record's key.
const BLOB_TAG: u8 = b'b';
/// First byte of a holder record's key.
const HOLDER_TAG: u8 = b'h';
/// First byte of a redaction work-list key.
const REDACT_TAG: u8 = b'r';
/// First byte of a replication work-list key.
const WORK_TAG: u8 = b'w';
/// First byte of a verification work-list key.
const VERIFY_TAG: u8 = b'v';

/// A blob of the index: its manifest and where in the log it was accepted. Stored under
/// [`BlobIndexProjection::blob_key`]. Field tags are forever.
#[derive(Clone, PartialEq, Message)]
pub struct BlobRecord {
    /// Blob size in bytes.
    #[prost(uint64, tag = "1")]
    pub size: u64,
    /// k: number of data shards; 0 for an inline blob.
    #[prost(uint32, tag = "2")]
    pub data_shards: u32,
    /// m: number of parity shards; 0 for an inline blob.
    #[prost(uint32, tag = "3")]
    pub parity_shards: u32,
    /// Bytes per stripe; 0 for an inline blob.
    #[prost(uint64, tag = "4")]
    pub stripe_size: u64,
    /// blake3 of every shard (32 bytes each), data shards first; empty for an inline blob.
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub shard_hashes: Vec<Vec<u8>>,
    /// blake3 of every stripe (32 bytes each), in stripe order; empty for an inline blob.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub stripe_hashes: Vec<Vec<u8>>,
    /// The blob's bytes when it was carried inline; `None` for a sharded blob.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub inline_data: Option<Vec<u8>>,
    /// Node that accepted the blob: libp2p PeerId bytes.
    #[prost(bytes = "vec", tag = "8")]
    pub accepted_by: Vec<u8>,
    /// Media type supplied by the client; empty when unknown.
    #[prost(string, tag = "9")]
    pub content_type: String,
    /// Log index of the entry that accepted the blob.
    #[prost(uint64, tag = "10")]
    pub accepted_index: u64,
    /// Position of the accepting event in its entry (0 unless the entry is a batch).
    #[prost(uint32, tag = "11")]
    pub accepted_position: u32,
    /// Log time (Unix ms) at which the blob was accepted.
    #[prost(uint64, tag = "12")]
    pub accepted_log_time_ms: u64,
    /// Whether the blob was deleted (a tombstone; its inline bytes are dropped).
    #[prost(bool, tag = "13")]
    pub deleted: bool,
    /// Log index of the entry that deleted it (0 unless deleted).
    #[prost(uint64, tag = "14")]
    pub deleted_index: u64,
    /// Log time (Unix ms) at which it was deleted (0 unless deleted).
    #[prost(uint64, tag = "15")]
    pub deleted_log_time_ms: u64,
    /// Every event in the log that carries this blob's bytes inline, in log order: the
    /// accepting event when the blob is inline, later inline accepts of the same bytes, and
    /// those of earlier (deleted) records of the same hash. Once the blob is deleted, each
    /// member's collector redacts the bytes from these entries of its log.
    #[prost(message, repeated, tag = "16")]
    pub inline_events: Vec<EventRef>,
    /// Epoch of the current placement decision (0: none yet; the acceptor holds every shard).
    #[prost(uint64, tag = "17")]
    pub placement_epoch: u64,
    /// Node whose decision the current placement is (the leader that made it).
    #[prost(bytes = "vec", tag = "18")]
    pub placement_by: Vec<u8>,
    /// The current placement: the holder of each shard (PeerId bytes; empty where the decision
    /// has not placed that shard yet), `k + m` items once a decision began, else none.
    #[prost(bytes = "vec", repeated, tag = "19")]
    pub placement: Vec<Vec<u8>>,
    /// Number of current [`HolderRecord`]s of this blob (placed copies, surplus ones included).
    #[prost(uint32, tag = "20")]
    pub holder_records: u32,
    /// Log time the blob first became durable (placement satisfied: every placed shard
    /// confirmed; an inline blob is durable when it is accepted); 0 until then.
    #[prost(uint64, tag = "21")]
    pub durable_log_time_ms: u64,
    /// Log time of its first valid `ManifestVerified`; 0 until then.
    #[prost(uint64, tag = "22")]
    pub verified_log_time_ms: u64,
    /// The node whose signature made it verified (PeerId bytes).
    #[prost(bytes = "vec", tag = "23")]
    pub verified_by: Vec<u8>,
    /// Valid `ManifestVerified` events folded for it.
    #[prost(uint32, tag = "24")]
    pub verifications: u32,
}

/// The acknowledgement tiers, lowest first.
pub const TIERS: [&str; 3] = ["accepted", "durable", "verified"];

/// Whether tier `tier` is at or above `wanted` (in [`TIERS`] order; an unknown name ranks
/// above every tier).
pub fn tier_reached(tier: &str, wanted: &str) -> bool {
    let rank = |t: &str| TIERS.iter().position(|x| *x == t).unwrap_or(TIERS.len());
    rank(tier) >= rank(wanted)
}

/// Where an event sits in the log: `(index, position)`. Field tags are forever.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct EventRef {
    /// Log index of the entry.
    #[prost(uint64, tag = "1")]
    pub index: u64,
    /// Position of the event in its entry (0 unless the entry is a batch).
    #[prost(uint32, tag = "2")]
    pub position: u32,
}

impl BlobRecord {
    /// Whether the blob was carried inline (it then has no shards).
    pub fn is_inline(&self) -> bool {
        self.inline_data.is_some()
    }

    /// `k + m`: the number of shards (0 for an inline blob).
    pub fn shard_count(&self) -> u64 {
        u64::from(self.data_shards) + u64::from(self.parity_shards)
    }

    /// The manifest's hash of shard `shard` (empty when out of range).
    pub fn shard_hash(&self, shard: u32) -> &[u8] {
        self.shard_hashes
            .get(shard as usize)
            .map_or(&[][..], Vec::as_slice)
    }

    /// The acknowledgement tier reached: `"accepted"`, `"durable"` or `"verified"` (durable
    /// and signed by a node other than the writer).
    pub fn tier(&self) -> &'static str {
        match (self.durable_log_time_ms > 0, self.verified_log_time_ms > 0) {
            (true, true) => "verified",
            (true, false) => "durable",
            _ => "accepted",
        }
    }

    /// Whether the blob reached `tier` (`accepted` < `durable` < `verified`).
    pub fn reached(&self, tier: &str) -> bool {
        tier_reached(self.tier(), tier)
    }

    /// The manifest a verifier signs, as the `BlobAccepted` that carried it (without the inline
    /// bytes, which the manifest does not cover beyond their hash and size).
    pub fn manifest(&self, hash: &[u8]) -> BlobAccepted {
        BlobAccepted {
            blob_hash: hash.to_vec().into(),
            size: self.size,
            erasure: (!self.is_inline()).then_some(hearth_proto::v1::ErasureParams {
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                stripe_size: self.stripe_size,
            }),
            shard_hashes: self.shard_hashes.iter().map(|h| h.clone().into()).collect(),
            stripe_hashes: self
                .stripe_hashes
                .iter()
                .map(|h| h.clone().into())
                .collect(),
            ..BlobAccepted::default()
        }
    }
}

/// One holder's assignment of one shard. Stored under [`BlobIndexProjection::holder_key`].
/// Field tags are forever.
#[derive(Clone, PartialEq, Message)]
pub struct HolderRecord {
    /// Placement epoch of the latest assignment.
    #[prost(uint64, tag = "1")]
    pub placement_epoch: u64,
    /// Shard size in bytes, as placed.
    #[prost(uint64, tag = "2")]
    pub shard_size: u64,
    /// Log time (Unix ms) of the latest assignment.
    #[prost(uint64, tag = "3")]
    pub placed_log_time_ms: u64,
    /// Whether the holder confirmed it stored the shard (since the latest assignment).
    #[prost(bool, tag = "4")]
    pub confirmed: bool,
    /// Log time (Unix ms) of the confirmation; 0 while unconfirmed.
    #[prost(uint64, tag = "5")]
    pub confirmed_log_time_ms: u64,
    /// Log index of the latest assignment.
    #[prost(uint64, tag = "6")]
    pub placed_index: u64,
    /// Position of the latest assignment in its entry.
    #[prost(uint32, tag = "7")]
    pub placed_position: u32,
}

impl HolderRecord {
    /// The record of a shard its proposer made and fsynced before proposing (an acceptance's
    /// shards, added parity): held, confirmed, at this entry.
    fn made_here(ctx: &ApplyCtx, epoch: u64, shard_size: u64) -> Self {
        HolderRecord {
            placement_epoch: epoch,
            shard_size,
            placed_log_time_ms: ctx.log_time_ms,
            confirmed: true,
            confirmed_log_time_ms: ctx.log_time_ms,
            placed_index: ctx.index,
            placed_position: ctx.position,
        }
    }

    /// Whether this assignment belongs to `blob` as it now stands: placed at or after its
    /// acceptance. An assignment made for an earlier record of the same hash (accepted,
    /// deleted, accepted again) is stale: readers skip it, and placing or confirming treats it
    /// as absent.
    pub fn is_current(&self, blob: &BlobRecord) -> bool {
        (self.placed_index, self.placed_position) >= (blob.accepted_index, blob.accepted_position)
    }
}

/// The blob index: blob manifests and shard holders, folded from `BlobAccepted`, `ShardPlaced`,
/// `ReplicaConfirmed`, `ShardReleased`, `ManifestVerified`, `BlobDeleted` and `ParityAdded`
/// (every other event is ignored).
///
/// Keys and values (version 2):
///
/// | key | value |
/// |---|---|
/// | [`blob_key`](Self::blob_key): `b` ‖ blob hash (32 bytes) | [`BlobRecord`] (protobuf) |
/// | [`holder_key`](Self::holder_key): `h` ‖ blob hash (32 bytes) ‖ shard index u32 BE ‖ holder | [`HolderRecord`] (protobuf) |
/// | [`redact_key`](Self::redact_key): `r` ‖ deletion index u64 BE ‖ blob hash | empty |
///
/// Rules: a blob hash is accepted once (the first in log order wins; an inline blob must match
/// its size and hash, a sharded one must carry valid erasure parameters, `k + m` shard hashes
/// and one hash per stripe); a shard is placed only for a known sharded blob, with the
/// manifest's shard hash, and a newer placement epoch for the same `(blob, shard, holder)`
/// resets its confirmation; a confirmation needs the placement, the manifest's hash and the
/// placed size, and comes once. Anything else is [`Applied::Rejected`] with the reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlobIndexProjection;

impl BlobIndexProjection {
    /// Versioned name and column family.
    pub const NAME: &'static str = "blobs-3";

    /// Key of a blob's [`BlobRecord`]: `b` ‖ hash.
    pub fn blob_key(hash: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + hash.len());
        key.push(BLOB_TAG);
        key.extend_from_slice(hash);
        key
    }

    /// Prefix of every [`HolderRecord`] key of a blob: `h` ‖ hash.
    pub fn holders_prefix(hash: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + hash.len() + 4);
        key.push(HOLDER_TAG);
        key.extend_from_slice(hash);
        key
    }

    /// Key of a [`HolderRecord`]: `h` ‖ hash ‖ shard u32 BE ‖ holder.
    pub fn holder_key(hash: &[u8], shard: u32, holder: &[u8]) -> Vec<u8> {
        let mut key = Self::holders_prefix(hash);
        key.reserve(4 + holder.len());
        key.extend_from_slice(&shard.to_be_bytes());
        key.extend_from_slice(holder);
        key
    }

    /// `(shard index, holder)` of a [`holder_key`](Self::holder_key) made with a 32-byte hash;
    /// `None` for any other key (wrong tag, too short, empty holder).
    pub fn parse_holder_key(key: &[u8]) -> Option<(u32, Vec<u8>)> {
        let (&tag, rest) = key.split_first()?;
        if tag != HOLDER_TAG {
            return None;
        }
        let rest = rest.get(HASH_LEN..)?;
        let shard = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let holder = rest.get(4..)?;
        (!holder.is_empty()).then(|| (shard, holder.to_vec()))
    }

    /// Key of a redaction work-list item: `r` ‖ deletion index u64 BE ‖ blob hash.
    pub fn redact_key(deleted_index: u64, hash: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + 8 + hash.len());
        key.push(REDACT_TAG);
        key.extend_from_slice(&deleted_index.to_be_bytes());
        key.extend_from_slice(hash);
        key
    }

    /// Key of a replication work-list item: `w` ‖ blob hash, present while a sharded blob is
    /// not settled (placement not satisfied, or surplus copies not yet released).
    pub fn work_key(hash: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + hash.len());
        key.push(WORK_TAG);
        key.extend_from_slice(hash);
        key
    }

    /// Prefix of every [`work_key`](Self::work_key).
    pub const WORK_PREFIX: &'static [u8] = &[WORK_TAG];

    /// Key of a verification work-list item: `v` ‖ blob hash, present while a blob is durable
    /// and not yet verified.
    pub fn verify_key(hash: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + hash.len());
        key.push(VERIFY_TAG);
        key.extend_from_slice(hash);
        key
    }

    /// Prefix of every [`verify_key`](Self::verify_key).
    pub const VERIFY_PREFIX: &'static [u8] = &[VERIFY_TAG];

    /// Prefix of every [`blob_key`](Self::blob_key).
    pub const BLOB_PREFIX: &'static [u8] = &[BLOB_TAG];

    /// Prefix of every [`redact_key`](Self::redact_key), in deletion order.
    pub const REDACT_PREFIX: &'static [u8] = &[REDACT_TAG];

    /// The deletion index and blob hash of a [`redact_key`](Self::redact_key).
    pub fn parse_redact_key(key: &[u8]) -> Option<(u64, [u8; HASH_LEN])> {
        let rest = key.strip_prefix(Self::REDACT_PREFIX)?;
        let (index, hash) = rest.split_at_checked(8)?;
        Some((
            u64::from_be_bytes(index.try_into().ok()?),
            hash.try_into().ok()?,
        ))
    }

    /// Decodes a stored [`BlobRecord`]; `None` when the bytes are not one.
    pub fn decode_blob(bytes: &[u8]) -> Option<BlobRecord> {
        BlobRecord::decode(bytes).ok()
    }

    /// Decodes a stored [`HolderRecord`]; `None` when the bytes are not one.
    pub fn decode_holder(bytes: &[u8]) -> Option<HolderRecord> {
        HolderRecord::decode(bytes).ok()
    }
}

impl Projection for BlobIndexProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn apply(&self, ctx: &ApplyCtx, event: &Envelope, tx: &mut dyn StateTx) -> Applied {
        let result = match &event.event {
            Some(Event::BlobAccepted(e)) => accept(ctx, e, tx),
            Some(Event::ShardPlaced(e)) => place(ctx, &event.origin, e, tx),
            Some(Event::ReplicaConfirmed(e)) => confirm(ctx, e, tx),
            Some(Event::ShardReleased(e)) => release(ctx, e, tx),
            Some(Event::ManifestVerified(e)) => verify(ctx, e, tx),
            Some(Event::BlobDeleted(e)) => delete(ctx, &e.blob_hash, tx),
            Some(Event::ParityAdded(e)) => add_parity(ctx, &event.origin, e, tx),
            _ => Ok(()),
        };
        match result {
            Ok(()) => Applied::Ok,
            Err(reason) => Applied::Rejected(reason),
        }
    }
}

/// A rejection reason.
type Verdict = Result<(), String>;

fn accept(ctx: &ApplyCtx, e: &BlobAccepted, tx: &mut dyn StateTx) -> Verdict {
    let hash = e.blob_hash.as_ref();
    check_hash_len("blob hash", hash)?;
    let key = BlobIndexProjection::blob_key(hash);
    let here = EventRef {
        index: ctx.index,
        position: ctx.position,
    };
    let existing = read_blob(tx, hash)?;
    if let Some(mut existing) = existing.clone().filter(|b| !b.deleted) {
        if let Some(data) = &e.inline_data {
            // The same bytes inline once more (two members accepted them at once): one blob,
            // whose bytes this entry carries too, so a delete must redact it as well.
            check_inline(ctx, hash, e.size, data)?;
            existing.inline_events.push(here);
            tx.put(&key, &existing.encode_to_vec());
            return Ok(());
        }
        return Err(format!(
            "blob {} already accepted at index {}",
            hex(hash),
            existing.accepted_index
        ));
    }
    if let Some(old) = existing.as_ref().filter(|b| !b.inline_events.is_empty()) {
        // Accepted again after a delete: the bytes are wanted once more, and the entries that
        // carry them move to the new record (redacted when it is deleted in turn).
        tx.delete(&BlobIndexProjection::redact_key(old.deleted_index, hash));
    }
    let mut record = BlobRecord {
        inline_events: existing.map(|b| b.inline_events).unwrap_or_default(),
        size: e.size,
        accepted_by: e.accepted_by.to_vec(),
        content_type: e.content_type.clone(),
        accepted_index: ctx.index,
        accepted_position: ctx.position,
        accepted_log_time_ms: ctx.log_time_ms,
        ..BlobRecord::default()
    };
    match &e.inline_data {
        Some(data) => {
            check_inline(ctx, hash, e.size, data)?;
            if e.erasure.is_some() || !e.shard_hashes.is_empty() || !e.stripe_hashes.is_empty() {
                return Err(
                    "inline blob carries erasure parameters, shard hashes or stripe hashes"
                        .to_owned(),
                );
            }
            record.inline_data = Some(data.to_vec());
            record.inline_events.push(here);
            // In the committed entry, so on a majority of the members' logs already; and every
            // member checks the bytes against the hash as it applies this entry, so there is
            // no separate verification (an inline blob stays at `durable`).
            record.durable_log_time_ms = ctx.log_time_ms.max(1);
        }
        None => {
            let erasure = e
                .erasure
                .ok_or_else(|| "sharded blob without erasure parameters".to_owned())?;
            let (k, m) = (erasure.data_shards, erasure.parity_shards);
            if k == 0 {
                return Err("erasure parameters with 0 data shards".to_owned());
            }
            let shards = u64::from(k) + u64::from(m);
            if shards > MAX_SHARDS {
                return Err(format!(
                    "{k} data + {m} parity shards is more than {MAX_SHARDS}"
                ));
            }
            if erasure.stripe_size == 0 {
                return Err("erasure parameters with stripe size 0".to_owned());
            }
            check_hashes("shard", &e.shard_hashes, shards)?;
            let stripes = e.size.div_ceil(erasure.stripe_size);
            check_hashes("stripe", &e.stripe_hashes, stripes)?;
            record.data_shards = k;
            record.parity_shards = m;
            record.stripe_size = erasure.stripe_size;
            record.shard_hashes = e.shard_hashes.iter().map(|h| h.to_vec()).collect();
            record.stripe_hashes = e.stripe_hashes.iter().map(|h| h.to_vec()).collect();
            if e.accepted_by.is_empty() {
                return Err("sharded blob without an acceptor".to_owned());
            }
            // The acceptor fsynced every shard before proposing: it holds them, confirmed.
            let shard_size = stripe_chunk_total(e.size, k, erasure.stripe_size);
            for shard in 0..k + m {
                let held = HolderRecord::made_here(ctx, ctx.index, shard_size);
                tx.put(
                    &BlobIndexProjection::holder_key(hash, shard, &e.accepted_by),
                    &held.encode_to_vec(),
                );
            }
            record.holder_records = k + m;
            tx.put(&BlobIndexProjection::work_key(hash), &[]);
        }
    }
    tx.put(&key, &record.encode_to_vec());
    Ok(())
}

/// Size of every shard of a blob of `size` bytes cut into stripes of `stripe_size` bytes, each
/// split into `k` equal chunks (the last zero-padded): the sum of the stripes' chunk lengths.
/// The same arithmetic as the service's layout, kept here so apply needs nothing else.
fn stripe_chunk_total(size: u64, k: u32, stripe_size: u64) -> u64 {
    if stripe_size == 0 || k == 0 {
        return 0;
    }
    let k = u64::from(k);
    let full = size / stripe_size;
    let rest = size % stripe_size;
    full * stripe_size.div_ceil(k) + rest.div_ceil(k)
}

fn place(ctx: &ApplyCtx, origin: &[u8], e: &ShardPlaced, tx: &mut dyn StateTx) -> Verdict {
    let hash = e.blob_hash.as_ref();
    let mut blob = known_sharded_blob(tx, hash)?;
    let shard = e.shard_index;
    let n = blob.shard_count();
    if u64::from(shard) >= n {
        return Err(format!(
            "shard index {shard} out of range: blob {} has {n} shards",
            hex(hash),
        ));
    }
    check_shard_hash(&blob, hash, shard, &e.shard_hash)?;
    if e.holder.is_empty() {
        return Err("empty holder".to_owned());
    }
    let size = stripe_chunk_total(blob.size, blob.data_shards, blob.stripe_size);
    if e.shard_size != size {
        return Err(format!(
            "shard {shard} of blob {} placed with {} bytes, its shards have {size}",
            hex(hash),
            e.shard_size
        ));
    }
    let epoch = e.placement_epoch;
    if epoch <= blob.accepted_index {
        return Err(format!(
            "placement epoch {epoch} of blob {} is not after its acceptance at index {}",
            hex(hash),
            blob.accepted_index
        ));
    }
    if epoch < blob.placement_epoch {
        return Err(format!(
            "placement epoch {epoch} of blob {} is stale: epoch {} is current",
            hex(hash),
            blob.placement_epoch
        ));
    }
    if epoch == blob.placement_epoch {
        if blob.placement_by != origin {
            return Err(format!(
                "placement epoch {epoch} of blob {} was decided by {}, not {}",
                hex(hash),
                hex(&blob.placement_by),
                hex(origin)
            ));
        }
        let current = blob.placement.get(shard as usize).map(Vec::as_slice);
        if current.is_some_and(|h| !h.is_empty()) {
            return Err(format!(
                "shard {shard} of blob {} is already placed at epoch {epoch}",
                hex(hash)
            ));
        }
    } else {
        // A new decision replaces the placement.
        blob.placement_epoch = epoch;
        blob.placement_by = origin.to_vec();
        blob.placement = vec![Vec::new(); n as usize];
    }
    if let Some(slot) = blob.placement.get_mut(shard as usize) {
        *slot = e.holder.to_vec();
    }
    let key = BlobIndexProjection::holder_key(hash, shard, &e.holder);
    let existing = read_holder(tx, &key)?.filter(|h| h.is_current(&blob));
    let record = match existing {
        // The holder already has it: it stays confirmed under the new epoch.
        Some(mut held) if held.confirmed => {
            held.placement_epoch = epoch;
            held
        }
        existing => {
            if existing.is_none() {
                blob.holder_records += 1;
            }
            HolderRecord {
                placement_epoch: epoch,
                shard_size: e.shard_size,
                placed_log_time_ms: ctx.log_time_ms,
                confirmed: false,
                confirmed_log_time_ms: 0,
                placed_index: ctx.index,
                placed_position: ctx.position,
            }
        }
    };
    tx.put(&key, &record.encode_to_vec());
    settle(ctx, hash, &mut blob, tx)?;
    Ok(())
}

/// More parity shards for a sharded blob: the added shards' hashes join the manifest, their
/// computer holds them (confirmed), the blob is back on the work list (its placement no longer
/// covers every shard), and its verification starts over (the manifest changed).
fn add_parity(ctx: &ApplyCtx, origin: &[u8], e: &ParityAdded, tx: &mut dyn StateTx) -> Verdict {
    let hash = e.blob_hash.as_ref();
    let mut blob = known_sharded_blob(tx, hash)?;
    if e.accepted_index != blob.accepted_index {
        return Err(format!(
            "parity for blob {} as accepted at index {}, it was accepted at {}",
            hex(hash),
            e.accepted_index,
            blob.accepted_index
        ));
    }
    let (k, m, wider) = (blob.data_shards, blob.parity_shards, e.parity_shards);
    if wider <= m {
        return Err(format!(
            "blob {} has {m} parity shards already, not fewer than {wider}",
            hex(hash)
        ));
    }
    if u64::from(k) + u64::from(wider) > MAX_SHARDS {
        return Err(format!(
            "{k} data + {wider} parity shards is more than {MAX_SHARDS}"
        ));
    }
    check_hashes("added shard", &e.added_shard_hashes, u64::from(wider - m))?;
    if e.added_by.is_empty() || e.added_by.as_ref() != origin {
        return Err("added shards must be held by the node that proposes them".to_owned());
    }
    let shard_size = stripe_chunk_total(blob.size, k, blob.stripe_size);
    for (shard, h) in (k + m..).zip(&e.added_shard_hashes) {
        blob.shard_hashes.push(h.to_vec());
        let held = HolderRecord::made_here(ctx, blob.placement_epoch, shard_size);
        tx.put(
            &BlobIndexProjection::holder_key(hash, shard, &e.added_by),
            &held.encode_to_vec(),
        );
        blob.holder_records += 1;
    }
    blob.parity_shards = wider;
    if blob.verified_log_time_ms > 0 {
        blob.verified_log_time_ms = 0;
        blob.verified_by.clear();
    }
    if blob.durable_log_time_ms > 0 {
        tx.put(&BlobIndexProjection::verify_key(hash), &[]);
    }
    settle(ctx, hash, &mut blob, tx)
}

/// A holder dropped a surplus copy: allowed only once the current placement is satisfied and
/// when it does not assign this shard to this holder.
fn release(ctx: &ApplyCtx, e: &ShardReleased, tx: &mut dyn StateTx) -> Verdict {
    let hash = e.blob_hash.as_ref();
    let mut blob = known_sharded_blob(tx, hash)?;
    let shard = e.shard_index;
    let key = BlobIndexProjection::holder_key(hash, shard, &e.holder);
    if read_holder(tx, &key)?
        .filter(|h| h.is_current(&blob))
        .is_none()
    {
        return Err(format!(
            "shard {shard} of blob {} is not held by {}",
            hex(hash),
            hex(&e.holder)
        ));
    }
    if blob.placement.get(shard as usize).map(Vec::as_slice) == Some(e.holder.as_ref()) {
        return Err(format!(
            "shard {shard} of blob {} is placed on {}: not surplus",
            hex(hash),
            hex(&e.holder)
        ));
    }
    if !satisfied(hash, &blob, tx)? {
        return Err(format!(
            "blob {}: its placement is not satisfied yet, copies cannot be released",
            hex(hash)
        ));
    }
    tx.delete(&key);
    blob.holder_records = blob.holder_records.saturating_sub(1);
    settle(ctx, hash, &mut blob, tx)
}

/// A valid signature by a node other than the writer over the blob's manifest.
fn verify(ctx: &ApplyCtx, e: &ManifestVerified, tx: &mut dyn StateTx) -> Verdict {
    let hash = e.blob_hash.as_ref();
    check_hash_len("blob hash", hash)?;
    let mut blob = read_blob(tx, hash)?.ok_or_else(|| format!("unknown blob {}", hex(hash)))?;
    if blob.deleted {
        return Err(format!(
            "blob {} was deleted at index {}",
            hex(hash),
            blob.deleted_index
        ));
    }
    if e.verifier.as_ref() == blob.accepted_by.as_slice() {
        return Err(format!(
            "blob {}: the writer cannot verify its own blob",
            hex(hash)
        ));
    }
    crate::manifest::check_signature(e, &blob.manifest(hash))
        .map_err(|err| format!("ManifestVerified of blob {}: {err}", hex(hash)))?;
    blob.verifications += 1;
    if blob.verified_log_time_ms == 0 {
        blob.verified_log_time_ms = ctx.log_time_ms.max(1);
        blob.verified_by = e.verifier.to_vec();
        tx.delete(&BlobIndexProjection::verify_key(hash));
    }
    tx.put(&BlobIndexProjection::blob_key(hash), &blob.encode_to_vec());
    Ok(())
}

/// Whether every shard of the current placement is placed and confirmed.
fn satisfied(hash: &[u8], blob: &BlobRecord, tx: &dyn StateTx) -> Result<bool, String> {
    if blob.placement.is_empty() || blob.placement.len() as u64 != blob.shard_count() {
        return Ok(false);
    }
    for (shard, holder) in (0u32..).zip(&blob.placement) {
        if holder.is_empty() {
            return Ok(false);
        }
        let key = BlobIndexProjection::holder_key(hash, shard, holder);
        match read_holder(tx, &key)? {
            Some(h) if h.confirmed && h.is_current(blob) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// After a placement, confirmation or release: records the durable tier the first time the
/// placement is satisfied, keeps the work-list item while the blob is unsettled, and stores
/// the record.
fn settle(ctx: &ApplyCtx, hash: &[u8], blob: &mut BlobRecord, tx: &mut dyn StateTx) -> Verdict {
    let ok = satisfied(hash, blob, tx)?;
    if ok && blob.durable_log_time_ms == 0 {
        blob.durable_log_time_ms = ctx.log_time_ms.max(1);
        if blob.verified_log_time_ms == 0 {
            tx.put(&BlobIndexProjection::verify_key(hash), &[]);
        }
    }
    let work = BlobIndexProjection::work_key(hash);
    if ok && u64::from(blob.holder_records) == blob.shard_count() {
        tx.delete(&work);
    } else {
        tx.put(&work, &[]);
    }
    tx.put(&BlobIndexProjection::blob_key(hash), &blob.encode_to_vec());
    Ok(())
}

fn confirm(ctx: &ApplyCtx, e: &ReplicaConfirmed, tx: &mut dyn StateTx) -> Verdict {
    let hash = e.blob_hash.as_ref();
    let blob = known_sharded_blob(tx, hash)?;
    let shard = e.shard_index;
    let key = BlobIndexProjection::holder_key(hash, shard, &e.holder);
    let mut record = read_holder(tx, &key)?
        .filter(|h| h.is_current(&blob))
        .ok_or_else(|| {
            format!(
                "shard {shard} of blob {} not placed on holder {}",
                hex(hash),
                hex(&e.holder)
            )
        })?;
    check_shard_hash(&blob, hash, shard, &e.shard_hash)?;
    if e.shard_size != record.shard_size {
        return Err(format!(
            "shard {shard} of blob {} confirmed with {} bytes, placed with {}",
            hex(hash),
            e.shard_size,
            record.shard_size
        ));
    }
    if record.confirmed {
        return Err(format!(
            "shard {shard} of blob {} already confirmed by holder {} (epoch {})",
            hex(hash),
            hex(&e.holder),
            record.placement_epoch
        ));
    }
    record.confirmed = true;
    record.confirmed_log_time_ms = ctx.log_time_ms;
    tx.put(&key, &record.encode_to_vec());
    let mut blob = blob;
    settle(ctx, hash, &mut blob, tx)
}

fn check_hash_len(what: &str, hash: &[u8]) -> Verdict {
    if hash.len() == HASH_LEN {
        Ok(())
    } else {
        Err(format!(
            "{what} of {} bytes, expected {HASH_LEN}",
            hash.len()
        ))
    }
}

/// Checks that `hashes` holds `expected` hashes of 32 bytes.
fn check_hashes(what: &str, hashes: &[bytes::Bytes], expected: u64) -> Verdict {
    if u64::try_from(hashes.len()).ok() != Some(expected) {
        return Err(format!(
            "{} {what} hashes, expected {expected}",
            hashes.len()
        ));
    }
    for (i, h) in hashes.iter().enumerate() {
        if h.len() != HASH_LEN {
            return Err(format!(
                "{what} hash {i} of {} bytes, expected {HASH_LEN}",
                h.len()
            ));
        }
    }
    Ok(())
}

/// Checks inline `data` against the blob's `size` and `hash`. In a redacted entry the data of
/// a since-deleted blob reads as zeros: its hash is not checked then (the entry was checked
/// when it was first applied, and the bytes are dropped again by the delete that follows it in
/// the log), so a rebuild from a redacted log folds it exactly as the live apply did.
fn check_inline(ctx: &ApplyCtx, hash: &[u8], size: u64, data: &[u8]) -> Verdict {
    if u64::try_from(data.len()).ok() != Some(size) {
        return Err(format!(
            "inline data of {} bytes, but size is {size}",
            data.len()
        ));
    }
    if ctx.redacted && data.iter().all(|b| *b == 0) {
        return Ok(());
    }
    let actual = blake3::hash(data);
    if actual.as_bytes().as_slice() != hash {
        return Err(format!(
            "inline data hashes to {}, not to the blob hash {}",
            hex(actual.as_bytes()),
            hex(hash)
        ));
    }
    Ok(())
}

/// A tombstone: the blob stays in the index marked deleted (reads answer "gone", members remove
/// their shards), and its inline bytes are dropped.
fn delete(ctx: &ApplyCtx, hash: &[u8], tx: &mut dyn StateTx) -> Verdict {
    check_hash_len("blob hash", hash)?;
    let mut blob = read_blob(tx, hash)?.ok_or_else(|| format!("unknown blob {}", hex(hash)))?;
    if blob.deleted {
        return Err(format!(
            "blob {} already deleted at index {}",
            hex(hash),
            blob.deleted_index
        ));
    }
    blob.deleted = true;
    blob.deleted_index = ctx.index;
    blob.deleted_log_time_ms = ctx.log_time_ms;
    blob.inline_data = None;
    tx.put(&BlobIndexProjection::blob_key(hash), &blob.encode_to_vec());
    tx.delete(&BlobIndexProjection::work_key(hash));
    tx.delete(&BlobIndexProjection::verify_key(hash));
    if !blob.inline_events.is_empty() {
        tx.put(&BlobIndexProjection::redact_key(ctx.index, hash), &[]);
    }
    Ok(())
}

/// The record of blob `hash`, which must be in the index and sharded.
fn known_sharded_blob(tx: &dyn StateTx, hash: &[u8]) -> Result<BlobRecord, String> {
    check_hash_len("blob hash", hash)?;
    let blob = read_blob(tx, hash)?.ok_or_else(|| format!("unknown blob {}", hex(hash)))?;
    if blob.deleted {
        return Err(format!(
            "blob {} was deleted at index {}",
            hex(hash),
            blob.deleted_index
        ));
    }
    if blob.is_inline() {
        return Err(format!("inline blob {} has no shards", hex(hash)));
    }
    Ok(blob)
}

fn check_shard_hash(blob: &BlobRecord, hash: &[u8], shard: u32, got: &[u8]) -> Verdict {
    let expected = usize::try_from(shard)
        .ok()
        .and_then(|s| blob.shard_hashes.get(s));
    if expected.map(Vec::as_slice) == Some(got) {
        Ok(())
    } else {
        Err(format!(
            "shard hash {} does not match the manifest's hash of shard {shard} of blob {}",
            hex(got),
            hex(hash)
        ))
    }
}

fn read_blob(tx: &dyn StateTx, hash: &[u8]) -> Result<Option<BlobRecord>, String> {
    tx.get(&BlobIndexProjection::blob_key(hash))
        .map(|bytes| {
            BlobRecord::decode(bytes.as_slice())
                .map_err(|e| format!("stored record of blob {} is malformed: {e}", hex(hash)))
        })
        .transpose()
}

fn read_holder(tx: &dyn StateTx, key: &[u8]) -> Result<Option<HolderRecord>, String> {
    tx.get(key)
        .map(|bytes| {
            HolderRecord::decode(bytes.as_slice())
                .map_err(|e| format!("stored holder record {} is malformed: {e}", hex(key)))
        })
        .transpose()
}

/// Lowercase hex, for reasons.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemState;
    use bytes::Bytes;
    use hearth_proto::v1::{ErasureParams, PeerSeen, ShardReleased};

    const HOLDER_A: &[u8] = b"holder-a";
    const HOLDER_B: &[u8] = b"holder-b";

    fn ctx(index: u64) -> ApplyCtx {
        ApplyCtx {
            index,
            position: 0,
            log_time_ms: 1_000 + index,
            redacted: false,
        }
    }

    fn envelope(event: Event) -> Envelope {
        Envelope {
            schema_version: 1,
            origin: Bytes::from_static(b"origin"),
            proposed_at_unix_ms: 0,
            request_id: None,
            event: Some(event),
        }
    }

    fn hash(data: &[u8]) -> Bytes {
        Bytes::copy_from_slice(blake3::hash(data).as_bytes())
    }

    /// The sharded blob of the tests: 10 bytes, k = 2, m = 1, stripes of 4 bytes (3 stripes).
    const DATA: &[u8] = b"0123456789";
    /// Its shards' size: chunks of 2, 2 and 1 bytes.
    const SHARD_SIZE: u64 = 5;
    const ACCEPTOR: &[u8] = b"acceptor";

    fn shard_hash(shard: u32) -> Bytes {
        hash(format!("shard {shard}").as_bytes())
    }

    fn sharded() -> BlobAccepted {
        BlobAccepted {
            blob_hash: hash(DATA),
            size: DATA.len() as u64,
            erasure: Some(ErasureParams {
                data_shards: 2,
                parity_shards: 1,
                stripe_size: 4,
            }),
            shard_hashes: (0..3).map(shard_hash).collect(),
            stripe_hashes: DATA.chunks(4).map(hash).collect(),
            inline_data: None,
            accepted_by: Bytes::from_static(b"acceptor"),
            content_type: "text/plain".to_owned(),
        }
    }

    fn inline(data: &'static [u8]) -> BlobAccepted {
        BlobAccepted {
            blob_hash: hash(data),
            size: data.len() as u64,
            erasure: None,
            shard_hashes: Vec::new(),
            stripe_hashes: Vec::new(),
            inline_data: Some(Bytes::from_static(data)),
            accepted_by: Bytes::from_static(b"acceptor"),
            content_type: String::new(),
        }
    }

    fn placed(shard: u32, holder: &'static [u8], epoch: u64) -> ShardPlaced {
        ShardPlaced {
            blob_hash: hash(DATA),
            shard_index: shard,
            holder: Bytes::from_static(holder),
            placement_epoch: epoch,
            shard_hash: shard_hash(shard),
            shard_size: SHARD_SIZE,
        }
    }

    fn confirmed(shard: u32, holder: &'static [u8]) -> ReplicaConfirmed {
        ReplicaConfirmed {
            blob_hash: hash(DATA),
            shard_index: shard,
            holder: Bytes::from_static(holder),
            shard_hash: shard_hash(shard),
            shard_size: SHARD_SIZE,
        }
    }

    fn apply(state: &mut MemState, index: u64, event: Event) -> Applied {
        state.apply(&BlobIndexProjection, &ctx(index), &envelope(event))
    }

    fn apply_from(
        state: &mut MemState,
        index: u64,
        origin: &'static [u8],
        event: Event,
    ) -> Applied {
        let mut env = envelope(event);
        env.origin = Bytes::from_static(origin);
        state.apply(&BlobIndexProjection, &ctx(index), &env)
    }

    fn released(shard: u32, holder: &'static [u8]) -> Event {
        Event::ShardReleased(ShardReleased {
            blob_hash: hash(DATA),
            shard_index: shard,
            holder: Bytes::from_static(holder),
        })
    }

    fn work_listed(state: &MemState) -> bool {
        state
            .entries()
            .contains_key(&BlobIndexProjection::work_key(&hash(DATA)))
    }

    /// Applies `event` to `state`, expects a rejection whose reason contains `needle`, and
    /// that the state did not change.
    fn assert_rejected(state: &mut MemState, event: Event, needle: &str) {
        let before = state.clone();
        let applied = apply(state, 99, event);
        assert!(
            matches!(&applied, Applied::Rejected(reason) if reason.contains(needle)),
            "expected a rejection containing {needle:?}, got {applied:?}"
        );
        assert_eq!(*state, before, "a rejected event must not change the state");
    }

    fn blob(state: &MemState, data: &[u8]) -> Option<BlobRecord> {
        state
            .entries()
            .get(&BlobIndexProjection::blob_key(&hash(data)))
            .and_then(|v| BlobIndexProjection::decode_blob(v))
    }

    fn holder(state: &MemState, shard: u32, holder: &[u8]) -> Option<HolderRecord> {
        state
            .entries()
            .get(&BlobIndexProjection::holder_key(&hash(DATA), shard, holder))
            .and_then(|v| BlobIndexProjection::decode_holder(v))
    }

    /// A state holding the sharded test blob, accepted at index 1.
    fn with_sharded() -> MemState {
        let mut state = MemState::new();
        assert_eq!(
            apply(&mut state, 1, Event::BlobAccepted(sharded())),
            Applied::Ok
        );
        state
    }

    #[test]
    fn deletes_are_tombstones_and_the_same_bytes_can_come_back() {
        let mut state = MemState::new();
        let inline = BlobAccepted {
            blob_hash: hash(DATA),
            size: DATA.len() as u64,
            inline_data: Some(DATA.to_vec().into()),
            ..BlobAccepted::default()
        };
        assert_eq!(
            apply(&mut state, 1, Event::BlobAccepted(inline.clone())),
            Applied::Ok
        );
        let del = Event::BlobDeleted(hearth_proto::v1::BlobDeleted {
            blob_hash: hash(DATA),
        });
        assert_eq!(apply(&mut state, 2, del.clone()), Applied::Ok);
        let rec = state
            .get(&BlobIndexProjection::blob_key(&hash(DATA)))
            .and_then(|b| BlobIndexProjection::decode_blob(&b))
            .expect("record");
        assert!(rec.deleted && rec.inline_data.is_none());
        assert_eq!(rec.deleted_index, 2);
        let Applied::Rejected(r) = apply(&mut state, 3, del) else {
            panic!("a second delete must be rejected");
        };
        assert!(r.contains("already deleted at index 2"), "{r}");
        let unknown = Event::BlobDeleted(hearth_proto::v1::BlobDeleted {
            blob_hash: vec![9; 32].into(),
        });
        let Applied::Rejected(r) = apply(&mut state, 4, unknown) else {
            panic!("deleting an unknown blob must be rejected");
        };
        assert!(r.contains("unknown blob"), "{r}");
        // The same bytes again: accepted anew.
        assert_eq!(
            apply(&mut state, 5, Event::BlobAccepted(inline)),
            Applied::Ok
        );
        let rec = state
            .get(&BlobIndexProjection::blob_key(&hash(DATA)))
            .and_then(|b| BlobIndexProjection::decode_blob(&b))
            .expect("record");
        assert!(!rec.deleted && rec.inline_data.is_some());
        assert_eq!(rec.accepted_index, 5);
    }

    #[test]
    fn accepts_a_sharded_blob() {
        let mut state = MemState::new();
        let c = ApplyCtx {
            index: 7,
            position: 2,
            log_time_ms: 1234,
            redacted: false,
        };
        let event = envelope(Event::BlobAccepted(sharded()));
        assert_eq!(state.apply(&BlobIndexProjection, &c, &event), Applied::Ok);
        let record = blob(&state, DATA).expect("blob record");
        let expected = BlobRecord {
            size: 10,
            data_shards: 2,
            parity_shards: 1,
            stripe_size: 4,
            shard_hashes: (0..3).map(|s| shard_hash(s).to_vec()).collect(),
            stripe_hashes: DATA.chunks(4).map(|c| hash(c).to_vec()).collect(),
            inline_data: None,
            accepted_by: b"acceptor".to_vec(),
            content_type: "text/plain".to_owned(),
            accepted_index: 7,
            accepted_position: 2,
            accepted_log_time_ms: 1234,
            holder_records: 3,
            ..BlobRecord::default()
        };
        assert_eq!(record, expected);
        assert!(!record.is_inline());
        assert_eq!(record.shard_count(), 3);
        assert_eq!(record.tier(), "accepted");
        // The acceptor holds every shard, confirmed; the blob is on the work list.
        assert_eq!(state.entries().len(), 1 + 3 + 1);
        for shard in 0..3 {
            let held = holder(&state, shard, ACCEPTOR).expect("acceptor holds it");
            assert!(held.confirmed && held.is_current(&record));
            assert_eq!(
                (held.placement_epoch, held.shard_size, held.placed_index),
                (7, SHARD_SIZE, 7)
            );
        }
        assert!(work_listed(&state));
    }

    #[test]
    fn accepts_inline_blobs_including_the_empty_one() {
        let mut state = MemState::new();
        assert_eq!(
            apply(&mut state, 1, Event::BlobAccepted(inline(b"hi"))),
            Applied::Ok
        );
        assert_eq!(
            apply(&mut state, 2, Event::BlobAccepted(inline(b""))),
            Applied::Ok
        );
        let record = blob(&state, b"hi").expect("inline record");
        assert_eq!(record.inline_data.as_deref(), Some(b"hi".as_slice()));
        assert_eq!(
            (record.data_shards, record.parity_shards, record.stripe_size),
            (0, 0, 0)
        );
        assert!(record.shard_hashes.is_empty() && record.stripe_hashes.is_empty());
        assert!(record.is_inline());
        let empty = blob(&state, b"").expect("empty inline record");
        assert_eq!(empty.inline_data, Some(Vec::new()));
        assert_eq!(empty.accepted_index, 2);
    }

    #[test]
    fn accepts_an_empty_sharded_blob_with_no_stripes() {
        let mut state = MemState::new();
        let mut e = sharded();
        e.blob_hash = hash(b"");
        e.size = 0;
        e.stripe_hashes.clear();
        assert_eq!(
            apply(&mut state, 1, Event::BlobAccepted(e.clone())),
            Applied::Ok
        );
        let mut state = MemState::new();
        e.stripe_hashes = vec![hash(b"")];
        assert_rejected(
            &mut state,
            Event::BlobAccepted(e),
            "1 stripe hashes, expected 0",
        );
    }

    #[test]
    fn rejects_a_second_accept_of_the_same_blob() {
        let mut state = with_sharded();
        assert_rejected(
            &mut state,
            Event::BlobAccepted(sharded()),
            "already accepted at index 1",
        );
        // Same bytes, inline this time: still the same blob, and that entry holds its bytes.
        let mut same = inline(DATA);
        same.accepted_by = Bytes::from_static(b"other node");
        assert_eq!(
            apply(&mut state, 2, Event::BlobAccepted(same.clone())),
            Applied::Ok
        );
        let record = blob(&state, DATA).expect("blob record");
        assert_eq!(record.accepted_index, 1);
        assert_eq!(record.accepted_by, b"acceptor");
        assert_eq!(
            record.inline_events,
            [EventRef {
                index: 2,
                position: 0
            }]
        );
        // ... but only bytes that check out.
        same.inline_data = Some(Bytes::from_static(b"not the data"));
        same.size = 12;
        assert_rejected(&mut state, Event::BlobAccepted(same), "hashes to");
    }

    /// An inline blob accepted, accepted again, deleted and accepted once more: every entry
    /// holding its bytes is listed, across records; in a redacted entry zeros stand in for
    /// them, and elsewhere zeros are still checked.
    #[test]
    fn tracks_every_entry_holding_inline_bytes() {
        let mut state = MemState::new();
        let at = |index| EventRef { index, position: 0 };
        assert_eq!(
            apply(&mut state, 1, Event::BlobAccepted(inline(b"hi"))),
            Applied::Ok
        );
        assert_eq!(
            apply(&mut state, 2, Event::BlobAccepted(inline(b"hi"))),
            Applied::Ok
        );
        let deleted = Event::BlobDeleted(hearth_proto::v1::BlobDeleted {
            blob_hash: Bytes::copy_from_slice(blake3::hash(b"hi").as_bytes()),
        });
        assert_eq!(apply(&mut state, 3, deleted.clone()), Applied::Ok);
        let record = blob(&state, b"hi").expect("record");
        assert!(record.deleted && record.inline_data.is_none());
        assert_eq!(record.inline_events, [at(1), at(2)]);
        let work = BlobIndexProjection::redact_key(3, blake3::hash(b"hi").as_bytes());
        assert_eq!(
            BlobIndexProjection::parse_redact_key(&work),
            Some((3, *blake3::hash(b"hi").as_bytes()))
        );
        assert!(state.entries().contains_key(&work));
        let mut zeros = inline(b"hi");
        zeros.inline_data = Some(Bytes::from_static(&[0, 0]));
        assert_rejected(&mut state, Event::BlobAccepted(zeros.clone()), "hashes to");
        let redacted = ApplyCtx {
            redacted: true,
            ..ctx(5)
        };
        let event = envelope(Event::BlobAccepted(zeros));
        assert_eq!(
            state.apply(&BlobIndexProjection, &redacted, &event),
            Applied::Ok
        );
        let record = blob(&state, b"hi").expect("record");
        assert!(!record.deleted);
        assert_eq!(record.inline_events, [at(1), at(2), at(5)]);
        assert!(!state.entries().contains_key(&work));
    }

    #[test]
    fn rejects_a_blob_hash_of_the_wrong_length() {
        let mut state = MemState::new();
        let mut e = sharded();
        e.blob_hash = e.blob_hash.slice(..31);
        assert_rejected(
            &mut state,
            Event::BlobAccepted(e),
            "blob hash of 31 bytes, expected 32",
        );
    }

    #[test]
    fn rejects_inline_blobs_that_do_not_check_out() {
        let mut state = MemState::new();
        let mut e = inline(b"hello");
        e.size = 4;
        assert_rejected(
            &mut state,
            Event::BlobAccepted(e),
            "inline data of 5 bytes, but size is 4",
        );
        let mut e = inline(b"hello");
        e.blob_hash = hash(b"world");
        assert_rejected(&mut state, Event::BlobAccepted(e), "not to the blob hash");
        let mut e = inline(b"hello");
        e.erasure = Some(ErasureParams::default());
        assert_rejected(&mut state, Event::BlobAccepted(e), "inline blob carries");
        let mut e = inline(b"hello");
        e.shard_hashes = vec![hash(b"x")];
        assert_rejected(&mut state, Event::BlobAccepted(e), "inline blob carries");
        let mut e = inline(b"hello");
        e.stripe_hashes = vec![hash(b"x")];
        assert_rejected(&mut state, Event::BlobAccepted(e), "inline blob carries");
    }

    /// An edit that spoils a valid `BlobAccepted`.
    type Edit = Box<dyn Fn(&mut BlobAccepted)>;

    #[test]
    fn rejects_sharded_blobs_with_bad_manifests() {
        let mut state = MemState::new();
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|e| e.erasure = None),
                "sharded blob without erasure parameters",
            ),
            (
                Box::new(|e| {
                    e.erasure = Some(ErasureParams {
                        data_shards: 0,
                        parity_shards: 3,
                        stripe_size: 4,
                    })
                }),
                "0 data shards",
            ),
            (
                Box::new(|e| {
                    e.erasure = Some(ErasureParams {
                        data_shards: 200,
                        parity_shards: 57,
                        stripe_size: 4,
                    })
                }),
                "200 data + 57 parity shards is more than 256",
            ),
            (
                Box::new(|e| {
                    e.erasure = Some(ErasureParams {
                        data_shards: u32::MAX,
                        parity_shards: u32::MAX,
                        stripe_size: 4,
                    })
                }),
                "is more than 256",
            ),
            (
                Box::new(|e| {
                    e.erasure = Some(ErasureParams {
                        data_shards: 2,
                        parity_shards: 1,
                        stripe_size: 0,
                    })
                }),
                "stripe size 0",
            ),
            (
                Box::new(|e| {
                    e.shard_hashes.pop();
                }),
                "2 shard hashes, expected 3",
            ),
            (
                Box::new(|e| e.shard_hashes[1] = e.shard_hashes[1].slice(..16)),
                "shard hash 1 of 16 bytes, expected 32",
            ),
            (
                Box::new(|e| e.stripe_hashes.push(hash(b"extra"))),
                "4 stripe hashes, expected 3",
            ),
            (
                Box::new(|e| e.stripe_hashes[2] = Bytes::new()),
                "stripe hash 2 of 0 bytes, expected 32",
            ),
        ];
        for (edit, needle) in cases {
            let mut e = sharded();
            edit(&mut e);
            assert_rejected(&mut state, Event::BlobAccepted(e), needle);
        }
        // k + m = 256 exactly is allowed.
        let mut e = sharded();
        e.erasure = Some(ErasureParams {
            data_shards: 200,
            parity_shards: 56,
            stripe_size: 4,
        });
        e.shard_hashes = (0..256).map(shard_hash).collect();
        assert_eq!(apply(&mut state, 1, Event::BlobAccepted(e)), Applied::Ok);
    }

    #[test]
    fn places_confirms_becomes_durable_and_releases_surplus_copies() {
        let mut state = with_sharded();
        assert_eq!(
            apply(&mut state, 2, Event::ShardPlaced(placed(0, HOLDER_A, 2))),
            Applied::Ok
        );
        assert_eq!(
            apply(&mut state, 3, Event::ShardPlaced(placed(2, HOLDER_B, 2))),
            Applied::Ok
        );
        assert_eq!(
            holder(&state, 0, HOLDER_A),
            Some(HolderRecord {
                placement_epoch: 2,
                shard_size: SHARD_SIZE,
                placed_log_time_ms: 1002,
                confirmed: false,
                confirmed_log_time_ms: 0,
                placed_index: 2,
                placed_position: 0,
            })
        );
        // Releasing before the placement is satisfied would drop the only copy.
        assert_rejected(&mut state, released(1, ACCEPTOR), "not satisfied");
        assert_eq!(
            apply(
                &mut state,
                4,
                Event::ReplicaConfirmed(confirmed(0, HOLDER_A))
            ),
            Applied::Ok
        );
        assert_eq!(
            holder(&state, 0, HOLDER_A).map(|h| (h.confirmed, h.confirmed_log_time_ms)),
            Some((true, 1004))
        );
        // The acceptor keeps shard 1 in this decision: confirmed already.
        assert_eq!(
            apply(&mut state, 5, Event::ShardPlaced(placed(1, ACCEPTOR, 2))),
            Applied::Ok
        );
        let record = blob(&state, DATA).expect("blob");
        assert_eq!(record.tier(), "accepted");
        assert_eq!(record.placement_epoch, 2);
        assert_eq!(record.placement_by, b"origin");
        assert_eq!(
            record.placement,
            vec![HOLDER_A.to_vec(), ACCEPTOR.to_vec(), HOLDER_B.to_vec()]
        );
        assert_eq!(
            apply(
                &mut state,
                6,
                Event::ReplicaConfirmed(confirmed(2, HOLDER_B))
            ),
            Applied::Ok
        );
        let record = blob(&state, DATA).expect("blob");
        assert_eq!(record.tier(), "durable");
        assert_eq!(record.durable_log_time_ms, 1006);
        assert_eq!(record.holder_records, 5);
        assert!(work_listed(&state), "surplus copies remain");
        // The prefix lists the blob's holders in shard order.
        let prefix = BlobIndexProjection::holders_prefix(&hash(DATA));
        let listed: Vec<_> = state
            .entries()
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .filter_map(|k| BlobIndexProjection::parse_holder_key(k))
            .collect();
        assert_eq!(
            listed,
            vec![
                (0, ACCEPTOR.to_vec()),
                (0, HOLDER_A.to_vec()),
                (1, ACCEPTOR.to_vec()),
                (2, ACCEPTOR.to_vec()),
                (2, HOLDER_B.to_vec())
            ]
        );
        assert_rejected(&mut state, released(1, ACCEPTOR), "not surplus");
        assert_rejected(&mut state, released(1, HOLDER_B), "not held by");
        assert_eq!(apply(&mut state, 7, released(0, ACCEPTOR)), Applied::Ok);
        assert!(work_listed(&state));
        assert_eq!(apply(&mut state, 8, released(2, ACCEPTOR)), Applied::Ok);
        assert!(!work_listed(&state), "settled");
        assert_eq!(holder(&state, 0, ACCEPTOR), None);
        let record = blob(&state, DATA).expect("blob");
        assert_eq!((record.holder_records, record.tier()), (3, "durable"));
    }

    fn parity(accepted_index: u64, m: u32, added: u32, by: &'static [u8]) -> Event {
        Event::ParityAdded(ParityAdded {
            blob_hash: hash(DATA),
            accepted_index,
            parity_shards: m,
            added_shard_hashes: (3..3 + added).map(shard_hash).collect(),
            added_by: Bytes::from_static(by),
        })
    }

    #[test]
    fn added_parity_joins_the_manifest_held_by_its_maker_and_needs_placing_again() {
        let mut state = with_sharded();
        for (i, (shard, holder)) in [(0, HOLDER_A), (1, ACCEPTOR), (2, HOLDER_B)]
            .into_iter()
            .enumerate()
        {
            let at = 2 + i as u64;
            assert_eq!(
                apply(&mut state, at, Event::ShardPlaced(placed(shard, holder, 2))),
                Applied::Ok
            );
        }
        for (at, shard, holder) in [(5, 0, HOLDER_A), (6, 2, HOLDER_B)] {
            assert_eq!(
                apply(
                    &mut state,
                    at,
                    Event::ReplicaConfirmed(confirmed(shard, holder))
                ),
                Applied::Ok
            );
        }
        assert_eq!(apply(&mut state, 7, released(0, ACCEPTOR)), Applied::Ok);
        assert_eq!(apply(&mut state, 8, released(2, ACCEPTOR)), Applied::Ok);
        assert!(!work_listed(&state), "settled");
        assert_eq!(blob(&state, DATA).expect("blob").tier(), "durable");

        // Malformed or stale additions change nothing (the default origin is "origin").
        assert_rejected(&mut state, parity(2, 2, 1, b"origin"), "accepted at 1");
        assert_rejected(&mut state, parity(1, 1, 0, b"origin"), "not fewer than 1");
        assert_rejected(
            &mut state,
            parity(1, 3, 1, b"origin"),
            "1 added shard hashes, expected 2",
        );
        assert_rejected(
            &mut state,
            parity(1, 2, 1, HOLDER_A),
            "held by the node that proposes",
        );
        assert_rejected(&mut state, parity(1, 255, 254, b"origin"), "more than 256");

        // m 1 → 2: shard 3 is HOLDER_A's, confirmed; the placement no longer covers every
        // shard, so the blob is back on the work list, and it is to be verified again.
        assert_eq!(
            apply_from(&mut state, 9, HOLDER_A, parity(1, 2, 1, HOLDER_A)),
            Applied::Ok
        );
        let record = blob(&state, DATA).expect("blob");
        assert_eq!((record.data_shards, record.parity_shards), (2, 2));
        assert_eq!(record.shard_hashes.len(), 4);
        assert_eq!(record.shard_hash(3), shard_hash(3).as_ref());
        assert_eq!(record.holder_records, 4);
        assert_eq!(record.tier(), "durable");
        assert_eq!(
            holder(&state, 3, HOLDER_A).map(|h| (h.confirmed, h.placed_index)),
            Some((true, 9))
        );
        assert!(work_listed(&state));
        assert!(state
            .entries()
            .contains_key(&BlobIndexProjection::verify_key(&hash(DATA))));
        // A new decision over four shards settles it again.
        for (at, shard, holder) in [(10, 0, HOLDER_A), (11, 1, ACCEPTOR), (12, 2, HOLDER_B)] {
            assert_eq!(
                apply(
                    &mut state,
                    at,
                    Event::ShardPlaced(placed(shard, holder, 10))
                ),
                Applied::Ok
            );
        }
        assert_eq!(
            apply(&mut state, 13, Event::ShardPlaced(placed(3, HOLDER_A, 10))),
            Applied::Ok
        );
        assert!(!work_listed(&state), "settled over four shards");
    }

    #[test]
    fn a_newer_decision_replaces_the_placement_and_keeps_confirmed_copies() {
        let mut state = with_sharded();
        assert_eq!(
            apply(&mut state, 2, Event::ShardPlaced(placed(1, HOLDER_A, 2))),
            Applied::Ok
        );
        assert_eq!(
            apply(
                &mut state,
                3,
                Event::ReplicaConfirmed(confirmed(1, HOLDER_A))
            ),
            Applied::Ok
        );
        assert_eq!(
            apply(&mut state, 4, Event::ShardPlaced(placed(1, HOLDER_A, 3))),
            Applied::Ok
        );
        let held = holder(&state, 1, HOLDER_A).expect("held");
        assert_eq!((held.placement_epoch, held.confirmed), (3, true));
        let record = blob(&state, DATA).expect("blob");
        assert_eq!(record.placement_epoch, 3);
        assert_eq!(
            record.placement,
            vec![Vec::new(), HOLDER_A.to_vec(), Vec::new()]
        );
        // An old leader's decision, or another node's at the same epoch, is rejected.
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, HOLDER_B, 2)),
            "stale",
        );
        let before = state.clone();
        assert!(matches!(
            apply_from(&mut state, 5, b"rival", Event::ShardPlaced(placed(0, HOLDER_B, 3))),
            Applied::Rejected(r) if r.contains("was decided by")
        ));
        assert_eq!(state, before);
    }

    #[test]
    fn rejects_stale_or_repeated_placements() {
        let mut state = with_sharded();
        assert_eq!(
            apply(&mut state, 2, Event::ShardPlaced(placed(0, HOLDER_A, 2))),
            Applied::Ok
        );
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, HOLDER_A, 2)),
            "already placed at epoch 2",
        );
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, HOLDER_B, 2)),
            "already placed at epoch 2",
        );
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, HOLDER_A, 1)),
            "not after its acceptance",
        );
        let mut e = placed(1, HOLDER_A, 2);
        e.shard_size = 2;
        assert_rejected(
            &mut state,
            Event::ShardPlaced(e),
            "placed with 2 bytes, its shards have 5",
        );
        // Another shard is a separate placement of the same decision.
        assert_eq!(
            apply(&mut state, 4, Event::ShardPlaced(placed(1, HOLDER_A, 2))),
            Applied::Ok
        );
    }

    #[test]
    fn manifest_signatures_make_a_blob_verified_and_forgeries_are_rejected() {
        use libp2p_identity::{ed25519, PublicKey};
        let mut state = with_sharded();
        let record = blob(&state, DATA).expect("blob");
        let key = ed25519::Keypair::generate();
        let mv = crate::manifest::sign(&key, &record.manifest(&hash(DATA)));
        let mut forged = mv.clone();
        forged.manifest_hash = hash(b"another manifest");
        assert_rejected(
            &mut state,
            Event::ManifestVerified(forged),
            "manifest hash does not match",
        );
        let mut forged = mv.clone();
        let mut sig = forged.signature.to_vec();
        sig[3] ^= 0x40;
        forged.signature = sig.into();
        assert_rejected(
            &mut state,
            Event::ManifestVerified(forged),
            "signature does not verify",
        );
        assert_eq!(
            apply(&mut state, 2, Event::ManifestVerified(mv.clone())),
            Applied::Ok
        );
        let record = blob(&state, DATA).expect("blob");
        assert_eq!(record.verified_log_time_ms, 1002);
        assert_eq!(
            record.verified_by,
            PublicKey::from(key.public()).to_peer_id().to_bytes()
        );
        // Not durable yet: still "accepted".
        assert_eq!(record.tier(), "accepted");
        // The writer cannot vouch for itself.
        let writer_key = ed25519::Keypair::generate();
        let writer = PublicKey::from(writer_key.public()).to_peer_id().to_bytes();
        let mut state = MemState::new();
        let mut acc = sharded();
        acc.accepted_by = writer.into();
        assert_eq!(
            apply(&mut state, 1, Event::BlobAccepted(acc.clone())),
            Applied::Ok
        );
        let own = crate::manifest::sign(&writer_key, &acc);
        assert_rejected(&mut state, Event::ManifestVerified(own), "its own blob");
    }

    #[test]
    fn rejects_placements_that_do_not_match_the_index() {
        let mut state = MemState::new();
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, HOLDER_A, 0)),
            "unknown blob",
        );
        let mut state = with_sharded();
        let mut e = placed(0, HOLDER_A, 0);
        e.blob_hash = e.blob_hash.slice(..8);
        assert_rejected(&mut state, Event::ShardPlaced(e), "blob hash of 8 bytes");
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(3, HOLDER_A, 0)),
            "shard index 3 out of range",
        );
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(u32::MAX, HOLDER_A, 0)),
            "out of range",
        );
        let mut e = placed(0, HOLDER_A, 0);
        e.shard_hash = shard_hash(1);
        assert_rejected(
            &mut state,
            Event::ShardPlaced(e),
            "does not match the manifest's hash of shard 0",
        );
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, b"", 0)),
            "empty holder",
        );
        assert_eq!(
            apply(&mut state, 2, Event::BlobAccepted(inline(b"small"))),
            Applied::Ok
        );
        let mut e = placed(0, HOLDER_A, 0);
        e.blob_hash = hash(b"small");
        assert_rejected(&mut state, Event::ShardPlaced(e), "inline blob");
        let mut e = confirmed(0, HOLDER_A);
        e.blob_hash = hash(b"small");
        assert_rejected(&mut state, Event::ReplicaConfirmed(e), "inline blob");
    }

    #[test]
    fn rejects_confirmations_that_do_not_match_the_placement() {
        let mut state = MemState::new();
        assert_rejected(
            &mut state,
            Event::ReplicaConfirmed(confirmed(0, HOLDER_A)),
            "unknown blob",
        );
        let mut state = with_sharded();
        assert_eq!(
            apply(&mut state, 2, Event::ShardPlaced(placed(0, HOLDER_A, 2))),
            Applied::Ok
        );
        assert_rejected(
            &mut state,
            Event::ReplicaConfirmed(confirmed(0, HOLDER_B)),
            "shard 0 of blob",
        );
        assert_rejected(
            &mut state,
            Event::ReplicaConfirmed(confirmed(1, HOLDER_A)),
            "not placed on holder",
        );
        let mut e = confirmed(0, HOLDER_A);
        e.shard_hash = hash(b"tampered");
        assert_rejected(
            &mut state,
            Event::ReplicaConfirmed(e),
            "does not match the manifest's hash of shard 0",
        );
        let mut e = confirmed(0, HOLDER_A);
        e.shard_size = 6;
        assert_rejected(
            &mut state,
            Event::ReplicaConfirmed(e),
            "confirmed with 6 bytes, placed with 5",
        );
        assert_eq!(
            apply(
                &mut state,
                3,
                Event::ReplicaConfirmed(confirmed(0, HOLDER_A))
            ),
            Applied::Ok
        );
        assert_rejected(
            &mut state,
            Event::ReplicaConfirmed(confirmed(0, HOLDER_A)),
            "already confirmed",
        );
    }

    #[test]
    fn ignores_other_events() {
        let mut state = with_sharded();
        let before = state.clone();
        let peer = Event::PeerSeen(PeerSeen::default());
        assert_eq!(apply(&mut state, 2, peer), Applied::Ok);
        let no_event = Envelope {
            event: None,
            ..envelope(Event::PeerSeen(PeerSeen::default()))
        };
        assert_eq!(
            state.apply(&BlobIndexProjection, &ctx(3), &no_event),
            Applied::Ok
        );
        assert_eq!(state, before);
    }

    #[test]
    fn malformed_stored_records_are_rejections_not_panics() {
        let mut state = MemState::new();
        state.put(
            &BlobIndexProjection::blob_key(&hash(DATA)),
            &[0xff, 0xff, 0xff],
        );
        assert_rejected(&mut state, Event::BlobAccepted(sharded()), "malformed");
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, HOLDER_A, 0)),
            "malformed",
        );
        let mut state = with_sharded();
        state.put(
            &BlobIndexProjection::holder_key(&hash(DATA), 0, HOLDER_A),
            &[0x0a],
        );
        assert_rejected(
            &mut state,
            Event::ShardPlaced(placed(0, HOLDER_A, 2)),
            "malformed",
        );
        assert_rejected(
            &mut state,
            Event::ReplicaConfirmed(confirmed(0, HOLDER_A)),
            "malformed",
        );
        assert_eq!(BlobIndexProjection::decode_blob(&[0xff, 0xff]), None);
        assert_eq!(BlobIndexProjection::decode_holder(&[0x0a]), None);
    }

    #[test]
    fn keys_are_laid_out_as_documented() {
        let h = [7u8; 32];
        assert_eq!(BlobIndexProjection::blob_key(&h)[0], b'b');
        assert_eq!(BlobIndexProjection::blob_key(&h).len(), 33);
        let key = BlobIndexProjection::holder_key(&h, 0x0102_0304, b"peer");
        assert_eq!(key.len(), 1 + 32 + 4 + 4);
        assert!(key.starts_with(&BlobIndexProjection::holders_prefix(&h)));
        assert_eq!(&key[33..37], &[1, 2, 3, 4]);
        assert_eq!(
            BlobIndexProjection::parse_holder_key(&key),
            Some((0x0102_0304, b"peer".to_vec()))
        );
        // Shard order is the key order (big-endian), whatever the holders.
        assert!(
            BlobIndexProjection::holder_key(&h, 1, b"zz")
                < BlobIndexProjection::holder_key(&h, 256, b"a")
        );
        assert_eq!(
            BlobIndexProjection::parse_holder_key(&BlobIndexProjection::blob_key(&h)),
            None
        );
        assert_eq!(
            BlobIndexProjection::parse_holder_key(&BlobIndexProjection::holder_key(&h, 1, b"")),
            None
        );
        assert_eq!(BlobIndexProjection::parse_holder_key(b"h"), None);
        assert_eq!(BlobIndexProjection::parse_holder_key(b""), None);
    }

    #[test]
    fn fold_is_deterministic() {
        let events = [
            Event::BlobAccepted(sharded()),
            Event::ShardPlaced(placed(0, HOLDER_A, 2)),
            Event::ShardPlaced(placed(1, HOLDER_B, 2)),
            Event::ReplicaConfirmed(confirmed(0, HOLDER_A)),
            Event::ShardPlaced(placed(0, HOLDER_A, 5)),
            Event::BlobAccepted(inline(b"x")),
        ];
        let fold = || {
            let mut state = MemState::new();
            let applied: Vec<_> = events
                .iter()
                .zip(1..)
                .map(|(e, i)| apply(&mut state, i, e.clone()))
                .collect();
            (applied, state.digest(BlobIndexProjection::NAME))
        };
        let (applied, digest) = fold();
        assert!(applied.iter().all(|a| *a == Applied::Ok), "{applied:?}");
        assert_eq!(fold(), (applied, digest));
    }
}
