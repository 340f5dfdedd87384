//! Blobs over HTTP against an in-process one-node cluster with a fixed 4+3 code (real log,
//! RocksDB, shard files and HTTP on 127.0.0.1): round trips at the sizes that matter, Range
//! reads, lost and rotten shards, and bad input that must change nothing.

use bytes::Bytes;
use hearth_log::Log;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{Envelope, ShardsScrubbed};
use hearth_services::blobs::ErasurePolicy;
use hearth_services::http::blobs::{BlobReply, BlobStatus, DeleteReply};
use hearth_services::node::api::ErrorBody;
use hearth_services::node::{Node, NodeSettings};
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;

struct Server {
    node: Node,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        Self::start_in(tempfile::tempdir().expect("tempdir"), |_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut NodeSettings)) -> Server {
        Self::start_in(tempfile::tempdir().expect("tempdir"), tune).await
    }

    /// Stops the node and starts it again on the same data directory.
    async fn restart(self) -> Server {
        self.restart_with(|_| {}).await
    }

    /// [`Self::restart`] with other settings.
    async fn restart_with(mut self, tune: impl FnOnce(&mut NodeSettings)) -> Server {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.node.clone().shutdown().await.expect("shutdown");
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("tempdir"));
        drop(self);
        Self::start_in(dir, tune).await
    }

    async fn start_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut NodeSettings)) -> Server {
        let mut settings = NodeSettings::loopback(dir.path());
        settings.erasure = ErasurePolicy::Fixed { data: 4, parity: 3 };
        tune(&mut settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // After a restart the old node's log lock goes with its writer thread, just after
        // its shutdown returned.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let node = loop {
            match Node::start(settings.clone(), addr).await {
                Ok(node) => break node,
                Err(e) if e.to_string().contains("lock") => {
                    assert!(tokio::time::Instant::now() < deadline, "{e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("start: {e}"),
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while node.ready().is_err() {
            assert!(tokio::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = hearth_services::http::router(node.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Server {
            node,
            url: format!("http://{addr}"),
            stop: Some(stop),
            _dir: dir,
        }
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.node.clone().shutdown().await.expect("shutdown");
    }

    /// Every `ShardsScrubbed` in the node's log, with its index and origin.
    fn scrub_reports(&self) -> Vec<(u64, Bytes, ShardsScrubbed)> {
        let records = self.node.store().log().read(..).expect("read the log");
        let mut out = Vec::new();
        for rec in &records {
            let Ok(entry) = hearth_raft::codec::decode_record(rec) else {
                continue;
            };
            let openraft::EntryPayload::Normal(p) = entry.payload else {
                continue;
            };
            for e in &p.envelopes {
                if let Ok(Envelope {
                    origin,
                    event: Some(Event::ShardsScrubbed(s)),
                    ..
                }) = hearth_proto::decode_envelope(e)
                {
                    out.push((rec.index, origin, s));
                }
            }
        }
        out
    }

    fn shard(&self, hash: &str, i: u32) -> std::path::PathBuf {
        let h: [u8; 32] = hearth_services::hex::decode(hash)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        self.node.shards().shard_path(&h, i)
    }
}

fn blob(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

async fn put(c: &reqwest::Client, s: &Server, data: Vec<u8>) -> (StatusCode, BlobReply) {
    let r = c
        .put(format!("{}/v1/blobs", s.url))
        .body(data)
        .send()
        .await
        .expect("put");
    let status = r.status();
    let text = r.text().await.expect("body");
    let reply = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text}: {e}"));
    (status, reply)
}

async fn get(
    c: &reqwest::Client,
    s: &Server,
    hash: &str,
    range: Option<&str>,
) -> (StatusCode, Bytes) {
    let mut req = c.get(format!("{}/v1/blobs/{hash}", s.url));
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let r = req.send().await.expect("get");
    (r.status(), r.bytes().await.expect("body"))
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body = r.text().await.expect("body");
    let e: ErrorBody = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (status, e.error.message)
}

/// Waits (at most 20 s) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tmp_is_empty(s: &Server) -> bool {
    let tmp = s.node.shards().shard_path(&[0; 32], 0);
    // DATA/shards/blobs/00/00…/0 → DATA/shards/tmp
    let shards = tmp
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .expect("shards dir");
    std::fs::read_dir(shards.join("tmp"))
        .expect("tmp")
        .next()
        .is_none()
}

/// `DELETE /v1/blobs/{hash}` on the node at `url`.
async fn delete(c: &reqwest::Client, url: &str, hash: &str) -> reqwest::Response {
    c.delete(format!("{url}/v1/blobs/{hash}"))
        .send()
        .await
        .expect("delete")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_at_the_sizes_that_matter() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    const MIB: usize = 1 << 20;
    let mut stored = Vec::new();
    // 4+3 stripes are 4 × 256 KiB = 1 MiB; the inline threshold is 8 KiB.
    for (n, size) in [
        0,
        1,
        8_191,
        8_192,
        8_193,
        MIB - 1,
        MIB,
        MIB + 1,
        3 * MIB + 5,
    ]
    .into_iter()
    .enumerate()
    {
        let data = blob(size, n as u32);
        let (status, reply) = put(&c, &s, data.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{size} bytes");
        assert_eq!(reply.size, size as u64);
        assert_eq!(reply.hash, blake3::hash(&data).to_hex().as_str());
        let sharded = size > 8_192;
        // Inline bytes are in the committed entry: durable at once. Shards are durable once
        // the replication worker has placed them (here, all on this one node).
        if !sharded {
            assert_eq!(reply.tier, "durable");
        }
        assert_eq!(
            (reply.k, reply.m),
            if sharded { (4, 3) } else { (0, 0) },
            "{size}"
        );
        let (st, got) = get(&c, &s, &reply.hash, None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(got.len(), size, "{size} bytes back");
        assert!(got == data, "{size} bytes differ");

        // The same bytes again: the existing record, nothing new.
        let (again, same) = put(&c, &s, data.clone()).await;
        assert_eq!(again, StatusCode::OK);
        assert_eq!((&same.hash, same.index), (&reply.hash, reply.index));
        stored.push((reply.hash, data));
    }
    assert!(tmp_is_empty(&s));

    // A restart keeps everything readable.
    let s = s.restart().await;
    for (hash, data) in &stored {
        let (st, got) = get(&c, &s, hash, None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(got == data, "{} bytes after a restart", data.len());
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mib_blob_round_trips() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    let data = blob(100 << 20, 7);
    let (status, reply) = put(&c, &s, data.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (st, got) = get(&c, &s, &reply.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got == data, "100 MiB differ");
    let (st, got) = get(&c, &s, &reply.hash, Some("bytes=52428700-52428899")).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&got[..], &data[52_428_700..52_428_900]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reads_at_the_edges() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    let size = (1 << 20) * 2 + 100;
    let data = blob(size, 3);
    let (_, reply) = put(&c, &s, data.clone()).await;
    for (range, want) in [
        ("bytes=0-0", 0..1),
        ("bytes=0-", 0..size),
        ("bytes=-1", size - 1..size),
        ("bytes=1048575-1048576", 1_048_575..1_048_577), // across a stripe boundary
        ("bytes=2097100-9999999", 2_097_100..size),
    ] {
        let (st, got) = get(&c, &s, &reply.hash, Some(range)).await;
        assert_eq!(st, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(got[..] == data[want.clone()], "{range}");
    }
    let r = c
        .get(format!("{}/v1/blobs/{}", s.url, reply.hash))
        .header("Range", format!("bytes={size}-"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // HEAD: the headers, no body.
    let r = c
        .head(format!("{}/v1/blobs/{}", s.url, reply.hash))
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-length"].to_str().expect("ascii"),
        size.to_string()
    );
    assert_eq!(
        r.headers()["etag"].to_str().expect("ascii"),
        format!("\"{}\"", reply.hash)
    );
    // Read-your-writes: a read carrying the PUT's index.
    let r = c
        .get(format!(
            "{}/v1/blobs/{}?after={}",
            s.url, reply.hash, reply.index
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_rotten_shards_are_rebuilt_repaired_and_never_served() {
    // Without the stripe cache, so every read goes to the shards (a cached stripe is served
    // from memory, already verified, and finds nothing to repair).
    let s = Server::start_with(|st| st.cache_bytes = 0).await;
    let c = reqwest::Client::new();
    let data = blob(3 << 20, 11);
    let (_, reply) = put(&c, &s, data.clone()).await;
    let shard_bytes: Vec<Vec<u8>> = (0..7)
        .map(|i| std::fs::read(s.shard(&reply.hash, i)).expect("shard"))
        .collect();

    // Any 3 of 7 lost: the right bytes, and the shards are back.
    for i in [0, 2, 5] {
        std::fs::remove_file(s.shard(&reply.hash, i)).expect("rm");
    }
    let (st, got) = get(&c, &s, &reply.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got == data);
    // Repairs are written in the background, right after the read.
    for i in [0, 2, 5] {
        let path = s.shard(&reply.hash, i);
        eventually(&format!("shard {i} restored"), || {
            std::fs::read(&path).is_ok_and(|b| b == shard_bytes[i as usize])
        })
        .await;
    }

    // A flipped byte: detected, never served (also through a Range read), repaired.
    let path = s.shard(&reply.hash, 1);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[1_000] ^= 0x5a;
    std::fs::write(&path, &bytes).expect("write");
    let (st, got) = get(&c, &s, &reply.hash, Some("bytes=262000-263000")).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert!(got[..] == data[262_000..263_001]);
    eventually("the flipped shard repaired", || {
        std::fs::read(&path).is_ok_and(|b| b == shard_bytes[1])
    })
    .await;

    // 4 lost: 503 naming what is missing, never wrong bytes.
    for i in 0..4 {
        std::fs::remove_file(s.shard(&reply.hash, i)).expect("rm");
    }
    let r = c
        .get(format!("{}/v1/blobs/{}", s.url, reply.hash))
        .send()
        .await
        .expect("get");
    let (st, msg) = error_of(r).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(msg.contains("4 of 7 shards needed, 3 found"), "{msg}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_blob_is_served_from_the_stripe_cache() {
    let s = Server::start_with(|st| st.cache_bytes = 16 << 20).await;
    let c = reqwest::Client::new();
    let data = blob(1 << 20, 17);
    let (_, reply) = put(&c, &s, data.clone()).await;
    let (st, got) = get(&c, &s, &reply.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got == data);
    assert!(s.node.stripe_cache().weighted_size() >= 1 << 20);
    // Every shard gone: the verified stripes in memory still serve it, Range included.
    for i in 0..7 {
        std::fs::remove_file(s.shard(&reply.hash, i)).expect("rm shard");
    }
    let (st, got) = get(&c, &s, &reply.hash, Some("bytes=1000-2999")).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert!(got[..] == data[1000..3000]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    let before = s.node.info().last_index;

    let r = c
        .get(format!("{}/v1/blobs/not-a-hash", s.url))
        .send()
        .await
        .expect("get");
    assert_eq!(error_of(r).await.0, StatusCode::BAD_REQUEST);
    let r = c
        .get(format!("{}/v1/blobs/{}", s.url, "ab".repeat(32)))
        .send()
        .await
        .expect("get");
    assert_eq!(error_of(r).await.0, StatusCode::NOT_FOUND);

    // No Content-Length (a streamed body): 411.
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
    let r = c
        .put(format!("{}/v1/blobs", s.url))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("put");
    assert_eq!(error_of(r).await.0, StatusCode::LENGTH_REQUIRED);

    // Status of an unknown blob: 404 as JSON.
    let r = c
        .get(format!("{}/v1/blobs/{}/status", s.url, "cd".repeat(32)))
        .send()
        .await
        .expect("status");
    assert_eq!(error_of(r).await.0, StatusCode::NOT_FOUND);

    // A body shorter than its Content-Length, then the client goes away: nothing committed,
    // no temp files.
    for announced in [5_000u64, 200_000] {
        use tokio::io::AsyncWriteExt;
        let addr = s.url.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "PUT /v1/blobs HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {announced}\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.expect("write");
        tcp.write_all(&blob(1_000, 1)).await.expect("write");
        tcp.shutdown().await.expect("shutdown");
        drop(tcp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.node.info().last_index, before, "nothing committed");
    assert!(tmp_is_empty(&s), "no temp files left");
    assert!(s.node.ready().is_ok(), "the node keeps serving");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_holders_and_the_local_copy_of_every_shard() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    let data = blob(300_000, 5);
    // Wait until the replication worker has placed it (all on this one node): durable.
    let r = c
        .put(format!("{}/v1/blobs?wait=durable&timeout=20s", s.url))
        .body(data)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    let reply: BlobReply = r.json().await.expect("json");
    assert_eq!(reply.tier, "durable");
    let status = |s: &Server| {
        let url = format!("{}/v1/blobs/{}/status", s.url, reply.hash);
        let c = c.clone();
        async move {
            let r = c.get(url).send().await.expect("status");
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<BlobStatus>().await.expect("json")
        }
    };
    let st = status(&s).await;
    assert_eq!((st.k, st.m, st.size, st.inline), (4, 3, 300_000, false));
    assert_eq!(st.tier, "durable");
    assert!(st.durable_log_time_ms >= st.accepted_log_time_ms);
    assert_eq!(st.accepted_index, reply.index);
    // One member: no loss survived, and losing it loses the blob.
    assert_eq!(st.survives, 0);
    assert_eq!(st.if_member_leaves.len(), 1);
    assert!(!st.if_member_leaves[0].survives);
    let r = c
        .put(format!("{}/v1/blobs?wait=forever", s.url))
        .body(b"x".to_vec())
        .send()
        .await
        .expect("put");
    let (code, msg) = error_of(r).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("expected accepted, durable or verified"),
        "{msg}"
    );
    assert_eq!(st.shards.len(), 7);
    let me = s.node.peer_id().to_string();
    for sh in &st.shards {
        assert_eq!(sh.local, "intact");
        assert_eq!(sh.holders.len(), 1, "{sh:?}");
        assert_eq!(sh.holders[0].peer_id, me);
    }
    std::fs::remove_file(s.shard(&reply.hash, 2)).expect("rm");
    let path = s.shard(&reply.hash, 6);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let st = status(&s).await;
    assert_eq!(st.shards[2].local, "missing");
    assert_eq!(st.shards[6].local, "corrupt");
    assert_eq!(st.shards[0].local, "intact");

    let (_, small) = put(&c, &s, b"tiny".to_vec()).await;
    let r = c
        .get(format!("{}/v1/blobs/{}/status", s.url, small.hash))
        .send()
        .await
        .expect("status");
    let st: BlobStatus = r.json().await.expect("json");
    assert!(st.inline && st.shards.is_empty());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_and_disk_reserve_are_refused_before_anything_is_written() {
    let s = Server::start_with(|st| {
        st.max_blob_bytes = 1_000_000;
        st.disk_reserve = u64::MAX / 2; // nothing is ever free above this reserve
    })
    .await;
    let c = reqwest::Client::new();
    let before = s.node.info().last_index;
    let r = c
        .put(format!("{}/v1/blobs", s.url))
        .body(blob(1_000_001, 1))
        .send()
        .await
        .expect("put");
    let (st, msg) = error_of(r).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(msg.contains("at most 1000000 bytes"), "{msg}");
    let r = c
        .put(format!("{}/v1/blobs", s.url))
        .body(blob(100_000, 1))
        .send()
        .await
        .expect("put");
    let (st, msg) = error_of(r).await;
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE);
    assert!(msg.contains("disk reserve"), "{msg}");
    assert_eq!(s.node.info().last_index, before, "nothing committed");
    assert!(tmp_is_empty(&s));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_flight_hold_the_disk_space_they_will_take() {
    // Room of about 1 GiB above the reserve; other writers on this disk move it a little,
    // and the sizes below leave ~400 MiB of slack either way.
    let free = hearth_services::fsutil::free_bytes(&std::env::temp_dir()).expect("free space");
    const GIB: u64 = 1 << 30;
    if free < 2 * GIB {
        eprintln!("skipped: needs 2 GiB free on the temporary directory's disk");
        return;
    }
    let s = Server::start_with(|st| st.disk_reserve = free - GIB).await;
    let first = s
        .node
        .reserve_room(600 << 20)
        .expect("free space")
        .expect("600 MiB fit in 1 GiB");
    let room = s.node.blob_room().expect("room");
    assert!(room < 600 << 20, "the promise counts: {room} left");
    assert!(
        s.node.reserve_room(600 << 20).expect("free space").is_err(),
        "a second upload of the same size does not fit while the first is in flight"
    );
    drop(first);
    let again = s.node.reserve_room(600 << 20).expect("free space");
    assert!(again.is_ok(), "given back when the upload ends");
    drop(again);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_files_no_committed_blob_references_are_swept_at_start_up() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    let data = blob(100_000, 9);
    let (_, kept) = put(&c, &s, data.clone()).await;
    // A crash between fsync and commit leaves a published directory nothing references.
    let orphan = [0x5a; 32];
    let orphan_dir = s.node.shards().blob_dir(&orphan);
    std::fs::create_dir_all(&orphan_dir).expect("mkdir");
    std::fs::write(orphan_dir.join("0"), b"left by a crash").expect("write");

    let s = s.restart_with(|st| st.orphan_grace = Duration::ZERO).await;
    eventually("the orphan swept", || !orphan_dir.exists()).await;
    let (st, got) = get(&c, &s, &kept.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got == data, "the committed blob is untouched");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_in_flight_bound_get_503_with_retry_after() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start_with(|st| st.max_blob_puts = 1).await;
    let c = reqwest::Client::new();
    // One upload in flight: headers and part of the body sent, the rest held back.
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!("PUT /v1/blobs HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 100000\r\n\r\n");
    slow.write_all(head.as_bytes()).await.expect("write");
    slow.write_all(&blob(50_000, 3)).await.expect("write");
    // Wait until the node holds the slot: a second upload is then refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let r = c
            .put(format!("{}/v1/blobs", s.url))
            .body(blob(20_000, 4))
            .send()
            .await
            .expect("put");
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            break r;
        }
        // The slow upload had not reached the handler yet: this one went through.
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    let (_, msg) = error_of(refused).await;
    assert!(msg.contains("too many blob uploads"), "{msg}");
    // The slow upload goes away: the slot is free again.
    drop(slow);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .put(format!("{}/v1/blobs", s.url))
            .body(blob(30_000, 5))
            .send()
            .await
            .expect("put");
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tmp_is_empty(&s));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_leaves_a_tombstone_removes_the_copies_and_the_bytes_can_come_back() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    let big = blob(200_000, 21);
    let small = b"a small note".to_vec();
    let (_, big_reply) = put(&c, &s, big.clone()).await;
    let (_, small_reply) = put(&c, &s, small.clone()).await;
    let big_dir = s.shard(&big_reply.hash, 0).with_file_name("");
    assert!(big_dir.exists());

    for reply in [&big_reply, &small_reply] {
        let r = delete(&c, &s.url, &reply.hash).await;
        assert_eq!(r.status(), StatusCode::OK);
        let d: DeleteReply = r.json().await.expect("json");
        assert!(d.deleted && d.index > reply.index);
        for path in ["", "/status"] {
            let r = c
                .get(format!("{}/v1/blobs/{}{path}", s.url, reply.hash))
                .send()
                .await
                .expect("get");
            let (st, msg) = error_of(r).await;
            assert_eq!(st, StatusCode::GONE, "{path}");
            assert!(msg.contains("deleted at log index"), "{msg}");
        }
        let r = delete(&c, &s.url, &reply.hash).await;
        assert_eq!(error_of(r).await.0, StatusCode::GONE);
    }
    assert!(!big_dir.exists(), "the shards are removed");
    let h: [u8; 32] = hearth_services::hex::decode(&small_reply.hash)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let rec = s.node.blob(&h).expect("index").expect("tombstone");
    assert!(
        rec.deleted && rec.inline_data.is_none(),
        "the index drops inline bytes"
    );

    let r = delete(&c, &s.url, &"ef".repeat(32)).await;
    assert_eq!(error_of(r).await.0, StatusCode::NOT_FOUND);

    // The same bytes again: a new blob, readable.
    let (status, again) = put(&c, &s, big.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(again.index > big_reply.index);
    let (st, got) = get(&c, &s, &again.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got == big);
    let st: BlobStatus = c
        .get(format!("{}/v1/blobs/{}/status", s.url, again.hash))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert!(st
        .shards
        .iter()
        .all(|sh| sh.holders.len() == 1 && sh.local == "intact"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_put_on_one_member_is_read_on_another_with_its_index() {
    let a = Server::start().await;
    let url = a.url.clone();
    let b = Server::start_with(|st| st.join = Some(url)).await;
    let c = reqwest::Client::new();
    let big = blob(2_500_000, 31);
    let (_, big_reply) = put(&c, &a, big.clone()).await;
    let (_, small_reply) = put(&c, &a, b"inline everywhere".to_vec()).await;

    // On the other member, with the index from the PUT: inline from its own index, sharded
    // from the holder, every stripe verified on the way.
    let r = c
        .get(format!(
            "{}/v1/blobs/{}?after={}",
            b.url, big_reply.hash, big_reply.index
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.expect("body") == big);
    let r = c
        .get(format!("{}/v1/blobs/{}", b.url, big_reply.hash))
        .header("Hearth-After", small_reply.index.to_string())
        .header("Range", "bytes=1048570-1048590")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(r.bytes().await.expect("body")[..] == big[1_048_570..1_048_591]);
    let (st, got) = get(&c, &b, &small_reply.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(&got[..], b"inline everywhere");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_token_when_the_listener_is_not_on_loopback() {
    // Configured as if listening on every interface (the test still binds 127.0.0.1).
    let s = Server::start_with(|st| {
        st.http = "0.0.0.0:7070".parse().expect("addr");
        st.admin_token = Some("admin-secret".into());
        st.api_token = Some("app-secret".into());
    })
    .await;
    let c = reqwest::Client::new();
    let r = c
        .put(format!("{}/v1/blobs", s.url))
        .body(b"no token".to_vec())
        .send()
        .await
        .expect("put");
    let (st, msg) = error_of(r).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(msg.contains("api token"), "{msg}");
    let r = c
        .post(format!("{}/v1/events", s.url))
        .bearer_auth("wrong")
        .body(Vec::new())
        .send()
        .await
        .expect("post");
    assert_eq!(error_of(r).await.0, StatusCode::UNAUTHORIZED);
    for token in ["app-secret", "admin-secret"] {
        let r = c
            .put(format!("{}/v1/blobs", s.url))
            .bearer_auth(token)
            .body(format!("written with {token}").into_bytes())
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), StatusCode::CREATED, "{token}");
        let reply: BlobReply = r.json().await.expect("json");
        // Reads need no token.
        let (st, _) = get(&c, &s, &reply.hash, None).await;
        assert_eq!(st, StatusCode::OK);
    }
    // The admin routes take the admin token only.
    let r = c
        .get(format!("{}/v1/admin/node", s.url))
        .bearer_auth("app-secret")
        .send()
        .await
        .expect("admin");
    assert_eq!(error_of(r).await.0, StatusCode::UNAUTHORIZED);
    s.shutdown().await;
}

/// Every file under `dir` that holds `needle` somewhere.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    found
}

/// Waits (at most 30 s, checking twice a second) until no file under `dir` holds `needle`.
async fn until_no_file_holds(dir: &Path, needle: &[u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = files_holding(dir, needle);
        if found.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still holding the deleted bytes after 30 s: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A deleted inline blob's bytes leave every member's log and blob index: the collector
/// redacts them (every entry that carried them), a member that joins afterwards receives the
/// entries already redacted, and yet every chain verifies, the chains are equal, and the
/// digests of a store built from the redacted log equal those of the store that saw the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_inline_bytes_are_redacted_from_every_log_with_equal_chains_and_digests() {
    let a = Server::start().await;
    let c = reqwest::Client::new();
    let noise = |key: &[u8], n: usize| {
        let mut out = vec![0; n];
        blake3::Hasher::new()
            .update(key)
            .finalize_xof()
            .fill(&mut out);
        out
    };
    let (secret, kept) = (noise(b"secret", 6_000), noise(b"kept", 5_000));
    // The same bytes several times at once (some may share an entry) and a blob that stays.
    let puts = futures::future::join_all((0..4).map(|_| put(&c, &a, secret.clone())).chain([put(
        &c,
        &a,
        kept.clone(),
    )]))
    .await;
    let first = &puts[0].1;
    assert!(puts[..4]
        .iter()
        .all(|(_, r)| r.hash == first.hash && r.index == first.index));
    let needle = &secret[1_000..1_064];
    let kept_needle = &kept[1_000..1_064];
    assert!(
        !files_holding(a._dir.path(), needle).is_empty(),
        "the scan finds bytes the log holds"
    );
    let r = delete(&c, &a.url, &first.hash).await;
    assert_eq!(r.status(), StatusCode::OK);
    until_no_file_holds(a._dir.path(), needle).await;
    assert!(!files_holding(a._dir.path(), kept_needle).is_empty());
    let (st, got) = get(&c, &a, &puts[4].1.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got == kept, "the other blob is untouched");
    let report = a.node.store().log().verify(..).expect("the chain verifies");
    assert!(report.redacted >= 1, "{report:?}");

    // A member that joins now gets the redacted entries.
    let url = a.url.clone();
    let b = Server::start_with(|st| st.join = Some(url)).await;
    // Both at the same applied head (the join's membership entries included).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (ia, ib) = loop {
        let (ia, ib) = (a.node.info(), b.node.info());
        if ia.applied_index == ia.last_index && ib.applied_index == ia.last_index {
            break (ia, ib);
        }
        assert!(tokio::time::Instant::now() < deadline, "b never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (ea, eb) = (
        a.node.entry(first.index).expect("a's entry"),
        b.node.entry(first.index).expect("b's entry"),
    );
    assert_eq!(ea.chain, eb.chain, "the redacted entry chains the same");
    assert_eq!(
        (ea.term, ea.envelopes_blake3),
        (eb.term, eb.envelopes_blake3)
    );
    assert_eq!(ia.digests, ib.digests, "digests of the redacted log");
    let head = ia.last_index.expect("head");
    assert_eq!(
        a.node.entry(head).map(|e| e.chain),
        b.node.entry(head).map(|e| e.chain)
    );
    let report = b.node.store().log().verify(..).expect("b's chain verifies");
    assert!(report.redacted >= 1, "{report:?}");
    assert!(files_holding(b._dir.path(), needle).is_empty());
    let r = c
        .get(format!("{}/v1/blobs/{}", b.url, first.hash))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::GONE);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_finds_rotten_and_missing_shard_copies_and_replaces_them() {
    let s = Server::start().await;
    let c = reqwest::Client::new();
    let data = blob(600_000, 77);
    let r = c
        .put(format!("{}/v1/blobs?wait=durable&timeout=20s", s.url))
        .body(data.clone())
        .send()
        .await
        .expect("put");
    let reply: BlobReply = r.json().await.expect("json");
    assert_eq!(reply.tier, "durable");
    let clean = s.node.scrub_once(0).await.expect("scrub");
    assert_eq!((clean.checked, clean.bad), (7, 0));

    let rotten = s.shard(&reply.hash, 3);
    let good = std::fs::read(&rotten).expect("read");
    let mut bytes = good.clone();
    bytes[10] ^= 0x10;
    std::fs::write(&rotten, bytes).expect("write");
    std::fs::remove_file(s.shard(&reply.hash, 5)).expect("rm");
    let found = s.node.scrub_once(0).await.expect("scrub");
    assert_eq!((found.bad, found.repaired), (2, 2), "{found:?}");
    // The pass is recorded as a `ShardsScrubbed` about this node, naming the bad copies.
    let me = s.node.peer_id().to_bytes();
    let index = found.recorded_at.expect("the pass was recorded");
    assert!(clean.recorded_at.is_some_and(|i| i < index), "{clean:?}");
    let reports = s.scrub_reports();
    let (_, origin, report) = reports
        .iter()
        .find(|(i, _, _)| *i == index)
        .expect("the ShardsScrubbed is in the log");
    assert_eq!((&report.holder[..], &origin[..]), (&me[..], &me[..]));
    assert!(report.bad >= 1, "{report:?}");
    assert_eq!(
        (report.checked, report.bad, report.repaired),
        (7, 2, 2),
        "{report:?}"
    );
    let hash = hearth_services::hex::decode(&reply.hash).expect("hex");
    let mut bad: Vec<(Vec<u8>, u32)> = report
        .bad_shards
        .iter()
        .map(|b| (b.blob_hash.to_vec(), b.shard_index))
        .collect();
    bad.sort();
    assert_eq!(bad, vec![(hash.clone(), 3), (hash, 5)]);
    // … and this node's own reputation record counts it.
    let records = s.node.peer_records().expect("peer records");
    let (_, mine) = records
        .iter()
        .find(|(p, _)| *p == me)
        .expect("this node's peer record");
    assert!(mine.scrub_bad >= 1 && mine.scrub_passes >= 1, "{mine:?}");
    assert_eq!(
        (mine.scrub_passes, mine.scrub_bad, mine.scrub_repaired),
        (2, 2, 2)
    );
    let why = s
        .node
        .peer_score(&me)
        .components
        .into_iter()
        .find(|c| c.name == "integrity")
        .expect("integrity")
        .why;
    assert!(why.contains("2 bad copies found by its own scrub"), "{why}");
    assert!(
        std::fs::read(&rotten).expect("read") == good,
        "shard 3 put right"
    );
    assert!(s.shard(&reply.hash, 5).exists(), "shard 5 back");
    let again = s.node.scrub_once(0).await.expect("scrub");
    assert_eq!(again.bad, 0);
    let (st, got) = get(&c, &s, &reply.hash, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got == data);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_reads_share_the_read_budget_and_give_it_back() {
    // 8 MiB of read buffers: one 4 MiB piece at a time over every read on the node.
    let s = Server::start_with(|st| {
        st.cache_bytes = 0;
        st.read_buffer_bytes = 8 << 20;
    })
    .await;
    let budget = s.node.read_budget().clone();
    assert_eq!(budget.total_mib(), 8);
    let c = reqwest::Client::new();
    let data = blob(13 << 20, 23);
    let (_, reply) = put(&c, &s, data.clone()).await;
    // Six reads of four pieces each at once: they take turns, and each gets the right bytes.
    let reads = (0..6).map(|_| {
        let (c, url) = (c.clone(), format!("{}/v1/blobs/{}", s.url, reply.hash));
        async move {
            let r = c.get(url).send().await.expect("get");
            (r.status(), r.bytes().await.expect("body"))
        }
    });
    for (status, got) in futures::future::join_all(reads).await {
        assert_eq!(status, StatusCode::OK);
        assert!(got[..] == data[..], "bytes differ");
    }
    eventually("the budget given back after the reads", || {
        budget.free_mib() == 8
    })
    .await;
    // A client that goes away mid-read gives its share back too.
    let r = c
        .get(format!("{}/v1/blobs/{}", s.url, reply.hash))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let mut r = r;
    let first = r.chunk().await.expect("chunk").expect("some bytes");
    assert!(!first.is_empty());
    drop(r);
    eventually("the budget given back after a disconnect", || {
        budget.free_mib() == 8
    })
    .await;
    // And the node still serves.
    let (st, got) = get(&c, &s, &reply.hash, Some("bytes=0-99")).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert!(got[..] == data[..100]);
    s.shutdown().await;
}

/// With purging on, an entry is archived before it leaves the log; a deleted inline blob's
/// bytes are redacted from the archive too. (The live log's segment file may still hold the
/// purged entry until the whole segment is purged: the log cannot address a purged record, so
/// that copy goes with the segment — see ARCHITECTURE.md, redaction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_inline_bytes_are_redacted_from_the_archive_of_purged_entries() {
    let s = Server::start_with(|st| {
        st.retention = hearth_services::node::Retention::Purge;
        st.snapshot_every = 4;
    })
    .await;
    let c = reqwest::Client::new();
    let mut secret = vec![0u8; 6_000];
    blake3::Hasher::new()
        .update(b"archived secret")
        .finalize_xof()
        .fill(&mut secret);
    let (_, reply) = put(&c, &s, secret.clone()).await;
    // Enough writes after it that snapshots purge its entry from the log (into the archive).
    for i in 0..24u32 {
        put(&c, &s, format!("filler {i}").into_bytes()).await;
    }
    let log = s.node.store().log().clone();
    eventually("the secret's entry purged from the log", || {
        log.first_index().is_some_and(|f| f > reply.index)
    })
    .await;
    let archive = s._dir.path().join("archive/log");
    let needle = &secret[2_000..2_064];
    assert!(
        !files_holding(&archive, needle).is_empty(),
        "the archive holds the purged entry"
    );
    let r = delete(&c, &s.url, &reply.hash).await;
    assert_eq!(r.status(), StatusCode::OK);
    until_no_file_holds(&archive, needle).await;
    let report = Log::open_read_only(&archive)
        .expect("archive")
        .verify(..)
        .expect("the archive's chain verifies");
    assert!(report.redacted >= 1, "{report:?}");
    s.shutdown().await;
}
