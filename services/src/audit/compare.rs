//! Audit phase 4, [`compare`]: each table's digest in the live store against the rebuilt one,
//! and for a table that differs, the first key where they part ([`first_difference`], a merge
//! of two sorted streams: memory stays bounded whatever the table's size).
//!
//! Not here: building either store.

use crate::hex;
use hearth_projections::ProjectionStore;
use serde::Serialize;
use std::cmp::Ordering;

/// Longest value shown (hex of its first bytes); the full length is reported too.
pub const MAX_SHOWN_BYTES: usize = 256;

/// One table, live against rebuilt.
#[derive(Debug, Clone, Serialize)]
pub struct TableComparison {
    /// Table name: a projection's, `requests` or `rejected`.
    pub table: String,
    /// Digest of the live store's table (hex); `None` when the live store lacks it.
    pub live: Option<String>,
    /// Digest of the rebuilt table (hex); `None` when the rebuild lacks it.
    pub rebuilt: Option<String>,
    /// Whether both digests exist and are equal.
    pub matches: bool,
    /// For a table that differs: the first key where the two differ.
    pub first_difference: Option<Difference>,
}

/// The first key where two tables differ, with both values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The key (hex).
    pub key: String,
    /// The live value (hex, at most [`MAX_SHOWN_BYTES`] bytes shown); `None`: no such key.
    pub live: Option<String>,
    /// The live value's length in bytes.
    pub live_len: Option<usize>,
    /// The rebuilt value, likewise.
    pub rebuilt: Option<String>,
    /// The rebuilt value's length in bytes.
    pub rebuilt_len: Option<usize>,
    /// Byte offset in both values where the shown bytes start: 0, unless the values first
    /// differ beyond [`MAX_SHOWN_BYTES`] (then the window starts shortly before that byte, so
    /// the difference is always in view).
    pub shown_from: usize,
}

impl Difference {
    fn new(key: &[u8], live: Option<&[u8]>, rebuilt: Option<&[u8]>) -> Self {
        let first_diff = match (live, rebuilt) {
            (Some(a), Some(b)) => a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len())),
            _ => 0,
        };
        let from = if first_diff < MAX_SHOWN_BYTES {
            0
        } else {
            first_diff - first_diff % 32
        };
        let shown = |v: &[u8]| {
            let start = from.min(v.len());
            hex::encode(&v[start..v.len().min(start + MAX_SHOWN_BYTES)])
        };
        Difference {
            key: hex::encode(key),
            live: live.map(shown),
            live_len: live.map(<[u8]>::len),
            rebuilt: rebuilt.map(shown),
            rebuilt_len: rebuilt.map(<[u8]>::len),
            shown_from: from,
        }
    }
}

/// A stream of `(key, value)` pairs in ascending key order.
pub type Pairs<'a, E> = Box<dyn Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), E>> + 'a>;

/// The first key where two ascending streams of pairs differ (a key on one side only, or
/// another value); `None` when they are equal.
pub fn first_difference<E>(
    mut live: Pairs<'_, E>,
    mut rebuilt: Pairs<'_, E>,
) -> Result<Option<Difference>, E> {
    let mut a = live.next().transpose()?;
    let mut b = rebuilt.next().transpose()?;
    loop {
        match (&a, &b) {
            (None, None) => return Ok(None),
            (Some((k, v)), None) => return Ok(Some(Difference::new(k, Some(v), None))),
            (None, Some((k, v))) => return Ok(Some(Difference::new(k, None, Some(v)))),
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                Ordering::Less => return Ok(Some(Difference::new(ka, Some(va), None))),
                Ordering::Greater => return Ok(Some(Difference::new(kb, None, Some(vb)))),
                Ordering::Equal if va != vb => {
                    return Ok(Some(Difference::new(ka, Some(va), Some(vb))))
                }
                Ordering::Equal => {
                    a = live.next().transpose()?;
                    b = rebuilt.next().transpose()?;
                }
            },
        }
    }
}

/// Compares every table of the two stores (the union of their tables, in name order).
pub fn compare(
    live: &hearth_projections::Digests,
    live_store: &ProjectionStore,
    rebuilt: &hearth_projections::Digests,
    rebuilt_store: &ProjectionStore,
) -> anyhow::Result<Vec<TableComparison>> {
    let mut names: Vec<&String> = live.keys().chain(rebuilt.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let (l, r) = (live.get(name), rebuilt.get(name));
        let matches = l.is_some() && l == r;
        let first_difference = if matches || l.is_none() || r.is_none() {
            None
        } else {
            first_difference(
                Box::new(live_store.iter(name)?),
                Box::new(rebuilt_store.iter(name)?),
            )?
        };
        out.push(TableComparison {
            table: name.clone(),
            live: l.map(|d| hex::encode(d)),
            rebuilt: r.map(|d| hex::encode(d)),
            matches,
            first_difference,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&[u8], &[u8])]) -> Pairs<'static, std::convert::Infallible> {
        let v: Vec<_> = items
            .iter()
            .map(|(k, v)| Ok((Box::from(*k), Box::from(*v))))
            .collect();
        Box::new(v.into_iter())
    }

    fn diff(
        a: &[(&[u8], &[u8])],
        b: &[(&[u8], &[u8])],
    ) -> Option<(String, Option<String>, Option<String>)> {
        let d = match first_difference(pairs(a), pairs(b)) {
            Ok(d) => d,
            Err(never) => match never {},
        };
        d.map(|d| (d.key, d.live, d.rebuilt))
    }

    #[test]
    fn finds_the_first_differing_key_on_either_side() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(diff(&[], &[]), None);
        assert_eq!(diff(&[(b"a", b"1")], &[(b"a", b"1")]), None);
        // another value
        assert_eq!(
            diff(&[(b"a", b"1"), (b"b", b"2")], &[(b"a", b"1"), (b"b", b"3")]),
            Some(("62".into(), s("32"), s("33")))
        );
        // a key only live has, before the next common key
        assert_eq!(
            diff(&[(b"a", b"1"), (b"b", b"2")], &[(b"b", b"2")]),
            Some(("61".into(), s("31"), None))
        );
        // a key only the rebuild has, at the end
        assert_eq!(
            diff(&[(b"a", b"1")], &[(b"a", b"1"), (b"c", b"")]),
            Some(("63".into(), None, s("")))
        );
        // the first of several differences wins
        assert_eq!(
            diff(&[(b"a", b"1"), (b"b", b"x")], &[(b"a", b"2"), (b"b", b"y")]),
            Some(("61".into(), s("31"), s("32")))
        );
    }

    #[test]
    fn long_values_are_cut_but_their_length_is_kept() {
        let long = vec![0xabu8; MAX_SHOWN_BYTES + 10];
        let live: Pairs<'_, std::convert::Infallible> =
            Box::new(vec![Ok((Box::from(&b"k"[..]), long.clone().into_boxed_slice()))].into_iter());
        let rebuilt: Pairs<'_, std::convert::Infallible> = Box::new(std::iter::empty());
        let d = match first_difference(live, rebuilt) {
            Ok(d) => d.expect("differs"),
            Err(never) => match never {},
        };
        assert_eq!(d.live_len, Some(long.len()));
        assert_eq!(d.live.map(|h| h.len()), Some(2 * MAX_SHOWN_BYTES));
        assert_eq!(d.rebuilt_len, None);
        assert_eq!(d.shown_from, 0);
    }

    #[test]
    fn a_difference_beyond_the_first_bytes_is_shown() {
        let old = vec![0x11u8; 600];
        let mut new = old.clone();
        new[400] = 0x22;
        let pairs = |v: &Vec<u8>| -> Pairs<'_, std::convert::Infallible> {
            Box::new(vec![Ok((Box::from(&b"k"[..]), v.clone().into_boxed_slice()))].into_iter())
        };
        let d = match first_difference(pairs(&new), pairs(&old)) {
            Ok(d) => d.expect("differs"),
            Err(never) => match never {},
        };
        assert_eq!(d.shown_from, 384);
        assert_ne!(d.live, d.rebuilt, "the differing byte is in view");
        assert_eq!(d.live.map(|h| h.len()), Some(2 * (600 - 384)));
    }
}
