//! [`ForwardReply`]: the answer to a client write a follower forwarded to its leader over
//! `/hearth/raft/1` (kind [`super::network::FORWARD_WRITE`]).

use prost::Message;

/// Outcome codes of a forwarded write.
pub mod code {
    /// Committed and applied (see `index` and `rejected`).
    pub const OK: u32 = 0;
    /// No leader, or the receiver is no longer the leader: retry later.
    pub const UNAVAILABLE: u32 = 1;
    /// The leader's in-flight bound is reached: retry later.
    pub const BUSY: u32 = 2;
    /// The write is invalid.
    pub const INVALID: u32 = 3;
    /// The leader failed.
    pub const FAILED: u32 = 4;
}

/// A forwarded write's outcome.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardReply {
    /// One of [`code`].
    #[prost(uint32, tag = "1")]
    pub code: u32,
    /// The committed log index (with [`code::OK`]).
    #[prost(uint64, tag = "2")]
    pub index: u64,
    /// Why the runtime rejected the event (empty: applied).
    #[prost(string, tag = "3")]
    pub rejected: String,
    /// What went wrong (other codes).
    #[prost(string, tag = "4")]
    pub message: String,
    /// The event's position inside the entry at `index` (with [`code::OK`]).
    #[prost(uint32, tag = "5")]
    pub position: u32,
}

impl ForwardReply {
    /// "Retry later" with a reason.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ForwardReply {
            code: code::UNAVAILABLE,
            message: message.into(),
            ..ForwardReply::default()
        }
    }
}

/// Encodes a reply.
pub fn encode(r: &ForwardReply) -> Vec<u8> {
    r.encode_to_vec()
}

/// Decodes a reply.
pub fn decode(bytes: &[u8]) -> Result<ForwardReply, prost::DecodeError> {
    ForwardReply::decode(bytes)
}
