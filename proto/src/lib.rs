//! `hearth-proto`: the protobuf schema of hearth's events and the Rust types
//! generated from it.
//!
//! The schema lives in `proto/hearth/v1/*.proto` and is compiled at build time
//! by prost-build with protox (pure Rust, so no `protoc` is needed anywhere).
//!
//! Rules that every change to the schema must keep:
//!
//! - **Field numbers are forever.** A released field or event number is never
//!   changed or reused; new fields and new event kinds take new numbers.
//! - **Every persisted message carries a schema version.** Events are always
//!   persisted inside an [`v1::Envelope`] whose `schema_version` is
//!   [`SCHEMA_VERSION`] when written; [`decode_envelope`] rejects versions it
//!   does not know.
//!
//! What this crate is **not**: it holds no domain logic. It does not validate
//! hash or id lengths, apply events or know about tiers; conversions between
//! these wire types and domain types live in the crates that own the domain.
//!
//! Besides the generated types it offers small helpers: [`encode`] /
//! [`v1::Envelope::encode_to_bytes`], [`decode_envelope`], [`event_kind`],
//! [`inline_data_range`] (with the field locator in [`wire`]), and a
//! deterministic event generator for benchmarks in [`sample`].

mod error;
pub mod sample;
pub mod wire;

pub use error::ProtoError;

/// Generated types of schema version 1 (protobuf package `hearth.v1`).
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    missing_docs,
    rustdoc::all
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hearth.v1.rs"));
}

use bytes::Bytes;
use prost::Message;
use v1::envelope::Event;
use v1::Envelope;

/// Schema version written into every new [`Envelope`]. Readers accept
/// versions `1..=SCHEMA_VERSION`.
pub const SCHEMA_VERSION: u32 = 1;

impl Envelope {
    /// Encodes the envelope as protobuf bytes.
    pub fn encode_to_bytes(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }
}

/// Encodes an envelope as protobuf bytes; same as [`Envelope::encode_to_bytes`].
pub fn encode(env: &Envelope) -> Bytes {
    env.encode_to_bytes()
}

/// Decodes and checks an envelope.
///
/// Errors: [`ProtoError::Decode`] for bytes that are not a valid encoding,
/// [`ProtoError::UnsupportedSchemaVersion`] when `schema_version` is 0 or newer
/// than [`SCHEMA_VERSION`], and [`ProtoError::MissingEvent`] when the envelope
/// carries no event this version knows.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, ProtoError> {
    let env = Envelope::decode(bytes)?;
    if env.schema_version == 0 || env.schema_version > SCHEMA_VERSION {
        return Err(ProtoError::UnsupportedSchemaVersion {
            found: env.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    if env.event.is_none() {
        return Err(ProtoError::MissingEvent);
    }
    Ok(env)
}

/// Where, inside an encoded [`Envelope`], the `inline_data` of a `BlobAccepted` event lies
/// (the bytes a blob deletion redacts); `None` for any other event or a malformed envelope.
pub fn inline_data_range(envelope: &[u8]) -> Option<std::ops::Range<usize>> {
    /// `Envelope.blob_accepted`, then `BlobAccepted.inline_data` (field numbers are forever).
    const PATH: [u32; 2] = [10, 6];
    wire::nested_range(envelope, &PATH)
}

/// Name of the event kind an envelope carries, e.g. `"BlobAccepted"`, or
/// `"Unknown"` when it carries none (or one newer than this schema).
pub fn event_kind(env: &Envelope) -> &'static str {
    match &env.event {
        Some(Event::BlobAccepted(_)) => "BlobAccepted",
        Some(Event::ShardPlaced(_)) => "ShardPlaced",
        Some(Event::ReplicaConfirmed(_)) => "ReplicaConfirmed",
        Some(Event::ManifestVerified(_)) => "ManifestVerified",
        Some(Event::PeerSeen(_)) => "PeerSeen",
        Some(Event::BlobDeleted(_)) => "BlobDeleted",
        Some(Event::ShardReleased(_)) => "ShardReleased",
        Some(Event::TransferOutcome(_)) => "TransferOutcome",
        Some(Event::DocChanged(_)) => "DocChanged",
        Some(Event::DevicePaired(_)) => "DevicePaired",
        Some(Event::ShardsScrubbed(_)) => "ShardsScrubbed",
        Some(Event::ParityAdded(_)) => "ParityAdded",
        None => "Unknown",
    }
}
