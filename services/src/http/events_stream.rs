//! `GET /v1/events?from=INDEX[&kind=KIND…][&follow=false]`: the committed log as
//! Server-Sent Events — catch-up from `from` through what this node has applied, read from
//! its log, then live follow of every entry it applies ([`crate::node::event_feed`]).
//!
//! * Each log item is one SSE `message` whose `data` is the JSON `hearth log dump --json`
//!   prints for it (index, term, kind, chain, the decoded event, …) plus the dump's text line
//!   under `"text"`. Its `id` is the log index, or `INDEX.POSITION` for an event of a batch
//!   entry (several events group-committed in one entry), so every event has its own id.
//! * Where to start: `Last-Event-ID` wins — the stream resumes right **after** that id
//!   (`12` → entry 13; `12.3` → entry 12's event 4, then 13) — else `from=INDEX` (inclusive;
//!   `from=head` = only what is applied from now on), else the log's first entry.
//! * `kind=K` (repeatable, any case) keeps only those kinds, named as `hearth log dump
//!   --kind` names them (`BlobAccepted`, `RaftBlank`, …).
//! * `follow=false` ends the stream once it has sent what was applied when it was asked.
//! * A slow consumer never slows writers: live entries come from a bounded broadcast
//!   (`--events-buffer` entries). A consumer that has reached the head once and then falls
//!   further behind it than that — more than the buffer's entries published and not yet
//!   sent, whether they would come from the buffer or the log — is dropped with a last event
//!   `event: lagged`, `data: {"resume_from": N}`, `id: N-1` (so an `EventSource` reconnecting
//!   with that `Last-Event-ID` resumes at N) and nothing is lost: resuming reads the log.
//!   Until it first reaches the head (catching up on history) a consumer is never dropped —
//!   it reads on from the log. The rule depends only on how far behind the consumer is when
//!   it asks for more, never on which path the entries would have taken.
//! * Errors before the stream starts are JSON 4xx (bad `from`, bad `Last-Event-ID`, 410 when
//!   the entries asked for were purged from this node's log); a failure mid-stream ends it
//!   with `event: error`.

use super::ApiError;
use crate::metrics::{EVENT_STREAMS, EVENT_STREAM_LAGGED, EVENT_STREAM_SENT};
use crate::node::event_feed::{read_entries, EventFeed, FeedEntry, READ_CHUNK};
use crate::node::Node;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use hearth_log::Log;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// `(entry index, first position of it still to send)`.
type Cursor = (u64, u32);

/// Parses a `Last-Event-ID`: `INDEX` or `INDEX.POSITION`; the cursor just after it.
pub fn resume_after(id: &str) -> Option<Cursor> {
    let id = id.trim();
    match id.split_once('.') {
        None => Some((id.parse::<u64>().ok()?.checked_add(1)?, 0)),
        Some((i, p)) => Some((i.parse().ok()?, p.parse::<u32>().ok()?.checked_add(1)?)),
    }
}

/// `GET /v1/events`.
pub(super) async fn stream(
    State(node): State<Node>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut from: Option<String> = None;
    let mut kinds = Vec::new();
    let mut follow = true;
    for (k, v) in params {
        match k.as_str() {
            "from" => from = Some(v),
            "kind" => kinds.extend(
                v.split(',')
                    .map(|k| k.trim().to_string())
                    .filter(|k| !k.is_empty()),
            ),
            "follow" => {
                follow = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("follow={v:?}: expected true or false"))
                })?
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?} (from, kind, follow)"
                )))
            }
        }
    }
    let feed = node.event_feed().clone();
    // Subscribed before anything is read: every entry after `published()` arrives here.
    let rx = feed.subscribe();
    let log = node.store().log().clone();
    let last_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let cursor = match (last_id, from.as_deref()) {
        (Some(id), _) => resume_after(&id).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Last-Event-ID {id:?} is not an event id (INDEX or INDEX.POSITION)"
            ))
        })?,
        (None, Some("head")) => (feed.published() + 1, 0),
        (None, Some(f)) => (
            f.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("from={f:?} is not a log index (or \"head\")"))
            })?,
            0,
        ),
        (None, None) => (log.first_index().unwrap_or(1), 0),
    };
    if let (Some(first), Some(_)) = (log.first_index(), log.purged()) {
        if cursor.0 < first {
            return Err(ApiError::new(
                StatusCode::GONE,
                "purged",
                format!(
                    "entries before {first} were purged from this node's log; start at {first} \
                     or later"
                ),
            ));
        }
    }
    let consumer = Consumer {
        // What was applied when asked: read from the log, not bounded by the live feed,
        // which may still be rendering those entries.
        head: (!follow).then(|| node.applied_index().max(feed.published())),
        feed,
        log,
        rx,
        next: cursor,
        kinds,
        pending: VecDeque::new(),
        live: false,
        done: false,
    };
    metrics::gauge!(EVENT_STREAMS).increment(1.0);
    let events = futures::stream::unfold(consumer, |mut c| async move {
        c.next_event().await.map(|e| (Ok(e), c))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One stream's state.
struct Consumer {
    feed: EventFeed,
    log: Log,
    rx: broadcast::Receiver<Arc<FeedEntry>>,
    next: Cursor,
    /// Kinds to keep (empty: all).
    kinds: Vec<String>,
    /// `follow=false`: the last index to send.
    head: Option<u64>,
    pending: VecDeque<Event>,
    /// Whether it has reached the head since it subscribed (falling behind then drops it).
    live: bool,
    done: bool,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        metrics::gauge!(EVENT_STREAMS).decrement(1.0);
    }
}

impl Consumer {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            // Following: up to what the feed has published (later entries arrive on `rx`).
            // Not following: up to the head fixed at the request, all from the log.
            let limit = self.head.unwrap_or_else(|| self.feed.published());
            if self.next.0 <= limit {
                if self.live && limit - self.next.0 >= self.feed.capacity() {
                    self.lagged();
                    continue;
                }
                self.catch_up(limit).await;
                continue;
            }
            if self.head.is_some() {
                self.done = true;
                continue;
            }
            self.live = true;
            match self.rx.recv().await {
                // Older than the cursor: already sent from the log. Newer: a gap the loop
                // fills from the log (`published` is already past it).
                Ok(entry) if entry.index != self.next.0 => {}
                Ok(entry) => self.take(&entry),
                // More than the buffer published since it last looked: behind by that much.
                Err(RecvError::Lagged(_)) => self.lagged(),
                Err(RecvError::Closed) => self.done = true,
            }
        }
    }

    /// Ends the stream with `event: lagged` and the resume point.
    fn lagged(&mut self) {
        metrics::counter!(EVENT_STREAM_LAGGED).increment(1);
        let resume = self.next.0;
        let data = serde_json::json!({ "resume_from": resume }).to_string();
        self.pending.push_back(
            Event::default()
                .event("lagged")
                .id(resume.saturating_sub(1).to_string())
                .data(data),
        );
        self.done = true;
    }

    /// Sends the next chunk up to `limit` from the log.
    async fn catch_up(&mut self, limit: u64) {
        // What queued meanwhile is read from the log instead; start afresh at the tail.
        self.rx = self.rx.resubscribe();
        let from = self.next.0;
        let to = limit.min(from.saturating_add(READ_CHUNK - 1));
        match read_entries(self.log.clone(), from, to).await {
            Ok(entries) if entries.first().is_some_and(|e| e.index == from) => {
                for e in &entries {
                    self.take(e);
                }
            }
            Ok(_) => match self.log.first_index() {
                Some(first) if first > from => self.fail(
                    "purged",
                    format!("entries from {from} were purged from this node's log"),
                ),
                // Applied but not yet readable (its own fsync finishing): a moment.
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            },
            Err(e) => self.fail("failed", format!("reading the log: {e}")),
        }
    }

    fn fail(&mut self, code: &str, message: String) {
        let data = serde_json::json!({ "error": { "code": code, "message": message } });
        self.pending
            .push_back(Event::default().event("error").data(data.to_string()));
        self.done = true;
    }

    /// Queues the entry's items at or after the cursor that pass the kind filter.
    fn take(&mut self, entry: &FeedEntry) {
        for item in &entry.items {
            if entry.index == self.next.0 && item.position.unwrap_or(0) < self.next.1 {
                continue;
            }
            if !self.kinds.is_empty()
                && !self.kinds.iter().any(|k| k.eq_ignore_ascii_case(item.kind))
            {
                continue;
            }
            metrics::counter!(EVENT_STREAM_SENT).increment(1);
            self.pending
                .push_back(Event::default().id(item.id()).data(&item.data));
        }
        self.next = (entry.index + 1, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_resume_after_themselves() {
        assert_eq!(resume_after("12"), Some((13, 0)));
        assert_eq!(resume_after(" 12.3 "), Some((12, 4)));
        assert_eq!(resume_after("0"), Some((1, 0)));
        for bad in ["", "x", "1.", ".2", "1.2.3", "-1", "18446744073709551615"] {
            assert_eq!(resume_after(bad), None, "{bad:?}");
        }
    }
}
