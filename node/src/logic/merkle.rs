//! The Merkle tree of one token range of a replica, for anti-entropy: two replicas compare
//! their roots, then their leaves, and only the keys of the leaves that differ are read and
//! exchanged, so a repair's traffic follows the replicas' difference, not their size.
//!
//! A range (after, upto] is cut into [`LEAVES`] leaves of equal token width (the last may be
//! narrower; a range narrower than `LEAVES` tokens has empty leaves past its width). A key
//! falls in the leaf of its token. Each key contributes the hash of its length, its bytes and
//! its stored siblings' encoding (canonical: replicas holding the same versions hold the same
//! bytes): `SHA-256(len(key) as u32 BE ‖ key ‖ siblings)`, its first [`HASH_BYTES`] bytes. A
//! leaf is the XOR of its keys' hashes (so order does not matter, and a write could update it
//! in place), all zero when empty; the root is the hash of the leaves in order.
//!
//! The tree is rebuilt from the engine for each comparison (one ordered scan of the range, see
//! `store::keyspace::data_ranges`) rather than kept up to date on every write: writes pay
//! nothing, and a repair reads each range once per replica.

use kvctl::model::ring::{token_of, Token};

/// Leaves per range.
pub const LEAVES: usize = 256;
/// Bytes of a tree hash.
pub const HASH_BYTES: usize = 16;

pub type Hash = [u8; HASH_BYTES];

/// The width of the range (after, upto] in tokens, `None` for the whole ring (2^128).
fn width(after: Token, upto: Token) -> Option<Token> {
    match upto.wrapping_sub(after) {
        0 => None,
        w => Some(w),
    }
}

/// Tokens per leaf of the range (after, upto].
fn step(after: Token, upto: Token) -> Token {
    match width(after, upto) {
        None => 1 << (128 - LEAVES.trailing_zeros()),
        Some(w) => w.div_ceil(LEAVES as Token),
    }
}

/// The leaf of `token`, which must be in (after, upto].
pub fn leaf_of(after: Token, upto: Token, token: Token) -> usize {
    let offset = token.wrapping_sub(after).wrapping_sub(1);
    ((offset / step(after, upto)) as usize).min(LEAVES - 1)
}

/// The token range (a, b] of leaf `i` of (after, upto], or `None` if the leaf is past the
/// range's width (always empty).
pub fn leaf_range(after: Token, upto: Token, i: usize) -> Option<(Token, Token)> {
    let step = step(after, upto);
    let start = step.checked_mul(i as Token)?;
    let (start, end) = match width(after, upto) {
        Some(w) if start >= w => return None,
        Some(w) => (start, start.saturating_add(step).min(w)),
        // The last leaf of the whole ring ends at 2^128, that is back at `after`.
        None => (start, start.wrapping_add(step)),
    };
    Some((after.wrapping_add(start), after.wrapping_add(end)))
}

/// The hash one key with its stored siblings adds to its leaf.
pub fn entry_hash(key: &[u8], siblings: &[u8]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(key.len() as u32).to_be_bytes());
    ctx.update(key);
    ctx.update(siblings);
    let mut out = [0; HASH_BYTES];
    out.copy_from_slice(&ctx.finish().as_ref()[..HASH_BYTES]);
    out
}

/// One range's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeTree {
    pub leaves: Vec<Hash>,
    /// Keys in the range.
    pub keys: u64,
}

impl RangeTree {
    /// The tree of the keys `entries` (key, stored siblings) of the range (after, upto]; keys
    /// outside it are left out.
    pub fn build<K: AsRef<[u8]>, S: AsRef<[u8]>>(
        after: Token,
        upto: Token,
        entries: impl IntoIterator<Item = (K, S)>,
    ) -> RangeTree {
        let hashed = entries.into_iter().map(|(key, siblings)| {
            let hash = entry_hash(key.as_ref(), siblings.as_ref());
            (key, hash)
        });
        RangeTree::from_hashes(after, upto, hashed)
    }

    /// The tree of keys given with their entry hashes ([`entry_hash`]).
    pub fn from_hashes<K: AsRef<[u8]>>(
        after: Token,
        upto: Token,
        entries: impl IntoIterator<Item = (K, Hash)>,
    ) -> RangeTree {
        let mut tree = RangeTree {
            leaves: vec![[0; HASH_BYTES]; LEAVES],
            keys: 0,
        };
        for (key, hash) in entries {
            let token = token_of(key.as_ref());
            if in_range(after, upto, token) {
                tree.add(leaf_of(after, upto, token), &hash);
            }
        }
        tree
    }

    fn add(&mut self, leaf: usize, hash: &Hash) {
        for (a, b) in self.leaves[leaf].iter_mut().zip(hash) {
            *a ^= b;
        }
        self.keys += 1;
    }

    /// The hash of the leaves in order.
    pub fn root(&self) -> Hash {
        root_of(&self.leaves)
    }
}

/// The root of `leaves`.
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for leaf in leaves {
        ctx.update(leaf);
    }
    let mut out = [0; HASH_BYTES];
    out.copy_from_slice(&ctx.finish().as_ref()[..HASH_BYTES]);
    out
}

/// Whether `token` is in the ring range (after, upto] (`after == upto`: the whole ring).
pub fn in_range(after: Token, upto: Token, token: Token) -> bool {
    match after.cmp(&upto) {
        std::cmp::Ordering::Less => after < token && token <= upto,
        std::cmp::Ordering::Greater => token > after || token <= upto,
        std::cmp::Ordering::Equal => true,
    }
}

/// The leaves where trees differ: every index whose hash is not the same in all `trees`.
pub fn differing(trees: &[&[Hash]]) -> Vec<usize> {
    (0..LEAVES)
        .filter(|&i| {
            let first = trees.first().and_then(|t| t.get(i));
            trees.iter().any(|t| t.get(i) != first)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize, tag: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    format!("key-{i}").into_bytes(),
                    format!("{tag}-{i}").into_bytes(),
                )
            })
            .collect()
    }

    /// Every token of a range is in exactly one leaf, whose range holds it; leaves tile the
    /// range in order, for plain, wrapping, narrow and whole-ring ranges.
    #[test]
    fn leaves_tile_the_range() {
        let m = Token::MAX;
        for (after, upto) in [(1000, 5000), (m - 100, 300), (7, 7), (10, 20), (0, m)] {
            let mut prev_end = after;
            for i in 0..LEAVES {
                match leaf_range(after, upto, i) {
                    Some((a, b)) => {
                        assert_eq!(a, prev_end, "({after}, {upto}] leaf {i}");
                        prev_end = b;
                    }
                    // Past the width (ceil(width / LEAVES) tokens a leaf).
                    None => assert_eq!(prev_end, upto),
                }
            }
            assert_eq!(prev_end, upto, "({after}, {upto}]");
            for t in [after.wrapping_add(1), upto, after.wrapping_add(3)] {
                if !in_range(after, upto, t) {
                    continue;
                }
                let (a, b) = leaf_range(after, upto, leaf_of(after, upto, t)).unwrap();
                assert!(
                    in_range(a, b, t),
                    "{t} in leaf ({a}, {b}] of ({after}, {upto}]"
                );
            }
        }
    }

    /// Equal contents give equal trees whatever the order; a changed or missing key changes
    /// its leaf alone, and the root.
    #[test]
    fn trees_differ_where_keys_differ() {
        let (after, upto) = (0, 0);
        let a = RangeTree::build(after, upto, entries(500, "v"));
        let mut shuffled = entries(500, "v");
        shuffled.reverse();
        let b = RangeTree::build(after, upto, shuffled);
        assert_eq!(a, b);
        assert_eq!(a.keys, 500);
        assert!(differing(&[&a.leaves, &b.leaves]).is_empty());

        let mut changed = entries(500, "v");
        changed[17].1 = b"other".to_vec();
        changed.remove(300);
        let c = RangeTree::build(after, upto, changed);
        assert_ne!(a.root(), c.root());
        let diff = differing(&[&a.leaves, &b.leaves, &c.leaves]);
        let expected: std::collections::BTreeSet<usize> = [17, 300]
            .iter()
            .map(|&i| leaf_of(after, upto, token_of(format!("key-{i}").as_bytes())))
            .collect();
        assert_eq!(
            diff.into_iter().collect::<std::collections::BTreeSet<_>>(),
            expected
        );
    }

    /// Keys outside the range are left out of its tree.
    #[test]
    fn only_the_range_counts() {
        let all = entries(200, "v");
        let (after, upto) = (Token::MAX / 4, Token::MAX / 2);
        let tree = RangeTree::build(after, upto, all.iter().map(|(k, v)| (k, v)));
        let inside = all
            .iter()
            .filter(|(k, _)| in_range(after, upto, token_of(k)))
            .count();
        assert_eq!(tree.keys as usize, inside);
        assert!(inside > 0 && inside < 200);
    }
}
