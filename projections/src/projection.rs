//! The [`Projection`] trait: a pure, deterministic fold of committed events into key-value state,
//! and [`StateTx`], the only window a projection has onto its state.

use hearth_proto::v1::Envelope;

/// Where in the log an event is being applied, and the log time at that point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyCtx {
    /// Log index of the entry carrying the event.
    pub index: u64,
    /// Position of the event inside its entry: 0 for an entry holding one event, `i` for the
    /// `i`-th event of a batch entry. `(index, position)` names an event uniquely.
    pub position: u32,
    /// Log time in Unix milliseconds: the maximum of every `proposed_at_unix_ms` seen in the log
    /// up to and including this entry. Never goes backwards, and is the same on every node.
    pub log_time_ms: u64,
    /// The entry carrying the event was redacted after it was committed: bytes that a
    /// projection dropped when the blob was deleted (inline data) may read as zeros. A
    /// projection must fold such an event to the same state as the original, which it can
    /// because every redacted byte range is data whose own hash the event carries.
    pub redacted: bool,
}

/// What a projection made of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The event was folded in; the projection's writes for it are kept.
    Ok,
    /// The event's preconditions do not hold (stale view, unknown holder, ...). The runtime
    /// discards every write the projection made for this event and records the reason under
    /// the entry's index. This is not an error: it is part of the deterministic outcome.
    Rejected(String),
}

/// A projection: a pure, deterministic fold `apply(state, event) -> state`.
///
/// Contract (every implementation must keep it, or replicas and rebuilds diverge):
///
/// * **Deterministic.** The writes made to `tx` and the returned [`Applied`] depend only on the
///   state read through `tx`, on `ctx` and on `event`. No clock (time is
///   [`ApplyCtx::log_time_ms`], never `event.proposed_at_unix_ms` alone or the wall clock), no
///   randomness, no IO, no iteration over hash maps whose order can vary, no global state.
/// * **Never fails, never panics.** An event the projection cannot use is
///   [`Applied::Rejected`] with a reason. Malformed state (it cannot happen unless the store
///   is damaged) is also a rejection, not a panic.
/// * **Own state only.** `tx` addresses the projection's own column family, named after
///   [`Projection::name`]; keys and values are the projection's business. Reads see the
///   projection's earlier writes, in this call and in earlier entries of the same batch.
/// * **Versioned name.** Changing the meaning or encoding of the state means a new name
///   (`"counts-1"` → `"counts-2"`); the store then refuses to open until it is rebuilt.
///
/// The runtime calls `apply` once per committed event, in log order, exactly once per entry
/// across restarts. Events the runtime itself rejects (undecodable, duplicate request id) never
/// reach a projection.
pub trait Projection: Send + Sync + 'static {
    /// Versioned name, e.g. `"counts-1"`; also the name of its column family. Must not be empty
    /// nor one of [`crate::format::RESERVED_NAMES`].
    fn name(&self) -> &'static str;

    /// Folds one committed event into the state behind `tx`.
    fn apply(&self, ctx: &ApplyCtx, event: &Envelope, tx: &mut dyn StateTx) -> Applied;
}

/// A projection's view of its own state during [`Projection::apply`].
///
/// Contract: `get` returns the latest value `put` for the key (in this call, in earlier entries
/// of the batch, or as committed before the batch), or `None` after `delete` or when never
/// written. Writes are buffered: nothing reaches disk until the runtime commits the whole batch,
/// and writes of a rejected event are dropped. The methods cannot fail: an IO error underneath
/// is reported by the runtime after `apply` returns, and the whole batch is abandoned.
pub trait StateTx {
    /// The current value of `key`.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]);
}
