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

/// Counts the request and its latency (to the response head) by route, method and status.
pub(super) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics::histogram!(HTTP_SECONDS, "route" => route.clone(), "method" => method)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route,
        "method" => method,
        "status" => resp.status().as_str().to_string()
    )
    .increment(1);
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
