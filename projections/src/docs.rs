//! [`DocsProjection`] (`"docs-1"`): Automerge documents folded from `DocChanged`, and the
//! devices allowed to sync them, folded from `DevicePaired`.
//!
//! Each document is kept as Automerge bytes that `Automerge::load` reads: a saved document
//! (compacted: the columnar encoding of its changes) followed by the change chunks applied
//! since, at most [`COMPACT_EVERY`] − 1 of them; the change that reaches [`COMPACT_EVERY`]
//! compacts them all into one saved document again. A read loads one value, and memory does
//! not grow with the number of documents. Applying a change appends its bytes instead of saving
//! the whole document again (saving costs time proportional to the document's history), and
//! the documents changed lately stay loaded in a small cache, checked against a hash of the
//! stored bytes before use, so a hot document is not parsed again for every change.
//!
//! The stored bytes are a pure function of the previous bytes, the change and the appended
//! count — compaction loads the stored bytes afresh and saves them, whatever the cache holds —
//! so replicas and rebuilds agree byte for byte; an Automerge upgrade that changed its save
//! encoding would need a new projection name (`"docs-2"`).
//!
//! A change is rejected (not an error: the outcome is recorded) when its bytes do not decode as
//! one Automerge change, when its actor is not the one the event names, when the document
//! already has it, when a dependency is missing (changes arrive in causal order through the log,
//! so a missing dependency is a client error, never a reordering), or when Automerge refuses it
//! (a sequence number reused with different content).
//!
//! What it is **not**: no JSON, no sync protocol (those live in `hearth-services`), no access
//! control decisions (it records grants; the node enforces them).
//!
//! | key | value |
//! |---|---|
//! | `d` ‖ doc id (16 bytes) | Automerge saved document, then the change chunks since |
//! | `n` ‖ doc id | how many change chunks follow the saved document (u32 LE; absent: 0) |
//! | `g` ‖ device PeerId bytes | [`DeviceGrant`] (protobuf) |

use crate::hot::HotCache;
use automerge::{Automerge, Change, ReadDoc};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{DevicePaired, DocChanged, Envelope};
use prost::Message;

use crate::projection::{Applied, ApplyCtx, Projection, StateTx};

/// First byte of a document's key.
const DOC_TAG: u8 = b'd';
/// First byte of a device grant's key.
const GRANT_TAG: u8 = b'g';
/// First byte of a document's appended-change count.
const COUNT_TAG: u8 = b'n';
/// The change that makes this many appended chunks compacts the document.
pub const COMPACT_EVERY: u32 = 64;
/// Documents kept loaded.
const HOT_DOCS: usize = 256;
/// Length of a document id.
pub const DOC_ID_LEN: usize = 16;

/// What a paired device may sync. Field tags are forever.
#[derive(Clone, PartialEq, Message)]
pub struct DeviceGrant {
    /// A human label.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Documents it may read, sorted, without duplicates.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub read_docs: Vec<Vec<u8>>,
    /// Documents it may write (and read), sorted, without duplicates.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub write_docs: Vec<Vec<u8>>,
    /// Log time (Unix ms) of the grant.
    #[prost(uint64, tag = "4")]
    pub granted_log_ms: u64,
    /// Log index of the grant.
    #[prost(uint64, tag = "5")]
    pub granted_index: u64,
}

impl DeviceGrant {
    /// May the device read `doc`?
    pub fn may_read(&self, doc: &[u8]) -> bool {
        self.may_write(doc) || self.read_docs.iter().any(|d| d == doc)
    }

    /// May the device write `doc`?
    pub fn may_write(&self, doc: &[u8]) -> bool {
        self.write_docs.iter().any(|d| d == doc)
    }

    /// Every document it may read, sorted.
    pub fn readable(&self) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = self
            .read_docs
            .iter()
            .chain(&self.write_docs)
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// The documents table.
pub struct DocsProjection {
    /// Documents changed lately, loaded, by id.
    hot: HotCache<Vec<u8>, Automerge>,
}

impl Default for DocsProjection {
    fn default() -> Self {
        DocsProjection {
            hot: HotCache::new(HOT_DOCS),
        }
    }
}

impl std::fmt::Debug for DocsProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocsProjection").finish_non_exhaustive()
    }
}

impl DocsProjection {
    /// Versioned name and column family.
    pub const NAME: &'static str = "docs-1";

    /// Prefix of every document key.
    pub const DOC_PREFIX: &'static [u8] = &[DOC_TAG];

    /// Prefix of every device grant key.
    pub const GRANT_PREFIX: &'static [u8] = &[GRANT_TAG];

    /// Key of a document.
    pub fn doc_key(doc: &[u8]) -> Vec<u8> {
        tagged(DOC_TAG, doc)
    }

    /// The document id in a document key; `None` for any other key.
    pub fn parse_doc_key(key: &[u8]) -> Option<&[u8]> {
        match key.split_first() {
            Some((&DOC_TAG, id)) if id.len() == DOC_ID_LEN => Some(id),
            _ => None,
        }
    }

    /// Key of a document's appended-change count.
    pub fn count_key(doc: &[u8]) -> Vec<u8> {
        tagged(COUNT_TAG, doc)
    }

    /// Key of a device's grant.
    pub fn grant_key(device: &[u8]) -> Vec<u8> {
        tagged(GRANT_TAG, device)
    }

    /// Decodes a stored grant; `None` when the bytes are not one.
    pub fn decode_grant(bytes: &[u8]) -> Option<DeviceGrant> {
        DeviceGrant::decode(bytes).ok()
    }
}

fn tagged(tag: u8, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(tag);
    key.extend_from_slice(id);
    key
}

impl Projection for DocsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn apply(&self, ctx: &ApplyCtx, event: &Envelope, tx: &mut dyn StateTx) -> Applied {
        let result = match &event.event {
            Some(Event::DocChanged(e)) => self.changed(e, tx),
            Some(Event::DevicePaired(e)) => paired(ctx, e, tx),
            _ => Ok(()),
        };
        match result {
            Ok(()) => Applied::Ok,
            Err(reason) => Applied::Rejected(reason),
        }
    }
}

/// Applies one change to a document (loaded from `saved`, or new); answers the new saved bytes.
/// The checks of the module header, shared with the node, which runs them before proposing.
pub fn apply_change(saved: Option<&[u8]>, actor: &[u8], change: &[u8]) -> Result<Vec<u8>, String> {
    let mut doc = match saved {
        None => Automerge::new(),
        Some(bytes) => load(bytes)?,
    };
    apply_to(&mut doc, actor, change)?;
    Ok(doc.save())
}

fn load(bytes: &[u8]) -> Result<Automerge, String> {
    Automerge::load(bytes).map_err(|e| format!("stored document is malformed: {e}"))
}

/// Checks `change` against `doc` (see the module header) and applies it; answers the change's
/// bytes as one chunk. On an error `doc` may be half changed: drop it.
fn apply_to(doc: &mut Automerge, actor: &[u8], change: &[u8]) -> Result<Vec<u8>, String> {
    let change = Change::try_from(change).map_err(|e| format!("not an Automerge change: {e}"))?;
    if change.actor_id().to_bytes() != actor {
        return Err("the change's actor is not the event's actor".into());
    }
    let hash = change.hash();
    if doc.get_change_by_hash(&hash).is_some() {
        return Err(format!("duplicate change {hash}"));
    }
    if let Some(missing) = change
        .deps()
        .iter()
        .find(|d| doc.get_change_by_hash(d).is_none())
    {
        return Err(format!(
            "change {hash} depends on {missing}, which the document lacks"
        ));
    }
    let raw = change.raw_bytes().to_vec();
    doc.apply_changes([change])
        .map_err(|e| format!("Automerge refused change {hash}: {e}"))?;
    Ok(raw)
}

impl DocsProjection {
    fn changed(&self, e: &DocChanged, tx: &mut dyn StateTx) -> Result<(), String> {
        if e.doc_id.len() != DOC_ID_LEN {
            return Err(format!(
                "DocChanged: a document id has {DOC_ID_LEN} bytes, not {}",
                e.doc_id.len()
            ));
        }
        let (key, count_key) = (Self::doc_key(&e.doc_id), Self::count_key(&e.doc_id));
        let saved = tx.get(&key);
        let appended = match tx.get(&count_key) {
            None => 0,
            Some(v) => u32::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| "DocChanged: the stored change count is malformed".to_string())?,
            ),
        };
        let mut doc = match &saved {
            None => Automerge::new(),
            Some(bytes) => match self.hot.take(&e.doc_id.to_vec(), &blake3::hash(bytes)) {
                Some(doc) => doc,
                None => load(bytes).map_err(|r| format!("DocChanged: {r}"))?,
            },
        };
        let raw = apply_to(&mut doc, &e.actor, &e.change)
            .map_err(|reason| format!("DocChanged: {reason}"))?;
        let next = match saved {
            Some(mut bytes) if appended + 1 < COMPACT_EVERY => {
                bytes.extend_from_slice(&raw);
                tx.put(&count_key, &(appended + 1).to_le_bytes());
                bytes
            }
            Some(mut bytes) => {
                // Compact from the bytes alone, so every replica saves the same document.
                bytes.extend_from_slice(&raw);
                doc = load(&bytes).map_err(|r| format!("DocChanged: {r}"))?;
                tx.delete(&count_key);
                doc.save()
            }
            None => doc.save(),
        };
        tx.put(&key, &next);
        self.hot.keep(e.doc_id.to_vec(), blake3::hash(&next), doc);
        Ok(())
    }
}

fn paired(ctx: &ApplyCtx, e: &DevicePaired, tx: &mut dyn StateTx) -> Result<(), String> {
    if e.device.is_empty() || libp2p_identity::PeerId::from_bytes(&e.device).is_err() {
        return Err("DevicePaired: the device is not a PeerId".into());
    }
    let ids = |docs: &[bytes::Bytes]| -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            if d.len() != DOC_ID_LEN {
                return Err(format!(
                    "DevicePaired: a document id has {DOC_ID_LEN} bytes, not {}",
                    d.len()
                ));
            }
            out.push(d.to_vec());
        }
        out.sort();
        out.dedup();
        Ok(out)
    };
    let key = DocsProjection::grant_key(&e.device);
    let (read_docs, write_docs) = (ids(&e.read_docs)?, ids(&e.write_docs)?);
    if e.revoked {
        tx.delete(&key);
        return Ok(());
    }
    let grant = DeviceGrant {
        name: e.name.clone(),
        read_docs,
        write_docs,
        granted_log_ms: ctx.log_time_ms,
        granted_index: ctx.index,
    };
    tx.put(&key, &grant.encode_to_vec());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemState;
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ReadDoc, ROOT};
    use bytes::Bytes;

    fn ctx(index: u64) -> ApplyCtx {
        ApplyCtx {
            index,
            position: 0,
            log_time_ms: 1_000 + index,
            redacted: false,
        }
    }

    fn doc_event(doc: &[u8], change: &mut Change) -> Envelope {
        Envelope {
            event: Some(Event::DocChanged(DocChanged {
                doc_id: Bytes::copy_from_slice(doc),
                actor: Bytes::from(change.actor_id().to_bytes().to_vec()),
                change: Bytes::from(change.bytes().to_vec()),
            })),
            ..Envelope::default()
        }
    }

    fn edit(doc: &mut AutoCommit, key: &str, value: i64) -> Change {
        doc.put(ROOT, key, value).expect("put");
        doc.commit();
        doc.get_last_local_change().expect("a change")
    }

    #[test]
    fn changes_apply_in_order_and_bad_ones_are_rejected() {
        let p = DocsProjection::default();
        let mut state = MemState::new();
        let id = [7u8; DOC_ID_LEN];
        let mut a = AutoCommit::new().with_actor(ActorId::from(&[1u8; 16][..]));
        let mut first = edit(&mut a, "x", 1);
        let mut second = edit(&mut a, "y", 2);

        // Out of causal order: the dependency is missing.
        let out = state.apply(&p, &ctx(1), &doc_event(&id, &mut second));
        assert!(
            matches!(&out, Applied::Rejected(r) if r.contains("lacks")),
            "{out:?}"
        );
        assert_eq!(
            state.apply(&p, &ctx(2), &doc_event(&id, &mut first)),
            Applied::Ok
        );
        assert_eq!(
            state.apply(&p, &ctx(3), &doc_event(&id, &mut second)),
            Applied::Ok
        );
        let again = state.apply(&p, &ctx(4), &doc_event(&id, &mut second));
        assert!(matches!(&again, Applied::Rejected(r) if r.contains("duplicate")));

        let saved = state.get(&DocsProjection::doc_key(&id)).expect("saved");
        let doc = Automerge::load(&saved).expect("load");
        assert_eq!(doc.get_heads(), a.get_heads());
        let x = doc
            .get(ROOT, "y")
            .expect("get")
            .and_then(|(v, _)| v.as_scalar().and_then(|s| s.as_i64()));
        assert_eq!(x, Some(2));

        // Garbage, a wrong actor, a short id.
        let mut bad = doc_event(&id, &mut first);
        if let Some(Event::DocChanged(e)) = &mut bad.event {
            e.change = Bytes::from_static(b"not a change");
        }
        assert!(matches!(
            state.apply(&p, &ctx(5), &bad),
            Applied::Rejected(_)
        ));
        let mut c = edit(&mut a, "z", 3);
        let mut wrong = doc_event(&id, &mut c);
        if let Some(Event::DocChanged(e)) = &mut wrong.event {
            e.actor = Bytes::from_static(&[9u8; 16]);
        }
        assert!(
            matches!(state.apply(&p, &ctx(6), &wrong), Applied::Rejected(r) if r.contains("actor"))
        );
        let short = doc_event(&id[..4], &mut c);
        assert!(matches!(
            state.apply(&p, &ctx(7), &short),
            Applied::Rejected(_)
        ));
    }

    #[test]
    fn appended_changes_compact_and_the_cache_changes_no_byte() {
        // 150 changes: two compactions, then appended chunks. One projection keeps the
        // document hot; the other starts cold for every change (as after a restart or an
        // eviction). The stored bytes must be the same after every change.
        let id = [5u8; DOC_ID_LEN];
        let mut a = AutoCommit::new().with_actor(ActorId::from(&[1u8; 16][..]));
        let (hot, mut hot_state) = (DocsProjection::default(), MemState::new());
        let mut cold_state = MemState::new();
        for i in 0..150i64 {
            let mut c = edit(&mut a, if i % 2 == 0 { "even" } else { "odd" }, i);
            let event = doc_event(&id, &mut c);
            let index = 1 + i as u64;
            assert_eq!(hot_state.apply(&hot, &ctx(index), &event), Applied::Ok);
            let cold = DocsProjection::default();
            assert_eq!(cold_state.apply(&cold, &ctx(index), &event), Applied::Ok);
            let key = DocsProjection::doc_key(&id);
            assert_eq!(
                hot_state.get(&key),
                cold_state.get(&key),
                "after change {i}"
            );
            let count = hot_state.get(&DocsProjection::count_key(&id));
            let want = i as u32 % COMPACT_EVERY;
            assert_eq!(
                count.map(|v| u32::from_le_bytes(v.try_into().expect("u32"))),
                (want > 0).then_some(want),
                "after change {i}"
            );
        }
        let saved = hot_state.get(&DocsProjection::doc_key(&id)).expect("saved");
        let doc = Automerge::load(&saved).expect("load");
        assert_eq!(doc.get_heads(), a.get_heads());
        // The store no longer holds what the cache has (another store, as after a snapshot
        // install): the cache is not used, and the change lacks its dependencies there.
        let mut replaced = MemState::new();
        let out = replaced.apply(&hot, &ctx(201), &doc_event(&id, &mut edit(&mut a, "n", 1)));
        assert!(
            matches!(&out, Applied::Rejected(r) if r.contains("lacks")),
            "{out:?}"
        );
    }

    #[test]
    fn concurrent_changes_merge_the_same_in_either_order() {
        let id = [3u8; DOC_ID_LEN];
        let mut base = AutoCommit::new().with_actor(ActorId::from(&[1u8; 16][..]));
        let mut c0 = edit(&mut base, "shared", 0);
        let mut left = base.fork().with_actor(ActorId::from(&[2u8; 16][..]));
        let mut right = base.fork().with_actor(ActorId::from(&[3u8; 16][..]));
        let mut l = edit(&mut left, "left", 1);
        let mut r = edit(&mut right, "right", 2);
        let fold = |order: [&mut Change; 2]| {
            let p = DocsProjection::default();
            let mut state = MemState::new();
            let mut c0 = c0.clone();
            assert_eq!(
                state.apply(&p, &ctx(1), &doc_event(&id, &mut c0)),
                Applied::Ok
            );
            for (i, c) in order.into_iter().enumerate() {
                let out = state.apply(&p, &ctx(2 + i as u64), &doc_event(&id, c));
                assert_eq!(out, Applied::Ok);
            }
            state.get(&DocsProjection::doc_key(&id)).expect("saved")
        };
        let a = fold([&mut l.clone(), &mut r.clone()]);
        let b = fold([&mut r, &mut l]);
        let (da, db) = (
            Automerge::load(&a).expect("a"),
            Automerge::load(&b).expect("b"),
        );
        let mut ha = da.get_heads();
        let mut hb = db.get_heads();
        ha.sort();
        hb.sort();
        assert_eq!(ha, hb);
        for key in ["shared", "left", "right"] {
            assert!(da.get(ROOT, key).expect("get").is_some(), "{key}");
        }
        let _ = &mut c0;
    }

    #[test]
    fn device_grants_are_kept_replaced_and_revoked() {
        let p = DocsProjection::default();
        let mut state = MemState::new();
        let device = libp2p_identity::PeerId::random().to_bytes();
        let pair = |read: Vec<[u8; 16]>, write: Vec<[u8; 16]>, revoked: bool| Envelope {
            event: Some(Event::DevicePaired(DevicePaired {
                device: Bytes::from(device.clone()),
                name: "laptop".into(),
                read_docs: read.iter().map(|d| Bytes::copy_from_slice(d)).collect(),
                write_docs: write.iter().map(|d| Bytes::copy_from_slice(d)).collect(),
                revoked,
            })),
            ..Envelope::default()
        };
        assert_eq!(
            state.apply(&p, &ctx(1), &pair(vec![[1; 16]], vec![[2; 16]], false)),
            Applied::Ok
        );
        let key = DocsProjection::grant_key(&device);
        let g = DocsProjection::decode_grant(&state.get(&key).expect("grant")).expect("decode");
        assert!(g.may_read(&[1; 16]) && !g.may_write(&[1; 16]));
        assert!(g.may_read(&[2; 16]) && g.may_write(&[2; 16]));
        assert!(!g.may_read(&[3; 16]));
        assert_eq!(g.readable().len(), 2);
        assert_eq!(
            state.apply(&p, &ctx(2), &pair(vec![], vec![], true)),
            Applied::Ok
        );
        assert!(state.get(&key).is_none());
        let mut bad = pair(vec![], vec![], false);
        if let Some(Event::DevicePaired(e)) = &mut bad.event {
            e.device = Bytes::from_static(b"nope");
        }
        assert!(matches!(
            state.apply(&p, &ctx(3), &bad),
            Applied::Rejected(_)
        ));
    }
}
