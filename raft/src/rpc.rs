//! The wire encoding of openraft's RPCs between members: a version byte and a protobuf message
//! per request and per answer, declared here with `prost` derives (field numbers are forever).
//!
//! Entries inside an `AppendEntries` travel in exactly the encoding they are stored in
//! ([`crate::codec::encode_entry_payload`]), so a follower decodes them with the same checks as
//! entries read from disk. Decoding never panics: any defect is a [`CodecError`].
//!
//! The transport (`services/`) puts one of these bodies in each `/hearth/raft/1` request, with
//! the RPC's [`kind`]; the answer is an [`RpcReply`]: the RPC's response, or the remote raft's
//! error as text (a stopped or failed node), or a snapshot segment mismatch.
//!
//! What this module is **not**: the transport, the cluster check or membership filtering.

use crate::codec::{
    decode_entry_payload, encode_entry_payload, LogIdRecord, MembershipRecord, VoteRecord,
};
use crate::error::CodecError;
use crate::types::{LogId, NodeId, StoredMembership, TypeConfig, Vote};
use bytes::{BufMut, Bytes, BytesMut};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, SnapshotMeta, SnapshotSegmentId};
use prost::Message;

/// Version byte of every RPC body.
pub const RPC_VERSION: u8 = 1;

/// Which RPC a request body holds.
pub mod kind {
    /// `VoteRequest` → `VoteResponse`.
    pub const VOTE: u8 = 1;
    /// `AppendEntriesRequest` → `AppendEntriesResponse`.
    pub const APPEND_ENTRIES: u8 = 2;
    /// `InstallSnapshotRequest` (one chunk) → `InstallSnapshotResponse`.
    pub const INSTALL_SNAPSHOT: u8 = 3;
}

/// A vote request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteRequestRecord {
    /// The candidate's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// The candidate's last log id.
    #[prost(message, optional, tag = "2")]
    pub last_log_id: Option<LogIdRecord>,
}

/// A vote response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteResponseRecord {
    /// The responder's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// Whether the vote was granted.
    #[prost(bool, tag = "2")]
    pub vote_granted: bool,
    /// The responder's last log id.
    #[prost(message, optional, tag = "3")]
    pub last_log_id: Option<LogIdRecord>,
}

/// An append-entries request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppendRequestRecord {
    /// The leader's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// The log id before the first entry.
    #[prost(message, optional, tag = "2")]
    pub prev_log_id: Option<LogIdRecord>,
    /// The entries, each as stored ([`crate::codec::encode_entry_payload`]).
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub entries: Vec<Bytes>,
    /// The leader's committed log id.
    #[prost(message, optional, tag = "4")]
    pub leader_commit: Option<LogIdRecord>,
    /// The entries that were redacted in the leader's log, with their kept payload hashes
    /// ([`crate::types::Proposal::redacted_from`]).
    #[prost(message, repeated, tag = "5")]
    pub redacted: Vec<RedactedRecord>,
}

/// One redacted entry of an [`AppendRequestRecord`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct RedactedRecord {
    /// Position of the entry in the request's `entries`.
    #[prost(uint32, tag = "1")]
    pub position: u32,
    /// Its payload hash as originally appended (32 bytes).
    #[prost(bytes = "bytes", tag = "2")]
    pub payload_hash: Bytes,
}

/// An append-entries response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppendResponseRecord {
    /// The outcome.
    #[prost(oneof = "AppendOutcome", tags = "1, 2, 3, 4")]
    pub outcome: Option<AppendOutcome>,
}

/// What an append-entries request achieved.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AppendOutcome {
    /// Every entry was accepted.
    #[prost(message, tag = "1")]
    Success(Empty),
    /// Entries up to the given log id (none: nothing) were accepted.
    #[prost(message, tag = "2")]
    PartialSuccess(OptionalLogId),
    /// `prev_log_id` does not match.
    #[prost(message, tag = "3")]
    Conflict(Empty),
    /// The responder has seen a higher vote.
    #[prost(message, tag = "4")]
    HigherVote(VoteRecord),
}

/// Nothing.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// A log id that may be absent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionalLogId {
    /// The log id.
    #[prost(message, optional, tag = "1")]
    pub log_id: Option<LogIdRecord>,
}

/// One chunk of a snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallSnapshotRecord {
    /// The leader's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// The snapshot's last log id.
    #[prost(message, optional, tag = "2")]
    pub last_log_id: Option<LogIdRecord>,
    /// The log id of the snapshot's membership.
    #[prost(message, optional, tag = "3")]
    pub membership_log_id: Option<LogIdRecord>,
    /// The snapshot's membership.
    #[prost(message, optional, tag = "4")]
    pub membership: Option<MembershipRecord>,
    /// The snapshot id.
    #[prost(string, tag = "5")]
    pub snapshot_id: String,
    /// Offset of this chunk in the snapshot stream.
    #[prost(uint64, tag = "6")]
    pub offset: u64,
    /// The chunk.
    #[prost(bytes = "vec", tag = "7")]
    pub data: Vec<u8>,
    /// Whether this is the last chunk.
    #[prost(bool, tag = "8")]
    pub done: bool,
}

/// The answer to any RPC: the response body, or why the remote raft could not answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcReply {
    /// The outcome.
    #[prost(oneof = "ReplyOutcome", tags = "1, 2, 3")]
    pub outcome: Option<ReplyOutcome>,
}

/// What an [`RpcReply`] holds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ReplyOutcome {
    /// The RPC's response message (a `VoteResponseRecord`, `AppendResponseRecord` or
    /// `VoteRecord` for a snapshot chunk), encoded.
    #[prost(bytes = "vec", tag = "1")]
    Response(Vec<u8>),
    /// The remote raft failed or is stopping; the text says why.
    #[prost(string, tag = "2")]
    Fatal(String),
    /// A snapshot chunk did not continue the stream the receiver expected.
    #[prost(message, tag = "3")]
    SnapshotMismatch(SnapshotMismatchRecord),
}

/// The segments of a snapshot mismatch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotMismatchRecord {
    /// Expected snapshot id.
    #[prost(string, tag = "1")]
    pub expect_id: String,
    /// Expected offset.
    #[prost(uint64, tag = "2")]
    pub expect_offset: u64,
    /// Received snapshot id.
    #[prost(string, tag = "3")]
    pub got_id: String,
    /// Received offset.
    #[prost(uint64, tag = "4")]
    pub got_offset: u64,
}

impl SnapshotMismatchRecord {
    /// openraft's form.
    pub fn to_openraft(&self) -> openraft::error::SnapshotMismatch {
        openraft::error::SnapshotMismatch {
            expect: SnapshotSegmentId {
                id: self.expect_id.clone(),
                offset: self.expect_offset,
            },
            got: SnapshotSegmentId {
                id: self.got_id.clone(),
                offset: self.got_offset,
            },
        }
    }
}

impl From<&openraft::error::SnapshotMismatch> for SnapshotMismatchRecord {
    fn from(m: &openraft::error::SnapshotMismatch) -> Self {
        SnapshotMismatchRecord {
            expect_id: m.expect.id.clone(),
            expect_offset: m.expect.offset,
            got_id: m.got.id.clone(),
            got_offset: m.got.offset,
        }
    }
}

const RPC: &str = "raft rpc";

fn versioned(msg: &impl Message) -> Vec<u8> {
    let mut buf = BytesMut::with_capacity(1 + msg.encoded_len());
    buf.put_u8(RPC_VERSION);
    // A growing `BytesMut` never makes prost's encode fail.
    let _cannot_fail = msg.encode(&mut buf);
    buf.to_vec()
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Empty { what: RPC }),
        Some(&RPC_VERSION) => {
            M::decode(&bytes[1..]).map_err(|source| CodecError::Protobuf { what: RPC, source })
        }
        Some(&version) => Err(CodecError::Version {
            what: RPC,
            version,
            supported: RPC_VERSION,
        }),
    }
}

fn vote_rec(v: &Vote) -> VoteRecord {
    VoteRecord {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    }
}

fn vote_from(r: Option<VoteRecord>) -> Result<Vote, CodecError> {
    let r = r.ok_or(CodecError::Missing {
        what: RPC,
        field: "vote",
    })?;
    Ok(if r.committed {
        Vote::new_committed(r.term, r.node_id)
    } else {
        Vote::new(r.term, r.node_id)
    })
}

fn id_rec(id: &Option<LogId>) -> Option<LogIdRecord> {
    id.as_ref().map(Into::into)
}

fn id_from(r: &Option<LogIdRecord>) -> Option<LogId> {
    r.as_ref().map(Into::into)
}

/// Encodes a vote request.
pub fn encode_vote_request(req: &VoteRequest<NodeId>) -> Vec<u8> {
    versioned(&VoteRequestRecord {
        vote: Some(vote_rec(&req.vote)),
        last_log_id: id_rec(&req.last_log_id),
    })
}

/// Decodes a vote request.
pub fn decode_vote_request(bytes: &[u8]) -> Result<VoteRequest<NodeId>, CodecError> {
    let r: VoteRequestRecord = decode(bytes)?;
    Ok(VoteRequest::new(
        vote_from(r.vote)?,
        id_from(&r.last_log_id),
    ))
}

/// Encodes a vote response.
pub fn encode_vote_response(resp: &VoteResponse<NodeId>) -> Vec<u8> {
    versioned(&VoteResponseRecord {
        vote: Some(vote_rec(&resp.vote)),
        vote_granted: resp.vote_granted,
        last_log_id: id_rec(&resp.last_log_id),
    })
}

/// Decodes a vote response.
pub fn decode_vote_response(bytes: &[u8]) -> Result<VoteResponse<NodeId>, CodecError> {
    let r: VoteResponseRecord = decode(bytes)?;
    Ok(VoteResponse {
        vote: vote_from(r.vote)?,
        vote_granted: r.vote_granted,
        last_log_id: id_from(&r.last_log_id),
    })
}

/// Encodes an append-entries request.
pub fn encode_append_request(req: &AppendEntriesRequest<TypeConfig>) -> Vec<u8> {
    versioned(&AppendRequestRecord {
        vote: Some(vote_rec(&req.vote)),
        prev_log_id: id_rec(&req.prev_log_id),
        entries: req.entries.iter().map(encode_entry_payload).collect(),
        leader_commit: id_rec(&req.leader_commit),
        redacted: req
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.payload {
                EntryPayload::Normal(p) => Some(RedactedRecord {
                    position: u32::try_from(i).ok()?,
                    payload_hash: Bytes::copy_from_slice(p.redacted_from.as_ref()?),
                }),
                _ => None,
            })
            .collect(),
    })
}

/// Decodes an append-entries request; every entry is checked as when read from disk.
pub fn decode_append_request(bytes: &[u8]) -> Result<AppendEntriesRequest<TypeConfig>, CodecError> {
    let r: AppendRequestRecord = decode(bytes)?;
    let mut entries = r
        .entries
        .iter()
        .map(decode_entry_payload)
        .collect::<Result<Vec<_>, _>>()?;
    for red in &r.redacted {
        let hash =
            <[u8; 32]>::try_from(red.payload_hash.as_ref()).map_err(|_| CodecError::Missing {
                what: "append-entries request",
                field: "32-byte payload hash of a redacted entry",
            })?;
        match entries
            .get_mut(red.position as usize)
            .map(|e| &mut e.payload)
        {
            Some(EntryPayload::Normal(p)) => p.redacted_from = Some(hash),
            _ => {
                return Err(CodecError::Missing {
                    what: "append-entries request",
                    field: "normal entry at a redacted position",
                })
            }
        }
    }
    Ok(AppendEntriesRequest {
        vote: vote_from(r.vote)?,
        prev_log_id: id_from(&r.prev_log_id),
        entries,
        leader_commit: id_from(&r.leader_commit),
    })
}

/// Encodes an append-entries response.
pub fn encode_append_response(resp: &AppendEntriesResponse<NodeId>) -> Vec<u8> {
    let outcome = match resp {
        AppendEntriesResponse::Success => AppendOutcome::Success(Empty {}),
        AppendEntriesResponse::PartialSuccess(id) => {
            AppendOutcome::PartialSuccess(OptionalLogId { log_id: id_rec(id) })
        }
        AppendEntriesResponse::Conflict => AppendOutcome::Conflict(Empty {}),
        AppendEntriesResponse::HigherVote(v) => AppendOutcome::HigherVote(vote_rec(v)),
    };
    versioned(&AppendResponseRecord {
        outcome: Some(outcome),
    })
}

/// Decodes an append-entries response.
pub fn decode_append_response(bytes: &[u8]) -> Result<AppendEntriesResponse<NodeId>, CodecError> {
    let r: AppendResponseRecord = decode(bytes)?;
    Ok(match r.outcome {
        None => {
            return Err(CodecError::Missing {
                what: RPC,
                field: "outcome",
            })
        }
        Some(AppendOutcome::Success(_)) => AppendEntriesResponse::Success,
        Some(AppendOutcome::PartialSuccess(p)) => {
            AppendEntriesResponse::PartialSuccess(id_from(&p.log_id))
        }
        Some(AppendOutcome::Conflict(_)) => AppendEntriesResponse::Conflict,
        Some(AppendOutcome::HigherVote(v)) => {
            AppendEntriesResponse::HigherVote(vote_from(Some(v))?)
        }
    })
}

/// Encodes one snapshot chunk.
pub fn encode_snapshot_request(req: &InstallSnapshotRequest<TypeConfig>) -> Vec<u8> {
    versioned(&InstallSnapshotRecord {
        vote: Some(vote_rec(&req.vote)),
        last_log_id: id_rec(&req.meta.last_log_id),
        membership_log_id: id_rec(req.meta.last_membership.log_id()),
        membership: Some(req.meta.last_membership.membership().into()),
        snapshot_id: req.meta.snapshot_id.clone(),
        offset: req.offset,
        data: req.data.clone(),
        done: req.done,
    })
}

/// Decodes one snapshot chunk.
pub fn decode_snapshot_request(
    bytes: &[u8],
) -> Result<InstallSnapshotRequest<TypeConfig>, CodecError> {
    let r: InstallSnapshotRecord = decode(bytes)?;
    let membership = r.membership.ok_or(CodecError::Missing {
        what: RPC,
        field: "membership",
    })?;
    Ok(InstallSnapshotRequest {
        vote: vote_from(r.vote)?,
        meta: SnapshotMeta {
            last_log_id: id_from(&r.last_log_id),
            last_membership: StoredMembership::new(
                id_from(&r.membership_log_id),
                membership.into(),
            ),
            snapshot_id: r.snapshot_id,
        },
        offset: r.offset,
        data: r.data,
        done: r.done,
    })
}

/// Encodes a snapshot chunk's response.
pub fn encode_snapshot_response(resp: &InstallSnapshotResponse<NodeId>) -> Vec<u8> {
    versioned(&vote_rec(&resp.vote))
}

/// Decodes a snapshot chunk's response.
pub fn decode_snapshot_response(
    bytes: &[u8],
) -> Result<InstallSnapshotResponse<NodeId>, CodecError> {
    let r: VoteRecord = decode(bytes)?;
    Ok(InstallSnapshotResponse {
        vote: vote_from(Some(r))?,
    })
}

/// Encodes a reply.
pub fn encode_reply(outcome: ReplyOutcome) -> Vec<u8> {
    versioned(&RpcReply {
        outcome: Some(outcome),
    })
}

/// Decodes a reply.
pub fn decode_reply(bytes: &[u8]) -> Result<ReplyOutcome, CodecError> {
    let r: RpcReply = decode(bytes)?;
    r.outcome.ok_or(CodecError::Missing {
        what: RPC,
        field: "outcome",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Entry, HearthNode, Membership, Proposal};
    use openraft::CommittedLeaderId;
    use std::collections::{BTreeMap, BTreeSet};

    fn lid(t: u64, n: u64, i: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(t, n), i)
    }

    fn membership() -> Membership {
        let nodes: BTreeMap<u64, HearthNode> = [(
            1,
            HearthNode {
                peer_id: "p1".into(),
                addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
                http: "http://127.0.0.1:1".into(),
            },
        )]
        .into_iter()
        .collect();
        Membership::new(vec![BTreeSet::from([1])], nodes)
    }

    #[test]
    fn vote_round_trips() {
        let req = VoteRequest::new(Vote::new(3, 2), Some(lid(2, 1, 9)));
        assert_eq!(
            decode_vote_request(&encode_vote_request(&req)).unwrap(),
            req
        );
        let resp = VoteResponse {
            vote: Vote::new_committed(3, 2),
            vote_granted: true,
            last_log_id: None,
        };
        assert_eq!(
            decode_vote_response(&encode_vote_response(&resp)).unwrap(),
            resp
        );
    }

    #[test]
    fn append_round_trips() {
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(4, 1),
            prev_log_id: Some(lid(4, 1, 10)),
            entries: vec![
                Entry {
                    log_id: lid(4, 1, 11),
                    payload: EntryPayload::Normal(Proposal::new(vec![1, 2, 3])),
                },
                Entry {
                    log_id: lid(4, 1, 12),
                    payload: EntryPayload::Membership(membership()),
                },
                Entry {
                    log_id: lid(4, 1, 13),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: lid(4, 1, 14),
                    payload: EntryPayload::Normal(Proposal {
                        envelopes: vec![vec![0, 0, 0].into(), vec![4].into()],
                        redacted_from: Some([7; 32]),
                    }),
                },
            ],
            leader_commit: Some(lid(4, 1, 10)),
        };
        let back = decode_append_request(&encode_append_request(&req)).unwrap();
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.leader_commit, req.leader_commit);
        assert_eq!(back.entries, req.entries);
        for resp in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(lid(1, 1, 1))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(9, 3)),
        ] {
            assert_eq!(
                decode_append_response(&encode_append_response(&resp)).unwrap(),
                resp
            );
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let req = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(4, 1),
            meta: SnapshotMeta {
                last_log_id: Some(lid(4, 1, 100)),
                last_membership: StoredMembership::new(Some(lid(1, 1, 1)), membership()),
                snapshot_id: "s-1".into(),
            },
            offset: 3 << 20,
            data: vec![7; 1000],
            done: false,
        };
        assert_eq!(
            decode_snapshot_request(&encode_snapshot_request(&req)).unwrap(),
            req
        );
        let resp = InstallSnapshotResponse {
            vote: Vote::new(4, 1),
        };
        assert_eq!(
            decode_snapshot_response(&encode_snapshot_response(&resp)).unwrap(),
            resp
        );
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for bytes in [
            &[][..],
            &[0][..],
            &[2, 1, 2][..],
            &[1, 0xff, 0xff, 0xff][..],
            &[1][..],
        ] {
            let _ = decode_vote_request(bytes);
            let _ = decode_append_request(bytes);
            let _ = decode_snapshot_request(bytes);
            let _ = decode_reply(bytes);
            let _ = decode_append_response(bytes);
        }
        assert!(
            decode_vote_request(&[1]).is_err(),
            "a vote request needs a vote"
        );
        assert!(decode_append_request(&[9, 1]).is_err());
        // An entry inside an append that is not an entry encoding.
        let bad = versioned(&AppendRequestRecord {
            vote: Some(vote_rec(&Vote::new(1, 1))),
            prev_log_id: None,
            entries: vec![Bytes::from_static(b"\x01garbage")],
            leader_commit: None,
            redacted: Vec::new(),
        });
        assert!(decode_append_request(&bad).is_err());
        // A redaction naming no entry, or with a short hash.
        let entry = Entry {
            log_id: lid(1, 1, 1),
            payload: EntryPayload::Normal(Proposal::new(vec![1])),
        };
        for (position, len) in [(1, 32), (0, 31)] {
            let bad = versioned(&AppendRequestRecord {
                vote: Some(vote_rec(&Vote::new(1, 1))),
                prev_log_id: None,
                entries: vec![encode_entry_payload(&entry)],
                leader_commit: None,
                redacted: vec![RedactedRecord {
                    position,
                    payload_hash: vec![0; len].into(),
                }],
            });
            assert!(decode_append_request(&bad).is_err(), "{position} {len}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_vote_request(&bytes);
            let _ = decode_append_request(&bytes);
            let _ = decode_snapshot_request(&bytes);
            let _ = decode_reply(&bytes);
            let _ = decode_vote_response(&bytes);
            let _ = decode_append_response(&bytes);
            let _ = decode_snapshot_response(&bytes);
        }
    }
}
