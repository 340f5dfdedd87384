//! On-disk layout of a projection store: column family names, `meta` keys and the encodings of
//! every key and value the runtime writes. Projections define their own keys and values inside
//! their own column family.
//!
//! Version 1 (current):
//!
//! | column family | key | value |
//! |---|---|---|
//! | `meta` | `format_version` | u32 LE, [`FORMAT_VERSION`] |
//! | `meta` | `applied` | index u64 LE ‖ term u64 LE of the last applied log entry |
//! | `meta` | `log_time` | u64 LE, log time in Unix ms after the last applied entry |
//! | `meta` | `projection/<name>` | empty: the projection has folded every entry since the store was created |
//! | `requests` | request node bytes ‖ seq u64 BE | u64 LE index of the entry that applied it |
//! | `rejected` | index u64 BE ‖ source | UTF-8 reason; source is empty for the runtime, else the projection's name |
//! | `rejected` | index u64 BE ‖ 0xFF ‖ position u32 BE ‖ source | the same, for the event at `position` of a batch entry (0xFF never occurs in UTF-8, so the two forms cannot collide) |
//! | `<projection name>` | the projection's own | the projection's own |
//!
//! A projection's name is versioned (`"counts-1"`): changing its keys or values means a new name,
//! which the store treats as a new projection that needs a rebuild from the log.

/// Newest store format this build reads and the one it writes.
pub const FORMAT_VERSION: u32 = 1;

/// Column family of the runtime's bookkeeping.
pub const CF_META: &str = "meta";
/// Column family of applied request ids (de-duplication of retried proposals).
pub const CF_REQUESTS: &str = "requests";
/// Column family of rejected entries.
pub const CF_REJECTED: &str = "rejected";
/// Names a projection may not take: RocksDB's default column family and the runtime's own.
pub const RESERVED_NAMES: [&str; 4] = ["default", CF_META, CF_REQUESTS, CF_REJECTED];

/// `meta` key of the format version.
pub const META_FORMAT_VERSION: &[u8] = b"format_version";
/// `meta` key of the last applied log id.
pub const META_APPLIED: &[u8] = b"applied";
/// `meta` key of the log time.
pub const META_LOG_TIME: &[u8] = b"log_time";
/// Prefix of the `meta` keys that mark a projection as complete since creation.
pub const META_PROJECTION_PREFIX: &[u8] = b"projection/";

/// Key-derivation context of [`crate::Digester`] (blake3 `derive_key` mode).
pub const DIGEST_CONTEXT: &str = "hearth-projections 2026-05 table digest v1";

/// Encodes the `applied` value.
pub fn encode_applied(index: u64, term: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&index.to_le_bytes());
    out[8..].copy_from_slice(&term.to_le_bytes());
    out
}

/// Decodes the `applied` value; `None` when it is not 16 bytes.
pub fn decode_applied(bytes: &[u8]) -> Option<(u64, u64)> {
    let index = bytes.get(..8)?.try_into().ok()?;
    let term = bytes.get(8..16)?.try_into().ok()?;
    (bytes.len() == 16).then(|| (u64::from_le_bytes(index), u64::from_le_bytes(term)))
}

/// Decodes a u64 LE value; `None` when it is not 8 bytes.
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Decodes a u32 LE value; `None` when it is not 4 bytes.
pub fn decode_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// `requests` key: node bytes ‖ seq u64 BE. The fixed-size suffix keeps it unambiguous.
pub fn request_key(node: &[u8], seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(node.len() + 8);
    key.extend_from_slice(node);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `rejected` key: index u64 BE (so keys sort by index) ‖ source.
pub fn rejected_key(index: u64, source: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + source.len());
    key.extend_from_slice(&index.to_be_bytes());
    key.extend_from_slice(source.as_bytes());
    key
}

/// `rejected` key of the event at `position` of a batch entry: index u64 BE ‖ 0xFF ‖ position
/// u32 BE ‖ source. Sorts after the entry's single-event keys and by position.
pub fn batch_rejected_key(index: u64, position: u32, source: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(13 + source.len());
    key.extend_from_slice(&index.to_be_bytes());
    key.push(BATCH_MARK);
    key.extend_from_slice(&position.to_be_bytes());
    key.extend_from_slice(source.as_bytes());
    key
}

/// The byte after the index in a batch event's `rejected` key (never part of UTF-8).
const BATCH_MARK: u8 = 0xFF;

/// `meta` key marking projection `name` as complete.
pub fn projection_marker(name: &str) -> Vec<u8> {
    let mut key = META_PROJECTION_PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_round_trips_and_rejects_bad_lengths() {
        assert_eq!(decode_applied(&encode_applied(7, 3)), Some((7, 3)));
        assert_eq!(decode_applied(&[0; 15]), None);
        assert_eq!(decode_applied(&[0; 17]), None);
        assert_eq!(decode_u64(&[1, 0, 0, 0, 0, 0, 0, 0]), Some(1));
        assert_eq!(decode_u64(&[1]), None);
    }

    #[test]
    fn request_keys_are_unambiguous() {
        assert_ne!(request_key(b"ab", 1), request_key(b"a", 1));
        assert_eq!(request_key(b"n", 1).len(), 9);
    }

    #[test]
    fn rejected_keys_sort_by_index() {
        assert!(rejected_key(255, "") < rejected_key(256, ""));
        assert!(rejected_key(1, "zzz") < rejected_key(2, ""));
        assert!(batch_rejected_key(1, 9, "zzz") < rejected_key(2, ""));
        assert!(batch_rejected_key(1, 0, "counts-1") < batch_rejected_key(1, 1, ""));
        assert!(rejected_key(1, "counts-1") < batch_rejected_key(1, 0, ""));
        assert_ne!(batch_rejected_key(1, 0, ""), rejected_key(1, ""));
    }
}
