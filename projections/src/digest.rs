//! [`Digester`]: the canonical digest of one table's contents.

use std::collections::BTreeMap;

use crate::format::DIGEST_CONTEXT;

/// Digests of a store's tables by name: every projection, `requests` and `rejected`.
pub type Digests = BTreeMap<String, [u8; 32]>;

/// Canonical blake3 digest of a table: a function of its name and of its `(key, value)` pairs
/// in ascending key order, and of nothing else (not of RocksDB's files, compactions or
/// sequence numbers).
///
/// `blake3::derive_key`-mode hasher with context [`DIGEST_CONTEXT`], fed
/// `len(name) u32 LE ‖ name`, then for every pair `len(key) u32 LE ‖ key ‖ len(value) u32 LE ‖
/// value`. The length prefixes make the encoding injective. (Lengths above `u32::MAX` do not
/// occur: RocksDB values of that size are not something hearth writes.)
///
/// Pairs must be added in ascending key order; that is the caller's duty.
#[derive(Clone, Debug)]
pub struct Digester {
    hasher: blake3::Hasher,
}

impl Digester {
    /// Starts the digest of the table named `name`.
    pub fn new(name: &str) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
        update_framed(&mut hasher, name.as_bytes());
        Self { hasher }
    }

    /// Adds one pair; pairs must come in ascending key order.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        update_framed(&mut self.hasher, key);
        update_framed(&mut self.hasher, value);
    }

    /// The digest.
    pub fn finish(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

fn update_framed(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    hasher.update(&len.to_le_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(name: &str, pairs: &[(&[u8], &[u8])]) -> [u8; 32] {
        let mut d = Digester::new(name);
        for (k, v) in pairs {
            d.add(k, v);
        }
        d.finish()
    }

    #[test]
    fn framing_separates_keys_from_values() {
        assert_ne!(digest("t", &[(b"ab", b"c")]), digest("t", &[(b"a", b"bc")]));
        assert_ne!(digest("t", &[(b"a", b"")]), digest("t", &[]));
    }

    #[test]
    fn name_is_part_of_the_digest() {
        assert_ne!(digest("a", &[]), digest("b", &[]));
        assert_eq!(digest("a", &[(b"k", b"v")]), digest("a", &[(b"k", b"v")]));
    }
}
