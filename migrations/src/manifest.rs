//! [`FormatManifest`]: `DATA/format.json`, the data directory's format version and the version
//! of each component, written atomically (temp file, fsync, rename, directory fsync) when a
//! node creates its data directory and by `hearth migrate`.
//!
//! Reading is lenient about what it does not know (unknown fields and components are kept or
//! ignored, never an error), so an older build can still read a newer manifest far enough to
//! say it is newer. A file that is not such JSON is [`FormatError::Unreadable`].

use crate::error::{build_name, FormatError};
use crate::layout::format_file;
use crate::versions::{current_components, Component, DATA_DIR_FORMAT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// What `format.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatManifest {
    /// The data directory's format ([`DATA_DIR_FORMAT`] when written by this build).
    pub data_dir_format: u32,
    /// Each component's version, by [`Component::name`].
    #[serde(default)]
    pub components: BTreeMap<String, u32>,
    /// The projections the store holds (versioned names, `blobs-3`); informational — the node
    /// rebuilds a missing projection at start and then updates this list.
    #[serde(default)]
    pub projections: Vec<String>,
    /// The build that last wrote the file (`hearth 0.1.0`).
    #[serde(default)]
    pub written_by: String,
}

/// How a manifest compares with this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This build's format.
    Current,
    /// Older: needs a migration from this data dir format.
    Older(u32),
    /// Newer than this build reads: what is newer, and what this build reads.
    Newer {
        /// `data dir format 2`, `component projection_store 3`.
        what: String,
        /// `data dir format 1`, `projection_store 2`.
        supported: String,
    },
}

impl FormatManifest {
    /// The manifest this build writes, for a store holding `projections`.
    pub fn current(projections: Vec<String>) -> FormatManifest {
        FormatManifest {
            data_dir_format: DATA_DIR_FORMAT,
            components: current_components(),
            projections,
            written_by: build_name(),
        }
    }

    /// How this manifest compares with this build: a newer data dir format or any newer (or
    /// unknown: a newer build's) component is [`Verdict::Newer`]; then an older data dir
    /// format is [`Verdict::Older`].
    pub fn verdict(&self) -> Verdict {
        if self.data_dir_format > DATA_DIR_FORMAT {
            return Verdict::Newer {
                what: format!("data dir format {}", self.data_dir_format),
                supported: format!("data dir format {DATA_DIR_FORMAT}"),
            };
        }
        for (name, &version) in &self.components {
            match Component::from_name(name) {
                Some(c) if version <= c.current() => {}
                Some(c) => {
                    return Verdict::Newer {
                        what: format!("component {name} version {version}"),
                        supported: format!("{name} version {}", c.current()),
                    }
                }
                None => {
                    return Verdict::Newer {
                        what: format!("component {name} (unknown to this build)"),
                        supported: format!("the components {}", known_names()),
                    }
                }
            }
        }
        if self.data_dir_format < DATA_DIR_FORMAT {
            Verdict::Older(self.data_dir_format)
        } else {
            Verdict::Current
        }
    }

    /// Reads `DATA/format.json`; `None` when there is none.
    pub fn load(data_dir: &Path) -> Result<Option<FormatManifest>, FormatError> {
        let path = format_file(data_dir);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FormatError::io(&path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| FormatError::unreadable(&path, format!("not a format manifest: {e}")))
    }

    /// Writes `DATA/format.json` crash-safely.
    pub fn store(&self, data_dir: &Path) -> Result<(), FormatError> {
        let path = format_file(data_dir);
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| FormatError::unreadable(&path, e.to_string()))?;
        bytes.push(b'\n');
        write_durably(&path, &bytes).map_err(FormatError::io(&path))
    }
}

fn known_names() -> String {
    Component::ALL
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replaces `path` with `bytes` crash-safely: `PATH.tmp` is written and fsynced, renamed over
/// `path`, and the parent directory fsynced. After a crash the file is either the old or the
/// new one, never a mix. (The node's other state files — cluster file, peer list — are written
/// with it too: they are formats of the data directory like the manifest.)
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    File::open(dir)?.sync_all()
}

pub(crate) fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(FormatManifest::load(dir.path()).expect("load"), None);
        let m = FormatManifest::current(vec!["counts-1".into()]);
        m.store(dir.path()).expect("store");
        assert_eq!(
            FormatManifest::load(dir.path()).expect("load"),
            Some(m.clone())
        );
        assert!(!dir.path().join("format.json.tmp").exists());
        assert_eq!(m.verdict(), Verdict::Current);
    }

    #[test]
    fn newer_and_older_are_told_apart() {
        let mut m = FormatManifest::current(vec![]);
        m.data_dir_format = DATA_DIR_FORMAT + 1;
        assert!(matches!(m.verdict(), Verdict::Newer { what, .. } if what.contains("format 2")));

        let mut m = FormatManifest::current(vec![]);
        m.components.insert("projection_store".into(), 99);
        assert!(
            matches!(m.verdict(), Verdict::Newer { what, .. } if what.contains("projection_store version 99"))
        );

        let mut m = FormatManifest::current(vec![]);
        m.components.insert("quantum_index".into(), 1);
        assert!(
            matches!(m.verdict(), Verdict::Newer { what, .. } if what.contains("quantum_index"))
        );

        let mut m = FormatManifest::current(vec![]);
        m.data_dir_format = 0;
        assert_eq!(m.verdict(), Verdict::Older(0));
    }

    #[test]
    fn unknown_fields_are_read_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            format_file(dir.path()),
            br#"{"data_dir_format": 7, "future": true}"#,
        )
        .expect("write");
        let m = FormatManifest::load(dir.path())
            .expect("load")
            .expect("some");
        assert_eq!(m.data_dir_format, 7);
        std::fs::write(format_file(dir.path()), b"{nope").expect("write");
        let e = FormatManifest::load(dir.path()).expect_err("garbage");
        assert!(e.to_string().contains("format.json"), "{e}");
    }
}
