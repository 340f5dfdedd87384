//! The redactor: once a blob whose bytes travelled inline is deleted, every member zeroes those
//! bytes in its own log (`hearth_log::Log::redact`) and in its archive of purged entries, so no member keeps them, while each
//! record's kept payload hash keeps the chain verifying and equal across members.
//!
//! The work list is the blob index's `r` keys (deleted blobs with inline events, in deletion
//! order); a cursor in memory skips what this process already handled, and a restart checks the
//! list again (an entry already zeroed is skipped). Every range is located by walking the stored
//! protobuf (`hearth_raft::codec::envelope_range`, `hearth_proto::inline_data_range`), and only
//! zeroed when its bytes hash to the deleted blob: never a wrong byte.

use super::{Node, NodeError};
use hearth_log::Log;
use hearth_projections::{BlobIndexProjection, EventRef};
use std::sync::atomic::Ordering;

impl Node {
    /// Redacts, from this node's log, the inline bytes of every blob deleted since the last
    /// pass, then compacts the blob index so its old copies go too; returns how many entries it
    /// redacted. Only deletions this node has applied are seen.
    pub async fn redact_deleted(&self) -> Result<usize, NodeError> {
        let after = self.inner.redacted_through.load(Ordering::Acquire);
        let from = BlobIndexProjection::redact_key(after.saturating_add(1), &[]);
        let work = self
            .inner
            .sm
            .with_store(|s| {
                s.scan_prefix_from(
                    BlobIndexProjection::NAME,
                    BlobIndexProjection::REDACT_PREFIX,
                    &from,
                )
            })?
            .map_err(|e| NodeError::Blob(format!("reading the redaction work list: {e}")))?;
        let mut redacted = 0;
        for (key, _) in work {
            let Some((deleted_index, hash)) = BlobIndexProjection::parse_redact_key(&key) else {
                continue;
            };
            if let Some(blob) = self.blob(&hash)?.filter(|b| b.deleted) {
                for at in &blob.inline_events {
                    if redact_inline(self.inner.store.log(), *at, &hash).await? {
                        redacted += 1;
                    }
                    // The archive of purged entries holds a copy of older entries too.
                    if let Some(archive) = &self.inner.archive {
                        if redact_inline(archive, *at, &hash).await? {
                            redacted += 1;
                        }
                    }
                }
            }
            self.inner
                .redacted_through
                .store(deleted_index, Ordering::Release);
        }
        if redacted > 0 {
            self.inner
                .sm
                .with_store(|s| s.compact(BlobIndexProjection::NAME))?
                .map_err(|e| NodeError::Blob(format!("compacting the blob index: {e}")))?;
        }
        Ok(redacted)
    }
}

/// Zeroes blob `hash`'s inline bytes in the event `at` of `log` (this node's log, or its
/// archive); false when there is nothing to do (not there, already zeroed, or not those bytes:
/// then it warns).
async fn redact_inline(log: &Log, at: EventRef, hash: &[u8; 32]) -> Result<bool, NodeError> {
    let Some(rec) = log.read(at.index..=at.index)?.into_iter().next() else {
        return Ok(false);
    };
    let range = hearth_raft::codec::envelope_range(&rec.payload, at.position).and_then(|env| {
        let inner = hearth_proto::inline_data_range(rec.payload.get(env.clone())?)?;
        Some(env.start + inner.start..env.start + inner.end)
    });
    let Some(range) = range else {
        tracing::warn!(
            index = at.index,
            position = at.position,
            "no inline blob bytes where the blob index says; left alone"
        );
        return Ok(false);
    };
    let bytes = &rec.payload[range.clone()];
    if bytes.iter().all(|b| *b == 0) {
        return Ok(false);
    }
    if blake3::hash(bytes).as_bytes() != hash {
        tracing::warn!(
            index = at.index,
            position = at.position,
            "the inline bytes there are not the deleted blob's; left alone"
        );
        return Ok(false);
    }
    log.redact(at.index, range).await?;
    Ok(true)
}
