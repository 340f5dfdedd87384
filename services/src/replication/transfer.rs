//! Moving shards between members over `/hearth/shard/1`: the holder's side ([`serve`]) and the
//! fetching side ([`fetch_range`], [`fetch_shard`]). Nothing fetched is trusted: a whole shard
//! is checked against the manifest's shard hash and size before it is kept
//! ([`crate::blobs::ShardReceiver::finish`]); ranges are checked stripe by stripe by the reader.

use super::wire::{self, kind, FetchShard, ShardData, MAX_FETCH};
use crate::blobs::{ReceiveError, ShardError, ShardStore};
use crate::net::{NetError, NetHandle, Protocol, RaftRequest};
use futures::{StreamExt as _, TryStreamExt as _};
use libp2p::PeerId;
use std::time::Instant;

/// Pieces of one shard (or span) requested ahead of the one being written: the holder reads
/// and the network carries the next pieces while this node hashes and writes the current one.
/// Memory: this many × [`MAX_FETCH`] per transfer.
pub const FETCH_AHEAD: usize = 4;

/// `[start, end)` cut into pieces of at most [`MAX_FETCH`] bytes: `(offset, len)`.
pub(crate) fn pieces(start: u64, end: u64) -> impl Iterator<Item = (u64, u32)> {
    let step = u64::from(MAX_FETCH);
    (start..end)
        .step_by(step as usize)
        .map(move |at| (at, (end - at).min(step) as u32))
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The network failed or the peer refused.
    #[error("shard request to {peer}: {source}")]
    Net {
        /// The peer asked.
        peer: PeerId,
        /// What went wrong.
        source: NetError,
    },
    /// The answer did not decode.
    #[error("shard answer from {peer}: {source}")]
    Wire {
        /// The peer asked.
        peer: PeerId,
        /// What went wrong.
        source: wire::WireError,
    },
    /// The peer does not have the shard.
    #[error("{peer} does not have shard {shard}")]
    NotFound {
        /// The peer asked.
        peer: PeerId,
        /// The shard.
        shard: u32,
    },
    /// The peer's shard is shorter than the manifest says.
    #[error("{peer} sent {got} bytes of shard {shard} at offset {offset}, expected {expected}")]
    Short {
        /// The peer asked.
        peer: PeerId,
        /// The shard.
        shard: u32,
        /// Where.
        offset: u64,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The bytes are not the shard (or storing them failed).
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    /// The local shard store failed.
    #[error(transparent)]
    Store(#[from] ShardError),
    /// A blocking task failed.
    #[error("shard transfer task failed: {0}")]
    Task(String),
}

impl TransferError {
    /// Whether the peer is to blame (it served wrong bytes or claims a shard it lacks), as
    /// opposed to the network or this node.
    pub fn peer_at_fault(&self) -> bool {
        matches!(
            self,
            TransferError::Receive(ReceiveError::Mismatch { .. })
                | TransferError::Short { .. }
                | TransferError::NotFound { .. }
        )
    }
}

/// Answers a `/hearth/shard/1` request from this node's shard files.
pub async fn serve(store: &ShardStore, req_kind: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    if req_kind != kind::FETCH {
        return Err(format!("unknown shard request kind {req_kind}"));
    }
    let req: FetchShard = wire::decode(body).map_err(|e| e.to_string())?;
    let hash: [u8; 32] = req
        .blob_hash
        .as_slice()
        .try_into()
        .map_err(|_| format!("blob hash of {} bytes", req.blob_hash.len()))?;
    if req.len > MAX_FETCH {
        return Err(format!("fetch of {} bytes exceeds {MAX_FETCH}", req.len));
    }
    let store = store.clone();
    let read = tokio::task::spawn_blocking(move || {
        store.read_at(&hash, req.shard_index, req.offset, req.len as usize)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let answer = match read {
        Some((data, shard_size)) => ShardData {
            found: true,
            data,
            shard_size,
        },
        None => ShardData::default(),
    };
    Ok(wire::encode(&answer))
}

/// `len` bytes (at most [`MAX_FETCH`]) at `offset` of shard `shard` of blob `hash` from
/// `peer`, unverified: exactly `len` bytes or an error.
pub async fn fetch_range(
    net: &NetHandle,
    cluster_id: [u8; 16],
    peer: PeerId,
    hash: &[u8; 32],
    shard: u32,
    offset: u64,
    len: u32,
) -> Result<Vec<u8>, TransferError> {
    let req = FetchShard {
        blob_hash: hash.to_vec(),
        shard_index: shard,
        offset,
        len: len.min(MAX_FETCH),
    };
    let resp = net
        .request_on(
            Protocol::Shard,
            peer,
            RaftRequest {
                cluster_id,
                kind: kind::FETCH,
                body: wire::encode(&req),
            },
        )
        .await
        .map_err(|source| TransferError::Net { peer, source })?;
    let data: ShardData =
        wire::decode(&resp.body).map_err(|source| TransferError::Wire { peer, source })?;
    if !data.found {
        return Err(TransferError::NotFound { peer, shard });
    }
    if data.data.len() != req.len as usize {
        return Err(TransferError::Short {
            peer,
            shard,
            offset,
            got: data.data.len(),
            expected: req.len as usize,
        });
    }
    Ok(data.data)
}

/// Bytes `span` of shard `shard` of blob `hash` from `peer`, fetched in [`MAX_FETCH`] pieces
/// ([`FETCH_AHEAD`] in flight), unverified: exactly those bytes or an error.
pub async fn fetch_span(
    net: &NetHandle,
    cluster_id: [u8; 16],
    peer: PeerId,
    hash: &[u8; 32],
    shard: u32,
    span: std::ops::Range<u64>,
) -> Result<Vec<u8>, TransferError> {
    let mut out = Vec::with_capacity(span.end.saturating_sub(span.start) as usize);
    let mut parts = futures::stream::iter(pieces(span.start, span.end))
        .map(|(at, n)| fetch_range(net, cluster_id, peer, hash, shard, at, n))
        .buffered(FETCH_AHEAD);
    while let Some(part) = parts.try_next().await? {
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// What a whole-shard fetch moved.
#[derive(Debug, Clone, Copy)]
pub struct Fetched {
    /// Bytes received.
    pub bytes: u64,
    /// How long it took, in microseconds.
    pub micros: u64,
}

/// Fetches shard `shard` of blob `hash` from `peer` in [`MAX_FETCH`] pieces ([`FETCH_AHEAD`]
/// requested ahead of the one being written), checks it against
/// `shard_hash` and `shard_size`, and makes it durable in `store` (fsync + rename + directory
/// fsyncs). Nothing is kept when anything fails.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_shard(
    net: &NetHandle,
    cluster_id: [u8; 16],
    peer: PeerId,
    store: &ShardStore,
    hash: [u8; 32],
    shard: u32,
    shard_hash: Vec<u8>,
    shard_size: u64,
) -> Result<Fetched, TransferError> {
    let started = Instant::now();
    let mut receiver = store.receiver(hash, shard)?;
    // Every request is sent when the stream is first polled (the net actor then carries them
    // whether or not this task is polling), so they are in flight while a piece is written.
    let mut parts = futures::stream::iter(pieces(0, shard_size))
        .map(|(at, n)| fetch_range(net, cluster_id, peer, &hash, shard, at, n))
        .buffered(FETCH_AHEAD);
    while let Some(data) = parts.try_next().await? {
        receiver = tokio::task::spawn_blocking(move || receiver.write(&data).map(|()| receiver))
            .await
            .map_err(|e| TransferError::Task(e.to_string()))??;
    }
    tokio::task::spawn_blocking(move || receiver.finish(&shard_hash, shard_size))
        .await
        .map_err(|e| TransferError::Task(e.to_string()))??;
    Ok(Fetched {
        bytes: shard_size,
        micros: started.elapsed().as_micros() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_span_exactly_in_bounded_steps() {
        let step = u64::from(MAX_FETCH);
        assert_eq!(pieces(0, 0).count(), 0);
        assert_eq!(pieces(5, 6).collect::<Vec<_>>(), vec![(5, 1)]);
        for (start, end) in [
            (0, step),
            (0, step + 1),
            (3, 3 * step - 7),
            (step, 2 * step),
        ] {
            let all: Vec<(u64, u32)> = pieces(start, end).collect();
            assert!(all.iter().all(|&(_, n)| n > 0 && u64::from(n) <= step));
            assert_eq!(all.first().map(|p| p.0), Some(start));
            let mut at = start;
            for &(o, n) in &all {
                assert_eq!(o, at);
                at += u64::from(n);
            }
            assert_eq!(at, end);
        }
    }
}
