//! Documents end to end, with real `hearth serve` processes on loopback: the HTTP API (JSON in,
//! JSON out, changes, the sync doorway, malformed input), the official Automerge JavaScript
//! client syncing through the doorway, and devices outside the cluster editing offline and
//! converging through `/hearth/sync/1`.

mod common;

use common::cluster::{client, get, wait_for};
use common::{free_port, sigterm_and_wait, start_serve, start_serve_args, start_serve_with};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Bound on every convergence wait here.
const CONVERGE: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
struct WriteReply {
    id: String,
    heads: Vec<String>,
    changes: usize,
    index: u64,
}

#[derive(Debug, Deserialize, Clone)]
struct View {
    heads: Vec<String>,
    value: Value,
}

#[derive(Debug, Deserialize)]
struct Changes {
    heads: Vec<String>,
    changes: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

async fn create(c: &reqwest::Client, url: &str, body: Value) -> WriteReply {
    let r = c
        .post(format!("{url}/v1/docs"))
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    r.json().await.expect("reply")
}

async fn put(c: &reqwest::Client, url: &str, id: &str, body: Value) -> WriteReply {
    let r = c
        .put(format!("{url}/v1/docs/{id}"))
        .json(&body)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    r.json().await.expect("reply")
}

async fn view(c: &reqwest::Client, url: &str, id: &str) -> Option<View> {
    get(c, &format!("{url}/v1/docs/{id}")).await
}

async fn expect_400(r: reqwest::Response, what: &str) -> ErrorBody {
    assert_eq!(r.status().as_u16(), 400, "{what}");
    let body: ErrorBody = r.json().await.expect("a JSON error body");
    assert!(!body.error.message.is_empty(), "{what}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_over_http_and_malformed_input_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_serve(dir.path());
    let url = node.http_url();
    let c = client();

    let first = json!({"title": "Fractions", "steps": ["halves", "thirds"], "level": 1});
    let made = create(&c, &url, first.clone()).await;
    assert_eq!(made.changes, 1);
    let v = view(&c, &url, &made.id).await.expect("view");
    assert_eq!(v.value, first);
    assert_eq!(v.heads, made.heads);

    // A PUT records only what differs; the same body again records nothing.
    let second =
        json!({"title": "Fractions", "steps": ["halves", "quarters"], "level": 2, "done": false});
    let w = put(&c, &url, &made.id, second.clone()).await;
    assert_eq!(w.changes, 1);
    assert!(w.index > made.index);
    let again = put(&c, &url, &made.id, second.clone()).await;
    assert_eq!(again.changes, 0);
    assert_eq!(again.heads, w.heads);
    let v = view(&c, &url, &made.id).await.expect("view");
    assert_eq!(v.value, second);

    // Changes since the first heads: exactly the one PUT made.
    let ch: Changes = get(
        &c,
        &format!(
            "{url}/v1/docs/{}/changes?since={}",
            made.id,
            made.heads.join(",")
        ),
    )
    .await
    .expect("changes");
    assert_eq!(ch.changes.len(), 1);
    assert_eq!(ch.heads, w.heads);
    let all: Changes = get(&c, &format!("{url}/v1/docs/{}/changes", made.id))
        .await
        .expect("changes");
    assert_eq!(all.changes.len(), 2);

    // An empty create makes an empty document; the list shows both.
    let empty = c
        .post(format!("{url}/v1/docs"))
        .send()
        .await
        .expect("create");
    assert_eq!(empty.status().as_u16(), 201);
    let empty: WriteReply = empty.json().await.expect("reply");
    assert_eq!(
        view(&c, &url, &empty.id).await.expect("view").value,
        json!({})
    );
    let list: Value = get(&c, &format!("{url}/v1/docs")).await.expect("list");
    assert_eq!(list["docs"].as_array().map(Vec::len), Some(2));

    // Malformed input: 400 with a JSON body, nothing changes.
    let doc_url = format!("{url}/v1/docs/{}", made.id);
    expect_400(
        c.put(&doc_url).body("{not json").send().await.expect("put"),
        "bad JSON",
    )
    .await;
    expect_400(
        c.put(&doc_url)
            .json(&json!([1, 2]))
            .send()
            .await
            .expect("put"),
        "array root",
    )
    .await;
    expect_400(
        c.get(format!("{url}/v1/docs/xyz"))
            .send()
            .await
            .expect("get"),
        "bad id",
    )
    .await;
    expect_400(
        c.get(format!("{doc_url}/changes?since=00ff"))
            .send()
            .await
            .expect("get"),
        "bad head",
    )
    .await;
    expect_400(
        c.get(format!("{doc_url}/changes?since={}", "ab".repeat(32)))
            .send()
            .await
            .expect("get"),
        "unknown head",
    )
    .await;
    let e = expect_400(
        c.post(format!("{doc_url}/sync?client=x"))
            .body(vec![0x42u8, 1, 2, 3, 4])
            .send()
            .await
            .expect("sync"),
        "garbage sync message",
    )
    .await;
    assert!(e.error.message.contains("sync message"), "{e:?}");
    expect_400(
        c.post(format!("{doc_url}/sync"))
            .body(vec![0x42u8])
            .send()
            .await
            .expect("sync"),
        "no client named",
    )
    .await;
    let missing = c
        .get(format!("{url}/v1/docs/{}", "0".repeat(32)))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status().as_u16(), 404);
    let e: ErrorBody = missing.json().await.expect("body");
    assert_eq!(e.error.code, "not_found");
    let v = view(&c, &url, &made.id).await.expect("view");
    assert_eq!(v.value, second);
    assert_eq!(v.heads, w.heads);

    // The CLI sees the same document.
    let out = common::run_hearth(
        &["doc", "get", &made.id, "--server", &url],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed, second);
    let out = common::run_hearth(
        &["doc", "put", &made.id, "{\"title\": 3}", "--server", &url],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        view(&c, &url, &made.id).await.expect("view").value,
        json!({"title": 3})
    );
    let out = common::run_hearth(
        &["doc", "put", &made.id, "[1]", "--server", &url],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "{out:?}"
    );
    drop(node);
}

/// Installs the pinned `@automerge/automerge` into a cache directory (once) and returns the
/// directory holding `node_modules` and the client script.
fn automerge_js() -> PathBuf {
    const PACKAGE: &str = "@automerge/automerge@3.5.0";
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("hearth")
        .join("npm-automerge-3.5.0");
    let installed = cache.join("node_modules/@automerge/automerge/package.json");
    if !installed.exists() {
        std::fs::create_dir_all(&cache).expect("cache dir");
        let status = Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", PACKAGE])
            .current_dir(&cache)
            .status()
            .expect("npm (Node.js) is needed for the JavaScript client test");
        assert!(status.success(), "npm install {PACKAGE} failed");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js/doc_client.mjs");
    std::fs::copy(&script, cache.join("doc_client.mjs")).expect("copy the client script");
    cache
}

fn run_js(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new("node")
        .arg(dir.join("doc_client.mjs"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_automerge_client_and_hearth_edit_concurrently_and_converge() {
    let js = tokio::task::spawn_blocking(automerge_js)
        .await
        .expect("install");
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_serve(dir.path());
    let url = node.http_url();
    let c = client();
    let made = create(
        &c,
        &url,
        json!({"title": "Plants", "tags": ["green"], "count": 1}),
    )
    .await;
    let state = dir.path().join("js-state.json");
    let state_s = state.to_string_lossy().to_string();

    // The JS client syncs the document down and edits it locally (not sent yet) ...
    let local = run_js(&js, &["pull-edit", &url, &made.id, "browser-1", &state_s]);
    assert_eq!(local["title"], "Plants");
    assert_eq!(local["fromJs"], "js");
    // ... while a plain HTTP client changes it on the server.
    put(
        &c,
        &url,
        &made.id,
        json!({"title": "Plants and trees", "tags": ["green"], "count": 1, "fromHttp": true}),
    )
    .await;
    // Then the JS client syncs: both sides hold both edits, as the same JSON.
    let merged = run_js(&js, &["sync", &url, &made.id, "browser-1", &state_s]);
    let server = view(&c, &url, &made.id).await.expect("view").value;
    assert_eq!(merged, server, "the JS and hearth documents differ");
    assert_eq!(server["title"], "Plants and trees");
    assert_eq!(server["fromJs"], "js");
    assert_eq!(server["fromHttp"], true);
    assert_eq!(server["count"], 2);
    assert_eq!(server["tags"], json!(["green", "js"]));
    drop(node);
}

fn peer_id_of(data: &Path) -> String {
    let out = common::run_hearth(
        &["id", "--data-dir", &data.to_string_lossy()],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_edit_offline_and_converge_through_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = client();
    let (cluster_dir, a_dir, b_dir) = (
        dir.path().join("cluster"),
        dir.path().join("laptop-a"),
        dir.path().join("laptop-b"),
    );
    // The cluster's p2p address must stay the same across its restart: the devices dial it.
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let cluster_args = ["--http", "127.0.0.1:0", "--p2p", p2p.as_str()];
    let mut cluster = start_serve_args(&cluster_dir, &cluster_args);
    let curl = cluster.http_url();
    let cluster_peer = peer_id_of(&cluster_dir);
    let sync_with = format!("{p2p}/p2p/{cluster_peer}");

    let shared = create(&c, &curl, json!({"title": "Trip", "items": ["tent"]})).await;
    let private = create(&c, &curl, json!({"secret": true})).await;

    // Pair both devices for the shared document only (their identities exist once started).
    let mut a = start_serve_with(&a_dir, &["--sync-with", &sync_with]);
    let b = start_serve_with(&b_dir, &["--sync-with", &sync_with]);
    let unpaired = c
        .post(format!("{curl}/v1/admin/devices"))
        .json(&json!({"peer_id": "nope", "write": [shared.id]}))
        .send()
        .await
        .expect("pair");
    assert_eq!(unpaired.status().as_u16(), 400);
    for d in [&a_dir, &b_dir] {
        let r = c
            .post(format!("{curl}/v1/admin/devices"))
            .json(&json!({"peer_id": peer_id_of(d), "name": "laptop", "write": [shared.id]}))
            .send()
            .await
            .expect("pair");
        assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
    }
    for dev in [&a, &b] {
        let url = dev.http_url();
        let v = wait_for(
            "the device to receive the shared document",
            CONVERGE,
            || async { view(&c, &url, &shared.id).await },
        )
        .await;
        assert_eq!(v.value["title"], "Trip");
    }
    // Partial sync: the document it is not paired for never arrives.
    let r = c
        .get(format!("{}/v1/docs/{}", a.http_url(), private.id))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 404);

    // The cluster goes away; both devices edit the same document offline.
    let status = sigterm_and_wait(&mut cluster.child);
    assert!(status.success());
    put(
        &c,
        &a.http_url(),
        &shared.id,
        json!({"title": "Trip", "items": ["tent"], "from_a": "stove"}),
    )
    .await;
    put(
        &c,
        &b.http_url(),
        &shared.id,
        json!({"title": "Trip to the lake", "items": ["tent"]}),
    )
    .await;
    // Device A restarts between its edit and the reconnect: the edit is in its log.
    let status = sigterm_and_wait(&mut a.child);
    assert!(status.success());
    a = start_serve_with(&a_dir, &["--sync-with", &sync_with]);

    // The cluster comes back: everyone converges with both edits, without any user action.
    cluster = start_serve_args(&cluster_dir, &cluster_args);
    let expected = json!({"title": "Trip to the lake", "items": ["tent"], "from_a": "stove"});
    let mut views = Vec::new();
    for url in [cluster.http_url(), a.http_url(), b.http_url()] {
        let v = wait_for("every copy to hold both edits", CONVERGE, || async {
            let v = view(&c, &url, &shared.id).await?;
            (v.value == expected).then_some(v)
        })
        .await;
        views.push(v);
    }
    for v in &views[1..] {
        let (mut x, mut y) = (v.heads.clone(), views[0].heads.clone());
        x.sort();
        y.sort();
        assert_eq!(x, y, "same heads everywhere");
    }
    drop((a, b, cluster));
}
