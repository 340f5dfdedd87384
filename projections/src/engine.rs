//! The runtime's decisions for one entry, with no IO: skip or apply, decode, log time, request-id
//! de-duplication, running every projection with per-event rollback. [`crate::ProjectionStore`]
//! (RocksDB) and [`crate::MemStore`] (BTreeMaps) both drive this code, so they cannot disagree.
//!
//! State is addressed by table number: `0..n` are the projections in registration order, then
//! [`Tables::requests`] and [`Tables::rejected`]. Reads go to the batch's [`Overlay`] first and
//! then to a [`Base`] (the state as committed before the batch).

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_proto::v1::Envelope;

use crate::entry::{CommittedEntry, EntryData, Outcome, ProjectionRejection, Rejection};
use crate::format;
use crate::projection::{Applied, ApplyCtx, Projection, StateTx};

/// The committed state before the current batch, by table number.
pub(crate) trait Base {
    /// The committed value of `key` in `table`. An implementation that can fail records its
    /// error and returns `None`; its caller must then abandon the batch.
    fn get(&self, table: usize, key: &[u8]) -> Option<Vec<u8>>;
}

/// Table numbering for a given projection count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tables {
    projections: usize,
}

impl Tables {
    pub(crate) fn new(projections: usize) -> Self {
        Self { projections }
    }
    pub(crate) fn requests(self) -> usize {
        self.projections
    }
    pub(crate) fn rejected(self) -> usize {
        self.projections + 1
    }
    pub(crate) fn count(self) -> usize {
        self.projections + 2
    }
}

/// Where the fold stands: the last applied log id and the log time after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) applied: Option<(u64, u64)>,
    pub(crate) log_time_ms: u64,
}

/// Writes of the current batch, per table: `Some(value)` = put, `None` = delete.
#[derive(Debug)]
pub(crate) struct Overlay {
    pub(crate) tables: Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Overlay {
    pub(crate) fn new(tables: Tables) -> Self {
        Self {
            tables: vec![BTreeMap::new(); tables.count()],
        }
    }

    /// The batch's value of `key` in `table`, else `base`'s.
    pub(crate) fn get(&self, base: &dyn Base, table: usize, key: &[u8]) -> Option<Vec<u8>> {
        match self.tables.get(table).and_then(|t| t.get(key)) {
            Some(value) => value.clone(),
            None => base.get(table, key),
        }
    }

    fn put(&mut self, table: usize, key: Vec<u8>, value: Vec<u8>) {
        if let Some(t) = self.tables.get_mut(table) {
            t.insert(key, Some(value));
        }
    }
}

/// Errors the decision logic can report; the stores add their path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EngineError {
    NonContiguous { applied: u64, found: u64 },
    Corrupt(String),
}

/// Applies one entry to `overlay` and advances `cursor`. See the crate docs for the rules.
pub(crate) fn apply_entry(
    projections: &[Arc<dyn Projection>],
    cursor: &mut Cursor,
    entry: &CommittedEntry,
    base: &dyn Base,
    overlay: &mut Overlay,
) -> Result<Outcome, EngineError> {
    if let Some((applied, _)) = cursor.applied {
        if entry.index <= applied {
            return Ok(Outcome::AlreadyApplied);
        }
        if entry.index != applied + 1 {
            return Err(EngineError::NonContiguous {
                applied,
                found: entry.index,
            });
        }
    }
    cursor.applied = Some((entry.index, entry.term));
    match &entry.payload {
        EntryData::Other => Ok(Outcome::NotAnEvent),
        EntryData::Event(payload) => {
            let at = EventAt {
                index: entry.index,
                position: None,
                redacted: entry.redacted,
            };
            apply_event(projections, cursor, at, payload, base, overlay)
        }
        EntryData::Batch(payloads) => {
            let mut outcomes = Vec::with_capacity(payloads.len());
            for (position, payload) in payloads.iter().enumerate() {
                let position = u32::try_from(position).map_err(|_| {
                    EngineError::Corrupt(format!(
                        "entry {} holds more than 2^32 events",
                        entry.index
                    ))
                })?;
                let at = EventAt {
                    index: entry.index,
                    position: Some(position),
                    redacted: entry.redacted,
                };
                outcomes.push(apply_event(
                    projections,
                    cursor,
                    at,
                    payload,
                    base,
                    overlay,
                )?);
            }
            Ok(Outcome::Batch(outcomes))
        }
    }
}

/// Where an event sits: its entry's index, and its position when the entry is a batch.
#[derive(Clone, Copy, Debug)]
struct EventAt {
    index: u64,
    position: Option<u32>,
    redacted: bool,
}

impl EventAt {
    fn rejected_key(self, source: &str) -> Vec<u8> {
        match self.position {
            None => format::rejected_key(self.index, source),
            Some(position) => format::batch_rejected_key(self.index, position, source),
        }
    }
}

/// Applies one event (decode, log time, de-duplication, every projection).
fn apply_event(
    projections: &[Arc<dyn Projection>],
    cursor: &mut Cursor,
    at: EventAt,
    payload: &[u8],
    base: &dyn Base,
    overlay: &mut Overlay,
) -> Result<Outcome, EngineError> {
    let tables = Tables::new(projections.len());
    let event = match hearth_proto::decode_envelope(payload) {
        Ok(event) => event,
        Err(e) => {
            let rejection = Rejection::Undecodable {
                reason: e.to_string(),
            };
            reject(overlay, tables, at, "", &rejection.reason());
            return Ok(Outcome::Rejected(rejection));
        }
    };
    cursor.log_time_ms = cursor.log_time_ms.max(event.proposed_at_unix_ms);
    if let Some(request) = &event.request_id {
        let key = format::request_key(&request.node, request.seq);
        if let Some(first) = overlay.get(base, tables.requests(), &key) {
            let first_index = format::decode_u64(&first).ok_or_else(|| {
                EngineError::Corrupt(format!(
                    "request record of {} bytes, expected 8",
                    first.len()
                ))
            })?;
            let rejection = Rejection::DuplicateRequest { first_index };
            reject(overlay, tables, at, "", &rejection.reason());
            return Ok(Outcome::Rejected(rejection));
        }
        overlay.put(tables.requests(), key, at.index.to_le_bytes().to_vec());
    }
    let ctx = ApplyCtx {
        index: at.index,
        position: at.position.unwrap_or(0),
        log_time_ms: cursor.log_time_ms,
        redacted: at.redacted,
    };
    let mut rejected_by = Vec::new();
    for (table, projection) in projections.iter().enumerate() {
        if let Some(reason) =
            run_projection(projection.as_ref(), &ctx, &event, table, base, overlay)
        {
            reject(overlay, tables, at, projection.name(), &reason);
            rejected_by.push(ProjectionRejection {
                projection: projection.name(),
                reason,
            });
        }
    }
    Ok(Outcome::Applied { rejected_by })
}

/// Runs one projection on its own scratch writes; keeps them unless it rejects the event, in
/// which case the reason is returned.
fn run_projection(
    projection: &dyn Projection,
    ctx: &ApplyCtx,
    event: &Envelope,
    table: usize,
    base: &dyn Base,
    overlay: &mut Overlay,
) -> Option<String> {
    let mut tx = EntryTx {
        base,
        overlay,
        table,
        writes: BTreeMap::new(),
    };
    match projection.apply(ctx, event, &mut tx) {
        Applied::Ok => {
            let writes = tx.writes;
            if let Some(t) = overlay.tables.get_mut(table) {
                t.extend(writes);
            }
            None
        }
        Applied::Rejected(reason) => Some(reason),
    }
}

fn reject(overlay: &mut Overlay, tables: Tables, at: EventAt, source: &str, reason: &str) {
    overlay.put(
        tables.rejected(),
        at.rejected_key(source),
        reason.as_bytes().to_vec(),
    );
}

/// A projection's [`StateTx`] for one event: its writes, then the batch, then the base.
struct EntryTx<'a> {
    base: &'a dyn Base,
    overlay: &'a Overlay,
    table: usize,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl StateTx for EntryTx<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(value) => value.clone(),
            None => self.overlay.get(self.base, self.table, key),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }
}
