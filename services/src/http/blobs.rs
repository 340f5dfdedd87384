//! Blob routes.
//!
//! | route | what |
//! |---|---|
//! | `PUT /v1/blobs` | streamed body with `Content-Length` → 201 [`BlobReply`] once `BlobAccepted` is committed (200 with the existing record when the bytes are already stored) |
//! | `GET /v1/blobs/{hash}` | the blob, every byte verified before it is sent; `Range: bytes=…` → 206; `?after=INDEX` or `Hearth-After: INDEX` waits until this node applied INDEX |
//! | `HEAD /v1/blobs/{hash}` | the same headers, no body |
//! | `DELETE /v1/blobs/{hash}` | commits a tombstone (`BlobDeleted`): 200 [`DeleteReply`]; reads then answer 410 and every member removes its shards |
//! | `GET /v1/blobs/{hash}/status` | [`BlobStatus`]: tier, code, every shard's holders, and whether this node's copy of each shard is present and intact |
//!
//! Blobs up to the inline threshold travel inside the committed event; larger ones are
//! erasure-coded into shard files first (see [`crate::blobs`]) and only their manifest is
//! committed. Writes need the API token (or the admin token) when the listener is not on
//! loopback.

use super::{check_writer, ApiError};
use crate::blobs::read_budget::{Busy, Held, READ_WAIT};
use crate::blobs::{read_range, Layout, Manifest, ShardError, ShardWriter, StripeError};
use crate::hex;
use crate::node::Node;
use axum::body::{Body, HttpBody};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::StreamExt;
use hearth_projections::BlobRecord;
use hearth_proto::v1::{BlobAccepted, ErasureParams};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::time::Duration;

/// How long a read carrying `after` waits for this node to apply that index.
const AFTER_WAIT: Duration = Duration::from_secs(5);
/// Bytes a streamed GET reads (and verifies) at a time.
const READ_PIECE: u64 = 4 << 20;
/// Pieces a streamed GET reads ahead of the client.
const READ_AHEAD: usize = 2;
/// The `Hearth-After` header.
const HEARTH_AFTER: &str = "hearth-after";
/// An upload refused before its body is all read (401, 400, 503, 411, 413, 507, …) has up to
/// this much more of its body read and dropped first, for at most [`DRAIN_TIME`]: otherwise
/// the answer and the connection's close can reach a client still sending, which then sees a
/// reset instead of the answer.
const DRAIN_MAX: u64 = 1 << 20;
/// See [`DRAIN_MAX`].
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Answer of a blob write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobReply {
    /// blake3 of the blob (hex).
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Data shards (0 for an inline blob).
    pub k: u32,
    /// Parity shards.
    pub m: u32,
    /// Acknowledgement tier reached: `accepted`, `durable` (every placed shard confirmed by
    /// its holder) or `verified` (and a node other than the writer signed the manifest).
    pub tier: String,
    /// The log index that accepted it: a read with `?after=INDEX` on any member sees it.
    pub index: u64,
}

impl BlobReply {
    fn of(hash: &[u8; 32], r: &BlobRecord) -> Self {
        BlobReply {
            hash: hex::encode(hash),
            size: r.size,
            k: r.data_shards,
            m: r.parity_shards,
            tier: r.tier().into(),
            index: r.accepted_index,
        }
    }
}

/// Query of `PUT /v1/blobs`.
#[derive(Debug, Default, Deserialize)]
pub struct PutQuery {
    /// Wait for this tier: `accepted` (the default), `durable` or `verified`.
    wait: Option<String>,
    /// How long to wait for it (humantime, e.g. `30s`; default 30 s, at most 10 min).
    timeout: Option<String>,
}

/// Default bound of `?wait=`.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Longest `?timeout=`.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The tier and bound a PUT waits for (400 on anything else).
fn parse_wait(q: &PutQuery) -> Result<(&'static str, Duration), ApiError> {
    let wanted = q.wait.as_deref().unwrap_or("accepted");
    let tier = *hearth_projections::TIERS
        .iter()
        .find(|t| **t == wanted)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "wait={wanted:?}: expected accepted, durable or verified"
            ))
        })?;
    let timeout = match q.timeout.as_deref() {
        None => DEFAULT_WAIT,
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::bad_request(format!("timeout={t:?}: {e}")))?,
    };
    if timeout > MAX_WAIT {
        return Err(ApiError::bad_request(format!(
            "timeout may be at most {}",
            humantime::format_duration(MAX_WAIT)
        )));
    }
    Ok((tier, timeout))
}

/// The blob's record once it reached `tier`, or as it stands after `timeout`; `read` is its
/// record as the caller just read it (returned at once when it has reached the tier).
async fn wait_for_tier(
    node: &Node,
    hash: &[u8; 32],
    tier: &str,
    timeout: Duration,
    read: BlobRecord,
) -> Result<BlobRecord, ApiError> {
    if read.reached(tier) || read.deleted {
        return Ok(read);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    // Watching from before the next read, so no apply between the two is missed.
    let mut applied = node.raft().metrics();
    loop {
        let record = node
            .blob(hash)
            .map_err(internal)?
            .ok_or_else(|| internal("the accepted blob is missing from the index"))?;
        if record.reached(tier) || record.deleted {
            return Ok(record);
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return Ok(record) },
            _ = tokio::time::sleep_until(deadline) => return Ok(record),
        }
    }
}

/// Query of `GET /v1/blobs/{hash}`.
#[derive(Debug, Default, Deserialize)]
pub struct ReadQuery {
    after: Option<u64>,
}

fn parse_hash(s: &str) -> Result<[u8; 32], ApiError> {
    let bytes = (s.len() == 64)
        .then(|| hex::decode(s))
        .flatten()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.ok_or_else(|| {
        ApiError::bad_request(format!(
            "{s:?} is not a blob hash (64 lower-case hex characters of blake3)"
        ))
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string())
}

fn read_error(e: ShardError) -> ApiError {
    match e {
        ShardError::Stripe(
            e @ (StripeError::TooFewChunks { .. } | StripeError::NoVerifiedChoice { .. }),
        ) => ApiError::unavailable(e.to_string()),
        other => internal(other),
    }
}

/// `PUT /v1/blobs`.
pub(super) async fn put_blob(
    State(node): State<Node>,
    Query(query): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The exact length from Content-Length (or 0 for a request without a body); unknown for a
    // chunked upload.
    let size = HttpBody::size_hint(&body).exact();
    let mut stream = body.into_data_stream();
    let answer = store_upload(node, query, headers, size, &mut stream).await;
    if answer.is_err() {
        drain(&mut stream).await;
    }
    answer
}

/// [`put_blob`] on the body's stream, which it reads as far as it gets.
async fn store_upload(
    node: Node,
    query: PutQuery,
    headers: HeaderMap,
    size: Option<u64>,
    stream: &mut axum::body::BodyDataStream,
) -> Result<Response, ApiError> {
    check_writer(&node, &headers)?;
    let (wait, timeout) = parse_wait(&query)?;
    let Some(_slot) = node.try_blob_put() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many blob uploads in flight; retry shortly",
        ));
    };
    let size: u64 = size.ok_or_else(|| {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a blob upload needs a Content-Length header",
        )
    })?;
    if size > node.max_blob_bytes() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "a blob may have at most {} bytes; this one has {size}",
                node.max_blob_bytes()
            ),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (hash, accepted) = if size <= node.inline_threshold() as u64 {
        let mut data = Vec::with_capacity(size as usize);
        while let Some(piece) = stream.next().await {
            let piece =
                piece.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
            metrics::counter!(crate::metrics::BLOB_BYTES_IN).increment(piece.len() as u64);
            data.extend_from_slice(&piece);
            if data.len() as u64 > size {
                break;
            }
        }
        if data.len() as u64 != size {
            return Err(ApiError::bad_request(format!(
                "the body has {} bytes, Content-Length said {size}",
                data.len()
            )));
        }
        let hash = *blake3::hash(&data).as_bytes();
        let accepted = BlobAccepted {
            blob_hash: Bytes::copy_from_slice(&hash),
            size,
            inline_data: Some(Bytes::from(data)),
            content_type,
            ..BlobAccepted::default()
        };
        (hash, accepted)
    } else {
        let (k, m) = node.new_blob_code();
        let layout = Layout::for_size(size, k, m).map_err(internal)?;
        let needed = layout
            .shard_size()
            .saturating_mul(u64::from(layout.shard_count()));
        let _room = match node.reserve_room(needed).map_err(internal)? {
            Ok(guard) => guard,
            Err(room) => {
                return Err(ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    format!(
                        "storing this blob takes {needed} bytes of shards and only {room} are \
                         free above the disk reserve kept for the log and the uploads in \
                         flight; delete blobs, add space or retry later"
                    ),
                ));
            }
        };
        let writer = node.shards().writer(layout).map_err(internal)?;
        let written = write_shards(&node, writer, stream).await?;
        if let Some(existing) = live(node.blob(&written.hash).map_err(internal)?) {
            if written.fresh && existing_layout(&existing) != Some(layout) {
                let shards = node.shards().clone();
                let hash = written.hash;
                let _ = tokio::task::spawn_blocking(move || shards.remove_blob(&hash)).await;
            }
            let existing = wait_for_tier(&node, &written.hash, wait, timeout, existing).await?;
            return Ok((
                StatusCode::OK,
                Json(BlobReply::of(&written.hash, &existing)),
            )
                .into_response());
        }
        let accepted = BlobAccepted {
            blob_hash: Bytes::copy_from_slice(&written.hash),
            size,
            erasure: Some(ErasureParams {
                data_shards: k,
                parity_shards: m,
                stripe_size: layout.stripe_size(),
            }),
            shard_hashes: written
                .shard_hashes
                .iter()
                .map(|h| Bytes::copy_from_slice(h))
                .collect(),
            stripe_hashes: written
                .stripe_hashes
                .iter()
                .map(|h| Bytes::copy_from_slice(h))
                .collect(),
            inline_data: None,
            content_type,
            ..BlobAccepted::default()
        };
        (written.hash, accepted)
    };
    if let Some(existing) = live(node.blob(&hash).map_err(internal)?) {
        let existing = wait_for_tier(&node, &hash, wait, timeout, existing).await?;
        return Ok((StatusCode::OK, Json(BlobReply::of(&hash, &existing))).into_response());
    }
    let committed = node.accept_blob(accepted).await?;
    // Committed by the leader; a follower answers once it has applied the entry too.
    if !node.wait_applied(committed.index, AFTER_WAIT).await {
        return Err(ApiError::unavailable(format!(
            "the blob was accepted at index {} but this node has not applied it yet; \
             read it with ?after={}",
            committed.index, committed.index
        )));
    }
    let record = node
        .blob(&hash)
        .map_err(internal)?
        .ok_or_else(|| internal("the accepted blob is missing from the index"))?;
    let first = (record.accepted_index, record.accepted_position);
    if committed.rejected.is_some() || first != (committed.index, committed.position) {
        // Another write of the same bytes was accepted first: that one is the blob (an inline
        // copy is folded into it, a sharded one rejected).
        let record = wait_for_tier(&node, &hash, wait, timeout, record).await?;
        return Ok((StatusCode::OK, Json(BlobReply::of(&hash, &record))).into_response());
    }
    // The acceptance records this node as the holder of every shard it wrote; the replication
    // worker spreads them from there.
    let record = wait_for_tier(&node, &hash, wait, timeout, record).await?;
    Ok((StatusCode::CREATED, Json(BlobReply::of(&hash, &record))).into_response())
}

/// A record that is not a tombstone.
fn live(r: Option<BlobRecord>) -> Option<BlobRecord> {
    r.filter(|r| !r.deleted)
}

/// The record of a blob that exists: 404 when unknown, 410 when deleted.
fn existing(node: &Node, hash: &[u8; 32]) -> Result<BlobRecord, ApiError> {
    match node.blob(hash).map_err(internal)? {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such blob",
        )),
        Some(r) if r.deleted => Err(ApiError::new(
            StatusCode::GONE,
            "gone",
            format!("the blob was deleted at log index {}", r.deleted_index),
        )),
        Some(r) => Ok(r),
    }
}

fn existing_layout(r: &BlobRecord) -> Option<Layout> {
    Layout::new(r.size, r.data_shards, r.parity_shards, r.stripe_size).ok()
}

/// Feeds the body into `writer` on a blocking thread; nothing is published unless the body
/// is complete (a dropped writer removes its files).
async fn write_shards<S>(
    node: &Node,
    writer: ShardWriter,
    stream: &mut S,
) -> Result<crate::blobs::Written, ApiError>
where
    S: futures::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let node = node.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(piece) = rx.blocking_recv() {
            writer.write(&piece)?;
        }
        // A directory left by a deleted blob of the same bytes (the collector had not run
        // yet) may hold only some shards: this acceptance needs them all.
        writer.finish_replacing(|hash| live(node.blob(hash).ok().flatten()).is_none())
    });
    let mut body_error = None;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(piece) => {
                metrics::counter!(crate::metrics::BLOB_BYTES_IN).increment(piece.len() as u64);
                if tx.send(piece).await.is_err() {
                    break; // the writer stopped: its error is reported below
                }
            }
            Err(e) => {
                body_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let result = task.await.map_err(internal)?;
    if let Some(e) = body_error {
        return Err(ApiError::bad_request(format!("reading the body: {e}")));
    }
    result.map_err(|e| match e {
        ShardError::SizeMismatch { .. } => ApiError::bad_request(e.to_string()),
        // The disk filled up anyway (something else wrote to it): the writer removed its files.
        ShardError::Io { ref source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                format!("the disk filled up while storing this blob ({e}); nothing was kept"),
            )
        }
        other => internal(other),
    })
}

/// `GET` and `HEAD /v1/blobs/{hash}`.
pub(super) async fn get_blob(
    State(node): State<Node>,
    method: Method,
    Path(hash): Path<String>,
    Query(query): Query<ReadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    wait_after(&node, &headers, query.after).await?;
    let record = existing(&node, &hash)?;
    let size = record.size;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(v) => Some(
            parse_range(v.to_str().unwrap_or_default(), size).ok_or_else(|| {
                ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "bad_range",
                    format!("the blob has {size} bytes; expected Range: bytes=START-END"),
                )
            })?,
        ),
    };
    let want = range.clone().unwrap_or(0..size);
    let mut resp_headers = HeaderMap::new();
    let etag = format!("\"{}\"", hex::encode(&hash));
    let content_type = match record.content_type.as_str() {
        "" => "application/octet-stream",
        t => t,
    };
    for (name, value) in [
        (header::ETAG, etag.as_str()),
        (header::ACCEPT_RANGES, "bytes"),
        (header::CONTENT_TYPE, content_type),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp_headers.insert(name, v);
        }
    }
    resp_headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(want.end - want.start),
    );
    let status = match &range {
        Some(r) => {
            let cr = format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1));
            if let Ok(v) = HeaderValue::from_str(&cr) {
                resp_headers.insert(header::CONTENT_RANGE, v);
            }
            StatusCode::PARTIAL_CONTENT
        }
        None => StatusCode::OK,
    };
    if method == Method::HEAD {
        return Ok((status, resp_headers).into_response());
    }
    metrics::counter!(crate::metrics::BLOB_BYTES_OUT).increment(want.end - want.start);
    let body = if let Some(inline) = &record.inline_data {
        if blake3::hash(inline).as_bytes() != &hash {
            return Err(internal("the blob's stored bytes do not match its hash"));
        }
        Body::from(Bytes::copy_from_slice(
            &inline[want.start as usize..want.end as usize],
        ))
    } else if holds_every_shard(&node, &hash, &record)? {
        stream_shards(&node, &hash, &record, want).await?
    } else {
        stream_cluster(&node, &hash, &record, want).await?
    };
    Ok((status, resp_headers, body).into_response())
}

/// Whether this node is a confirmed holder of every shard of the blob (then it reads and
/// repairs them itself; otherwise the shards come from their holders across the cluster).
fn holds_every_shard(node: &Node, hash: &[u8; 32], record: &BlobRecord) -> Result<bool, ApiError> {
    let me = node.peer_id().to_bytes();
    let holders = node.blob_holders(hash).map_err(internal)?;
    Ok((0..record.shard_count() as u32).all(|shard| {
        holders
            .iter()
            .any(|(s, h, r)| *s == shard && *h == me && r.confirmed)
    }))
}

/// Reads `want` from the blob's holders across the cluster (this node's files among them),
/// piece by piece: every stripe is rebuilt from the first `k` shards that check out against
/// its hash before any of its bytes are sent; the first piece is read before the answer
/// starts, so an unavailable blob is a 503, not a cut-off body.
async fn stream_cluster(
    node: &Node,
    hash: &[u8; 32],
    record: &BlobRecord,
    want: Range<u64>,
) -> Result<Body, ApiError> {
    use crate::node::cluster_read::{ShardSources, STRIPES_PER_PIECE};
    let manifest = crate::node::replicator::manifest_of(hash, record).map_err(internal)?;
    let layout = manifest.layout;
    let holders = node.blob_holders(hash).map_err(internal)?;
    let sources = ShardSources::new(node, layout.shard_count(), &holders);
    let stripes = layout.stripes_for(want.clone());
    if stripes.is_empty() {
        return Ok(Body::empty());
    }
    let reader = std::sync::Arc::new(ClusterRead {
        sources,
        manifest,
        cache: node.stripe_cache().clone(),
        want,
        end: stripes.end,
    });
    // Each piece holds its share of the read budget from before it is fetched until the
    // client asks for the next one.
    let budget = node.read_budget().clone();
    let piece_bytes = STRIPES_PER_PIECE.saturating_mul(layout.stripe_size());
    let held = budget.acquire(piece_bytes, READ_WAIT).await.map_err(busy)?;
    let (first, next) = reader
        .piece(stripes.start, STRIPES_PER_PIECE)
        .await
        .map_err(ApiError::unavailable)?;
    let state = (reader, next, Some(held), budget);
    let rest = futures::stream::unfold(state, move |(reader, at, held, budget)| async move {
        drop(held);
        if at >= reader.end {
            return None;
        }
        let held = match budget.acquire(piece_bytes, READ_WAIT).await {
            Ok(h) => h,
            Err(e) => {
                let end = reader.end;
                return Some((Err(std::io::Error::other(e)), (reader, end, None, budget)));
            }
        };
        match reader.piece(at, STRIPES_PER_PIECE).await {
            Ok((bytes, next)) => Some((Ok(bytes), (reader, next, Some(held), budget))),
            Err(e) => {
                let end = reader.end;
                Some((Err(std::io::Error::other(e)), (reader, end, None, budget)))
            }
        }
    });
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    Ok(Body::from_stream(stream))
}

/// One read across the cluster: its sources, what it wants, and the cache it fills.
struct ClusterRead {
    sources: crate::node::cluster_read::ShardSources,
    manifest: Manifest,
    cache: crate::blobs::StripeCache,
    want: Range<u64>,
    /// One past the last stripe the read touches.
    end: u64,
}

impl ClusterRead {
    /// The wanted bytes of up to `count` stripes from `from`, and the next stripe.
    async fn piece(&self, from: u64, count: u64) -> Result<(Bytes, u64), String> {
        let m = &self.manifest;
        let piece = from..(from + count).min(self.end);
        let cached: Option<Vec<Bytes>> =
            piece.clone().map(|s| self.cache.get(&m.hash, s)).collect();
        let data = match cached {
            Some(data) => data,
            None => {
                let data = self.sources.read_stripes(m, piece.clone()).await?;
                for (s, d) in piece.clone().zip(&data) {
                    self.cache.insert(&m.hash, s, d.clone());
                }
                data
            }
        };
        let mut out = Vec::new();
        for (s, d) in piece.clone().zip(data) {
            let r = m.layout.stripe_range(s);
            let a = self.want.start.max(r.start) - r.start;
            let b = self.want.end.min(r.end) - r.start;
            out.extend_from_slice(&d[a as usize..b as usize]);
        }
        Ok((Bytes::from(out), piece.end))
    }
}

/// Reads `want` piece by piece on a blocking thread; the first piece is read before the answer
/// starts, so an unavailable blob is a 503, not a cut-off body.
async fn stream_shards(
    node: &Node,
    hash: &[u8; 32],
    record: &BlobRecord,
    want: Range<u64>,
) -> Result<Body, ApiError> {
    let layout =
        existing_layout(record).ok_or_else(|| internal("the blob's manifest is invalid"))?;
    let stripe_hashes = record
        .stripe_hashes
        .iter()
        .map(|h| <[u8; 32]>::try_from(h.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| internal("the blob's manifest has a malformed stripe hash"))?;
    let manifest = Manifest {
        hash: *hash,
        layout,
        stripe_hashes,
    };
    let store = node.shards().clone();
    let cache = node.stripe_cache().clone();
    let piece = READ_PIECE.max(layout.stripe_size());
    let budget = node.read_budget().clone();
    // The first piece's share of the read budget, before anything starts: a node too busy
    // answers 503 rather than a cut-off body.
    let first_held = budget
        .acquire(piece.min(want.end - want.start), READ_WAIT)
        .await
        .map_err(busy)?;
    type Item = Result<(Bytes, Held), PieceError>;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(READ_AHEAD);
    let repairer = node.repairer().clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut at = want.start;
        let mut held = Some(first_held);
        while at < want.end {
            let end = (at + piece).min(want.end);
            // Each piece is read once the read holds its share of the budget; the share goes
            // back when the client has taken the piece (see below).
            let permit = match held.take() {
                Some(h) => h,
                None => match rt.block_on(budget.acquire(end - at, READ_WAIT)) {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(PieceError::Busy(e)));
                        return;
                    }
                },
            };
            let item = read_range(&store, &cache, &manifest, at..end)
                .map(|(bytes, report)| {
                    if !report.repairs.is_empty() {
                        repairer.submit(&manifest, report);
                    }
                    (Bytes::from(bytes), permit)
                })
                .map_err(PieceError::Shard);
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
            at = end;
        }
    });
    let (first, first_permit) = match rx.recv().await {
        None => return Ok(Body::empty()),
        Some(Err(PieceError::Shard(e))) => return Err(read_error(e)),
        Some(Err(PieceError::Busy(e))) => return Err(busy(e)),
        Some(Ok(item)) => item,
    };
    // The stream keeps the permits of the piece it last gave the client, and gives them back
    // when the client asks for the next one (by then the previous one was written out).
    let rest = futures::stream::unfold((rx, Some(first_permit)), |(mut rx, held)| async move {
        drop(held);
        match rx.recv().await? {
            Ok((bytes, permit)) => Some((Ok(bytes), (rx, Some(permit)))),
            Err(e) => Some((Err(std::io::Error::other(e)), (rx, None))),
        }
    });
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    Ok(Body::from_stream(stream))
}

/// Why a piece of a streamed read failed.
#[derive(Debug, thiserror::Error)]
enum PieceError {
    /// Reading or verifying the shards.
    #[error(transparent)]
    Shard(ShardError),
    /// The read budget was not granted in time.
    #[error(transparent)]
    Busy(Busy),
}

/// A read that did not get its share of the read budget in time: 503, try again later.
fn busy(e: Busy) -> ApiError {
    ApiError::unavailable(e.to_string())
}

/// Parses a single `bytes=` range against `size`; `None` when unsatisfiable or malformed.
fn parse_range(value: &str, size: u64) -> Option<Range<u64>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        start..end
    };
    (r.start < r.end && r.start < size).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(parse_range("bytes=0-0", 10), Some(0..1));
        assert_eq!(parse_range("bytes=2-", 10), Some(2..10));
        assert_eq!(parse_range("bytes=-3", 10), Some(7..10));
        assert_eq!(parse_range("bytes=5-100", 10), Some(5..10));
        assert_eq!(parse_range("bytes=-100", 10), Some(0..10));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=3-2", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }
}

/// `GET /v1/blobs/{hash}/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobStatus {
    /// blake3 of the blob (hex).
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Data shards (0 for an inline blob).
    pub k: u32,
    /// Parity shards.
    pub m: u32,
    /// Bytes of blob data per stripe (0 for an inline blob).
    pub stripe_size: u64,
    /// Whether the bytes travel inside the log (small blobs).
    pub inline: bool,
    /// Acknowledgement tier reached: `accepted`, `durable` or `verified`.
    pub tier: String,
    /// Log time it became durable (0: not yet).
    pub durable_log_time_ms: u64,
    /// Log time it became verified (0: not yet), and by whom.
    pub verified_log_time_ms: u64,
    /// The verifier's PeerId (empty until verified).
    pub verified_by: String,
    /// How many member losses (any of them) it survives now, from the confirmed copies.
    pub survives: u32,
    /// For each voter: whether the blob survives that member leaving.
    pub if_member_leaves: Vec<MemberLoss>,
    /// The log index that accepted it.
    pub accepted_index: u64,
    /// Log time of the acceptance, Unix ms.
    pub accepted_log_time_ms: u64,
    /// Media type given at upload (may be empty).
    pub content_type: String,
    /// Every shard, in order (empty for an inline blob).
    pub shards: Vec<ShardStatus>,
}

/// One line of [`BlobStatus::if_member_leaves`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberLoss {
    /// The member's PeerId.
    pub peer_id: String,
    /// Whether at least `k` shards stay on the other members without it.
    pub survives: bool,
}

/// One shard in a [`BlobStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardStatus {
    /// Shard index (data shards first).
    pub index: u32,
    /// Its blake3 (hex).
    pub hash: String,
    /// Who was assigned it.
    pub holders: Vec<HolderStatus>,
    /// This node's copy: `intact`, `corrupt` (its blake3 differs) or `missing`.
    pub local: String,
}

/// One holder in a [`ShardStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HolderStatus {
    /// The holder's PeerId.
    pub peer_id: String,
    /// Placement epoch.
    pub epoch: u64,
    /// Whether the holder confirmed storing it.
    pub confirmed: bool,
    /// Whether the blob's current placement names it (a confirmed holder that is not placed
    /// keeps a surplus copy until it releases it, or until it is back if it was gone).
    #[serde(default)]
    pub placed: bool,
}

pub(super) async fn blob_status(
    State(node): State<Node>,
    Path(hash): Path<String>,
) -> Result<Json<BlobStatus>, ApiError> {
    let hash = parse_hash(&hash)?;
    let record = existing(&node, &hash)?;
    let holders = node.blob_holders(&hash).map_err(internal)?;
    let store = node.shards().clone();
    let expected = record.shard_hashes.clone();
    // Hashing local shard files reads them whole: off the async threads.
    let local = tokio::task::spawn_blocking(move || {
        expected
            .iter()
            .zip(0u32..)
            .map(|(want, i)| match store.shard_digest(&hash, i) {
                Ok(Some((h, _))) if h[..] == want[..] => "intact",
                Ok(Some(_)) => "corrupt",
                _ => "missing",
            })
            .map(String::from)
            .collect::<Vec<_>>()
    })
    .await
    .map_err(internal)?;
    let voters = node.voter_peers();
    let (survives, if_member_leaves) = if record.is_inline() {
        // In every member's log: any member but the last may go.
        let n = voters.len() as u32;
        let lines = voters
            .iter()
            .map(|v| MemberLoss {
                peer_id: peer_text(v),
                survives: n > 1,
            })
            .collect();
        (n.saturating_sub(1), lines)
    } else {
        use crate::replication::placement::{survivable_losses, survives_without};
        let mut copies = vec![Vec::new(); record.shard_count() as usize];
        for (s, h, r) in &holders {
            if let Some(c) = copies.get_mut(*s as usize).filter(|_| r.confirmed) {
                c.push(h.clone());
            }
        }
        let lines = voters
            .iter()
            .map(|v| MemberLoss {
                peer_id: peer_text(v),
                survives: survives_without(record.data_shards, &copies, v),
            })
            .collect();
        (survivable_losses(record.data_shards, &copies), lines)
    };
    let shards = record
        .shard_hashes
        .iter()
        .zip(local)
        .zip(0u32..)
        .map(|((h, local), index)| ShardStatus {
            index,
            hash: hex::encode(h),
            holders: holders
                .iter()
                .filter(|(s, _, _)| *s == index)
                .map(|(_, holder, r)| HolderStatus {
                    peer_id: peer_text(holder),
                    epoch: r.placement_epoch,
                    confirmed: r.confirmed,
                    placed: record.placement.get(index as usize) == Some(holder),
                })
                .collect(),
            local,
        })
        .collect();
    Ok(Json(BlobStatus {
        hash: hex::encode(&hash),
        size: record.size,
        k: record.data_shards,
        m: record.parity_shards,
        stripe_size: record.stripe_size,
        inline: record.inline_data.is_some(),
        tier: record.tier().into(),
        durable_log_time_ms: record.durable_log_time_ms,
        verified_log_time_ms: record.verified_log_time_ms,
        verified_by: if record.verified_by.is_empty() {
            String::new()
        } else {
            peer_text(&record.verified_by)
        },
        survives,
        if_member_leaves,
        accepted_index: record.accepted_index,
        accepted_log_time_ms: record.accepted_log_time_ms,
        content_type: record.content_type,
        shards,
    }))
}

/// A PeerId as text (hex when the bytes are not one).
fn peer_text(bytes: &[u8]) -> String {
    libp2p::PeerId::from_bytes(bytes)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| hex::encode(bytes))
}

/// Answer of `DELETE /v1/blobs/{hash}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeleteReply {
    /// blake3 of the blob (hex).
    pub hash: String,
    /// Always true.
    pub deleted: bool,
    /// The log index of the tombstone.
    pub index: u64,
}

/// `DELETE /v1/blobs/{hash}`.
pub(super) async fn delete_blob(
    State(node): State<Node>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Json<DeleteReply>, ApiError> {
    check_writer(&node, &headers)?;
    let hash = parse_hash(&hash)?;
    existing(&node, &hash)?;
    let committed = node.delete_blob(&hash).await?;
    if let Some(reason) = committed.rejected {
        // Deleted meanwhile by another request: the blob is gone either way.
        return Err(ApiError::new(StatusCode::GONE, "gone", reason));
    }
    let store = node.shards().clone();
    if let Err(e) = tokio::task::spawn_blocking(move || store.remove_blob(&hash))
        .await
        .map_err(internal)?
    {
        tracing::warn!(error = %e, "removing a deleted blob's shards (the collector retries)");
    }
    Ok(Json(DeleteReply {
        hash: hex::encode(&hash),
        deleted: true,
        index: committed.index,
    }))
}

/// Read-your-writes: waits until this node has applied the index a read carries
/// (`Hearth-After: INDEX`, else `?after=INDEX`); 503 after [`AFTER_WAIT`].
pub(super) async fn wait_after(
    node: &Node,
    headers: &HeaderMap,
    query_after: Option<u64>,
) -> Result<(), ApiError> {
    let after = match headers.get(HEARTH_AFTER) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Hearth-After must be a log index"))?,
        ),
        None => query_after,
    };
    if let Some(index) = after {
        if !node.wait_applied(index, AFTER_WAIT).await {
            return Err(ApiError::unavailable(format!(
                "this node has not applied index {index} yet; retry"
            )));
        }
    }
    Ok(())
}

/// Reads and drops up to [`DRAIN_MAX`] more bytes of a refused upload's body.
async fn drain(stream: &mut axum::body::BodyDataStream) {
    let rest = async {
        let mut read = 0u64;
        while read <= DRAIN_MAX {
            match stream.next().await {
                Some(Ok(piece)) => read += piece.len() as u64,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
}
