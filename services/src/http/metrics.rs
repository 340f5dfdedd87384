//! `GET /metrics` (the Prometheus text format) and [`track`], the middleware that counts
//! every request by its matched route template (`/v1/blobs/{hash}`, never the raw URI, so the
//! series stay few), method and status. Names: [`crate::metrics`].

use super::ApiError;
use crate::metrics::{render, HTTP_REQUESTS, HTTP_SECONDS};
use crate::node::Node;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Instant;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub(super) async fn scrape(State(node): State<Node>) -> Result<Response, ApiError> {
    node.record_scrape_gauges();
    let text = render().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "metrics are not recorded in this process (another recorder was installed)",
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT))],
        text,
    )
        .into_response())
}

/// A route's series handles, by method and status.
type RouteHandles = HashMap<(&'static str, u16), (Histogram, Counter)>;

/// Series handles by route template, so a request does not look its series up by labels in
/// the registry (hashing and allocating its labels) every time. Bounded: routes are the
/// router's templates (or `unmatched`), methods and statuses few.
static HANDLES: LazyLock<RwLock<HashMap<String, RouteHandles>>> = LazyLock::new(Default::default);

/// The latency histogram and request counter of `route`, `method`, `status`.
fn handles(route: &str, method: &'static str, status: StatusCode) -> (Histogram, Counter) {
    let key = (method, status.as_u16());
    if let Some(h) = HANDLES.read().get(route).and_then(|r| r.get(&key)) {
        return h.clone();
    }
    let made = (
        metrics::histogram!(HTTP_SECONDS, "route" => route.to_string(), "method" => method),
        metrics::counter!(
            HTTP_REQUESTS,
            "route" => route.to_string(),
            "method" => method,
            "status" => status.as_str().to_string()
        ),
    );
    HANDLES
        .write()
        .entry(route.to_string())
        .or_default()
        .entry(key)
        .or_insert(made)
        .clone()
}

/// Counts the request and its latency (to the response head) by route, method and status.
pub(super) async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned(); // an `Arc<str>` inside
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (seconds, requests) = handles(route, method, resp.status());
    seconds.record(started.elapsed().as_secs_f64());
    requests.increment(1);
    resp
}

/// The method as a label; anything unusual is `other`, so a client cannot mint series.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
