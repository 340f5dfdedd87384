//! Pushing shards to their placed holders over `/hearth/shard/1` (kind `PUSH`,
//! [`crate::replication::wire::PushShard`]): the writer's side ([`Node::push_placed`]) and the
//! holder's ([`Node::receive_push`], state in [`Pushes`]).
//!
//! The writer of a blob (its `accepted_by`) holds every shard when the blob is accepted. Once a
//! placement naming another member for one of them is applied here, it pushes that shard once
//! (per blob, shard, holder and placement epoch), in pieces of at most `MAX_FETCH` bytes: the
//! first alone (it opens the push), then [`PUSH_AHEAD`] in flight; the holder keeps pieces
//! that overtake each other and writes them in order. The holder takes a push only for a placement
//! naming it (it first waits, at most [`APPLY_WAIT`], to have applied as far as the writer
//! had), writes the pieces to a temporary file, and at the last one checks the whole shard's
//! hash and size against the manifest, fsyncs it (file and directories), renames it into place
//! and proposes `ReplicaConfirmed` — what its own pull would have done.
//!
//! The pull ([`Node::hold`](super::replicator)) stays the way a shard is sure to arrive: a push
//! is an optimisation that can fail at any point and leaves nothing behind (a half-written
//! temporary file is removed; the start-up sweep removes one a crash left). A holder leaves a
//! shard to a running push (heard from within [`PUSH_IDLE`]) and, for [`PULL_GRACE`] after it
//! first sees a placement, to the push that is on its way; a push finding a pull of the same
//! shard running is answered `BUSY`. Only the writer pushes, so two members never push the same
//! shard.
//!
//! What it is **not**: a replacement for the pull's sources — a shard whose writer no longer
//! holds it is fetched from another confirmed holder or rebuilt, by the pull.

use super::Node;
use crate::blobs::ShardReceiver;
use crate::metrics::SHARD_PUSHES;
use crate::replication::wire::{self, kind, push_status, PushAnswer, PushShard, MAX_FETCH};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hearth_projections::{BlobRecord, HolderRecord};
use libp2p::PeerId;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// A push not heard from for this long is abandoned: a new push or the holder's pull may take
/// the shard.
pub const PUSH_IDLE: Duration = Duration::from_secs(30);
/// How long a holder waits to have applied as far as the pushing writer had.
pub const APPLY_WAIT: Duration = Duration::from_secs(3);
/// How long a holder leaves a newly seen placement to the writer's push before pulling.
pub const PULL_GRACE: Duration = Duration::from_secs(2);
/// Pieces a writer sends ahead of the answers (after the first, which opens the push): the
/// holder keeps ones that overtake each other and writes them in order. Memory: this many
/// pieces of `MAX_FETCH` per push, on each side.
pub const PUSH_AHEAD: usize = 4;

/// `(blob, shard)`.
type ShardKey = ([u8; 32], u32);

/// One shard being received by push.
struct Incoming {
    from: PeerId,
    /// The next offset expected.
    next: u64,
    size: u64,
    expected_hash: Vec<u8>,
    /// `None` while pieces are being written (by the task that took it).
    receiver: Option<ShardReceiver>,
    /// Pieces that arrived ahead of `next`, by offset (at most [`PUSH_AHEAD`] pieces ahead).
    pending: BTreeMap<u64, Vec<u8>>,
    /// `next`, for the requests whose pieces wait their turn: each is answered once its piece
    /// is written, so the writer's window moves as the file grows.
    progress: tokio::sync::watch::Sender<u64>,
    started: Instant,
    touched: Instant,
}

/// A holder's pushes in progress, the shards its pull is fetching, and when it first saw each
/// placement; and a writer's pushes already tried.
#[derive(Default)]
pub struct Pushes {
    incoming: Mutex<HashMap<ShardKey, Incoming>>,
    pulling: Mutex<HashSet<ShardKey>>,
    /// `(blob, shard)` → the placement epoch naming this node, and when it first saw it.
    seen: Mutex<HashMap<ShardKey, (u64, Instant)>>,
    /// `(blob, shard, holder, epoch)` the writer has pushed (or is pushing).
    pushed: Mutex<HashSet<(ShardKey, Vec<u8>, u64)>>,
}

/// Removes its shard from the pulling set when dropped.
pub struct PullGuard<'a> {
    pushes: &'a Pushes,
    key: ShardKey,
}

impl Drop for PullGuard<'_> {
    fn drop(&mut self) {
        self.pushes.pulling.lock().remove(&self.key);
    }
}

impl Pushes {
    /// Whether the pull may fetch shard `shard` of `hash` (placement `epoch`) now: no push of
    /// it is running and the grace after first seeing the placement is over. Then it is marked
    /// as being pulled until the guard drops.
    pub fn begin_pull(&self, hash: [u8; 32], shard: u32, epoch: u64) -> Option<PullGuard<'_>> {
        let key = (hash, shard);
        let first_seen = {
            let mut seen = self.seen.lock();
            let entry = seen.entry(key).or_insert((epoch, Instant::now()));
            if entry.0 != epoch {
                *entry = (epoch, Instant::now());
            }
            entry.1
        };
        if first_seen.elapsed() < PULL_GRACE {
            return None;
        }
        {
            let mut incoming = self.incoming.lock();
            match incoming.get(&key) {
                Some(p) if p.touched.elapsed() < PUSH_IDLE => return None,
                Some(_) => {
                    incoming.remove(&key);
                }
                None => {}
            }
            if !self.pulling.lock().insert(key) {
                return None;
            }
        }
        Some(PullGuard { pushes: self, key })
    }

    /// Forgets when this node first saw itself placed as holder of a shard it now holds
    /// (confirmed), so the map stays as small as the work list.
    pub fn settled(&self, hash: &[u8; 32], shard: u32) {
        self.seen.lock().remove(&(*hash, shard));
    }
}

fn answer(status: u32, detail: impl Into<String>) -> PushAnswer {
    PushAnswer {
        status,
        detail: detail.into(),
    }
}

fn outcome_label(status: u32) -> &'static str {
    match status {
        push_status::DONE => "done",
        push_status::HELD => "held",
        push_status::NOT_PLACED => "not_placed",
        push_status::BUSY => "busy",
        push_status::OUT_OF_ORDER => "out_of_order",
        push_status::TAKEN => "unfinished",
        _ => "failed",
    }
}

impl Node {
    /// Answers a `PUSH` request body from `from`.
    pub(crate) async fn receive_push(&self, from: PeerId, body: &[u8]) -> Result<Vec<u8>, String> {
        let req: PushShard = wire::decode(body).map_err(|e| e.to_string())?;
        Ok(wire::encode(&self.take_push(from, req).await))
    }

    /// This node's record as placed holder of `shard`, or the answer refusing the push.
    fn placed_here(
        &self,
        hash: &[u8; 32],
        shard: u32,
        epoch: u64,
    ) -> Result<(BlobRecord, HolderRecord), PushAnswer> {
        let read = |e: super::NodeError| answer(push_status::FAILED, e.to_string());
        let blob = self
            .blob(hash)
            .map_err(read)?
            .filter(|b| !b.deleted && !b.is_inline())
            .ok_or_else(|| answer(push_status::NOT_PLACED, "no such sharded blob here"))?;
        let me = self.peer_id().to_bytes();
        let record = self
            .blob_holders(hash)
            .map_err(read)?
            .into_iter()
            .find(|(s, h, _)| *s == shard && *h == me)
            .map(|(_, _, r)| r)
            .ok_or_else(|| answer(push_status::NOT_PLACED, "no placement names this node"))?;
        if record.confirmed {
            return Err(answer(push_status::HELD, "already confirmed here"));
        }
        if record.placement_epoch != blob.placement_epoch || blob.placement_epoch != epoch {
            return Err(answer(
                push_status::NOT_PLACED,
                format!(
                    "placement epoch {} here, {epoch} pushed",
                    blob.placement_epoch
                ),
            ));
        }
        Ok((blob, record))
    }

    async fn take_push(&self, from: PeerId, req: PushShard) -> PushAnswer {
        let Ok(hash) = <[u8; 32]>::try_from(req.blob_hash.as_slice()) else {
            return answer(push_status::FAILED, "a blob hash has 32 bytes");
        };
        let shard = req.shard_index;
        let key = (hash, shard);
        let len = req.data.len() as u64;
        if len > u64::from(MAX_FETCH) || req.offset.saturating_add(len) > req.shard_size {
            return answer(push_status::OUT_OF_ORDER, "a piece past the shard's end");
        }
        let pushes = &self.inner.pushes;
        if req.offset == 0 {
            if self.applied_index() < req.applied_index {
                self.wait_applied(req.applied_index, APPLY_WAIT).await;
            }
            let (blob, record) = match self.placed_here(&hash, shard, req.placement_epoch) {
                Ok(placed) => placed,
                Err(refused) => return refused,
            };
            if record.shard_size != req.shard_size {
                return answer(
                    push_status::FAILED,
                    format!(
                        "shard size {} placed, {} pushed",
                        record.shard_size, req.shard_size
                    ),
                );
            }
            let receiver = match self.shards().receiver(hash, shard) {
                Ok(r) => r,
                Err(e) => return answer(push_status::FAILED, e.to_string()),
            };
            let mut incoming = pushes.incoming.lock();
            if pushes.pulling.lock().contains(&key) {
                return answer(push_status::BUSY, "this node is fetching it");
            }
            if incoming
                .get(&key)
                .is_some_and(|p| p.from != from && p.touched.elapsed() < PUSH_IDLE)
            {
                return answer(push_status::BUSY, "another push of it is running");
            }
            let now = Instant::now();
            incoming.insert(
                key,
                Incoming {
                    from,
                    next: 0,
                    size: record.shard_size,
                    expected_hash: blob.shard_hash(shard).to_vec(),
                    receiver: Some(receiver),
                    pending: BTreeMap::new(),
                    progress: tokio::sync::watch::Sender::new(0),
                    started: now,
                    touched: now,
                },
            );
        }
        // Keep the piece; whoever finds the file free writes the pieces in order from `next`,
        // one at a time, and a request whose piece waits is answered once it is written.
        let offset = req.offset;
        let turn = {
            let mut incoming = pushes.incoming.lock();
            let Some(p) = incoming.get_mut(&key) else {
                return answer(
                    push_status::OUT_OF_ORDER,
                    "no push of it is open: start at 0",
                );
            };
            if p.from != from || p.size != req.shard_size {
                return answer(push_status::OUT_OF_ORDER, "another push, or another size");
            }
            let ahead = (PUSH_AHEAD as u64 + 1) * u64::from(MAX_FETCH);
            if offset < p.next
                || p.pending.contains_key(&offset)
                || offset >= p.next.saturating_add(ahead)
            {
                incoming.remove(&key);
                return answer(push_status::OUT_OF_ORDER, "not a piece expected");
            }
            p.pending.insert(offset, req.data);
            p.touched = Instant::now();
            match p.receiver.take() {
                Some(r) if p.pending.contains_key(&p.next) => Ok((r, p.size)),
                other => {
                    p.receiver = other;
                    Err(p.progress.subscribe())
                }
            }
        };
        let (mut receiver, size) = match turn {
            Ok(turn) => turn,
            Err(mut written) => {
                // Another request writes; answer once this piece is written.
                let done =
                    tokio::time::timeout(PUSH_IDLE, written.wait_for(|next| *next > offset)).await;
                return match done {
                    Ok(Ok(_)) => answer(push_status::TAKEN, ""),
                    _ => answer(push_status::FAILED, "the push was abandoned"),
                };
            }
        };
        loop {
            let piece = {
                let mut incoming = pushes.incoming.lock();
                let Some(p) = incoming.get_mut(&key) else {
                    return answer(push_status::OUT_OF_ORDER, "the push was abandoned");
                };
                match p.pending.remove(&p.next) {
                    Some(piece) => piece,
                    None => {
                        p.receiver = Some(receiver);
                        // This request's piece is written (it was the first of the run).
                        return answer(push_status::TAKEN, "");
                    }
                }
            };
            let n = piece.len() as u64;
            let written =
                tokio::task::spawn_blocking(move || receiver.write(&piece).map(|()| receiver))
                    .await;
            let written = match written {
                Ok(w) => w.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            receiver = match written {
                Ok(r) => r,
                Err(why) => {
                    pushes.incoming.lock().remove(&key);
                    return answer(push_status::FAILED, why);
                }
            };
            let mut incoming = pushes.incoming.lock();
            let Some(p) = incoming.get_mut(&key) else {
                return answer(push_status::OUT_OF_ORDER, "the push was abandoned");
            };
            p.next += n;
            p.touched = Instant::now();
            p.progress.send_replace(p.next);
            if p.next >= size {
                break;
            }
        }
        let Some(p) = pushes.incoming.lock().remove(&key) else {
            return answer(push_status::OUT_OF_ORDER, "the push was abandoned");
        };
        let expected = p.expected_hash.clone();
        let finished = tokio::task::spawn_blocking(move || receiver.finish(&expected, size)).await;
        match finished {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let bad = matches!(e, crate::blobs::ReceiveError::Mismatch { .. });
                self.record_transfer(&from.to_bytes(), false, 0, 0, bad);
                return answer(push_status::FAILED, e.to_string());
            }
            Err(e) => return answer(push_status::FAILED, e.to_string()),
        }
        let micros = p.started.elapsed().as_micros() as u64;
        self.record_transfer(&from.to_bytes(), true, size, micros, false);
        if let Err(e) = self
            .confirm_replica(&hash, shard, p.expected_hash, size)
            .await
        {
            // The copy is durable; the pull re-hashes it and confirms it.
            return answer(push_status::FAILED, format!("confirming it: {e}"));
        }
        pushes.settled(&hash, shard);
        answer(push_status::DONE, "")
    }

    /// On the writer of `blob`: starts a push of each shard it holds that the current
    /// placement gives another member, once per holder and epoch (see the module docs).
    pub(super) fn push_placed(
        &self,
        hash: &[u8; 32],
        blob: &BlobRecord,
        holders: &[(u32, Vec<u8>, HolderRecord)],
    ) {
        let me = self.peer_id().to_bytes();
        if blob.accepted_by != me || blob.placement.is_empty() {
            return;
        }
        for (shard, holder, record) in holders {
            if *holder != me && record.confirmed {
                // Arrived (pushed or pulled): forget the attempt.
                self.inner.pushes.pushed.lock().remove(&(
                    (*hash, *shard),
                    holder.clone(),
                    record.placement_epoch,
                ));
                continue;
            }
            let mine = holders
                .iter()
                .any(|(s, h, r)| s == shard && *h == me && r.confirmed);
            if *holder == me
                || !mine
                || record.confirmed
                || record.placement_epoch != blob.placement_epoch
            {
                continue;
            }
            let Ok(peer) = PeerId::from_bytes(holder) else {
                continue;
            };
            let attempt = ((*hash, *shard), holder.clone(), blob.placement_epoch);
            if !self.inner.pushes.pushed.lock().insert(attempt) {
                continue;
            }
            let node = self.clone();
            let (hash, shard, epoch, size) =
                (*hash, *shard, blob.placement_epoch, record.shard_size);
            tokio::spawn(async move {
                let outcome = node.push_shard(peer, hash, shard, epoch, size).await;
                let label = match &outcome {
                    Ok(status) => outcome_label(*status),
                    Err(_) => "error",
                };
                metrics::counter!(SHARD_PUSHES, "outcome" => label).increment(1);
                match outcome {
                    Ok(push_status::DONE) => {
                        tracing::debug!(%peer, shard, bytes = size, "pushed a shard")
                    }
                    Ok(status) => {
                        tracing::debug!(%peer, shard, outcome = label, status, "shard push ended")
                    }
                    Err(e) => tracing::debug!(%peer, shard, error = %e, "shard push failed"),
                }
            });
        }
    }

    /// Pushes shard `shard` of blob `hash` (placement `epoch`, `size` bytes) from this node's
    /// store to `peer`: the first piece alone (it opens the push), then the rest with
    /// [`PUSH_AHEAD`] in flight; the status that ended it.
    async fn push_shard(
        &self,
        peer: PeerId,
        hash: [u8; 32],
        shard: u32,
        epoch: u64,
        size: u64,
    ) -> Result<u32, String> {
        let applied_index = self.applied_index();
        let send = |offset: u64, n: u32| async move {
            let store = self.shards().clone();
            let piece = tokio::task::spawn_blocking(move || {
                store.read_at(&hash, shard, offset, n as usize)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            let data = match piece {
                Some((data, file_size)) if file_size == size && data.len() == n as usize => data,
                Some(_) => return Err("the local copy is not the placed size".to_string()),
                None => return Err("no local copy".to_string()),
            };
            let req = PushShard {
                blob_hash: hash.to_vec(),
                shard_index: shard,
                placement_epoch: epoch,
                applied_index,
                offset,
                shard_size: size,
                data,
            };
            let resp = self
                .net()
                .request_on(
                    crate::net::Protocol::Shard,
                    peer,
                    crate::net::RaftRequest {
                        cluster_id: self.cluster_id(),
                        kind: kind::PUSH,
                        body: wire::encode(&req),
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            let got: PushAnswer = wire::decode(&resp.body).map_err(|e| e.to_string())?;
            Ok::<u32, String>(got.status)
        };
        let first = (size.min(u64::from(MAX_FETCH))) as u32;
        let status = send(0, first).await?;
        if status != push_status::TAKEN || u64::from(first) >= size {
            return Ok(status);
        }
        let mut rest =
            futures::stream::iter(crate::replication::transfer::pieces(u64::from(first), size))
                .map(|(at, n)| send(at, n))
                .buffered(PUSH_AHEAD);
        let mut last = push_status::TAKEN;
        while let Some(status) = rest.try_next().await? {
            match status {
                push_status::TAKEN => {}
                push_status::DONE => last = push_status::DONE,
                other => return Ok(other),
            }
        }
        Ok(last)
    }

    /// Proposes `ReplicaConfirmed` for this node's copy of shard `shard` of `hash`.
    pub(super) async fn confirm_replica(
        &self,
        hash: &[u8; 32],
        shard: u32,
        shard_hash: Vec<u8>,
        shard_size: u64,
    ) -> Result<(), super::ProposeError> {
        use hearth_proto::v1::envelope::Event;
        use hearth_proto::v1::{Envelope, ReplicaConfirmed};
        use prost::Message as _;
        let env = Envelope {
            schema_version: hearth_proto::SCHEMA_VERSION,
            event: Some(Event::ReplicaConfirmed(ReplicaConfirmed {
                blob_hash: Bytes::copy_from_slice(hash),
                shard_index: shard,
                holder: Bytes::from(self.peer_id().to_bytes()),
                shard_hash: shard_hash.into(),
                shard_size,
            })),
            ..Envelope::default()
        };
        self.propose(Bytes::from(env.encode_to_vec()))
            .await
            .map(|_| ())
    }
}
