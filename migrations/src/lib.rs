//! `hearth-migrations`: the version of every persisted format in a hearth data directory, the
//! data directory's **format manifest** (`DATA/format.json`), and the upgrades between versions
//! (`hearth migrate`).
//!
//! ```text
//! DATA/format.json   { "data_dir_format": 1, "components": { "log_segment": 1, … },
//!                      "projections": ["counts-1", "blobs-3", "peers-1"], "written_by": … }
//! ```
//!
//! * [`versions`] — every component and the version this build writes (one table: a format
//!   change bumps its component here and, when old data must change, the data directory format
//!   with a [`plan`] step from the previous one).
//! * [`manifest`] — the manifest file, written atomically (temp, fsync, rename, dir fsync).
//! * [`inspect`] — what a directory is ([`inspect::DirState`]: missing, fresh, written before
//!   manifests, or with a manifest) and the versions its files carry.
//! * [`check`] — what `hearth serve` and the offline readers accept: a fresh directory gets a
//!   manifest; a newer one is refused; one needing a migration is refused naming
//!   `hearth migrate`. Readers refuse only newer directories.
//! * [`migrate()`] — detect, plan, back up, apply, report (with a dry run).
//!
//! What is **not** migrated here, on purpose:
//! * **log payloads** are never rewritten — the hash chain and the `ManifestVerified`
//!   signatures cover them. Old event versions are *upcast when read*: every event is stored
//!   in an `Envelope` with a `schema_version`, and `hearth_proto::decode_envelope` accepts
//!   versions `1..=SCHEMA_VERSION` (the one place where an old version would be converted to
//!   the current types) and refuses newer ones;
//! * **projections** carry their version in their name (`blobs-3`): a store lacking a
//!   projection this build runs is set aside and rebuilt from the log by `hearth serve` at
//!   start (`hearth-services`, `node::open_state_machine`), so a projection change needs no
//!   step here — the manifest only records which projections the store holds.
//!
//! This crate knows the data directory's layout only as far as formats go ([`layout`]); the
//! node's paths (`hearth_services::paths`) are built from the same names.
#![deny(clippy::unwrap_used)]

pub mod backup;
pub mod check;
pub mod error;
pub mod inspect;
pub mod layout;
pub mod manifest;
pub mod migrate;
pub mod plan;
pub mod versions;

pub use check::{
    check_for_offline_write, check_for_serve, check_readable, record_projections, ServeCheck,
};
pub use error::FormatError;
pub use inspect::DirState;
pub use manifest::FormatManifest;
pub use migrate::{migrate, MigrateOptions, MigrationReport};
pub use versions::{Component, DATA_DIR_FORMAT};
