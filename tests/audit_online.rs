//! The online audit, end to end on a real `hearth serve`: `POST /v1/admin/audit` while a
//! writer keeps committing events. The audit answers 202 with the snapshot's index A, a second
//! one while it runs is 409, and the report it ends with passes (exit code 0, every digest
//! equal) and covers exactly the log through A although the log has grown past A meanwhile;
//! `hearth audit --api URL` does the same from the command line. Bad requests get JSON 4xx.

mod common;

use common::{sigterm_and_wait, start_serve};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest the audit may take.
const LIMIT: Duration = Duration::from_secs(60);

async fn post_event(c: &reqwest::Client, url: &str, seed: u64) -> u64 {
    common::cluster::post_sample(c, url, seed).await.index
}

async fn audit_status(c: &reqwest::Client, url: &str, id: u64) -> Value {
    let r = c
        .get(format!("{url}/v1/admin/audit/{id}"))
        .send()
        .await
        .expect("GET audit");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("status JSON")
}

#[test]
fn an_online_audit_passes_over_a_fixed_range_while_writes_go_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    let mut serve = start_serve(&data);
    let url = serve.http_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = reqwest::Client::new();
        // Some history first, in parallel so it fills batch entries too.
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let (c, url) = (c.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut last = 0;
                for i in 0..150u64 {
                    last = last.max(post_event(&c, &url, 1_000 + w * 1_000 + i).await);
                }
                last
            }));
        }
        let mut history = 0;
        for t in tasks {
            history = history.max(t.await.expect("writer"));
        }

        // A writer that runs during the audit.
        let stop = Arc::new(AtomicBool::new(false));
        let highest = Arc::new(AtomicU64::new(0));
        let writer = {
            let (c, url, stop, highest) = (c.clone(), url.clone(), stop.clone(), highest.clone());
            tokio::spawn(async move {
                let mut seed = 100_000;
                while !stop.load(Ordering::SeqCst) {
                    let index = post_event(&c, &url, seed).await;
                    highest.fetch_max(index, Ordering::SeqCst);
                    seed += 1;
                }
            })
        };
        while highest.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        let r = c
            .post(format!("{url}/v1/admin/audit"))
            .send()
            .await
            .expect("POST audit");
        assert_eq!(r.status().as_u16(), 202);
        let started: Value = r.json().await.expect("JSON");
        let id = started["id"].as_u64().expect("id");
        let through = started["through_index"].as_u64().expect("through_index");
        // Concurrent writers share entries (group commit): the history is every entry up to
        // the last one a writer was answered with before the audit began.
        assert!(
            through >= history.max(1),
            "the snapshot holds the history ({history}): {started}"
        );

        // One at a time: a second audit is refused while the first runs.
        let second = c
            .post(format!("{url}/v1/admin/audit"))
            .send()
            .await
            .expect("POST audit");
        match second.status().as_u16() {
            409 => {
                let body: Value = second.json().await.expect("JSON error");
                assert_eq!(body["error"]["code"], "conflict");
            }
            202 => {
                // Only possible when the first one had already finished.
                let first = audit_status(&c, &url, id).await;
                assert_ne!(first["state"], "running");
                let other: Value = second.json().await.expect("JSON");
                let other = other["id"].as_u64().expect("id");
                let deadline = Instant::now() + LIMIT;
                while audit_status(&c, &url, other).await["state"] == "running" {
                    assert!(Instant::now() < deadline, "the second audit did not finish");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            s => panic!("second audit: {s}"),
        }

        let deadline = Instant::now() + LIMIT;
        let done = loop {
            let st = audit_status(&c, &url, id).await;
            if st["state"] != "running" {
                break st;
            }
            assert!(Instant::now() < deadline, "the audit did not finish: {st}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The writer never failed (each write asserts its 201) and commits past the snapshot:
        // the log grew while the report covers exactly first..=A.
        let deadline = Instant::now() + LIMIT;
        while highest.load(Ordering::SeqCst) <= through {
            assert!(
                Instant::now() < deadline,
                "no write committed after the snapshot"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::SeqCst);
        writer.await.expect("writer");

        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["ok"], true, "{done}");
        assert_eq!(done["exit_code"], 0, "{done}");
        let report = &done["report"];
        assert_eq!(report["log"]["last_index"], through, "{report}");
        assert_eq!(report["projections"]["live_applied"]["index"], through);
        assert_eq!(report["projections"]["rebuilt_applied"]["index"], through);
        let tables = report["projections"]["tables"].as_array().expect("tables");
        assert!(
            tables.len() >= 5 && tables.iter().all(|t| t["matches"] == true),
            "{tables:?}"
        );
        assert!(
            report["events"]["events"].as_u64().expect("events") >= 8 * 150,
            "{report}"
        );

        // Bad input: JSON 4xx, the node keeps serving.
        for (path, want) in [
            ("/v1/admin/audit/nope", 400),
            ("/v1/admin/audit/999999", 404),
        ] {
            let r = c.get(format!("{url}{path}")).send().await.expect("GET");
            assert_eq!(r.status().as_u16(), want, "{path}");
            let body: Value = r.json().await.expect("JSON error");
            assert!(body["error"]["message"].is_string(), "{body}");
        }
        let r = c
            .post(format!("{url}/v1/admin/audit?threads=0"))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 400);
        post_event(&c, &url, 7).await;
    });

    // The command-line client.
    let out = common::run_hearth(&["audit", "--api", &url, "--json"], LIMIT);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(st["report"]["ok"], true);
    let out = common::run_hearth(&["audit", "--api", &url], LIMIT);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("matches"));

    let status = sigterm_and_wait(&mut serve.child);
    assert!(status.success(), "{status:?}");
}
