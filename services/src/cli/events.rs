//! `hearth events [--from N] [--follow] [--kind K…] [--json]`: a running member's committed
//! log as it streams from `GET /v1/events` (Server-Sent Events), one line per event — the
//! line `hearth log dump` prints, or with `--json` the event's JSON (the dump's object plus
//! `"text"`).
//!
//! Without `--follow` it exits 0 once it has printed what the member had applied when asked.
//! With `--follow` it keeps printing as entries are applied; if the member drops it for
//! falling behind (`event: lagged`), it reconnects with `Last-Event-ID` and goes on where it
//! was (a warning on stderr), so no event is skipped or repeated. A stream the member ends
//! (it stopped) is an error, as is an `event: error`.

use super::cluster::{runtime, ServerArgs};
use crate::node::api::ErrorBody;
use anyhow::{bail, Context as _};
use clap::Args;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use std::io::Write;
use std::time::Duration;

/// Arguments of `hearth events`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  hearth events --from 1                   # everything committed so far, then exit
  hearth events --from head --follow       # only what is applied from now on
  hearth events --kind BlobAccepted --kind BlobDeleted --follow --json")]
pub struct EventsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// First log index to print, or `head` for only entries applied from now on
    /// [default: the member's first entry].
    #[arg(long, value_name = "INDEX|head")]
    from: Option<String>,
    /// Keep printing entries as they are applied (until interrupted).
    #[arg(long)]
    follow: bool,
    /// Only events of this kind, as `hearth log dump --kind` names them (any case). Repeat
    /// for several.
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<String>,
    /// Print each event's JSON instead of its text line.
    #[arg(long)]
    json: bool,
}

/// One SSE event as received.
pub type SseEvent = eventsource_stream::Event;

/// Opens `GET {server}/v1/events` with `query`, resuming after `last_id` when given, and
/// returns its events. A non-2xx answer is an error with the member's message.
pub async fn open_stream(
    client: &reqwest::Client,
    server: &str,
    query: &[(&str, String)],
    last_id: Option<&str>,
) -> anyhow::Result<impl Stream<Item = anyhow::Result<SseEvent>>> {
    let url = format!("{}/v1/events", server.trim_end_matches('/'));
    let mut req = client.get(&url).query(query);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("events: GET {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("events: {status}: {}", ErrorBody::message_of(&text));
    }
    Ok(resp
        .bytes_stream()
        .eventsource()
        .map(|e| e.map_err(|e| anyhow::anyhow!("events: reading the stream: {e}"))))
}

/// A client for long-lived streams: a connect timeout, no overall timeout.
pub fn stream_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// Runs `hearth events`.
pub fn run(args: &EventsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(f) = &args.from {
        if f != "head" && f.parse::<u64>().is_err() {
            bail!("--from {f:?} is neither a log index nor \"head\"");
        }
    }
    let mut query: Vec<(&str, String)> = vec![("follow", args.follow.to_string())];
    if let Some(f) = &args.from {
        query.push(("from", f.clone()));
    }
    for k in &args.kinds {
        query.push(("kind", k.clone()));
    }
    runtime()?.block_on(async {
        let client = stream_client()?;
        let mut last_id: Option<String> = None;
        loop {
            let mut events = Box::pin(
                open_stream(&client, &args.server.server, &query, last_id.as_deref()).await?,
            );
            let mut resume = false;
            while let Some(ev) = events.next().await {
                let ev = ev?;
                match ev.event.as_str() {
                    "lagged" => {
                        eprintln!(
                            "warning: the member dropped this stream for falling behind; \
                             resuming after {}",
                            ev.id
                        );
                        last_id = Some(ev.id);
                        resume = true;
                        break;
                    }
                    "error" => bail!("events: {}", ErrorBody::message_of(&ev.data)),
                    "message" => {
                        if args.json {
                            writeln!(out, "{}", ev.data)?;
                        } else {
                            let v: serde_json::Value = serde_json::from_str(&ev.data)
                                .context("events: an event that is not JSON")?;
                            writeln!(out, "{}", v["text"].as_str().unwrap_or(&ev.data))?;
                        }
                        if args.follow {
                            out.flush()?;
                        }
                        if !ev.id.is_empty() {
                            last_id = Some(ev.id);
                        }
                    }
                    _ => {} // unknown event types are for newer clients
                }
            }
            if resume {
                continue;
            }
            if args.follow {
                bail!("events: the member ended the stream (it is stopping?)");
            }
            return Ok(());
        }
    })
}
