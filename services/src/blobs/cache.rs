//! [`StripeCache`]: the read path's memory cache of **verified** stripes, keyed by (blob hash,
//! stripe index) and bounded in bytes (`--cache-bytes`).
//!
//! A read looks here first, then in the local shards, then rebuilds from any `k`; only
//! stripes that matched their manifest hash are put in, so a hit is served without hashing
//! again. Eviction is least-recently-used, behind a frequency-based admission filter (moka's
//! TinyLFU): one large streaming read does not flush the small, often-read blobs. A stripe
//! larger than an eighth of the capacity is not cached. A deleted blob's stripes are dropped
//! when the collector removes its shards.
//!
//! Not here: inline blobs (their bytes are in the blob index) and blobs read from another
//! member.

use bytes::Bytes;
use moka::sync::Cache;

/// Per-entry bookkeeping added to a stripe's length when weighing it.
const ENTRY_OVERHEAD: usize = 64;

/// A byte-bounded cache of verified stripes; cheap to clone (shared).
#[derive(Clone)]
pub struct StripeCache {
    inner: Option<Cache<([u8; 32], u64), Bytes>>,
    largest: usize,
}

impl std::fmt::Debug for StripeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeCache")
            .field("enabled", &self.inner.is_some())
            .field("largest", &self.largest)
            .finish()
    }
}

impl StripeCache {
    /// A cache holding at most `capacity` bytes; 0 disables it.
    pub fn new(capacity: u64) -> Self {
        if capacity == 0 {
            return Self::disabled();
        }
        let inner = Cache::builder()
            .max_capacity(capacity)
            .weigher(|_: &([u8; 32], u64), v: &Bytes| {
                u32::try_from(v.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .build();
        StripeCache {
            inner: Some(inner),
            largest: usize::try_from(capacity / 8).unwrap_or(usize::MAX),
        }
    }

    /// A cache that holds nothing.
    pub fn disabled() -> Self {
        StripeCache {
            inner: None,
            largest: 0,
        }
    }

    /// Stripe `stripe` of blob `hash`, if cached.
    pub fn get(&self, hash: &[u8; 32], stripe: u64) -> Option<Bytes> {
        self.inner.as_ref()?.get(&(*hash, stripe))
    }

    /// Caches stripe `stripe` of blob `hash`: `data` must have matched the manifest's stripe
    /// hash.
    pub fn insert(&self, hash: &[u8; 32], stripe: u64, data: Bytes) {
        if let Some(c) = &self.inner {
            if data.len() <= self.largest {
                c.insert((*hash, stripe), data);
            }
        }
    }

    /// Drops the first `stripes` stripes of blob `hash` (all of them, given its stripe count).
    pub fn remove_blob(&self, hash: &[u8; 32], stripes: u64) {
        if let Some(c) = &self.inner {
            for s in 0..stripes {
                c.invalidate(&(*hash, s));
            }
        }
    }

    /// Bytes held now (weighed as stored, after pending evictions run).
    pub fn weighted_size(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.weighted_size()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_fits_and_stays_within_its_bound() {
        let cache = StripeCache::new(64 * 1024);
        let h = [7; 32];
        cache.insert(&h, 0, Bytes::from(vec![1; 1000]));
        assert_eq!(cache.get(&h, 0).as_deref(), Some(&vec![1; 1000][..]));
        assert_eq!(cache.get(&h, 1), None);
        assert_eq!(cache.get(&[8; 32], 0), None);
        // Larger than an eighth of the capacity: not cached.
        cache.insert(&h, 1, Bytes::from(vec![2; 9 * 1024]));
        assert_eq!(cache.get(&h, 1), None);
        for s in 2..200 {
            cache.insert(&h, s, Bytes::from(vec![3; 1000]));
        }
        assert!(
            cache.weighted_size() <= 64 * 1024,
            "{}",
            cache.weighted_size()
        );
        cache.remove_blob(&h, 200);
        assert_eq!(cache.weighted_size(), 0);
    }

    #[test]
    fn a_disabled_cache_holds_nothing() {
        let cache = StripeCache::new(0);
        cache.insert(&[1; 32], 0, Bytes::from_static(b"x"));
        assert_eq!(cache.get(&[1; 32], 0), None);
        assert_eq!(cache.weighted_size(), 0);
    }
}
