//! The replication worker, on every member: its queue is the blob index's work list (blobs
//! not yet settled), so it survives restarts with nothing lost and nothing done twice — every
//! step is an event the index checks at apply.
//!
//! Each pass, for every unsettled blob:
//! 1. **Decide** (the leader only): when the blob has no placement decision yet, or its
//!    placement names a node that is no longer a voter or is *gone* (a voter no member has
//!    sighted for `--repair-grace`, counted from no earlier than when this leader took over),
//!    choose holders
//!    ([`crate::replication::placement::place`], current holders kept where possible) and
//!    propose one `ShardPlaced` per shard with a new epoch (after the acceptance and the
//!    previous decision; an old leader's decision at the same epoch is rejected at apply).
//! 2. **Hold** (the holder): a shard placed on this node and not confirmed is fetched from a
//!    confirmed holder over `/hearth/shard/1`, or rebuilt from any `k` others when no copy
//!    is left, checked against the manifest's shard hash, fsynced (file and directory), and
//!    confirmed (`ReplicaConfirmed`).
//! 3. **Release** (any holder of a surplus copy — typically the writer): once every shard of
//!    the placement is confirmed, a copy the placement does not name is recorded released
//!    (`ShardReleased`) and then its file removed. The leader records the copies of members
//!    that left the cluster as released too (nobody else can).
//!
//! Whenever the set of placeable voters changes (a membership change, a member gone past the
//! grace period or back, a new leader), the leader re-checks every blob: one naming a member
//! that is not placeable is decided anew, and so is one whose placement survives fewer member
//! losses than a placement over the current members would (shards placed while a member was
//! gone move back when it returns, keeping every holder that still fits).
//!
//! The worker runs when raft applies something (and at least every [`REPLICATE_EVERY`]).
//! Memory: one transfer piece (4 MiB) or one stripe per shard in flight per blob.

use super::{Node, NodeError};
use crate::blobs::{Layout, Manifest};
use crate::replication::placement::{self, Candidate};
use crate::replication::transfer;
use bytes::Bytes;
use hearth_projections::{BlobIndexProjection, BlobRecord, HolderRecord};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{Envelope, ShardPlaced, ShardReleased};
use libp2p::PeerId;
use prost::Message as _;
use std::collections::BTreeSet;
use std::time::Duration;

/// How often the worker looks at its queue.
pub const REPLICATE_EVERY: Duration = Duration::from_millis(200);

/// How often the leader re-reads the peer table for members gone past the repair grace.
const GONE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// One blob's holders as the index has them: `(shard, holder, record)` (current ones only).
type Holders = Vec<(u32, Vec<u8>, HolderRecord)>;

impl Node {
    /// The blobs on the replication work list (unsettled), in hash order.
    pub fn replication_queue(&self) -> Result<Vec<[u8; 32]>, NodeError> {
        self.blob_work_list(BlobIndexProjection::WORK_PREFIX)
    }

    /// The blob hashes of one of the blob index's work lists (`prefix` ‖ hash keys).
    pub(super) fn blob_work_list(&self, prefix: &[u8]) -> Result<Vec<[u8; 32]>, NodeError> {
        let rows = self
            .inner
            .sm
            .with_store(|s| s.scan_prefix(BlobIndexProjection::NAME, prefix))?
            .map_err(|e| NodeError::Blob(format!("reading the blob index: {e}")))?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, _)| k.get(1..).and_then(|h| <[u8; 32]>::try_from(h).ok()))
            .collect())
    }

    /// Every live sharded blob in the index, in hash order (records that do not decode are
    /// skipped).
    pub(super) fn sharded_blobs(&self) -> Result<Vec<([u8; 32], BlobRecord)>, NodeError> {
        let rows = self
            .inner
            .sm
            .with_store(|s| {
                s.scan_prefix(BlobIndexProjection::NAME, BlobIndexProjection::BLOB_PREFIX)
            })?
            .map_err(|e| NodeError::Blob(format!("reading the blob index: {e}")))?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, value)| {
                let hash = key.get(1..).and_then(|h| <[u8; 32]>::try_from(h).ok())?;
                let blob = BlobIndexProjection::decode_blob(&value)?;
                (!blob.deleted && !blob.is_inline()).then_some((hash, blob))
            })
            .collect())
    }

    /// PeerId bytes of the current voters.
    pub fn voter_peers(&self) -> Vec<Vec<u8>> {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .filter(|(id, _)| voters.contains(id))
            .filter_map(|(_, n)| n.peer_id.parse::<PeerId>().ok())
            .map(|p| p.to_bytes())
            .collect()
    }

    fn is_leader(&self) -> bool {
        self.leads(&self.metrics())
    }

    /// The voters no member has sighted for longer than the repair grace period, with how long
    /// (ms): the last `PeerSeen` about each in the log, or `since_ms` (when this leader took
    /// over) if later, against this node's clock. Never this node; none when the grace is 0.
    pub fn gone_voters(&self, voters: &[Vec<u8>], since_ms: u64) -> Vec<(Vec<u8>, u64)> {
        let grace = self.inner.settings.repair_grace.as_millis() as u64;
        if grace == 0 {
            return Vec::new();
        }
        let me = self.peer_id().to_bytes();
        let records: std::collections::HashMap<Vec<u8>, u64> = match self.peer_records() {
            Ok(r) => r
                .into_iter()
                .map(|(p, r)| (p, r.last_seen_log_ms))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the peer table: no member is taken for gone");
                return Vec::new();
            }
        };
        let now = super::now_ms();
        voters
            .iter()
            .filter(|p| **p != me)
            .filter_map(|p| {
                let last = records.get(p).copied().unwrap_or(0).max(since_ms);
                let silent = now.saturating_sub(last);
                (silent > grace).then(|| (p.clone(), silent))
            })
            .collect()
    }

    /// Records `gone` (from [`Self::gone_voters`]) as the members the leader's placement
    /// leaves out, logging each that became gone or came back (still among `voters`).
    fn note_gone(&self, gone: Vec<(Vec<u8>, u64)>, voters: &[Vec<u8>]) {
        let mut before = self.inner.gone.lock();
        for (p, silent) in &gone {
            if !before.iter().any(|(b, _)| b == p) {
                tracing::warn!(
                    peer = %peer_text(p),
                    unseen_s = silent / 1000,
                    grace_s = self.inner.settings.repair_grace.as_secs(),
                    "member unseen past the repair grace period: rebuilding its shards on the others"
                );
            }
        }
        for (p, _) in before.iter() {
            if !gone.iter().any(|(g, _)| g == p) && voters.contains(p) {
                tracing::info!(peer = %peer_text(p), "member seen again: placing shards on it");
            }
        }
        *before = gone;
    }

    /// One pass over the work list, placing shards on `placeable` (the voters, less any gone
    /// past the grace period); returns how many steps were taken (events proposed).
    pub async fn replicate_once(&self, placeable: &[Vec<u8>]) -> Result<usize, NodeError> {
        if self.ready().is_err() {
            return Ok(0);
        }
        let mut steps = 0;
        let leader = self.is_leader();
        let voters = self.voter_peers();
        for hash in self.replication_queue()? {
            let Some(blob) = self.blob(&hash)?.filter(|b| !b.deleted && !b.is_inline()) else {
                continue;
            };
            let holders = self.blob_holders(&hash)?;
            if leader && needs_decision(&blob, placeable) {
                let chosen = self.choose(&hash, &blob, placeable)?;
                steps += self.propose_placement(&hash, &blob, &chosen).await?;
                continue;
            }
            self.push_placed(&hash, &blob, &holders);
            steps += self.hold(&hash, &blob, &holders).await;
            steps += self
                .release(&hash, &blob, &holders, leader, &voters)
                .await?;
        }
        Ok(steps)
    }

    /// Re-checks every blob's placement against `placeable` (after the voters changed, or a
    /// member was gone past the grace period or came back) and decides anew (leader only) for
    /// the ones naming a member not placeable, or surviving fewer losses than they could.
    pub async fn replace_departed(&self, placeable: &[Vec<u8>]) -> Result<usize, NodeError> {
        if !self.is_leader() || self.ready().is_err() {
            return Ok(0);
        }
        let mut steps = 0;
        for (hash, blob) in self.sharded_blobs()? {
            if blob.placement.is_empty() {
                continue;
            }
            let chosen = match self.choose(&hash, &blob, placeable) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "re-placing a blob");
                    continue;
                }
            };
            let now = placement::survivable_losses(
                blob.data_shards,
                &blob
                    .placement
                    .iter()
                    .map(|h| vec![h.clone()])
                    .collect::<Vec<_>>(),
            );
            if needs_decision(&blob, placeable) || chosen.survives > now {
                steps += self.propose_placement(&hash, &blob, &chosen).await?;
            }
        }
        Ok(steps)
    }

    /// Holders for every shard of `blob` among `voters` (current holders kept where possible).
    fn choose(
        &self,
        hash: &[u8; 32],
        blob: &BlobRecord,
        voters: &[Vec<u8>],
    ) -> Result<placement::Placement, NodeError> {
        let layout = layout_of(blob)?;
        let free = self.blob_room().unwrap_or(u64::MAX);
        let me = self.peer_id().to_bytes();
        let candidates: Vec<Candidate> = voters
            .iter()
            .map(|p| Candidate {
                peer: p.clone(),
                // Only this node's free space is known here; others are assumed to have room
                // (a holder without room fails its fetch, and the blob stays unsettled).
                free_bytes: if *p == me { free } else { u64::MAX },
                score: self.peer_score(p).value,
            })
            .collect();
        placement::place(
            hash,
            blob.data_shards,
            blob.parity_shards,
            layout.shard_size(),
            &candidates,
            &blob.placement,
        )
        .map_err(|e| NodeError::Blob(format!("placing blob {}: {e}", crate::hex::encode(hash))))
    }

    /// Proposes `chosen` as the blob's placement: one `ShardPlaced` per shard, under a new
    /// epoch; returns how many were committed.
    async fn propose_placement(
        &self,
        hash: &[u8; 32],
        blob: &BlobRecord,
        chosen: &placement::Placement,
    ) -> Result<usize, NodeError> {
        let layout = layout_of(blob)?;
        let epoch = blob.placement_epoch.max(blob.accepted_index) + 1;
        let proposals = chosen.holders.iter().zip(0u32..).map(|(holder, shard)| {
            let env = Envelope {
                schema_version: hearth_proto::SCHEMA_VERSION,
                event: Some(Event::ShardPlaced(ShardPlaced {
                    blob_hash: Bytes::copy_from_slice(hash),
                    shard_index: shard,
                    holder: Bytes::from(holder.clone()),
                    placement_epoch: epoch,
                    shard_hash: blob
                        .shard_hashes
                        .get(shard as usize)
                        .cloned()
                        .unwrap_or_default()
                        .into(),
                    shard_size: layout.shard_size(),
                })),
                ..Envelope::default()
            };
            self.propose(Bytes::from(env.encode_to_vec()))
        });
        let results = futures::future::join_all(proposals).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            tracing::warn!(hash = %crate::hex::encode(hash), failed, "proposing a placement");
        }
        tracing::debug!(
            hash = %crate::hex::encode(hash),
            epoch,
            survives = chosen.survives,
            "placed shards"
        );
        Ok(results.len() - failed)
    }

    /// Fetches and confirms the shards the placement gives this node; returns confirmations.
    async fn hold(&self, hash: &[u8; 32], blob: &BlobRecord, holders: &Holders) -> usize {
        let me = self.peer_id().to_bytes();
        let mut steps = 0;
        for (shard, holder, record) in holders {
            if *holder != me {
                continue;
            }
            if record.confirmed {
                self.inner.pushes.settled(hash, *shard);
                continue;
            }
            if record.placement_epoch != blob.placement_epoch {
                continue;
            }
            // Left to a push on its way or running (see `shard_push`); the next pass looks
            // again.
            let Some(_pulling) = self
                .inner
                .pushes
                .begin_pull(*hash, *shard, blob.placement_epoch)
            else {
                continue;
            };
            let expected = blob.shard_hash(*shard).to_vec();
            match self
                .obtain_shard(hash, blob, holders, *shard, &expected, record.shard_size)
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(hash = %crate::hex::encode(hash), shard, error = %e, "fetching a placed shard");
                    continue;
                }
            }
            match self
                .confirm_replica(hash, *shard, expected, record.shard_size)
                .await
            {
                Ok(()) => steps += 1,
                Err(e) => tracing::warn!(error = %e, "confirming a replica"),
            }
        }
        steps
    }

    /// Puts shard `shard` in this node's store: already there and intact, copied from a
    /// confirmed holder, or rebuilt from `k` other shards.
    pub(super) async fn obtain_shard(
        &self,
        hash: &[u8; 32],
        blob: &BlobRecord,
        holders: &Holders,
        shard: u32,
        expected: &[u8],
        size: u64,
    ) -> Result<(), String> {
        let me = self.peer_id().to_bytes();
        // A copy already here (an earlier fetch whose confirmation was lost): re-hash it.
        let (store, key, want) = (self.shards().clone(), *hash, expected.to_vec());
        let intact = tokio::task::spawn_blocking(move || {
            matches!(store.shard_digest(&key, shard), Ok(Some((h, n))) if n == size && h[..] == want[..])
        })
        .await
        .unwrap_or(false);
        if intact {
            return Ok(());
        }
        let mut last = String::from("no confirmed holder has it");
        for (s, holder, record) in holders {
            if *s != shard || *holder == me || !record.confirmed {
                continue;
            }
            let Ok(peer) = PeerId::from_bytes(holder) else {
                continue;
            };
            match transfer::fetch_shard(
                self.net(),
                self.cluster_id(),
                peer,
                self.shards(),
                *hash,
                shard,
                expected.to_vec(),
                size,
            )
            .await
            {
                Ok(f) => {
                    tracing::debug!(%peer, shard, bytes = f.bytes, micros = f.micros, "fetched a shard");
                    self.record_transfer(holder, true, f.bytes, f.micros, false);
                    return Ok(());
                }
                Err(e) => {
                    let bad = matches!(
                        e,
                        transfer::TransferError::Receive(
                            crate::blobs::ReceiveError::Mismatch { .. }
                        )
                    );
                    self.record_transfer(holder, false, 0, 0, bad);
                    last = e.to_string();
                }
            }
        }
        // No copy to fetch: rebuild it from the other shards.
        let manifest = manifest_of(hash, blob).map_err(|e| e.to_string())?;
        self.rebuild_shard(&manifest, holders, shard, expected, size)
            .await
            .map_err(|e| format!("{last}; rebuilding it: {e}"))
    }

    /// Releases this node's surplus copies once the placement is satisfied; the leader also
    /// records as gone the copies of members no longer in the cluster.
    async fn release(
        &self,
        hash: &[u8; 32],
        blob: &BlobRecord,
        holders: &Holders,
        leader: bool,
        voters: &[Vec<u8>],
    ) -> Result<usize, NodeError> {
        if !satisfied(blob, holders) {
            return Ok(0);
        }
        let me = self.peer_id().to_bytes();
        let mut steps = 0;
        for (shard, holder, _) in holders {
            let placed = blob.placement.get(*shard as usize);
            let mine = *holder == me;
            let departed = leader && !voters.contains(holder);
            if !(mine || departed) || placed == Some(holder) {
                continue;
            }
            let env = Envelope {
                schema_version: hearth_proto::SCHEMA_VERSION,
                event: Some(Event::ShardReleased(ShardReleased {
                    blob_hash: Bytes::copy_from_slice(hash),
                    shard_index: *shard,
                    holder: Bytes::from(holder.clone()),
                })),
                ..Envelope::default()
            };
            // Recorded first, then removed: a crash in between leaves a file no holder record
            // names, which the start-up sweep removes (`Node::sweep_orphans`).
            match self.propose(Bytes::from(env.encode_to_vec())).await {
                Ok(c) if c.rejected.is_none() => {
                    steps += 1;
                    if !mine {
                        continue;
                    }
                    self.shards().remove_shard(hash, *shard)?;
                    self.stripe_cache()
                        .remove_blob(hash, blob.stripe_hashes.len() as u64);
                }
                Ok(c) => tracing::debug!(reason = ?c.rejected, "release rejected"),
                Err(e) => tracing::warn!(error = %e, "releasing a surplus shard"),
            }
        }
        Ok(steps)
    }
}

/// Whether the blob needs a (new) decision: none yet, or one naming a member not in `voters`
/// (the placeable ones).
fn needs_decision(blob: &BlobRecord, voters: &[Vec<u8>]) -> bool {
    blob.placement.is_empty()
        // Parity shards were added: the placement covers only the ones before.
        || blob.placement.len() as u64 != blob.shard_count()
        || blob
            .placement
            .iter()
            .any(|h| h.is_empty() || !voters.contains(h))
}

/// Whether every shard of the placement is held, confirmed, by its placed holder.
pub fn satisfied(blob: &BlobRecord, holders: &Holders) -> bool {
    !blob.placement.is_empty()
        && blob.placement.len() as u64 == blob.shard_count()
        && blob.placement.iter().zip(0u32..).all(|(p, shard)| {
            holders
                .iter()
                .any(|(s, h, r)| *s == shard && h == p && r.confirmed)
        })
}

/// The layout recorded for a sharded blob.
pub fn layout_of(blob: &BlobRecord) -> Result<Layout, NodeError> {
    Layout::new(
        blob.size,
        blob.data_shards,
        blob.parity_shards,
        blob.stripe_size,
    )
    .map_err(|e| NodeError::Blob(format!("blob layout: {e}")))
}

/// What a reader needs of a sharded blob.
pub fn manifest_of(hash: &[u8; 32], blob: &BlobRecord) -> Result<Manifest, NodeError> {
    Ok(Manifest {
        hash: *hash,
        layout: layout_of(blob)?,
        stripe_hashes: blob
            .stripe_hashes
            .iter()
            .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .collect(),
    })
}

/// The replication worker: a pass every [`REPLICATE_EVERY`], and a full re-check of
/// placements whenever the placeable voters change.
pub(super) async fn replicator(node: Node) {
    let mut checked: Option<Vec<Vec<u8>>> = None;
    // When this node last became the leader (its clock): nobody is gone for longer than that.
    let mut leader_since: Option<u64> = None;
    let mut gone_checked: Option<std::time::Instant> = None;
    let mut metrics = node.raft().metrics();
    loop {
        // Woken by anything raft applies (a new blob, a placement, a confirmation), or by the
        // interval; a short pause lets a burst of entries land first.
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(REPLICATE_EVERY) => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let leader = node.is_leader();
        let mut placeable = node.voter_peers();
        if leader {
            let since = *leader_since.get_or_insert_with(super::now_ms);
            // The peer table is read at most once per GONE_CHECK_EVERY, not on every wake.
            if gone_checked.is_none_or(|t| t.elapsed() >= GONE_CHECK_EVERY) {
                node.note_gone(node.gone_voters(&placeable, since), &placeable);
                gone_checked = Some(std::time::Instant::now());
            }
            let gone = node.inner.gone.lock();
            placeable.retain(|p| !gone.iter().any(|(g, _)| g == p));
        } else {
            (leader_since, gone_checked) = (None, None);
            node.inner.gone.lock().clear();
        }
        // The leader re-checks every placement when the placeable voters change (or it just
        // took over).
        let now = leader.then(|| placeable.clone());
        if now.is_some() && now != checked && node.ready().is_ok() {
            match node.replace_departed(&placeable).await {
                Ok(_) => checked = now,
                Err(e) => tracing::warn!(error = %e, "re-placing shards after a membership change"),
            }
        } else if now.is_none() {
            checked = None;
        }
        if let Err(e) = node.replicate_once(&placeable).await {
            tracing::warn!(error = %e, "replication pass");
        }
    }
}

/// A PeerId's text form (its bytes in hex if they do not parse).
fn peer_text(p: &[u8]) -> String {
    PeerId::from_bytes(p).map_or_else(|_| crate::hex::encode(p), |p| p.to_string())
}
