//! An in-process one-node cluster (real log, RocksDB and libp2p swarm on 127.0.0.1): group
//! commit. On a current-thread runtime, writes submitted in one poll are all queued before the
//! batcher runs, so the batching below is deterministic, not a matter of timing.

use bytes::Bytes;
use futures::future::join_all;
use hearth_proto::sample::sample_envelope;
use hearth_services::node::{Node, NodeSettings};
use std::net::SocketAddr;
use std::time::Duration;

async fn start(dir: &std::path::Path) -> Node {
    let settings = NodeSettings::loopback(dir);
    let node = Node::start(settings, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("start node");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while node.ready().is_err() || node.status().leader != Some(node.node_id()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader: {:?}",
            node.ready()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_writes_share_one_entry_in_order_and_duplicates_are_caught_inside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(dir.path()).await;

    // 200 distinct events (complete envelopes, so the node sends them unchanged) and, last, a
    // retry of the first one.
    let mut bodies: Vec<Bytes> = (0..200u64)
        .map(|seed| sample_envelope(seed, 256).encode_to_bytes())
        .collect();
    bodies.push(bodies[0].clone());
    let results = join_all(bodies.iter().map(|b| node.propose(b.clone()))).await;
    let committed: Vec<_> = results.into_iter().map(|r| r.expect("committed")).collect();

    let index = committed[0].index;
    for (i, c) in committed.iter().enumerate() {
        assert_eq!(c.index, index, "write {i} is in the same entry");
        assert_eq!(c.position as usize, i, "positions follow submission order");
    }
    assert!(committed[..200].iter().all(|c| c.rejected.is_none()));
    let dup = committed[200]
        .rejected
        .as_deref()
        .expect("the retry is rejected");
    assert!(
        dup.contains(&format!("first applied at index {index}")),
        "{dup}"
    );

    // The log holds exactly those envelopes, in that order.
    let entry = node.entry(index).expect("entry");
    let want: Vec<String> = bodies
        .iter()
        .map(|b| blake3::hash(b).to_hex().to_string())
        .collect();
    assert_eq!(entry.envelopes_blake3, want);

    // A lone write afterwards gets an entry of its own at position 0.
    let lone = node
        .propose(sample_envelope(1_000, 256).encode_to_bytes())
        .await
        .expect("lone write");
    assert_eq!((lone.index, lone.position), (index + 1, 0));
    assert_eq!(
        node.entry(lone.index)
            .expect("entry")
            .envelopes_blake3
            .len(),
        1
    );

    let info = node.info();
    assert_eq!(info.applied_index, Some(index + 1));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "current_thread")]
async fn a_store_without_a_new_projection_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(dir.path()).await;
    let first = node
        .propose(sample_envelope(1, 256).encode_to_bytes())
        .await
        .expect("write");
    node.clone().shutdown().await.expect("shutdown");
    drop(node);

    // What an older version left: a store that never ran the blob index.
    let store_dir = dir.path().join("state/state/store");
    drop(
        hearth_projections::ProjectionStore::open(
            &store_dir,
            vec![std::sync::Arc::new(hearth_projections::CountsProjection)],
        )
        .expect("open as an older version"),
    );

    // The old node's log lock goes with its writer thread, just after shutdown returns.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let node = loop {
        match Node::start(
            NodeSettings::loopback(dir.path()),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        {
            Ok(node) => break node,
            Err(e) if e.to_string().contains("lock") => {
                assert!(tokio::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while node.info().applied_index < Some(first.index) {
        assert!(tokio::time::Instant::now() < deadline, "not re-applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(node.blob(&[7; 32]).expect("blob index"), None);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.replaced-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the old state is kept aside");
    node.shutdown().await.expect("shutdown");
}
