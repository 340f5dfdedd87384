//! `hearth doc create|get|put|list` and `hearth device pair|show`: documents and device pairing
//! through a member's HTTP API.

use super::cluster::{call, client, runtime, ServerArgs};
use crate::http::docs::{DeviceInfo, DocList, DocView, DocWriteReply, PairRequest};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// `hearth doc …`.
#[derive(Debug, Subcommand)]
pub enum DocCommand {
    /// Create a document (optionally with initial JSON); prints its id.
    Create(CreateArgs),
    /// Print a document's JSON (with --heads, its heads too).
    Get(GetArgs),
    /// Make a document equal to the JSON given: the change that does it is recorded.
    Put(PutArgs),
    /// List documents, one id per line.
    List(ListArgs),
}

/// `hearth device …`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Allow a device (a node outside the cluster) to sync documents (admin).
    Pair(PairArgs),
    /// Show a device's grant.
    Show(ShowArgs),
}

/// JSON from an argument, a file, or stdin (`-`).
#[derive(Debug, Args)]
pub struct JsonInput {
    /// The JSON text (or `-` for stdin).
    json: Option<String>,
    /// Read the JSON from this file instead.
    #[arg(long, conflicts_with = "json")]
    file: Option<PathBuf>,
}

impl JsonInput {
    fn read(&self) -> anyhow::Result<Option<serde_json::Value>> {
        let text = match (&self.json, &self.file) {
            (_, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            (Some(s), None) if s == "-" => {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            }
            (Some(s), None) => s.clone(),
            (None, None) => return Ok(None),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).context("the document is not valid JSON")?;
        if !value.is_object() {
            anyhow::bail!("a document is a JSON object at its root");
        }
        Ok(Some(value))
    }
}

/// Arguments of `hearth doc create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    input: JsonInput,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth doc get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The document id.
    id: String,
    /// Print `{id, heads, value}` instead of the value alone.
    #[arg(long)]
    heads: bool,
    /// Read-your-writes: wait until the member applied this log index.
    #[arg(long)]
    after: Option<u64>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth doc put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The document id.
    id: String,
    #[command(flatten)]
    input: JsonInput,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth doc list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth device pair`.
#[derive(Debug, Args)]
pub struct PairArgs {
    /// The device's PeerId (`hearth id --data-dir DIR` on the device).
    peer_id: String,
    /// A label for it.
    #[arg(long, default_value = "")]
    name: String,
    /// A document it may read (repeatable).
    #[arg(long = "read")]
    read: Vec<String>,
    /// A document it may read and write (repeatable).
    #[arg(long = "write")]
    write: Vec<String>,
    /// Withdraw its grant.
    #[arg(long)]
    revoke: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth device show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The device's PeerId.
    peer_id: String,
    #[command(flatten)]
    server: ServerArgs,
}

fn url(server: &ServerArgs, path: &str) -> String {
    format!("{}{path}", server.server.trim_end_matches('/'))
}

fn write_auth(req: reqwest::RequestBuilder, server: &ServerArgs) -> reqwest::RequestBuilder {
    match server.write_token() {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// Runs `hearth doc …`.
pub fn run(cmd: &DocCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = runtime()?;
    let c = client()?;
    match cmd {
        DocCommand::Create(a) => {
            let mut req = write_auth(c.post(url(&a.server, "/v1/docs")), &a.server);
            if let Some(v) = a.input.read()? {
                req = req.json(&v);
            }
            let r: DocWriteReply = rt.block_on(call(req, "create"))?;
            writeln!(out, "{}", r.id)?;
        }
        DocCommand::Get(a) => {
            let mut path = format!("/v1/docs/{}", a.id);
            if let Some(i) = a.after {
                path.push_str(&format!("?after={i}"));
            }
            let v: DocView = rt.block_on(call(c.get(url(&a.server, &path)), "get"))?;
            if a.heads {
                serde_json::to_writer_pretty(&mut *out, &v)?;
            } else {
                serde_json::to_writer_pretty(&mut *out, &v.value)?;
            }
            writeln!(out)?;
        }
        DocCommand::Put(a) => {
            let value = a
                .input
                .read()?
                .context("give the JSON as an argument, with --file, or `-` for stdin")?;
            let req = write_auth(
                c.put(url(&a.server, &format!("/v1/docs/{}", a.id))),
                &a.server,
            )
            .json(&value);
            let r: DocWriteReply = rt.block_on(call(req, "put"))?;
            writeln!(
                out,
                "{} changes={} index={} heads={}",
                r.id,
                r.changes,
                r.index,
                r.heads.join(",")
            )?;
        }
        DocCommand::List(a) => {
            let mut after: Option<String> = None;
            let mut all = Vec::new();
            loop {
                let path = match &after {
                    Some(id) => format!("/v1/docs?after={id}"),
                    None => "/v1/docs".to_string(),
                };
                let page: DocList = rt.block_on(call(c.get(url(&a.server, &path)), "list"))?;
                all.extend(page.docs);
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if a.json {
                serde_json::to_writer_pretty(&mut *out, &all)?;
                writeln!(out)?;
            } else {
                for d in &all {
                    writeln!(out, "{}  {} bytes", d.id, d.saved_bytes)?;
                }
            }
        }
    }
    Ok(())
}

/// Runs `hearth device …`.
pub fn run_device(cmd: &DeviceCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = runtime()?;
    let c = client()?;
    let admin = |req: reqwest::RequestBuilder, s: &ServerArgs| match &s.admin_token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let info: DeviceInfo = match cmd {
        DeviceCommand::Pair(a) => {
            let body = PairRequest {
                peer_id: a.peer_id.clone(),
                name: a.name.clone(),
                read: a.read.clone(),
                write: a.write.clone(),
                revoke: a.revoke,
            };
            let req = admin(c.post(url(&a.server, "/v1/admin/devices")), &a.server).json(&body);
            rt.block_on(call(req, "pair"))?
        }
        DeviceCommand::Show(a) => {
            let req = c.get(url(&a.server, &format!("/v1/admin/devices/{}", a.peer_id)));
            rt.block_on(call(req, "show"))?
        }
    };
    writeln!(
        out,
        "{} {:?} read={} write={} (index {})",
        info.peer_id,
        info.name,
        info.read.join(","),
        info.write.join(","),
        info.index
    )?;
    Ok(())
}
