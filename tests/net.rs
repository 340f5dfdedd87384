//! The `/hearth/raft/1` transport over real sockets on 127.0.0.1: membership and cluster checks,
//! size limits, and robustness against garbage.
#![deny(clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::io::Cursor;
use hearth_services::net::codec::{self, HEADER_LEN, WIRE_VERSION};
use hearth_services::net::{
    status, NetConfig, NetError, NetHandle, RaftInbound, RaftRequest, RaftResponse, MAX_RAFT_BODY,
    MAX_RAFT_MESSAGE,
};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

const CLUSTER: [u8; 16] = [7; 16];
const OTHER_CLUSTER: [u8; 16] = [9; 16];
const TEST_BOUND: Duration = Duration::from_secs(30);

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Answers `"<name>:" + body`.
struct Echo {
    name: &'static str,
}

impl RaftInbound for Echo {
    fn handle(&self, _from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse> {
        Box::pin(async move {
            let mut body = format!("{}:", self.name).into_bytes();
            body.extend_from_slice(&req.body);
            RaftResponse::ok(CLUSTER, body)
        })
    }

    /// Answers `"<name>/shard:" + body`, a moment later than raft requests are answered.
    fn handle_shard(&self, _from: PeerId, req: RaftRequest) -> BoxFuture<'_, RaftResponse> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut body = format!("{}/shard:", self.name).into_bytes();
            body.extend_from_slice(&req.body);
            RaftResponse::ok(CLUSTER, body)
        })
    }
}

async fn bounded(test: impl Future<Output = TestResult>) -> TestResult {
    tokio::time::timeout(TEST_BOUND, test)
        .await
        .map_err(|_| "test exceeded its 30 s bound")?
}

async fn node(name: &'static str, cluster_id: [u8; 16]) -> Result<NetHandle, NetError> {
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0"
        .parse()
        .map_err(|e| NetError::Transport(format!("{e}")))?;
    let mut config = NetConfig::new(listen, cluster_id);
    config.request_timeout = Duration::from_secs(10);
    NetHandle::start(
        &Keypair::generate_ed25519(),
        config,
        Arc::new(Echo { name }),
    )
    .await
}

async fn first_addr(
    node: &NetHandle,
) -> Result<Multiaddr, Box<dyn std::error::Error + Send + Sync>> {
    Ok(node
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("node has no listen address")?)
}

fn req(cluster_id: [u8; 16], body: &[u8]) -> RaftRequest {
    RaftRequest {
        cluster_id,
        kind: 1,
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn member_request_reaches_handler() -> TestResult {
    bounded(async {
        let a = node("A", CLUSTER).await?;
        let b = node("B", CLUSTER).await?;
        a.set_members(HashSet::from([b.local_peer_id()])).await?;

        let a_id = b.dial(first_addr(&a).await?).await?;
        assert_eq!(a_id, a.local_peer_id());
        let resp = b.request(a_id, req(CLUSTER, b"hello")).await?;
        assert_eq!(resp.status, status::OK);
        assert_eq!(resp.cluster_id, CLUSTER);
        assert_eq!(resp.body, b"A:hello");
        let stats = a.stats().await?;
        assert_eq!(stats.handled_requests, 1);
        assert_eq!(stats.refused_requests, 0);

        a.shutdown().await?;
        b.shutdown().await?;
        // After shutdown the handle reports the actor gone.
        assert!(matches!(b.stats().await, Err(NetError::Closed)));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn requests_on_two_protocols_at_once_each_get_their_own_answer() -> TestResult {
    // Each protocol numbers its requests from 1: a raft request and a shard request in flight
    // together have the same id, and each answer must still reach its own caller.
    bounded(async {
        let a = node("A", CLUSTER).await?;
        let b = node("B", CLUSTER).await?;
        a.set_members(HashSet::from([b.local_peer_id()])).await?;
        let a_id = b.dial(first_addr(&a).await?).await?;
        for round in 0..5u8 {
            let (raft, shard) = tokio::join!(
                b.request(a_id, req(CLUSTER, &[b'r', round])),
                b.request_on(
                    hearth_services::net::Protocol::Shard,
                    a_id,
                    req(CLUSTER, &[b's', round])
                ),
            );
            assert_eq!(raft?.body, [b"A:r".as_slice(), &[round]].concat());
            assert_eq!(shard?.body, [b"A/shard:s".as_slice(), &[round]].concat());
        }
        a.shutdown().await?;
        b.shutdown().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_observer_hears_a_peer_identify_itself_and_then_go() -> TestResult {
    use hearth_services::net::Observation;
    bounded(async {
        let a = node("A", CLUSTER).await?;
        let b = node("B", CLUSTER).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        a.set_observer(tx).await?;
        let b_id = b.local_peer_id();
        b.dial(first_addr(&a).await?).await?;
        loop {
            match rx.recv().await.ok_or("observer closed")? {
                Observation::Identified { peer, .. } if peer == b_id => break,
                Observation::Gone { peer } if peer == b_id => return Err("gone too early".into()),
                _ => {}
            }
        }
        // Its only connection closes: the observer is told it is gone.
        b.shutdown().await?;
        loop {
            if let Observation::Gone { peer } = rx.recv().await.ok_or("observer closed")? {
                assert_eq!(peer, b_id);
                break;
            }
        }
        a.shutdown().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn non_member_is_refused_and_counted() -> TestResult {
    bounded(async {
        let a = node("A", CLUSTER).await?;
        let b = node("B", CLUSTER).await?;
        let c = node("C", CLUSTER).await?;
        a.set_members(HashSet::from([b.local_peer_id()])).await?;

        let a_id = c.dial(first_addr(&a).await?).await?;
        let err = c
            .request(a_id, req(CLUSTER, b"let me in"))
            .await
            .expect_err("a non-member must be refused");
        assert!(
            matches!(
                err,
                NetError::Refused {
                    status: status::NOT_MEMBER
                }
            ),
            "{err:?}"
        );
        let stats = a.stats().await?;
        assert_eq!(stats.refused_requests, 1);
        assert_eq!(stats.handled_requests, 0);

        // The member is still served.
        b.dial(first_addr(&a).await?).await?;
        let resp = b.request(a_id, req(CLUSTER, b"hi")).await?;
        assert_eq!(resp.body, b"A:hi");
        assert_eq!(a.stats().await?.refused_requests, 1);

        for n in [a, b, c] {
            n.shutdown().await?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn wrong_cluster_is_refused() -> TestResult {
    bounded(async {
        let a = node("A", CLUSTER).await?;
        let b = node("B", OTHER_CLUSTER).await?;
        // B is a member, but names another cluster: the cluster check comes first.
        a.set_members(HashSet::from([b.local_peer_id()])).await?;

        let a_id = b.dial(first_addr(&a).await?).await?;
        let err = b
            .request(a_id, req(OTHER_CLUSTER, b"x"))
            .await
            .expect_err("a request for another cluster must be refused");
        assert!(
            matches!(
                err,
                NetError::Refused {
                    status: status::WRONG_CLUSTER
                }
            ),
            "{err:?}"
        );
        let stats = a.stats().await?;
        assert_eq!(stats.wrong_cluster_requests, 1);
        assert_eq!(stats.refused_requests, 0);
        assert_eq!(stats.handled_requests, 0);

        a.shutdown().await?;
        b.shutdown().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn oversized_request_fails_and_node_keeps_serving() -> TestResult {
    bounded(async {
        let a = node("A", CLUSTER).await?;
        let b = node("B", CLUSTER).await?;
        a.set_members(HashSet::from([b.local_peer_id()])).await?;
        let a_id = b.dial(first_addr(&a).await?).await?;

        let big = vec![0u8; MAX_RAFT_MESSAGE + 1];
        let err = b
            .request(a_id, req(CLUSTER, &big))
            .await
            .expect_err("an oversized request must fail");
        assert!(matches!(err, NetError::Codec(_)), "{err:?}");

        // The largest body that fits still goes through, and so does a small one after it.
        let max = vec![1u8; MAX_RAFT_BODY - 2];
        let resp = b.request(a_id, req(CLUSTER, &max)).await?;
        assert_eq!(resp.body.len(), 2 + max.len());
        let resp = b.request(a_id, req(CLUSTER, b"after")).await?;
        assert_eq!(resp.body, b"A:after");

        a.shutdown().await?;
        b.shutdown().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn garbage_over_raw_tcp_does_not_crash_the_node() -> TestResult {
    bounded(async {
        let a = node("A", CLUSTER).await?;
        let b = node("B", CLUSTER).await?;
        a.set_members(HashSet::from([b.local_peer_id()])).await?;
        let addr = first_addr(&a).await?;
        let port = addr
            .iter()
            .find_map(|p| match p {
                Protocol::Tcp(port) => Some(port),
                _ => None,
            })
            .ok_or("no tcp port in the listen address")?;

        // Random-looking bytes, a huge "length prefix", and an abrupt close.
        let garbage: [&'static [u8]; 3] = [
            b"\x13/multistream/1.0.0\n\xff\xff\xff\xff\xff garbage",
            &[0xff; 4096],
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ];
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            for bytes in garbage {
                let mut sock = std::net::TcpStream::connect(("127.0.0.1", port))?;
                sock.set_nodelay(true)?;
                // The node may close on us at any point: write errors are fine.
                let _ = sock.write_all(bytes);
                let _ = sock.shutdown(std::net::Shutdown::Both);
            }
            Ok(())
        })
        .await??;

        // A saw the failed connections (upgrade errors), and still serves a valid member.
        let mut seen = 0;
        for _ in 0..100 {
            seen = a.stats().await?.incoming_connection_errors;
            if seen >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen >= 1, "no incoming connection error was counted");
        let a_id = b.dial(addr).await?;
        let resp = b.request(a_id, req(CLUSTER, b"still there?")).await?;
        assert_eq!(resp.body, b"A:still there?");

        a.shutdown().await?;
        b.shutdown().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn request_to_unknown_peer_fails_to_dial() -> TestResult {
    bounded(async {
        let b = node("B", CLUSTER).await?;
        let stranger = Keypair::generate_ed25519().public().to_peer_id();
        let err = b
            .request(stranger, req(CLUSTER, b"?"))
            .await
            .expect_err("no address is known for the stranger");
        assert!(matches!(err, NetError::Dial(_)), "{err:?}");
        b.shutdown().await?;
        Ok(())
    })
    .await
}

// ---- the codec on its own: nothing read from the wire is trusted ----

fn frame(len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn codec_round_trips() -> TestResult {
    let request = req(CLUSTER, b"body");
    let bytes = codec::encode_frame(&request.cluster_id, request.kind, &request.body)?;
    assert_eq!(bytes.len(), 4 + HEADER_LEN + 4);
    let decoded = codec::read_request(&mut Cursor::new(bytes)).await?;
    assert_eq!(decoded, request);

    let response = RaftResponse::refused(CLUSTER, status::NOT_MEMBER);
    let bytes = codec::encode_frame(&response.cluster_id, response.status, &response.body)?;
    let decoded = codec::read_response(&mut Cursor::new(bytes)).await?;
    assert_eq!(decoded, response);
    Ok(())
}

#[tokio::test]
async fn codec_refuses_oversized_frame_from_its_prefix() {
    // Only the prefix is present: had the reader tried to read the frame, it would fail with
    // UnexpectedEof instead of InvalidData.
    let too_big = u32::try_from(MAX_RAFT_MESSAGE + 1).unwrap_or(u32::MAX);
    for len in [too_big, u32::MAX] {
        let err = codec::read_request(&mut Cursor::new(frame(len, &[])))
            .await
            .expect_err("an oversized frame must be refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    }
    assert!(codec::encode_frame(&CLUSTER, 0, &vec![0; MAX_RAFT_BODY + 1]).is_err());
}

#[tokio::test]
async fn codec_refuses_malformed_frames() {
    let mut header = vec![WIRE_VERSION];
    header.extend_from_slice(&CLUSTER);
    header.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short prefix", vec![0, 0]),
        ("zero length", frame(0, &[])),
        ("shorter than header", frame(3, &[1, 2, 3])),
        ("truncated", frame(100, &header)),
        ("bad version", {
            let mut h = header.clone();
            h[0] = 99;
            frame(HEADER_LEN as u32, &h)
        }),
    ];
    for (name, bytes) in cases {
        assert!(
            codec::read_request(&mut Cursor::new(bytes)).await.is_err(),
            "{name} must be refused"
        );
    }
    // An unknown response status.
    let mut h = header.clone();
    h[HEADER_LEN - 1] = 200;
    assert!(
        codec::read_response(&mut Cursor::new(frame(HEADER_LEN as u32, &h)))
            .await
            .is_err()
    );
    // Arbitrary bytes never panic.
    let mut x: u32 = 0x1234_5678;
    for _ in 0..2000 {
        let len = (x % 64) as usize;
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bytes.push(x as u8);
        }
        let _ = codec::read_request(&mut Cursor::new(bytes.clone())).await;
        let _ = codec::read_response(&mut Cursor::new(bytes)).await;
    }
}

#[tokio::test]
async fn node_identity_keypair_drives_the_swarm() -> TestResult {
    bounded(async {
        let identity = hearth_services::identity::NodeIdentity::generate();
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse()?;
        let a = NetHandle::start(
            identity.keypair(),
            NetConfig::new(listen, CLUSTER),
            Arc::new(Echo { name: "A" }),
        )
        .await?;
        assert_eq!(a.local_peer_id(), identity.peer_id());
        let b = node("B", CLUSTER).await?;
        assert_eq!(b.dial(first_addr(&a).await?).await?, identity.peer_id());
        a.shutdown().await?;
        b.shutdown().await?;
        Ok(())
    })
    .await
}
