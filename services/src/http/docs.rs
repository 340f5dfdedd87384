//! Documents over HTTP: plain JSON for clients without Automerge, the Automerge sync protocol
//! for clients with it, and device pairing.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/docs` | optional JSON object body → 201 [`DocWriteReply`] (a new id) |
//! | `GET /v1/docs?after=ID&limit=N` | [`DocList`]: ids in order, a page at a time |
//! | `GET /v1/docs/{id}` | [`DocView`]: the JSON view and the heads; `?after=INDEX` / `Hearth-After` read-your-writes |
//! | `PUT /v1/docs/{id}` | JSON object → [`DocWriteReply`]: the change that produces it is recorded |
//! | `GET /v1/docs/{id}/changes?since=H1,H2` | [`DocChanges`]: the changes those heads lack (base64 Automerge change chunks) |
//! | `POST /v1/docs/{id}/sync?client=C` | body: an Automerge sync message → 200 the reply message, or 204 when there is nothing to say; the sync state of client `C` (or header `Hearth-Sync-Client`) is kept here |
//! | `POST /v1/admin/devices` | [`PairRequest`] → 201: a device may sync the named documents over `/hearth/sync/1` |
//! | `GET /v1/admin/devices/{peer_id}` | [`DeviceInfo`] |
//!
//! Malformed JSON, ids, heads, changes or sync messages get 400 and change nothing.

use super::blobs::wait_after;
use super::{check_admin, check_writer, json_body, ApiError};
use crate::docs::{DocError, DocId};
use crate::node::doc_ops::heads_hex;
use crate::node::Node;
use automerge::ChangeHash;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use hearth_proto::v1::DevicePaired;
use serde::{Deserialize, Serialize};

/// Most documents a list answers at once.
pub const MAX_LIST: usize = 1000;
/// The header naming a sync client.
const SYNC_CLIENT: &str = "hearth-sync-client";

impl From<DocError> for ApiError {
    fn from(e: DocError) -> Self {
        match e {
            DocError::BadId(_) | DocError::BadInput(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
            }
            DocError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            DocError::Rejected(_) => ApiError::new(StatusCode::CONFLICT, "rejected", e.to_string()),
            DocError::Propose(p) => p.into(),
            DocError::Node(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "failed", m),
        }
    }
}

/// The answer to a document write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocWriteReply {
    /// The document id.
    pub id: String,
    /// Its heads after the write.
    pub heads: Vec<String>,
    /// Changes recorded (0 when it already was as asked).
    pub changes: usize,
    /// Log index of the write: a read with `?after=INDEX` on any member sees it.
    pub index: u64,
}

/// A document's view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DocView {
    /// The document id.
    pub id: String,
    /// Its heads.
    pub heads: Vec<String>,
    /// Its JSON value.
    pub value: serde_json::Value,
}

/// A page of documents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocList {
    /// Documents in id order.
    pub docs: Vec<DocListed>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// A document in a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocListed {
    /// The document id.
    pub id: String,
    /// Bytes of its saved (compacted) base; changes since the last compaction not counted.
    pub saved_bytes: usize,
}

/// The changes a client lacks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocChanges {
    /// The document's heads now.
    pub heads: Vec<String>,
    /// The changes, each an Automerge change chunk, base64 (standard alphabet).
    pub changes: Vec<String>,
}

/// `POST /v1/admin/devices`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairRequest {
    /// The device's PeerId (`hearth id --data-dir` on the device).
    pub peer_id: String,
    /// A label.
    #[serde(default)]
    pub name: String,
    /// Documents it may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Documents it may read and write.
    #[serde(default)]
    pub write: Vec<String>,
    /// Withdraw its grant instead.
    #[serde(default)]
    pub revoke: bool,
}

/// A device's grant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its PeerId.
    pub peer_id: String,
    /// Its label.
    pub name: String,
    /// Documents it may read.
    pub read: Vec<String>,
    /// Documents it may write.
    pub write: Vec<String>,
    /// Log index of the grant.
    pub index: u64,
}

/// Query of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// Query of a read.
#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    after: Option<u64>,
}

/// Query of `changes`.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    since: Option<String>,
    after: Option<u64>,
}

/// Query of `sync`.
#[derive(Debug, Deserialize)]
pub struct SyncQuery {
    client: Option<String>,
}

fn reply(w: crate::node::doc_ops::DocWritten) -> DocWriteReply {
    DocWriteReply {
        id: w.id.to_string(),
        heads: heads_hex(&w.heads),
        changes: w.changes,
        index: w.index,
    }
}

fn json_value(body: &Bytes) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not JSON: {e}"),
        )
    })
}

/// `POST /v1/docs`.
pub async fn create(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<DocWriteReply>), ApiError> {
    check_writer(&node, &headers)?;
    let initial = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(json_value(&body)?)
    };
    let w = node.create_doc(initial.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(reply(w))))
}

/// `GET /v1/docs`.
pub async fn list(
    State(node): State<Node>,
    Query(q): Query<ListQuery>,
) -> Result<Json<DocList>, ApiError> {
    let after = q.after.as_deref().map(DocId::parse).transpose()?;
    let limit = q.limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST);
    let docs = node.list_docs(after.as_ref(), limit)?;
    let next = (docs.len() == limit)
        .then(|| docs.last().map(|d| d.id.to_string()))
        .flatten();
    Ok(Json(DocList {
        docs: docs
            .into_iter()
            .map(|d| DocListed {
                id: d.id.to_string(),
                saved_bytes: d.saved_bytes,
            })
            .collect(),
        next,
    }))
}

/// `GET /v1/docs/{id}`.
pub async fn get(
    State(node): State<Node>,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> Result<Json<DocView>, ApiError> {
    let id = DocId::parse(&id)?;
    wait_after(&node, &headers, q.after).await?;
    let doc = node.doc(&id)?;
    Ok(Json(DocView {
        id: id.to_string(),
        heads: heads_hex(&doc.get_heads()),
        value: crate::docs::json::view(&doc),
    }))
}

/// `PUT /v1/docs/{id}`.
pub async fn put(
    State(node): State<Node>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DocWriteReply>, ApiError> {
    check_writer(&node, &headers)?;
    let id = DocId::parse(&id)?;
    let value = json_value(&body)?;
    Ok(Json(reply(node.put_doc(&id, &value).await?)))
}

/// `GET /v1/docs/{id}/changes`.
pub async fn changes(
    State(node): State<Node>,
    Path(id): Path<String>,
    Query(q): Query<ChangesQuery>,
    headers: HeaderMap,
) -> Result<Json<DocChanges>, ApiError> {
    let id = DocId::parse(&id)?;
    wait_after(&node, &headers, q.after).await?;
    let since = parse_heads(q.since.as_deref().unwrap_or(""))?;
    let (heads, changes) = node.doc_changes_since(&id, &since)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Json(DocChanges {
        heads: heads_hex(&heads),
        changes: changes.iter().map(|c| b64.encode(c)).collect(),
    }))
}

fn parse_heads(s: &str) -> Result<Vec<ChangeHash>, ApiError> {
    s.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.parse::<ChangeHash>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "not a change hash (64 hex digits): {:?}",
                        h.chars().take(80).collect::<String>()
                    ),
                )
            })
        })
        .collect()
}

/// `POST /v1/docs/{id}/sync`.
pub async fn sync(
    State(node): State<Node>,
    Path(id): Path<String>,
    Query(q): Query<SyncQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_writer(&node, &headers)?;
    let id = DocId::parse(&id)?;
    let client = headers
        .get(SYNC_CLIENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.client)
        .filter(|c| !c.is_empty() && c.len() <= 128)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "name the sync client: ?client=ID or Hearth-Sync-Client (1–128 characters)",
            )
        })?;
    match node.sync_doc(&format!("http:{client}"), &id, &body).await? {
        Some(message) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            message,
        )
            .into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `POST /v1/admin/devices`.
pub async fn pair(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Json<PairRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<DeviceInfo>), ApiError> {
    check_admin(&node, &headers)?;
    let req = json_body(body)?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let device: libp2p::PeerId = req
        .peer_id
        .parse()
        .map_err(|_| bad(format!("not a PeerId: {:?}", req.peer_id)))?;
    let ids = |list: &[String]| -> Result<Vec<bytes::Bytes>, ApiError> {
        list.iter()
            .map(|s| Ok(bytes::Bytes::copy_from_slice(&DocId::parse(s)?.0)))
            .collect()
    };
    let index = node
        .pair_device(DevicePaired {
            device: bytes::Bytes::from(device.to_bytes()),
            name: req.name.clone(),
            read_docs: ids(&req.read)?,
            write_docs: ids(&req.write)?,
            revoked: req.revoke,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceInfo {
            peer_id: device.to_string(),
            name: req.name,
            read: req.read,
            write: req.write,
            index,
        }),
    ))
}

/// `GET /v1/admin/devices/{peer_id}`.
pub async fn device(
    State(node): State<Node>,
    Path(peer): Path<String>,
) -> Result<Json<DeviceInfo>, ApiError> {
    let device: libp2p::PeerId = peer.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("not a PeerId: {peer:?}"),
        )
    })?;
    let grant = node.device_grant(&device.to_bytes())?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("device {device} is not paired"),
        )
    })?;
    let hexes = |v: &[Vec<u8>]| v.iter().map(|d| crate::hex::encode(d)).collect();
    Ok(Json(DeviceInfo {
        peer_id: device.to_string(),
        name: grant.name.clone(),
        read: hexes(&grant.read_docs),
        write: hexes(&grant.write_docs),
        index: grant.granted_index,
    }))
}
