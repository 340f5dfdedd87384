//! `hearth cluster status|remove|recover`: look at and change a cluster's membership.
//!
//! `status` and `remove` talk to a running member over HTTP (`--server`, default the local
//! node); `recover` works offline on one node's data directory when a quorum is lost for good.

use crate::hex;
use crate::identity::NodeIdentity;
use crate::node::api::{ClusterStatus, ErrorBody, RemoveRequest};
use crate::node::ClusterFile;
use crate::paths::{log_dir, state_dir};
use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use hearth_log::{Log, LogOptions};
use hearth_raft::codec::{decode_entry, decode_meta, encode_entry, encode_meta};
use hearth_raft::{Entry, HearthNode, LogId, Membership, Vote};
use openraft::{CommittedLeaderId, EntryPayload};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Where a running member is.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// HTTP URL of any member.
    #[arg(long, env = "HEARTH_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// Admin token (needed when the member's HTTP listener is not on loopback).
    #[arg(long, env = "HEARTH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// API token for writes (`put`, `rm`); the admin token is used when it is not given.
    #[arg(long, env = "HEARTH_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

impl ServerArgs {
    /// The token a write sends: the API token, else the admin token.
    pub fn write_token(&self) -> Option<&str> {
        self.api_token.as_deref().or(self.admin_token.as_deref())
    }
}

/// Arguments of `hearth cluster status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `hearth cluster remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The PeerId of the member to remove.
    peer_id: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `hearth cluster recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The surviving node's data directory (the node must be stopped).
    #[arg(long, env = "HEARTH_DATA_DIR")]
    data_dir: PathBuf,
    /// Required: recovery may lose writes the old cluster acknowledged.
    #[arg(long)]
    i_accept_data_loss: bool,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

pub(crate) async fn call<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<T> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("{what}: request failed"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what}: {status}: {}", ErrorBody::message_of(&text));
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: unreadable answer"))
}

fn authed(req: reqwest::RequestBuilder, server: &ServerArgs) -> reqwest::RequestBuilder {
    match &server.admin_token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// `hearth cluster status`.
pub fn status(args: &StatusArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/admin/cluster",
        args.server.server.trim_end_matches('/')
    );
    let st: ClusterStatus = runtime()?.block_on(async {
        let req = authed(client()?.get(&url), &args.server);
        call(req, "cluster status").await
    })?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &st)?;
        writeln!(out)?;
        return Ok(());
    }
    print_status(&st, out)
}

fn print_status(st: &ClusterStatus, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "cluster {}", st.cluster_id)?;
    match (st.leader, &st.leader_peer_id) {
        (Some(l), Some(p)) => writeln!(out, "leader  node {l} ({p}), term {}", st.term)?,
        _ => writeln!(out, "leader  none (election under way), term {}", st.term)?,
    }
    let fmt = |v: Option<u64>| v.map_or("-".to_string(), |x| x.to_string());
    writeln!(out, "commit  {}", fmt(st.commit_index))?;
    writeln!(
        out,
        "voters  {}   learners {}",
        st.voters.len(),
        st.learners.len()
    )?;
    writeln!(
        out,
        "{:<18} {:<8} {:<54} {:>10} {:>8}",
        "node", "role", "peer id", "last index", "lag"
    )?;
    for m in &st.members {
        writeln!(
            out,
            "{:<18} {:<8} {:<54} {:>10} {:>8}",
            m.node_id,
            m.role,
            m.peer_id,
            fmt(m.matched_index),
            fmt(m.lag)
        )?;
    }
    for w in &st.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// `hearth cluster remove PEER_ID`.
pub fn remove(args: &RemoveArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/admin/remove",
        args.server.server.trim_end_matches('/')
    );
    let st: ClusterStatus = runtime()?.block_on(async {
        let req = authed(client()?.post(&url), &args.server).json(&RemoveRequest {
            peer_id: args.peer_id.clone(),
        });
        call(req, "cluster remove").await
    })?;
    writeln!(out, "removed {}", args.peer_id)?;
    print_status(&st, out)
}

/// `hearth cluster recover`: re-forms a one-voter cluster from this node's data directory.
///
/// Steps (offline, the node stopped): read the last membership this node knows (its log, else
/// its projection state) and its vote; give the data directory a **new cluster id** (old
/// members are refused from now on, so they cannot form a second majority under the same id);
/// durably save a vote for a new term; append a membership entry of that term in which this
/// node is the only voter. On the next `hearth serve` it elects itself and commits everything
/// in its log. Writes the old cluster committed but this node never received are lost.
pub fn recover(args: &RecoverArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if !args.i_accept_data_loss {
        bail!(
            "cluster recover may lose acknowledged writes; re-run with --i-accept-data-loss if \
             a quorum is lost for good"
        );
    }
    let data = &args.data_dir;
    hearth_migrations::check_for_offline_write(data)?;
    let identity = NodeIdentity::load(data)?.ok_or_else(|| {
        anyhow!(
            "{} has no identity key: not a node's data directory",
            data.display()
        )
    })?;
    let cluster = ClusterFile::load(data)?
        .ok_or_else(|| anyhow!("{} belongs to no cluster (no cluster.json)", data.display()))?;
    runtime()?.block_on(async {
        let log = Log::open(log_dir(data), LogOptions::default())
            .with_context(|| format!("opening the log in {} (is the node stopped?)", data.display()))?;
        let meta = match log.meta() {
            Some(b) => decode_meta(&b).context("the raft metadata record")?,
            None => Default::default(),
        };
        let mut membership: Option<Membership> = None;
        let mut last_id: Option<LogId> = None;
        if let Some(first) = log.first_index() {
            let mut bad: Option<anyhow::Error> = None;
            log.scan(first.., |rec| match decode_entry(rec.index, rec.term, &rec.payload) {
                Ok(entry) => {
                    if let EntryPayload::Membership(m) = &entry.payload {
                        membership = Some(m.clone());
                    }
                    last_id = Some(entry.log_id);
                    Ok(true)
                }
                Err(e) => {
                    bad = Some(anyhow!("raft entry {} does not decode: {e}", rec.index));
                    Ok(false)
                }
            })?;
            if let Some(e) = bad {
                return Err(e);
            }
        }
        if membership.is_none() {
            let sm = hearth_raft::ProjectionStateMachine::open(
                &state_dir(data),
                vec![std::sync::Arc::new(hearth_projections::CountsProjection)],
            )?;
            membership = Some(sm.applied().1.membership().clone());
        }
        let membership = membership.unwrap_or_default();
        let me = cluster.node_id;
        let self_node = membership.get_node(&me).cloned().unwrap_or_else(|| HearthNode {
            peer_id: identity.peer_id().to_string(),
            addrs: Vec::new(),
            http: String::new(),
        });
        let old_members: Vec<String> = membership
            .nodes()
            .filter(|(id, _)| **id != me)
            .map(|(id, n)| format!("node {id} ({})", n.peer_id))
            .collect();
        let last_index = last_id.map(|l| l.index).or(meta.purged.map(|p| p.index));
        let last_term = last_id.map(|l| l.leader_id.term).unwrap_or(0);
        let term = meta.vote.map(|v| v.leader_id.term).unwrap_or(0).max(last_term) + 1;
        let index = last_index.map_or(0, |i| i + 1);

        let new_cluster = ClusterFile {
            cluster_id: rand::random(),
            node_id: me,
        };
        let mut new_meta = meta.clone();
        new_meta.vote = Some(Vote::new(term, me));
        log.write_meta(encode_meta(&new_meta)).await?;
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, me), index),
            payload: EntryPayload::Membership(Membership::new(
                vec![BTreeSet::from([me])],
                BTreeMap::from([(me, self_node)]),
            )),
        };
        log.append(vec![encode_entry(&entry)]).await?;
        log.close().await?;
        new_cluster.store(data)?;

        writeln!(out, "recovered node {me} ({}) as the only voter of a new cluster", identity.peer_id())?;
        writeln!(
            out,
            "cluster id changed {} -> {}: the old members are refused from now on",
            hex::encode(&cluster.cluster_id),
            new_cluster.cluster_id_hex()
        )?;
        writeln!(
            out,
            "this node's log ends at index {} (term {last_term}); the last commit it knew of was {}",
            last_index.map_or("-".into(), |i| i.to_string()),
            meta.committed.map_or("-".into(), |c| c.index.to_string())
        )?;
        writeln!(
            out,
            "may be lost: writes the old cluster acknowledged after this node's last entry; \
             entries here that the old cluster never committed will now commit"
        )?;
        if !old_members.is_empty() {
            writeln!(
                out,
                "removed: {} — rejoin them as new nodes with fresh data directories (hearth \
                 serve --join)",
                old_members.join(", ")
            )?;
        }
        writeln!(out, "start the node with `hearth serve --data-dir {}`", data.display())?;
        anyhow::Ok(())
    })
}
