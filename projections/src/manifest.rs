//! The canonical manifest of a blob and the `ManifestVerified` signature over it.
//!
//! A verifier (a node other than the writer) rebuilds a blob from its shards, checks every hash
//! against the manifest in the blob's `BlobAccepted`, and signs [`manifest_hash`] with its
//! ed25519 identity key. The signature is checked at apply (a forged one is rejected, never
//! counted) and again by the audit, from the log alone: the event carries the raw 32-byte
//! ed25519 public key, and that key must be the one the `verifier` PeerId names.
//!
//! The encoding is fixed forever for `hearth.manifest.v1`; a change takes a new domain tag.

use hearth_proto::v1::{BlobAccepted, ManifestVerified};
use libp2p_identity::{ed25519, PeerId, PublicKey};

/// Domain tag that starts every canonical manifest encoding (NUL-terminated).
pub const MANIFEST_DOMAIN: &[u8] = b"hearth.manifest.v1\0";

/// The canonical encoding of a blob's manifest: the domain tag, then the blob hash, size
/// (u64 LE), k, m (u32 LE), stripe size (u64 LE), the shard hashes and the stripe hashes (each
/// list a u32 LE count, then the 32-byte hashes; other lengths are encoded as they are, so a
/// malformed manifest still has one encoding). An inline blob (no erasure params) encodes
/// k = m = stripe size = 0.
pub fn manifest_encoding(acc: &BlobAccepted) -> Vec<u8> {
    let erasure = acc.erasure.unwrap_or_default();
    let mut out = Vec::with_capacity(
        MANIFEST_DOMAIN.len()
            + 64
            + 36 * (acc.shard_hashes.len() + acc.stripe_hashes.len())
            + acc.blob_hash.len(),
    );
    out.extend_from_slice(MANIFEST_DOMAIN);
    put_bytes(&mut out, &acc.blob_hash);
    out.extend_from_slice(&acc.size.to_le_bytes());
    out.extend_from_slice(&erasure.data_shards.to_le_bytes());
    out.extend_from_slice(&erasure.parity_shards.to_le_bytes());
    out.extend_from_slice(&erasure.stripe_size.to_le_bytes());
    for list in [&acc.shard_hashes, &acc.stripe_hashes] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for h in list {
            put_bytes(&mut out, h);
        }
    }
    out
}

/// Hashes are written bare when they are 32 bytes, else length-prefixed with a marker, so no
/// two different manifests share an encoding.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() == 32 {
        out.extend_from_slice(b);
    } else {
        out.push(0xFF);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
}

/// blake3 of [`manifest_encoding`]: what a verifier signs.
pub fn manifest_hash(acc: &BlobAccepted) -> [u8; 32] {
    *blake3::hash(&manifest_encoding(acc)).as_bytes()
}

/// Why a `ManifestVerified` does not stand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The event's manifest hash is not the hash of the blob's manifest.
    #[error("manifest hash does not match the blob's manifest")]
    ManifestMismatch,
    /// `verifier_public_key` is not a 32-byte ed25519 public key.
    #[error("verifier public key is not an ed25519 key")]
    BadKey,
    /// The key is valid but names another PeerId than `verifier`.
    #[error("verifier public key does not belong to the verifier PeerId")]
    KeyNotVerifier,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// Checks a `ManifestVerified` against the blob's `BlobAccepted`: the manifest hash, the key
/// against the verifier PeerId, and the ed25519 signature over the manifest hash.
pub fn check_signature(mv: &ManifestVerified, acc: &BlobAccepted) -> Result<(), SignatureError> {
    check_signature_hash(mv, &manifest_hash(acc))
}

/// [`check_signature`] against the blob's [`manifest_hash`] computed earlier: readers that see
/// many blobs (the audit) keep 32 bytes per blob instead of whole manifests.
pub fn check_signature_hash(
    mv: &ManifestVerified,
    manifest_hash: &[u8; 32],
) -> Result<(), SignatureError> {
    if mv.manifest_hash[..] != manifest_hash[..] {
        return Err(SignatureError::ManifestMismatch);
    }
    let key = ed25519::PublicKey::try_from_bytes(&mv.verifier_public_key)
        .map_err(|_| SignatureError::BadKey)?;
    let public = PublicKey::from(key);
    let named = PeerId::from_bytes(&mv.verifier).map_err(|_| SignatureError::KeyNotVerifier)?;
    if public.to_peer_id() != named {
        return Err(SignatureError::KeyNotVerifier);
    }
    if !public.verify(&mv.manifest_hash, &mv.signature) {
        return Err(SignatureError::BadSignature);
    }
    Ok(())
}

/// Signs a blob's manifest with `key`: the `ManifestVerified` a verifier proposes.
pub fn sign(key: &ed25519::Keypair, acc: &BlobAccepted) -> ManifestVerified {
    let hash = manifest_hash(acc);
    let public = key.public();
    ManifestVerified {
        blob_hash: acc.blob_hash.clone(),
        verifier: PublicKey::from(public.clone())
            .to_peer_id()
            .to_bytes()
            .into(),
        manifest_hash: hash.to_vec().into(),
        signature: key.sign(&hash).into(),
        verifier_public_key: public.to_bytes().to_vec().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::v1::ErasureParams;

    fn acc() -> BlobAccepted {
        BlobAccepted {
            blob_hash: vec![7; 32].into(),
            size: 1000,
            erasure: Some(ErasureParams {
                data_shards: 2,
                parity_shards: 1,
                stripe_size: 512,
            }),
            shard_hashes: vec![vec![1; 32].into(), vec![2; 32].into(), vec![3; 32].into()],
            stripe_hashes: vec![vec![4; 32].into(), vec![5; 32].into()],
            ..Default::default()
        }
    }

    #[test]
    fn signed_manifest_checks_and_forgeries_do_not() {
        let key = ed25519::Keypair::generate();
        let a = acc();
        let mv = sign(&key, &a);
        assert_eq!(check_signature(&mv, &a), Ok(()));

        let mut bad = mv.clone();
        let mut sig = bad.signature.to_vec();
        sig[0] ^= 1;
        bad.signature = sig.into();
        assert_eq!(check_signature(&bad, &a), Err(SignatureError::BadSignature));

        let other = ed25519::Keypair::generate();
        let mut stolen = mv.clone();
        stolen.verifier_public_key = other.public().to_bytes().to_vec().into();
        assert_eq!(
            check_signature(&stolen, &a),
            Err(SignatureError::KeyNotVerifier)
        );

        let mut b = a.clone();
        b.size += 1;
        assert_eq!(
            check_signature(&mv, &b),
            Err(SignatureError::ManifestMismatch)
        );

        assert_eq!(check_signature_hash(&mv, &manifest_hash(&a)), Ok(()));
        assert_eq!(
            check_signature_hash(&mv, &manifest_hash(&b)),
            Err(SignatureError::ManifestMismatch)
        );

        let mut junk = mv;
        junk.verifier_public_key = vec![1, 2, 3].into();
        assert_eq!(check_signature(&junk, &a), Err(SignatureError::BadKey));
    }

    #[test]
    fn encoding_is_fixed() {
        // The encoding is forever: this hash changing means old signatures stop verifying.
        let h = manifest_hash(&acc());
        assert_eq!(h, *blake3::hash(&manifest_encoding(&acc())).as_bytes());
        assert!(manifest_encoding(&acc()).starts_with(MANIFEST_DOMAIN));
        let mut longer = acc();
        longer.stripe_hashes.push(vec![6; 32].into());
        assert_ne!(manifest_hash(&longer), h);
    }
}
