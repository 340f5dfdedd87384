//! [`ManifestBook`]: what the audit remembers of every blob's acceptance so it can check each
//! `ManifestVerified` signature from the log alone — the 32-byte manifest hash
//! ([`hearth_projections::manifest::manifest_hash`]) per blob, never whole manifests: a table
//! entry of 65 bytes per blob (75–150 bytes with the hash table's slack).
//!
//! Acceptances of one hash count from its latest deletion on (accepting the same bytes again
//! after a delete starts over, as in the blob index). A signature must match the manifest of
//! one of them, or of one of them with the parity shards a `ParityAdded` gave it: for those
//! (rare: blobs stored before the cluster grew) the book keeps the whole widened manifest,
//! starting from the acceptance the caller reads back from the log. Pure data, no IO.

use hearth_projections::manifest::{check_signature_hash, manifest_hash, SignatureError};
use hearth_proto::v1::{BlobAccepted, ManifestVerified, ParityAdded};
use std::collections::HashMap;

/// Length of a blob hash.
const HASH_LEN: usize = 32;

/// Why a `ManifestVerified` is bad, as the audit reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadManifest {
    /// No `BlobAccepted` of that blob came before it in the log (or since its deletion).
    #[error("no BlobAccepted of this blob before it in the log")]
    UnknownBlob,
    /// The signature check failed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// The first manifest of one blob hash since its latest deletion (33 bytes, no heap).
#[derive(Debug, Clone, Copy)]
struct Known {
    /// The first acceptance's manifest hash.
    first: [u8; 32],
    /// Deleted since: the next acceptance starts over.
    deleted: bool,
}

/// Blob hash → manifest hashes of its acceptances. See the module docs.
#[derive(Debug, Default)]
pub struct ManifestBook {
    blobs: HashMap<[u8; HASH_LEN], Known>,
    /// Later acceptances with another manifest (rare: concurrent accepts of the same bytes),
    /// and the manifests parity growth gave a blob.
    others: HashMap<[u8; HASH_LEN], Vec<[u8; 32]>>,
    /// The latest widened manifest of each blob that got parity shards.
    widened: HashMap<[u8; HASH_LEN], BlobAccepted>,
}

impl ManifestBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a `BlobAccepted` (a hash that is not 32 bytes names no blob and is ignored).
    pub fn accepted(&mut self, acc: &BlobAccepted) {
        let Ok(key) = <[u8; HASH_LEN]>::try_from(&acc.blob_hash[..]) else {
            return;
        };
        let manifest = manifest_hash(acc);
        match self.blobs.get(&key) {
            Some(known) if !known.deleted => {
                if known.first != manifest {
                    let others = self.others.entry(key).or_default();
                    if !others.contains(&manifest) {
                        others.push(manifest);
                    }
                }
            }
            _ => {
                self.others.remove(&key);
                self.widened.remove(&key);
                self.blobs.insert(
                    key,
                    Known {
                        first: manifest,
                        deleted: false,
                    },
                );
            }
        }
    }

    /// Notes a `BlobDeleted`: signatures over the manifests accepted so far still check (a
    /// verification may commit after the delete), and the next acceptance starts over.
    pub fn deleted(&mut self, blob_hash: &[u8]) {
        if let Some(known) = <[u8; HASH_LEN]>::try_from(blob_hash)
            .ok()
            .and_then(|key| self.blobs.get_mut(&key))
        {
            known.deleted = true;
        }
    }

    /// The manifest a blob's latest `ParityAdded` made, if it had one since its acceptance.
    pub fn widened(&self, blob_hash: &[u8]) -> Option<&BlobAccepted> {
        self.widened
            .get(&<[u8; HASH_LEN]>::try_from(blob_hash).ok()?)
    }

    /// Notes a `ParityAdded` over `base` (the blob's acceptance, or its latest widened
    /// manifest): the manifest with `pa`'s parity count and added shard hashes also checks.
    pub fn parity_added(&mut self, mut base: BlobAccepted, pa: &ParityAdded) {
        let Ok(key) = <[u8; HASH_LEN]>::try_from(&pa.blob_hash[..]) else {
            return;
        };
        let (Some(erasure), true) = (base.erasure.as_mut(), self.blobs.contains_key(&key)) else {
            return;
        };
        erasure.parity_shards = pa.parity_shards;
        base.shard_hashes
            .extend(pa.added_shard_hashes.iter().cloned());
        let manifest = manifest_hash(&base);
        let others = self.others.entry(key).or_default();
        if !others.contains(&manifest) {
            others.push(manifest);
        }
        self.widened.insert(key, base);
    }

    /// The manifest hash `mv` must be checked against: the acceptance whose manifest it names,
    /// else the first; `None` for a blob the book has never seen accepted.
    pub fn manifest_for(&self, mv: &ManifestVerified) -> Option<[u8; 32]> {
        let key = <[u8; HASH_LEN]>::try_from(&mv.blob_hash[..]).ok()?;
        let known = self.blobs.get(&key)?;
        let claimed = &mv.manifest_hash[..];
        Some(
            self.others
                .get(&key)
                .and_then(|others| others.iter().find(|m| &m[..] == claimed))
                .copied()
                .unwrap_or(known.first),
        )
    }

    /// Blobs known.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob is known.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}

/// Checks `mv` against the manifest the book gave for it ([`ManifestBook::manifest_for`]).
pub fn check(mv: &ManifestVerified, manifest: Option<[u8; 32]>) -> Result<(), BadManifest> {
    let manifest = manifest.ok_or(BadManifest::UnknownBlob)?;
    Ok(check_signature_hash(mv, &manifest)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_projections::manifest::sign;
    use hearth_proto::v1::ErasureParams;
    use libp2p_identity::ed25519;

    fn acc(tag: u8, size: u64) -> BlobAccepted {
        BlobAccepted {
            blob_hash: vec![tag; 32].into(),
            size,
            erasure: Some(ErasureParams {
                data_shards: 1,
                parity_shards: 0,
                stripe_size: 1024,
            }),
            shard_hashes: vec![vec![9; 32].into()],
            stripe_hashes: vec![vec![8; 32].into()],
            ..Default::default()
        }
    }

    #[test]
    fn signatures_over_manifests_widened_by_parity_check_too() {
        let key = ed25519::Keypair::generate();
        let mut book = ManifestBook::new();
        let a = acc(2, 100);
        book.accepted(&a);
        let parity = |m: u32, added: Vec<u8>| ParityAdded {
            blob_hash: a.blob_hash.clone(),
            accepted_index: 1,
            parity_shards: m,
            added_shard_hashes: added.into_iter().map(|t| vec![t; 32].into()).collect(),
            added_by: vec![7].into(),
        };
        // 1 + 0 → 1 + 1 → 1 + 2: each widened manifest, as the index would have it, checks.
        let mut wide = a.clone();
        for (m, tag) in [(1u32, 10u8), (2, 11)] {
            let base = book
                .widened(&a.blob_hash)
                .cloned()
                .unwrap_or_else(|| a.clone());
            book.parity_added(base, &parity(m, vec![tag]));
            if let Some(e) = wide.erasure.as_mut() {
                e.parity_shards = m;
            }
            wide.shard_hashes.push(vec![tag; 32].into());
            let mv = sign(&key, &wide);
            assert_eq!(check(&mv, book.manifest_for(&mv)), Ok(()), "m = {m}");
        }
        // The original still checks (a verification of it may commit after the change); one
        // with other added hashes does not.
        let mv = sign(&key, &a);
        assert_eq!(check(&mv, book.manifest_for(&mv)), Ok(()));
        let mut other = a.clone();
        if let Some(e) = other.erasure.as_mut() {
            e.parity_shards = 1;
        }
        other.shard_hashes.push(vec![99; 32].into());
        let forged = sign(&key, &other);
        assert!(check(&forged, book.manifest_for(&forged)).is_err());
        // Parity for a blob never accepted is ignored.
        let mut stray = parity(1, vec![1]);
        stray.blob_hash = vec![5; 32].into();
        book.parity_added(a.clone(), &stray);
        assert!(book.widened(&stray.blob_hash).is_none());
    }

    #[test]
    fn signatures_check_against_accepted_manifests_only() {
        let key = ed25519::Keypair::generate();
        let mut book = ManifestBook::new();
        let a = acc(1, 100);
        let mv = sign(&key, &a);
        assert_eq!(
            check(&mv, book.manifest_for(&mv)),
            Err(BadManifest::UnknownBlob)
        );
        book.accepted(&a);
        assert_eq!(check(&mv, book.manifest_for(&mv)), Ok(()));

        // A second acceptance of the same bytes with another manifest: both sign fine.
        let b = acc(1, 101);
        book.accepted(&b);
        let mv_b = sign(&key, &b);
        assert_eq!(check(&mv_b, book.manifest_for(&mv_b)), Ok(()));
        assert_eq!(book.len(), 1);

        // A signature over a manifest nobody accepted.
        let forged = sign(&key, &acc(1, 102));
        assert_eq!(
            check(&forged, book.manifest_for(&forged)),
            Err(BadManifest::Signature(SignatureError::ManifestMismatch))
        );
        let mut bad = mv.clone();
        let mut sig = bad.signature.to_vec();
        sig[3] ^= 0x40;
        bad.signature = sig.into();
        assert_eq!(
            check(&bad, book.manifest_for(&bad)),
            Err(BadManifest::Signature(SignatureError::BadSignature))
        );

        // After a delete old signatures still check; a new acceptance starts over.
        book.deleted(&a.blob_hash);
        assert_eq!(check(&mv, book.manifest_for(&mv)), Ok(()));
        let c = acc(1, 103);
        book.accepted(&c);
        assert!(check(&mv, book.manifest_for(&mv)).is_err());
        let mv_c = sign(&key, &c);
        assert_eq!(check(&mv_c, book.manifest_for(&mv_c)), Ok(()));
    }

    #[test]
    fn malformed_hashes_name_no_blob() {
        let mut book = ManifestBook::new();
        let mut a = acc(2, 5);
        a.blob_hash = vec![2; 31].into();
        book.accepted(&a);
        assert!(book.is_empty());
        book.deleted(&[0; 3]);
        let mv = ManifestVerified {
            blob_hash: vec![2; 31].into(),
            ..Default::default()
        };
        assert_eq!(book.manifest_for(&mv), None);
    }
}
