//! Helpers shared by the integration tests: event builders and a second test projection that
//! reads, deletes and rejects.
#![allow(dead_code)]

pub mod replay;

use std::sync::Arc;

use bytes::Bytes;
use hearth_projections::{
    Applied, ApplyCtx, CommittedEntry, CountsProjection, Projection, StateTx,
};
use hearth_proto::v1::{Envelope, RequestId};

/// A sample event (even seeds `BlobAccepted`, odd `PeerSeen`) with the given request id and
/// proposer clock.
pub fn envelope(seed: u64, node: u8, seq: u64, proposed_at_unix_ms: u64) -> Envelope {
    let mut env = hearth_proto::sample::sample_envelope(seed, 200);
    env.request_id = Some(RequestId {
        node: vec![node; 4].into(),
        seq,
    });
    env.proposed_at_unix_ms = proposed_at_unix_ms;
    env
}

/// [`envelope`], encoded.
pub fn event_bytes(seed: u64, node: u8, seq: u64, proposed_at_unix_ms: u64) -> Bytes {
    envelope(seed, node, seq, proposed_at_unix_ms).encode_to_bytes()
}

/// Entry `index` (term 1) carrying [`event_bytes`].
pub fn event(index: u64, seed: u64, node: u8, seq: u64, proposed: u64) -> CommittedEntry {
    CommittedEntry::event(index, 1, event_bytes(seed, node, seq, proposed))
}

/// Test projection `"ledger-1"`: per origin, the log time, index (and position, in a batch) of its last event; a total;
/// deletes an origin's record on seq.is_multiple_of(7); writes then rejects on seq.is_multiple_of(5) (so the
/// runtime must drop that write).
#[derive(Debug)]
pub struct Ledger;

impl Projection for Ledger {
    fn name(&self) -> &'static str {
        "ledger-1"
    }

    fn apply(&self, ctx: &ApplyCtx, event: &Envelope, tx: &mut dyn StateTx) -> Applied {
        let seq = event.request_id.as_ref().map_or(1, |r| r.seq);
        let total = tx
            .get(b"total")
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        tx.put(b"total", &(total + 1).to_le_bytes());
        let mut key = b"seen/".to_vec();
        key.extend_from_slice(&event.origin);
        if seq.is_multiple_of(5) {
            tx.put(b"poison", b"must never be committed");
            return Applied::Rejected(format!("seq {seq} is a multiple of 5"));
        }
        if seq.is_multiple_of(7) {
            tx.delete(&key);
        } else {
            let mut value = ctx.log_time_ms.to_le_bytes().to_vec();
            value.extend_from_slice(&ctx.index.to_le_bytes());
            if ctx.position != 0 {
                value.extend_from_slice(&ctx.position.to_le_bytes());
            }
            tx.put(&key, &value);
        }
        Applied::Ok
    }
}

/// The projections the tests register.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(CountsProjection), Arc::new(Ledger)]
}
