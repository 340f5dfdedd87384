//! Clusters of real `hearth serve` processes: forming one by `--join`, polling with a
//! deadline, killing a node.

use super::{start_serve_with, Serve};
use hearth_services::node::api::{ClusterStatus, WriteReply};
use prost::Message as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a cluster may take to converge.
pub const CONVERGE: Duration = Duration::from_secs(90);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn get<T: serde::de::DeserializeOwned>(c: &reqwest::Client, url: &str) -> Option<T> {
    let r = c.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Posts `env` to `POST /v1/events`; fails the test unless it is committed (201).
pub async fn post_event(
    c: &reqwest::Client,
    url: &str,
    env: &hearth_proto::v1::Envelope,
) -> WriteReply {
    let r = c
        .post(format!("{url}/v1/events"))
        .body(env.encode_to_vec())
        .send()
        .await
        .expect("POST /v1/events");
    assert_eq!(
        r.status().as_u16(),
        201,
        "{}",
        r.text().await.unwrap_or_default()
    );
    r.json().await.expect("write reply")
}

/// Posts the benchmark sample event of `seed` (200 bytes), with this node's origin and a
/// fresh request id.
pub async fn post_sample(c: &reqwest::Client, url: &str, seed: u64) -> WriteReply {
    let mut env = hearth_proto::sample::sample_envelope(seed, 200);
    env.origin = Default::default();
    env.request_id = None;
    post_event(c, url, &env).await
}

pub async fn status_of(c: &reqwest::Client, node: &str) -> Option<ClusterStatus> {
    get(c, &format!("{node}/v1/admin/cluster")).await
}

/// Polls `f` until it answers `Some`, at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a founder and `joiners` more nodes joining it; waits until all are voters.
pub async fn form_cluster(root: &Path, n: usize, extra: &[&str]) -> Vec<Serve> {
    let c = client();
    let first = start_serve_with(&root.join("n0"), extra);
    let url = first.http_url();
    let mut nodes = vec![first];
    for i in 1..n {
        let mut args: Vec<&str> = vec!["--join", &url];
        args.extend_from_slice(extra);
        nodes.push(start_serve_with(&root.join(format!("n{i}")), &args));
    }
    wait_for("every node to be a voter", CONVERGE, || async {
        let st = status_of(&c, &url).await?;
        let settled = st.warnings.iter().all(|w| !w.contains("in progress"));
        (st.voters.len() == n && st.leader.is_some() && settled).then_some(())
    })
    .await;
    nodes
}

pub fn sigkill(node: &Serve) {
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &node.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -KILL failed");
}
