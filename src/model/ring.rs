//! The consistent-hash ring: which nodes own which keys, and how a joining node picks its tokens.
//!
//! Every node places tokens (virtual nodes) on a ring of 2^128 positions. A key lands at
//! [`token_of`] (its MD5 digest read as a big-endian integer) and belongs to the first token
//! at or after that position, walking clockwise and wrapping past the top. A token therefore
//! owns the range (previous token, token]. When two nodes hold the same token, the node with
//! the smaller id comes first: it owns the range and the other node's copy owns nothing.
//!
//! A key's replicas are its preference list: the first `n` distinct nodes met walking
//! clockwise from the key ([`Ring::preference_list`]).
//!
//! Random tokens leave ownership uneven, so a joining node takes its tokens from
//! [`allocate_tokens`], which carves them out of the ranges of the nodes that own the most.
//! [`build_balanced`] joins a list of nodes one by one this way.
//!
//! The ring is a pure data structure: it does no I/O and never changes once built. Membership
//! changes build a new ring ([`Ring::with_member`], [`Ring::without_member`]).

use std::collections::{BTreeMap, BinaryHeap};

use md5::{Digest, Md5};

/// A position on the ring.
pub type Token = u128;

/// The id of a node.
pub type NodeId = String;

/// The ranges (previous token, token] between sorted, distinct `tokens`, the first wrapping
/// from the last; one token gives the whole ring, (t, t].
pub fn ranges_between(tokens: Vec<Token>) -> Vec<(Token, Token)> {
    let Some(&last) = tokens.last() else {
        return Vec::new();
    };
    let mut prev = last;
    tokens
        .into_iter()
        .map(|t| {
            let range = (prev, t);
            prev = t;
            range
        })
        .collect()
}

/// The number of tokens a node places on the ring unless told otherwise.
pub const DEFAULT_VNODES: usize = 128;

/// The size of the ring, 2^128, as a float.
const RING_SIZE: f64 = 340_282_366_920_938_463_463_374_607_431_768_211_456.0;

/// Returns the ring position of a key: its MD5 digest read as a big-endian integer.
pub fn token_of(key: &[u8]) -> Token {
    let digest: [u8; 16] = Md5::digest(key).into();
    u128::from_be_bytes(digest)
}

/// A consistent-hash ring of nodes and their tokens.
///
/// Nodes are kept sorted by id. Every node on the ring holds at least one token; a member
/// given no tokens is left out, since it owns nothing and can replicate nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// The node ids, sorted and distinct.
    nodes: Vec<NodeId>,
    /// The tokens of each node, sorted and distinct, indexed like `nodes`.
    node_tokens: Vec<Vec<Token>>,
    /// Every (token, node index) pair, sorted by token and then by node index.
    ///
    /// Node indexes follow id order, so sorting by index breaks token ties by node id.
    entries: Vec<(Token, usize)>,
}

impl Ring {
    /// Builds a ring from its members and their tokens.
    ///
    /// A node listed twice gets the union of its token lists, and duplicate tokens of one node
    /// count once. Members without tokens are left out.
    pub fn new(members: impl IntoIterator<Item = (NodeId, Vec<Token>)>) -> Ring {
        let mut by_node: BTreeMap<NodeId, Vec<Token>> = BTreeMap::new();
        for (node, tokens) in members {
            by_node.entry(node).or_default().extend(tokens);
        }
        let mut nodes = Vec::with_capacity(by_node.len());
        let mut node_tokens = Vec::with_capacity(by_node.len());
        for (node, mut tokens) in by_node {
            tokens.sort_unstable();
            tokens.dedup();
            if tokens.is_empty() {
                continue;
            }
            nodes.push(node);
            node_tokens.push(tokens);
        }
        let mut entries: Vec<(Token, usize)> = node_tokens
            .iter()
            .enumerate()
            .flat_map(|(index, tokens)| tokens.iter().map(move |&token| (token, index)))
            .collect();
        entries.sort_unstable();
        Ring {
            nodes,
            node_tokens,
            entries,
        }
    }

    /// Returns an empty ring.
    pub fn empty() -> Ring {
        Ring {
            nodes: Vec::new(),
            node_tokens: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Returns the members of the ring and their tokens, in node id order.
    ///
    /// `Ring::new(ring.members())` rebuilds the same ring.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, Vec<Token>)> + '_ {
        self.nodes
            .iter()
            .cloned()
            .zip(self.node_tokens.iter().cloned())
    }

    /// Returns a new ring with `node` added holding `tokens`.
    ///
    /// If `node` is already a member, its tokens become the union of the old and new ones.
    pub fn with_member(&self, node: NodeId, tokens: Vec<Token>) -> Ring {
        Ring::new(self.members().chain(std::iter::once((node, tokens))))
    }

    /// Returns a new ring without `node` (the same ring if it is not a member).
    pub fn without_member(&self, node: &str) -> Ring {
        Ring::new(self.members().filter(|(id, _)| id != node))
    }

    /// Returns the node ids on the ring, sorted.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Returns the number of nodes on the ring.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Returns whether `node` is on the ring.
    pub fn contains(&self, node: &str) -> bool {
        self.index_of(node).is_some()
    }

    /// Returns the sorted tokens of `node`, or an empty slice if it is not on the ring.
    pub fn tokens_of(&self, node: &str) -> &[Token] {
        match self.index_of(node) {
            Some(index) => &self.node_tokens[index],
            None => &[],
        }
    }

    /// Returns the number of tokens on the ring, over all nodes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns whether the ring has no tokens (and so no nodes).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the ring's token ranges (previous token, token], one per token in token order
    /// (entries sharing a token make one range); the first wraps from the last token. One
    /// token gives the whole ring, (t, t]. Each range's keys have the token's preference list.
    pub fn token_ranges(&self) -> Vec<(Token, Token)> {
        let mut tokens: Vec<Token> = self.entries.iter().map(|(t, _)| *t).collect();
        tokens.dedup();
        ranges_between(tokens)
    }

    /// Returns the node that owns `token`: the holder of the first token at or after it,
    /// wrapping. Returns `None` for an empty ring.
    pub fn owner(&self, token: Token) -> Option<&NodeId> {
        let start = self.first_entry_at_or_after(token)?;
        Some(&self.nodes[self.entries[start].1])
    }

    /// Returns the first `n` distinct nodes met walking clockwise from the key's token.
    ///
    /// The list is shorter than `n` when the ring has fewer than `n` nodes. The first node is
    /// the owner of the key.
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        self.preference_list_for_token(token_of(key), n)
    }

    /// Returns the first `n` distinct nodes met walking clockwise from `token` (the first
    /// token at or after it, wrapping).
    pub fn preference_list_for_token(&self, token: Token, n: usize) -> Vec<NodeId> {
        let wanted = n.min(self.nodes.len());
        let mut list = Vec::with_capacity(wanted);
        let Some(start) = self.first_entry_at_or_after(token) else {
            return list;
        };
        let mut seen = vec![false; self.nodes.len()];
        let (after, before) = self.entries.split_at(start);
        for &(_, index) in before.iter().chain(after) {
            if list.len() == wanted {
                break;
            }
            if !seen[index] {
                seen[index] = true;
                list.push(self.nodes[index].clone());
            }
        }
        list
    }

    /// Returns the fraction of the ring each node owns.
    ///
    /// The fractions sum to 1 (up to rounding) unless the ring is empty. A node whose every
    /// token ties with a node of smaller id owns 0.
    pub fn ownership(&self) -> BTreeMap<NodeId, f64> {
        self.nodes
            .iter()
            .cloned()
            .zip(self.owned_fractions())
            .collect()
    }

    /// Returns the largest ownership divided by the mean ownership: 1.0 is perfect balance.
    ///
    /// An empty ring counts as balanced.
    pub fn balance(&self) -> f64 {
        if self.nodes.is_empty() {
            return 1.0;
        }
        let largest = self.owned_fractions().into_iter().fold(0.0, f64::max);
        largest * self.nodes.len() as f64
    }

    /// The index (0..[`Ring::len`]) of the ring range that holds `token`: the range ending at
    /// the first token at or after it, wrapping. Every token of one range has the same
    /// preference list, so callers may cache per range. `None` for an empty ring.
    pub fn range_index(&self, token: Token) -> Option<usize> {
        self.first_entry_at_or_after(token)
    }

    /// Returns the index of `node` in `nodes`.
    fn index_of(&self, node: &str) -> Option<usize> {
        self.nodes.binary_search_by(|id| id.as_str().cmp(node)).ok()
    }

    /// Returns the index in `entries` of the first token at or after `token`, wrapping to the
    /// start, or `None` for an empty ring.
    fn first_entry_at_or_after(&self, token: Token) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let start = self.entries.partition_point(|&(t, _)| t < token);
        Some(if start == self.entries.len() {
            0
        } else {
            start
        })
    }

    /// Returns the fraction of the ring each node owns, indexed like `nodes`.
    ///
    /// The positions are summed exactly and rounded once per node, so a node owning the
    /// whole ring gets exactly 1.0 and the fractions sum to 1 within a few ulps per node.
    fn owned_fractions(&self) -> Vec<f64> {
        // The positions a node owns, or `None` once they reach 2^128, the whole ring.
        let mut owned: Vec<Option<u128>> = vec![Some(0); self.nodes.len()];
        for range in self.ranges() {
            let total = &mut owned[range.node];
            *total = match *total {
                Some(sum) if !range.whole => sum.checked_add(range.size),
                _ => None,
            };
        }
        owned
            .into_iter()
            .map(|total| total.map_or(1.0, |sum| sum as f64 / RING_SIZE))
            .collect()
    }

    /// Yields the range each entry owns, in ring order.
    fn ranges(&self) -> impl Iterator<Item = Range> + '_ {
        let last = self.entries.last().map_or(0, |&(token, _)| token);
        let starts = std::iter::once(last).chain(self.entries.iter().map(|&(token, _)| token));
        self.entries
            .iter()
            .zip(starts)
            .enumerate()
            .map(|(position, (&(end, node), start))| {
                let size = end.wrapping_sub(start);
                // The first entry's range wraps around from the last token; if both are the
                // same token, every token on the ring is equal and the first entry owns it all.
                let whole = position == 0 && size == 0;
                Range {
                    node,
                    start,
                    size,
                    whole,
                }
            })
    }
}

/// The range (start, start + size] owned by one entry of the ring.
#[derive(Debug, Clone, Copy)]
struct Range {
    /// The index of the owning node.
    node: usize,
    /// The exclusive start of the range.
    start: Token,
    /// The number of positions in the range, unless `whole` is set.
    size: u128,
    /// Whether the range is the whole ring, whose size 2^128 does not fit in a `u128`.
    whole: bool,
}

impl Range {
    /// Returns the size of the range, with the whole ring counted as `u128::MAX`.
    fn size_saturated(&self) -> u128 {
        if self.whole {
            u128::MAX
        } else {
            self.size
        }
    }
}

/// Chooses `vnodes` tokens for a node joining `ring`, so that it takes its fair share of the
/// ring from the nodes that own the most.
///
/// On an empty ring the tokens are evenly spaced: `i * 2^128 / vnodes`. Otherwise the new node
/// aims at 1/(n + 1) of the ring for n nodes, in `vnodes` slices of equal size. Each slice comes
/// from the node whose ownership most exceeds the new mean 1/(n + 1): the slice is cut from the
/// start of that node's largest range, and the new token is placed at the cut, so the new node
/// owns (range start, token]. When every node holds the same number of tokens, the largest
/// range of a node above the mean is larger than a slice, so the new node gets exactly its
/// share. Rings grown this way stay within about 2/`vnodes` of perfect balance (below 1.008
/// with 128 vnodes from 3 to 100 nodes).
///
/// The result is sorted, distinct, disjoint from the ring's tokens, and depends only on `ring`
/// and `vnodes`.
pub fn allocate_tokens(ring: &Ring, vnodes: usize) -> Vec<Token> {
    if vnodes == 0 {
        return Vec::new();
    }
    if ring.is_empty() {
        return evenly_spaced(vnodes);
    }

    let node_count = ring.node_count();
    let mean = 1.0 / (node_count + 1) as f64;
    let slices = (node_count as u128 + 1).saturating_mul(vnodes as u128);
    // A slice is 2^128 / slices, rounded down (u128::MAX stands in for 2^128).
    let slice = (u128::MAX / slices).max(1);

    // Each node's ownership above the new mean, and its ranges as a max-heap by size. Ties on
    // size pop the range with the larger start first, which is deterministic.
    let mut excess: Vec<f64> = ring
        .owned_fractions()
        .into_iter()
        .map(|owned| owned - mean)
        .collect();
    let mut ranges: Vec<BinaryHeap<(u128, Token)>> = vec![BinaryHeap::new(); node_count];
    for range in ring.ranges() {
        ranges[range.node].push((range.size_saturated(), range.start));
    }

    let mut tokens = Vec::with_capacity(vnodes);
    while tokens.len() < vnodes {
        // The node most above the mean gives the next slice; ties go to the smaller id.
        let Some(donor) = pick_donor(&excess) else {
            // No node has a range left that can be split; only a ring of a few tokens with
            // tiny ranges gets here.
            break;
        };
        let (size, start) = ranges[donor]
            .pop()
            .expect("pick_donor only picks nodes with ranges left");
        if size < 2 {
            // A range of one position cannot be split without a tie. The node's other ranges
            // are no larger, so it is out of the running.
            excess[donor] = f64::NEG_INFINITY;
            continue;
        }
        // Take a slice, or most of the range if it is smaller, leaving the donor at least one
        // position so the new token never lands on an existing one.
        let taken = slice.min(size - (size / 4).max(1));
        let token = start.wrapping_add(taken);
        tokens.push(token);
        ranges[donor].push((size - taken, token));
        excess[donor] -= taken as f64 / RING_SIZE;
    }
    tokens.sort_unstable();
    tokens
}

/// Returns the index of the node with the largest excess, the smallest index on ties, or
/// `None` if every node is out of the running.
fn pick_donor(excess: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (index, &value) in excess.iter().enumerate() {
        if value == f64::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|b| value > excess[b]) {
            best = Some(index);
        }
    }
    best
}

/// Returns `count` evenly spaced tokens starting at 0: `i * 2^128 / count`, rounded down.
fn evenly_spaced(count: usize) -> Vec<Token> {
    let count = count as u128;
    // The step is 2^128 / count rounded down; u128::MAX / count is one short exactly when
    // count divides 2^128.
    let step = u128::MAX / count + u128::from(u128::MAX % count == count - 1);
    (0..count).map(|i| i * step).collect()
}

/// Builds a ring by joining `node_ids` one by one, each taking `vnodes` tokens from
/// [`allocate_tokens`]. An id listed twice joins once.
pub fn build_balanced(node_ids: &[NodeId], vnodes: usize) -> Ring {
    let mut ring = Ring::empty();
    for node in node_ids {
        if ring.contains(node) {
            continue;
        }
        let tokens = allocate_tokens(&ring, vnodes);
        ring = ring.with_member(node.clone(), tokens);
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn ids(count: usize) -> Vec<NodeId> {
        (0..count).map(|i| format!("node-{i:03}")).collect()
    }

    /// The ranges tile the ring: each starts where the previous ended, the first wraps from
    /// the last token, and every key's token is in the range of its owner's token.
    #[test]
    fn ranges_tile_the_ring() {
        let ring = build_balanced(&ids(3), 8);
        let ranges = ring.token_ranges();
        assert_eq!(ranges.len(), 24);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        assert_eq!(ranges[0].0, ranges[23].1);
        for key in ["a", "b", "key-7", "zzz"] {
            let t = token_of(key.as_bytes());
            let (after, upto) = ranges
                .iter()
                .copied()
                .find(|&(a, b)| {
                    if a < b {
                        a < t && t <= b
                    } else {
                        t > a || t <= b
                    }
                })
                .unwrap();
            assert!(after != upto);
            assert_eq!(ring.owner(upto), ring.owner(t));
        }
        let one = Ring::new([("n".to_string(), vec![5])]);
        assert_eq!(one.token_ranges(), vec![(5, 5)]);
        assert!(Ring::empty().token_ranges().is_empty());
    }

    /// The preference list computed the slow way: sort every (token, node id) pair and walk.
    fn reference_preference_list(
        members: &[(NodeId, Vec<Token>)],
        token: Token,
        n: usize,
    ) -> Vec<NodeId> {
        let mut pairs: Vec<(Token, NodeId)> = members
            .iter()
            .flat_map(|(node, tokens)| tokens.iter().map(move |&t| (t, node.clone())))
            .collect();
        pairs.sort();
        pairs.dedup();
        let start = pairs.iter().position(|(t, _)| *t >= token).unwrap_or(0);
        let mut list: Vec<NodeId> = Vec::new();
        for i in 0..pairs.len() {
            let node = &pairs[(start + i) % pairs.len()].1;
            if list.len() < n && !list.contains(node) {
                list.push(node.clone());
            }
        }
        list
    }

    #[test]
    fn token_of_is_md5_big_endian() {
        assert_eq!(token_of(b""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(token_of(b"abc"), 0x900150983cd24fb0d6963f7d28e17f72);
    }

    #[test]
    fn ring_size_constant_is_two_to_the_128() {
        assert_eq!(RING_SIZE, 2f64.powi(128));
    }

    #[test]
    fn ranges_are_previous_token_exclusive_to_token_inclusive() {
        let ring = Ring::new([("a".to_string(), vec![10]), ("b".to_string(), vec![20])]);
        assert_eq!(ring.owner(10), Some(&"a".to_string()));
        assert_eq!(ring.owner(11), Some(&"b".to_string()));
        assert_eq!(ring.owner(20), Some(&"b".to_string()));
        assert_eq!(ring.owner(21), Some(&"a".to_string()));
        assert_eq!(ring.owner(u128::MAX), Some(&"a".to_string()));
        assert_eq!(ring.owner(0), Some(&"a".to_string()));
        assert_eq!(ring.preference_list_for_token(15, 5), vec!["b", "a"]);
        let ownership = ring.ownership();
        assert!((ownership["b"] - 10.0 / RING_SIZE).abs() < 1e-30);
    }

    #[test]
    fn ties_go_to_the_smaller_node_id() {
        let ring = Ring::new([("b".to_string(), vec![5]), ("a".to_string(), vec![5])]);
        assert_eq!(ring.owner(3), Some(&"a".to_string()));
        assert_eq!(ring.preference_list_for_token(5, 2), vec!["a", "b"]);
        let ownership = ring.ownership();
        assert_eq!(ownership["a"], 1.0);
        assert_eq!(ownership["b"], 0.0);
        assert_eq!(ring.balance(), 2.0);
    }

    #[test]
    fn single_token_owns_the_whole_ring() {
        let ring = Ring::new([("a".to_string(), vec![7])]);
        assert_eq!(ring.ownership()["a"], 1.0);
        assert_eq!(ring.balance(), 1.0);
        let tokens = allocate_tokens(&ring, 1);
        assert_eq!(tokens.len(), 1);
        let ring = ring.with_member("b".to_string(), tokens);
        assert!((ring.ownership()["b"] - 0.5).abs() < 1e-9);
        // The sum of a lone node's ranges is exact, so it owns exactly 1.0, not a rounding
        // error above it.
        let lone = Ring::new([(
            "a".to_string(),
            vec![
                140380638950525686191655891535739044841,
                145615579892407023652165479399455802346,
                221967616939983562714753047064473846762,
                275579725577474957244083199475636847595,
            ],
        )]);
        assert_eq!(lone.ownership()["a"], 1.0);
    }

    #[test]
    fn members_without_tokens_are_left_out() {
        let ring = Ring::new([
            ("a".to_string(), vec![1, 1, 2]),
            ("b".to_string(), vec![]),
            ("a".to_string(), vec![3]),
        ]);
        assert_eq!(ring.nodes(), ["a"]);
        assert_eq!(ring.tokens_of("a"), [1, 2, 3]);
        assert_eq!(ring.tokens_of("b"), [] as [Token; 0]);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.node_count(), 1);
    }

    #[test]
    fn empty_ring() {
        let ring = Ring::empty();
        assert!(ring.is_empty());
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.owner(0), None);
        assert!(ring.preference_list(b"key", 3).is_empty());
        assert!(ring.ownership().is_empty());
        assert_eq!(ring.balance(), 1.0);
    }

    #[test]
    fn empty_ring_gets_evenly_spaced_tokens() {
        let tokens = allocate_tokens(&Ring::empty(), 4);
        assert_eq!(tokens, vec![0, 1 << 126, 2 << 126, 3 << 126]);
        let tokens = allocate_tokens(&Ring::empty(), 3);
        assert_eq!(tokens[1], u128::MAX / 3);
        assert!(allocate_tokens(&Ring::empty(), 0).is_empty());
        let ring = build_balanced(&ids(1), 128);
        assert!(ring.ownership().values().all(|&o| o == 1.0));
        let ring = build_balanced(&ids(2), 128);
        assert!((ring.balance() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn build_balanced_is_deterministic_and_incremental() {
        let nodes = ids(12);
        let ring = build_balanced(&nodes, 64);
        assert_eq!(ring, build_balanced(&nodes, 64));
        let smaller = build_balanced(&nodes[..11], 64);
        let joined = smaller.with_member(nodes[11].clone(), allocate_tokens(&smaller, 64));
        assert_eq!(ring, joined);
        // A repeated id joins once.
        let mut repeated = nodes.clone();
        repeated.push(nodes[0].clone());
        assert_eq!(build_balanced(&repeated, 64), ring);
    }

    /// The allocator's promise: with 128 vnodes and nodes joining one by one, no node owns
    /// more than 10 % above the mean, for every cluster size from 3 to 100.
    #[test]
    fn allocator_keeps_balance_within_ten_percent_up_to_100_nodes() {
        let started = Instant::now();
        let nodes = ids(100);
        let mut ring = Ring::empty();
        let mut worst = (1.0f64, 0usize);
        for (joined, node) in nodes.iter().enumerate() {
            let tokens = allocate_tokens(&ring, DEFAULT_VNODES);
            assert_eq!(tokens.len(), DEFAULT_VNODES);
            ring = ring.with_member(node.clone(), tokens);
            let size = joined + 1;
            assert_eq!(ring.len(), size * DEFAULT_VNODES, "tokens collided");
            if size < 3 {
                continue;
            }
            let balance = ring.balance();
            assert!(
                balance <= 1.10,
                "balance {balance} with {size} nodes exceeds 1.10"
            );
            if balance > worst.0 {
                worst = (balance, size);
            }
            let ownership = ring.ownership();
            let smallest = ownership.values().copied().fold(1.0, f64::min);
            assert!(smallest > 0.0);
        }
        eprintln!(
            "ring balance: worst {:.6} (at {} nodes) over 3..=100 nodes with {} vnodes, in {:?}",
            worst.0,
            worst.1,
            DEFAULT_VNODES,
            started.elapsed()
        );
    }

    /// Tokens drawn from a tiny space collide often, which exercises the tie rules.
    fn token_strategy() -> impl Strategy<Value = Token> {
        prop_oneof![0u128..32, any::<u128>()]
    }

    fn members_strategy() -> impl Strategy<Value = Vec<(NodeId, Vec<Token>)>> {
        prop::collection::vec(prop::collection::vec(token_strategy(), 1..12), 1..8).prop_map(
            |token_lists| {
                token_lists
                    .into_iter()
                    .enumerate()
                    .map(|(i, tokens)| (format!("n{i}"), tokens))
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn preference_list_matches_reference(
            members in members_strategy(),
            key in prop::collection::vec(any::<u8>(), 0..16),
            probe in token_strategy(),
            n in 0usize..10,
        ) {
            let ring = Ring::new(members.clone());
            for token in [token_of(&key), probe] {
                let list = ring.preference_list_for_token(token, n);
                prop_assert_eq!(&list, &reference_preference_list(&members, token, n));
                prop_assert_eq!(list.len(), n.min(ring.node_count()));
                let mut distinct = list.clone();
                distinct.sort();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), list.len());
                if n > 0 {
                    prop_assert_eq!(list.first(), ring.owner(token));
                }
            }
            prop_assert_eq!(ring.preference_list(&key, n), ring.preference_list_for_token(token_of(&key), n));
        }

        #[test]
        fn removing_a_node_only_changes_lists_that_held_it(
            members in members_strategy(),
            removed in any::<prop::sample::Index>(),
            key in prop::collection::vec(any::<u8>(), 0..16),
            n in 1usize..6,
        ) {
            let ring = Ring::new(members);
            let gone = removed.get(ring.nodes()).clone();
            let smaller = ring.without_member(&gone);
            let before = ring.preference_list(&key, n);
            let after = smaller.preference_list(&key, n);
            let kept: Vec<NodeId> = before.iter().filter(|&node| *node != gone).cloned().collect();
            if before.contains(&gone) {
                prop_assert_eq!(&after[..kept.len()], &kept[..]);
                prop_assert!(after.len() <= kept.len() + 1);
                prop_assert_eq!(after.len(), n.min(smaller.node_count()));
            } else {
                prop_assert_eq!(after, before);
            }
        }

        #[test]
        fn adding_a_node_only_inserts_it(
            members in members_strategy(),
            tokens in prop::collection::vec(token_strategy(), 1..12),
            key in prop::collection::vec(any::<u8>(), 0..16),
            n in 1usize..6,
        ) {
            let ring = Ring::new(members);
            let bigger = ring.with_member("new".to_string(), tokens);
            let before = ring.preference_list(&key, n);
            let after = bigger.preference_list(&key, n);
            let others: Vec<NodeId> = after.iter().filter(|&node| node != "new").cloned().collect();
            prop_assert_eq!(&before[..others.len()], &others[..]);
            prop_assert_eq!(after.len(), n.min(bigger.node_count()));
        }

        #[test]
        fn ownership_sums_to_one(members in members_strategy()) {
            let ring = Ring::new(members);
            let ownership = ring.ownership();
            prop_assert_eq!(ownership.len(), ring.node_count());
            prop_assert!(ownership.values().all(|&o| (0.0..=1.0).contains(&o)));
            let total: f64 = ownership.values().sum();
            prop_assert!((total - 1.0).abs() < 1e-9, "total {}", total);
            prop_assert!(ring.balance() >= 1.0 - 1e-9);
        }

        #[test]
        fn allocated_tokens_are_fresh_and_deterministic(
            members in members_strategy(),
            vnodes in 0usize..40,
        ) {
            let ring = Ring::new(members);
            let tokens = allocate_tokens(&ring, vnodes);
            prop_assert_eq!(&tokens, &allocate_tokens(&ring, vnodes));
            prop_assert!(tokens.len() <= vnodes);
            prop_assert!(tokens.windows(2).all(|pair| pair[0] < pair[1]));
            for token in &tokens {
                prop_assert!(!ring.entries.iter().any(|(t, _)| t == token));
            }
            let bigger = ring.with_member("new".to_string(), tokens);
            let share = bigger.ownership().get("new").copied().unwrap_or(0.0);
            prop_assert!(share <= 1.0 / (ring.node_count() + 1) as f64 + 1e-9);
        }

        #[test]
        fn balanced_rings_stay_balanced(node_count in 3usize..24, vnodes in 16usize..64) {
            let ring = build_balanced(&ids(node_count), vnodes);
            prop_assert_eq!(ring.len(), node_count * vnodes);
            // Sweeping 1 to 300 vnodes and up to 30 nodes, the worst ring found sits 1.875
            // slices above the mean; two slices leave a little room.
            let bound = 1.0 + 2.0 / vnodes as f64;
            prop_assert!(ring.balance() <= bound, "balance {} above {}", ring.balance(), bound);
        }
    }
}
