//! `hearth bench stream`: how soon after commit a live `GET /v1/events` consumer gets an
//! event, with writes arriving at a fixed rate (target: ≤ 50 ms at 10,000 events/s).
//!
//! One `hearth serve` child process (real HTTP on loopback, the default durability). One
//! SSE consumer starts at the head (`from=head`, `kind=BlobDeleted`), then an open-loop writer
//! sends `--rate` events/s for `--duration` (each a `BlobDeleted` whose hash carries its
//! sequence number, so the consumer knows which write it is; at most `--inflight` requests
//! outstanding — a full window is reported as `late_sends`). All times come from this
//! process's one monotonic clock:
//! * **commit → delivered**: from the write's HTTP response (the node answers once the event
//!   is committed *and* applied, so this starts after the true commit and is a lower bound;
//!   the stream may deliver before the response is read — those count as 0 and are reported
//!   as `delivered_before_response`);
//! * **send → delivered**: from when the write was sent (an upper bound of commit → delivered,
//!   since it includes the commit itself);
//! * **send → response**: the write's own latency, for comparison.
//!
//! What it is **not**: a throughput benchmark (see `bench cluster`); the writer, the consumer
//! and the node share this machine's cores.

use super::disk;
use super::report::{micros, new_histogram, Baseline, Latency};
use crate::bench::blobs_bench::NodeProcess;
use crate::cli::events::{open_stream, stream_client};
use anyhow::Context as _;
use futures::StreamExt;
use hdrhistogram::Histogram;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{BlobDeleted, Envelope};
use parking_lot::Mutex;
use prost::Message as _;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `hearth bench stream`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchStreamArgs {
    /// Directory for the node's data directory (a fresh temporary directory inside it is used
    /// and removed). Default: the system's temporary directory.
    #[arg(long, env = "HEARTH_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Events written per second.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// How long the writer writes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Most writes outstanding at once.
    #[arg(long, default_value_t = 1024)]
    pub inflight: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `hearth bench stream` measured.
#[derive(Debug, Serialize)]
pub struct StreamReport {
    /// The disk's 4 KiB append + fdatasync baseline.
    pub baseline: Baseline,
    /// Events/s asked for.
    pub rate: u64,
    /// Events written (acknowledged).
    pub written: u64,
    /// Events/s acknowledged over the writing time.
    pub achieved_rate: f64,
    /// Sends that left after their slot because the in-flight window was full.
    pub late_sends: u64,
    /// Written events the consumer received.
    pub delivered: u64,
    /// Events received before their write's response was read.
    pub delivered_before_response: u64,
    /// Response (commit and apply acknowledged) → delivered.
    pub commit_to_delivered: Latency,
    /// Send → delivered.
    pub send_to_delivered: Latency,
    /// Send → response.
    pub send_to_response: Latency,
}

/// Per write: when it was sent, answered and delivered.
#[derive(Debug, Clone, Copy, Default)]
struct Times {
    sent: Option<Instant>,
    answered: Option<Instant>,
    delivered: Option<Instant>,
}

fn event(seq: u64) -> Vec<u8> {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&seq.to_le_bytes());
    hash[8..16].copy_from_slice(b"hrthbnch");
    Envelope {
        schema_version: hearth_proto::SCHEMA_VERSION,
        event: Some(Event::BlobDeleted(BlobDeleted {
            blob_hash: hash.to_vec().into(),
        })),
        ..Envelope::default()
    }
    .encode_to_vec()
}

/// The sequence number a benchmark event's JSON carries.
fn seq_of(data: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    let hex = v["event"]["blob_deleted"]["blob_hash"].as_str()?;
    let bytes = crate::hex::decode(hex)?;
    (bytes.get(8..16) == Some(&b"hrthbnch"[..])).then_some(())?;
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Runs `hearth bench stream`.
pub fn run_stream(args: &BenchStreamArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(args.inflight > 0, "--inflight must be at least 1");
    let total = (args.rate as f64 * args.duration.as_secs_f64()).round() as u64;
    anyhow::ensure!(total > 0, "--rate × --duration is less than one event");
    let scratch = super::scratch_dir(args.dir.as_deref(), "hearth-bench-stream-")?;
    let progress = std::io::stderr().is_terminal();
    super::say(progress, "disk baseline");
    let baseline = disk::measure(scratch.path())?;
    let node = NodeProcess::start_with(&scratch.path().join("node"), &[])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(async {
        let times: Arc<Mutex<Vec<Times>>> =
            Arc::new(Mutex::new(vec![Times::default(); total as usize]));
        let sse = stream_client()?;
        let query = [("from", "head".to_string()), ("kind", "BlobDeleted".into())];
        let mut events = Box::pin(open_stream(&sse, &node.url, &query, None).await?);
        let consumer = {
            let times = times.clone();
            tokio::spawn(async move {
                let mut got = 0u64;
                while let Some(ev) = events.next().await {
                    let ev = ev?;
                    let now = Instant::now();
                    if ev.event == "lagged" {
                        anyhow::bail!("the consumer fell behind the live buffer and was dropped");
                    }
                    if let Some(seq) = seq_of(&ev.data) {
                        if let Some(t) = times.lock().get_mut(seq as usize) {
                            t.delivered.get_or_insert(now);
                        }
                        got += 1;
                        if got == total {
                            break;
                        }
                    }
                }
                anyhow::Ok(got)
            })
        };
        super::say(
            progress,
            format_args!("writing {total} events at {}/s", args.rate),
        );
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.inflight)
            .tcp_nodelay(true)
            .build()
            .context("HTTP client")?;
        let window = Arc::new(tokio::sync::Semaphore::new(args.inflight));
        let url = format!("{}/v1/events", node.url);
        let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
        let start = tokio::time::Instant::now();
        let mut late = 0u64;
        let mut written = 0u64;
        let mut writers = tokio::task::JoinSet::new();
        for seq in 0..total {
            let slot = start + interval.mul_f64(seq as f64);
            if slot > tokio::time::Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(slot).await;
            }
            let permit = match window.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    late += 1;
                    window.clone().acquire_owned().await.context("window")?
                }
            };
            let (client, url, times) = (client.clone(), url.clone(), times.clone());
            let body = event(seq);
            writers.spawn(async move {
                let sent = Instant::now();
                let resp = client.post(&url).body(body).send().await;
                let answered = Instant::now();
                drop(permit);
                let ok = matches!(&resp, Ok(r) if r.status().is_success());
                if ok {
                    let mut t = times.lock();
                    t[seq as usize].sent = Some(sent);
                    t[seq as usize].answered = Some(answered);
                }
                ok
            });
            while let Some(done) = writers.try_join_next() {
                written += u64::from(done.context("writer task")?);
            }
        }
        while let Some(done) = writers.join_next().await {
            written += u64::from(done.context("writer task")?);
        }
        let elapsed = start.elapsed();
        // Everything acknowledged was applied: give the stream a moment to deliver it.
        // (A consumer still waiting after that leaves the missing ones undelivered.)
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(10), consumer).await {
            r.context("consumer task")??;
        }
        let t = times.lock();
        let (mut c2d, mut s2d, mut s2r) = (new_histogram(), new_histogram(), new_histogram());
        let (mut got, mut early) = (0u64, 0u64);
        for x in t.iter() {
            let (Some(s), Some(a)) = (x.sent, x.answered) else {
                continue;
            };
            s2r.saturating_record(micros(a - s));
            let Some(d) = x.delivered else { continue };
            got += 1;
            s2d.saturating_record(micros(d.saturating_duration_since(s)));
            if d < a {
                early += 1;
            }
            c2d.saturating_record(micros(d.saturating_duration_since(a)));
        }
        let lat = |h: &Histogram<u64>| Latency::from_histogram(h);
        anyhow::Ok(StreamReport {
            baseline,
            rate: args.rate,
            written,
            achieved_rate: written as f64 / elapsed.as_secs_f64(),
            late_sends: late,
            delivered: got,
            delivered_before_response: early,
            commit_to_delivered: lat(&c2d),
            send_to_delivered: lat(&s2d),
            send_to_response: lat(&s2r),
        })
    })?;
    drop(node);
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    let ms = |us: u64| us as f64 / 1000.0;
    writeln!(
        out,
        "disk: {:.0} fdatasync/s (4 KiB), p50 {} µs",
        report.baseline.fdatasync_iops, report.baseline.p50_us
    )?;
    writeln!(
        out,
        "writes: {} of {} asked at {}/s, {:.0}/s achieved, {} sent late (window full)",
        report.written, total, report.rate, report.achieved_rate, report.late_sends
    )?;
    writeln!(
        out,
        "delivered: {} ({} before their response was read)",
        report.delivered, report.delivered_before_response
    )?;
    writeln!(out, "{:<24} {:>9} {:>9} {:>9}", "ms", "p50", "p99", "max")?;
    for (name, l) in [
        ("commit → delivered", &report.commit_to_delivered),
        ("send → delivered", &report.send_to_delivered),
        ("send → response", &report.send_to_response),
    ] {
        writeln!(
            out,
            "{name:<24} {:>9.2} {:>9.2} {:>9.2}",
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.max_us)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_sequence_number() {
        let env = hearth_proto::decode_envelope(&event(12345)).expect("decodes");
        let json = crate::cli::event_json::envelope_json(&env);
        let line = serde_json::json!({ "event": json }).to_string();
        assert_eq!(seq_of(&line), Some(12345));
        assert_eq!(seq_of("{}"), None);
    }
}
