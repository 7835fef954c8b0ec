//! The cluster layout: the one source of ownership.
//!
//! A [`Layout`] is a numbered version of the cluster's shape: its members (id, address,
//! datacenter, rack, tokens) and the tombstones of the ids removed from it, which stay for
//! ever so that nothing from a removed node is taken again. Gossip carries liveness only; a
//! member or a token comes from a layout version, and a version is made in one place
//! ([`Layout::plan`]) from a batch of [`Change`]s, then committed cluster-wide (by the node's
//! commit core).
//!
//! While a change moves data, two versions are live: the [`Transition`] between them says each
//! node's state (joining, normal, leaving), the replica sets a write must reach (those of both
//! versions), the ranges each node must pull before it serves them ([`Transition::moves`]),
//! and which version a read of a token uses ([`Transition::read_version`]).
//!
//! Pure data and functions: no I/O, nothing of the other layers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::model::ring::{allocate_tokens, ranges_between, NodeId, Ring, Token};

/// The datacenter of a member that did not say.
pub const DEFAULT_DC: &str = "dc1";
/// The rack of a member that did not say.
pub const DEFAULT_RACK: &str = "rack1";

/// A member of a layout version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutMember {
    pub addr: SocketAddr,
    pub dc: String,
    pub rack: String,
    pub tokens: Vec<Token>,
}

/// One version of the cluster's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub version: u64,
    /// Replicas per key (N).
    pub replication: usize,
    pub members: BTreeMap<NodeId, LayoutMember>,
    /// Ids removed (decommissioned, removed, replaced), with the version that removed them.
    pub removed: BTreeMap<NodeId, u64>,
}

/// A proposal number of a layout version's commit (Paxos): rounds first, then the
/// proposer's id to break ties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

/// One change to the layout; a new version applies a batch of them at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A new node joins with `tokens`, or, if none are given, `vnodes` tokens the planner
    /// chooses (the balancing allocator against the ring it joins).
    Join {
        id: NodeId,
        addr: SocketAddr,
        dc: String,
        rack: String,
        vnodes: usize,
        tokens: Vec<Token>,
    },
    /// A live node leaves: its ranges move to their new owners first.
    Decommission { id: NodeId },
    /// A dead node is removed: the survivors re-replicate its ranges.
    Remove { id: NodeId },
    /// A new node takes a dead node's tokens (and nothing else moves).
    Replace {
        old: NodeId,
        id: NodeId,
        addr: SocketAddr,
    },
}

impl Change {
    /// The ids the change names (each may be named once in a batch).
    fn ids(&self) -> Vec<&NodeId> {
        match self {
            Change::Join { id, .. } | Change::Decommission { id } | Change::Remove { id } => {
                vec![id]
            }
            Change::Replace { old, id, .. } => vec![old, id],
        }
    }
}

/// Why a batch of changes cannot make a new version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("the change is empty")]
    Empty,
    #[error("{0} is named twice in one change")]
    NamedTwice(NodeId),
    #[error("{0} is a member already")]
    Exists(NodeId),
    #[error(
        "{id} was removed at layout version {at}: a removed id never comes back (a wiped \
         directory joins under a new id)"
    )]
    Removed { id: NodeId, at: u64 },
    #[error("{0} is not a member")]
    Unknown(NodeId),
    #[error("a joining node needs at least one token (vnodes 0)")]
    NoTokens,
    #[error(
        "the change would leave {left} member(s), fewer than the replication ({replication}): \
         every key needs {replication} distinct replicas"
    )]
    TooFew { left: usize, replication: usize },
}

impl Layout {
    /// The first version: `members` as they are, replication `replication`.
    pub fn initial(
        replication: usize,
        members: impl IntoIterator<Item = (NodeId, LayoutMember)>,
    ) -> Layout {
        Layout {
            version: 1,
            replication,
            members: members.into_iter().collect(),
            removed: BTreeMap::new(),
        }
    }

    /// The ring of this version's members.
    pub fn ring(&self) -> Ring {
        Ring::new(
            self.members
                .iter()
                .map(|(id, m)| (id.clone(), m.tokens.clone())),
        )
    }

    /// The version that removed `id`, if it was removed.
    pub fn removed_at(&self, id: &str) -> Option<u64> {
        self.removed.get(id).copied()
    }

    /// The replicas of `token` in this version.
    pub fn replicas(&self, ring: &Ring, token: Token) -> Vec<NodeId> {
        ring.preference_list_for_token(token, self.replication)
    }

    /// The next version: this one with `changes` applied, joining nodes given tokens by the
    /// balancing allocator one after the other (in the order of the batch). Checks the whole
    /// batch first: nothing is applied unless all of it can be.
    pub fn plan(&self, changes: &[Change]) -> Result<Layout, LayoutError> {
        if changes.is_empty() {
            return Err(LayoutError::Empty);
        }
        let mut named = BTreeSet::new();
        for id in changes.iter().flat_map(Change::ids) {
            if !named.insert(id) {
                return Err(LayoutError::NamedTwice(id.clone()));
            }
        }
        let version = self.version + 1;
        let mut next = Layout {
            version,
            ..self.clone()
        };
        let new_id = |id: &NodeId| -> Result<(), LayoutError> {
            if let Some(at) = self.removed_at(id) {
                return Err(LayoutError::Removed { id: id.clone(), at });
            }
            if self.members.contains_key(id) {
                return Err(LayoutError::Exists(id.clone()));
            }
            Ok(())
        };
        let member = |id: &NodeId| -> Result<(), LayoutError> {
            if let Some(at) = self.removed_at(id) {
                return Err(LayoutError::Removed { id: id.clone(), at });
            }
            if !self.members.contains_key(id) {
                return Err(LayoutError::Unknown(id.clone()));
            }
            Ok(())
        };
        // Leaves first, so joins take their tokens against the ring they will be part of.
        for change in changes {
            match change {
                Change::Decommission { id } | Change::Remove { id } => {
                    member(id)?;
                    next.members.remove(id);
                    next.removed.insert(id.clone(), version);
                }
                Change::Replace { old, id, addr } => {
                    member(old)?;
                    new_id(id)?;
                    let mut taken = next.members.remove(old).expect("checked a member");
                    taken.addr = *addr;
                    next.members.insert(id.clone(), taken);
                    next.removed.insert(old.clone(), version);
                }
                Change::Join { .. } => {}
            }
        }
        for change in changes {
            if let Change::Join {
                id,
                addr,
                dc,
                rack,
                vnodes,
                tokens,
            } = change
            {
                new_id(id)?;
                if *vnodes == 0 && tokens.is_empty() {
                    return Err(LayoutError::NoTokens);
                }
                let tokens = match tokens.is_empty() {
                    true => allocate_tokens(&next.ring(), *vnodes),
                    false => tokens.clone(),
                };
                next.members.insert(
                    id.clone(),
                    LayoutMember {
                        addr: *addr,
                        dc: dc.clone(),
                        rack: rack.clone(),
                        tokens,
                    },
                );
            }
        }
        if next.members.len() < self.replication.min(self.members.len().max(1)) {
            return Err(LayoutError::TooFew {
                left: next.members.len(),
                replication: self.replication,
            });
        }
        Ok(next)
    }
}

/// A node's part in a change in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// In the new version only: pulling its ranges, not read from yet.
    Joining,
    /// In both versions.
    Normal,
    /// In the old version only: its ranges move away, then it goes.
    Leaving,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Joining => "joining",
            NodeState::Normal => "normal",
            NodeState::Leaving => "leaving",
        })
    }
}

/// A range a node must pull into the new version: the keys of (after, upto], held by
/// `sources` in the old version, which `target` replicates in the new one and did not before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub after: Token,
    pub upto: Token,
    pub target: NodeId,
    pub sources: Vec<NodeId>,
}

/// Whether every node of `new` that is not in `old` (it gained the token) has pulled it, as
/// `synced` says: the rule for reading a token from a newer version.
pub fn gainers_pulled(old: &[NodeId], new: &[NodeId], synced: impl Fn(&str) -> bool) -> bool {
    new.iter().filter(|n| !old.contains(n)).all(|n| synced(n))
}

/// Two live versions: `old` (committed earlier, still read) and `new` (written to, read from
/// range by range once synced).
pub struct Transition<'a> {
    pub old: &'a Layout,
    pub new: &'a Layout,
    old_ring: Ring,
    new_ring: Ring,
}

impl<'a> Transition<'a> {
    pub fn new(old: &'a Layout, new: &'a Layout) -> Transition<'a> {
        Transition {
            old,
            new,
            old_ring: old.ring(),
            new_ring: new.ring(),
        }
    }

    /// `id`'s state, if it is in either version.
    pub fn state_of(&self, id: &str) -> Option<NodeState> {
        match (
            self.old.members.contains_key(id),
            self.new.members.contains_key(id),
        ) {
            (true, true) => Some(NodeState::Normal),
            (false, true) => Some(NodeState::Joining),
            (true, false) => Some(NodeState::Leaving),
            (false, false) => None,
        }
    }

    /// The replica sets a write of `token` must meet its level in: the old version's and the
    /// new one's (a node in both counts in each).
    pub fn write_sets(&self, token: Token) -> [Vec<NodeId>; 2] {
        [
            self.old.replicas(&self.old_ring, token),
            self.new.replicas(&self.new_ring, token),
        ]
    }

    /// The segments of the ring on which both versions' replica sets are constant: the ranges
    /// between consecutive tokens of either version.
    fn segments(&self) -> Vec<(Token, Token)> {
        let mut tokens: Vec<Token> = self
            .old
            .members
            .values()
            .chain(self.new.members.values())
            .flat_map(|m| m.tokens.iter().copied())
            .collect();
        tokens.sort_unstable();
        tokens.dedup();
        ranges_between(tokens)
    }

    /// Every range some node must pull before the new version is read there: for each segment,
    /// each new replica that was not an old one pulls from the old replicas.
    pub fn moves(&self) -> Vec<Move> {
        let mut moves = Vec::new();
        for (after, upto) in self.segments() {
            let [old, new] = self.write_sets(upto);
            for target in new.iter().filter(|n| !old.contains(n)) {
                moves.push(Move {
                    after,
                    upto,
                    target: target.clone(),
                    sources: old.clone(),
                });
            }
        }
        moves
    }

    /// The version a read of `token` uses: the new one once every new replica of the token
    /// that had to pull it has (`synced` says whether a node has pulled all its ranges of the
    /// new version), else the old one.
    pub fn read_version(&self, token: Token, synced: impl Fn(&str) -> bool) -> u64 {
        let [old, new] = self.write_sets(token);
        if gainers_pulled(&old, &new, synced) {
            self.new.version
        } else {
            self.old.version
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
    }

    fn join(i: usize) -> Change {
        Change::Join {
            id: format!("node-{i}"),
            addr: addr(i),
            dc: DEFAULT_DC.into(),
            rack: DEFAULT_RACK.into(),
            vnodes: 64,
            tokens: Vec::new(),
        }
    }

    /// A layout of nodes 1..=n joined one by one.
    fn layout_of(n: usize) -> Layout {
        let mut layout = Layout::initial(3, []);
        for i in 1..=n {
            layout = layout.plan(&[join(i)]).unwrap();
        }
        layout
    }

    #[test]
    fn joins_get_balanced_tokens_and_leaves_are_tombstoned() {
        let four = layout_of(4);
        assert_eq!(four.version, 5);
        assert!(four.ring().balance() < 1.10, "{}", four.ring().balance());
        let five = four.plan(&[join(5)]).unwrap();
        assert!(five.ring().balance() < 1.10);
        let gone = five
            .plan(&[Change::Decommission {
                id: "node-2".into(),
            }])
            .unwrap();
        assert_eq!(gone.removed_at("node-2"), Some(7));
        assert!(!gone.members.contains_key("node-2"));
        // A removed id never comes back, whatever the change.
        let again = gone.plan(&[join(2)]).unwrap_err();
        assert_eq!(
            again,
            LayoutError::Removed {
                id: "node-2".into(),
                at: 7
            }
        );
        assert!(again.to_string().contains("new id"));
        assert_eq!(
            gone.plan(&[Change::Remove {
                id: "node-2".into()
            }]),
            Err(LayoutError::Removed {
                id: "node-2".into(),
                at: 7
            })
        );
    }

    #[test]
    fn a_batch_is_checked_whole() {
        let three = layout_of(3);
        assert_eq!(three.plan(&[]), Err(LayoutError::Empty));
        assert_eq!(
            three.plan(&[join(4), join(4)]),
            Err(LayoutError::NamedTwice("node-4".into()))
        );
        assert_eq!(
            three.plan(&[join(1)]),
            Err(LayoutError::Exists("node-1".into()))
        );
        assert_eq!(
            three.plan(&[join(4), Change::Remove { id: "x".into() }]),
            Err(LayoutError::Unknown("x".into()))
        );
        // Below the replication.
        assert!(matches!(
            three.plan(&[Change::Remove {
                id: "node-1".into()
            }]),
            Err(LayoutError::TooFew {
                left: 2,
                replication: 3
            })
        ));
        // A join and a leave in one batch keep three.
        let swapped = three
            .plan(&[
                join(4),
                Change::Decommission {
                    id: "node-1".into(),
                },
            ])
            .unwrap();
        assert_eq!(swapped.members.len(), 3);
    }

    #[test]
    fn a_replacement_takes_the_tokens_and_moves_nothing_else() {
        let four = layout_of(4);
        let replaced = four
            .plan(&[Change::Replace {
                old: "node-3".into(),
                id: "node-9".into(),
                addr: addr(9),
            }])
            .unwrap();
        assert_eq!(
            replaced.members["node-9"].tokens,
            four.members["node-3"].tokens
        );
        let t = Transition::new(&four, &replaced);
        let moves = t.moves();
        assert!(!moves.is_empty());
        assert!(moves.iter().all(|m| m.target == "node-9"));
        assert_eq!(t.state_of("node-3"), Some(NodeState::Leaving));
        assert_eq!(t.state_of("node-9"), Some(NodeState::Joining));
        assert_eq!(t.state_of("node-1"), Some(NodeState::Normal));
    }

    #[test]
    fn reads_move_to_the_new_version_once_its_pullers_synced() {
        let three = layout_of(3);
        let four = three.plan(&[join(4)]).unwrap();
        let t = Transition::new(&three, &four);
        let moved = t.moves();
        let token = moved[0].upto;
        assert_eq!(t.read_version(token, |_| false), three.version);
        assert_eq!(t.read_version(token, |n| n == "node-4"), four.version);
        // A token no node had to pull reads the new version at once.
        let still = t
            .segments()
            .into_iter()
            .map(|(_, upto)| upto)
            .find(|upto| !moved.iter().any(|m| m.upto == *upto))
            .expect("some segment keeps its replicas");
        assert_eq!(t.read_version(still, |_| false), four.version);
    }

    fn change_strategy() -> impl Strategy<Value = Vec<(u8, usize)>> {
        prop::collection::vec((0u8..3, 0usize..12), 1..4)
    }

    proptest! {
        /// Over random sequences of joins, decommissions and removals: every version gives
        /// every token min(N, members) distinct replicas; a removed id never returns; the
        /// moves cover exactly the replicas each token gained.
        #[test]
        fn layouts_stay_sound_over_random_changes(steps in prop::collection::vec(change_strategy(), 1..8)) {
            let mut layout = layout_of(4);
            let mut next_id = 5;
            for step in steps {
                let ids: Vec<NodeId> = layout.members.keys().cloned().collect();
                let mut batch = Vec::new();
                for (kind, pick) in step {
                    match kind {
                        0 => {
                            batch.push(join(next_id));
                            next_id += 1;
                        }
                        1 => batch.push(Change::Decommission { id: ids[pick % ids.len()].clone() }),
                        _ => batch.push(Change::Remove { id: ids[pick % ids.len()].clone() }),
                    }
                }
                let Ok(next) = layout.plan(&batch) else { continue };
                prop_assert_eq!(next.version, layout.version + 1);
                for id in next.removed.keys() {
                    prop_assert!(!next.members.contains_key(id));
                }
                for id in layout.removed.keys() {
                    prop_assert!(next.removed.contains_key(id));
                }
                let t = Transition::new(&layout, &next);
                let ring = next.ring();
                let want = next.replication.min(next.members.len());
                let mut moves: BTreeMap<(Token, Token), BTreeSet<NodeId>> = BTreeMap::new();
                for m in t.moves() {
                    moves.entry((m.after, m.upto)).or_default().insert(m.target);
                }
                for (after, upto) in t.segments() {
                    let [old, new] = t.write_sets(upto);
                    let distinct: BTreeSet<_> = new.iter().collect();
                    prop_assert_eq!(distinct.len(), want);
                    prop_assert_eq!(new.len(), want);
                    let gained: BTreeSet<_> = new.iter().filter(|n| !old.contains(n)).collect();
                    let moved = moves.get(&(after, upto)).map_or(0, BTreeSet::len);
                    prop_assert_eq!(gained.len(), moved);
                    prop_assert_eq!(next.replicas(&ring, upto), new);
                }
                layout = next;
            }
        }
    }
}
