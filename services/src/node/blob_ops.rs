//! A node's blob operations: the shard store, the blob index as this node has applied it, the
//! erasure code for a new blob, committing `BlobAccepted`, and waiting for an index to be applied
//! (read-your-writes). The HTTP routes (`crate::http::blobs`) are built on these.

use super::batcher::Committed;
use super::{Node, NodeError, ProposeError};
use crate::blobs::ShardStore;
use bytes::Bytes;
use hearth_projections::{BlobIndexProjection, BlobRecord, HolderRecord};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{BlobAccepted, Envelope};
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;

/// Disk space promised to one upload ([`Node::reserve_room`]); given back on drop.
#[derive(Debug)]
pub struct RoomGuard {
    promised: Arc<parking_lot::Mutex<u64>>,
    bytes: u64,
}

impl Drop for RoomGuard {
    fn drop(&mut self) {
        let mut promised = self.promised.lock();
        *promised = promised.saturating_sub(self.bytes);
    }
}

impl Node {
    /// This node's shard files.
    pub fn shards(&self) -> &ShardStore {
        &self.inner.shards
    }

    /// The memory cache of verified stripes the read path looks in first.
    pub fn stripe_cache(&self) -> &crate::blobs::StripeCache {
        &self.inner.cache
    }

    /// The bound on memory held by blob reads in progress (`--read-buffer-bytes`).
    pub fn read_budget(&self) -> &crate::blobs::ReadBudget {
        &self.inner.read_budget
    }

    /// The background worker that puts shards right after reads found them missing or rotten.
    pub fn repairer(&self) -> &crate::blobs::Repairer {
        &self.inner.repairer
    }

    /// Blob `hash` as this node's blob index holds it (as of its applied index).
    pub fn blob(&self, hash: &[u8; 32]) -> Result<Option<BlobRecord>, NodeError> {
        let key = BlobIndexProjection::blob_key(hash);
        let value = self
            .inner
            .sm
            .with_store(|s| s.get(BlobIndexProjection::NAME, &key))?
            .map_err(|e| NodeError::Blob(format!("reading the blob index: {e}")))?;
        Ok(value.as_deref().and_then(BlobIndexProjection::decode_blob))
    }

    /// Every placement of blob `hash`'s shards: (shard index, holder PeerId bytes, record), in
    /// shard order; placements made for an earlier record of the same hash are left out.
    pub fn blob_holders(
        &self,
        hash: &[u8; 32],
    ) -> Result<Vec<(u32, Vec<u8>, HolderRecord)>, NodeError> {
        let Some(blob) = self.blob(hash)? else {
            return Ok(Vec::new());
        };
        let prefix = BlobIndexProjection::holders_prefix(hash);
        let rows = self
            .inner
            .sm
            .with_store(|s| s.scan_prefix(BlobIndexProjection::NAME, &prefix))?
            .map_err(|e| NodeError::Blob(format!("reading the blob index: {e}")))?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| {
                let (shard, holder) = BlobIndexProjection::parse_holder_key(&k)?;
                let record = BlobIndexProjection::decode_holder(&v)?;
                record.is_current(&blob).then_some((shard, holder, record))
            })
            .collect())
    }

    /// Bytes a new blob may still take on this node's disk: free space minus the reserve kept
    /// for the log (so deletes can still commit when data fills the disk) minus what uploads in
    /// flight were promised.
    pub fn blob_room(&self) -> Result<u64, NodeError> {
        let promised = *self.inner.room_promised.lock();
        Ok(self.free_room()?.saturating_sub(promised))
    }

    fn free_room(&self) -> Result<u64, NodeError> {
        let free = crate::fsutil::free_bytes(&self.inner.settings.data_dir)
            .map_err(|e| NodeError::io(&self.inner.settings.data_dir, e))?;
        Ok(free.saturating_sub(self.inner.settings.disk_reserve))
    }

    /// Promises `bytes` of disk to one upload until the returned guard is dropped, so that
    /// uploads running at once cannot each see the same free space and together fill the disk;
    /// `Ok(Err(room))` when `bytes` do not fit in the room left. (The promise is not reduced
    /// as the upload writes: concurrent uploads near a full disk are refused early, never
    /// late.)
    pub fn reserve_room(&self, bytes: u64) -> Result<Result<RoomGuard, u64>, NodeError> {
        let free = self.free_room()?;
        let mut promised = self.inner.room_promised.lock();
        let room = free.saturating_sub(*promised);
        if bytes > room {
            return Ok(Err(room));
        }
        *promised += bytes;
        Ok(Ok(RoomGuard {
            promised: Arc::clone(&self.inner.room_promised),
            bytes,
        }))
    }

    /// A slot for one blob upload; `None` when `max_blob_puts` are in flight.
    pub fn try_blob_put(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.inner.blob_puts.try_acquire().ok()
    }

    /// The largest blob this node accepts.
    pub fn max_blob_bytes(&self) -> u64 {
        self.inner.settings.max_blob_bytes
    }

    /// `(k, m)` for a blob accepted now: the configured policy applied to the current voters.
    pub fn new_blob_code(&self) -> (u32, u32) {
        let voters = self
            .inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        self.inner.settings.erasure.choose(voters)
    }

    /// Blobs up to this many bytes travel inline.
    pub fn inline_threshold(&self) -> usize {
        self.inner.settings.inline_threshold
    }

    /// Commits `accepted` (this node as origin and acceptor) and waits until it is applied.
    pub async fn accept_blob(&self, mut accepted: BlobAccepted) -> Result<Committed, ProposeError> {
        accepted.accepted_by = Bytes::from(self.peer_id().to_bytes());
        let env = Envelope {
            schema_version: hearth_proto::SCHEMA_VERSION,
            event: Some(Event::BlobAccepted(accepted)),
            ..Envelope::default()
        };
        self.propose(Bytes::from(env.encode_to_vec())).await
    }

    /// Removes shard directories that no blob in the index references and that are older than
    /// `grace`; returns how many. Only once this node has applied everything committed, so a
    /// blob committed before a restart is never mistaken for an orphan.
    pub fn sweep_orphans(&self, grace: Duration) -> Result<usize, NodeError> {
        self.ready().map_err(NodeError::Blob)?;
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for (hash, modified) in self.shards().blob_dirs()? {
            let old = now.duration_since(modified).unwrap_or_default() >= grace;
            if old && self.blob(&hash)?.is_none() {
                self.shards().remove_blob(&hash)?;
                tracing::warn!(
                    hash = %crate::hex::encode(&hash),
                    "removed shard files no committed blob references"
                );
                removed += 1;
                continue;
            }
            // Copies this node no longer holds (released, the removal cut short by a crash).
            let me = self.peer_id().to_bytes();
            let held: Vec<u32> = self
                .blob_holders(&hash)?
                .into_iter()
                .filter(|(_, h, _)| *h == me)
                .map(|(s, _, _)| s)
                .collect();
            let live = self.blob(&hash)?.is_some_and(|b| !b.deleted);
            for shard in self.shards().held_shards(&hash) {
                if live && !held.contains(&shard) {
                    self.shards().remove_shard(&hash, shard)?;
                    tracing::info!(hash = %crate::hex::encode(&hash), shard, "removed a released shard copy");
                }
            }
        }
        Ok(removed)
    }

    /// Commits a tombstone for blob `hash` and waits until it is applied.
    pub async fn delete_blob(&self, hash: &[u8; 32]) -> Result<Committed, ProposeError> {
        let env = Envelope {
            schema_version: hearth_proto::SCHEMA_VERSION,
            event: Some(Event::BlobDeleted(hearth_proto::v1::BlobDeleted {
                blob_hash: Bytes::copy_from_slice(hash),
            })),
            ..Envelope::default()
        };
        self.propose(Bytes::from(env.encode_to_vec())).await
    }

    /// Removes this node's shards of every deleted blob; returns how many blobs.
    pub fn collect_deleted(&self) -> Result<usize, NodeError> {
        let mut removed = 0;
        for (hash, _) in self.shards().blob_dirs()? {
            if let Some(blob) = self.blob(&hash)?.filter(|b| b.deleted) {
                self.shards().remove_blob(&hash)?;
                self.stripe_cache()
                    .remove_blob(&hash, blob.stripe_hashes.len() as u64);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Waits until this node has applied `index` (read-your-writes); false after `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        self.inner
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "read-your-writes")
            .await
            .is_ok()
    }
}
