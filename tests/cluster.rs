//! Family clusters of real `hearth serve` processes on loopback: forming by `--join`, fail-over
//! under load after SIGKILL, catch-up by snapshot, refusing non-members and other clusters,
//! malformed raft messages, retried proposals, lost raft state, offline recovery.
//!
//! The tests in this file run one at a time (they take the `SERIAL` lock); each bounds every
//! wait with a deadline and kills its processes (by their guards) on every way out.

// Each test holds the `SERIAL` guard for its whole body, awaits included, on purpose: tests run
// one at a time, each on its own runtime, so no other task can wait on the lock.
#![allow(clippy::await_holding_lock)]

mod common;

use bytes::Bytes;
use common::cluster::{client, form_cluster, get, sigkill, status_of, wait_for, CONVERGE};
use common::{hearth, start_serve_with, Serve, LIMIT};
use hearth_proto::v1::RequestId;
use hearth_services::net::{status, NetConfig, NetError, NetHandle, RaftRequest};
use hearth_services::node::api::{ClusterStatus, EntryInfo, NodeInfo, WriteReply};
use hearth_services::node::ClusterFile;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

async fn info(c: &reqwest::Client, node: &str) -> Option<NodeInfo> {
    get(c, &format!("{node}/v1/admin/node")).await
}

/// An event envelope with a request id unique to (`tag`, `i`).
fn event(tag: &[u8], i: u64) -> Bytes {
    let mut env = hearth_proto::sample::sample_envelope(i, 256);
    env.request_id = Some(RequestId {
        node: Bytes::copy_from_slice(tag),
        seq: i,
    });
    Bytes::from(env.encode_to_vec())
}

async fn post_event(c: &reqwest::Client, node: &str, body: Bytes) -> Result<WriteReply, String> {
    let r = c
        .post(format!("{node}/v1/events"))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    if status.as_u16() != 201 {
        return Err(format!("{status}: {}", r.text().await.unwrap_or_default()));
    }
    r.json().await.map_err(|e| e.to_string())
}

async fn leader_url(c: &reqwest::Client, urls: &[String]) -> String {
    wait_for("a leader", CONVERGE, || async {
        for u in urls {
            if let Some(i) = info(c, u).await {
                if i.state == "Leader" {
                    return Some(u.clone());
                }
            }
        }
        None
    })
    .await
}

/// Waits until every node in `urls` has applied the same last index with the same head chain
/// hash and the same projection digests; returns that state.
async fn converged(c: &reqwest::Client, urls: &[String]) -> NodeInfo {
    let last_seen = Mutex::new(String::new());
    let deadline = Instant::now() + CONVERGE;
    wait_for(
        "nodes to converge",
        CONVERGE + Duration::from_secs(1),
        || async {
            let mut infos = Vec::new();
            for u in urls {
                infos.push(info(c, u).await);
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not converge; last seen: {}",
                last_seen.lock().unwrap()
            );
            *last_seen.lock().unwrap() = format!("{infos:?}");
            let infos: Vec<NodeInfo> = infos.into_iter().collect::<Option<_>>()?;
            let first = infos[0].clone();
            let same = infos.iter().all(|i| {
                i.last_index == first.last_index
                    && i.head_chain == first.head_chain
                    && i.applied_index == first.last_index
                    && i.digests == first.digests
            });
            same.then_some(first)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_survive_a_leader_sigkill_under_load() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = form_cluster(dir.path(), 3, &[]).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    let leader = leader_url(&c, &urls).await;
    let leader_pos = urls
        .iter()
        .position(|u| *u == leader)
        .expect("leader is a node");

    // 10,000 events from 16 writers; each retries the same bytes (same request id) on the
    // next node until one acknowledges it. The leader is killed once 3,000 are acknowledged.
    const TOTAL: u64 = 10_000;
    const WRITERS: u64 = 16;
    let acked = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicU64::new(0));
    // (event, entry index, position in the entry, acknowledged before the kill)
    type Ack = (u64, u64, u32, bool);
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (c, urls, acked, killed, acks) = (
            c.clone(),
            urls.clone(),
            acked.clone(),
            killed.clone(),
            acks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut target = w as usize % urls.len();
            for i in (w..TOTAL).step_by(WRITERS as usize) {
                let body = event(b"load", i);
                let deadline = Instant::now() + CONVERGE;
                loop {
                    let before_kill = killed.load(Ordering::SeqCst) == 0;
                    match post_event(&c, &urls[target], body.clone()).await {
                        Ok(r) => {
                            // A retry of a write that had committed is a duplicate: the first
                            // index is the one that counts.
                            let first = !matches!(
                                r.reason.as_deref(),
                                Some(reason) if reason.contains("duplicate")
                            );
                            if first {
                                acks.lock()
                                    .unwrap()
                                    .push((i, r.index, r.position, before_kill));
                            }
                            acked.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Err(_) => {
                            assert!(Instant::now() < deadline, "event {i} never acknowledged");
                            target = (target + 1) % urls.len();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }));
    }
    wait_for("3,000 acknowledged writes", CONVERGE, || async {
        (acked.load(Ordering::SeqCst) >= 3_000).then_some(())
    })
    .await;
    killed.store(1, Ordering::SeqCst);
    let kill_at = Instant::now();
    sigkill(&nodes[leader_pos]);
    let survivors: Vec<String> = urls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader_pos)
        .map(|(_, u)| u.clone())
        .collect();
    let new_leader = leader_url(&c, &survivors).await;
    // A new leader commits: one write through it.
    post_event(&c, &new_leader, event(b"after-kill", 0))
        .await
        .expect("the new leader commits");
    let failover = kill_at.elapsed();
    for t in tasks {
        t.await.expect("writer");
    }
    assert_eq!(acked.load(Ordering::SeqCst), TOTAL);
    eprintln!("fail-over: new leader committed {failover:?} after the SIGKILL");

    // Every write acknowledged before the kill is on every survivor at the same index, with
    // the same chain hash and the event bytes that were sent.
    let state = converged(&c, &survivors).await;
    let acks = acks.lock().unwrap().clone();
    assert!(acks.iter().filter(|a| a.3).count() >= 3_000 - WRITERS as usize);
    for (i, index, position, before_kill) in &acks {
        assert!(
            Some(*index) <= state.last_index,
            "ack {index} beyond the log"
        );
        if !before_kill {
            continue;
        }
        let mut seen: Option<EntryInfo> = None;
        for u in &survivors {
            let e: EntryInfo = get(&c, &format!("{u}/v1/admin/log/{index}"))
                .await
                .unwrap_or_else(|| panic!("entry {index} missing on {u}"));
            assert_eq!(
                e.envelopes_blake3
                    .get(*position as usize)
                    .map(String::as_str),
                Some(blake3::hash(&event(b"load", *i)).to_hex().as_str()),
                "entry {index} position {position} on {u} is not event {i}"
            );
            if let Some(s) = &seen {
                assert_eq!(s, &e, "entry {index} differs between survivors");
            }
            seen = Some(e);
        }
    }

    // The killed node restarts on its data and catches up to an identical log.
    let restarted = start_serve_with(&dir.path().join(format!("n{leader_pos}")), &[]);
    let mut all = survivors.clone();
    all.push(restarted.http_url());
    let fin = converged(&c, &all).await;
    assert!(fin.last_index >= state.last_index);
    nodes.push(restarted);
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_added_after_a_purge_catches_up_by_snapshot() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let purge = ["--retention", "purge", "--snapshot-every", "200"];
    let first = start_serve_with(&dir.path().join("n0"), &purge);
    let url = first.http_url();
    let c = client();
    for i in 0..1_000 {
        post_event(&c, &url, event(b"snap", i))
            .await
            .expect("write");
    }
    let purged = wait_for("the founder to purge its log", CONVERGE, || async {
        let i = info(&c, &url).await?;
        (i.first_index.unwrap_or(0) > 200 && i.snapshot_index.is_some()).then_some(i)
    })
    .await;
    let mut args = vec!["--join", url.as_str()];
    args.extend_from_slice(&purge);
    let second = start_serve_with(&dir.path().join("n1"), &args);
    let both = [url.clone(), second.http_url()];
    let state = converged(&c, &both).await;
    let joined = info(&c, &both[1]).await.expect("info");
    assert!(
        joined.snapshot_index.is_some(),
        "the new node installed a snapshot: {joined:?}"
    );
    assert!(
        joined
            .first_index
            .is_none_or(|f| f > purged.first_index.unwrap_or(0) - 1),
        "the new node never received the purged entries: {joined:?}"
    );
    assert_eq!(joined.head_chain, state.head_chain);
    // And it keeps replicating after the snapshot.
    let r = post_event(&c, &both[1], event(b"snap", 10_000))
        .await
        .expect("write via follower");
    converged(&c, &both).await;
    assert!(Some(r.index) <= info(&c, &both[1]).await.expect("info").last_index);

    // The founder archived what it purged: stopped, its data directory audits from the first
    // entry (the archive, then the log, linked by the chain) with equal digests.
    let mut first = first;
    let status = common::sigterm_and_wait(&mut first.child);
    assert!(status.success(), "{status:?}");
    let out = common::hearth()
        .args(["audit", "--json", "--data-dir"])
        .arg(dir.path().join("n0"))
        .output()
        .expect("audit");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(0), "{report}");
    let log = &report["log"];
    assert!(
        log["purged_through"].as_u64().is_some_and(|p| p >= 200),
        "{log}"
    );
    assert_eq!(log["archive"]["first_index"], 0, "{log}");
    assert!(
        log["archive"]["last_index"].as_u64() >= log["purged_through"].as_u64(),
        "{log}"
    );
    let projections = &report["projections"];
    assert!(projections["note"].is_null(), "{projections}");
    assert_eq!(projections["mismatches"], 0, "{projections}");
    assert_eq!(
        projections["rebuilt_applied"], projections["live_applied"],
        "{projections}"
    );
    // And it replays to a point the log itself no longer holds.
    let out = common::hearth()
        .args(["replay", "--to", "50", "--data-dir"])
        .arg(dir.path().join("n0"))
        .arg("--out")
        .arg(dir.path().join("replay-50"))
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the archive of entries, the founder audits from its newest signed snapshot the
    // log continues; a forged one is exit code 3, naming the file.
    let n0 = dir.path().join("n0");
    std::fs::rename(n0.join("archive/log"), dir.path().join("n0-archive-log")).expect("move");
    let (code, report) = audit_json(&n0, None);
    assert_eq!(code, Some(0), "{report}");
    let projections = &report["projections"];
    let base = &projections["base_snapshot"];
    assert_eq!(
        base["signer"].as_str(),
        Some(peer_id_of(&n0).as_str()),
        "{projections}"
    );
    assert!(base["problem"].is_null(), "{projections}");
    assert!(
        base["index"].as_u64() >= report["log"]["purged_through"].as_u64(),
        "{report}"
    );
    assert_eq!(projections["mismatches"], 0, "{projections}");
    assert_eq!(
        projections["rebuilt_applied"], projections["live_applied"],
        "{projections}"
    );
    let signed = std::path::PathBuf::from(base["file"].as_str().expect("file"));
    let good = std::fs::read(&signed).expect("read");
    let mut forged: serde_json::Value = serde_json::from_slice(&good).expect("json");
    forged["last_term"] = (forged["last_term"].as_u64().expect("term") + 1).into();
    std::fs::write(&signed, forged.to_string()).expect("write");
    let (code, report) = audit_json(&n0, None);
    assert_eq!(code, Some(3), "{report}");
    let findings = report["findings"].to_string();
    assert!(
        findings.contains("bad signature") && findings.contains(base["file"].as_str().unwrap()),
        "{findings}"
    );
    std::fs::write(&signed, &good).expect("restore");
    // Named explicitly, it is the one used.
    let (code, report) = audit_json(&n0, Some(&signed));
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["projections"]["base_snapshot"]["file"], base["file"]);

    // The node that joined by snapshot has no entries before it anywhere: it audits from the
    // snapshot it installed, which it archived signed.
    let mut second = second;
    let status = common::sigterm_and_wait(&mut second.child);
    assert!(status.success(), "{status:?}");
    let n1 = dir.path().join("n1");
    let (code, report) = audit_json(&n1, None);
    assert_eq!(code, Some(0), "{report}");
    let base = &report["projections"]["base_snapshot"];
    assert_eq!(
        base["signer"].as_str(),
        Some(peer_id_of(&n1).as_str()),
        "{report}"
    );
    drop((first, second));
}

/// `hearth audit --json --data-dir DIR [--snapshot SIGNED]`: its exit code and report.
fn audit_json(
    data_dir: &std::path::Path,
    snapshot: Option<&std::path::Path>,
) -> (Option<i32>, serde_json::Value) {
    let mut cmd = common::hearth();
    cmd.args(["audit", "--json", "--data-dir"]).arg(data_dir);
    if let Some(signed) = snapshot {
        cmd.arg("--snapshot").arg(signed);
    }
    let out = cmd.output().expect("audit");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// The PeerId of the node whose data directory is `data_dir` (`hearth id`).
fn peer_id_of(data_dir: &std::path::Path) -> String {
    let out = common::hearth()
        .args(["id", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("hearth id");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn net_for(keypair: &libp2p::identity::Keypair, cluster_id: [u8; 16]) -> NetHandle {
    struct Refuse;
    impl hearth_services::net::RaftInbound for Refuse {
        fn handle(
            &self,
            _: libp2p::PeerId,
            r: RaftRequest,
        ) -> futures::future::BoxFuture<'_, hearth_services::net::RaftResponse> {
            Box::pin(async move {
                hearth_services::net::RaftResponse::refused(r.cluster_id, status::MALFORMED)
            })
        }
    }
    let listen = "/ip4/127.0.0.1/tcp/0".parse().expect("addr");
    NetHandle::start(
        keypair,
        NetConfig::new(listen, cluster_id),
        Arc::new(Refuse),
    )
    .await
    .expect("net")
}

/// Sends one raw raft request from `from` (with `cluster_id` in it) to the node at `to`.
async fn raw_request(
    from: &NetHandle,
    to: &libp2p::Multiaddr,
    cluster_id: [u8; 16],
    kind: u8,
    body: Vec<u8>,
) -> Result<hearth_services::net::RaftResponse, NetError> {
    let peer = from.dial(to.clone()).await.expect("dial");
    from.request(
        peer,
        RaftRequest {
            cluster_id,
            kind,
            body,
        },
    )
    .await
}

fn p2p_addr(node: &Serve) -> libp2p::Multiaddr {
    node.startup
        .iter()
        .find_map(|l| l.strip_prefix("p2p listening on "))
        .expect("p2p line")
        .parse()
        .expect("multiaddr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_members_other_clusters_and_malformed_messages_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = form_cluster(dir.path(), 2, &[]).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    let before = converged(&c, &urls).await;
    let cluster = ClusterFile::load(&dir.path().join("n0"))
        .expect("cluster file")
        .expect("exists");
    let target_addr = p2p_addr(&nodes[0]);
    let vote = hearth_raft::rpc::encode_vote_request(&openraft::raft::VoteRequest::new(
        hearth_raft::Vote::new(1_000, 99),
        None,
    ));

    // A process with a valid identity that is not a member: refused, cannot vote.
    let stranger = net_for(
        &libp2p::identity::Keypair::generate_ed25519(),
        cluster.cluster_id,
    )
    .await;
    let r = raw_request(
        &stranger,
        &target_addr,
        cluster.cluster_id,
        hearth_raft::rpc::kind::VOTE,
        vote.clone(),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(NetError::Refused {
                status: status::NOT_MEMBER
            })
        ),
        "{r:?}"
    );

    // A member of another cluster (a real second cluster's node identity): refused.
    let other = start_serve_with(&dir.path().join("other"), &[]);
    let other_key = hearth_services::identity::NodeIdentity::load(&dir.path().join("other"))
        .expect("load")
        .expect("identity");
    let other_cluster = ClusterFile::load(&dir.path().join("other"))
        .expect("cluster file")
        .expect("exists");
    drop(other);
    let foreign = net_for(other_key.keypair(), other_cluster.cluster_id).await;
    let r = raw_request(
        &foreign,
        &target_addr,
        other_cluster.cluster_id,
        hearth_raft::rpc::kind::VOTE,
        vote,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(NetError::Refused {
                status: status::WRONG_CLUSTER
            })
        ),
        "{r:?}"
    );

    // A member's identity sending garbage: refused as malformed; the node keeps serving.
    let member_key = hearth_services::identity::NodeIdentity::load(&dir.path().join("n1"))
        .expect("load")
        .expect("identity");
    let impostor = net_for(member_key.keypair(), cluster.cluster_id).await;
    for (kind, body) in [
        (
            hearth_raft::rpc::kind::APPEND_ENTRIES,
            vec![1, 0xff, 0xff, 0xff, 0x0f],
        ),
        (hearth_raft::rpc::kind::VOTE, vec![]),
        (hearth_raft::rpc::kind::INSTALL_SNAPSHOT, vec![9; 1000]),
        (200, vec![1, 2, 3]),
    ] {
        let r = raw_request(&impostor, &target_addr, cluster.cluster_id, kind, body).await;
        assert!(
            matches!(
                r,
                Err(NetError::Refused {
                    status: status::MALFORMED
                })
            ),
            "kind {kind}: {r:?}"
        );
    }
    for h in [stranger, foreign, impostor] {
        let _ = h.shutdown().await;
    }
    // Nothing changed: same term, same leader, still serving writes.
    let st = status_of(&c, &urls[0]).await.expect("status");
    assert_eq!(st.voters.len(), 2);
    post_event(&c, &urls[0], event(b"after", 1))
        .await
        .expect("write");
    let after = converged(&c, &urls).await;
    assert!(after.last_index > before.last_index);
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_proposal_is_applied_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = form_cluster(dir.path(), 2, &[]).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    let body = event(b"retry", 7);
    let first = post_event(&c, &urls[0], body.clone()).await.expect("first");
    assert_eq!(first.outcome, "applied");
    // The client timed out and retries, this time through the other node.
    let second = post_event(&c, &urls[1], body).await.expect("retry");
    assert_eq!(second.outcome, "rejected", "{second:?}");
    let reason = second.reason.expect("reason");
    assert!(
        reason.contains("duplicate") && reason.contains(&first.index.to_string()),
        "{reason}"
    );
    assert!(second.index > first.index);
    converged(&c, &urls).await;
    drop(nodes);
}

#[test]
fn bad_writes_get_json_errors_and_the_node_keeps_serving() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::start_serve(&dir.path().join("n"));
    let url = node.http_url();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let c = client();
        for (body, code) in [
            (Bytes::from_static(b"garbage"), 400),
            (Bytes::from(vec![0u8; (1 << 20) + 1]), 413),
        ] {
            let r = c
                .post(format!("{url}/v1/events"))
                .body(body)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status().as_u16(), code);
            let v: serde_json::Value = r.json().await.expect("json error body");
            assert!(v["error"]["message"].is_string(), "{v}");
        }
        let r = c
            .post(format!("{url}/v1/admin/join"))
            .body("{")
            .header("content-type", "application/json")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 400);
        let r = c.get(format!("{url}/nope")).send().await.expect("send");
        assert_eq!(r.status().as_u16(), 404);
        let w = post_event(&c, &url, event(b"ok", 1))
            .await
            .expect("a good write");
        assert_eq!(w.outcome, "applied");
        assert!(c
            .get(format!("{url}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
            .is_success());
    });
    drop(node);
}

#[test]
fn a_node_that_lost_its_raft_state_refuses_to_start() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("n");
    let mut node = common::start_serve(&data);
    assert_eq!(common::sigterm_and_wait(&mut node.child).code(), Some(0));
    std::fs::remove_dir_all(data.join("log")).expect("remove log");
    let out = hearth()
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(common::FREE_PORTS)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("raft state")
            && err.contains("hearth cluster remove")
            && err.contains("--join"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_reforms_a_cluster_from_one_survivor() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = form_cluster(dir.path(), 3, &[]).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    for i in 0..50 {
        post_event(&c, &urls[0], event(b"rec", i))
            .await
            .expect("write");
    }
    let before = converged(&c, &urls).await;
    for n in &nodes {
        sigkill(n);
    }
    nodes.clear();
    let data = dir.path().join("n2");
    let refused = hearth()
        .args(["cluster", "recover", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert_ne!(refused.status.code(), Some(0), "needs --i-accept-data-loss");
    let out = hearth()
        .args(["cluster", "recover", "--i-accept-data-loss", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("may be lost"), "{stdout}");
    let node = start_serve_with(&data, &[]);
    let url = node.http_url();
    let st = wait_for("the survivor to lead alone", LIMIT * 3, || async {
        let st = status_of(&c, &url).await?;
        (st.voters.len() == 1 && st.leader.is_some()).then_some(st)
    })
    .await;
    assert_ne!(
        st.cluster_id,
        hearth_services::hex::encode(
            &ClusterFile::load(&dir.path().join("n0"))
                .expect("f")
                .expect("f")
                .cluster_id
        )
    );
    let w = post_event(&c, &url, event(b"rec", 1_000))
        .await
        .expect("writes after recovery");
    assert!(Some(w.index) > before.last_index);
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_remove_takes_a_member_out() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = form_cluster(dir.path(), 3, &[]).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    let leader = leader_url(&c, &urls).await;
    let victim = urls
        .iter()
        .find(|u| **u != leader)
        .expect("a follower")
        .clone();
    let victim_peer = info(&c, &victim).await.expect("info").peer_id;
    // Asked through any member (here the victim itself, which forwards to the leader).
    let out = hearth()
        .args(["cluster", "remove", &victim_peer, "--server", &victim])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = wait_for("the removal", CONVERGE, || async {
        let st = status_of(&c, &leader).await?;
        (st.voters.len() == 2 && st.members.len() == 2).then_some(st)
    })
    .await;
    assert!(st.members.iter().all(|m| m.peer_id != victim_peer));
    // Removing a non-member is a clear error, exit 1.
    let out = hearth()
        .args(["cluster", "remove", &victim_peer, "--server", &leader])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a member"), "{err}");
    // The status command prints the cluster.
    let out = hearth()
        .args(["cluster", "status", "--server", &leader, "--json"])
        .output()
        .expect("run");
    let st: ClusterStatus = serde_json::from_slice(&out.stdout).expect("json status");
    assert_eq!(st.voters.len(), 2);
    assert!(st.warnings.iter().any(|w| w.contains("even")), "{st:?}");
    drop(nodes);
}

#[test]
fn serve_reads_a_toml_config_and_refuses_bad_settings() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("n");
    let config = dir.path().join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nhttp = \"127.0.0.1:0\"\np2p = \"/ip4/127.0.0.1/tcp/0\"\nsnapshot_every = 50\n",
            data.display().to_string()
        ),
    )
    .expect("write config");
    let mut child = common::Guard(
        hearth()
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().expect("a line").expect("utf-8");
    assert!(first.contains(&data.display().to_string()), "{first}");
    assert!(lines
        .map_while(Result::ok)
        .any(|l| l.starts_with("running")));
    assert_eq!(common::sigterm_and_wait(&mut child).code(), Some(0));

    for (contents, needle) in [
        ("nonsense_key = 1\n", "nonsense_key"),
        ("http = \"0.0.0.0:0\"\n", "admin-token"),
    ] {
        std::fs::write(&config, contents).expect("write config");
        let out = hearth()
            .args(["serve", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
}
