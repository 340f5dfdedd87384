//! [`HttpConn`]: the benchmarks' load generator — one keep-alive HTTP/1.1 connection to a node,
//! one request at a time (a closed-loop client), on hyper's bare client connection.
//!
//! reqwest (what the CLI uses) resolves, pools and re-parses a URL on every request; that cost
//! as much CPU as the node's own work on a small request, and the clients share the node's
//! cores. A bare connection keeps the clients' share of the CPU small, so a run measures the
//! node. What it is **not**: a general client — no redirects, TLS, proxies or retries; a
//! connection that fails is an error for the run.

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

/// A request body: whole pieces, sent without copying them.
pub type Pieces =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// One keep-alive connection.
pub struct HttpConn {
    host: String,
    sender: SendRequest<Pieces>,
}

/// A successful response: how many body bytes came, and the body when asked for.
pub struct Reply {
    pub len: u64,
    pub body: Option<Bytes>,
}

impl HttpConn {
    /// Connects to the node at `base` (`http://HOST:PORT`).
    pub async fn connect(base: &str) -> anyhow::Result<HttpConn> {
        let host = base
            .strip_prefix("http://")
            .with_context(|| format!("{base} is not an http:// address"))?
            .trim_end_matches('/')
            .to_string();
        let tcp = tokio::net::TcpStream::connect(&host)
            .await
            .with_context(|| format!("connecting to {host}"))?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.await; // ends with the connection; errors reach the sender
        });
        Ok(HttpConn { host, sender })
    }

    /// Sends one request with `pieces` as the body and reads the whole response (its body kept
    /// when `keep_body`, else only counted); an answer that is not a success is an error that
    /// quotes the node.
    pub async fn expect_ok(
        &mut self,
        method: Method,
        path: &str,
        pieces: Vec<Bytes>,
        keep_body: bool,
    ) -> anyhow::Result<Reply> {
        let len: usize = pieces.iter().map(Bytes::len).sum();
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if method != Method::GET && method != Method::HEAD {
            req = req.header(hyper::header::CONTENT_LENGTH, len);
        }
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            pieces.into_iter().map(|p| Ok(Frame::data(p))).collect();
        let req = req.body(StreamBody::new(futures::stream::iter(frames)))?;
        self.sender
            .ready()
            .await
            .context("connection to the node")?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut got = 0u64;
        // An error's body says why: always kept.
        let mut kept = (keep_body || !status.is_success()).then(Vec::new);
        while let Some(frame) = body.frame().await {
            let frame = frame.with_context(|| format!("reading the answer to {method} {path}"))?;
            if let Ok(data) = frame.into_data() {
                got += data.len() as u64;
                if let Some(k) = &mut kept {
                    k.extend_from_slice(&data);
                }
            }
        }
        if !status.is_success() {
            let body = kept.unwrap_or_default();
            bail!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            );
        }
        Ok(Reply {
            len: got,
            body: kept.map(Bytes::from),
        })
    }
}
