//! The node's HTTP API (axum): health, client writes, cluster administration.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 when a leader is known and everything committed is applied, else 503 |
//! | `POST /v1/events` | body: a prost-encoded `hearth.v1.Envelope`; 201 [`WriteReply`] once committed and applied |
//! | `GET /v1/events?from=N&kind=K&follow=B` | the log as Server-Sent Events, catch-up then live: see [`events_stream`] |
//! | `GET /metrics` | Prometheus text format: see [`crate::metrics`] |
//! | `PUT /v1/blobs`, `GET`/`HEAD`/`DELETE /v1/blobs/{hash}`, `GET /v1/blobs/{hash}/status` | blobs: see [`blobs`] |
//! | `/v1/docs…`, `/v1/admin/devices…` | documents and device pairing: see [`docs`] |
//! | `GET /v1/admin/cluster` | [`ClusterStatus`] (the leader's view when reachable) |
//! | `POST /v1/admin/join` | [`JoinRequest`] → [`JoinReply`] (leader; forwarded there) |
//! | `POST /v1/admin/promote` | [`PromoteRequest`] → [`ClusterStatus`] (leader; forwarded there) |
//! | `POST /v1/admin/remove` | [`RemoveRequest`] → [`ClusterStatus`] (leader; forwarded there) |
//! | `GET /v1/admin/node` | [`NodeInfo`]: this node's log range, head, applied index, digests |
//! | `GET /v1/admin/log/{index}` | [`EntryInfo`] of one entry of this node's log |
//! | `POST /v1/admin/audit`, `GET /v1/admin/audit/{id}` | the online audit of this node: see [`audit`] |
//!
//! Every error is a JSON [`ErrorBody`] with a 4xx/5xx status; 503 answers carry `Retry-After`.
//! When the listener is not on loopback, admin routes need `Authorization: Bearer ADMIN_TOKEN`
//! and writes (events, blob PUT and DELETE) the API token or the admin token; reads need none.

pub mod audit;
pub mod blobs;
pub mod docs;
pub mod events_stream;
pub mod metrics;
pub mod peers;

use crate::node::api::{
    ClusterStatus, EntryInfo, ErrorBody, ErrorDetail, JoinReply, JoinRequest, NodeInfo,
    PromoteRequest, RemoveRequest, WriteReply,
};
use crate::node::{settings::MAX_EVENT_BYTES, AdminError, Node, ProposeError};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// A new error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match &e {
            ProposeError::Busy => Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
            ProposeError::Unavailable(_) => Self::unavailable(e.to_string()),
            ProposeError::Invalid(_) => Self::bad_request(e.to_string()),
            ProposeError::TooLarge(_) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            ProposeError::Failed(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string())
            }
        }
    }
}

/// The router for `node`.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/events", post(write_event).get(events_stream::stream))
        .route("/metrics", get(metrics::scrape))
        .route(
            "/v1/blobs",
            put(blobs::put_blob).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/blobs/{hash}",
            get(blobs::get_blob).delete(blobs::delete_blob),
        )
        .route("/v1/blobs/{hash}/status", get(blobs::blob_status))
        .route("/v1/docs", post(docs::create).get(docs::list))
        .route("/v1/docs/{id}", get(docs::get).put(docs::put))
        .route("/v1/docs/{id}/changes", get(docs::changes))
        .route("/v1/docs/{id}/sync", post(docs::sync))
        .route("/v1/admin/devices", post(docs::pair))
        .route("/v1/admin/devices/{peer_id}", get(docs::device))
        .route("/v1/peers", get(peers::list))
        .route("/v1/admin/cluster", get(cluster_status))
        .route("/v1/admin/join", post(join))
        .route("/v1/admin/promote", post(promote))
        .route("/v1/admin/remove", post(remove))
        .route("/v1/admin/node", get(node_info))
        .route("/v1/admin/log/{index}", get(log_entry))
        .route("/v1/admin/audit", post(audit::start))
        .route("/v1/admin/audit/{id}", get(audit::status))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES + 1))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(node)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(node): State<Node>) -> Result<Json<serde_json::Value>, ApiError> {
    node.ready().map_err(ApiError::unavailable)?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

async fn write_event(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WriteReply>), ApiError> {
    check_writer(&node, &headers)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("an event may have at most {MAX_EVENT_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    let applied = node.propose(body).await?;
    let reply = WriteReply {
        index: applied.index,
        position: applied.position,
        outcome: if applied.rejected.is_some() {
            "rejected"
        } else {
            "applied"
        }
        .into(),
        reason: applied.rejected,
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

fn check_admin(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    if !node.admin_token_required() {
        return Ok(());
    }
    let expected = node.admin_token().unwrap_or_default();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin calls need Authorization: Bearer <admin token>",
        ));
    }
    Ok(())
}

/// Writes (events, blobs) need the API token or the admin token when the listener is not on
/// loopback.
fn check_writer(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    if !node.admin_token_required() {
        return Ok(());
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let accepted = [node.api_token(), node.admin_token()]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .any(|t| constant_time_eq(given.as_bytes(), t.as_bytes()));
    if !accepted {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "writes need Authorization: Bearer <api token> (or the admin token)",
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json_body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Sends the same admin call to the leader and relays its answer.
async fn proxy<B: Serialize>(
    node: &Node,
    method: Method,
    leader_http: Option<String>,
    path: &str,
    body: Option<&B>,
) -> Result<Response, ApiError> {
    let Some(url) = leader_http else {
        return Err(ApiError::unavailable(
            "this node is not the leader and does not know the leader's address; retry",
        ));
    };
    let mut req = node.client().request(method, format!("{url}{path}"));
    if let Some(b) = body {
        req = req.json(b);
    }
    if let Some(t) = node.admin_token() {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ApiError::unavailable(format!("forwarding to the leader at {url}: {e}")))?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ApiError::unavailable(format!("reading the leader's answer: {e}")))?;
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

async fn leader_only<B: Serialize, T: Serialize>(
    node: &Node,
    path: &str,
    body: &B,
    result: Result<T, AdminError>,
) -> Result<Response, ApiError> {
    match result {
        Ok(t) => Ok(Json(t).into_response()),
        Err(AdminError::NotLeader { leader_http }) => {
            proxy(node, Method::POST, leader_http, path, Some(body)).await
        }
        Err(AdminError::Conflict(m)) => Err(ApiError::new(StatusCode::CONFLICT, "conflict", m)),
        Err(AdminError::BadRequest(m)) => Err(ApiError::bad_request(m)),
        Err(AdminError::Unavailable(m)) => Err(ApiError::unavailable(m)),
        Err(AdminError::Failed(m)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            m,
        )),
    }
}

async fn join(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Json<JoinRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_admin(&node, &headers)?;
    let req = json_body(body)?;
    let result: Result<JoinReply, _> = node.admit(req.clone()).await;
    leader_only(&node, "/v1/admin/join", &req, result).await
}

async fn promote(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Json<PromoteRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_admin(&node, &headers)?;
    let req = json_body(body)?;
    let result = node.promote(req.node_id).await;
    leader_only(&node, "/v1/admin/promote", &req, result).await
}

async fn remove(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Result<Json<RemoveRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_admin(&node, &headers)?;
    let req = json_body(body)?;
    let result = node.remove(&req.peer_id).await;
    leader_only(&node, "/v1/admin/remove", &req, result).await
}

async fn cluster_status(
    State(node): State<Node>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&node, &headers)?;
    let local: ClusterStatus = node.status();
    // The leader knows every member's replication; ask it, fall back to this node's view.
    if let Some(url) = node.leader_http() {
        if let Ok(resp) =
            proxy::<()>(&node, Method::GET, Some(url), "/v1/admin/cluster", None).await
        {
            if resp.status().is_success() {
                return Ok(resp);
            }
        }
    }
    Ok(Json(local).into_response())
}

async fn node_info(
    State(node): State<Node>,
    headers: HeaderMap,
) -> Result<Json<NodeInfo>, ApiError> {
    check_admin(&node, &headers)?;
    Ok(Json(node.info()))
}

async fn log_entry(
    State(node): State<Node>,
    headers: HeaderMap,
    Path(index): Path<String>,
) -> Result<Json<EntryInfo>, ApiError> {
    check_admin(&node, &headers)?;
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{index:?} is not a log index")))?;
    node.entry(index).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no entry {index} in this node's log"),
        )
    })
}
