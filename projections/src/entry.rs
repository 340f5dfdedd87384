//! What goes into the runtime ([`CommittedEntry`]) and what comes out ([`Outcome`]).

use bytes::Bytes;

/// One committed log entry, as the raft layer hands it to the projections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    /// Log index.
    pub index: u64,
    /// Raft term of the entry.
    pub term: u64,
    /// What the entry carries.
    pub payload: EntryData,
    /// Whether the log entry was redacted (part of its payload zeroed in place after it was
    /// committed, such as a deleted blob's inline bytes): events then see
    /// [`ApplyCtx::redacted`](crate::ApplyCtx::redacted).
    pub redacted: bool,
}

impl CommittedEntry {
    /// An entry carrying a prost-encoded [`hearth_proto::v1::Envelope`].
    pub fn event(index: u64, term: u64, envelope: impl Into<Bytes>) -> Self {
        Self {
            index,
            term,
            payload: EntryData::Event(envelope.into()),
            redacted: false,
        }
    }

    /// An entry carrying several prost-encoded envelopes (a proposer's batch), applied in order
    /// as if each had an entry of its own; event `i` is addressed as `(index, i)`.
    pub fn batch(index: u64, term: u64, envelopes: Vec<Bytes>) -> Self {
        Self {
            index,
            term,
            payload: EntryData::Batch(envelopes),
            redacted: false,
        }
    }

    /// An entry that is not an event (raft membership change, blank leader entry).
    pub fn other(index: u64, term: u64) -> Self {
        Self {
            index,
            term,
            payload: EntryData::Other,
            redacted: false,
        }
    }

    /// The same entry, marked as read from a redacted log record (or not).
    pub fn with_redacted(mut self, redacted: bool) -> Self {
        self.redacted = redacted;
        self
    }
}

/// Payload of a [`CommittedEntry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryData {
    /// A prost-encoded [`hearth_proto::v1::Envelope`] (possibly malformed: then it is rejected).
    Event(Bytes),
    /// Several prost-encoded envelopes in one entry, applied in order (each may be malformed
    /// on its own: then that one is rejected).
    Batch(Vec<Bytes>),
    /// Not an event: no projection runs, only the applied index advances.
    Other,
}

/// What applying one entry did. The same log always yields the same outcomes, on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The entry's index is not above the applied index: it was applied before (typically before
    /// a restart) and nothing was done now.
    AlreadyApplied,
    /// The entry is not an event; the applied index advanced.
    NotAnEvent,
    /// The runtime rejected the event before any projection saw it; recorded in `rejected`.
    Rejected(Rejection),
    /// Every projection ran. Those listed rejected the event (their writes for it were
    /// dropped); the others folded it in.
    Applied {
        /// Projections that rejected the event, in registration order.
        rejected_by: Vec<ProjectionRejection>,
    },
    /// The entry is a batch ([`EntryData::Batch`]): one outcome per event, in order, each
    /// [`Outcome::Rejected`] or [`Outcome::Applied`].
    Batch(Vec<Outcome>),
}

impl Outcome {
    /// For each event of the entry, in order: `Some(reason)` when the runtime rejected it as a
    /// whole (undecodable, duplicate request id) or a projection rejected it (`"<projection>:
    /// <reason>"`, several joined by `"; "`), else `None`. Empty for entries that are not
    /// events or were applied before.
    pub fn event_rejections(&self) -> Vec<Option<String>> {
        match self {
            Outcome::AlreadyApplied | Outcome::NotAnEvent => Vec::new(),
            Outcome::Rejected(r) => vec![Some(r.reason())],
            Outcome::Applied { rejected_by } if rejected_by.is_empty() => vec![None],
            Outcome::Applied { rejected_by } => vec![Some(
                rejected_by
                    .iter()
                    .map(|r| format!("{}: {}", r.projection, r.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            )],
            Outcome::Batch(outcomes) => outcomes
                .iter()
                .flat_map(Outcome::event_rejections)
                .collect(),
        }
    }
}

/// Why the runtime rejected an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The payload is not a valid envelope of a schema version this build knows.
    Undecodable {
        /// The decoder's message.
        reason: String,
    },
    /// An event with the same request id (node, seq) was applied before.
    DuplicateRequest {
        /// Index of the entry that applied the request.
        first_index: u64,
    },
}

impl Rejection {
    /// The reason recorded in the `rejected` table.
    pub fn reason(&self) -> String {
        match self {
            Rejection::Undecodable { reason } => format!("undecodable: {reason}"),
            Rejection::DuplicateRequest { first_index } => {
                format!("duplicate request (first applied at index {first_index})")
            }
        }
    }
}

/// One projection's rejection of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionRejection {
    /// The projection's name.
    pub projection: &'static str,
    /// Its reason.
    pub reason: String,
}
