//! A node's document operations: read a document as this node has applied it, record the
//! change a JSON body asks for, take changes in through the Automerge sync protocol, and pair
//! devices. Every change becomes a committed `DocChanged`; the `docs-2` projection holds the
//! result. The HTTP routes (`crate::http::docs`) and the device sync (`crate::docs::sync_net`)
//! are built on these.

use super::Node;
use crate::docs::{json, DocError, DocId};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Automerge, Change, ChangeHash, ReadDoc};
use bytes::Bytes;
use hearth_projections::{DeviceGrant, DocsProjection, StoredDoc};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{DevicePaired, DocChanged, Envelope};
use prost::Message as _;
use std::time::Duration;

/// How long a write waits to be applied on this node after it is committed.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The outcome of a document write.
#[derive(Debug, Clone)]
pub struct DocWritten {
    /// The document.
    pub id: DocId,
    /// Its heads afterwards.
    pub heads: Vec<ChangeHash>,
    /// Changes committed by this write (0: the document already was what was asked).
    pub changes: usize,
    /// Log index of the last change committed (or this node's applied index when none was).
    pub index: u64,
}

/// A document listed.
#[derive(Debug, Clone)]
pub struct DocSummary {
    /// Its id.
    pub id: DocId,
    /// Size of its saved (compacted) base; chunks since the last compaction are not counted.
    pub saved_bytes: usize,
}

/// Hex names of change hashes.
pub fn heads_hex(heads: &[ChangeHash]) -> Vec<String> {
    heads.iter().map(|h| h.to_string()).collect()
}

impl Node {
    fn doc_read_error(e: impl std::fmt::Display) -> DocError {
        DocError::Node(format!("reading the documents table: {e}"))
    }

    /// Runs `f` with a `get` on the documents table as this node has applied it.
    fn with_docs<R>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&[u8]) -> Option<Vec<u8>>) -> Result<R, String>,
    ) -> Result<R, DocError> {
        self.inner
            .sm
            .with_store(|s| {
                let mut failed = None;
                let out = f(&mut |key: &[u8]| match s.get(DocsProjection::NAME, key) {
                    Ok(v) => v,
                    Err(e) => {
                        failed.get_or_insert(e.to_string());
                        None
                    }
                });
                match failed {
                    Some(e) => Err(e),
                    None => out,
                }
            })
            .map_err(Self::doc_read_error)?
            .map_err(Self::doc_read_error)
    }

    /// Document `id` as stored on this node: bytes `Automerge::load` reads, and its version.
    pub fn doc_stored(&self, id: &DocId) -> Result<Option<StoredDoc>, DocError> {
        self.with_docs(|get| DocsProjection::stored(get, &id.0))
    }

    /// Document `id`'s version on this node (a small read: not the document).
    pub fn doc_version(&self, id: &DocId) -> Result<Option<blake3::Hash>, DocError> {
        self.with_docs(|get| DocsProjection::version(get, &id.0))
    }

    /// Document `id` as this node has applied it.
    pub fn doc(&self, id: &DocId) -> Result<Automerge, DocError> {
        let stored = self.doc_stored(id)?.ok_or(DocError::NotFound(*id))?;
        Automerge::load(&stored.bytes)
            .map_err(|e| DocError::Node(format!("stored document {id} is malformed: {e}")))
    }

    /// Up to `limit` documents with ids after `after`, in id order.
    pub fn list_docs(
        &self,
        after: Option<&DocId>,
        limit: usize,
    ) -> Result<Vec<DocSummary>, DocError> {
        let from = match after {
            Some(a) => {
                let mut k = DocsProjection::doc_key(&a.0);
                k.push(0);
                k
            }
            None => DocsProjection::DOC_PREFIX.to_vec(),
        };
        let rows = self
            .inner
            .sm
            .with_store(|s| {
                s.scan_prefix_from_limit(
                    DocsProjection::NAME,
                    DocsProjection::DOC_PREFIX,
                    &from,
                    limit,
                )
            })
            .map_err(Self::doc_read_error)?
            .map_err(Self::doc_read_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| {
                let id = DocId::from_slice(DocsProjection::parse_doc_key(&k)?)?;
                Some(DocSummary {
                    id,
                    saved_bytes: v.len(),
                })
            })
            .collect())
    }

    /// Creates a document, optionally with `initial` content (a JSON object).
    pub async fn create_doc(
        &self,
        initial: Option<&serde_json::Value>,
    ) -> Result<DocWritten, DocError> {
        let id = DocId::random();
        if let Some(v) = initial {
            json::check_root(v).map_err(DocError::BadInput)?;
        }
        let _guard = self.inner.docs.lock(&id).await;
        let mut doc = AutoCommit::new().with_actor(self.inner.docs.actor().clone());
        if let Some(v) = initial {
            json::apply(&mut doc, v).map_err(|e| DocError::BadInput(e.to_string()))?;
        }
        if doc.commit().is_none() {
            // Nothing to say yet: an empty change still makes the document exist.
            doc.empty_change(Default::default());
        }
        let change = doc
            .get_last_local_change()
            .ok_or_else(|| DocError::Node("Automerge made no change".into()))?;
        let index = self.commit_doc_changes(&id, vec![change]).await?;
        Ok(DocWritten {
            id,
            heads: doc.get_heads(),
            changes: 1,
            index,
        })
    }

    /// Records the change that turns document `id` into `value` (a JSON object).
    pub async fn put_doc(
        &self,
        id: &DocId,
        value: &serde_json::Value,
    ) -> Result<DocWritten, DocError> {
        json::check_root(value).map_err(DocError::BadInput)?;
        let _guard = self.inner.docs.lock(id).await;
        let version = self.doc_version(id)?.ok_or(DocError::NotFound(*id))?;
        // The document as loaded for the last PUT, when it is still at the stored version
        // (loading costs time proportional to the document's history).
        let (mut doc, stored) = match self.inner.docs.take_loaded(id, &version) {
            Some(doc) => (doc, version),
            None => {
                let saved = self.doc_stored(id)?.ok_or(DocError::NotFound(*id))?;
                let doc = AutoCommit::load(&saved.bytes).map_err(|e| {
                    DocError::Node(format!("stored document {id} is malformed: {e}"))
                })?;
                (doc, saved.version)
            }
        };
        doc.set_actor(self.inner.docs.actor().clone());
        json::apply(&mut doc, value).map_err(|e| DocError::BadInput(e.to_string()))?;
        if doc.commit().is_none() {
            let heads = doc.get_heads();
            self.inner.docs.keep(id, stored, doc);
            return Ok(DocWritten {
                id: *id,
                heads,
                changes: 0,
                index: self.applied_index(),
            });
        }
        let change = doc
            .get_last_local_change()
            .ok_or_else(|| DocError::Node("Automerge made no change".into()))?;
        let heads = doc.get_heads();
        // The projection keeps this document as the result when it applies exactly this change
        // to exactly the bytes it was loaded from, instead of applying the change again.
        self.inner.docs.offer(id, &stored, change.raw_bytes(), doc);
        let index = self.commit_doc_changes(id, vec![change]).await?;
        Ok(DocWritten {
            id: *id,
            heads,
            changes: 1,
            index,
        })
    }

    /// The changes of document `id` that `since` (heads a client has) lacks, encoded.
    pub fn doc_changes_since(
        &self,
        id: &DocId,
        since: &[ChangeHash],
    ) -> Result<(Vec<ChangeHash>, Vec<Vec<u8>>), DocError> {
        let doc = self.doc(id)?;
        if let Some(h) = since.iter().find(|h| doc.get_change_by_hash(h).is_none()) {
            return Err(DocError::BadInput(format!(
                "document {id} has no change {h}"
            )));
        }
        let changes = doc
            .get_changes(since)
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        Ok((doc.get_heads(), changes))
    }

    /// One round of the Automerge sync protocol with `client` on document `id`: takes its
    /// message in (committing every change it brings, in causal order), answers the next
    /// message for it (`None`: nothing more to say). A malformed message changes nothing.
    pub async fn sync_doc(
        &self,
        client: &str,
        id: &DocId,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>, DocError> {
        let message = decode_sync(message)?;
        self.sync_step(client, id, Some(message), SyncRights::WRITE)
            .await
    }

    /// The sync protocol's step on this node for peer `session` and document `id`: receive
    /// `incoming` if any (its changes committed, in causal order), then answer the next message
    /// for the peer. Without `rights.write` a message carrying changes is refused; with
    /// `rights.create` a document this node lacks starts empty.
    pub(crate) async fn sync_step(
        &self,
        session: &str,
        id: &DocId,
        incoming: Option<sync::Message>,
        rights: SyncRights,
    ) -> Result<Option<Vec<u8>>, DocError> {
        let _guard = self.inner.docs.lock(id).await;
        let mut doc = match self.doc(id) {
            Err(DocError::NotFound(_)) if rights.create => Automerge::new(),
            other => other?,
        };
        let session = self.inner.docs.session(session, id);
        // Work on a copy of the state: a message that fails leaves the session as it was.
        let mut state = session.lock().clone();
        if let Some(message) = incoming {
            let before = doc.get_heads();
            doc.receive_sync_message(&mut state, message)
                .map_err(|e| DocError::BadInput(format!("the sync message does not apply: {e}")))?;
            let fresh = doc.get_changes(&before);
            if !fresh.is_empty() {
                if !rights.write {
                    return Err(DocError::BadInput(format!(
                        "document {id} is read-only for this peer"
                    )));
                }
                self.commit_doc_changes(id, fresh).await?;
            }
        }
        let reply = doc.generate_sync_message(&mut state).map(|m| m.encode());
        *session.lock() = state;
        Ok(reply)
    }

    /// Commits `changes` to document `id`, one event each, in order, and waits until this node
    /// has applied the last. Answers its log index. A change the log already holds (a client
    /// sending it twice) is not an error.
    pub(crate) async fn commit_doc_changes(
        &self,
        id: &DocId,
        changes: Vec<Change>,
    ) -> Result<u64, DocError> {
        let mut last = self.applied_index();
        for change in changes {
            let env = Envelope {
                schema_version: hearth_proto::SCHEMA_VERSION,
                event: Some(Event::DocChanged(DocChanged {
                    doc_id: Bytes::copy_from_slice(&id.0),
                    actor: Bytes::from(change.actor_id().to_bytes().to_vec()),
                    change: Bytes::from(change.raw_bytes().to_vec()),
                })),
                ..Envelope::default()
            };
            let committed = self.propose(Bytes::from(env.encode_to_vec())).await?;
            if let Some(reason) = committed.rejected {
                if !reason.contains("duplicate change") {
                    return Err(DocError::Rejected(reason));
                }
            }
            last = committed.index;
        }
        if !self.wait_applied(last, APPLY_WAIT).await {
            return Err(DocError::Node(format!(
                "committed at index {last} but not applied here within {APPLY_WAIT:?}"
            )));
        }
        Ok(last)
    }

    /// The grant of device `device` (PeerId bytes), if it is paired.
    pub fn device_grant(&self, device: &[u8]) -> Result<Option<DeviceGrant>, DocError> {
        Ok(self
            .inner
            .sm
            .with_store(|s| s.get(DocsProjection::NAME, &DocsProjection::grant_key(device)))
            .map_err(Self::doc_read_error)?
            .map_err(Self::doc_read_error)?
            .as_deref()
            .and_then(DocsProjection::decode_grant))
    }

    /// Commits a device pairing (or its revocation).
    pub async fn pair_device(&self, paired: DevicePaired) -> Result<u64, DocError> {
        let env = Envelope {
            schema_version: hearth_proto::SCHEMA_VERSION,
            event: Some(Event::DevicePaired(paired)),
            ..Envelope::default()
        };
        let committed = self.propose(Bytes::from(env.encode_to_vec())).await?;
        if let Some(reason) = committed.rejected {
            return Err(DocError::Rejected(reason));
        }
        self.wait_applied(committed.index, APPLY_WAIT).await;
        Ok(committed.index)
    }

    /// The last log index this node has applied (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.inner
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0)
    }
}

/// What a sync peer may do to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRights {
    /// Its changes may be committed.
    pub write: bool,
    /// A document this node lacks starts empty (instead of "no document").
    pub create: bool,
}

impl SyncRights {
    /// An HTTP client with a write token: changes, existing documents only.
    pub const WRITE: SyncRights = SyncRights {
        write: true,
        create: false,
    };
}

/// Decodes a sync message (400 when it is not one).
pub fn decode_sync(message: &[u8]) -> Result<sync::Message, DocError> {
    sync::Message::decode(message)
        .map_err(|e| DocError::BadInput(format!("not an Automerge sync message: {e}")))
}
