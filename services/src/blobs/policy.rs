//! [`ErasurePolicy`]: how many data (`k`) and parity (`m`) shards a new blob gets.
//!
//! `auto` (the default) picks from the number of voters when the blob is accepted, so that a
//! cluster spreads one shard per node and survives as many node losses as its size allows:
//!
//! | voters | k + m | survives | storage overhead |
//! |---|---|---|---|
//! | 1 | 1 + 0 | no loss (use a fixed code to survive rotten shards) | 1× |
//! | 2 | 1 + 1 (two whole copies) | 1 node | 2× |
//! | 3 | 2 + 1 | 1 node | 1.5× |
//! | 4 | 2 + 2 | 2 nodes | 2× |
//! | 5 | 3 + 2 | 2 nodes | 1.67× |
//! | 6 | 4 + 2 | 2 nodes | 1.5× |
//! | 7 or more | 4 + 3 | 3 nodes | 1.75× |
//!
//! A fixed `k+m` (for example `4+3`) applies to every new blob whatever the cluster's size; on a
//! single node it still protects against lost or rotten shard files. The choice is recorded in
//! each blob's `BlobAccepted` event, so changing the policy never changes existing blobs —
//! except that under `auto` a blob accepted when the cluster was smaller gains parity shards
//! when it grows (`node::widener`: its `k` stays, its `m` rises to the table's).

use std::fmt;
use std::str::FromStr;

/// Largest total shard count (`k + m`) of the GF(2^8) code.
pub const MAX_SHARDS: u32 = 256;

/// The erasure policy of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErasurePolicy {
    /// Chosen from the voter count (see the module table).
    #[default]
    Auto,
    /// Always `data + parity`.
    Fixed {
        /// k: data shards (≥ 1).
        data: u32,
        /// m: parity shards (≥ 0).
        parity: u32,
    },
}

/// A policy string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid erasure policy {given:?}: {reason} (expected `auto` or `K+M`, e.g. `4+3`)")]
pub struct PolicyError {
    given: String,
    reason: &'static str,
}

impl ErasurePolicy {
    /// `(k, m)` for a new blob in a cluster of `voters` voters (0 is treated as 1).
    pub fn choose(self, voters: usize) -> (u32, u32) {
        match self {
            ErasurePolicy::Fixed { data, parity } => (data, parity),
            ErasurePolicy::Auto => match voters {
                0 | 1 => (1, 0),
                2 => (1, 1),
                3 => (2, 1),
                4 => (2, 2),
                5 => (3, 2),
                6 => (4, 2),
                _ => (4, 3),
            },
        }
    }
}

impl FromStr for ErasurePolicy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| PolicyError {
            given: s.to_string(),
            reason,
        };
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(ErasurePolicy::Auto);
        }
        let (k, m) = t.split_once('+').ok_or_else(|| err("no `+`"))?;
        let data: u32 = k.trim().parse().map_err(|_| err("k is not a number"))?;
        let parity: u32 = m.trim().parse().map_err(|_| err("m is not a number"))?;
        if data == 0 {
            return Err(err("k must be at least 1"));
        }
        if data.saturating_add(parity) > MAX_SHARDS {
            return Err(err("k + m must be at most 256"));
        }
        Ok(ErasurePolicy::Fixed { data, parity })
    }
}

impl fmt::Display for ErasurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErasurePolicy::Auto => f.write_str("auto"),
            ErasurePolicy::Fixed { data, parity } => write!(f, "{data}+{parity}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_table_and_always_survives_as_many_losses_as_it_can() {
        let want = [(1, 0), (1, 1), (2, 1), (2, 2), (3, 2), (4, 2), (4, 3)];
        for (voters, want) in (1..=7).zip(want) {
            let (k, m) = ErasurePolicy::Auto.choose(voters);
            assert_eq!((k, m), want, "{voters} voters");
            assert!(k + m <= voters as u32, "one shard per node at most");
        }
        assert_eq!(ErasurePolicy::Auto.choose(0), (1, 0));
        assert_eq!(ErasurePolicy::Auto.choose(12), (4, 3));
    }

    #[test]
    fn fixed_codes_parse_print_and_ignore_the_cluster_size() {
        let p: ErasurePolicy = "4+3".parse().expect("parses");
        assert_eq!(p, ErasurePolicy::Fixed { data: 4, parity: 3 });
        assert_eq!(p.to_string(), "4+3");
        assert_eq!(p.choose(1), (4, 3));
        assert_eq!(
            " 1 + 0 ".parse(),
            Ok(ErasurePolicy::Fixed { data: 1, parity: 0 })
        );
        assert_eq!("AUTO".parse(), Ok(ErasurePolicy::Auto));
        assert_eq!(ErasurePolicy::default().to_string(), "auto");
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        for (given, reason) in [
            ("", "no `+`"),
            ("4", "no `+`"),
            ("x+1", "k is not a number"),
            ("4+-1", "m is not a number"),
            ("0+3", "k must be at least 1"),
            ("200+57", "k + m must be at most 256"),
        ] {
            let e = given.parse::<ErasurePolicy>().expect_err(given);
            assert!(e.to_string().contains(reason), "{given}: {e}");
        }
    }
}
