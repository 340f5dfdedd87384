//! The JSON bodies of the node's HTTP API, shared by the server ([`crate::http`]) and the
//! clients (`hearth serve --join`, `hearth cluster …`, benchmarks and tests).

use serde::{Deserialize, Serialize};

/// `POST /v1/admin/join`: a node asks to be added.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinRequest {
    /// The joiner's PeerId.
    pub peer_id: String,
    /// The joiner's libp2p listen addresses.
    pub addrs: Vec<String>,
    /// The joiner's HTTP base URL.
    pub http: String,
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberInfo {
    /// Raft node id.
    pub node_id: u64,
    /// libp2p PeerId.
    pub peer_id: String,
    /// libp2p addresses.
    pub addrs: Vec<String>,
    /// HTTP base URL.
    pub http: String,
    /// `voter` or `learner`.
    pub role: String,
    /// Last log index known to be replicated to it (leader's view; the leader's own last
    /// index for the leader). `null` when unknown.
    pub matched_index: Option<u64>,
    /// How many entries it is behind the leader's last index (`null` when unknown).
    pub lag: Option<u64>,
}

/// The answer to a join.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinReply {
    /// The cluster id (32 hex digits).
    pub cluster_id: String,
    /// The raft node id assigned to the joiner.
    pub node_id: u64,
    /// The leader that added it (its PeerId): the joiner accepts raft messages from it.
    pub leader_peer_id: String,
    /// Every member, the joiner included.
    pub members: Vec<MemberInfo>,
}

/// `POST /v1/admin/promote`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PromoteRequest {
    /// The learner to make a voter.
    pub node_id: u64,
}

/// `POST /v1/admin/remove`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoveRequest {
    /// The member to remove, by PeerId.
    pub peer_id: String,
}

/// `GET /v1/admin/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The cluster id.
    pub cluster_id: String,
    /// The node that answered.
    pub answered_by: u64,
    /// The current leader's node id, if any.
    pub leader: Option<u64>,
    /// The current leader's PeerId, if known.
    pub leader_peer_id: Option<String>,
    /// Current term.
    pub term: u64,
    /// Voter node ids.
    pub voters: Vec<u64>,
    /// Learner node ids.
    pub learners: Vec<u64>,
    /// The committed index as the answering node knows it.
    pub commit_index: Option<u64>,
    /// Every member.
    pub members: Vec<MemberInfo>,
    /// Warnings (an even number of voters, a joint configuration, …).
    pub warnings: Vec<String>,
}

/// `GET /v1/admin/node`: one node's own state (for operators and tests).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Raft node id.
    pub node_id: u64,
    /// PeerId.
    pub peer_id: String,
    /// Cluster id.
    pub cluster_id: String,
    /// `Leader`, `Follower`, `Candidate` or `Learner`.
    pub state: String,
    /// First index in the log (entries before it were purged), if any.
    pub first_index: Option<u64>,
    /// Last index in the log, if any.
    pub last_index: Option<u64>,
    /// Chain hash of the last entry (hex).
    pub head_chain: Option<String>,
    /// Last applied index.
    pub applied_index: Option<u64>,
    /// Projection digests, table name → hex.
    pub digests: std::collections::BTreeMap<String, String>,
    /// The last snapshot's index, if any.
    pub snapshot_index: Option<u64>,
}

/// One log entry's position (`GET /v1/admin/log/{index}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryInfo {
    /// Index.
    pub index: u64,
    /// Term.
    pub term: u64,
    /// Chain hash (hex).
    pub chain: String,
    /// blake3 of each event envelope the entry carries (hex), in order: one for a single
    /// write, several for a group-committed batch, none for raft's own entries (blank,
    /// membership).
    pub envelopes_blake3: Vec<String>,
}

/// `POST /v1/events` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WriteReply {
    /// The committed log index.
    pub index: u64,
    /// The event's position inside that entry (writes that arrive together share an entry).
    #[serde(default)]
    pub position: u32,
    /// `applied`, or `rejected` (the entry is in the log but the runtime did not fold it).
    pub outcome: String,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

/// Every error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// The message of an error answer's body, or the body itself when it is not an
    /// [`ErrorBody`] (a proxy's or an older node's plain text).
    pub fn message_of(body: &str) -> String {
        serde_json::from_str::<ErrorBody>(body)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| body.to_string())
    }
}

/// An error's code and message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`bad_request`, `unavailable`, …).
    pub code: String,
    /// A human-readable message.
    pub message: String,
}
