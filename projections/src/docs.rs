//! [`DocsProjection`] (`"docs-2"`): Automerge documents folded from `DocChanged`, and the
//! devices allowed to sync them, folded from `DevicePaired`.
//!
//! Each document is kept as a **base** — a saved (compacted) Automerge document — and the
//! change chunks applied since, each under its own key, so applying a change writes only that
//! change and a small record ([`DocMeta`]), whatever the document's size. Concatenated, base
//! and chunks are bytes `Automerge::load` reads ([`DocsProjection::stored`]). When there are
//! at least [`COMPACT_MIN_CHUNKS`] chunks since the base and at least a quarter as many as the
//! base holds changes (or their bytes reach [`COMPACT_MIN_BYTES`] and twice the base's), the
//! change that gets there **compacts**: base and chunks are loaded afresh from the stored
//! bytes, saved as the new base, and the chunks deleted. Compaction costs time in proportion
//! to the document's history; run once per quarter more history, it costs each change a small
//! constant, not a share that grows with the document. Memory does not grow with the number
//! of documents.
//!
//! Every document has a **version**: blake3 chained over its changes in the order applied
//! (`v' = blake3("hearth.doc-version.v1\0" ‖ v ‖ change bytes)`, from 32 zero bytes). It names
//! the document's content, not its bytes: compaction leaves it unchanged. The documents changed
//! lately stay loaded in a small cache under their version, so a hot document is not parsed
//! again for every change and nothing is hashed but the change.
//!
//! The node that writes a change over HTTP has already applied it to the loaded document (it
//! made the change there). It hands that document over ([`DocsProjection::offer`]) under the
//! version the change leads to, and takes it back for the next write
//! ([`DocsProjection::take_loaded`]), so a change is applied once per write on that node, not
//! twice. An offer is used only when the projection applies exactly that change to exactly the
//! version it was made on (the version after it is the same only then); any other change takes
//! the ordinary path.
//!
//! The stored bytes are a pure function of the changes in log order — compaction loads the
//! stored bytes afresh and saves them, whatever the cache holds — so replicas and rebuilds
//! agree byte for byte; an Automerge upgrade that changed its save encoding would need a new
//! projection name (`"docs-3"`). (`"docs-1"` kept one value per document — base and chunks
//! appended — rewritten and hashed whole at every change, and compacted every 64 changes;
//! a node that finds a `docs-1` store rebuilds its projections from the log at start.)
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
//! | `d` ‖ doc id (16 bytes) | the base: an Automerge saved document |
//! | `n` ‖ doc id | [`DocMeta`]: chunks since the base, their bytes, the base's length and changes, the version |
//! | `c` ‖ doc id ‖ chunk number (u32 BE, from 0 after each compaction) | one change chunk |
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
/// First byte of a document's [`DocMeta`].
const META_TAG: u8 = b'n';
/// First byte of a change chunk's key.
const CHUNK_TAG: u8 = b'c';
/// Chunks since the base compact when there are at least this many, and at least a quarter of
/// the changes in the base: a compaction costs time in proportion to the history, so it runs
/// about once per quarter more history, a small constant cost per change.
pub const COMPACT_MIN_CHUNKS: u32 = 64;
/// Or when their bytes reach this, and twice the base's (documents of few large changes).
pub const COMPACT_MIN_BYTES: u64 = 1 << 20;
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

/// A document's version before its first change.
pub const VERSION_ZERO: [u8; 32] = [0; 32];

/// The version after `change` on a document at `version` (see the module docs).
pub fn next_version(version: &blake3::Hash, change: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"hearth.doc-version.v1\0");
    h.update(version.as_bytes());
    h.update(change);
    h.finalize()
}

/// What is kept next to a document's base (`n` ‖ doc id): 60 bytes, integers little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocMeta {
    /// Change chunks since the base (`c` keys 0 .. chunks).
    pub chunks: u32,
    /// Their bytes.
    pub chunk_bytes: u64,
    /// The base's length.
    pub base_len: u64,
    /// Changes in the base.
    pub base_changes: u64,
    /// The document's version.
    pub version: blake3::Hash,
}

impl DocMeta {
    const LEN: usize = 4 + 8 + 8 + 8 + 32;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.chunks.to_le_bytes());
        out.extend_from_slice(&self.chunk_bytes.to_le_bytes());
        out.extend_from_slice(&self.base_len.to_le_bytes());
        out.extend_from_slice(&self.base_changes.to_le_bytes());
        out.extend_from_slice(self.version.as_bytes());
        out
    }

    /// Decodes a stored record; `None` when the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<DocMeta> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let (chunks, rest) = bytes.split_at(4);
        let (chunk_bytes, rest) = rest.split_at(8);
        let (base_len, rest) = rest.split_at(8);
        let (base_changes, version) = rest.split_at(8);
        Some(DocMeta {
            chunks: u32::from_le_bytes(chunks.try_into().ok()?),
            chunk_bytes: u64::from_le_bytes(chunk_bytes.try_into().ok()?),
            base_len: u64::from_le_bytes(base_len.try_into().ok()?),
            base_changes: u64::from_le_bytes(base_changes.try_into().ok()?),
            version: blake3::Hash::from_bytes(version.try_into().ok()?),
        })
    }

    /// Whether the chunks since the base are due to be compacted into it.
    fn due(&self) -> bool {
        u64::from(self.chunks) >= u64::from(COMPACT_MIN_CHUNKS).max(self.base_changes / 4)
            || self.chunk_bytes >= COMPACT_MIN_BYTES.max(2 * self.base_len)
    }
}

/// A document as stored: bytes `Automerge::load` reads (base, then every chunk since) and its
/// version.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    /// Base and chunks, concatenated.
    pub bytes: Vec<u8>,
    /// Its version.
    pub version: blake3::Hash,
}

/// The documents table.
pub struct DocsProjection {
    /// Documents changed lately, loaded, by id.
    hot: HotCache<Vec<u8>, AutoCommit>,
    /// Documents a writer on this node already changed ([`Self::offer`]), by id, each under
    /// the version its change leads to.
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
    pub const NAME: &'static str = "docs-2";

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

    /// Key of a document's [`DocMeta`].
    pub fn meta_key(doc: &[u8]) -> Vec<u8> {
        tagged(META_TAG, doc)
    }

    /// Key of a document's change chunk `n` since its base.
    pub fn chunk_key(doc: &[u8], n: u32) -> Vec<u8> {
        let mut key = tagged(CHUNK_TAG, doc);
        key.extend_from_slice(&n.to_be_bytes());
        key
    }

    /// Document `doc`'s version, from a store's (or a transaction's) `get`; `None` when there
    /// is no such document. Errors: a malformed record.
    pub fn version(
        get: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
        doc: &[u8],
    ) -> Result<Option<blake3::Hash>, String> {
        Ok(Self::meta(get, doc)?.map(|m| m.version))
    }

    fn meta(
        get: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
        doc: &[u8],
    ) -> Result<Option<DocMeta>, String> {
        match get(&Self::meta_key(doc)) {
            None => Ok(None),
            Some(bytes) => DocMeta::decode(&bytes)
                .map(Some)
                .ok_or_else(|| "the stored document record is malformed".to_string()),
        }
    }

    /// Document `doc` as stored, from a store's (or a transaction's) `get`; `None` when there
    /// is no such document. Errors: a malformed record, or a base or chunk it names missing.
    pub fn stored(
        get: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
        doc: &[u8],
    ) -> Result<Option<StoredDoc>, String> {
        let Some(meta) = Self::meta(get, doc)? else {
            return Ok(None);
        };
        Ok(Some(StoredDoc {
            bytes: Self::stored_bytes(get, doc, &meta)?,
            version: meta.version,
        }))
    }

    fn stored_bytes(
        get: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
        doc: &[u8],
        meta: &DocMeta,
    ) -> Result<Vec<u8>, String> {
        let mut bytes = get(&Self::doc_key(doc))
            .ok_or_else(|| "the stored document has no base".to_string())?;
        bytes.reserve(meta.chunk_bytes as usize);
        for n in 0..meta.chunks {
            let chunk = get(&Self::chunk_key(doc, n))
                .ok_or_else(|| format!("the stored document lacks its change chunk {n}"))?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Key of a device's grant.
    pub fn grant_key(device: &[u8]) -> Vec<u8> {
        tagged(GRANT_TAG, device)
    }

    /// Decodes a stored grant; `None` when the bytes are not one.
    pub fn decode_grant(bytes: &[u8]) -> Option<DeviceGrant> {
        DeviceGrant::decode(bytes).ok()
    }

    /// The loaded document `doc`, taken out, if it is at `version` (the stored one). A writer
    /// changes it and gives it back with [`Self::offer`].
    pub fn take_loaded(&self, doc: &[u8], version: &blake3::Hash) -> Option<AutoCommit> {
        self.hot.take(&doc.to_vec(), version)
    }

    /// Gives back `loaded`, taken with [`Self::take_loaded`] and not changed since: it is still
    /// the document at `version`.
    pub fn keep_loaded(&self, doc: &[u8], version: blake3::Hash, loaded: AutoCommit) {
        self.hot.keep(doc.to_vec(), version, loaded);
    }

    /// Offers `after`: document `doc` as it was at `version`, then changed by exactly one
    /// committed change whose encoded bytes are `change` (and nothing else). When the
    /// projection applies that change to the document at that version, it keeps `after` as the
    /// loaded result instead of applying the change again; the stored bytes do not depend on
    /// it, and `after` is the document they load as, so nothing a replica or a rebuild sees
    /// changes.
    pub fn offer(&self, doc: &[u8], version: &blake3::Hash, change: &[u8], after: AutoCommit) {
        self.offered
            .keep(doc.to_vec(), next_version(version, change), after);
    }

    /// The offered document for `e` that leads to version `next`, and the change's bytes, when
    /// it passes the checks that stay cheap once the change is applied: the change decodes, is
    /// by the event's actor, and is the document's only head.
    fn take_offered(&self, e: &DocChanged, next: &blake3::Hash) -> Option<(AutoCommit, Vec<u8>)> {
        let mut after = self.offered.take(&e.doc_id.to_vec(), next)?;
        let change = Change::try_from(&e.change[..]).ok()?;
        if change.actor_id().to_bytes() != &e.actor[..] || after.get_heads() != [change.hash()] {
            return None;
        }
        Some((after, change.raw_bytes().to_vec()))
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
        let id = &e.doc_id[..];
        let meta = Self::meta(&mut |k| tx.get(k), id).map_err(|r| format!("DocChanged: {r}"))?;
        let version = meta.map_or(blake3::Hash::from_bytes(VERSION_ZERO), |m| m.version);
        let next = next_version(&version, &e.change);
        let (mut doc, raw) = match self.take_offered(e, &next) {
            Some(done) => done,
            None => {
                let mut doc = match &meta {
                    Some(m) => match self.hot.take(&id.to_vec(), &version) {
                        Some(doc) => doc,
                        None => load(&Self::stored_bytes(&mut |k| tx.get(k), id, m)?)
                            .map_err(|r| format!("DocChanged: {r}"))?,
                    },
                    None => AutoCommit::new(),
                };
                let raw = apply_to(&mut doc, &e.actor, &e.change)
                    .map_err(|reason| format!("DocChanged: {reason}"))?;
                (doc, raw)
            }
        };
        let meta = match meta {
            None => {
                let base = save(&mut doc);
                tx.put(&Self::doc_key(id), &base);
                DocMeta {
                    chunks: 0,
                    chunk_bytes: 0,
                    base_len: base.len() as u64,
                    base_changes: 1,
                    version: next,
                }
            }
            Some(m) => {
                tx.put(&Self::chunk_key(id, m.chunks), &raw);
                let grown = DocMeta {
                    chunks: m.chunks + 1,
                    chunk_bytes: m.chunk_bytes + raw.len() as u64,
                    base_len: m.base_len,
                    base_changes: m.base_changes,
                    version: next,
                };
                if grown.due() {
                    // Compact from the stored bytes alone, so every replica saves the same
                    // document.
                    let bytes = Self::stored_bytes(&mut |k| tx.get(k), id, &grown)?;
                    let base = save(&mut load(&bytes).map_err(|r| format!("DocChanged: {r}"))?);
                    tx.put(&Self::doc_key(id), &base);
                    for n in 0..grown.chunks {
                        tx.delete(&Self::chunk_key(id, n));
                    }
                    DocMeta {
                        chunks: 0,
                        chunk_bytes: 0,
                        base_len: base.len() as u64,
                        base_changes: grown.base_changes + u64::from(grown.chunks),
                        version: next,
                    }
                } else {
                    grown
                }
            }
        };
        tx.put(&Self::meta_key(id), &meta.encode());
        self.hot.keep(id.to_vec(), next, doc);
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

    /// What `state` stores for `id`: loadable bytes and version.
    fn stored(state: &MemState, id: &[u8]) -> StoredDoc {
        DocsProjection::stored(&mut |k| state.get(k), id)
            .expect("well formed")
            .expect("stored")
    }

    /// Every key of document `id` in `state`, with its value.
    fn doc_entries(state: &MemState, id: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        state
            .entries()
            .iter()
            .filter(|(k, _)| k.len() > DOC_ID_LEN && &k[1..1 + DOC_ID_LEN] == id)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
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

        let doc = Automerge::load(&stored(&state, &id).bytes).expect("load");
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
    fn chunks_compact_as_the_history_grows_and_the_cache_changes_no_byte() {
        // Enough changes for several compactions. One projection keeps the document hot; the
        // other starts cold for every change (as after a restart or an eviction). Every key of
        // the document must be the same after every change.
        let id = [5u8; DOC_ID_LEN];
        let mut a = AutoCommit::new().with_actor(ActorId::from(&[1u8; 16][..]));
        let (hot, mut hot_state) = (DocsProjection::default(), MemState::new());
        let mut cold_state = MemState::new();
        let mut compactions = 0;
        let mut version = blake3::Hash::from_bytes(VERSION_ZERO);
        for i in 0..400i64 {
            let text = format!("{i:>40}");
            a.put(ROOT, if i % 2 == 0 { "even" } else { "odd" }, text.as_str())
                .expect("put");
            a.commit();
            let mut c = a.get_last_local_change().expect("a change");
            version = next_version(&version, c.raw_bytes());
            let event = doc_event(&id, &mut c);
            let index = 1 + i as u64;
            assert_eq!(hot_state.apply(&hot, &ctx(index), &event), Applied::Ok);
            let cold = DocsProjection::default();
            assert_eq!(cold_state.apply(&cold, &ctx(index), &event), Applied::Ok);
            assert_eq!(
                doc_entries(&hot_state, &id),
                doc_entries(&cold_state, &id),
                "after change {i}"
            );
            let meta =
                DocMeta::decode(&hot_state.get(&DocsProjection::meta_key(&id)).expect("meta"))
                    .expect("decodes");
            assert_eq!(meta.version, version, "the version chains every change");
            assert!(!meta.due(), "compacted when due");
            let chunks = (0..meta.chunks + 1)
                .filter(|n| hot_state.get(&DocsProjection::chunk_key(&id, *n)).is_some())
                .count();
            assert_eq!(chunks as u32, meta.chunks, "exactly the chunks it counts");
            if i > 0 && meta.chunks == 0 {
                compactions += 1;
            }
        }
        assert!(compactions >= 4, "{compactions} compactions");
        let doc = Automerge::load(&stored(&hot_state, &id).bytes).expect("load");
        assert_eq!(doc.get_heads(), a.get_heads());
        // The store no longer holds what the cache has (another store, as after a snapshot
        // install): the cache is not used, and the change lacks its dependencies there.
        let mut replaced = MemState::new();
        let out = replaced.apply(&hot, &ctx(901), &doc_event(&id, &mut edit(&mut a, "n", 1)));
        assert!(
            matches!(&out, Applied::Rejected(r) if r.contains("lacks")),
            "{out:?}"
        );
    }

    #[test]
    fn an_offered_document_is_kept_only_for_its_change_on_its_version() {
        let id = [4u8; DOC_ID_LEN];
        let writer = ActorId::from(&[6u8; 16][..]);
        // `p` takes offers; `q` never gets one and applies every change itself.
        let (p, q) = (DocsProjection::default(), DocsProjection::default());
        let (mut state, mut cold) = (MemState::new(), MemState::new());
        let both = |state: &mut MemState, cold: &mut MemState, index, event: &Envelope| {
            assert_eq!(state.apply(&p, &ctx(index), event), Applied::Ok);
            assert_eq!(cold.apply(&q, &ctx(index), event), Applied::Ok);
            assert_eq!(
                doc_entries(state, &id),
                doc_entries(cold, &id),
                "the same either way"
            );
        };
        let mut a = AutoCommit::new().with_actor(writer.clone());
        both(
            &mut state,
            &mut cold,
            1,
            &doc_event(&id, &mut edit(&mut a, "n", 0)),
        );
        let version = |s: &MemState| stored(s, &id).version;

        // A writer takes the loaded document, changes it and offers it: the projection keeps
        // that very document (it carries the writer's actor; a loaded one has a random actor).
        let mut doc = p
            .take_loaded(&id, &version(&state))
            .expect("loaded after apply");
        doc.set_actor(writer.clone());
        let mut change = edit(&mut doc, "n", 1);
        p.offer(&id, &version(&state), change.raw_bytes(), doc);
        both(&mut state, &mut cold, 2, &doc_event(&id, &mut change));
        let kept = p.take_loaded(&id, &version(&state)).expect("kept");
        assert_eq!(kept.get_actor(), &writer);

        // An offer made on another version, or one that is not the change applied (here: the
        // document before it), is not used: the change is applied the ordinary way.
        let mut b = kept;
        let mut next = edit(&mut b, "n", 2);
        assert!(
            p.take_loaded(&id, &version(&state)).is_none(),
            "taken above"
        );
        p.offer(&id, &blake3::hash(b"other"), next.raw_bytes(), b.fork());
        let mut unchanged = load(&stored(&state, &id).bytes).expect("load");
        unchanged.set_actor(writer.clone());
        p.offer(&id, &version(&state), next.raw_bytes(), unchanged);
        both(&mut state, &mut cold, 3, &doc_event(&id, &mut next));
        let mut kept = p.take_loaded(&id, &version(&state)).expect("kept");
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
            stored(&state, &id).bytes
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
