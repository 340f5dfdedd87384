//! Parity growth, on the leader: when the cluster has grown so that the `auto` erasure policy
//! gives new blobs more parity shards than an existing blob has, that blob gets the missing
//! parity shards, so old blobs survive as many member losses as new ones.
//!
//! Only parity is added; nothing is rewritten. A Reed-Solomon code over the same `k` data
//! shards with more parity rows keeps every existing row (checked in
//! `blobs::stripe::parity_growth`), so a blob's data shards, stripes, stripe hashes and
//! existing parity shards stay valid, and every existing copy stays good while the new shards
//! are made: there is no moment where a crash leaves a blob under a code its files do not
//! match. The leader reads the blob (every stripe verified, from its own files and the
//! holders', like the verifier), encodes each stripe with the wider code, keeps the new
//! parity chunks, and writes each new shard like a received one (temp file, hash and size
//! checked, fsync, rename, directory fsync). Then it commits `ParityAdded`; the index makes
//! the leader their confirmed holder and puts the blob back to work, and the replicator places
//! and spreads the new shards like any others (then the verifier signs the new manifest).
//!
//! Growing `k` as well (the `auto` table's 2 → 3, 4 → 5 and 5 → 6 voter steps) would rewrite
//! every shard; old blobs keep their `k` and reach the same number of survivable losses with
//! more parity instead (1 + 0 on one node becomes 1 + 1 on two, 1 + 2 on four), at a higher
//! storage cost than a full re-encode would have. A fixed `--erasure K+M` never changes
//! existing blobs.

use super::cluster_read::{ShardSources, STRIPES_PER_PIECE};
use super::replicator::manifest_of;
use super::{Node, NodeError};
use crate::blobs::{ErasurePolicy, StripeCodec};
use bytes::Bytes;
use hearth_projections::BlobRecord;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{Envelope, ParityAdded};
use prost::Message as _;
use std::time::Duration;

/// How often the widener checks whether the voters changed (or a failed blob is due again).
pub const WIDEN_EVERY: Duration = Duration::from_secs(5);

/// A pass where some blob failed is repeated after this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WidenPass {
    /// Blobs that got parity shards.
    pub widened: usize,
    /// Blobs that should have and did not (tried again later).
    pub failed: usize,
}

impl Node {
    /// The parity shards `blob` should have among `voters` voters under this node's erasure
    /// policy, when that is more than it has: `auto` only, sharded blobs only, and never more
    /// shards in all than voters (one per member).
    pub fn wanted_parity(&self, blob: &BlobRecord, voters: usize) -> Option<u32> {
        if self.inner.settings.erasure != ErasurePolicy::Auto || blob.deleted || blob.is_inline() {
            return None;
        }
        let (_, m) = ErasurePolicy::Auto.choose(voters);
        let fits = u64::from(blob.data_shards) + u64::from(m) <= voters as u64;
        (m > blob.parity_shards && fits).then_some(m)
    }

    /// One pass (leader only): every blob that should have more parity shards gets them.
    pub async fn widen_once(&self) -> Result<WidenPass, NodeError> {
        let mut pass = WidenPass::default();
        if !self.leads(&self.metrics()) || self.ready().is_err() {
            return Ok(pass);
        }
        let voters = self.voter_peers().len();
        for (hash, blob) in self.sharded_blobs()? {
            let Some(m) = self.wanted_parity(&blob, voters) else {
                continue;
            };
            // A blob not placed yet is left until it is: one change at a time.
            if blob.placement.is_empty() {
                pass.failed += 1;
                continue;
            }
            match self.widen(&hash, &blob, m).await {
                Ok(true) => pass.widened += 1,
                Ok(false) => pass.failed += 1,
                Err(e) => {
                    pass.failed += 1;
                    tracing::warn!(
                        hash = %crate::hex::encode(&hash),
                        error = %e,
                        "adding parity shards"
                    );
                }
            }
        }
        Ok(pass)
    }

    /// Computes, stores and commits parity shards `m_old..m` of `blob`; `false` when the index
    /// rejected them (the blob changed meanwhile: the new files are removed).
    async fn widen(&self, hash: &[u8; 32], blob: &BlobRecord, m: u32) -> Result<bool, String> {
        let manifest = manifest_of(hash, blob).map_err(|e| e.to_string())?;
        let l = manifest.layout;
        let (k, old) = (blob.data_shards, blob.parity_shards);
        let wide = StripeCodec::new(k, m).map_err(|e| e.to_string())?;
        let added: Vec<u32> = (k + old..k + m).collect();
        let holders = self.blob_holders(hash).map_err(|e| e.to_string())?;
        let sources = ShardSources::new(self, l.shard_count(), &holders);
        let mut receivers = Vec::new();
        for &i in &added {
            let r = self
                .shards()
                .receiver(*hash, i)
                .map_err(|e| e.to_string())?;
            receivers.push((r, blake3::Hasher::new()));
        }
        let mut s = 0;
        while s < l.stripe_count() {
            let piece = s..(s + STRIPES_PER_PIECE).min(l.stripe_count());
            // Every stripe is checked against its hash before it is encoded.
            let stripes = sources.read_stripes(&manifest, piece.clone()).await?;
            let mut chunks: Vec<Vec<u8>> = vec![Vec::new(); added.len()];
            for data in stripes {
                let mut encoded = wide.encode(&data).map_err(|e| e.to_string())?;
                for (out, &i) in chunks.iter_mut().zip(&added) {
                    out.extend_from_slice(&std::mem::take(&mut encoded[i as usize]));
                }
            }
            receivers = tokio::task::spawn_blocking(move || {
                for ((r, h), c) in receivers.iter_mut().zip(&chunks) {
                    h.update(c);
                    r.write(c)?;
                }
                Ok::<_, crate::blobs::ShardError>(receivers)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            s = piece.end;
        }
        let size = l.shard_size();
        let hashes = tokio::task::spawn_blocking(move || {
            let mut hashes = Vec::new();
            for (r, h) in receivers {
                let hash = h.finalize();
                r.finish(hash.as_bytes(), size)?;
                hashes.push(Bytes::copy_from_slice(hash.as_bytes()));
            }
            Ok::<_, crate::blobs::ReceiveError>(hashes)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let env = Envelope {
            schema_version: hearth_proto::SCHEMA_VERSION,
            event: Some(Event::ParityAdded(ParityAdded {
                blob_hash: Bytes::copy_from_slice(hash),
                accepted_index: blob.accepted_index,
                parity_shards: m,
                added_shard_hashes: hashes,
                added_by: Bytes::from(self.peer_id().to_bytes()),
            })),
            ..Envelope::default()
        };
        let committed = self.propose(Bytes::from(env.encode_to_vec())).await;
        match committed {
            Ok(c) if c.rejected.is_none() => {
                tracing::info!(
                    hash = %crate::hex::encode(hash),
                    k,
                    from = old,
                    to = m,
                    "added parity shards: the blob survives as many losses as new ones"
                );
                Ok(true)
            }
            other => {
                for &i in &added {
                    let _ = self.shards().remove_shard(hash, i);
                }
                match other {
                    Ok(c) => {
                        tracing::debug!(reason = ?c.rejected, "parity rejected");
                        Ok(false)
                    }
                    Err(e) => Err(format!("proposing the added parity: {e}")),
                }
            }
        }
    }
}

/// The widener: on the leader, a pass over every blob when the number of voters changed
/// since the last complete pass (or it just took over), and again [`RETRY_AFTER`] a pass
/// where some blob failed; nothing otherwise.
pub(super) async fn widener(node: Node) {
    // The voter count every blob was last brought up to; or the one of a pass that left
    // blobs behind, and when.
    let mut done_for: Option<usize> = None;
    let mut failed: Option<(usize, std::time::Instant)> = None;
    loop {
        tokio::time::sleep(WIDEN_EVERY).await;
        if !node.leads(&node.metrics()) || node.ready().is_err() {
            (done_for, failed) = (None, None);
            continue;
        }
        let voters = node.voter_peers().len();
        let waiting = failed.is_some_and(|(v, at)| v == voters && at.elapsed() < RETRY_AFTER);
        if done_for == Some(voters) || waiting {
            continue;
        }
        match node.widen_once().await {
            Ok(pass) if pass.failed == 0 => (done_for, failed) = (Some(voters), None),
            Ok(pass) => {
                tracing::debug!(?pass, "parity pass left blobs for later");
                (done_for, failed) = (None, Some((voters, std::time::Instant::now())));
            }
            Err(e) => {
                tracing::warn!(error = %e, "parity pass");
                (done_for, failed) = (None, Some((voters, std::time::Instant::now())));
            }
        }
    }
}
