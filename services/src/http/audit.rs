//! `POST /v1/admin/audit` and `GET /v1/admin/audit/{id}`: the online audit of the node that
//! answers (see [`crate::audit::online`]). Admin routes: the admin token is needed off
//! loopback. Not forwarded to the leader: each node audits its own log and store.
//!
//! * `POST /v1/admin/audit[?threads=N]` (default 1 thread, so the node keeps a core for its
//!   work): **202** with the [`AuditStatus`] (`state: running`, `through_index`: the snapshot's
//!   applied index, which the audit covers); **409** `conflict` while another audit runs.
//! * `GET /v1/admin/audit/{id}`: **200** with the [`AuditStatus`]; once `state` is `done` it
//!   carries the `report` (what `hearth audit --json` prints) and its `exit_code`; `failed`
//!   carries `error`. **404** for an unknown id (only the last few are kept).

use super::{check_admin, ApiError};
use crate::audit::online::AuditStatus;
use crate::node::{AdminError, Node};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

/// Most worker threads an online audit may ask for.
pub const MAX_THREADS: usize = 64;

/// Query of `POST /v1/admin/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    /// Worker threads for verifying and signature checks (1..=64, default 1).
    pub threads: Option<usize>,
}

/// `POST /v1/admin/audit`.
pub async fn start(
    State(node): State<Node>,
    headers: HeaderMap,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<(StatusCode, Json<AuditStatus>), ApiError> {
    check_admin(&node, &headers)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let threads = params.threads.unwrap_or(1);
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(ApiError::bad_request(format!(
            "threads must be 1..={MAX_THREADS}, not {threads}"
        )));
    }
    match node.start_audit(threads).await {
        Ok(status) => Ok((StatusCode::ACCEPTED, Json(status))),
        Err(AdminError::Conflict(m)) => Err(ApiError::new(StatusCode::CONFLICT, "conflict", m)),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            e.to_string(),
        )),
    }
}

/// `GET /v1/admin/audit/{id}`.
pub async fn status(
    State(node): State<Node>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AuditStatus>, ApiError> {
    check_admin(&node, &headers)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not an audit id")))?;
    node.audit_status(id).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no audit {id} on this node (only the last few are kept)"),
        )
    })
}
