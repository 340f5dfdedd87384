//! Operators: `/metrics` (Prometheus text that moves with a workload), `--log-format json`
//! (one JSON object per line), and the live event stream `GET /v1/events` (catch-up, live
//! follow, resume with `Last-Event-ID` exactly once, kind filter, a lagging consumer dropped
//! with its resume point) and `hearth events` — against real `hearth serve` processes.

mod common;

use common::{hearth, run_hearth, sigterm_and_wait, start_serve, start_serve_with, LIMIT};
use futures::StreamExt;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{BlobDeleted, Envelope, ManifestVerified};
use hearth_services::cli::events::{open_stream, stream_client, SseEvent};
use hearth_services::metrics::exposition::Exposition;
use prost::Message;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn scrape(c: &reqwest::Client, url: &str) -> Exposition {
    let resp = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.expect("body");
    Exposition::parse(&text).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"))
}

fn envelope(event: Event) -> Vec<u8> {
    Envelope {
        schema_version: hearth_proto::SCHEMA_VERSION,
        event: Some(event),
        ..Envelope::default()
    }
    .encode_to_vec()
}

/// A `BlobDeleted` naming blob `blake3(i)`: rejected by the blob index (no such blob) but in
/// the log, so it streams like any event.
fn marker(i: u64) -> Vec<u8> {
    envelope(Event::BlobDeleted(BlobDeleted {
        blob_hash: blake3::hash(&i.to_le_bytes()).as_bytes().to_vec().into(),
    }))
}

async fn post(c: &reqwest::Client, url: &str, body: Vec<u8>) -> u64 {
    let resp = c
        .post(format!("{url}/v1/events"))
        .body(body)
        .send()
        .await
        .expect("POST /v1/events");
    assert_eq!(resp.status(), 201);
    resp.json::<serde_json::Value>().await.expect("reply")["index"]
        .as_u64()
        .expect("index")
}

/// `(index, position)` of an SSE id `I` or `I.P`.
fn id_key(id: &str) -> (u64, u32) {
    match id.split_once('.') {
        Some((i, p)) => (i.parse().unwrap(), p.parse().unwrap()),
        None => (id.parse().unwrap(), 0),
    }
}

fn blob_of(ev: &SseEvent) -> String {
    let v: serde_json::Value = serde_json::from_str(&ev.data).expect("JSON data");
    assert_eq!(v["kind"], "BlobDeleted", "{v}");
    v["event"]["blob_deleted"]["blob_hash"]
        .as_str()
        .expect("blob_hash")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_a_workload() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve_with(&dir.path().join("n"), &["--erasure", "2+1"]);
    let url = serve.http_url();
    let c = client();
    let before = scrape(&c, &url).await;
    for name in [
        "hearth_raft_term",
        "hearth_raft_applied_index",
        "hearth_raft_is_leader",
    ] {
        assert!(before.has(name), "{name} missing");
    }
    let put_201 = [("route", "/v1/blobs"), ("method", "PUT"), ("status", "201")];
    let blobs: Vec<Vec<u8>> = vec![vec![7u8; 1000], (0..300_000u32).map(|i| i as u8).collect()];
    let mut total = 0u64;
    for b in &blobs {
        total += b.len() as u64;
        let r = c
            .put(format!("{url}/v1/blobs"))
            .body(b.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let hash = blake3::hash(&blobs[1]).to_hex().to_string();
    let got = c
        .get(format!("{url}/v1/blobs/{hash}"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().len(), blobs[1].len());

    let after = scrape(&c, &url).await;
    let d =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(d("hearth_blob_bytes_in_total", &[]), total as f64);
    assert_eq!(d("hearth_blob_bytes_out_total", &[]), blobs[1].len() as f64);
    assert_eq!(d("hearth_http_requests_total", &put_201), 2.0);
    // The route is the template, never the raw path.
    let get_route = [
        ("route", "/v1/blobs/{hash}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(d("hearth_http_requests_total", &get_route), 1.0);
    assert!(!after
        .samples
        .iter()
        .any(|s| s.labels.get("route").is_some_and(|r| r.contains(&hash))));
    assert!(d("hearth_log_entries_appended_total", &[]) >= 2.0);
    assert!(d("hearth_log_fsync_seconds_count", &[]) >= 2.0);
    assert!(after.sum("hearth_log_fsync_seconds_bucket", &[("le", "+Inf")]) >= 2.0);
    assert_eq!(after.types["hearth_log_fsync_seconds"], "histogram");
    assert!(
        after.sum("hearth_raft_applied_index", &[]) > before.sum("hearth_raft_applied_index", &[])
    );
    assert_eq!(after.sum("hearth_raft_is_leader", &[]), 1.0);
    // An unknown route is counted as such.
    let r = c.get(format!("{url}/no/such/{hash}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let last = scrape(&c, &url).await;
    assert_eq!(
        last.sum(
            "hearth_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(sigterm_and_wait(&mut serve.child).code(), Some(0));
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let mut child = common::Guard(
        hearth()
            .args(["serve", "--log-format", "json", "--data-dir"])
            .arg(&data)
            .args(common::FREE_PORTS)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let err_lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("serve did not report running");
        if line.starts_with("running") {
            break;
        }
    }
    assert_eq!(sigterm_and_wait(&mut child).code(), Some(0));
    let lines = err_lines.join().unwrap();
    assert!(!lines.is_empty(), "no log lines at RUST_LOG=info");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line:?}"));
        assert!(
            v.is_object() && v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_resumes_with_last_event_id_sees_every_event_once() {
    const WRITERS: u64 = 16;
    const EACH: u64 = 25;
    const TOTAL: usize = (WRITERS * EACH) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(&dir.path().join("n"));
    let url = serve.http_url();
    let c = client();
    // A few before the consumer starts (catch-up), the rest while it reads (live).
    for i in 0..10 {
        post(&c, &url, marker(1_000_000 + i)).await;
    }
    let sc = stream_client().unwrap();
    let query = vec![
        ("from", "1".to_string()),
        ("kind", "blobdeleted".to_string()),
    ];
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                for j in 0..EACH {
                    post(&c, &url, marker(w * EACH + j)).await;
                }
            })
        })
        .collect();
    let want: BTreeSet<String> = (0..WRITERS * EACH)
        .chain(1_000_000..1_000_010)
        .map(|i| blake3::hash(&i.to_le_bytes()).to_hex().to_string())
        .collect();
    let mut seen: Vec<(String, String)> = Vec::new(); // (id, blob)
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_id: Option<String> = None;
    let mut connections = 0;
    while seen.len() < TOTAL + 10 {
        assert!(
            Instant::now() < deadline,
            "only {} events arrived",
            seen.len()
        );
        connections += 1;
        let mut events = Box::pin(
            open_stream(&sc, &url, &query, last_id.as_deref())
                .await
                .unwrap(),
        );
        // The first connection is dropped midway — inside a batch entry when there is one.
        let stop_after = if connections == 1 { Some(150) } else { None };
        while let Some(ev) = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("stream stalled")
        {
            let ev = ev.unwrap();
            assert_eq!(ev.event, "message", "{ev:?}");
            seen.push((ev.id.clone(), blob_of(&ev)));
            last_id = Some(ev.id);
            if stop_after.is_some_and(|n| seen.len() >= n && seen.last().unwrap().0.contains('.'))
                || stop_after.is_some_and(|n| seen.len() >= n + 100)
                || seen.len() == TOTAL + 10
            {
                break;
            }
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(connections >= 2);
    let blobs: BTreeSet<String> = seen.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(blobs.len(), seen.len(), "an event arrived twice");
    assert_eq!(blobs, want);
    let keys: Vec<(u64, u32)> = seen.iter().map(|(id, _)| id_key(id)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "out of order: {keys:?}"
    );
    assert_eq!(sigterm_and_wait(&mut serve.child).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_filter_follow_false_bad_input_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(&dir.path().join("n"));
    let url = serve.http_url();
    let c = client();
    let mut last = 0;
    for i in 0..5 {
        last = post(&c, &url, marker(i)).await;
    }
    let sc = stream_client().unwrap();
    let all: Vec<SseEvent> = open_stream(&sc, &url, &[("follow", "false".into())], None)
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    let kinds: BTreeSet<String> = all
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["kind"].to_string())
        .collect();
    assert!(kinds.len() >= 2, "{kinds:?}"); // raft's own entries and the markers
    assert!(all.last().is_some_and(|e| id_key(&e.id).0 >= last));
    let only: Vec<SseEvent> = open_stream(
        &sc,
        &url,
        &[("follow", "false".into()), ("kind", "BlobDeleted".into())],
        None,
    )
    .await
    .unwrap()
    .map(|e| e.unwrap())
    .collect()
    .await;
    assert_eq!(only.len(), 5);
    for e in &only {
        blob_of(e);
    }
    // Resuming after the third gives the last two.
    let rest: Vec<SseEvent> = open_stream(
        &sc,
        &url,
        &[("follow", "false".into()), ("kind", "BlobDeleted".into())],
        Some(&only[2].id),
    )
    .await
    .unwrap()
    .map(|e| e.unwrap())
    .collect()
    .await;
    assert_eq!(
        rest.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&only[3].id, &only[4].id]
    );

    for (q, header) in [
        ("from=x", None),
        ("follow=perhaps", None),
        ("colour=red", None),
        ("", Some("12.x")),
    ] {
        let mut req = c.get(format!("{url}/v1/events?{q}"));
        if let Some(h) = header {
            req = req.header("Last-Event-ID", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{q} {header:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }

    // The CLI: text lines as `hearth log dump` prints them, JSON with --json, exit at the head.
    let (url2, limit) = (url.clone(), Duration::from_secs(30));
    let out = tokio::task::spawn_blocking(move || {
        let text = run_hearth(
            &["events", "--server", &url2, "--kind", "BlobDeleted"],
            limit,
        );
        let json = run_hearth(
            &["events", "--server", &url2, "--from", "1", "--json"],
            limit,
        );
        let bad = run_hearth(&["events", "--server", &url2, "--from", "soon"], limit);
        (text, json, bad)
    })
    .await
    .unwrap();
    let (text, json, bad) = out;
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&text.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("BlobDeleted") && l.contains("blob=")),
        "{lines:?}"
    );
    assert!(json.status.success());
    let objs: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    // `all` started at the first entry (index 0, raft's initial membership); `--from 1` after it.
    let from_one = all.iter().filter(|e| id_key(&e.id).0 >= 1).count();
    assert_eq!(objs.len(), from_one);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(sigterm_and_wait(&mut serve.child).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_consumer_is_dropped_with_its_resume_point() {
    // Four entries of buffer, and events of ~1.8 MB of JSON each: a consumer that stops
    // reading fills the sockets' buffers (a few tens of MB at most here) and then falls more
    // than four entries behind.
    const BIG: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve_with(&dir.path().join("n"), &["--events-buffer", "4"]);
    let url = serve.http_url();
    let c = client();
    let sc = stream_client().unwrap();
    let mut events = Box::pin(
        open_stream(&sc, &url, &[("from", "head".into())], None)
            .await
            .unwrap(),
    );
    // Live: it has taken an entry from the live buffer.
    post(&c, &url, marker(0)).await;
    let mut got: Vec<SseEvent> = Vec::new();
    while !got.iter().any(|e| e.data.contains("BlobDeleted")) {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("first event")
            .unwrap()
            .unwrap();
        got.push(ev);
    }
    let mut last = 0;
    for i in 1..=BIG {
        last = post(&c, &url, big(i)).await;
    }
    // Now read: what fitted in the buffers, then `lagged` with the resume point, then the end.
    let mut lagged = None;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("stream stalled")
    {
        let ev = ev.unwrap();
        if ev.event == "lagged" {
            lagged = Some(ev);
        } else {
            assert!(lagged.is_none(), "an event after `lagged`");
            got.push(ev);
        }
    }
    let lagged = lagged.expect("the consumer was not dropped");
    let resume: u64 = serde_json::from_str::<serde_json::Value>(&lagged.data).unwrap()
        ["resume_from"]
        .as_u64()
        .expect("resume_from");
    assert_eq!(lagged.id, (resume - 1).to_string());
    assert!(
        resume <= last,
        "dropped only after the end ({resume} > {last})"
    );
    assert!(got.iter().all(|e| id_key(&e.id).0 < resume));
    // Resuming there gives the rest, each once, in order.
    let rest: Vec<SseEvent> =
        open_stream(&sc, &url, &[("follow", "false".into())], Some(&lagged.id))
            .await
            .unwrap()
            .map(|e| e.unwrap())
            .collect()
            .await;
    let keys: Vec<(u64, u32)> = got.iter().chain(&rest).map(|e| id_key(&e.id)).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    let bigs: Vec<String> = got
        .iter()
        .chain(&rest)
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            v["event"]["manifest_verified"]["blob_hash"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let want: Vec<String> = (1..=BIG)
        .map(|i| blake3::hash(&i.to_le_bytes()).to_hex().to_string())
        .collect();
    assert_eq!(bigs, want);
    let m = scrape(&c, &url).await;
    assert_eq!(m.sum("hearth_event_stream_lagged_total", &[]), 1.0);
    assert_eq!(sigterm_and_wait(&mut serve.child).code(), Some(0));
}

/// A `ManifestVerified` for blob `blake3(i)` (unknown: rejected, still in the log) with a
/// 900,000-byte signature: ~1.8 MB of JSON on the stream.
fn big(i: u64) -> Vec<u8> {
    envelope(Event::ManifestVerified(ManifestVerified {
        blob_hash: blake3::hash(&i.to_le_bytes()).as_bytes().to_vec().into(),
        signature: vec![0xab; 900_000].into(),
        ..ManifestVerified::default()
    }))
}
