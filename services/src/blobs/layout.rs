//! [`Layout`]: where every byte of a blob lives in its shards.
//!
//! A blob of `size` bytes is cut into **stripes** of `stripe_size` bytes (the last one may be
//! shorter). Stripe `s` is cut into `k` data chunks of `chunk_len(s) = ceil(len(s) / k)` bytes
//! (the last data chunk zero-padded) and `m` parity chunks of the same length. Shard `i` is the
//! concatenation of chunk `i` of every stripe, so stripe `s` starts at byte
//! `s * full_chunk_len()` of every shard. Each stripe's blake3 hash (of its unpadded bytes) is in
//! the blob's manifest, so any stripe — and any byte range — can be verified on its own before
//! it is served.
//!
//! [`Layout::for_size`] keeps the manifest small: stripes are `k × 256 KiB` until a blob would
//! need more than [`MAX_STRIPES`] of them, then they grow (in 64 KiB steps per chunk) so the
//! stripe hashes never exceed `MAX_STRIPES × 32` bytes in the event.

use std::ops::Range;

/// Bytes of one data chunk in a stripe of the default size.
pub const DEFAULT_CHUNK: u64 = 256 << 10;
/// Most stripes a blob gets from [`Layout::for_size`].
pub const MAX_STRIPES: u64 = 4096;
/// Chunk sizes above the default grow in steps of this many bytes.
const CHUNK_STEP: u64 = 64 << 10;

/// A layout that cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// `k` is 0 or `k + m` exceeds 256.
    #[error("invalid erasure code {k}+{m}: k must be at least 1 and k + m at most 256")]
    Code {
        /// k.
        k: u32,
        /// m.
        m: u32,
    },
    /// The stripe size is 0.
    #[error("the stripe size must be at least 1 byte")]
    StripeSize,
}

/// The geometry of one blob: size, erasure code and stripe size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    size: u64,
    k: u32,
    m: u32,
    stripe_size: u64,
}

impl Layout {
    /// A layout with an explicit stripe size (as recorded in a blob's manifest).
    pub fn new(size: u64, k: u32, m: u32, stripe_size: u64) -> Result<Self, LayoutError> {
        if k == 0 || k.saturating_add(m) > super::policy::MAX_SHARDS {
            return Err(LayoutError::Code { k, m });
        }
        if stripe_size == 0 {
            return Err(LayoutError::StripeSize);
        }
        Ok(Layout {
            size,
            k,
            m,
            stripe_size,
        })
    }

    /// The layout a new blob of `size` bytes gets (see the module docs).
    pub fn for_size(size: u64, k: u32, m: u32) -> Result<Self, LayoutError> {
        let default = u64::from(k.max(1)) * DEFAULT_CHUNK;
        let mut stripe_size = default;
        if size.div_ceil(default) > MAX_STRIPES {
            let chunk = size.div_ceil(MAX_STRIPES * u64::from(k.max(1)));
            stripe_size = u64::from(k.max(1)) * chunk.div_ceil(CHUNK_STEP) * CHUNK_STEP;
        }
        Layout::new(size, k, m, stripe_size)
    }

    /// Blob size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// k: data shards.
    pub fn data_shards(&self) -> u32 {
        self.k
    }

    /// m: parity shards.
    pub fn parity_shards(&self) -> u32 {
        self.m
    }

    /// k + m.
    pub fn shard_count(&self) -> u32 {
        self.k + self.m
    }

    /// Bytes of blob data per stripe (the last stripe may hold fewer).
    pub fn stripe_size(&self) -> u64 {
        self.stripe_size
    }

    /// Number of stripes (0 for an empty blob).
    pub fn stripe_count(&self) -> u64 {
        self.size.div_ceil(self.stripe_size)
    }

    /// The blob bytes of stripe `s`.
    pub fn stripe_range(&self, s: u64) -> Range<u64> {
        let start = s.saturating_mul(self.stripe_size).min(self.size);
        start..start.saturating_add(self.stripe_size).min(self.size)
    }

    /// Length of every chunk of stripe `s`.
    pub fn chunk_len(&self, s: u64) -> u64 {
        let r = self.stripe_range(s);
        (r.end - r.start).div_ceil(u64::from(self.k))
    }

    /// Chunk length of a full stripe: the distance between consecutive stripes in a shard.
    pub fn full_chunk_len(&self) -> u64 {
        self.stripe_size.div_ceil(u64::from(self.k))
    }

    /// Where stripe `s` starts inside every shard.
    pub fn shard_offset(&self, s: u64) -> u64 {
        s.saturating_mul(self.full_chunk_len())
    }

    /// Bytes of every shard.
    pub fn shard_size(&self) -> u64 {
        match self.stripe_count() {
            0 => 0,
            n => self.shard_offset(n - 1) + self.chunk_len(n - 1),
        }
    }

    /// The stripes that hold any byte of `range` (clamped to the blob).
    pub fn stripes_for(&self, range: Range<u64>) -> Range<u64> {
        let end = range.end.min(self.size);
        if range.start >= end {
            return 0..0;
        }
        range.start / self.stripe_size..(end - 1) / self.stripe_size + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_small_blob_is_one_short_stripe() {
        let l = Layout::for_size(10, 4, 3).expect("layout");
        assert_eq!(l.stripe_size(), 4 * DEFAULT_CHUNK);
        assert_eq!(l.stripe_count(), 1);
        assert_eq!(l.stripe_range(0), 0..10);
        assert_eq!(l.chunk_len(0), 3);
        assert_eq!(l.shard_size(), 3);
        assert_eq!(l.shard_count(), 7);
    }

    #[test]
    fn an_empty_blob_has_no_stripes() {
        let l = Layout::for_size(0, 2, 1).expect("layout");
        assert_eq!(l.stripe_count(), 0);
        assert_eq!(l.shard_size(), 0);
        assert_eq!(l.stripes_for(0..10), 0..0);
    }

    #[test]
    fn huge_blobs_get_bigger_stripes_not_more_hashes() {
        let size = 100u64 << 30; // 100 GiB
        let l = Layout::for_size(size, 4, 3).expect("layout");
        assert!(l.stripe_count() <= MAX_STRIPES, "{}", l.stripe_count());
        assert_eq!(l.full_chunk_len() % CHUNK_STEP, 0);
        let two_gib = Layout::for_size(2 << 30, 4, 3).expect("layout");
        assert_eq!(two_gib.stripe_size(), 4 * DEFAULT_CHUNK);
        assert_eq!(two_gib.stripe_count(), 2048);
    }

    #[test]
    fn invalid_codes_and_stripes_are_refused() {
        assert_eq!(
            Layout::new(1, 0, 1, 1),
            Err(LayoutError::Code { k: 0, m: 1 })
        );
        assert!(Layout::new(1, 200, 57, 1).is_err());
        assert_eq!(Layout::new(1, 1, 0, 0), Err(LayoutError::StripeSize));
    }

    proptest! {
        #[test]
        fn stripes_tile_the_blob_and_the_shards(
            size in 0u64..50_000,
            k in 1u32..8,
            m in 0u32..4,
            stripe in 1u64..5_000,
            a in 0u64..60_000,
            b in 0u64..60_000,
        ) {
            let l = Layout::new(size, k, m, stripe).expect("layout");
            let mut next = 0;
            let mut shard = 0;
            for s in 0..l.stripe_count() {
                let r = l.stripe_range(s);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                prop_assert_eq!(l.shard_offset(s), shard);
                prop_assert!(l.chunk_len(s) * u64::from(k) >= r.end - r.start);
                prop_assert!(l.chunk_len(s) <= l.full_chunk_len());
                next = r.end;
                shard += l.chunk_len(s);
            }
            prop_assert_eq!(next, size);
            prop_assert_eq!(l.shard_size(), shard);
            // Every byte of a range is in one of the stripes named for it, and no more.
            let (lo, hi) = (a.min(b), a.max(b));
            let stripes = l.stripes_for(lo..hi);
            for byte in [lo, hi.saturating_sub(1)] {
                if byte >= lo && byte < hi.min(size) {
                    prop_assert!(stripes.contains(&(byte / stripe)));
                }
            }
            if !stripes.is_empty() {
                prop_assert!(l.stripe_range(stripes.start).end > lo);
                prop_assert!(l.stripe_range(stripes.end - 1).start < hi.min(size));
            }
        }
    }
}
