//! [`StripeCodec`]: one stripe ↔ its `k + m` chunks (see [`super::layout`]).
//!
//! Encoding cuts the stripe into `k` equal data chunks (the last zero-padded) and computes `m`
//! parity chunks with Reed-Solomon over GF(2^8) (`reed-solomon-erasure`, `simd-accel`). With
//! `m = 0` there is no code: the data chunks are the shards.
//!
//! Decoding never returns unverified bytes. The manifest has no per-chunk hashes, only the
//! stripe's blake3, so a chunk that is present but rotten is found by the stripe hash: the codec
//! first uses the data chunks as they are (the healthy, copy-only path), and when the hash does
//! not match it rebuilds from other choices of `k` chunks until one matches. The answer names
//! every chunk that disagrees with the verified stripe (missing or rotten), with its correct
//! bytes, so the caller can rewrite it.

use reed_solomon_erasure::galois_8::ReedSolomon;

/// Most `k`-subsets tried to get around rotten chunks before giving up.
const MAX_ATTEMPTS: usize = 256;

/// Why a stripe could not be encoded or rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// The erasure code is not usable.
    #[error("invalid erasure code {k}+{m}: {reason}")]
    Code {
        /// k.
        k: u32,
        /// m.
        m: u32,
        /// The library's reason.
        reason: String,
    },
    /// Fewer than `k` chunks are present.
    #[error("unavailable: {needed} of {total} shards needed, {found} found")]
    TooFewChunks {
        /// k.
        needed: usize,
        /// k + m.
        total: usize,
        /// Chunks present.
        found: usize,
    },
    /// No choice of `k` present chunks rebuilds bytes with the stripe's hash.
    #[error("unavailable: no {needed} of the {found} shards present rebuild the stripe's hash")]
    NoVerifiedChoice {
        /// k.
        needed: usize,
        /// Chunks present.
        found: usize,
    },
    /// The caller passed chunks of the wrong count or length.
    #[error("{0}")]
    Shape(String),
}

/// A stripe rebuilt and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The stripe's bytes (blake3-verified).
    pub data: Vec<u8>,
    /// Chunks that were missing or wrong, by shard index, with their correct bytes.
    pub repaired: Vec<(usize, Vec<u8>)>,
}

/// Encodes and rebuilds stripes for one `k + m` code.
#[derive(Debug)]
pub struct StripeCodec {
    k: usize,
    m: usize,
    rs: Option<ReedSolomon>,
}

impl StripeCodec {
    /// A codec for `k` data and `m` parity chunks.
    pub fn new(k: u32, m: u32) -> Result<Self, StripeError> {
        let code_err = |reason: String| StripeError::Code { k, m, reason };
        if k == 0 || k.saturating_add(m) > super::policy::MAX_SHARDS {
            return Err(code_err(
                "k must be at least 1 and k + m at most 256".into(),
            ));
        }
        let rs = match m {
            0 => None,
            _ => Some(
                ReedSolomon::new(k as usize, m as usize).map_err(|e| code_err(format!("{e:?}")))?,
            ),
        };
        Ok(StripeCodec {
            k: k as usize,
            m: m as usize,
            rs,
        })
    }

    /// k + m.
    pub fn total(&self) -> usize {
        self.k + self.m
    }

    /// The `k + m` chunks of a stripe holding `data` (all `ceil(len / k)` bytes long).
    pub fn encode(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, StripeError> {
        let chunk = data.len().div_ceil(self.k);
        let mut chunks: Vec<Vec<u8>> = (0..self.total())
            .map(|i| {
                let start = (i * chunk).min(data.len());
                let end = ((i + 1) * chunk).min(data.len());
                let mut c = Vec::with_capacity(chunk);
                if i < self.k {
                    c.extend_from_slice(&data[start..end]);
                }
                c.resize(chunk, 0);
                c
            })
            .collect();
        if let (Some(rs), true) = (&self.rs, chunk > 0) {
            rs.encode(&mut chunks)
                .map_err(|e| StripeError::Shape(format!("encoding a stripe: {e:?}")))?;
        }
        Ok(chunks)
    }

    /// Rebuilds the stripe of `len` bytes whose blake3 is `hash` from `chunks` (`k + m` slots,
    /// `None` = missing; present chunks must be `ceil(len / k)` bytes).
    pub fn decode(
        &self,
        chunks: &[Option<Vec<u8>>],
        len: usize,
        hash: &[u8; 32],
    ) -> Result<Decoded, StripeError> {
        self.decode_owned(chunks.to_vec(), len, hash)
    }

    /// [`Self::decode`] taking the chunks by value (no copy on the common path).
    pub fn decode_owned(
        &self,
        chunks: Vec<Option<Vec<u8>>>,
        len: usize,
        hash: &[u8; 32],
    ) -> Result<Decoded, StripeError> {
        let chunk = len.div_ceil(self.k);
        if chunks.len() != self.total() {
            return Err(StripeError::Shape(format!(
                "{} chunk slots for a {}+{} code",
                chunks.len(),
                self.k,
                self.m
            )));
        }
        if let Some((i, c)) = chunks
            .iter()
            .enumerate()
            .find_map(|(i, c)| c.as_ref().filter(|c| c.len() != chunk).map(|c| (i, c)))
        {
            return Err(StripeError::Shape(format!(
                "chunk {i} has {} bytes, expected {chunk}",
                c.len()
            )));
        }
        let present: Vec<usize> = (0..self.total()).filter(|&i| chunks[i].is_some()).collect();
        if present.len() < self.k {
            return Err(StripeError::TooFewChunks {
                needed: self.k,
                total: self.total(),
                found: present.len(),
            });
        }
        if len == 0 {
            return match blake3::hash(&[]).as_bytes() == hash {
                true => self.finish(Vec::new(), &chunks),
                false => Err(StripeError::NoVerifiedChoice {
                    needed: self.k,
                    found: present.len(),
                }),
            };
        }
        // The copy-only path: all data chunks present and right.
        if chunks[..self.k].iter().all(Option::is_some) {
            let data = join(chunks[..self.k].iter().flatten(), len);
            if blake3::hash(&data).as_bytes() == hash {
                return self.finish(data, &chunks);
            }
        }
        // The usual degraded case (chunks missing, none rotten): one reconstruction of every
        // missing chunk from the present ones, in place (no copy of the chunks), checked by
        // the stripe hash; on a mismatch the reconstructed slots are emptied again.
        let mut chunks = chunks;
        if let (Some(rs), false) = (&self.rs, chunks[..self.k].iter().all(Option::is_some)) {
            let missing: Vec<usize> = (0..self.total()).filter(|&i| chunks[i].is_none()).collect();
            if rs.reconstruct(&mut chunks).is_ok() {
                let data = join(chunks[..self.k].iter().flatten(), len);
                if blake3::hash(&data).as_bytes() == hash {
                    let repaired = missing
                        .iter()
                        .filter_map(|&i| chunks[i].take().map(|c| (i, c)))
                        .collect();
                    return Ok(Decoded { data, repaired });
                }
            }
            for &i in &missing {
                chunks[i] = None;
            }
        }
        // Some present chunk is rotten: try other choices of k, then re-encode to find it.
        for choice in Subsets::new(&present, self.k).take(MAX_ATTEMPTS) {
            let Some(data) = self.rebuild(&chunks, &choice, len) else {
                continue;
            };
            if blake3::hash(&data).as_bytes() == hash {
                return self.finish(data, &chunks);
            }
        }
        Err(StripeError::NoVerifiedChoice {
            needed: self.k,
            found: present.len(),
        })
    }

    /// The stripe's bytes from the chunks in `choice` (k of them), or `None` if the code fails.
    fn rebuild(&self, chunks: &[Option<Vec<u8>>], choice: &[usize], len: usize) -> Option<Vec<u8>> {
        let mut slots: Vec<Option<Vec<u8>>> = (0..self.total())
            .map(|i| choice.contains(&i).then(|| chunks[i].clone()).flatten())
            .collect();
        if let Some(rs) = &self.rs {
            rs.reconstruct_data(&mut slots).ok()?;
        }
        let data: Vec<&Vec<u8>> = slots[..self.k].iter().flatten().collect();
        (data.len() == self.k).then(|| join(data, len))
    }

    /// Re-encodes the verified stripe and lists every chunk that differs from what was given.
    fn finish(&self, data: Vec<u8>, given: &[Option<Vec<u8>>]) -> Result<Decoded, StripeError> {
        let good = self.encode(&data)?;
        let repaired = good
            .into_iter()
            .enumerate()
            .filter(|(i, c)| given[*i].as_ref() != Some(c))
            .collect();
        Ok(Decoded { data, repaired })
    }
}

/// Concatenates data chunks and drops the padding.
fn join<'a>(chunks: impl IntoIterator<Item = &'a Vec<u8>>, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    for c in chunks {
        out.extend_from_slice(c);
    }
    out.truncate(len);
    out
}

/// The `k`-element subsets of `items`, in lexicographic order of positions.
struct Subsets<'a> {
    items: &'a [usize],
    pos: Option<Vec<usize>>,
}

impl<'a> Subsets<'a> {
    fn new(items: &'a [usize], k: usize) -> Self {
        Subsets {
            items,
            pos: (k <= items.len()).then(|| (0..k).collect()),
        }
    }
}

impl Iterator for Subsets<'_> {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let pos = self.pos.as_mut()?;
        let out = pos.iter().map(|&p| self.items[p]).collect();
        // Advance to the next combination.
        let n = self.items.len();
        let k = pos.len();
        let mut i = k;
        loop {
            if i == 0 {
                self.pos = None;
                break;
            }
            i -= 1;
            if pos[i] < n - k + i {
                pos[i] += 1;
                for j in i + 1..k {
                    pos[j] = pos[j - 1] + 1;
                }
                break;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hash(b: &[u8]) -> [u8; 32] {
        *blake3::hash(b).as_bytes()
    }

    #[test]
    fn subsets_enumerate_every_combination_once() {
        let items = [0, 2, 3, 5, 6];
        let all: Vec<_> = Subsets::new(&items, 3).collect();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], [0, 2, 3]);
        assert_eq!(all[9], [3, 5, 6]);
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 10);
        assert_eq!(Subsets::new(&items, 6).count(), 0);
        assert_eq!(Subsets::new(&items, 0).count(), 1);
    }

    #[test]
    fn four_plus_three_survives_any_three_losses() {
        let codec = StripeCodec::new(4, 3).expect("codec");
        let data: Vec<u8> = (0..1_001u32).map(|i| (i * 7 % 251) as u8).collect();
        let chunks = codec.encode(&data).expect("encode");
        assert_eq!(chunks.len(), 7);
        assert!(chunks.iter().all(|c| c.len() == 251));
        for lost in Subsets::new(&[0, 1, 2, 3, 4, 5, 6], 3) {
            let given: Vec<_> = (0..7)
                .map(|i| (!lost.contains(&i)).then(|| chunks[i].clone()))
                .collect();
            let d = codec
                .decode(&given, data.len(), &hash(&data))
                .expect("decode");
            assert_eq!(d.data, data);
            let fixed: Vec<usize> = d.repaired.iter().map(|(i, _)| *i).collect();
            assert_eq!(fixed, lost, "the lost chunks are rebuilt");
            for (i, c) in &d.repaired {
                assert_eq!(c, &chunks[*i]);
            }
        }
        let four_lost: Vec<_> = (0..7)
            .map(|i| (i >= 4).then(|| chunks[i].clone()))
            .collect();
        assert_eq!(
            codec.decode(&four_lost, data.len(), &hash(&data)),
            Err(StripeError::TooFewChunks {
                needed: 4,
                total: 7,
                found: 3
            })
        );
        assert!(codec
            .decode(&four_lost, data.len(), &hash(&data))
            .expect_err("four of seven lost")
            .to_string()
            .contains("4 of 7 shards needed, 3 found"));
    }

    #[test]
    fn a_rotten_chunk_is_found_by_the_stripe_hash_and_never_served() {
        let codec = StripeCodec::new(4, 3).expect("codec");
        let data = b"the family photo album, stripe one".repeat(40);
        let chunks = codec.encode(&data).expect("encode");
        for bad in 0..7 {
            let mut given: Vec<_> = chunks.iter().cloned().map(Some).collect();
            if let Some(c) = given[bad].as_mut() {
                c[3] ^= 0x20;
            }
            let d = codec
                .decode(&given, data.len(), &hash(&data))
                .expect("decode");
            assert_eq!(d.data, data);
            assert_eq!(d.repaired.len(), 1);
            assert_eq!(d.repaired[0], (bad, chunks[bad].clone()));
        }
        // Rot in more chunks than the code can correct around: refused, not wrong bytes.
        let mut given: Vec<_> = chunks.iter().cloned().map(Some).collect();
        for c in given.iter_mut().take(4).flatten() {
            c[0] ^= 1;
        }
        assert!(matches!(
            codec.decode(&given, data.len(), &hash(&data)),
            Err(StripeError::NoVerifiedChoice { .. })
        ));
    }

    #[test]
    fn without_parity_the_chunks_are_the_data_and_rot_is_refused() {
        let codec = StripeCodec::new(1, 0).expect("codec");
        let data = b"one whole copy".to_vec();
        let chunks = codec.encode(&data).expect("encode");
        assert_eq!(chunks, std::slice::from_ref(&data));
        let d = codec
            .decode(&[Some(data.clone())], data.len(), &hash(&data))
            .expect("decode");
        assert_eq!(d.data, data);
        assert!(d.repaired.is_empty());
        let mut rotten = data.clone();
        rotten[0] ^= 1;
        assert!(codec
            .decode(&[Some(rotten)], data.len(), &hash(&data))
            .is_err());
    }

    #[test]
    fn empty_stripes_and_bad_shapes() {
        let codec = StripeCodec::new(2, 1).expect("codec");
        let chunks = codec.encode(&[]).expect("encode");
        assert_eq!(chunks, [Vec::<u8>::new(), Vec::new(), Vec::new()]);
        let d = codec
            .decode(&[Some(vec![]), None, Some(vec![])], 0, &hash(&[]))
            .expect("decode");
        assert!(d.data.is_empty());
        assert!(matches!(
            codec.decode(&[Some(vec![1])], 2, &hash(&[1, 2])),
            Err(StripeError::Shape(_))
        ));
        assert!(matches!(
            codec.decode(&[Some(vec![1, 2]), None, None], 2, &hash(&[1, 2])),
            Err(StripeError::Shape(_))
        ));
        assert!(StripeCodec::new(0, 1).is_err());
        assert!(StripeCodec::new(250, 7).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn any_k_chunks_rebuild_the_stripe(
            data in proptest::collection::vec(any::<u8>(), 0..3_000),
            k in 1u32..6,
            m in 0u32..4,
            seed in any::<u64>(),
        ) {
            let codec = StripeCodec::new(k, m).expect("codec");
            let chunks = codec.encode(&data).expect("encode");
            let n = (k + m) as usize;
            // Drop m chunks chosen by the seed.
            let mut order: Vec<usize> = (0..n).collect();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            let lost = &order[..m as usize];
            let given: Vec<_> = (0..n)
                .map(|i| (!lost.contains(&i)).then(|| chunks[i].clone()))
                .collect();
            let d = codec.decode(&given, data.len(), &hash(&data)).expect("decode");
            prop_assert_eq!(d.data, data);
            prop_assert!(d.repaired.len() <= m as usize);
        }
    }
}

#[cfg(test)]
mod parity_growth {
    use super::*;

    #[test]
    fn a_wider_parity_keeps_every_existing_chunk() {
        let data: Vec<u8> = (0..10_007u32).map(|i| (i * 31 % 251) as u8).collect();
        for k in 1..=4u32 {
            for m in 0..=3u32 {
                let narrow = StripeCodec::new(k, m)
                    .expect("code")
                    .encode(&data)
                    .expect("encode");
                for wider in m + 1..=4 {
                    let wide = StripeCodec::new(k, wider)
                        .expect("code")
                        .encode(&data)
                        .expect("encode");
                    assert_eq!(narrow[..], wide[..narrow.len()], "k={k} m={m} → {wider}");
                }
            }
        }
    }
}
