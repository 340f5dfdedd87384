//! Replication across real `hearth serve` processes on loopback: a blob PUT with
//! `?wait=durable` is spread over the members (one or two shards each, the writer's surplus
//! copies released), its status says which losses it survives, every member reads it, a killed
//! member does not stop reads, and removing that member gets every blob durable and spread
//! again with no operator action. The writer pushes the shards it placed on the others.

mod common;

use common::cluster::{client, form_cluster, get, sigkill, status_of, wait_for, CONVERGE};
use common::Serve;
use hearth_services::http::blobs::{BlobReply, BlobStatus};
use hearth_services::http::peers::{PeerInfo, PeersReply};
use hearth_services::node::api::{NodeInfo, WriteReply};
use prost::Message as _;
use std::collections::BTreeSet;
use std::time::Duration;

fn blob(size: usize, seed: u32) -> Vec<u8> {
    (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// A `ManifestVerified` for blob `hash` claiming to be by `peer`, signed with another key.
fn forged_verification(hash: &str, peer: &str) -> Vec<u8> {
    use hearth_proto::v1::{envelope::Event, BlobAccepted, Envelope};
    let key = libp2p_identity::ed25519::Keypair::generate();
    let blob = hearth_services::hex::decode(hash).expect("hex");
    let mut mv = hearth_projections::manifest::sign(
        &key,
        &BlobAccepted {
            blob_hash: blob.into(),
            ..BlobAccepted::default()
        },
    );
    mv.verifier = peer
        .parse::<libp2p_identity::PeerId>()
        .expect("peer id")
        .to_bytes()
        .into();
    Envelope {
        schema_version: 1,
        event: Some(Event::ManifestVerified(mv)),
        ..Envelope::default()
    }
    .encode_to_vec()
}

async fn put_durable(c: &reqwest::Client, url: &str, data: Vec<u8>) -> BlobReply {
    let r = c
        .put(format!("{url}/v1/blobs?wait=durable&timeout=60s"))
        .body(data)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("put");
    let code = r.status();
    let body = r.text().await.expect("body");
    assert!(code.is_success(), "{code}: {body}");
    serde_json::from_str(&body).expect("reply")
}

/// Shard pushes the nodes at `urls` completed (`hearth_shard_pushes_total{outcome="done"}`).
async fn pushes_done(c: &reqwest::Client, urls: &[String]) -> f64 {
    let mut done = 0.0;
    for u in urls {
        let text = c
            .get(format!("{u}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let m = hearth_services::metrics::exposition::Exposition::parse(&text).expect("parse");
        done += m.sum("hearth_shard_pushes_total", &[("outcome", "done")]);
    }
    done
}

async fn status(c: &reqwest::Client, url: &str, hash: &str) -> Option<BlobStatus> {
    get(c, &format!("{url}/v1/blobs/{hash}/status")).await
}

/// Holders of each shard that confirmed it.
fn confirmed(st: &BlobStatus) -> Vec<BTreeSet<String>> {
    st.shards
        .iter()
        .map(|s| {
            s.holders
                .iter()
                .filter(|h| h.confirmed)
                .map(|h| h.peer_id.clone())
                .collect()
        })
        .collect()
}

async fn read_back(c: &reqwest::Client, url: &str, reply: &BlobReply, data: &[u8]) {
    let r = c
        .get(format!(
            "{url}/v1/blobs/{}?after={}",
            reply.hash, reply.index
        ))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200, "read on {url}");
    let got = r.bytes().await.expect("body");
    assert!(got[..] == data[..], "bytes read on {url} differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_spread_survive_a_lost_member_and_are_repaired_after_its_removal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = form_cluster(dir.path(), 4, &[]).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    let mut peers = Vec::new();
    for u in &urls {
        let i: NodeInfo = get(&c, &format!("{u}/v1/admin/node")).await.expect("info");
        peers.push(i.peer_id);
    }

    // Four voters: the auto code is 2 + 2, one shard per member.
    let blobs: Vec<Vec<u8>> = vec![blob(3_000_000, 1), blob(700_000, 2), blob(20_000, 3)];
    let mut replies = Vec::new();
    for (i, data) in blobs.iter().enumerate() {
        let reply = put_durable(&c, &urls[i % 2], data.clone()).await;
        assert_eq!(reply.tier, "durable", "{reply:?}");
        assert_eq!((reply.k, reply.m), (2, 2));
        replies.push(reply);
    }
    // The writers pushed the shards they placed on the others (`/hearth/shard/1` PUSH): each
    // holder left its new placement to the push, which arrived, was checked and confirmed.
    assert!(
        pushes_done(&c, &urls[..2]).await >= 1.0,
        "no shard was pushed"
    );
    for reply in &replies {
        // Surplus copies of the writer are released: one confirmed holder per shard, each on
        // a different member.
        let st = wait_for(
            "the writer's surplus copies to be released",
            CONVERGE,
            || async {
                let st = status(&c, &urls[0], &reply.hash).await?;
                confirmed(&st).iter().all(|h| h.len() == 1).then_some(st)
            },
        )
        .await;
        let holders: BTreeSet<String> = confirmed(&st).into_iter().flatten().collect();
        assert_eq!(holders.len(), 4, "one shard per member: {st:?}");
        assert_eq!(st.survives, 2, "{st:?}");
        assert_eq!(st.if_member_leaves.len(), 4);
        assert!(st.if_member_leaves.iter().all(|m| m.survives));
        for u in &urls {
            read_back(
                &c,
                u,
                reply,
                &blobs[replies.iter().position(|r| r == reply).unwrap_or(0)],
            )
            .await;
        }
        // Another member rebuilds it, checks every hash and signs the manifest: verified.
        let st = wait_for("the blob to be verified", CONVERGE, || async {
            let st = status(&c, &urls[0], &reply.hash).await?;
            (st.tier == "verified").then_some(st)
        })
        .await;
        assert!(!st.verified_by.is_empty());
        assert!(st.verified_log_time_ms >= st.durable_log_time_ms);
    }

    // A forged verification (someone else's key, a made-up manifest, under a member's name) is
    // rejected at apply (the unit tests take each defect alone).
    let forged = forged_verification(&replies[0].hash, &peers[1]);
    let r = c
        .post(format!("{}/v1/events", urls[0]))
        .body(forged)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 201);
    let w: WriteReply = r.json().await.expect("reply");
    assert_eq!(w.outcome, "rejected", "{w:?}");
    assert!(
        w.reason
            .as_deref()
            .is_some_and(|r| r.contains("blobs-3: ManifestVerified")),
        "{w:?}"
    );

    // Every member is sighted (a `PeerSeen` with its addresses in the log) — the founder too,
    // whom the others first met while joining, before their sighting watchers ran.
    wait_for("every member to be sighted", CONVERGE, || async {
        let t: PeersReply = get(&c, &format!("{}/v1/peers", urls[0])).await?;
        peers
            .iter()
            .all(|p| {
                t.peers
                    .iter()
                    .any(|r| r.peer_id == *p && !r.addresses.is_empty())
            })
            .then_some(())
    })
    .await;

    // A holder whose copy of a data shard rots serves bad bytes: the reader detects it, reads
    // from the others, and the holder's score drops.
    let data = blob(1_500_000, 9);
    let reply = put_durable(&c, &urls[0], data.clone()).await;
    let st = wait_for("the new blob to settle", CONVERGE, || async {
        let st = status(&c, &urls[0], &reply.hash).await?;
        confirmed(&st).iter().all(|h| h.len() == 1).then_some(st)
    })
    .await;
    let holder_of = |shard: usize| {
        let p = confirmed(&st)[shard]
            .iter()
            .next()
            .cloned()
            .expect("holder");
        peers.iter().position(|x| *x == p).expect("a member")
    };
    let (rotten, reader) = (holder_of(0), holder_of(3));
    let path = dir
        .path()
        .join(format!("n{rotten}"))
        .join("shards/blobs")
        .join(&reply.hash[..2])
        .join(&reply.hash)
        .join("0");
    let mut bytes = std::fs::read(&path).expect("shard file");
    for b in bytes.iter_mut().step_by(997) {
        *b ^= 0x5a;
    }
    std::fs::write(&path, bytes).expect("rot");
    read_back(&c, &urls[reader], &reply, &data).await;
    let bad_peer = peers[rotten].clone();
    let table = wait_for("the bad shard to be reported", CONVERGE, || async {
        let t: PeersReply = get(&c, &format!("{}/v1/peers", urls[reader])).await?;
        let bad = t.peers.iter().find(|p| p.peer_id == bad_peer)?;
        (bad.bad_data >= 1).then_some(t)
    })
    .await;
    let bad = table
        .peers
        .iter()
        .find(|p| p.peer_id == bad_peer)
        .expect("bad peer");
    let others: Vec<&PeerInfo> = table
        .peers
        .iter()
        // Members this reader fetched from, like the bad one (a peer with no history yet
        // scores neutral, and this node is in the table too).
        .filter(|p| p.member && !p.me && p.peer_id != bad_peer && p.transfers_ok > 0)
        .collect();
    assert!(!others.is_empty());
    assert!(
        others.iter().all(|o| o.score > bad.score),
        "the peer that served bad data scores lowest: {table:?}"
    );
    assert!(bad
        .components
        .iter()
        .any(|c| c.name == "integrity" && c.value < 1.0));
    // Members were seen (PeerSeen from the swarm) and transfers counted.
    assert!(
        others
            .iter()
            .any(|o| o.seen_count >= 1 && o.transfers_ok >= 1),
        "{table:?}"
    );
    replies.push(reply);
    let blobs: Vec<Vec<u8>> = blobs.into_iter().chain(std::iter::once(data)).collect();

    // Kill a member that is not the leader: every blob still reads, from any other member.
    let leader = wait_for("a leader", CONVERGE, || async {
        status_of(&c, &urls[0]).await?.leader_peer_id
    })
    .await;
    // Not the peer that served bad data either: the restart below checks that it is still
    // known, and a removed member is no longer a peer to reconnect to.
    let victim = (0..peers.len())
        .find(|&i| peers[i] != leader && i != rotten)
        .expect("a follower");
    sigkill(&nodes[victim]);
    for (u, _) in urls.iter().enumerate().filter(|(i, _)| *i != victim) {
        for (reply, data) in replies.iter().zip(&blobs) {
            read_back(&c, &urls[u], reply, data).await;
        }
    }

    // Remove it: the leader places its shards on the others and they rebuild them.
    let survivor = urls
        .iter()
        .enumerate()
        .find(|(i, _)| *i != victim)
        .map(|(_, u)| u.clone())
        .expect("a survivor");
    let r = c
        .post(format!("{survivor}/v1/admin/remove"))
        .json(&serde_json::json!({ "peer_id": peers[victim] }))
        .send()
        .await
        .expect("remove");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    for (reply, data) in replies.iter().zip(&blobs) {
        let st = wait_for(
            "the removed member's shards to be repaired",
            CONVERGE,
            || async {
                let st = status(&c, &survivor, &reply.hash).await?;
                let copies = confirmed(&st);
                let repaired = copies
                    .iter()
                    .all(|h| h.len() == 1 && !h.contains(&peers[victim]));
                (repaired && st.tier != "accepted").then_some(st)
            },
        )
        .await;
        // Three members for four shards: losing any one still leaves two.
        assert_eq!(st.survives, 1, "{st:?}");
        assert_eq!(st.if_member_leaves.len(), 3);
        for (u, url) in urls.iter().enumerate() {
            if u != victim {
                read_back(&c, url, reply, data).await;
            }
        }
    }

    // Reputation and the peer list survive a restart: stop a survivor, restart it (on new
    // ports), and it still knows who served bad data, reconnects, and reads every blob.
    let again = (0..urls.len())
        .find(|&i| i != victim && i != rotten)
        .expect("a third member");
    // The list keeps peers it has an address for, which a `PeerSeen` in the log gives: wait
    // for this node to have one for the bad peer (sightings are proposed once a peer is
    // identified, and again at the next tick when a proposal fails).
    let _: PeersReply = wait_for("a sighting of the bad peer", CONVERGE, || async {
        let t: PeersReply = get(&c, &format!("{}/v1/peers", urls[again])).await?;
        t.peers
            .iter()
            .any(|p| p.peer_id == bad_peer && !p.addresses.is_empty())
            .then_some(t)
    })
    .await;
    let mut nodes = nodes;
    let data_dir = dir.path().join(format!("n{again}"));
    let status = common::sigterm_and_wait(&mut nodes[again].child);
    assert!(status.success(), "{status:?}");
    // Saved at the clean stop (and every minute while running).
    let list = std::fs::read_to_string(data_dir.join("peers.json")).expect("peers.json");
    assert!(list.contains(&bad_peer), "{list}");
    nodes[again] = common::start_serve_with(&data_dir, &[]);
    let url = nodes[again].http_url();
    let table: PeersReply = wait_for("the restarted node's peer table", CONVERGE, || async {
        get(&c, &format!("{url}/v1/peers")).await
    })
    .await;
    assert!(
        table
            .peers
            .iter()
            .any(|p| p.peer_id == bad_peer && p.bad_data >= 1),
        "{table:?}"
    );
    for (reply, data) in replies.iter().zip(&blobs) {
        read_back(&c, &url, reply, data).await;
    }
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_replication_restarts_with_nothing_lost_or_duplicated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = form_cluster(dir.path(), 3, &[]).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    // Accepted on node 0 (answered before any shard moved); node 1 is killed at once, most
    // likely while it fetches its shard, and restarted.
    let data = blob(24_000_000, 5);
    let r = c
        .put(format!("{}/v1/blobs", urls[0]))
        .body(data.clone())
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 201);
    let reply: BlobReply = r.json().await.expect("reply");
    assert_eq!((reply.k, reply.m), (2, 1));
    sigkill(&nodes[1]);
    // Reaped (its lock released) before it starts again.
    let _ = nodes[1].child.0.wait();
    let data_dir = dir.path().join("n1");
    nodes[1] = common::start_serve_with(&data_dir, &[]);
    let url = nodes[1].http_url();
    let st = wait_for("the blob to settle after the restart", CONVERGE, || async {
        let st = status(&c, &url, &reply.hash).await?;
        let settled = st.tier != "accepted" && confirmed(&st).iter().all(|h| h.len() == 1);
        settled.then_some(st)
    })
    .await;
    // One confirmed copy per shard, on three different members.
    let holders: BTreeSet<String> = confirmed(&st).into_iter().flatten().collect();
    assert_eq!(holders.len(), 3, "{st:?}");
    // The restarted node keeps exactly the shard placed on it, and nothing half-received.
    let me: NodeInfo = get(&c, &format!("{url}/v1/admin/node"))
        .await
        .expect("info");
    let mine: Vec<String> = st
        .shards
        .iter()
        .filter(|s| {
            s.holders
                .iter()
                .any(|h| h.confirmed && h.peer_id == me.peer_id)
        })
        .map(|s| s.index.to_string())
        .collect();
    assert_eq!(mine.len(), 1, "{st:?}");
    let blob_dir = data_dir
        .join("shards/blobs")
        .join(&reply.hash[..2])
        .join(&reply.hash);
    let files: Vec<String> = std::fs::read_dir(&blob_dir)
        .expect("blob dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(files, mine, "only its own shard file");
    let tmp: Vec<_> = std::fs::read_dir(data_dir.join("shards/tmp"))
        .expect("tmp")
        .collect();
    assert!(tmp.is_empty(), "nothing half-received is left");
    for u in [&urls[0], &url, &urls[2]] {
        read_back(&c, u, &reply, &data).await;
    }
    drop(nodes);
}

/// Whether every shard has a confirmed holder that the placement names, none of them `gone`.
fn placed_away_from(st: &BlobStatus, gone: &str) -> bool {
    st.shards.iter().all(|s| {
        s.holders
            .iter()
            .any(|h| h.placed && h.confirmed && h.peer_id != gone)
            && !s.holders.iter().any(|h| h.placed && h.peer_id == gone)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_unseen_past_the_grace_period_has_its_shards_rebuilt_and_gets_them_back_on_return()
{
    let dir = tempfile::tempdir().expect("tempdir");
    // Sightings every second, so a member down for 6 s is gone (the defaults are 1 min / 1 h).
    let extra = ["--repair-grace", "6s", "--peer-seen-every", "1s"];
    let mut nodes = form_cluster(dir.path(), 4, &extra).await;
    let c = client();
    let urls: Vec<String> = nodes.iter().map(Serve::http_url).collect();
    let mut peers = Vec::new();
    for u in &urls {
        let i: NodeInfo = get(&c, &format!("{u}/v1/admin/node")).await.expect("info");
        peers.push(i.peer_id);
    }
    let blobs: Vec<Vec<u8>> = vec![blob(1_000_000, 21), blob(300_000, 22)];
    let mut replies = Vec::new();
    for data in &blobs {
        let reply = put_durable(&c, &urls[0], data.clone()).await;
        assert_eq!((reply.k, reply.m), (2, 2));
        replies.push(reply);
    }
    for reply in &replies {
        wait_for("one shard per member", CONVERGE, || async {
            let st = status(&c, &urls[0], &reply.hash).await?;
            (confirmed(&st).iter().all(|h| h.len() == 1) && st.survives == 2).then_some(())
        })
        .await;
    }

    // A follower goes down and stays down; nobody removes it.
    let leader = wait_for("a leader", CONVERGE, || async {
        status_of(&c, &urls[0]).await?.leader_peer_id
    })
    .await;
    let victim = (0..peers.len())
        .find(|&i| peers[i] != leader && i != 0)
        .expect("a follower");
    sigkill(&nodes[victim]);
    let _ = nodes[victim].child.0.wait();
    let gone = peers[victim].clone();
    // Past the grace period the leader places its shards on the others, which rebuild them:
    // every shard is again held by a placed, confirmed member, and the blob survives a loss.
    for (reply, data) in replies.iter().zip(&blobs) {
        let st = wait_for(
            "the gone member's shards to be rebuilt",
            CONVERGE,
            || async {
                let st = status(&c, &urls[0], &reply.hash).await?;
                placed_away_from(&st, &gone).then_some(st)
            },
        )
        .await;
        // Still a voter, still counted as holding its old copy (it may come back with it).
        assert_eq!(st.if_member_leaves.len(), 4, "{st:?}");
        read_back(&c, &urls[0], reply, data).await;
    }
    // The leader's cluster status says so.
    let leader_url = &urls[peers.iter().position(|p| *p == leader).expect("leader")];
    let cs = status_of(&c, leader_url).await.expect("status");
    assert!(
        cs.warnings
            .iter()
            .any(|w| w.contains(&gone) && w.contains("has not been seen")),
        "{cs:?}"
    );

    // It comes back (on new ports): it is sighted again, the leader gives it a shard of each
    // blob again, and its surplus copies are released — one placed copy per shard, on four
    // members, surviving two losses.
    let data_dir = dir.path().join(format!("n{victim}"));
    nodes[victim] = common::start_serve_with(&data_dir, &extra);
    let back = nodes[victim].http_url();
    for (reply, data) in replies.iter().zip(&blobs) {
        let st = wait_for(
            "the returning member to hold a shard again",
            CONVERGE,
            || async {
                let st = status(&c, &back, &reply.hash).await?;
                let one_each = confirmed(&st).iter().all(|h| h.len() == 1);
                let holds = confirmed(&st).iter().any(|h| h.contains(&gone));
                (one_each && holds && st.survives == 2).then_some(st)
            },
        )
        .await;
        assert!(
            st.shards
                .iter()
                .all(|s| s.holders.iter().any(|h| h.placed && h.confirmed)),
            "{st:?}"
        );
        read_back(&c, &back, reply, data).await;
    }
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_stored_on_one_node_gets_parity_when_the_cluster_grows() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One node: the auto code is 1 + 0, a single shard that survives no loss.
    let first = common::start_serve_with(&dir.path().join("n0"), &[]);
    let url = first.http_url();
    let c = client();
    wait_for("the first node to lead", CONVERGE, || async {
        status_of(&c, &url).await?.leader
    })
    .await;
    let data = blob(2_500_000, 31);
    let reply = put_durable(&c, &url, data.clone()).await;
    assert_eq!((reply.k, reply.m), (1, 0));

    // Two more members: new blobs get 2 + 1; the old one gets a parity shard (1 + 1), placed
    // on another member, so it survives losing any one member.
    let mut nodes = vec![first];
    for i in 1..3 {
        nodes.push(common::start_serve_with(
            &dir.path().join(format!("n{i}")),
            &["--join", &url],
        ));
    }
    wait_for("three voters", CONVERGE, || async {
        let st = status_of(&c, &url).await?;
        (st.voters.len() == 3).then_some(())
    })
    .await;
    let st = wait_for("the old blob to gain a parity shard", CONVERGE, || async {
        let st = status(&c, &url, &reply.hash).await?;
        let spread = confirmed(&st).iter().all(|h| h.len() == 1);
        let holders: BTreeSet<String> = confirmed(&st).into_iter().flatten().collect();
        (st.m == 1 && spread && holders.len() == 2 && st.survives == 1).then_some(st)
    })
    .await;
    assert_eq!((st.k, st.shards.len()), (1, 2), "{st:?}");
    // The new manifest is verified again by a member other than the writer.
    wait_for("the widened blob to be verified", CONVERGE, || async {
        let st = status(&c, &url, &reply.hash).await?;
        (st.tier == "verified").then_some(())
    })
    .await;
    for n in &nodes {
        read_back(&c, &n.http_url(), &reply, &data).await;
    }
    // A rebuild from the log (with its `ParityAdded`) gives the live digests: an online audit
    // on a member passes.
    let r = c
        .post(format!("{url}/v1/admin/audit"))
        .send()
        .await
        .expect("POST audit");
    assert_eq!(r.status().as_u16(), 202);
    let started: serde_json::Value = r.json().await.expect("JSON");
    let id = started["id"].as_u64().expect("id");
    let done = wait_for("the audit to finish", CONVERGE, || async {
        let st: serde_json::Value = get(&c, &format!("{url}/v1/admin/audit/{id}")).await?;
        (st["state"] != "running").then_some(st)
    })
    .await;
    assert_eq!(done["exit_code"], 0, "{done}");
    let kinds = &done["report"]["events"]["kinds"];
    assert_eq!(kinds["ParityAdded"], 1, "{kinds}");
    drop(nodes);
}
