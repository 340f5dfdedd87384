//! The hash chain: `chain[i] = blake3(chain[i-1] ‖ index ‖ term ‖ blake3(payload))`.

use crate::types::Hash;

/// blake3 of a payload, the value the chain covers.
pub fn payload_hash(payload: &[u8]) -> Hash {
    *blake3::hash(payload).as_bytes()
}

/// The chain hash of the entry `(index, term)` with payload hash `payload_hash`, following `prev`.
/// Integers are encoded little-endian, 8 bytes each.
pub fn chain_next(prev: &Hash, index: u64, term: u64, payload_hash: &Hash) -> Hash {
    let mut buf = [0u8; 32 + 8 + 8 + 32];
    buf[..32].copy_from_slice(prev);
    buf[32..40].copy_from_slice(&index.to_le_bytes());
    buf[40..48].copy_from_slice(&term.to_le_bytes());
    buf[48..].copy_from_slice(payload_hash);
    *blake3::hash(&buf).as_bytes()
}
