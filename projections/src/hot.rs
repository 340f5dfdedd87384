//! [`HotCache`]: a few loaded values kept next to the stored bytes they were loaded from, each
//! used only while the store still holds exactly those bytes (checked by their blake3 hash).
//! What it is **not**: an LRU; when full, an arbitrary entry makes room.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Loaded values by key, each with the hash of the bytes it is.
#[derive(Debug)]
pub struct HotCache<K, V> {
    capacity: usize,
    entries: Mutex<HashMap<K, (blake3::Hash, V)>>,
}

impl<K: Eq + Hash + Clone, V> HotCache<K, V> {
    /// A cache of at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        HotCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Takes out the value of `key` if it was loaded from bytes hashing to `stored` (give it
    /// back with [`Self::keep`] once the store holds what it became). A stale one is dropped.
    pub fn take(&self, key: &K, stored: &blake3::Hash) -> Option<V> {
        match self.lock().remove(key) {
            Some((h, v)) if h == *stored => Some(v),
            _ => None,
        }
    }

    /// Keeps `value` as what the bytes hashing to `stored` load as.
    pub fn keep(&self, key: K, stored: blake3::Hash, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            if let Some(k) = entries.keys().next().cloned() {
                entries.remove(&k);
            }
        }
        entries.insert(key, (stored, value));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (blake3::Hash, V)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::HotCache;

    #[test]
    fn a_value_is_given_only_for_its_bytes_and_the_cache_stays_bounded() {
        let c = HotCache::new(2);
        let (a, b) = (blake3::hash(b"a"), blake3::hash(b"b"));
        c.keep(1, a, "one");
        assert_eq!(c.take(&1, &b), None, "other bytes");
        assert_eq!(c.take(&1, &a), None, "a stale entry is dropped");
        c.keep(1, a, "one");
        assert_eq!(c.take(&1, &a), Some("one"));
        for k in 0..10 {
            c.keep(k, a, "x");
        }
        assert_eq!(c.lock().len(), 2);
    }
}
