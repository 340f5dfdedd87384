//! [`MemStore`]: the whole projection runtime over `BTreeMap`s, with no IO.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::{Digester, Digests};
use crate::engine::{self, Base, Cursor, EngineError, Overlay, Tables};
use crate::entry::{CommittedEntry, Outcome};
use crate::error::{ProjectionError, Result};
use crate::format::{CF_REJECTED, CF_REQUESTS};
use crate::projection::Projection;
use crate::store::validate_projections;

/// The projection runtime in memory: the same decisions as [`crate::ProjectionStore`] (the two
/// share one implementation of them), the same digests, no durability.
///
/// It is the model the RocksDB store is tested against, and it lets higher layers test their
/// use of the runtime without a disk.
pub struct MemStore {
    projections: Vec<Arc<dyn Projection>>,
    tables: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
    cursor: Cursor,
}

impl MemStore {
    /// An empty runtime folding `projections`.
    pub fn new(projections: Vec<Arc<dyn Projection>>) -> Result<Self> {
        validate_projections(&projections)?;
        let tables = vec![BTreeMap::new(); Tables::new(projections.len()).count()];
        Ok(Self {
            projections,
            tables,
            cursor: Cursor::default(),
        })
    }

    /// Last applied `(index, term)`, `None` before the first entry.
    pub fn applied(&self) -> Option<(u64, u64)> {
        self.cursor.applied
    }

    /// Log time after the last applied entry, Unix ms (0 before any event).
    pub fn log_time_ms(&self) -> u64 {
        self.cursor.log_time_ms
    }

    /// Applies `entries` as [`crate::ProjectionStore::apply_batch`] does. All or nothing: on
    /// error nothing changed.
    pub fn apply_batch(&mut self, entries: &[CommittedEntry]) -> Result<Vec<Outcome>> {
        let tables = Tables::new(self.projections.len());
        let mut overlay = Overlay::new(tables);
        let mut cursor = self.cursor;
        let base = MemBase(&self.tables);
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            let outcome =
                engine::apply_entry(&self.projections, &mut cursor, entry, &base, &mut overlay)
                    .map_err(to_error)?;
            outcomes.push(outcome);
        }
        for (table, writes) in self.tables.iter_mut().zip(overlay.tables) {
            for (key, value) in writes {
                match value {
                    Some(value) => table.insert(key, value),
                    None => table.remove(&key),
                };
            }
        }
        self.cursor = cursor;
        Ok(outcomes)
    }

    /// The contents of the table named `name` (a projection, `requests` or `rejected`).
    pub fn table(&self, name: &str) -> Result<&BTreeMap<Vec<u8>, Vec<u8>>> {
        self.table_names()
            .position(|n| n == name)
            .and_then(|i| self.tables.get(i))
            .ok_or_else(|| ProjectionError::UnknownTable {
                path: memory_path(),
                name: name.to_owned(),
            })
    }

    /// Digest of one table, equal to [`crate::ProjectionStore::digest`] of the same contents.
    pub fn digest(&self, name: &str) -> Result<[u8; 32]> {
        let table = self.table(name)?;
        let mut digester = Digester::new(name);
        for (key, value) in table {
            digester.add(key, value);
        }
        Ok(digester.finish())
    }

    /// Digests of every projection and of the `requests` and `rejected` tables.
    pub fn digests(&self) -> Result<Digests> {
        self.table_names()
            .map(|name| Ok((name.to_owned(), self.digest(name)?)))
            .collect()
    }

    fn table_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.projections
            .iter()
            .map(|p| p.name())
            .chain([CF_REQUESTS, CF_REJECTED])
    }
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
            )
            .field("applied", &self.cursor.applied)
            .field("log_time_ms", &self.cursor.log_time_ms)
            .finish()
    }
}

struct MemBase<'a>(&'a [BTreeMap<Vec<u8>, Vec<u8>>]);

impl Base for MemBase<'_> {
    fn get(&self, table: usize, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(table)?.get(key).cloned()
    }
}

fn memory_path() -> PathBuf {
    PathBuf::from("<memory>")
}

fn to_error(e: EngineError) -> ProjectionError {
    match e {
        EngineError::NonContiguous { applied, found } => ProjectionError::NonContiguous {
            path: memory_path(),
            applied,
            found,
        },
        EngineError::Corrupt(what) => ProjectionError::Corrupt {
            path: memory_path(),
            what,
        },
    }
}

#[cfg(test)]
mod tests {
    //! The runtime's rules, exercised without IO.
    use super::*;
    use crate::counts::CountsProjection;
    use crate::entry::Rejection;
    use bytes::Bytes;
    use hearth_proto::v1::RequestId;

    fn runtime() -> MemStore {
        MemStore::new(vec![Arc::new(CountsProjection)]).unwrap()
    }

    fn event(index: u64, node: u8, seq: u64, proposed: u64) -> CommittedEntry {
        let mut env = hearth_proto::sample::sample_envelope(index, 200);
        env.request_id = Some(RequestId {
            node: vec![node].into(),
            seq,
        });
        env.proposed_at_unix_ms = proposed;
        CommittedEntry::event(index, 1, env.encode_to_bytes())
    }

    #[test]
    fn log_time_never_goes_backwards() {
        let mut rt = runtime();
        rt.apply_batch(&[event(1, 1, 1, 100), event(2, 1, 2, 50)])
            .unwrap();
        assert_eq!(rt.log_time_ms(), 100);
        rt.apply_batch(&[event(3, 1, 3, 101)]).unwrap();
        assert_eq!(rt.log_time_ms(), 101);
    }

    #[test]
    fn duplicates_within_and_across_batches() {
        let mut rt = runtime();
        let out = rt
            .apply_batch(&[event(1, 1, 7, 0), event(2, 1, 7, 0)])
            .unwrap();
        assert_eq!(
            out[1],
            Outcome::Rejected(Rejection::DuplicateRequest { first_index: 1 })
        );
        let out = rt
            .apply_batch(&[event(3, 1, 7, 0), event(4, 2, 7, 0)])
            .unwrap();
        assert_eq!(
            out[0],
            Outcome::Rejected(Rejection::DuplicateRequest { first_index: 1 })
        );
        assert!(matches!(out[1], Outcome::Applied { .. }));
        assert_eq!(rt.table(CF_REQUESTS).unwrap().len(), 2);
        assert_eq!(rt.table(CF_REJECTED).unwrap().len(), 2);
    }

    #[test]
    fn skips_applied_entries_and_refuses_gaps_atomically() {
        let mut rt = runtime();
        rt.apply_batch(&[event(5, 1, 1, 0)]).unwrap();
        let before = rt.digests().unwrap();
        assert_eq!(
            rt.apply_batch(&[event(5, 1, 1, 0)]).unwrap(),
            [Outcome::AlreadyApplied]
        );
        let err = rt.apply_batch(&[event(6, 1, 2, 0), event(8, 1, 3, 0)]);
        assert!(matches!(
            err,
            Err(ProjectionError::NonContiguous {
                applied: 6,
                found: 8,
                ..
            })
        ));
        assert_eq!(rt.applied(), Some((5, 1)));
        assert_eq!(rt.digests().unwrap(), before);
    }

    #[test]
    fn garbage_is_rejected_not_an_error() {
        let mut rt = runtime();
        let out = rt
            .apply_batch(&[CommittedEntry::event(1, 1, Bytes::from_static(b"\x08\xff"))])
            .unwrap();
        assert!(matches!(
            out[0],
            Outcome::Rejected(Rejection::Undecodable { .. })
        ));
        assert_eq!(rt.applied(), Some((1, 1)));
        assert!(rt.table(CountsProjection::NAME).unwrap().is_empty());
    }
}
