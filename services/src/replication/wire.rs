//! The bodies of `/hearth/shard/1` requests and answers: a version byte and a protobuf message
//! each (prost derives; field numbers are forever). The frame around them — cluster id, kind,
//! size limit, member check — is the transport's (`crate::net`).
//!
//! Kinds:
//! * [`kind::FETCH`]: [`FetchShard`] → [`ShardData`]: up to [`MAX_FETCH`] bytes of one shard
//!   from an offset. A holder answers from its file as it is; the *receiver* verifies (the
//!   whole shard against the manifest's shard hash, or each stripe against its stripe hash),
//!   so a holder with a rotten copy is found out by whoever reads it.
//! * [`kind::PUSH`]: [`PushShard`] → [`PushAnswer`]: one piece (at most [`MAX_FETCH`] bytes,
//!   in order from offset 0) of a shard the sender holds, to a member a placement names as its
//!   holder. The receiver takes it only for a placement naming it (waiting, briefly, to have
//!   applied as far as the sender had), writes it to a temporary file, and at the last piece
//!   checks the whole shard against the manifest before it fsyncs, renames and confirms it.

use prost::Message;

/// Version byte of every body.
pub const WIRE_VERSION: u8 = 1;

/// The most bytes one fetch returns (the frame limit is 16 MiB).
pub const MAX_FETCH: u32 = 4 << 20;

/// Request kinds.
pub mod kind {
    /// [`super::FetchShard`] → [`super::ShardData`].
    pub const FETCH: u8 = 1;
    /// [`super::PushShard`] → [`super::PushAnswer`].
    pub const PUSH: u8 = 2;
}

/// One piece of a shard pushed to its placed holder.
#[derive(Clone, PartialEq, Message)]
pub struct PushShard {
    /// blake3 of the blob.
    #[prost(bytes = "vec", tag = "1")]
    pub blob_hash: Vec<u8>,
    /// Shard index.
    #[prost(uint32, tag = "2")]
    pub shard_index: u32,
    /// The placement's epoch the sender saw naming the receiver.
    #[prost(uint64, tag = "3")]
    pub placement_epoch: u64,
    /// The sender's applied log index when it decided to push (the placement is at or before
    /// it): the receiver waits, briefly, to have applied as far.
    #[prost(uint64, tag = "4")]
    pub applied_index: u64,
    /// Where this piece starts (pieces come in order from 0).
    #[prost(uint64, tag = "5")]
    pub offset: u64,
    /// The whole shard's size.
    #[prost(uint64, tag = "6")]
    pub shard_size: u64,
    /// The piece (at most [`MAX_FETCH`] bytes).
    #[prost(bytes = "vec", tag = "7")]
    pub data: Vec<u8>,
}

/// What the receiver did with a [`PushShard`] ([`push_status`]).
#[derive(Clone, PartialEq, Message)]
pub struct PushAnswer {
    /// One of [`push_status`].
    #[prost(uint32, tag = "1")]
    pub status: u32,
    /// Why, for anything but `TAKEN` and `DONE`.
    #[prost(string, tag = "2")]
    pub detail: String,
}

/// [`PushAnswer::status`] values. Anything but `TAKEN` ends the push; the receiver's own pull
/// (from its work list) remains the way a shard gets there whatever the push did.
pub mod push_status {
    /// The piece is written: send the next.
    pub const TAKEN: u32 = 0;
    /// The last piece: the shard checked against the manifest, is durable, and its
    /// `ReplicaConfirmed` was proposed.
    pub const DONE: u32 = 1;
    /// The receiver already has a confirmed copy.
    pub const HELD: u32 = 2;
    /// No current placement names the receiver for that shard (or it has not applied it yet).
    pub const NOT_PLACED: u32 = 3;
    /// Another transfer of that shard to the receiver is running.
    pub const BUSY: u32 = 4;
    /// Not the piece expected next, or a size that does not fit: start again from 0.
    pub const OUT_OF_ORDER: u32 = 5;
    /// The shard does not match the manifest (or storing it failed): nothing kept.
    pub const FAILED: u32 = 6;
}

/// Fetch part of a shard.
#[derive(Clone, PartialEq, Message)]
pub struct FetchShard {
    /// blake3 of the blob.
    #[prost(bytes = "vec", tag = "1")]
    pub blob_hash: Vec<u8>,
    /// Shard index.
    #[prost(uint32, tag = "2")]
    pub shard_index: u32,
    /// First byte wanted.
    #[prost(uint64, tag = "3")]
    pub offset: u64,
    /// Bytes wanted (at most [`MAX_FETCH`]).
    #[prost(uint32, tag = "4")]
    pub len: u32,
}

/// The answer to a [`FetchShard`].
#[derive(Clone, PartialEq, Message)]
pub struct ShardData {
    /// Whether this node has the shard at all.
    #[prost(bool, tag = "1")]
    pub found: bool,
    /// The bytes (fewer than asked at the end of the shard).
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    /// Size of the holder's shard file.
    #[prost(uint64, tag = "3")]
    pub shard_size: u64,
}

/// Why a body did not decode.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Empty, another version, or not the message.
    #[error("malformed shard message: {0}")]
    Malformed(String),
}

/// Encodes `msg` with the version byte.
pub fn encode(msg: &impl Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + msg.encoded_len());
    out.push(WIRE_VERSION);
    msg.encode_raw(&mut out);
    out
}

/// Decodes a body written by [`encode`].
pub fn decode<M: Message + Default>(body: &[u8]) -> Result<M, WireError> {
    match body.split_first() {
        Some((&WIRE_VERSION, rest)) => {
            M::decode(rest).map_err(|e| WireError::Malformed(e.to_string()))
        }
        Some((v, _)) => Err(WireError::Malformed(format!(
            "version {v}, expected {WIRE_VERSION}"
        ))),
        None => Err(WireError::Malformed("empty body".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let req = FetchShard {
            blob_hash: vec![7; 32],
            shard_index: 3,
            offset: 1 << 40,
            len: MAX_FETCH,
        };
        assert_eq!(decode::<FetchShard>(&encode(&req)).expect("decode"), req);
        assert!(decode::<FetchShard>(&[]).is_err());
        assert!(decode::<FetchShard>(&[2, 0]).is_err());
        assert!(decode::<FetchShard>(&[1, 0xff, 0xff, 0xff]).is_err());
        let push = PushShard {
            blob_hash: vec![1; 32],
            shard_index: 2,
            placement_epoch: 9,
            applied_index: 77,
            offset: 4 << 20,
            shard_size: 9 << 20,
            data: vec![5; 100],
        };
        assert_eq!(decode::<PushShard>(&encode(&push)).expect("decode"), push);
    }
}
