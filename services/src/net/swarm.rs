//! The node's libp2p swarm: TCP (nodelay) + noise + yamux, carrying identify (`/hearth/id/1`),
//! ping and request-response on [`RAFT_PROTOCOL`](super::codec::RAFT_PROTOCOL) and
//! [`SHARD_PROTOCOL`](super::codec::SHARD_PROTOCOL).
//!
//! The swarm is owned by exactly one task, the `hearth-net` actor in [`super`]; nothing else
//! touches it.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, noise, ping, request_response, tcp, yamux, Swarm};

use super::codec::{RaftCodec, RAFT_PROTOCOL, SHARD_PROTOCOL, SYNC_PROTOCOL};
use super::NetError;

/// The identify protocol version hearth nodes announce.
pub const IDENTIFY_PROTOCOL: &str = "/hearth/id/1";

/// The agent string hearth nodes announce: `hearth/<crate version>`.
pub fn agent_version() -> String {
    format!("hearth/{}", env!("CARGO_PKG_VERSION"))
}

/// Every protocol a hearth node speaks.
#[derive(NetworkBehaviour)]
pub struct NodeBehaviour {
    /// Exchanges public keys, listen addresses and agent strings (`/hearth/id/1`).
    pub identify: identify::Behaviour,
    /// Liveness and round-trip time.
    pub ping: ping::Behaviour,
    /// Raft RPCs (`/hearth/raft/1`).
    pub raft: request_response::Behaviour<RaftCodec>,
    /// Shard transfers (`/hearth/shard/1`).
    pub shard: request_response::Behaviour<RaftCodec>,
    /// Document sync with paired devices (`/hearth/sync/1`).
    pub sync: request_response::Behaviour<RaftCodec>,
}

/// The node's swarm.
pub type NodeSwarm = Swarm<NodeBehaviour>;

/// Builds the swarm for `keypair` (not yet listening).
///
/// `request_timeout` bounds every raft request from sending to response; connections with no
/// open stream are closed after `idle_connection_timeout`.
pub fn build_swarm(
    keypair: &Keypair,
    request_timeout: Duration,
    idle_connection_timeout: Duration,
) -> Result<NodeSwarm, NetError> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_behaviour(|key| NodeBehaviour {
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                    .with_agent_version(agent_version()),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
            raft: request_response::Behaviour::with_codec(
                RaftCodec,
                [(RAFT_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(request_timeout),
            ),
            shard: request_response::Behaviour::with_codec(
                RaftCodec,
                [(SHARD_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(request_timeout),
            ),
            sync: request_response::Behaviour::with_codec(
                RaftCodec,
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(request_timeout),
            ),
        })
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_connection_timeout))
        .build();
    Ok(swarm)
}
