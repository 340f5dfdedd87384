//! [`MemState`]: a projection's state in a `BTreeMap`, for testing folds with no IO.

use std::collections::BTreeMap;

use hearth_proto::v1::Envelope;

use crate::digest::Digester;
use crate::projection::{Applied, ApplyCtx, Projection, StateTx};

/// One projection's state held in memory. Implements [`StateTx`], so a fold can be exercised
/// on plain data: `projection.apply(&ctx, &event, &mut state)`.
///
/// [`MemState::apply`] also follows the runtime's rule for rejections (the writes of a rejected
/// event are dropped), and [`MemState::digest`] equals the store's digest of the same contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemState {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `event` as the runtime would: the projection's writes are kept if it returns
    /// [`Applied::Ok`] and dropped if it rejects the event.
    pub fn apply(
        &mut self,
        projection: &dyn Projection,
        ctx: &ApplyCtx,
        event: &Envelope,
    ) -> Applied {
        let mut scratch = self.clone();
        let applied = projection.apply(ctx, event, &mut scratch);
        if applied == Applied::Ok {
            *self = scratch;
        }
        applied
    }

    /// The contents in key order.
    pub fn entries(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.map
    }

    /// Canonical digest of the contents, as [`crate::ProjectionStore::digest`] computes it for
    /// a table named `name`.
    pub fn digest(&self, name: &str) -> [u8; 32] {
        let mut digester = Digester::new(name);
        for (key, value) in &self.map {
            digester.add(key, value);
        }
        digester.finish()
    }
}

impl StateTx for MemState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.map.insert(key.to_vec(), value.to_vec());
    }

    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }
}
