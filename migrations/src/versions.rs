//! Every persisted format of a data directory ([`Component`]) and the version this build
//! writes. The versions of the lower crates come from their own `format` constants; the files
//! `hearth-services` owns (cluster file, peer list, identity key, shard store) have their
//! constants here, and `hearth-services` uses them.
//!
//! [`DATA_DIR_FORMAT`] is the data directory's version as a whole: it goes up when data written
//! by an older build must be changed before this build may use it, and [`crate::plan`] then
//! gets a step from the previous version. A component change that older data needs no step for
//! (a new projection is rebuilt at start; a reader that also accepts the old version) bumps
//! only the component.
//!
//! | data dir format | what changed |
//! |---|---|
//! | 0 | no `format.json`: every data directory written before format manifests |
//! | 1 | `format.json` written; components as in [`Component::current`] |

use std::collections::BTreeMap;

/// The data directory format this build writes and reads.
pub const DATA_DIR_FORMAT: u32 = 1;
/// `cluster.json`'s `format`.
pub const CLUSTER_FILE_FORMAT: u32 = 1;
/// `peers.json`'s `version`.
pub const PEER_LIST_FORMAT: u32 = 1;
/// `identity.key` (a protobuf-encoded libp2p ed25519 keypair; the file has no marker).
pub const IDENTITY_KEY_FORMAT: u32 = 1;
/// The shard store's layout (`shards/<blob hex>/<index>`; the files have no marker).
pub const SHARD_STORE_FORMAT: u32 = 1;

/// A persisted format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// Log segment header and framing (`log/*.seg`, version in every header).
    LogSegment,
    /// Projection store runtime layout (RocksDB `meta` / `format_version`).
    ProjectionStore,
    /// The state machine's `raft-sm.meta` (sealed file header).
    StateMachineMeta,
    /// Snapshot streams (`current.snapshot`, header).
    Snapshot,
    /// `cluster.json` (`format`).
    ClusterFile,
    /// `peers.json` (`version`).
    PeerList,
    /// `identity.key`.
    IdentityKey,
    /// The shard store's layout.
    ShardStore,
}

impl Component {
    /// Every component, in manifest order.
    pub const ALL: [Component; 8] = [
        Component::LogSegment,
        Component::ProjectionStore,
        Component::StateMachineMeta,
        Component::Snapshot,
        Component::ClusterFile,
        Component::PeerList,
        Component::IdentityKey,
        Component::ShardStore,
    ];

    /// Its name in `format.json`.
    pub fn name(self) -> &'static str {
        match self {
            Component::LogSegment => "log_segment",
            Component::ProjectionStore => "projection_store",
            Component::StateMachineMeta => "state_machine_meta",
            Component::Snapshot => "snapshot",
            Component::ClusterFile => "cluster_file",
            Component::PeerList => "peer_list",
            Component::IdentityKey => "identity_key",
            Component::ShardStore => "shard_store",
        }
    }

    /// The component named `name`, if this build knows it.
    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The version this build writes (and the newest it reads).
    pub fn current(self) -> u32 {
        match self {
            Component::LogSegment => hearth_log::format::FORMAT_VERSION,
            Component::ProjectionStore => hearth_projections::format::FORMAT_VERSION,
            Component::StateMachineMeta => hearth_raft::projection_sm::SM_META_VERSION,
            Component::Snapshot => hearth_raft::snapshot::SNAPSHOT_VERSION,
            Component::ClusterFile => CLUSTER_FILE_FORMAT,
            Component::PeerList => PEER_LIST_FORMAT,
            Component::IdentityKey => IDENTITY_KEY_FORMAT,
            Component::ShardStore => SHARD_STORE_FORMAT,
        }
    }
}

/// Every component with its current version, as `format.json` lists them.
pub fn current_components() -> BTreeMap<String, u32> {
    Component::ALL
        .into_iter()
        .map(|c| (c.name().to_string(), c.current()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for c in Component::ALL {
            assert_eq!(Component::from_name(c.name()), Some(c));
        }
        assert_eq!(current_components().len(), Component::ALL.len());
        assert_eq!(Component::from_name("nope"), None);
    }
}
