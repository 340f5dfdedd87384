//! [`read_range`]: verified bytes of a blob from this node's stripe cache and shards.
//!
//! For every stripe the range touches: take it from the [`StripeCache`] when it is there;
//! otherwise read the `k` data chunks (the healthy path copies them
//! after checking the stripe's blake3), and when one is missing or the hash does not match,
//! read the parity chunks too
//! and let [`StripeCodec::decode`] rebuild from any `k` that verify. Every chunk found missing
//! or rotten is reported with its correct bytes; [`apply_repairs`] rewrites them in place (each
//! repaired file fsynced once), off the read's path, so the next read is healthy.
//! Only verified bytes are returned; with fewer than `k` usable chunks the answer is
//! [`StripeError::TooFewChunks`] or [`StripeError::NoVerifiedChoice`] ("unavailable: k of n
//! shards needed, j found"), never wrong bytes.

use super::cache::StripeCache;
use super::layout::Layout;
use super::shard_store::{ShardError, ShardStore};
use super::stripe::StripeCodec;
use std::ops::Range;

/// What a reader needs to know about a blob: its hash, layout and the hashes it is checked
/// against (from the blob index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// blake3 of the blob.
    pub hash: [u8; 32],
    /// Its layout.
    pub layout: Layout,
    /// blake3 of every stripe, in order.
    pub stripe_hashes: Vec<[u8; 32]>,
}

/// A chunk a read found missing or rotten, with its correct bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Shard index.
    pub shard: u32,
    /// Stripe index.
    pub stripe: u64,
    /// Where the chunk starts in the shard file.
    pub offset: u64,
    /// The chunk's correct bytes.
    pub bytes: Vec<u8>,
}

/// What a read found besides the bytes it returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Chunks that were missing or rotten, to be rewritten with [`apply_repairs`].
    pub repairs: Vec<Repair>,
}

impl ReadReport {
    /// (shard, stripe) of every chunk to repair.
    pub fn repaired(&self) -> Vec<(u32, u64)> {
        self.repairs.iter().map(|r| (r.shard, r.stripe)).collect()
    }
}

/// Rewrites the chunks a read found missing or rotten, then fsyncs each repaired shard file
/// once.
pub fn apply_repairs(
    store: &ShardStore,
    manifest: &Manifest,
    repairs: &[Repair],
) -> Result<(), ShardError> {
    let shard_size = manifest.layout.shard_size();
    let mut touched = std::collections::BTreeSet::new();
    for r in repairs {
        store.repair_chunk(&manifest.hash, r.shard, shard_size, r.offset, &r.bytes)?;
        touched.insert(r.shard);
    }
    for i in touched {
        store.sync_shard(&manifest.hash, i)?;
    }
    Ok(())
}

/// Verified bytes `range` (clamped to the blob) of `manifest`'s blob from `cache` or `store`;
/// every stripe read from the shards is put in `cache`.
pub fn read_range(
    store: &ShardStore,
    cache: &StripeCache,
    manifest: &Manifest,
    range: Range<u64>,
) -> Result<(Vec<u8>, ReadReport), ShardError> {
    let l = manifest.layout;
    let codec = StripeCodec::new(l.data_shards(), l.parity_shards())?;
    let end = range.end.min(l.size());
    let mut out = Vec::with_capacity(end.saturating_sub(range.start) as usize);
    let mut report = ReadReport::default();
    for s in l.stripes_for(range.start..end) {
        let Some(hash) = manifest.stripe_hashes.get(s as usize) else {
            return Err(ShardError::Stripe(super::stripe::StripeError::Shape(
                format!(
                    "the manifest has {} stripe hashes, stripe {s} needs one",
                    manifest.stripe_hashes.len()
                ),
            )));
        };
        let stripe = l.stripe_range(s);
        let from = range.start.max(stripe.start) - stripe.start;
        let to = end.min(stripe.end) - stripe.start;
        if let Some(data) = cache.get(&manifest.hash, s) {
            out.extend_from_slice(&data[from as usize..to as usize]);
            continue;
        }
        let (offset, len) = (l.shard_offset(s), l.chunk_len(s) as usize);
        let read = |i: u32| store.read_chunk(&manifest.hash, i, offset, len);
        let mut chunks: Vec<Option<Vec<u8>>> = Vec::with_capacity(codec.total());
        for i in 0..l.data_shards() {
            chunks.push(read(i)?);
        }
        let stripe_len = (stripe.end - stripe.start) as usize;
        let mut data = Vec::new();
        if chunks.iter().all(Option::is_some) {
            data.reserve(stripe_len);
            for c in chunks.iter().flatten() {
                data.extend_from_slice(c);
            }
            data.truncate(stripe_len);
        }
        let healthy = data.len() == stripe_len && blake3::hash(&data).as_bytes() == hash;
        if !healthy {
            for i in l.data_shards()..l.shard_count() {
                chunks.push(read(i)?);
            }
            let decoded = codec.decode_owned(chunks, stripe_len, hash)?;
            for (i, bytes) in decoded.repaired {
                report.repairs.push(Repair {
                    shard: i as u32,
                    stripe: s,
                    offset,
                    bytes,
                });
            }
            data = decoded.data;
        }
        out.extend_from_slice(&data[from as usize..to as usize]);
        cache.insert(&manifest.hash, s, bytes::Bytes::from(data));
    }
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::shard_store::Written;
    use std::fs;
    use std::os::unix::fs::FileExt;

    fn setup(data: &[u8], k: u32, m: u32, stripe: u64) -> (tempfile::TempDir, ShardStore, Written) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ShardStore::open(dir.path()).expect("open");
        let layout = Layout::new(data.len() as u64, k, m, stripe).expect("layout");
        let mut w = store.writer(layout).expect("writer");
        w.write(data).expect("write");
        let written = w.finish().expect("finish");
        (dir, store, written)
    }

    fn manifest(w: &Written) -> Manifest {
        Manifest {
            hash: w.hash,
            layout: w.layout,
            stripe_hashes: w.stripe_hashes.clone(),
        }
    }

    fn blob(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(31) % 251) as u8)
            .collect()
    }

    #[test]
    fn ranges_at_the_edges_return_exactly_those_bytes() {
        let data = blob(10_000);
        let (_d, store, w) = setup(&data, 4, 3, 1_000);
        let m = manifest(&w);
        for (a, b) in [
            (0, 10_000),
            (0, 1),
            (9_999, 10_000),
            (999, 1_001),
            (1_000, 2_000),
            (5, 5),
            (9_000, 20_000),
            (12_000, 13_000),
        ] {
            let (got, report) =
                read_range(&store, &StripeCache::disabled(), &m, a..b).expect("read");
            let (a, b) = (a.min(10_000) as usize, b.min(10_000) as usize);
            assert_eq!(got, &data[a..b.max(a)], "{a}..{b}");
            assert!(report.repairs.is_empty());
        }
    }

    #[test]
    fn lost_and_rotten_shards_are_rebuilt_repaired_and_never_served() {
        let data = blob(10_000);
        let (_d, store, w) = setup(&data, 4, 3, 1_000);
        let m = manifest(&w);
        // Lose any three shard files: the whole blob still reads, and the files come back.
        for i in [1, 4, 6] {
            fs::remove_file(store.shard_path(&w.hash, i)).expect("rm");
        }
        let (got, report) =
            read_range(&store, &StripeCache::disabled(), &m, 0..10_000).expect("read");
        assert_eq!(got, data);
        assert!(report.repaired().iter().any(|(i, _)| *i == 1));
        apply_repairs(&store, &m, &report.repairs).expect("repair");
        let (_, again) = read_range(&store, &StripeCache::disabled(), &m, 0..10_000).expect("read");
        assert!(again.repairs.is_empty(), "data shards repaired: {again:?}");
        let bytes = fs::read(store.shard_path(&w.hash, 1)).expect("shard");
        assert_eq!(*blake3::hash(&bytes).as_bytes(), w.shard_hashes[1]);

        // Flip a byte in a data shard: a Range read over it is still right, and repaired.
        let f = fs::OpenOptions::new()
            .write(true)
            .open(store.shard_path(&w.hash, 2))
            .expect("open");
        f.write_all_at(&[0xAA], 260).expect("flip");
        let (got, report) =
            read_range(&store, &StripeCache::disabled(), &m, 1_500..1_600).expect("read");
        assert_eq!(got, &data[1_500..1_600]);
        assert_eq!(report.repaired(), [(2, 1)]);
        apply_repairs(&store, &m, &report.repairs).expect("repair");
        let (_, again) =
            read_range(&store, &StripeCache::disabled(), &m, 1_500..1_600).expect("read");
        assert!(again.repairs.is_empty());

        // Four data shards gone and parity too thin: unavailable, never wrong bytes.
        for i in 0..4 {
            fs::remove_file(store.shard_path(&w.hash, i)).expect("rm");
        }
        let e = read_range(&store, &StripeCache::disabled(), &m, 0..10).expect_err("unavailable");
        assert!(
            e.to_string().contains("4 of 7 shards needed, 3 found"),
            "{e}"
        );
    }

    #[test]
    fn cached_stripes_are_served_first() {
        let data = blob(10_000);
        let (_d, store, w) = setup(&data, 4, 3, 1_000);
        let m = manifest(&w);
        let cache = StripeCache::new(1 << 20);
        let (got, _) = read_range(&store, &cache, &m, 1_500..3_500).expect("read");
        assert_eq!(got, &data[1_500..3_500]);
        // Stripes 1..=3 are cached: with every shard gone they still read, the others do not.
        for i in 0..7 {
            fs::remove_file(store.shard_path(&w.hash, i)).expect("rm");
        }
        let (got, report) = read_range(&store, &cache, &m, 1_000..4_000).expect("cached");
        assert_eq!(got, &data[1_000..4_000]);
        assert!(report.repairs.is_empty());
        assert!(read_range(&store, &cache, &m, 0..1_000).is_err());
        cache.remove_blob(&w.hash, m.stripe_hashes.len() as u64);
        assert!(read_range(&store, &cache, &m, 1_000..2_000).is_err());
    }
}
