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
//! The node that writes a change over HTTP has already applied it to the loaded document (it
//! made the change there). It hands that document over ([`DocsProjection::offer`]) and takes
//! it back for the next write ([`DocsProjection::take_loaded`]), so a change is applied once
//! per write on that node, not twice. An offer is used only for exactly the change it names on
//! exactly the stored bytes it was loaded from; any other change, or other stored bytes, takes
//! the ordinary path.
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
use automerge::{AutoCommit, Change};
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
/// Changed documents offered by the node's writers, waiting for their change to be applied.
const OFFERED_DOCS: usize = 256;
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
    hot: HotCache<Vec<u8>, AutoCommit>,
    /// Documents a writer on this node already changed ([`Self::offer`]), by id, each under
    /// [`offer_token`] of the stored bytes it was loaded from and its change.
    offered: HotCache<Vec<u8>, AutoCommit>,
}

impl Default for DocsProjection {
    fn default() -> Self {
        DocsProjection {
            hot: HotCache::new(HOT_DOCS),
            offered: HotCache::new(OFFERED_DOCS),
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

    /// The loaded document `doc`, taken out, if the store holds exactly the bytes hashing to
    /// `stored`. A writer changes it and gives it back with [`Self::offer`].
    pub fn take_loaded(&self, doc: &[u8], stored: &blake3::Hash) -> Option<AutoCommit> {
        self.hot.take(&doc.to_vec(), stored)
    }

    /// Gives back `loaded`, taken with [`Self::take_loaded`] and not changed since: it is still
    /// what the stored bytes hashing to `stored` load as.
    pub fn keep_loaded(&self, doc: &[u8], stored: blake3::Hash, loaded: AutoCommit) {
        self.hot.keep(doc.to_vec(), stored, loaded);
    }

    /// Offers `after`: document `doc` as loaded from the stored bytes hashing to `stored`,
    /// then changed by exactly one committed change whose encoded bytes are `change` (and
    /// nothing else). When the projection applies that change to those bytes, it keeps `after`
    /// as the loaded result instead of applying the change again; the stored bytes do not
    /// depend on it (they are the previous bytes and the change), and `after` is the document
    /// those bytes load as, so nothing a replica or a rebuild sees changes.
    pub fn offer(&self, doc: &[u8], stored: &blake3::Hash, change: &[u8], after: AutoCommit) {
        self.offered
            .keep(doc.to_vec(), offer_token(stored, change), after);
    }

    /// The offered document for `e` on the stored bytes hashing to `stored`, and the change's
    /// bytes, when it passes the checks that stay cheap once the change is applied: the change
    /// decodes, is by the event's actor, and is the document's only head.
    fn take_offered(&self, e: &DocChanged, stored: &blake3::Hash) -> Option<(AutoCommit, Vec<u8>)> {
        let mut after = self
            .offered
            .take(&e.doc_id.to_vec(), &offer_token(stored, &e.change))?;
        let change = Change::try_from(&e.change[..]).ok()?;
        if change.actor_id().to_bytes() != &e.actor[..] || after.get_heads() != [change.hash()] {
            return None;
        }
        Some((after, change.raw_bytes().to_vec()))
    }
}

/// What an offered document is kept under: the stored bytes it was loaded from, and its change.
fn offer_token(stored: &blake3::Hash, change: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"hearth.doc-offer.v1\0");
    h.update(stored.as_bytes());
    h.update(change);
    h.finalize()
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
        None => AutoCommit::new(),
        Some(bytes) => load(bytes)?,
    };
    apply_to(&mut doc, actor, change)?;
    Ok(save(&mut doc))
}

fn load(bytes: &[u8]) -> Result<AutoCommit, String> {
    AutoCommit::load(bytes).map_err(|e| format!("stored document is malformed: {e}"))
}

/// The saved form of `doc`. (`AutoCommit::save` also drops unused actors, which `Automerge`'s
/// does not; the stored bytes are `Automerge`'s.)
fn save(doc: &mut AutoCommit) -> Vec<u8> {
    doc.document().save()
}

/// Checks `change` against `doc` (see the module header) and applies it; answers the change's
/// bytes as one chunk. On an error `doc` may be half changed: drop it.
fn apply_to(doc: &mut AutoCommit, actor: &[u8], change: &[u8]) -> Result<Vec<u8>, String> {
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
        let stored = saved.as_deref().map(blake3::hash);
        let (mut doc, raw) = match stored.and_then(|h| self.take_offered(e, &h)) {
            Some(done) => done,
            None => {
                let mut doc = match (&saved, stored) {
                    (Some(bytes), Some(h)) => match self.hot.take(&e.doc_id.to_vec(), &h) {
                        Some(doc) => doc,
                        None => load(bytes).map_err(|r| format!("DocChanged: {r}"))?,
                    },
                    _ => AutoCommit::new(),
                };
                let raw = apply_to(&mut doc, &e.actor, &e.change)
                    .map_err(|reason| format!("DocChanged: {reason}"))?;
                (doc, raw)
            }
        };
        let next = match saved {
            Some(mut bytes) if appended + 1 < COMPACT_EVERY => {
                bytes.extend_from_slice(&raw);
                tx.put(&count_key, &(appended + 1).to_le_bytes());
                bytes
            }
            Some(mut bytes) => {
                // Compact from the bytes alone, so every replica saves the same document.
                bytes.extend_from_slice(&raw);
                tx.delete(&count_key);
                save(&mut load(&bytes).map_err(|r| format!("DocChanged: {r}"))?)
            }
            None => save(&mut doc),
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
    use automerge::{ActorId, AutoCommit, Automerge, ReadDoc, ROOT};
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
    fn an_offered_document_is_kept_only_for_its_change_on_its_bytes() {
        let id = [4u8; DOC_ID_LEN];
        let writer = ActorId::from(&[6u8; 16][..]);
        // `p` takes offers; `q` never gets one and applies every change itself.
        let (p, q) = (DocsProjection::default(), DocsProjection::default());
        let (mut state, mut cold) = (MemState::new(), MemState::new());
        let both = |state: &mut MemState, cold: &mut MemState, index, event: &Envelope| {
            assert_eq!(state.apply(&p, &ctx(index), event), Applied::Ok);
            assert_eq!(cold.apply(&q, &ctx(index), event), Applied::Ok);
        };
        let key = DocsProjection::doc_key(&id);
        let mut a = AutoCommit::new().with_actor(writer.clone());
        both(
            &mut state,
            &mut cold,
            1,
            &doc_event(&id, &mut edit(&mut a, "n", 0)),
        );
        let stored = |s: &MemState| blake3::hash(&s.get(&key).expect("stored"));

        // A writer takes the loaded document, changes it and offers it: the projection keeps
        // that very document (it carries the writer's actor; a loaded one has a random actor).
        let mut doc = p
            .take_loaded(&id, &stored(&state))
            .expect("loaded after apply");
        doc.set_actor(writer.clone());
        let mut change = edit(&mut doc, "n", 1);
        p.offer(&id, &stored(&state), change.raw_bytes(), doc);
        both(&mut state, &mut cold, 2, &doc_event(&id, &mut change));
        assert_eq!(state.get(&key), cold.get(&key), "the same bytes either way");
        let kept = p.take_loaded(&id, &stored(&state)).expect("kept");
        assert_eq!(kept.get_actor(), &writer);

        // An offer for other bytes, or one that is not the change applied (here: the document
        // before it), is not used: the change is applied the ordinary way.
        let mut b = kept;
        let mut next = edit(&mut b, "n", 2);
        assert!(p.take_loaded(&id, &stored(&state)).is_none(), "taken above");
        p.offer(
            &id,
            &blake3::hash(b"other bytes"),
            next.raw_bytes(),
            b.fork(),
        );
        let mut unchanged = load(&state.get(&key).expect("stored")).expect("load");
        unchanged.set_actor(writer.clone());
        p.offer(&id, &stored(&state), next.raw_bytes(), unchanged);
        both(&mut state, &mut cold, 3, &doc_event(&id, &mut next));
        assert_eq!(state.get(&key), cold.get(&key));
        let mut kept = p.take_loaded(&id, &stored(&state)).expect("kept");
        assert_eq!(kept.get_heads(), vec![next.hash()]);
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
