//! The snapshot stream: what [`ProjectionStateMachine`](crate::ProjectionStateMachine) sends
//! to a follower, and keeps as its current snapshot. One byte stream holding a RocksDB
//! checkpoint of the projection store and the metadata that goes with it ([`SnapshotInfo`]).
//!
//! Format version 1 (all integers little-endian):
//!
//! | field | size |
//! |---|---|
//! | magic [`SNAPSHOT_MAGIC`] (`HRTHSNAP`) | 8 |
//! | format version [`SNAPSHOT_VERSION`] | u32 |
//! | header length `h` (≤ [`MAX_HEADER_LEN`]) | u32 |
//! | header: [`SnapshotInfo`] as JSON | `h` |
//! | file count `n` | u32 |
//! | `n` times: name length `l` (1..=255) u32, name (a plain UTF-8 file name), content length `c` u64, content | … |
//! | blake3 (`derive_key` mode, context [`CHECKSUM_CONTEXT`]) of every byte before it | 32 |
//!
//! Files are the checkpoint directory's regular files in name order (RocksDB checkpoints are
//! flat), so the same checkpoint always gives the same bytes. The checksum is verified before
//! anything else is parsed; every defect is a typed [`SnapshotError`], never a panic.
//!
//! TODO(cluster issue): the whole stream is built and held in memory (`SnapshotData` is a
//! `Cursor<Vec<u8>>`), which is fine for the small stores of tests but not for large ones: large
//! snapshots need a file-backed `SnapshotData` and a streaming encoder/decoder (the framing
//! already allows it: lengths precede contents and the checksum is a trailer).

use crate::error::SnapshotError;
use crate::types::{LogId, SnapshotMeta, StoredMembership};
use hearth_projections::Digests;
use serde::{Deserialize, Serialize};

/// First bytes of every snapshot stream.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"HRTHSNAP";
/// Newest snapshot stream format this build reads, and the one it writes.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Largest header accepted, in bytes.
pub const MAX_HEADER_LEN: u32 = 1 << 20;
/// Longest file name accepted, in bytes.
pub const MAX_NAME_LEN: u32 = 255;
/// blake3 `derive_key` context of the stream checksum.
pub const CHECKSUM_CONTEXT: &str = "hearth-raft 2026-05 snapshot stream v1";

/// A snapshot's metadata: what openraft needs ([`SnapshotInfo::meta`]) and what an auditor or
/// the log layer needs (digests, chain head).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// openraft's snapshot id: `term-node-index-<16 hex digits of a hash of the state>`
    /// (`empty-…` before the first entry). The same state gives the same id.
    pub snapshot_id: String,
    /// The last log id the snapshot includes.
    pub last_log_id: Option<LogId>,
    /// The last membership the snapshot includes.
    pub last_membership: StoredMembership,
    /// Canonical digests of every table of the projection store in the snapshot
    /// ([`hearth_projections::ProjectionStore::digests`]); checked on install.
    pub digests: Digests,
    /// The log's chain hash through `last_log_id`, when the builder knew it (see
    /// [`ProjectionStateMachine::set_chain_head_source`](crate::ProjectionStateMachine::set_chain_head_source)):
    /// a node that installs the snapshot and purges its log restarts its chain from it.
    pub chain_head: Option<[u8; 32]>,
}

impl SnapshotInfo {
    /// openraft's view of it.
    pub fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.last_log_id,
            last_membership: self.last_membership.clone(),
            snapshot_id: self.snapshot_id.clone(),
        }
    }

    /// `(index, term)` of the last log id, as the projection store records it.
    pub fn applied(&self) -> Option<(u64, u64)> {
        self.last_log_id.map(|id| (id.index, id.leader_id.term))
    }
}

/// One file of a snapshot stream, borrowed from the stream or from the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotFile<'a> {
    /// Plain file name (no directory part).
    pub name: &'a str,
    /// Its contents.
    pub data: &'a [u8],
}

/// A decoded, verified snapshot stream; the files borrow from the stream.
#[derive(Debug, Clone)]
pub struct DecodedSnapshot<'a> {
    /// The metadata.
    pub info: SnapshotInfo,
    /// The checkpoint's files, in name order.
    pub files: Vec<SnapshotFile<'a>>,
}

/// Checks that `name` is a plain file name: non-empty, at most [`MAX_NAME_LEN`] bytes, no path
/// separator, not `.` or `..`, no NUL.
fn check_name(name: &str) -> Result<(), SnapshotError> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME_LEN as usize
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(())
    } else {
        Err(SnapshotError::BadFileName(name.to_owned()))
    }
}

fn checksum(bytes: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

/// Encodes a snapshot stream. `files` must have plain, unique names; they are written in name
/// order.
pub fn encode_snapshot(
    info: &SnapshotInfo,
    files: &[SnapshotFile<'_>],
) -> Result<Vec<u8>, SnapshotError> {
    let header = serde_json::to_vec(info).map_err(SnapshotError::Header)?;
    let header_len = u32::try_from(header.len())
        .ok()
        .filter(|len| *len <= MAX_HEADER_LEN)
        .ok_or_else(|| SnapshotError::Framing(format!("header of {} bytes", header.len())))?;
    let mut sorted: Vec<&SnapshotFile<'_>> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    for pair in sorted.windows(2) {
        if let [a, b] = pair {
            if a.name == b.name {
                return Err(SnapshotError::BadFileName(a.name.to_owned()));
            }
        }
    }
    let count = u32::try_from(sorted.len())
        .map_err(|_| SnapshotError::Framing(format!("{} files", sorted.len())))?;
    let total: usize = sorted
        .iter()
        .map(|f| 12 + f.name.len() + f.data.len())
        .sum();
    let mut out = Vec::with_capacity(8 + 8 + header.len() + 4 + total + 32);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&count.to_le_bytes());
    for file in sorted {
        check_name(file.name)?;
        // check_name bounds the name to MAX_NAME_LEN bytes.
        let name_len = u32::try_from(file.name.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(file.name.as_bytes());
        out.extend_from_slice(&(file.data.len() as u64).to_le_bytes());
        out.extend_from_slice(file.data);
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

/// Reads fields off the front of a byte slice; running short is [`SnapshotError::Truncated`].
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &'static str, n: u64) -> Result<&'a [u8], SnapshotError> {
        let left = self.rest.len() as u64;
        let short = || SnapshotError::Truncated {
            what,
            need: n,
            left,
        };
        let n = usize::try_from(n).map_err(|_| short())?;
        if n > self.rest.len() {
            return Err(short());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(what, 4)?);
        Ok(u32::from_le_bytes(word))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(what, 8)?);
        Ok(u64::from_le_bytes(word))
    }
}

/// Verifies and decodes a snapshot stream: magic, version, checksum, header, then every file.
pub fn decode_snapshot(bytes: &[u8]) -> Result<DecodedSnapshot<'_>, SnapshotError> {
    let mut head = Reader { rest: bytes };
    if head.take("magic", 8)? != SNAPSHOT_MAGIC {
        return Err(SnapshotError::Magic);
    }
    let version = head.u32("format version")?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::Version {
            found: version,
            supported: SNAPSHOT_VERSION,
        });
    }
    if bytes.len() < 12 + 4 + 4 + 32 {
        return Err(SnapshotError::Truncated {
            what: "the smallest stream",
            need: 52,
            left: bytes.len() as u64,
        });
    }
    let (content, sum) = bytes.split_at(bytes.len() - 32);
    if checksum(content) != sum {
        return Err(SnapshotError::Checksum);
    }

    let mut r = Reader { rest: content };
    r.take("magic", 12)?;
    let header_len = r.u32("header length")?;
    if header_len > MAX_HEADER_LEN {
        return Err(SnapshotError::Framing(format!(
            "header of {header_len} bytes (at most {MAX_HEADER_LEN})"
        )));
    }
    let header = r.take("header", u64::from(header_len))?;
    let info: SnapshotInfo = serde_json::from_slice(header).map_err(SnapshotError::Header)?;
    let count = r.u32("file count")?;
    let mut files: Vec<SnapshotFile<'_>> = Vec::new();
    for _ in 0..count {
        let name_len = r.u32("file name length")?;
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(SnapshotError::Framing(format!(
                "file name of {name_len} bytes (1..={MAX_NAME_LEN})"
            )));
        }
        let name = r.take("file name", u64::from(name_len))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| SnapshotError::BadFileName(String::from_utf8_lossy(name).into_owned()))?;
        check_name(name)?;
        if let Some(prev) = files.last() {
            if prev.name >= name {
                return Err(SnapshotError::Framing(format!(
                    "file {name:?} after {:?}: names must be unique and in order",
                    prev.name
                )));
            }
        }
        let len = r.u64("file length")?;
        let data = r.take("file contents", len)?;
        files.push(SnapshotFile { name, data });
    }
    if !r.rest.is_empty() {
        return Err(SnapshotError::Framing(format!(
            "{} bytes after the last file",
            r.rest.len()
        )));
    }
    Ok(DecodedSnapshot { info, files })
}

/// The metadata of a snapshot stream, after verifying all of it.
pub fn snapshot_info(bytes: &[u8]) -> Result<SnapshotInfo, SnapshotError> {
    Ok(decode_snapshot(bytes)?.info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Membership;
    use openraft::CommittedLeaderId;
    use std::collections::{BTreeMap, BTreeSet};

    fn info() -> SnapshotInfo {
        let id = LogId::new(CommittedLeaderId::new(2, 1), 9);
        SnapshotInfo {
            snapshot_id: "2-1-9-00".into(),
            last_log_id: Some(id),
            last_membership: StoredMembership::new(
                Some(id),
                Membership::new(vec![BTreeSet::from([1, 2])], None),
            ),
            digests: BTreeMap::from([("counts-1".to_owned(), [7; 32])]),
            chain_head: Some([3; 32]),
        }
    }

    fn stream() -> Vec<u8> {
        let files = [
            SnapshotFile {
                name: "b.sst",
                data: b"bbbb",
            },
            SnapshotFile {
                name: "CURRENT",
                data: b"MANIFEST-000001\n",
            },
        ];
        encode_snapshot(&info(), &files).unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = stream();
        let decoded = decode_snapshot(&bytes).unwrap();
        assert_eq!(decoded.info, info());
        let names: Vec<_> = decoded.files.iter().map(|f| f.name).collect();
        assert_eq!(names, ["CURRENT", "b.sst"]);
        assert_eq!(decoded.files[1].data, b"bbbb");
        assert_eq!(snapshot_info(&bytes).unwrap().meta(), info().meta());
    }

    #[test]
    fn every_flip_and_truncation_is_a_typed_error() {
        let bytes = stream();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_snapshot(&bad).is_err(), "flip at {i}");
        }
        for len in 0..bytes.len() {
            assert!(
                decode_snapshot(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_snapshot(&longer).is_err());
    }

    #[test]
    fn checksummed_but_malformed_streams_are_refused() {
        let reseal = |mut body: Vec<u8>| {
            let sum = checksum(&body);
            body.extend_from_slice(&sum);
            body
        };
        let bytes = stream();
        let body = bytes[..bytes.len() - 32].to_vec();
        // Trailing garbage under a valid checksum.
        let mut extra = body.clone();
        extra.push(1);
        assert!(matches!(
            decode_snapshot(&reseal(extra)),
            Err(SnapshotError::Framing(_))
        ));
        // A file count larger than the stream.
        let header_len = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
        let mut count = body.clone();
        count[16 + header_len..20 + header_len].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_snapshot(&reseal(count)),
            Err(SnapshotError::Truncated { .. })
        ));
        // A path instead of a file name.
        let files = [SnapshotFile {
            name: "../x",
            data: b"",
        }];
        assert!(matches!(
            encode_snapshot(&info(), &files),
            Err(SnapshotError::BadFileName(_))
        ));
        let mut version = bytes.clone();
        version[8] = 9;
        assert!(matches!(
            decode_snapshot(&version),
            Err(SnapshotError::Version { found: 9, .. })
        ));
        assert!(matches!(
            decode_snapshot(b"nonsense"),
            Err(SnapshotError::Magic)
        ));
    }
}
