//! The on-disk encoding of raft entries and of the raft metadata record.
//!
//! Both are a **version byte** followed by a protobuf message. The messages are declared here by
//! hand with `prost` derives (field numbers are forever, as in `proto/`); they never leave this
//! crate, so they are not in the shared schema.
//!
//! * An entry is stored as one `hearth-log` entry: the log record's `index` and `term` are the
//!   log id's, and the payload is [`ENTRY_VERSION`] + [`EntryRecord`], which repeats the *full*
//!   log id (term, leader node id, index) and holds the payload (blank, normal = one event
//!   envelope's bytes, batch = several envelopes, or membership). A [`Proposal`] of exactly one
//!   envelope is always stored as normal, so entries written before batching existed read back
//!   unchanged and every node maps an entry to the same events. Decoding checks the repeated index and term against the
//!   record header.
//! * The metadata record is [`META_VERSION`] + [`MetaRecord`]: vote, committed and last purged
//!   log id.
//!
//! Decoding never panics: damage is a [`CodecError`].

use crate::error::CodecError;
use crate::types::{Entry, HearthNode, LogId, Membership, Proposal, RaftMeta, Vote};
use bytes::{BufMut, Bytes, BytesMut};
use openraft::{CommittedLeaderId, EntryPayload};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};

/// Version byte of an encoded entry.
pub const ENTRY_VERSION: u8 = 1;
/// Version byte of an encoded metadata record.
pub const META_VERSION: u8 = 1;

const ENTRY: &str = "raft entry";
const META: &str = "raft metadata";

/// A raft entry as stored (version 1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryRecord {
    /// Term of the log id.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// Leader node id of the log id.
    #[prost(uint64, tag = "2")]
    pub leader: u64,
    /// Index of the log id.
    #[prost(uint64, tag = "3")]
    pub index: u64,
    /// What the entry carries.
    #[prost(oneof = "PayloadRecord", tags = "4, 5, 6, 7")]
    pub payload: Option<PayloadRecord>,
}

/// The payload of an [`EntryRecord`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PayloadRecord {
    /// A blank entry (a new leader's first).
    #[prost(message, tag = "4")]
    Blank(BlankRecord),
    /// A normal entry: the event envelope bytes.
    #[prost(bytes = "bytes", tag = "5")]
    Normal(Bytes),
    /// A membership change.
    #[prost(message, tag = "6")]
    Membership(MembershipRecord),
    /// A normal entry carrying several envelopes (any count but one, which is [`Self::Normal`]).
    #[prost(message, tag = "7")]
    Batch(BatchRecord),
}

/// The envelopes of a batch entry, in the order they are applied.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchRecord {
    /// Encoded envelopes.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub envelopes: Vec<Bytes>,
}

/// Nothing: marks a blank entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlankRecord {}

/// A membership config: joint voter sets and every node's address info.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MembershipRecord {
    /// One voter set, or two during a joint change.
    #[prost(message, repeated, tag = "1")]
    pub configs: Vec<VoterSetRecord>,
    /// Every node, voter or learner.
    #[prost(message, repeated, tag = "2")]
    pub nodes: Vec<NodeRecord>,
}

/// A set of voter node ids.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoterSetRecord {
    /// Node ids, ascending.
    #[prost(uint64, repeated, tag = "1")]
    pub voters: Vec<u64>,
}

/// A node of a membership.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeRecord {
    /// Raft node id.
    #[prost(uint64, tag = "1")]
    pub node_id: u64,
    /// libp2p PeerId string.
    #[prost(string, tag = "2")]
    pub peer_id: String,
    /// Multiaddr strings.
    #[prost(string, repeated, tag = "3")]
    pub addrs: Vec<String>,
    /// HTTP API base URL (empty when unknown).
    #[prost(string, tag = "4")]
    pub http: String,
}

/// A full log id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogIdRecord {
    /// Term.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// Leader node id.
    #[prost(uint64, tag = "2")]
    pub leader: u64,
    /// Index.
    #[prost(uint64, tag = "3")]
    pub index: u64,
}

/// A vote.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteRecord {
    /// Term.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// The candidate or leader voted for.
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
    /// Whether a quorum granted it.
    #[prost(bool, tag = "3")]
    pub committed: bool,
}

/// The raft metadata record (version 1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaRecord {
    /// The vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// The committed log id.
    #[prost(message, optional, tag = "2")]
    pub committed: Option<LogIdRecord>,
    /// The last purged log id.
    #[prost(message, optional, tag = "3")]
    pub purged: Option<LogIdRecord>,
}

fn log_id(term: u64, leader: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, leader), index)
}

impl From<&LogId> for LogIdRecord {
    fn from(id: &LogId) -> Self {
        LogIdRecord {
            term: id.leader_id.term,
            leader: id.leader_id.node_id,
            index: id.index,
        }
    }
}

impl From<&LogIdRecord> for LogId {
    fn from(r: &LogIdRecord) -> Self {
        log_id(r.term, r.leader, r.index)
    }
}

impl From<&Membership> for MembershipRecord {
    fn from(m: &Membership) -> Self {
        MembershipRecord {
            configs: m
                .get_joint_config()
                .iter()
                .map(|set| VoterSetRecord {
                    voters: set.iter().copied().collect(),
                })
                .collect(),
            nodes: m
                .nodes()
                .map(|(id, n)| NodeRecord {
                    node_id: *id,
                    peer_id: n.peer_id.clone(),
                    addrs: n.addrs.clone(),
                    http: n.http.clone(),
                })
                .collect(),
        }
    }
}

impl From<MembershipRecord> for Membership {
    fn from(r: MembershipRecord) -> Self {
        let configs: Vec<BTreeSet<u64>> = r
            .configs
            .into_iter()
            .map(|c| c.voters.into_iter().collect())
            .collect();
        let nodes: BTreeMap<u64, HearthNode> = r
            .nodes
            .into_iter()
            .map(|n| {
                (
                    n.node_id,
                    HearthNode {
                        peer_id: n.peer_id,
                        addrs: n.addrs,
                        http: n.http,
                    },
                )
            })
            .collect();
        Membership::new(configs, nodes)
    }
}

fn versioned(version: u8, msg: &impl Message) -> Bytes {
    let mut buf = BytesMut::with_capacity(1 + msg.encoded_len());
    buf.put_u8(version);
    // prost's only encode error is "buffer too small"; a `BytesMut` grows, so it cannot occur.
    let _cannot_fail = msg.encode(&mut buf);
    buf.freeze()
}

fn body(what: &'static str, supported: u8, bytes: &Bytes) -> Result<Bytes, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Empty { what }),
        Some(&v) if v == supported => Ok(bytes.slice(1..)),
        Some(&version) => Err(CodecError::Version {
            what,
            version,
            supported,
        }),
    }
}

/// Encodes `entry` as the payload of a `hearth-log` entry (see the module docs).
pub fn encode_entry_payload(entry: &Entry) -> Bytes {
    let payload = match &entry.payload {
        EntryPayload::Blank => PayloadRecord::Blank(BlankRecord {}),
        EntryPayload::Normal(p) => match p.envelopes.as_slice() {
            [one] => PayloadRecord::Normal(one.clone()),
            many => PayloadRecord::Batch(BatchRecord {
                envelopes: many.to_vec(),
            }),
        },
        EntryPayload::Membership(m) => PayloadRecord::Membership(m.into()),
    };
    let id = &entry.log_id;
    let rec = EntryRecord {
        term: id.leader_id.term,
        leader: id.leader_id.node_id,
        index: id.index,
        payload: Some(payload),
    };
    versioned(ENTRY_VERSION, &rec)
}

/// Encodes `entry` as a `hearth-log` entry: index and term of its log id, payload as
/// [`encode_entry_payload`].
pub fn encode_entry(entry: &Entry) -> hearth_log::Entry {
    let redacted_from = match &entry.payload {
        EntryPayload::Normal(p) => p.redacted_from,
        _ => None,
    };
    hearth_log::Entry {
        index: entry.log_id.index,
        term: entry.log_id.leader_id.term,
        payload: encode_entry_payload(entry),
        redacted_from,
    }
}

/// Decodes an entry's payload, without checking it against a record header.
pub fn decode_entry_payload(payload: &Bytes) -> Result<Entry, CodecError> {
    let rec = EntryRecord::decode(body(ENTRY, ENTRY_VERSION, payload)?).map_err(|source| {
        CodecError::Protobuf {
            what: ENTRY,
            source,
        }
    })?;
    let payload = match rec.payload {
        None => {
            return Err(CodecError::Missing {
                what: ENTRY,
                field: "payload",
            })
        }
        Some(PayloadRecord::Blank(_)) => EntryPayload::Blank,
        Some(PayloadRecord::Normal(envelope)) => EntryPayload::Normal(Proposal::new(envelope)),
        Some(PayloadRecord::Batch(b)) => EntryPayload::Normal(Proposal::batch(b.envelopes)),
        Some(PayloadRecord::Membership(m)) => EntryPayload::Membership(m.into()),
    };
    Ok(Entry {
        log_id: log_id(rec.term, rec.leader, rec.index),
        payload,
    })
}

/// Decodes a `hearth-log` record's payload into an entry and checks that its log id agrees with
/// the record's index and term.
pub fn decode_entry(
    record_index: u64,
    record_term: u64,
    payload: &Bytes,
) -> Result<Entry, CodecError> {
    let entry = decode_entry_payload(payload)?;
    if entry.log_id.index != record_index || entry.log_id.leader_id.term != record_term {
        return Err(CodecError::Mismatch {
            record_index,
            record_term,
            log_id: entry.log_id,
        });
    }
    Ok(entry)
}

/// Where, inside a stored entry payload ([`encode_entry_payload`]), the envelope at `position`
/// lies (0 for a normal entry, `i` for the `i`-th of a batch); `None` when there is none (a
/// blank or membership entry, a position past the batch) or the payload does not parse.
pub fn envelope_range(payload: &[u8], position: u32) -> Option<std::ops::Range<usize>> {
    use hearth_proto::wire::field_range;
    /// `EntryRecord.normal`, `EntryRecord.batch` and `BatchRecord.envelopes`.
    const NORMAL: u32 = 5;
    const BATCH: u32 = 7;
    const ENVELOPES: u32 = 1;
    if payload.first() != Some(&ENTRY_VERSION) {
        return None;
    }
    let body = &payload[1..];
    let at = |r: std::ops::Range<usize>| 1 + r.start..1 + r.end;
    if let Some(r) = field_range(body, NORMAL, 0) {
        return (position == 0).then(|| at(r));
    }
    let batch = field_range(body, BATCH, 0)?;
    let inner = field_range(
        &body[batch.clone()],
        ENVELOPES,
        usize::try_from(position).ok()?,
    )?;
    Some(at(batch.start + inner.start..batch.start + inner.end))
}

/// Decodes a `hearth-log` record into an entry (as [`decode_entry`]); a redacted record's
/// proposal carries the record's kept payload hash ([`Proposal::redacted_from`]).
pub fn decode_record(rec: &hearth_log::Record) -> Result<Entry, CodecError> {
    let mut entry = decode_entry(rec.index, rec.term, &rec.payload)?;
    if let (true, EntryPayload::Normal(p)) = (rec.redacted, &mut entry.payload) {
        p.redacted_from = Some(rec.payload_hash);
    }
    Ok(entry)
}

/// Encodes the metadata record.
pub fn encode_meta(meta: &RaftMeta) -> Bytes {
    let rec = MetaRecord {
        vote: meta.vote.as_ref().map(|v| VoteRecord {
            term: v.leader_id.term,
            node_id: v.leader_id.node_id,
            committed: v.committed,
        }),
        committed: meta.committed.as_ref().map(Into::into),
        purged: meta.purged.as_ref().map(Into::into),
    };
    versioned(META_VERSION, &rec)
}

/// Decodes the metadata record.
pub fn decode_meta(bytes: &Bytes) -> Result<RaftMeta, CodecError> {
    let rec = MetaRecord::decode(body(META, META_VERSION, bytes)?)
        .map_err(|source| CodecError::Protobuf { what: META, source })?;
    Ok(RaftMeta {
        vote: rec.vote.map(|v| {
            if v.committed {
                Vote::new_committed(v.term, v.node_id)
            } else {
                Vote::new(v.term, v.node_id)
            }
        }),
        committed: rec.committed.as_ref().map(Into::into),
        purged: rec.purged.as_ref().map(Into::into),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, btree_set, vec};
    use proptest::prelude::*;

    fn arb_log_id() -> impl Strategy<Value = LogId> {
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(t, n, i)| log_id(t, n, i))
    }

    fn arb_node() -> impl Strategy<Value = HearthNode> {
        (
            "[a-zA-Z0-9]{0,52}",
            vec("/ip4/[0-9.]{1,15}/tcp/[0-9]{1,5}", 0..3),
        )
            .prop_map(|(peer_id, addrs)| HearthNode {
                peer_id,
                addrs,
                http: String::new(),
            })
    }

    fn arb_membership() -> impl Strategy<Value = Membership> {
        (
            vec(btree_set(0u64..16, 1..5), 1..3),
            btree_map(0u64..24, arb_node(), 0..6),
        )
            .prop_map(|(configs, nodes)| Membership::new(configs, nodes))
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        let payload = prop_oneof![
            Just(EntryPayload::Blank),
            vec(any::<u8>(), 0..512).prop_map(|b| EntryPayload::Normal(Proposal::new(b))),
            vec(vec(any::<u8>(), 0..64), 0..6).prop_map(|v| EntryPayload::Normal(Proposal::batch(
                v.into_iter().map(Bytes::from).collect()
            ))),
            arb_membership().prop_map(EntryPayload::Membership),
        ];
        (arb_log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
    }

    fn arb_vote() -> impl Strategy<Value = Vote> {
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(t, n, c)| {
            if c {
                Vote::new_committed(t, n)
            } else {
                Vote::new(t, n)
            }
        })
    }

    proptest! {
        #[test]
        fn entries_round_trip(entry in arb_entry()) {
            let rec = encode_entry(&entry);
            prop_assert_eq!(rec.index, entry.log_id.index);
            prop_assert_eq!(rec.term, entry.log_id.leader_id.term);
            let back = decode_entry(rec.index, rec.term, &rec.payload).unwrap();
            prop_assert_eq!(back, entry);
        }

        #[test]
        fn every_envelope_is_found_where_it_is_stored(entry in arb_entry()) {
            let payload = encode_entry(&entry).payload;
            let envelopes = match &entry.payload {
                EntryPayload::Normal(p) => p.envelopes.clone(),
                _ => Vec::new(),
            };
            for (i, env) in envelopes.iter().enumerate() {
                let r = envelope_range(&payload, i as u32).expect("found");
                prop_assert_eq!(&payload[r], &env[..]);
            }
            prop_assert_eq!(envelope_range(&payload, envelopes.len() as u32), None);
        }

        #[test]
        fn meta_round_trips(
            vote in proptest::option::of(arb_vote()),
            committed in proptest::option::of(arb_log_id()),
            purged in proptest::option::of(arb_log_id()),
        ) {
            let meta = RaftMeta { vote, committed, purged };
            prop_assert_eq!(decode_meta(&encode_meta(&meta)).unwrap(), meta);
        }

        #[test]
        fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            let bytes = Bytes::from(bytes);
            let _ = decode_entry(1, 1, &bytes);
            let _ = decode_meta(&bytes);
            let _ = envelope_range(&bytes, 1);
        }

        #[test]
        fn damaged_entries_never_panic(entry in arb_entry(), at in any::<prop::sample::Index>(), xor in 1u8..) {
            let rec = encode_entry(&entry);
            let mut bytes = rec.payload.to_vec();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            // Either an error or some entry, never a panic.
            let _ = decode_entry(rec.index, rec.term, &Bytes::from(bytes));
        }
    }

    #[test]
    fn typed_errors_for_bad_bytes() {
        let entry = Entry {
            log_id: log_id(3, 7, 42),
            payload: EntryPayload::Normal(Proposal::new(&b"envelope"[..])),
        };
        let good = encode_entry(&entry).payload;

        assert!(matches!(
            decode_entry(42, 3, &Bytes::new()),
            Err(CodecError::Empty { .. })
        ));

        let mut newer = good.to_vec();
        newer[0] = 9;
        assert!(matches!(
            decode_entry(42, 3, &Bytes::from(newer)),
            Err(CodecError::Version {
                version: 9,
                supported: 1,
                ..
            })
        ));

        // a truncated body: the length of the envelope field runs past the end
        let cut = good.slice(..good.len() - 3);
        assert!(matches!(
            decode_entry(42, 3, &cut),
            Err(CodecError::Protobuf { .. })
        ));

        // a valid message without a payload
        let empty = versioned(ENTRY_VERSION, &EntryRecord::default());
        assert!(matches!(
            decode_entry(0, 0, &empty),
            Err(CodecError::Missing {
                field: "payload",
                ..
            })
        ));

        // the record header and the payload disagree
        assert!(matches!(
            decode_entry(43, 3, &good),
            Err(CodecError::Mismatch {
                record_index: 43,
                ..
            })
        ));
        assert!(matches!(
            decode_entry(42, 4, &good),
            Err(CodecError::Mismatch { record_term: 4, .. })
        ));

        let mut bad_meta = encode_meta(&RaftMeta::default()).to_vec();
        bad_meta.extend_from_slice(&[0xff, 0xff]);
        assert!(matches!(
            decode_meta(&Bytes::from(bad_meta)),
            Err(CodecError::Protobuf { .. })
        ));
    }

    /// The version-1 byte layout, pinned: if this changes, data on disk no longer reads.
    #[test]
    fn version_1_layout_is_stable() {
        let entry = Entry {
            log_id: log_id(2, 1, 5),
            payload: EntryPayload::Normal(Proposal::new(&b"ev"[..])),
        };
        assert_eq!(
            &encode_entry_payload(&entry)[..],
            &[1, 0x08, 2, 0x10, 1, 0x18, 5, 0x2a, 2, b'e', b'v'][..]
        );
        let meta = RaftMeta {
            vote: Some(Vote::new_committed(4, 2)),
            committed: None,
            purged: Some(log_id(1, 2, 3)),
        };
        assert_eq!(
            &encode_meta(&meta)[..],
            &[1, 0x0a, 6, 0x08, 4, 0x10, 2, 0x18, 1, 0x1a, 6, 0x08, 1, 0x10, 2, 0x18, 3][..]
        );
    }
}
