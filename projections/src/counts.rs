//! [`CountsProjection`] (`"counts-1"`): how many events of each kind, and from each origin node,
//! have been applied. Small on purpose: it proves the runtime's path end to end.

use hearth_proto::v1::Envelope;

use crate::projection::{Applied, ApplyCtx, Projection, StateTx};

/// Counts applied events per kind and per origin node.
///
/// Keys and values (version 1):
///
/// | key | value |
/// |---|---|
/// | `kind/<Kind>` (e.g. `kind/BlobAccepted`, from [`hearth_proto::event_kind`]) | u64 LE count |
/// | `origin/<lowercase hex of the origin's PeerId bytes>` | u64 LE count |
///
/// Rejected events (undecodable, duplicate request id) never reach it, so they are not counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountsProjection;

impl CountsProjection {
    /// Versioned name and column family.
    pub const NAME: &'static str = "counts-1";

    /// Key of the count of events of `kind`.
    pub fn kind_key(kind: &str) -> Vec<u8> {
        format!("kind/{kind}").into_bytes()
    }

    /// Key of the count of events proposed by `origin` (PeerId bytes).
    pub fn origin_key(origin: &[u8]) -> Vec<u8> {
        let mut key = b"origin/".to_vec();
        for byte in origin {
            key.push(HEX[usize::from(byte >> 4)]);
            key.push(HEX[usize::from(byte & 0xf)]);
        }
        key
    }

    /// Decodes a count value; `None` when it is not 8 bytes.
    pub fn decode_count(value: &[u8]) -> Option<u64> {
        crate::format::decode_u64(value)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Projection for CountsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn apply(&self, _ctx: &ApplyCtx, event: &Envelope, tx: &mut dyn StateTx) -> Applied {
        let kind = Self::kind_key(hearth_proto::event_kind(event));
        let origin = Self::origin_key(&event.origin);
        for key in [kind, origin] {
            let count = match tx.get(&key) {
                None => 0,
                Some(value) => match Self::decode_count(&value) {
                    Some(count) => count,
                    None => {
                        return Applied::Rejected(format!(
                            "counter {} holds {} bytes, expected 8",
                            String::from_utf8_lossy(&key),
                            value.len()
                        ))
                    }
                },
            };
            tx.put(&key, &count.saturating_add(1).to_le_bytes());
        }
        Applied::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemState;
    use hearth_proto::sample::sample_envelope;

    const CTX: ApplyCtx = ApplyCtx {
        index: 1,
        position: 0,
        log_time_ms: 0,
        redacted: false,
    };

    fn count(state: &MemState, key: &[u8]) -> Option<u64> {
        state
            .entries()
            .get(key)
            .and_then(|v| CountsProjection::decode_count(v))
    }

    #[test]
    fn counts_kinds_and_origins() {
        let mut state = MemState::new();
        let blob = sample_envelope(0, 200); // even seed: BlobAccepted
        let peer = sample_envelope(1, 200); // odd seed: PeerSeen
        for event in [&blob, &blob, &peer] {
            assert_eq!(state.apply(&CountsProjection, &CTX, event), Applied::Ok);
        }
        assert_eq!(count(&state, b"kind/BlobAccepted"), Some(2));
        assert_eq!(count(&state, b"kind/PeerSeen"), Some(1));
        let origins: u64 = state
            .entries()
            .iter()
            .filter(|(k, _)| k.starts_with(b"origin/"))
            .filter_map(|(_, v)| CountsProjection::decode_count(v))
            .sum();
        assert_eq!(origins, 3);
        assert_eq!(
            count(&state, &CountsProjection::origin_key(&blob.origin)).map(|c| c >= 2),
            Some(true)
        );
    }

    #[test]
    fn origin_key_is_lowercase_hex() {
        assert_eq!(
            CountsProjection::origin_key(&[0x00, 0xab, 0x1f]),
            b"origin/00ab1f".to_vec()
        );
        assert_eq!(CountsProjection::origin_key(&[]), b"origin/".to_vec());
    }

    #[test]
    fn malformed_counter_is_a_rejection_that_writes_nothing() {
        let mut state = MemState::new();
        state.put(b"kind/PeerSeen", b"bad");
        let before = state.clone();
        let applied = state.apply(&CountsProjection, &CTX, &sample_envelope(1, 200));
        assert!(
            matches!(applied, Applied::Rejected(ref r) if r.contains("kind/PeerSeen")),
            "{applied:?}"
        );
        assert_eq!(state, before);
    }

    #[test]
    fn fold_is_deterministic() {
        let events: Vec<_> = (0..50).map(|s| sample_envelope(s, 200)).collect();
        let fold = || {
            let mut state = MemState::new();
            for (i, e) in events.iter().enumerate() {
                let ctx = ApplyCtx {
                    index: i as u64 + 1,
                    position: 0,
                    log_time_ms: 0,
                    redacted: false,
                };
                state.apply(&CountsProjection, &ctx, e);
            }
            state.digest(CountsProjection::NAME)
        };
        assert_eq!(fold(), fold());
    }
}
