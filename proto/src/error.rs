//! Errors from decoding persisted messages.

/// Why bytes could not be decoded into a usable message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The bytes are not a valid protobuf encoding of the message.
    #[error("protobuf decode error: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The message was written with a schema version this build cannot read:
    /// 0 (unset) or newer than the supported one.
    #[error("unsupported schema version {found} (this build supports 1..={supported})")]
    UnsupportedSchemaVersion {
        /// Version found in the message.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// The envelope carries no event, or only one of a kind this build does
    /// not know.
    #[error("envelope carries no known event")]
    MissingEvent,
}
