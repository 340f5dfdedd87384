//! [`EventFeed`]: the node's live feed of applied log entries, for `GET /v1/events`.
//!
//! One task ([`feed_task`]) watches raft's applied index; for each newly applied range it
//! reads the entries from this node's log (blocking thread), renders every item once —
//! the JSON `hearth log dump --json` prints plus the dump's text line under `"text"` — and
//! publishes each entry on a bounded [`tokio::sync::broadcast`] channel — while someone is
//! subscribed; with nobody listening it only moves its published mark. Publishing never
//! waits: a consumer that has reached the head and then falls more than the buffer behind it
//! finds out when it next reads, and the HTTP layer then drops it with its resume point. Nothing here is on the
//! apply path — raft applies, and only then does this task read what was applied.
//!
//! [`EventFeed::published`] is stored *before* an entry is sent, so a consumer that
//! subscribes and then reads it misses nothing: every entry up to that index can be read from
//! the log, every later one arrives on its receiver (duplicates are skipped by index).
//!
//! What it is **not**: a consumer or a cursor store — consumers (`crate::http::events_stream`)
//! keep their own position, read catch-up ranges with [`read_entries`], and filter by kind.

use super::Node;
use crate::cli::log_dump::{items, Item};
use hearth_log::{Log, Record};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Default number of entries the live buffer holds (per consumer, at most this many behind).
pub const DEFAULT_BUFFER: usize = 1024;
/// Entries read from the log per step (the feed's and a catching-up consumer's).
pub const READ_CHUNK: u64 = 256;

/// One item of an entry as streamed.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// The entry's log index.
    pub index: u64,
    /// The event's position in a batch entry (`None` for an entry of one item).
    pub position: Option<u32>,
    /// The kind, as `hearth log dump` prints it (`BlobAccepted`, `RaftBlank`, …).
    pub kind: &'static str,
    /// The JSON object sent as the SSE data.
    pub data: String,
}

impl FeedItem {
    /// The SSE id: `INDEX`, or `INDEX.POSITION` for an event of a batch entry.
    pub fn id(&self) -> String {
        match self.position {
            Some(p) => format!("{}.{p}", self.index),
            None => self.index.to_string(),
        }
    }
}

/// One applied log entry, rendered.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    /// Its log index.
    pub index: u64,
    /// Its items in order (one per event of a batch entry).
    pub items: Vec<FeedItem>,
}

/// The live feed. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventFeed {
    tx: broadcast::Sender<Arc<FeedEntry>>,
    /// The last index published (0: none yet).
    published: Arc<AtomicU64>,
    /// Held while subscribing and while the feed decides that nobody listens, so a consumer
    /// either is counted or sees the skip in [`EventFeed::published`].
    gate: Arc<std::sync::Mutex<()>>,
    /// How many entries the buffer holds: how far a live consumer may fall behind.
    capacity: u64,
}

impl EventFeed {
    /// A feed whose buffer holds `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity);
        EventFeed {
            tx,
            published: Arc::default(),
            gate: Arc::default(),
            capacity: capacity as u64,
        }
    }

    /// How many entries the buffer holds: a consumer that has reached the head and then falls
    /// further behind it than this is dropped.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// A receiver of every entry published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedEntry>> {
        let _gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        self.tx.subscribe()
    }

    /// With nobody subscribed, moves the published mark to `index` without reading or rendering
    /// anything (consumers that come later read those entries from the log) and returns true.
    fn skip_unheard(&self, index: u64) -> bool {
        let _gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if self.tx.receiver_count() > 0 {
            return false;
        }
        self.skip_to(index);
        true
    }

    /// The last index published (every entry up to it is applied and in the log).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }

    fn publish(&self, entry: FeedEntry) {
        self.published.store(entry.index, Ordering::SeqCst);
        let _ = self.tx.send(Arc::new(entry)); // no receiver: nobody is listening
    }

    /// Moves the published mark without sending (start-up: history is read from the log).
    fn skip_to(&self, index: u64) {
        self.published.fetch_max(index, Ordering::SeqCst);
    }
}

/// Renders one log record.
pub fn render(rec: &Record) -> FeedEntry {
    let items = items(rec)
        .iter()
        .map(|item| {
            let mut v = item.json_value(rec);
            v["text"] = serde_json::Value::String(item.text(rec));
            FeedItem {
                index: rec.index,
                position: match item {
                    Item::Event { position, .. } => *position,
                    _ => None,
                },
                kind: item.kind(),
                data: v.to_string(),
            }
        })
        .collect();
    FeedEntry {
        index: rec.index,
        items,
    }
}

/// Reads and renders the entries `from..=to` of `log` on a blocking thread (clamped to what
/// the log holds).
pub async fn read_entries(log: Log, from: u64, to: u64) -> Result<Vec<FeedEntry>, String> {
    tokio::task::spawn_blocking(move || {
        log.read(from..=to)
            .map(|recs| recs.iter().map(render).collect())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

impl Node {
    /// The node's live event feed.
    pub fn event_feed(&self) -> &EventFeed {
        &self.inner.feed
    }
}

/// Publishes every entry this node applies, in order, until raft stops.
pub(super) async fn feed_task(node: Node) {
    let feed = node.inner.feed.clone();
    let log = node.inner.store.log().clone();
    let mut applied_rx = node.inner.raft.metrics();
    // History is not replayed into the buffer: consumers read it from the log.
    let start = applied_rx.borrow().last_applied.map_or(0, |a| a.index);
    feed.skip_to(start);
    loop {
        let applied = applied_rx
            .borrow_and_update()
            .last_applied
            .map_or(0, |a| a.index);
        while feed.published() < applied {
            // Rendering costs as much as a small write's own work: only when someone listens.
            // Up to what the log holds, since consumers read skipped entries from it.
            let readable = log.last().map_or(0, |r| r.index).min(applied);
            if readable > feed.published() && feed.skip_unheard(readable) {
                continue;
            }
            let from = feed.published() + 1;
            let to = applied.min(from + READ_CHUNK - 1);
            match read_entries(log.clone(), from, to).await {
                Ok(entries) if entries.first().is_some_and(|e| e.index == from) => {
                    for e in entries {
                        feed.publish(e);
                    }
                }
                Ok(entries) => {
                    // Not in this node's log (yet): a purge after a snapshot install skips
                    // ahead; an entry applied before its own fsync finished shows up shortly.
                    match log.first_index() {
                        Some(first) if first > from => feed.skip_to(first - 1),
                        _ => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                    drop(entries);
                }
                Err(e) => {
                    tracing::warn!(error = %e, from, "event feed: reading the log");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if applied_rx.changed().await.is_err() {
            return;
        }
    }
}
