//! What a data directory is ([`dir_state`]) and which version each of its files carries
//! ([`found_versions`]). Reads only; opens the projection store read-only.
//!
//! A directory without `format.json` is **fresh** when nothing a node writes is in it but
//! possibly its identity key (a node that never got as far as founding or joining): no
//! `cluster.json`, no log segment, no `state/`. Anything else without a manifest was written
//! before manifests existed: [`DirState::PreManifest`], data dir format 0.

use crate::error::FormatError;
use crate::layout::{self, log_dir, state_dir, store_dir};
use crate::manifest::FormatManifest;
use crate::versions::Component;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a directory is, format-wise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    /// It does not exist.
    Missing,
    /// No node data yet (see the module docs).
    Fresh,
    /// Node data without `format.json`: data dir format 0.
    PreManifest,
    /// With a manifest.
    Manifest(FormatManifest),
}

/// Classifies `data_dir`; see [`DirState`].
pub fn dir_state(data_dir: &Path) -> Result<DirState, FormatError> {
    if !data_dir.exists() {
        return Ok(DirState::Missing);
    }
    if !data_dir.is_dir() {
        return Err(FormatError::unreadable(data_dir, "not a directory"));
    }
    if let Some(m) = FormatManifest::load(data_dir)? {
        return Ok(DirState::Manifest(m));
    }
    let has_node_data = data_dir.join(layout::CLUSTER_FILE).exists()
        || state_dir(data_dir).exists()
        || !segments(&log_dir(data_dir))?.is_empty();
    Ok(if has_node_data {
        DirState::PreManifest
    } else {
        DirState::Fresh
    })
}

/// The version one component's files carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundVersion {
    /// The version; `None` when the component has no file in the directory.
    pub version: Option<u32>,
    /// Where it was read (`log/00000000000000000001.seg header`), or why there is none.
    pub source: String,
}

/// Every component's version as found on disk, and the projections the store holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    /// By component name.
    pub components: BTreeMap<String, FoundVersion>,
    /// The store's projections (column families other than the runtime's), sorted.
    pub projections: Vec<String>,
}

impl Found {
    /// The first component whose version is newer than this build's: `(name, found, current)`.
    pub fn newer(&self) -> Option<(String, u32, u32)> {
        Component::ALL.into_iter().find_map(|c| {
            let v = self.components.get(c.name())?.version?;
            (v > c.current()).then(|| (c.name().to_string(), v, c.current()))
        })
    }
}

/// Reads the version of every component of `data_dir` from its files (see [`Component`]).
pub fn found_versions(data_dir: &Path) -> Result<Found, FormatError> {
    let mut found = Found::default();
    let mut put = |c: Component, v: FoundVersion| {
        found.components.insert(c.name().to_string(), v);
    };
    put(Component::LogSegment, log_segment_version(data_dir)?);
    let (store, projections) = store_version(data_dir)?;
    put(Component::ProjectionStore, store);
    let state = state_dir(data_dir);
    put(
        Component::StateMachineMeta,
        header_version(
            &hearth_raft::projection_sm::sm_meta_path(&state),
            &hearth_raft::projection_sm::SM_META_MAGIC,
        )?,
    );
    put(
        Component::Snapshot,
        header_version(
            &hearth_raft::projection_sm::current_snapshot_path(&state),
            &hearth_raft::snapshot::SNAPSHOT_MAGIC,
        )?,
    );
    put(
        Component::ClusterFile,
        json_version(&data_dir.join(layout::CLUSTER_FILE), "format")?,
    );
    put(
        Component::PeerList,
        json_version(&data_dir.join(layout::PEER_LIST), "version")?,
    );
    put(
        Component::IdentityKey,
        unmarked(&data_dir.join(layout::IDENTITY_KEY)),
    );
    put(
        Component::ShardStore,
        unmarked(&data_dir.join(layout::SHARDS_DIR)),
    );
    found.projections = projections;
    Ok(found)
}

fn absent(path: &Path) -> FoundVersion {
    FoundVersion {
        version: None,
        source: format!("no {}", path.display()),
    }
}

/// Segment files of a log directory, in sequence order (none when there is no directory).
fn segments(dir: &Path) -> Result<Vec<PathBuf>, FormatError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FormatError::io(dir)(e)),
    };
    let mut segs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(FormatError::io(dir))?;
        if let Some(seq) = entry
            .file_name()
            .to_str()
            .and_then(hearth_log::format::parse_segment_name)
        {
            segs.push((seq, entry.path()));
        }
    }
    segs.sort();
    Ok(segs.into_iter().map(|(_, p)| p).collect())
}

/// The version in the first segment header that has one (an unfinished newest segment has an
/// all-zero header).
fn log_segment_version(data_dir: &Path) -> Result<FoundVersion, FormatError> {
    let dir = log_dir(data_dir);
    for seg in segments(&dir)? {
        let mut head = [0u8; 12];
        let n = read_prefix(&seg, &mut head)?;
        if n < head.len() || head.iter().all(|&b| b == 0) {
            continue;
        }
        if head[..8] != hearth_log::format::SEGMENT_MAGIC {
            return Err(FormatError::unreadable(
                &seg,
                "not a log segment (bad magic)",
            ));
        }
        return Ok(FoundVersion {
            version: Some(le_u32(&head[8..12])),
            source: format!("{} header", seg.display()),
        });
    }
    Ok(absent(&dir.join("*.seg")))
}

/// The version of a file that starts with `magic ‖ version u32 LE`.
fn header_version(path: &Path, magic: &[u8; 8]) -> Result<FoundVersion, FormatError> {
    if !path.exists() {
        return Ok(absent(path));
    }
    let mut head = [0u8; 12];
    let n = read_prefix(path, &mut head)?;
    if n < head.len() || head[..8] != magic[..] {
        return Err(FormatError::unreadable(
            path,
            "damaged header (short or bad magic)",
        ));
    }
    Ok(FoundVersion {
        version: Some(le_u32(&head[8..12])),
        source: format!("{} header", path.display()),
    })
}

/// The number in field `field` of a JSON file.
fn json_version(path: &Path, field: &str) -> Result<FoundVersion, FormatError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(absent(path)),
        Err(e) => return Err(FormatError::io(path)(e)),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| FormatError::unreadable(path, format!("not JSON: {e}")))?;
    let version = value
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| FormatError::unreadable(path, format!("no numeric `{field}` field")))?;
    Ok(FoundVersion {
        version: Some(version),
        source: format!("{} `{field}`", path.display()),
    })
}

/// A component whose files carry no version: version 1 when present (every build so far
/// wrote the same format).
fn unmarked(path: &Path) -> FoundVersion {
    if path.exists() {
        FoundVersion {
            version: Some(1),
            source: format!("{} (no version marker: version 1)", path.display()),
        }
    } else {
        absent(path)
    }
}

/// The projection store's `meta` / `format_version` and its projections (RocksDB opened
/// read-only, every column family).
fn store_version(data_dir: &Path) -> Result<(FoundVersion, Vec<String>), FormatError> {
    use hearth_projections::format::{decode_u32, CF_META, META_FORMAT_VERSION, RESERVED_NAMES};
    let dir = store_dir(data_dir);
    if !dir.join("CURRENT").exists() {
        return Ok((absent(&dir), Vec::new()));
    }
    let bad = |e: rocksdb::Error| FormatError::unreadable(&dir, e.to_string());
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, &dir).map_err(bad)?;
    let db = rocksdb::DB::open_cf_for_read_only(&opts, &dir, &cfs, false).map_err(bad)?;
    let mut projections: Vec<String> = cfs
        .iter()
        .filter(|n| !RESERVED_NAMES.contains(&n.as_str()))
        .cloned()
        .collect();
    projections.sort();
    let meta = db
        .cf_handle(CF_META)
        .ok_or_else(|| FormatError::unreadable(&dir, "no `meta` column family"))?;
    let version = match db.get_cf(&meta, META_FORMAT_VERSION).map_err(bad)? {
        Some(v) => decode_u32(&v).ok_or_else(|| {
            FormatError::unreadable(&dir, format!("`format_version` of {} bytes", v.len()))
        })?,
        None => {
            return Err(FormatError::unreadable(
                &dir,
                "no `format_version` in `meta`",
            ))
        }
    };
    Ok((
        FoundVersion {
            version: Some(version),
            source: format!("{} meta/format_version", dir.display()),
        },
        projections,
    ))
}

fn read_prefix(path: &Path, buf: &mut [u8]) -> Result<usize, FormatError> {
    let mut f = fs::File::open(path).map_err(FormatError::io(path))?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).map_err(FormatError::io(path))? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        assert_eq!(
            dir_state(&d.join("missing")).expect("state"),
            DirState::Missing
        );
        assert_eq!(dir_state(d).expect("state"), DirState::Fresh);
        fs::write(d.join(layout::IDENTITY_KEY), b"key").expect("write");
        fs::create_dir(d.join(layout::LOG_DIR)).expect("mkdir");
        assert_eq!(
            dir_state(d).expect("state"),
            DirState::Fresh,
            "an identity and an empty log directory are not node data"
        );
        fs::write(d.join(layout::CLUSTER_FILE), br#"{"format":1}"#).expect("write");
        assert_eq!(dir_state(d).expect("state"), DirState::PreManifest);
        FormatManifest::current(vec![]).store(d).expect("store");
        assert!(matches!(
            dir_state(d).expect("state"),
            DirState::Manifest(_)
        ));
    }

    #[test]
    fn reads_versions_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::write(d.join(layout::CLUSTER_FILE), br#"{"format":1}"#).expect("write");
        fs::write(d.join(layout::PEER_LIST), br#"{"version":5}"#).expect("write");
        fs::create_dir(d.join(layout::LOG_DIR)).expect("mkdir");
        let mut seg = hearth_log::format::SEGMENT_MAGIC.to_vec();
        seg.extend_from_slice(&1u32.to_le_bytes());
        seg.resize(4096, 0);
        fs::write(
            d.join("log").join(hearth_log::format::segment_name(1)),
            &seg,
        )
        .expect("seg");
        fs::write(
            d.join("log").join(hearth_log::format::segment_name(2)),
            [0u8; 4096],
        )
        .expect("unfinished seg");
        let found = found_versions(d).expect("found");
        let v = |n: &str| found.components[n].version;
        assert_eq!(v("log_segment"), Some(1));
        assert_eq!(v("cluster_file"), Some(1));
        assert_eq!(v("peer_list"), Some(5));
        assert_eq!(v("projection_store"), None);
        assert_eq!(v("identity_key"), None);
        assert_eq!(
            found.newer(),
            Some(("peer_list".into(), 5, crate::versions::PEER_LIST_FORMAT))
        );
        fs::write(d.join(layout::CLUSTER_FILE), b"[]").expect("write");
        assert!(found_versions(d).is_err());
    }
}
