//! The bodies of `/hearth/shard/1` requests and answers: a version byte and a protobuf message
//! each (prost derives; field numbers are forever). The frame around them — cluster id, kind,
//! size limit, member check — is the transport's (`crate::net`).
//!
//! Kinds:
//! * [`kind::FETCH`]: [`FetchShard`] → [`ShardData`]: up to [`MAX_FETCH`] bytes of one shard
//!   from an offset. A holder answers from its file as it is; the *receiver* verifies (the
//!   whole shard against the manifest's shard hash, or each stripe against its stripe hash),
//!   so a holder with a rotten copy is found out by whoever reads it.

use prost::Message;

/// Version byte of every body.
pub const WIRE_VERSION: u8 = 1;

/// The most bytes one fetch returns (the frame limit is 16 MiB).
pub const MAX_FETCH: u32 = 4 << 20;

/// Request kinds.
pub mod kind {
    /// [`super::FetchShard`] → [`super::ShardData`].
    pub const FETCH: u8 = 1;
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
    }
}
