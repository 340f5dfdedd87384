//! The node's identity: an ed25519 keypair kept in `DATA_DIR/identity.key`.
//!
//! Its libp2p [`PeerId`] names the node everywhere (in every event, in raft's node info, on the
//! wire). The file holds the keypair in libp2p's protobuf encoding
//! ([`Keypair::to_protobuf_encoding`]) and must have mode `0600`.
//!
//! * [`NodeIdentity::load_or_create`] — what `hearth serve` calls at start: loads the key, or
//!   creates one crash-safely (`identity.key.tmp` created `0600`, written, fsynced, renamed to
//!   `identity.key`, directory fsynced), under an exclusive lock on the data directory so two
//!   processes starting together cannot end up with different keys.
//! * [`NodeIdentity::load`] — read-only (`hearth id`): never creates anything.
//!
//! A key file that cannot be read, does not decode, is not ed25519 or is readable by anyone but
//! its owner is refused with an [`IdentityError`] naming the file; disk bytes are never trusted
//! (nothing here panics on them).

use libp2p_identity::{ed25519, Keypair, PeerId};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::paths::identity_path;

/// The only permissions an identity key file may have.
pub const KEY_FILE_MODE: u32 = 0o600;

/// A key file larger than this is not a keypair (an ed25519 one encodes to 68 bytes).
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Why the node identity could not be loaded or created. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading, writing or syncing `path` failed.
    #[error("identity key {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a keypair in libp2p's protobuf encoding.
    #[error("identity key {} is malformed: {reason}", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is readable or writable by others than its owner (or not by its owner).
    #[error(
        "identity key {} has permissions {mode:03o}, expected 600 (fix with: chmod 600 {})",
        path.display(),
        path.display()
    )]
    BadPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o777`).
        mode: u32,
    },
    /// The file holds a valid key of another type; a hearth node's key is ed25519.
    #[error("identity key {} is not an ed25519 key", path.display())]
    NotEd25519 {
        /// The key file.
        path: PathBuf,
    },
}

impl IdentityError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        IdentityError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The node's ed25519 keypair.
#[derive(Clone)]
pub struct NodeIdentity {
    keypair: Keypair,
    /// The same key as its ed25519 type, whose signing cannot fail.
    ed25519: ed25519::Keypair,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret half.
        f.debug_struct("NodeIdentity")
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

impl NodeIdentity {
    /// A fresh random identity (not stored anywhere).
    pub fn generate() -> Self {
        Self::from_ed25519(ed25519::Keypair::generate())
    }

    fn from_ed25519(ed25519: ed25519::Keypair) -> Self {
        NodeIdentity {
            keypair: Keypair::from(ed25519.clone()),
            ed25519,
        }
    }

    /// Loads the identity of the data directory `data_dir`, creating (and durably storing) a new
    /// one if it has none. Returns the identity and whether it was created just now.
    ///
    /// `data_dir` must exist.
    pub fn load_or_create(data_dir: &Path) -> Result<(NodeIdentity, bool), IdentityError> {
        let path = identity_path(data_dir);
        if let Some(id) = Self::load(data_dir)? {
            return Ok((id, false));
        }
        // Serialise creators: another process may be creating it right now.
        let dir = File::open(data_dir).map_err(|e| IdentityError::io(data_dir, e))?;
        dir.lock().map_err(|e| IdentityError::io(data_dir, e))?;
        if let Some(id) = Self::load(data_dir)? {
            return Ok((id, false)); // the other process won
        }
        let id = Self::generate();
        let encoded = id
            .keypair
            .to_protobuf_encoding()
            .map_err(|e| IdentityError::Malformed {
                path: path.clone(),
                reason: format!("cannot encode the new key: {e}"),
            })?;
        write_durably(&dir, &path, &encoded)?;
        // Dropping `dir` releases the lock.
        Ok((id, true))
    }

    /// Loads the identity of the data directory `data_dir`; `Ok(None)` when it has none (or the
    /// directory does not exist). Never creates anything.
    pub fn load(data_dir: &Path) -> Result<Option<NodeIdentity>, IdentityError> {
        let path = identity_path(data_dir);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IdentityError::io(&path, e)),
        };
        let meta = file.metadata().map_err(|e| IdentityError::io(&path, e))?;
        if !meta.is_file() {
            return Err(IdentityError::Malformed {
                path,
                reason: "not a regular file".into(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode != KEY_FILE_MODE {
            return Err(IdentityError::BadPermissions { path, mode });
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(IdentityError::Malformed {
                path,
                reason: format!("{} bytes is too large for a key", meta.len()),
            });
        }
        let mut bytes = Vec::with_capacity(128);
        // `take` bounds the read even if the file grows after the check above.
        (&mut file)
            .take(MAX_KEY_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| IdentityError::io(&path, e))?;
        let decoded = decode(&path, &bytes);
        bytes.fill(0);
        decoded.map(Some)
    }

    /// The node's libp2p PeerId (derived from its public key).
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The keypair, for libp2p (the swarm, noise).
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The raw 32-byte ed25519 public key.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.ed25519.public().to_bytes().to_vec()
    }

    /// An ed25519 signature (64 bytes) of `msg`; check it with [`verify`].
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.ed25519.sign(msg)
    }
}

/// Whether `sig` is a valid ed25519 signature of `msg` by the raw 32-byte public key
/// `public_key_bytes`. A malformed key or signature is simply not valid.
pub fn verify(public_key_bytes: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    ed25519::PublicKey::try_from_bytes(public_key_bytes).is_ok_and(|pk| pk.verify(msg, sig))
}

/// The leading field of libp2p's `PrivateKey` message (`required KeyType Type = 1`), decoded on
/// its own so that a valid key of another type is reported as such.
#[derive(Clone, PartialEq, prost::Message)]
struct KeyTypeOnly {
    #[prost(int32, optional, tag = "1")]
    key_type: Option<i32>,
}

/// `KeyType.Ed25519` in libp2p's `keys.proto`.
const PROTO_KEY_TYPE_ED25519: i32 = 1;

fn decode(path: &Path, bytes: &[u8]) -> Result<NodeIdentity, IdentityError> {
    let malformed = |reason: String| IdentityError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(malformed("the file is empty".into()));
    }
    let header = <KeyTypeOnly as prost::Message>::decode(bytes)
        .map_err(|e| malformed(format!("not a protobuf private key: {e}")))?;
    match header.key_type {
        None => return Err(malformed("no key type".into())),
        Some(PROTO_KEY_TYPE_ED25519) => {}
        Some(_) => {
            return Err(IdentityError::NotEd25519 {
                path: path.to_path_buf(),
            })
        }
    }
    let keypair = Keypair::from_protobuf_encoding(bytes).map_err(|e| malformed(e.to_string()))?;
    let ed = keypair
        .try_into_ed25519()
        .map_err(|_| IdentityError::NotEd25519 {
            path: path.to_path_buf(),
        })?;
    Ok(NodeIdentity::from_ed25519(ed))
}

/// Writes `bytes` to `path` so that after a crash the file is either absent or complete:
/// `PATH.tmp` (mode 0600) is written and fsynced, renamed over `path`, and the directory `dir`
/// fsynced. The caller holds the directory lock, so a leftover `PATH.tmp` is stale.
fn write_durably(dir: &File, path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(IdentityError::io(&tmp, e)),
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(KEY_FILE_MODE)
            .open(&tmp)?;
        // The umask can only clear bits; make the mode exact whatever it is.
        file.set_permissions(Permissions::from_mode(KEY_FILE_MODE))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(IdentityError::io(&tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(IdentityError::io(path, e));
    }
    let dir_path = path.parent().unwrap_or(Path::new("."));
    dir.sync_all().map_err(|e| IdentityError::io(dir_path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_garbage() {
        let id = NodeIdentity::generate();
        let sig = id.sign(b"hello");
        assert_eq!(sig.len(), 64);
        assert_eq!(id.public_key_bytes().len(), 32);
        assert!(verify(&id.public_key_bytes(), b"hello", &sig));
        assert!(!verify(&id.public_key_bytes(), b"hellO", &sig));
        assert!(!verify(&[1, 2, 3], b"hello", &sig));
        assert!(!verify(&id.public_key_bytes(), b"hello", &sig[..10]));
    }

    #[test]
    fn decode_rejects_without_panicking() {
        let p = Path::new("k");
        for bytes in [
            &b""[..],
            b"\xff\xff\xff",
            b"\x08\x01",
            b"\x08\x01\x12\x03abc",
        ] {
            assert!(
                matches!(decode(p, bytes), Err(IdentityError::Malformed { .. })),
                "{bytes:?}"
            );
        }
        // a secp256k1 key type
        let mut other = vec![0x08, 0x02, 0x12, 32];
        other.extend([7u8; 32]);
        assert!(matches!(
            decode(p, &other),
            Err(IdentityError::NotEd25519 { .. })
        ));
        let id = NodeIdentity::generate();
        let enc = id.keypair().to_protobuf_encoding().expect("encodes");
        assert_eq!(decode(p, &enc).expect("decodes").peer_id(), id.peer_id());
    }
}
