//! The verifier, on every member: blobs that are durable but not yet verified (the blob
//! index's verification work list) are checked by a node other than the writer, which then
//! commits a signed `ManifestVerified` — the **verified** tier.
//!
//! Checking a sharded blob means fetching at least `k` shards (from this node's files and the
//! holders), rebuilding every stripe (each against its stripe hash), re-encoding it to
//! recompute **every** shard hash and the blob hash, and comparing them all with the manifest;
//! an inline blob's bytes are in the index and are re-hashed. Only then is the canonical
//! manifest hash signed (`hearth_projections::manifest`); the index checks the signature at
//! apply, and the audit checks it again.
//!
//! One verifier per blob, chosen by rendezvous among the voters other than the writer, so
//! the work is spread and not repeated; when the chosen one has not done it within
//! [`TAKE_OVER_AFTER`] of the blob becoming durable (down, or slow), any other non-writer
//! member does.

use super::cluster_read::{ShardSources, STRIPES_PER_PIECE};
use super::replicator::manifest_of;
use super::{Node, NodeError};
use crate::blobs::StripeCodec;
use bytes::Bytes;
use hearth_projections::{BlobIndexProjection, BlobRecord};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::Envelope;
use prost::Message as _;
use std::time::Duration;

/// How often the verifier looks at its queue.
pub const VERIFY_EVERY: Duration = Duration::from_millis(500);

/// How long the chosen verifier has before the others step in.
pub const TAKE_OVER_AFTER: Duration = Duration::from_secs(30);

impl Node {
    /// The blobs on the verification work list, in hash order.
    pub fn verification_queue(&self) -> Result<Vec<[u8; 32]>, NodeError> {
        self.blob_work_list(BlobIndexProjection::VERIFY_PREFIX)
    }

    /// One pass: verifies the blobs this node should; returns how many it signed.
    pub async fn verify_once(&self) -> Result<usize, NodeError> {
        if self.ready().is_err() {
            return Ok(0);
        }
        let me = self.peer_id().to_bytes();
        let voters = self.voter_peers();
        let mut signed = 0;
        for hash in self.verification_queue()? {
            let Some(blob) = self.blob(&hash)?.filter(|b| !b.deleted) else {
                continue;
            };
            if blob.accepted_by == me || !self.should_verify(&hash, &blob, &voters, &me) {
                continue;
            }
            match self.check_blob(&hash, &blob).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(hash = %crate::hex::encode(&hash), error = %e, "verifying a blob failed");
                    continue;
                }
            }
            let mv = hearth_projections::manifest::sign(&self.inner.signing, &blob.manifest(&hash));
            let env = Envelope {
                schema_version: hearth_proto::SCHEMA_VERSION,
                event: Some(Event::ManifestVerified(mv)),
                ..Envelope::default()
            };
            match self.propose(Bytes::from(env.encode_to_vec())).await {
                Ok(c) if c.rejected.is_none() => signed += 1,
                Ok(c) => tracing::debug!(reason = ?c.rejected, "verification rejected"),
                Err(e) => tracing::warn!(error = %e, "proposing a verification"),
            }
        }
        Ok(signed)
    }

    /// Whether this node verifies `blob` now: it is the rendezvous choice among the non-writer
    /// voters, or the choice has had [`TAKE_OVER_AFTER`] since the blob became durable.
    fn should_verify(
        &self,
        hash: &[u8; 32],
        blob: &BlobRecord,
        voters: &[Vec<u8>],
        me: &[u8],
    ) -> bool {
        let chosen = voters
            .iter()
            .filter(|v| **v != blob.accepted_by)
            .max_by_key(|v| {
                let mut h = blake3::Hasher::new();
                h.update(b"hearth.verifier.v1\0");
                h.update(hash);
                h.update(v);
                *h.finalize().as_bytes()
            });
        if chosen.is_some_and(|c| c == me) {
            return true;
        }
        let now = super::now_ms();
        now.saturating_sub(blob.durable_log_time_ms) >= TAKE_OVER_AFTER.as_millis() as u64
    }

    /// Rebuilds the blob from its shards and checks the blob hash and every shard hash
    /// against the manifest (an inline blob: its bytes against its hash).
    async fn check_blob(&self, hash: &[u8; 32], blob: &BlobRecord) -> Result<(), String> {
        if let Some(data) = &blob.inline_data {
            return if blake3::hash(data).as_bytes() == hash && data.len() as u64 == blob.size {
                Ok(())
            } else {
                Err("inline bytes do not match the blob hash".into())
            };
        }
        let manifest = manifest_of(hash, blob).map_err(|e| e.to_string())?;
        let l = manifest.layout;
        let holders = self.blob_holders(hash).map_err(|e| e.to_string())?;
        let sources = ShardSources::new(self, l.shard_count(), &holders);
        let codec =
            StripeCodec::new(l.data_shards(), l.parity_shards()).map_err(|e| e.to_string())?;
        let mut shard_hashers: Vec<blake3::Hasher> = (0..l.shard_count())
            .map(|_| blake3::Hasher::new())
            .collect();
        let mut blob_hasher = blake3::Hasher::new();
        let mut s = 0;
        while s < l.stripe_count() {
            let piece = s..(s + STRIPES_PER_PIECE).min(l.stripe_count());
            for data in sources.read_stripes(&manifest, piece.clone()).await? {
                blob_hasher.update(&data);
                for (h, chunk) in shard_hashers
                    .iter_mut()
                    .zip(codec.encode(&data).map_err(|e| e.to_string())?)
                {
                    h.update(&chunk);
                }
            }
            s = piece.end;
        }
        if blob_hasher.finalize().as_bytes() != hash {
            return Err("the rebuilt blob does not hash to its name".into());
        }
        for (i, (h, want)) in shard_hashers.iter().zip(&blob.shard_hashes).enumerate() {
            if h.finalize().as_bytes()[..] != want[..] {
                return Err(format!("shard {i} does not hash to the manifest's hash"));
            }
        }
        Ok(())
    }
}

/// The verifier: a pass every [`VERIFY_EVERY`].
pub(super) async fn verifier(node: Node) {
    loop {
        tokio::time::sleep(VERIFY_EVERY).await;
        if let Err(e) = node.verify_once().await {
            tracing::warn!(error = %e, "verification pass");
        }
    }
}
