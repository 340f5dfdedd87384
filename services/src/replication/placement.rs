//! Where a blob's shards go: a pure function of the members, their free space and reputation,
//! and the current placement. No IO, no clock, no randomness: the same inputs always give the
//! same holders, so every node can check a decision and tests need no cluster.
//!
//! * **Spread**: with `N` eligible members and `n = k + m` shards, no member gets more than
//!   `ceil(n / N)` shards. Losing `L` members then loses at most the `L` largest loads, and the
//!   balanced spread maximises the number of losses survived (`m` of them once `N ≥ n`); the
//!   result says how many that is ([`Placement::survives`]).
//! * **Stability**: shards whose current holder is still eligible stay there (within the cap);
//!   the others go by rendezvous (highest-random-weight) hashing of `(blob, shard, member)`, so
//!   a membership change moves only the shards it must.
//! * **Reputation**: a member's weight grows with its score (weighted rendezvous,
//!   `-weight / ln(u)`), so better peers are preferred without starving the others.
//! * **Room**: a member without room for the shard (free bytes) is not eligible.

/// A member that may hold shards.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Its PeerId bytes.
    pub peer: Vec<u8>,
    /// Bytes it can still take (`u64::MAX` when unknown).
    pub free_bytes: u64,
    /// Reputation score in `[0, 1]` (1 when unknown).
    pub score: f64,
}

impl Candidate {
    /// A member with unknown free space and a neutral score.
    pub fn new(peer: Vec<u8>) -> Self {
        Self {
            peer,
            free_bytes: u64::MAX,
            score: 1.0,
        }
    }
}

/// The holders chosen for a blob's shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Holder of each shard, in shard order.
    pub holders: Vec<Vec<u8>>,
    /// How many member losses (any of them) the blob survives with this placement.
    pub survives: u32,
}

/// Why no placement exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// No member has room for a shard.
    #[error("no member has room for a shard of {0} bytes")]
    NoRoom(u64),
    /// The code has no shards.
    #[error("a code with no shards cannot be placed")]
    NoShards,
}

/// Chooses a holder for each of the `k + m` shards of `blob`; see the module docs.
pub fn place(
    blob: &[u8],
    k: u32,
    m: u32,
    shard_size: u64,
    members: &[Candidate],
    current: &[Vec<u8>],
) -> Result<Placement, PlacementError> {
    let n = (k + m) as usize;
    if n == 0 {
        return Err(PlacementError::NoShards);
    }
    let mut eligible: Vec<&Candidate> = members
        .iter()
        .filter(|c| c.free_bytes >= shard_size)
        .collect();
    eligible.sort_by(|a, b| a.peer.cmp(&b.peer));
    eligible.dedup_by(|a, b| a.peer == b.peer);
    if eligible.is_empty() {
        return Err(PlacementError::NoRoom(shard_size));
    }
    // Balanced: every load is floor(n / N) or ceil(n / N), and only n mod N members (all of
    // them when N divides n) get the larger one.
    let members = eligible.len();
    let cap = n.div_ceil(members);
    let max_full = match n % members {
        0 => members,
        r => r,
    };
    let mut load = vec![0usize; members];
    let mut full = 0usize;
    let can_take = |load: &[usize], full: usize, i: usize| {
        load[i] + 1 < cap || (load[i] + 1 == cap && full < max_full)
    };
    let mut holders: Vec<Option<usize>> = vec![None; n];
    // Keep current holders that are still eligible, within the balance.
    for (shard, holder) in current.iter().enumerate().take(n) {
        if let Some(i) = eligible.iter().position(|c| &c.peer == holder) {
            if can_take(&load, full, i) {
                load[i] += 1;
                full += usize::from(load[i] == cap);
                holders[shard] = Some(i);
            }
        }
    }
    for (shard, slot) in holders.iter_mut().enumerate() {
        if slot.is_some() {
            continue;
        }
        let best = (0..members)
            .filter(|&i| can_take(&load, full, i))
            .max_by(|&a, &b| {
                let wa = weight(blob, shard as u32, eligible[a]);
                let wb = weight(blob, shard as u32, eligible[b]);
                wa.total_cmp(&wb)
                    .then_with(|| eligible[b].peer.cmp(&eligible[a].peer))
            });
        // The balanced loads add up to at least n, so a member with room exists.
        if let Some(i) = best {
            load[i] += 1;
            full += usize::from(load[i] == cap);
            *slot = Some(i);
        }
    }
    let holders: Vec<Vec<u8>> = holders
        .into_iter()
        .map(|h| h.map(|i| eligible[i].peer.clone()).unwrap_or_default())
        .collect();
    let survives = survivable_losses(
        k,
        &holders.iter().map(|h| vec![h.clone()]).collect::<Vec<_>>(),
    );
    Ok(Placement { holders, survives })
}

/// Weighted rendezvous weight of `member` for shard `shard` of `blob`: `-w / ln(u)` with `u`
/// uniform in (0, 1) from blake3 of `(blob, shard, member)` and `w` from the score.
fn weight(blob: &[u8], shard: u32, member: &Candidate) -> f64 {
    let mut h = blake3::Hasher::new();
    h.update(b"hearth.placement.v1\0");
    h.update(blob);
    h.update(&shard.to_le_bytes());
    h.update(&member.peer);
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    // (x + 0.5) / 2^64 is strictly inside (0, 1).
    let u = (u64::from_le_bytes(first) as f64 + 0.5) / 18_446_744_073_709_551_616.0;
    let w = 0.25 + 0.75 * member.score.clamp(0.0, 1.0);
    -w / u.ln()
}

/// How many member losses (any of them) leave at least `k` distinct shards, where
/// `holders[s]` lists who holds shard `s`. Exact: every set of members of each size is tried
/// (a family cluster has at most a handful of members).
pub fn survivable_losses(k: u32, holders: &[Vec<Vec<u8>>]) -> u32 {
    let mut members: Vec<&Vec<u8>> = holders.iter().flatten().collect();
    members.sort();
    members.dedup();
    let available = |lost: &[&Vec<u8>]| {
        holders
            .iter()
            .filter(|hs| hs.iter().any(|h| !lost.contains(&h)))
            .count()
    };
    if available(&[]) < k as usize {
        return 0;
    }
    if members.len() > 16 {
        // Not a family cluster; fall back to the bound from the largest loads.
        return 0;
    }
    let mut survives = 0;
    for losses in 1..=members.len() {
        let all_ok = subsets(members.len(), losses).all(|set| {
            let lost: Vec<&Vec<u8>> = set.iter().map(|&i| members[i]).collect();
            available(&lost) >= k as usize
        });
        if !all_ok {
            break;
        }
        survives = losses as u32;
    }
    survives
}

/// Whether the blob survives losing exactly `member`: at least `k` shards held elsewhere.
pub fn survives_without(k: u32, holders: &[Vec<Vec<u8>>], member: &[u8]) -> bool {
    holders
        .iter()
        .filter(|hs| hs.iter().any(|h| h.as_slice() != member))
        .count()
        >= k as usize
}

/// Every `r`-subset of `0..n`, as index lists.
fn subsets(n: usize, r: usize) -> impl Iterator<Item = Vec<usize>> {
    (0u32..(1u32 << n))
        .filter(move |mask| mask.count_ones() as usize == r)
        .map(move |mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u8) -> Vec<Candidate> {
        (1..=n).map(|i| Candidate::new(vec![i; 4])).collect()
    }

    fn loads(p: &Placement) -> std::collections::BTreeMap<Vec<u8>, usize> {
        let mut out = std::collections::BTreeMap::new();
        for h in &p.holders {
            *out.entry(h.clone()).or_default() += 1;
        }
        out
    }

    #[test]
    fn spreads_one_shard_per_member_when_there_are_enough() {
        let p = place(b"blob", 4, 3, 10, &members(7), &[]).expect("place");
        assert_eq!(p.holders.len(), 7);
        assert!(loads(&p).values().all(|&l| l == 1), "{p:?}");
        assert_eq!(p.survives, 3);
        let p = place(b"blob", 2, 1, 10, &members(5), &[]).expect("place");
        assert_eq!(loads(&p).len(), 3);
        assert_eq!(p.survives, 1);
    }

    #[test]
    fn fewer_members_than_shards_maximises_the_losses_survived() {
        // 4 + 3 on 3 members: loads 3, 2, 2; losing the loaded one leaves 4 = k.
        let p = place(b"blob", 4, 3, 10, &members(3), &[]).expect("place");
        let mut l: Vec<_> = loads(&p).into_values().collect();
        l.sort();
        assert_eq!(l, vec![2, 2, 3]);
        assert_eq!(p.survives, 1);
        // 2 + 1 on 2 members: loads 2, 1; losing the one with 2 leaves 1 < k.
        let p = place(b"blob", 2, 1, 10, &members(2), &[]).expect("place");
        assert_eq!(p.survives, 0);
        // One member: everything there, no loss survived.
        let p = place(b"blob", 1, 0, 10, &members(1), &[]).expect("place");
        assert_eq!((p.holders.len(), p.survives), (1, 0));
    }

    #[test]
    fn is_deterministic_and_varies_across_blobs() {
        let a = place(b"blob a", 2, 1, 10, &members(5), &[]).expect("place");
        assert_eq!(
            a,
            place(b"blob a", 2, 1, 10, &members(5), &[]).expect("place")
        );
        let mut reversed = members(5);
        reversed.reverse();
        assert_eq!(
            a,
            place(b"blob a", 2, 1, 10, &reversed, &[]).expect("place")
        );
        let spread: std::collections::BTreeSet<_> = (0u32..50)
            .map(|i| {
                place(&i.to_le_bytes(), 2, 1, 10, &members(5), &[])
                    .expect("place")
                    .holders
            })
            .collect();
        assert!(
            spread.len() > 10,
            "rendezvous spreads blobs: {}",
            spread.len()
        );
    }

    #[test]
    fn a_removed_member_moves_only_its_shards() {
        let all = members(5);
        for i in 0u32..40 {
            let blob = i.to_le_bytes();
            let before = place(&blob, 2, 1, 10, &all, &[]).expect("place");
            let gone = before.holders[0].clone();
            let rest: Vec<_> = all.iter().filter(|c| c.peer != gone).cloned().collect();
            let after = place(&blob, 2, 1, 10, &rest, &before.holders).expect("place");
            for (b, a) in before.holders.iter().zip(&after.holders) {
                if *b != gone {
                    assert_eq!(a, b, "a shard not on the removed member moved");
                } else {
                    assert_ne!(a, &gone);
                }
            }
            assert_eq!(after.survives, 1);
        }
    }

    #[test]
    fn members_without_room_are_skipped_and_scores_weigh_in() {
        let mut m = members(4);
        m[0].free_bytes = 5;
        let p = place(b"blob", 2, 1, 10, &m, &[]).expect("place");
        assert!(!p.holders.contains(&m[0].peer));
        for c in &mut m {
            c.free_bytes = 0;
        }
        assert_eq!(
            place(b"blob", 2, 1, 10, &m, &[]),
            Err(PlacementError::NoRoom(10))
        );
        // A member with score 0 is chosen far less often than one with score 1.
        let mut m = members(2);
        m[0].score = 0.0;
        let chosen = (0u32..400)
            .filter(|i| {
                place(&i.to_le_bytes(), 1, 0, 1, &m, &[])
                    .expect("place")
                    .holders[0]
                    == m[0].peer
            })
            .count();
        assert!(chosen < 150, "low score chosen {chosen} of 400 times");
    }

    #[test]
    fn survival_counts_copies_exactly() {
        let a = vec![1u8];
        let b = vec![2u8];
        let c = vec![3u8];
        // Shards 0, 1, 2 on a, b, c, plus a second copy of shard 0 on b.
        let holders = vec![vec![a.clone(), b.clone()], vec![b.clone()], vec![c.clone()]];
        assert_eq!(survivable_losses(2, &holders), 1);
        assert!(survives_without(2, &holders, &a));
        assert!(survives_without(2, &holders, &b));
        assert_eq!(survivable_losses(3, &holders), 0);
        assert!(!survives_without(3, &holders, &c));
        assert_eq!(survivable_losses(1, &holders), 2);
    }
}
