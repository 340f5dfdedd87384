//! Verified stripes of a blob from wherever its shards are: this node's files first, then the
//! other holders over `/hearth/shard/1`, fetched in parallel. The first `k` shards that
//! rebuild each stripe to its manifest hash win; a shard that does not (missing, short or
//! rotten, local or remote) is passed over for another, and only verified bytes come out.
//!
//! Used by reads on a node that does not hold every shard itself, by the replication worker
//! to rebuild a shard no holder has any more, and by the verifier.

use super::Node;
use crate::blobs::{Manifest, StripeCodec};
use crate::replication::transfer;
use bytes::Bytes;
use hearth_projections::HolderRecord;
use libp2p::PeerId;
use std::ops::Range;

/// Stripes fetched per piece (the unit of parallel fetching and of memory).
pub const STRIPES_PER_PIECE: u64 = 16;

/// Where each shard of one blob can be read from.
pub struct ShardSources {
    node: Node,
    /// Per shard: PeerId bytes of the confirmed holders (this node first when it is one).
    holders: Vec<Vec<Vec<u8>>>,
    me: Vec<u8>,
}

impl ShardSources {
    /// The sources of a blob with `shards` shards from its holder records (confirmed ones).
    pub fn new(node: &Node, shards: u32, records: &[(u32, Vec<u8>, HolderRecord)]) -> Self {
        let me = node.peer_id().to_bytes();
        let mut holders = vec![Vec::new(); shards as usize];
        for (s, h, r) in records {
            if let Some(list) = holders.get_mut(*s as usize) {
                if r.confirmed && !list.contains(h) {
                    if *h == me {
                        list.insert(0, h.clone());
                    } else {
                        list.push(h.clone());
                    }
                }
            }
        }
        // This node first, then the others by reputation (best first).
        for list in &mut holders {
            let mut scored: Vec<(f64, Vec<u8>)> = list
                .drain(..)
                .map(|h| {
                    let s = if h == me {
                        2.0
                    } else {
                        node.peer_score(&h).value
                    };
                    (s, h)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            *list = scored.into_iter().map(|(_, h)| h).collect();
        }
        Self {
            node: node.clone(),
            holders,
            me,
        }
    }

    /// Confirmed holders of each shard.
    pub fn holders(&self) -> &[Vec<Vec<u8>>] {
        &self.holders
    }

    /// `len` bytes at `offset` of shard `shard` from its first holder that has them, and the
    /// peer that served them (`None`: this node's file).
    async fn read_shard(
        &self,
        hash: &[u8; 32],
        shard: u32,
        offset: u64,
        len: u64,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
        let mut last = format!("no holder of shard {shard}");
        for holder in self.holders.get(shard as usize).into_iter().flatten() {
            if *holder == self.me {
                let store = self.node.shards().clone();
                let hash = *hash;
                let read = tokio::task::spawn_blocking(move || {
                    store.read_chunk(&hash, shard, offset, len as usize)
                })
                .await;
                match read {
                    Ok(Ok(Some(bytes))) => return Ok((bytes, None)),
                    Ok(Ok(None)) => last = format!("shard {shard} missing here"),
                    Ok(Err(e)) => last = e.to_string(),
                    Err(e) => last = e.to_string(),
                }
                continue;
            }
            let Ok(peer) = PeerId::from_bytes(holder) else {
                continue;
            };
            let started = std::time::Instant::now();
            let result = transfer::fetch_span(
                self.node.net(),
                self.node.cluster_id(),
                peer,
                hash,
                shard,
                offset..offset + len,
            )
            .await;
            match result {
                Ok(out) => {
                    let micros = started.elapsed().as_micros() as u64;
                    self.node.record_transfer(holder, true, len, micros, false);
                    return Ok((out, Some(holder.clone())));
                }
                Err(e) => {
                    self.node.record_transfer(holder, false, 0, 0, false);
                    last = e.to_string();
                }
            }
        }
        Err(last)
    }

    /// The verified bytes of each stripe in `stripes` (clamped to the blob).
    pub async fn read_stripes(
        &self,
        manifest: &Manifest,
        stripes: Range<u64>,
    ) -> Result<Vec<Bytes>, String> {
        let l = manifest.layout;
        let stripes = stripes.start..stripes.end.min(l.stripe_count());
        if stripes.is_empty() {
            return Ok(Vec::new());
        }
        let (k, n) = (l.data_shards() as usize, l.shard_count() as usize);
        let codec =
            StripeCodec::new(l.data_shards(), l.parity_shards()).map_err(|e| e.to_string())?;
        let start = l.shard_offset(stripes.start);
        let last = stripes.end - 1;
        let end = l.shard_offset(last) + l.chunk_len(last);
        let mut got: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut served_by: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut tried = vec![false; n];
        let mut errors = Vec::new();
        loop {
            let have = got.iter().filter(|g| g.is_some()).count();
            // Fetch enough untried shards (data shards first) to reach k, or one more when k
            // did not rebuild every stripe.
            let want = if have < k { k - have } else { 1 };
            let next: Vec<u32> = (0..n as u32)
                .filter(|&i| !tried[i as usize] && !self.holders[i as usize].is_empty())
                .take(want)
                .collect();
            if next.is_empty() && have < k {
                return Err(format!(
                    "unavailable: {k} of {n} shards needed, {have} found ({})",
                    errors.join("; ")
                ));
            }
            let fetches = next
                .iter()
                .map(|&i| self.read_shard(&manifest.hash, i, start, end - start));
            for (i, r) in next.iter().zip(futures::future::join_all(fetches).await) {
                tried[*i as usize] = true;
                match r {
                    Ok((bytes, peer)) => {
                        got[*i as usize] = Some(bytes);
                        served_by[*i as usize] = peer;
                    }
                    Err(e) => errors.push(e),
                }
            }
            if got.iter().filter(|g| g.is_some()).count() < k {
                continue;
            }
            match decode_all(&codec, manifest, &stripes, start, &got) {
                Ok((out, bad)) => {
                    // A peer whose bytes did not rebuild the stripes served bad data.
                    for i in bad {
                        if let Some(peer) = &served_by[i] {
                            self.node.record_transfer(peer, true, 0, 0, true);
                            tracing::warn!(shard = i, peer = ?PeerId::from_bytes(peer).ok(), "a holder served a bad shard range");
                        }
                    }
                    return Ok(out);
                }
                Err(e) if next.is_empty() => return Err(e),
                Err(e) => errors.push(e),
            }
        }
    }
}

/// Rebuilds every stripe of `stripes` from the fetched shard ranges (which start at shard
/// offset `start`), each checked against its hash; also the shards whose bytes disagreed with
/// a verified stripe.
fn decode_all(
    codec: &StripeCodec,
    manifest: &Manifest,
    stripes: &Range<u64>,
    start: u64,
    got: &[Option<Vec<u8>>],
) -> Result<(Vec<Bytes>, std::collections::BTreeSet<usize>), String> {
    let mut bad = std::collections::BTreeSet::new();
    let l = manifest.layout;
    let mut out = Vec::with_capacity((stripes.end - stripes.start) as usize);
    for s in stripes.clone() {
        let hash = manifest
            .stripe_hashes
            .get(s as usize)
            .ok_or_else(|| format!("no hash for stripe {s}"))?;
        let from = (l.shard_offset(s) - start) as usize;
        let len = l.chunk_len(s) as usize;
        let chunks: Vec<Option<Vec<u8>>> = got
            .iter()
            .map(|g| {
                g.as_ref()
                    .and_then(|b| b.get(from..from + len))
                    .map(<[u8]>::to_vec)
            })
            .collect();
        let range = l.stripe_range(s);
        let decoded = codec
            .decode_owned(chunks, (range.end - range.start) as usize, hash)
            .map_err(|e| e.to_string())?;
        for (i, _) in &decoded.repaired {
            if got.get(*i).is_some_and(Option::is_some) {
                bad.insert(*i);
            }
        }
        out.push(Bytes::from(decoded.data));
    }
    Ok((out, bad))
}

impl Node {
    /// Rebuilds shard `shard` of a blob from its other holders into this node's store,
    /// checked against `expected` and `size`.
    pub(super) async fn rebuild_shard(
        &self,
        manifest: &Manifest,
        records: &[(u32, Vec<u8>, HolderRecord)],
        shard: u32,
        expected: &[u8],
        size: u64,
    ) -> Result<(), String> {
        let l = manifest.layout;
        let sources = ShardSources::new(self, l.shard_count(), records);
        let codec =
            StripeCodec::new(l.data_shards(), l.parity_shards()).map_err(|e| e.to_string())?;
        let mut receiver = self
            .shards()
            .receiver(manifest.hash, shard)
            .map_err(|e| e.to_string())?;
        let mut s = 0;
        while s < l.stripe_count() {
            let piece = s..(s + STRIPES_PER_PIECE).min(l.stripe_count());
            let stripes = sources.read_stripes(manifest, piece.clone()).await?;
            let mut chunks = Vec::new();
            for data in &stripes {
                let mut all = codec.encode(data).map_err(|e| e.to_string())?;
                chunks.push(all.swap_remove(shard as usize));
            }
            receiver = tokio::task::spawn_blocking(move || {
                for c in &chunks {
                    receiver.write(c)?;
                }
                Ok::<_, crate::blobs::ShardError>(receiver)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            s = piece.end;
        }
        let expected = expected.to_vec();
        tokio::task::spawn_blocking(move || receiver.finish(&expected, size))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}
