//! [`SignedSnapshot`]: a raft snapshot archived next to its digests, signed by the node that
//! kept it, so an audit can start from it when the log before it is gone.
//!
//! With `--retention purge` a node keeps every snapshot that becomes current (built, or
//! installed from the leader) in `DATA/archive/snapshots/` before raft may purge the entries it
//! covers ([`archive`]): the snapshot stream as raft sent or built it (`I-T.snapshot`, `I` the
//! last index zero-padded to 20 digits, `T` its term) and `I-T.signed.json`, a
//! [`SignedSnapshot`]. The newest [`KEEP`] are kept.
//!
//! The signature is ed25519 by the node's identity key over [`SignedSnapshot::signing_hash`]:
//! blake3 in `derive_key` mode (context [`SIGNING_CONTEXT`]) of the last index and term (u64
//! LE), the log's chain hash through that index, blake3 of the stream, the number of tables
//! (u32 LE), then each table in name order as `len(name) u32 LE ‖ name ‖ digest`. So it binds
//! the exact stream bytes, the state's canonical digests and the place in the hash chain.
//!
//! [`SignedSnapshot::open_verified`] checks everything before the audit trusts any of it: the
//! signature and that the key is the signer's PeerId, that the signer is a member in the
//! snapshot's own membership (or the audited node itself, which installed it), the stream's hash and checksum, that its header says what was
//! signed, and — after unpacking its RocksDB checkpoint into a scratch directory — that the
//! state's digests, recomputed, are the signed ones.
//!
//! What it is **not**: a trust anchor by itself. It proves that a member signed this state at
//! this point of the chain; the audit then proves the rest of the log on top of it.

use crate::hex;
use hearth_projections::{Digests, Projection, ProjectionStore};
use hearth_raft::snapshot::decode_snapshot;
use hearth_raft::SnapshotInfo;
use libp2p_identity::{ed25519, PeerId, PublicKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `format` of every signed-snapshot file this build writes and reads.
pub const FORMAT: &str = "hearth.signed-snapshot.v1";
/// blake3 `derive_key` context of [`SignedSnapshot::signing_hash`].
pub const SIGNING_CONTEXT: &str = "hearth 2026-11 signed snapshot digests v1";
/// Archived snapshots kept (the newest); older ones are removed when a new one is archived.
pub const KEEP: usize = 4;
/// Suffix of the signed file.
const SIGNED_SUFFIX: &str = ".signed.json";
/// Suffix of the stream file.
const STREAM_SUFFIX: &str = ".snapshot";

/// What can be wrong with a signed snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SignedSnapshotError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signed file is not a signed snapshot this build reads.
    #[error("{path}: not a signed snapshot ({why})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The claim does not check out: a bad signature, a stream or state other than the signed
    /// one, a signer that is not a member.
    #[error("{path}: {why}")]
    Forged {
        /// The signed file.
        path: PathBuf,
        /// What does not match.
        why: String,
    },
    /// The snapshot has no last log id or chain hash: it cannot start an audit.
    #[error("snapshot {0} has no last log id or no chain hash: not archived")]
    Unplaced(String),
    /// The projection store in it could not be opened or read.
    #[error("{path}: the snapshot's projection store: {source}")]
    Store {
        /// The signed file.
        path: PathBuf,
        /// Why.
        source: hearth_projections::ProjectionError,
    },
}

impl SignedSnapshotError {
    /// Whether the file was read and its claim is false (a forgery or damage), as opposed to
    /// missing, unreadable or of another format.
    pub fn is_forged(&self) -> bool {
        matches!(self, SignedSnapshotError::Forged { .. })
    }
}

type Result<T> = std::result::Result<T, SignedSnapshotError>;

/// The signed file `I-T.signed.json`: what was signed, by whom, and the signature (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSnapshot {
    /// [`FORMAT`].
    pub format: String,
    /// The stream file's name, next to this file.
    pub snapshot_file: String,
    /// blake3 of the stream file (hex).
    pub stream_blake3: String,
    /// The last log index the snapshot includes.
    pub last_index: u64,
    /// Its term.
    pub last_term: u64,
    /// The log's chain hash through `last_index` (hex).
    pub chain_head: String,
    /// Canonical digest of every table of the snapshot's projection store (hex).
    pub digests: BTreeMap<String, String>,
    /// The signer's PeerId.
    pub signer: String,
    /// The signer's raw ed25519 public key (hex).
    pub public_key: String,
    /// ed25519 signature of [`SignedSnapshot::signing_hash`] (hex).
    pub signature: String,
}

fn bytes32(what: &str, hex_str: &str) -> std::result::Result<[u8; 32], String> {
    hex::decode(hex_str)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("{what} is not 32 bytes of hex"))
}

impl SignedSnapshot {
    /// The 32 bytes that are signed; see the module docs. Errors name a malformed field.
    pub fn signing_hash(&self) -> std::result::Result<[u8; 32], String> {
        let mut h = blake3::Hasher::new_derive_key(SIGNING_CONTEXT);
        h.update(&self.last_index.to_le_bytes());
        h.update(&self.last_term.to_le_bytes());
        h.update(&bytes32("chain_head", &self.chain_head)?);
        h.update(&bytes32("stream_blake3", &self.stream_blake3)?);
        h.update(&(self.digests.len() as u32).to_le_bytes());
        for (name, digest) in &self.digests {
            h.update(&(name.len() as u32).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&bytes32(&format!("digest of {name}"), digest)?);
        }
        Ok(*h.finalize().as_bytes())
    }

    /// Signs the snapshot `info` whose stream is `stream` (written as `snapshot_file`) with
    /// `key`.
    pub fn sign(
        key: &ed25519::Keypair,
        info: &SnapshotInfo,
        stream: &[u8],
        snapshot_file: &str,
    ) -> Result<SignedSnapshot> {
        let (Some(id), Some(chain)) = (info.last_log_id, info.chain_head) else {
            return Err(SignedSnapshotError::Unplaced(info.snapshot_id.clone()));
        };
        let public = key.public();
        let mut signed = SignedSnapshot {
            format: FORMAT.into(),
            snapshot_file: snapshot_file.into(),
            stream_blake3: blake3::hash(stream).to_hex().to_string(),
            last_index: id.index,
            last_term: id.leader_id.term,
            chain_head: hex::encode(&chain),
            digests: hex_digests(&info.digests),
            signer: PublicKey::from(public.clone()).to_peer_id().to_base58(),
            public_key: hex::encode(&public.to_bytes()),
            signature: String::new(),
        };
        let hash = signed
            .signing_hash()
            .map_err(|why| SignedSnapshotError::Malformed {
                path: snapshot_file.into(),
                why,
            })?;
        signed.signature = hex::encode(&key.sign(&hash));
        Ok(signed)
    }

    /// Checks the signature, and that the key is the signer's; returns the signer.
    pub fn check_signature(&self, path: &Path) -> Result<PeerId> {
        let forged = |why: String| SignedSnapshotError::Forged {
            path: path.to_path_buf(),
            why,
        };
        let hash = self.signing_hash().map_err(forged)?;
        let key = hex::decode(&self.public_key)
            .and_then(|k| ed25519::PublicKey::try_from_bytes(&k).ok())
            .ok_or_else(|| forged("public_key is not an ed25519 key".into()))?;
        let public = PublicKey::from(key);
        let signer: PeerId = self
            .signer
            .parse()
            .map_err(|_| forged(format!("signer {:?} is not a PeerId", self.signer)))?;
        if public.to_peer_id() != signer {
            return Err(forged(format!(
                "public_key is not the key of the signer {signer}"
            )));
        }
        let sig = hex::decode(&self.signature).unwrap_or_default();
        if !public.verify(&hash, &sig) {
            return Err(forged(format!(
                "bad signature by {signer}: the signed fields were changed or the signature \
                 forged"
            )));
        }
        Ok(signer)
    }

    /// Reads a signed file.
    pub fn load(path: &Path) -> Result<SignedSnapshot> {
        let bytes = std::fs::read(path).map_err(|source| SignedSnapshotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let signed: SignedSnapshot =
            serde_json::from_slice(&bytes).map_err(|e| SignedSnapshotError::Malformed {
                path: path.to_path_buf(),
                why: e.to_string(),
            })?;
        if signed.format != FORMAT {
            return Err(SignedSnapshotError::Malformed {
                path: path.to_path_buf(),
                why: format!("format {:?}, this build reads {FORMAT:?}", signed.format),
            });
        }
        Ok(signed)
    }

    /// The chain hash it claims through its last index (unchecked until
    /// [`open_verified`](Self::open_verified)).
    pub fn chain(&self) -> Option<[u8; 32]> {
        bytes32("chain_head", &self.chain_head).ok()
    }

    /// Checks the signed snapshot at `path` (see the module docs) and unpacks its projection
    /// store into `store_dir` (missing or empty), opened with `projections`. The signer must be
    /// a member in the snapshot's membership, or `this_node` (the audited node, which may have
    /// joined after the snapshot and installed it). Returns the signed file, its signer, and
    /// the store, which has applied exactly the signed index.
    pub fn open_verified(
        path: &Path,
        store_dir: &Path,
        projections: Vec<Arc<dyn Projection>>,
        this_node: Option<&PeerId>,
    ) -> Result<(SignedSnapshot, PeerId, ProjectionStore)> {
        let signed = Self::load(path)?;
        let signer = signed.check_signature(path)?;
        let forged = |why: String| SignedSnapshotError::Forged {
            path: path.to_path_buf(),
            why,
        };
        let plain = !signed.snapshot_file.is_empty()
            && !signed.snapshot_file.contains(['/', '\\', '\0'])
            && signed.snapshot_file != ".."
            && signed.snapshot_file != ".";
        if !plain {
            return Err(forged(format!(
                "snapshot_file {:?} is not a plain file name",
                signed.snapshot_file
            )));
        }
        let stream_path = parent(path).join(&signed.snapshot_file);
        let stream = std::fs::read(&stream_path).map_err(|source| SignedSnapshotError::Io {
            path: stream_path.clone(),
            source,
        })?;
        if blake3::hash(&stream).to_hex().as_str() != signed.stream_blake3 {
            return Err(forged(format!(
                "{} is not the signed stream (its blake3 differs)",
                stream_path.display()
            )));
        }
        let decoded = decode_snapshot(&stream)
            .map_err(|e| forged(format!("{}: {e}", stream_path.display())))?;
        let info = &decoded.info;
        let header_matches = info.applied() == Some((signed.last_index, signed.last_term))
            && info.chain_head.map(|c| hex::encode(&c)).as_deref()
                == Some(signed.chain_head.as_str())
            && hex_digests(&info.digests) == signed.digests;
        if !header_matches {
            return Err(forged(
                "the stream's header does not say what was signed (index, term, chain or \
                 digests)"
                    .into(),
            ));
        }
        let member = info
            .last_membership
            .membership()
            .nodes()
            .any(|(_, node)| node.peer_id == signed.signer);
        if !member && this_node != Some(&signer) {
            return Err(forged(format!(
                "the signer {signer} is neither a member in the snapshot's membership nor this \
                 node"
            )));
        }
        let store_error = |source| SignedSnapshotError::Store {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(store_dir).map_err(|source| SignedSnapshotError::Io {
            path: store_dir.to_path_buf(),
            source,
        })?;
        for file in &decoded.files {
            let to = store_dir.join(file.name);
            std::fs::write(&to, file.data)
                .map_err(|source| SignedSnapshotError::Io { path: to, source })?;
        }
        let store = ProjectionStore::open(store_dir, projections).map_err(store_error)?;
        let (applied, digests) = store.digests_with_applied().map_err(store_error)?;
        if applied != Some((signed.last_index, signed.last_term)) {
            return Err(forged(format!(
                "the snapshot's store has applied {applied:?}, not the signed index"
            )));
        }
        let computed = hex_digests(&digests);
        if computed != signed.digests {
            let table = computed
                .iter()
                .find(|(name, d)| signed.digests.get(*name) != Some(d))
                .map(|(name, _)| name.clone())
                .or_else(|| {
                    signed
                        .digests
                        .keys()
                        .find(|n| !computed.contains_key(*n))
                        .cloned()
                })
                .unwrap_or_default();
            return Err(forged(format!(
                "the snapshot's state is not the signed state: table {table} digests \
                 differently"
            )));
        }
        Ok((signed, signer, store))
    }
}

/// The `I-T` stem of a signed file's name (empty for any other name).
fn stem_of(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(SIGNED_SUFFIX))
        .unwrap_or_default()
}

/// The directory `path` is in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn hex_digests(digests: &Digests) -> BTreeMap<String, String> {
    digests
        .iter()
        .map(|(name, d)| (name.clone(), hex::encode(d)))
        .collect()
}

/// The signed files in `dir` as `(last index, path)`, in index order; none when `dir` does not
/// exist.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SignedSnapshotError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let index = stem_of(&path)
            .split('-')
            .next()
            .and_then(|i| i.parse::<u64>().ok());
        if let Some(index) = index {
            found.push((index, path)); // other names have an empty stem: no index
        }
    }
    found.sort();
    Ok(found)
}

/// Archives the snapshot `info` (stream `stream`) into `dir`, signed with `key`: the stream,
/// then the signed file, each written and fsynced under a temporary name and renamed, then the
/// directory fsynced; older archived snapshots beyond the newest [`KEEP`] are removed. Returns
/// the signed file's path.
pub fn archive(
    dir: &Path,
    key: &ed25519::Keypair,
    info: &SnapshotInfo,
    stream: &[u8],
) -> Result<PathBuf> {
    let Some(id) = info.last_log_id else {
        return Err(SignedSnapshotError::Unplaced(info.snapshot_id.clone()));
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SignedSnapshotError::Io { path, source }
    };
    let stem = format!("{:020}-{}", id.index, id.leader_id.term);
    let stream_name = format!("{stem}{STREAM_SUFFIX}");
    let signed = SignedSnapshot::sign(key, info, stream, &stream_name)?;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let parent = parent(dir);
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    let stream_path = dir.join(&stream_name);
    crate::fsutil::write_durably(&stream_path, stream).map_err(io(&stream_path))?;
    let signed_path = dir.join(format!("{stem}{SIGNED_SUFFIX}"));
    let json = serde_json::to_vec_pretty(&signed).map_err(|e| SignedSnapshotError::Malformed {
        path: signed_path.clone(),
        why: e.to_string(),
    })?;
    crate::fsutil::write_durably(&signed_path, &json).map_err(io(&signed_path))?;
    let all = list(dir)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(KEEP)) {
        // The signed file first: a stream without one is never used.
        std::fs::remove_file(old).map_err(io(old))?;
        let old_stream = old.with_file_name(format!("{}{STREAM_SUFFIX}", stem_of(old)));
        if let Err(e) = std::fs::remove_file(&old_stream) {
            tracing::warn!(path = %old_stream.display(), error = %e, "could not remove an old archived snapshot");
        }
    }
    Ok(signed_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_projections::CommittedEntry;
    use hearth_raft::snapshot::{encode_snapshot, SnapshotFile};
    use hearth_raft::{HearthNode, LogId, Membership, StoredMembership};
    use openraft::CommittedLeaderId;
    use std::collections::BTreeSet;

    /// A real snapshot of a node's projections through `index`, naming `members` as voters.
    fn snapshot(dir: &Path, index: u64, members: &[&ed25519::Keypair]) -> (SnapshotInfo, Vec<u8>) {
        let store_dir = dir.join(format!("live-{index}"));
        let store =
            ProjectionStore::open(&store_dir, crate::node::node_projections()).expect("store");
        let entries: Vec<_> = (1..=index).map(|i| CommittedEntry::other(i, 2)).collect();
        store.apply_all(entries).expect("apply");
        let ckpt = dir.join(format!("ckpt-{index}"));
        store.checkpoint(&ckpt).expect("checkpoint");
        let digests = store.digests().expect("digests");
        let mut names: Vec<String> = std::fs::read_dir(&ckpt)
            .expect("read checkpoint")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        let data: Vec<Vec<u8>> = names
            .iter()
            .map(|n| std::fs::read(ckpt.join(n)).expect("read"))
            .collect();
        let files: Vec<SnapshotFile<'_>> = names
            .iter()
            .zip(&data)
            .map(|(name, data)| SnapshotFile { name, data })
            .collect();
        let id = LogId::new(CommittedLeaderId::new(2, 1), index);
        let nodes: BTreeMap<u64, HearthNode> = members
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let peer = PublicKey::from(k.public()).to_peer_id().to_base58();
                (
                    i as u64 + 1,
                    HearthNode {
                        peer_id: peer,
                        ..HearthNode::default()
                    },
                )
            })
            .collect();
        let voters: BTreeSet<u64> = nodes.keys().copied().collect();
        let info = SnapshotInfo {
            snapshot_id: format!("snap-{index}"),
            last_log_id: Some(id),
            last_membership: StoredMembership::new(Some(id), Membership::new(vec![voters], nodes)),
            digests,
            chain_head: Some([index as u8; 32]),
        };
        let stream = encode_snapshot(&info, &files).expect("encode");
        (info, stream)
    }

    fn rewrite(path: &Path, f: impl FnOnce(&mut SignedSnapshot)) {
        let mut signed = SignedSnapshot::load(path).expect("load");
        f(&mut signed);
        std::fs::write(path, serde_json::to_vec(&signed).expect("json")).expect("write");
    }

    #[test]
    fn an_archived_snapshot_opens_verified_and_every_forgery_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = ed25519::Keypair::generate();
        let (info, stream) = snapshot(dir.path(), 5, &[&key]);
        let archive_dir = dir.path().join("archive");
        let signed_path = archive(&archive_dir, &key, &info, &stream).expect("archive");
        assert_eq!(
            list(&archive_dir).expect("list"),
            vec![(5, signed_path.clone())]
        );

        let (signed, signer, store) = SignedSnapshot::open_verified(
            &signed_path,
            &dir.path().join("open-1"),
            crate::node::node_projections(),
            None,
        )
        .expect("verified");
        assert_eq!(signer, PublicKey::from(key.public()).to_peer_id());
        assert_eq!((signed.last_index, signed.last_term), (5, 2));
        assert_eq!(signed.chain(), Some([5; 32]));
        assert_eq!(store.applied(), Some((5, 2)));
        assert_eq!(store.digests().expect("digests"), info.digests);
        drop(store);

        let forged = |n: usize, why: &str| {
            let err = SignedSnapshot::open_verified(
                &signed_path,
                &dir.path().join(format!("open-forged-{n}")),
                crate::node::node_projections(),
                None,
            )
            .expect_err("forged");
            assert!(err.is_forged(), "{err}");
            assert!(err.to_string().contains(why), "{err}");
        };
        let good = std::fs::read(&signed_path).expect("read");

        // A signed field changed: the signature no longer checks.
        rewrite(&signed_path, |s| {
            let d = s.digests.values_mut().next().expect("a table");
            d.replace_range(0..2, if d.starts_with("00") { "11" } else { "00" });
        });
        forged(1, "bad signature");
        std::fs::write(&signed_path, &good).expect("restore");

        // Re-signed by a key that is not a member.
        let stranger = ed25519::Keypair::generate();
        let resigned =
            SignedSnapshot::sign(&stranger, &info, &stream, &signed.snapshot_file).expect("sign");
        std::fs::write(&signed_path, serde_json::to_vec(&resigned).expect("json")).expect("write");
        forged(2, "neither a member");
        // Unless it is the audited node itself (it installed the snapshot).
        let own = PublicKey::from(stranger.public()).to_peer_id();
        SignedSnapshot::open_verified(
            &signed_path,
            &dir.path().join("open-own"),
            crate::node::node_projections(),
            Some(&own),
        )
        .expect("this node's own signature");
        std::fs::write(&signed_path, &good).expect("restore");

        // Another key claimed under the signer's PeerId.
        rewrite(&signed_path, |s| {
            s.public_key = hex::encode(&stranger.public().to_bytes());
        });
        forged(3, "not the key of the signer");
        std::fs::write(&signed_path, &good).expect("restore");

        // The stream changed under its signature.
        let stream_path = archive_dir.join(&signed.snapshot_file);
        let mut bad = stream.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&stream_path, &bad).expect("write");
        forged(4, "not the signed stream");
        std::fs::write(&stream_path, &stream).expect("restore");

        // A header that lies about the state, signed by a member, is still caught: the
        // unpacked store's digests are recomputed.
        let mut lying = info.clone();
        lying.digests.values_mut().for_each(|d| d[0] ^= 1);
        let files = decode_snapshot(&stream).expect("decode").files;
        let lying_stream = encode_snapshot(&lying, &files).expect("encode");
        let lying_path =
            archive(&dir.path().join("lying"), &key, &lying, &lying_stream).expect("archive");
        let err = SignedSnapshot::open_verified(
            &lying_path,
            &dir.path().join("open-lying"),
            crate::node::node_projections(),
            None,
        )
        .expect_err("lying");
        assert!(
            err.is_forged() && err.to_string().contains("not the signed state"),
            "{err}"
        );

        // Not a signed snapshot at all: malformed, not forged.
        std::fs::write(&signed_path, b"{}").expect("write");
        let err = SignedSnapshot::load(&signed_path).expect_err("malformed");
        assert!(!err.is_forged(), "{err}");
    }

    #[test]
    fn archiving_keeps_the_newest_few() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = ed25519::Keypair::generate();
        let archive_dir = dir.path().join("archive");
        for index in 1..=(KEEP as u64 + 2) {
            let (info, stream) = snapshot(dir.path(), index, &[&key]);
            archive(&archive_dir, &key, &info, &stream).expect("archive");
        }
        let kept: Vec<u64> = list(&archive_dir)
            .expect("list")
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(kept, (3..=KEEP as u64 + 2).collect::<Vec<_>>());
        let streams = std::fs::read_dir(&archive_dir)
            .expect("read")
            .filter(|e| {
                e.as_ref()
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(STREAM_SUFFIX)
            })
            .count();
        assert_eq!(
            streams, KEEP,
            "each removed signed file took its stream along"
        );
    }
}
