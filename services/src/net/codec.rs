//! The wire format of `/hearth/raft/1`: length-prefixed, versioned, size-limited frames.
//!
//! Each request and each response travels on its own libp2p stream as one frame:
//!
//! ```text
//! u32 big-endian N | payload (N bytes)
//! payload = version (u8 = 1) | cluster_id ([u8; 16]) | kind or status (u8) | body (N - 18 bytes)
//! ```
//!
//! The body is opaque here: the raft layer puts its own (prost or serde) encoding of openraft's
//! RPCs inside, and `kind` says which RPC it is. Nothing read from the wire is trusted: a frame
//! longer than [`MAX_RAFT_MESSAGE`] is refused from its length prefix alone, before anything is
//! allocated for it, and every malformed frame is an [`io::ErrorKind::InvalidData`] error, never a
//! panic.

use std::io;

use futures::prelude::*;
use libp2p::StreamProtocol;

/// The request-response protocol carrying raft RPCs between members.
pub const RAFT_PROTOCOL: StreamProtocol = StreamProtocol::new("/hearth/raft/1");

/// The request-response protocol carrying shard transfers between members (same framing,
/// limits and checks as [`RAFT_PROTOCOL`]; its own streams, so a large transfer never sits in
/// front of a heartbeat).
pub const SHARD_PROTOCOL: StreamProtocol = StreamProtocol::new("/hearth/shard/1");

/// The request-response protocol carrying document sync between a cluster member and a paired
/// device outside the cluster (same framing and limits; no cluster or membership check in the
/// transport: the handler checks the device's pairing).
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/hearth/sync/1");

/// The largest frame payload (header + body) accepted or sent on `/hearth/raft/1`: 16 MiB.
///
/// It must stay above the largest append batch openraft may send (the raft layer bounds
/// `max_payload_entries` × the largest event so that an `AppendEntries` body fits, and snapshots
/// are sent in chunks below this size). A frame announcing more is refused while reading, from
/// its length prefix alone, so a peer cannot make this node allocate more than this per stream.
pub const MAX_RAFT_MESSAGE: usize = 16 * 1024 * 1024;

/// Version byte of the payload layout.
pub const WIRE_VERSION: u8 = 1;

/// Bytes of a payload before the body: version, cluster id, kind/status.
pub const HEADER_LEN: usize = 1 + 16 + 1;

/// The largest body that fits in one frame.
pub const MAX_RAFT_BODY: usize = MAX_RAFT_MESSAGE - HEADER_LEN;

/// Response status codes.
pub mod status {
    /// The request was handled; the body is the handler's answer.
    pub const OK: u8 = 0;
    /// Refused: the sender is not a member of this node's cluster.
    pub const NOT_MEMBER: u8 = 1;
    /// Refused: the request names another cluster.
    pub const WRONG_CLUSTER: u8 = 2;
    /// Refused: the request was malformed or its answer would be too large.
    pub const MALFORMED: u8 = 3;

    /// A short name for a status code, for errors and logs.
    pub fn name(status: u8) -> &'static str {
        match status {
            OK => "ok",
            NOT_MEMBER => "not a member",
            WRONG_CLUSTER => "wrong cluster",
            MALFORMED => "malformed or too large",
            _ => "unknown status",
        }
    }
}

/// A raft RPC sent to a peer. `kind` tells the raft layer how to decode `body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftRequest {
    /// The cluster the sender believes both nodes belong to.
    pub cluster_id: [u8; 16],
    /// Which RPC `body` holds (defined by the raft layer).
    pub kind: u8,
    /// The encoded RPC.
    pub body: Vec<u8>,
}

/// The answer to a [`RaftRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftResponse {
    /// The responder's cluster id.
    pub cluster_id: [u8; 16],
    /// One of [`status`]; the body is meaningful only with [`status::OK`].
    pub status: u8,
    /// The encoded RPC answer.
    pub body: Vec<u8>,
}

impl RaftResponse {
    /// A refusal with an empty body.
    pub fn refused(cluster_id: [u8; 16], status: u8) -> Self {
        Self {
            cluster_id,
            status,
            body: Vec::new(),
        }
    }

    /// A successful answer.
    pub fn ok(cluster_id: [u8; 16], body: Vec<u8>) -> Self {
        Self {
            cluster_id,
            status: status::OK,
            body,
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Encodes one frame (length prefix included). A body larger than [`MAX_RAFT_BODY`] is refused
/// with [`io::ErrorKind::InvalidData`].
pub fn encode_frame(cluster_id: &[u8; 16], tag: u8, body: &[u8]) -> io::Result<Vec<u8>> {
    if body.len() > MAX_RAFT_BODY {
        return Err(invalid(format!(
            "raft message body of {} bytes exceeds the limit of {MAX_RAFT_BODY} bytes",
            body.len()
        )));
    }
    let len = HEADER_LEN + body.len();
    let len_u32 = u32::try_from(len).map_err(|_| invalid("raft message too large"))?;
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&len_u32.to_be_bytes());
    out.push(WIRE_VERSION);
    out.extend_from_slice(cluster_id);
    out.push(tag);
    out.extend_from_slice(body);
    Ok(out)
}

/// Decodes a frame payload (without its length prefix) into `(cluster_id, tag, body)`.
pub fn decode_payload(mut payload: Vec<u8>) -> io::Result<([u8; 16], u8, Vec<u8>)> {
    if payload.len() < HEADER_LEN {
        return Err(invalid(format!(
            "raft frame of {} bytes is shorter than its {HEADER_LEN}-byte header",
            payload.len()
        )));
    }
    if payload.len() > MAX_RAFT_MESSAGE {
        return Err(invalid("raft frame exceeds MAX_RAFT_MESSAGE"));
    }
    let version = payload[0];
    if version != WIRE_VERSION {
        return Err(invalid(format!(
            "unsupported raft wire version {version} (expected {WIRE_VERSION})"
        )));
    }
    let mut cluster_id = [0u8; 16];
    cluster_id.copy_from_slice(&payload[1..17]);
    let tag = payload[17];
    let body = payload.split_off(HEADER_LEN);
    Ok((cluster_id, tag, body))
}

/// Reads one frame payload: the length prefix, checked against [`MAX_RAFT_MESSAGE`] before any
/// allocation, then exactly that many bytes (the buffer grows as bytes arrive, so a peer that
/// announces a large frame and stalls does not pin 16 MiB).
pub async fn read_frame<T>(io: &mut T) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut len_bytes = [0u8; 4];
    io.read_exact(&mut len_bytes).await?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > MAX_RAFT_MESSAGE {
        return Err(invalid(format!(
            "raft frame of {len} bytes exceeds the limit of {MAX_RAFT_MESSAGE} bytes"
        )));
    }
    if len < HEADER_LEN {
        return Err(invalid(format!(
            "raft frame of {len} bytes is shorter than its {HEADER_LEN}-byte header"
        )));
    }
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    let read = (&mut *io)
        .take(len as u64)
        .read_to_end(&mut payload)
        .await?;
    if read != len {
        return Err(invalid(format!(
            "raft frame truncated: {read} of {len} bytes"
        )));
    }
    Ok(payload)
}

/// Reads and decodes a request frame.
pub async fn read_request<T>(io: &mut T) -> io::Result<RaftRequest>
where
    T: AsyncRead + Unpin + Send,
{
    let (cluster_id, kind, body) = decode_payload(read_frame(io).await?)?;
    Ok(RaftRequest {
        cluster_id,
        kind,
        body,
    })
}

/// Reads and decodes a response frame; an unknown status is malformed.
pub async fn read_response<T>(io: &mut T) -> io::Result<RaftResponse>
where
    T: AsyncRead + Unpin + Send,
{
    let (cluster_id, status, body) = decode_payload(read_frame(io).await?)?;
    if status > status::MALFORMED {
        return Err(invalid(format!("unknown raft response status {status}")));
    }
    Ok(RaftResponse {
        cluster_id,
        status,
        body,
    })
}

/// The request-response codec for [`RAFT_PROTOCOL`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RaftCodec;

impl libp2p::request_response::Codec for RaftCodec {
    type Protocol = StreamProtocol;
    type Request = RaftRequest;
    type Response = RaftResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RaftRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_request(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RaftResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_response(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: RaftRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let frame = encode_frame(&req.cluster_id, req.kind, &req.body)?;
        io.write_all(&frame).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: RaftResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let frame = encode_frame(&res.cluster_id, res.status, &res.body)?;
        io.write_all(&frame).await
    }
}
