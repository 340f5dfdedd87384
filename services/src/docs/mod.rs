//! Offline-first documents: Automerge documents whose every change is a committed `DocChanged`
//! event, so the log holds every fact and the audit covers documents.
//!
//! * [`json`]: a plain JSON body ↔ the Automerge value tree (`PUT /v1/docs/{id}` records the
//!   change that turns the document into the JSON sent).
//! * [`DocRuntime`]: what a node keeps for documents besides the projection: its actor, the
//!   per-document write locks (changes to one document are produced one at a time, so two
//!   concurrent PUTs never reuse an Automerge sequence number), and the server-side sync
//!   states of clients that speak the Automerge sync protocol (`POST /v1/docs/{id}/sync`).
//! * The node's operations are in `crate::node` (`doc_ops.rs`); the HTTP routes in
//!   `crate::http::docs`; the state is the `docs-2` projection
//!   ([`hearth_projections::DocsProjection`]).
//!
//! What it is **not**: not a document database with queries; documents are small metadata
//! (each change is one log entry of at most `MAX_EVENT_BYTES`).

pub mod device_sync;
pub mod json;
mod runtime;

pub use runtime::{DocRuntime, SyncSession};

use hearth_projections::DOC_ID_LEN;

/// A document id: 16 random bytes, written as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(pub [u8; DOC_ID_LEN]);

impl DocId {
    /// A fresh random id.
    pub fn random() -> Self {
        DocId(rand::random())
    }

    /// Parses 32 hex digits.
    pub fn parse(s: &str) -> Result<Self, DocError> {
        let bytes = crate::hex::decode(s)
            .filter(|b| b.len() == DOC_ID_LEN)
            .ok_or_else(|| DocError::BadId(s.chars().take(80).collect()))?;
        let mut id = [0u8; DOC_ID_LEN];
        id.copy_from_slice(&bytes);
        Ok(DocId(id))
    }

    /// From stored bytes (a key or an event field).
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; DOC_ID_LEN]>::try_from(b).ok().map(DocId)
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

/// Why a document operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// Not a document id.
    #[error("not a document id (32 hex digits): {0:?}")]
    BadId(String),
    /// No such document.
    #[error("no document {0}")]
    NotFound(DocId),
    /// The JSON, change or sync message is not acceptable; nothing was changed.
    #[error("{0}")]
    BadInput(String),
    /// The log refused the change (recorded as rejected): e.g. a sequence number reused.
    #[error("the change was rejected: {0}")]
    Rejected(String),
    /// Committing failed.
    #[error(transparent)]
    Propose(#[from] crate::node::ProposeError),
    /// This node could not read its state.
    #[error("{0}")]
    Node(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print() {
        let id = DocId::random();
        assert_eq!(DocId::parse(&id.to_string()).expect("parse"), id);
        assert!(DocId::parse("abc").is_err());
        assert!(DocId::parse(&"zz".repeat(16)).is_err());
    }
}
