//! A node's view of the layout history: the live versions (one, or two while a change moves
//! data), how far each node has synced, and what follows from them for every request: the
//! replica sets a write must meet its level in, the version and replicas a read uses, whether
//! a request routed with a version is current, and when a node may drop data it no longer owns.
//!
//! The rules of a transition (old version v, new version v+1):
//! - a write is acknowledged only when its level is met in the replica set of each live
//!   version ([`LayoutHistory::write_sets`]);
//! - a range is read from v+1 only once every node that gained it in v+1 has pulled it from a
//!   write quorum of its v replicas and said so ([`LayoutHistory::record_synced`]); until then
//!   from v ([`LayoutHistory::read_set`]);
//! - v is retired once every such node has synced ([`LayoutHistory::retire`]); then a request
//!   routed with v is refused ([`LayoutHistory::check_routed`]) and data a node holds for no
//!   live version may go ([`LayoutHistory::may_drop`]);
//! - at most two versions are live: a change waits for the one in flight to finish.
//!
//! How far each node has synced is a grow-only map (each entry only rises), so nodes merge
//! what they hear by gossip in any order and end the same ([`LayoutHistory::merge_synced`]).
//! Versions are committed one at a time (see [`crate::logic::commit`]); a node that missed one
//! asks a peer for it before it takes a later one.
//!
//! I/O-free: given the versions and the marks, it answers.

use std::collections::BTreeMap;

use kvctl::model::layout::{gainers_pulled, Layout, Move, NodeState, Transition};
use kvctl::model::ring::{NodeId, Ring, Token};

/// Why a version cannot be taken now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error(
        "layout version {got} does not follow version {current}: version {wanted} is missing here"
    )]
    Gap { current: u64, got: u64, wanted: u64 },
    #[error(
        "layout version {version} is still moving data from version {old} (ranges of {waiting} \
         node(s) not synced yet); a new change waits until it is done"
    )]
    Busy {
        old: u64,
        version: u64,
        waiting: usize,
    },
}

/// A request routed with a version this node no longer uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the request was routed with layout version {routed}, retired here (the live versions are \
     {live:?}): refresh the layout and retry"
)]
pub struct Stale {
    pub routed: u64,
    pub live: Vec<u64>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "Saved", into = "Saved")]
pub struct LayoutHistory {
    /// Oldest first.
    live: Vec<Layout>,
    /// The highest version each node has pulled all its gained ranges of (or was in from the
    /// start).
    synced: BTreeMap<NodeId, u64>,
    /// Each live version's ring, built once.
    rings: Vec<Ring>,
    /// The nodes that gain ranges in the newest version (while two are live).
    gainers: Vec<NodeId>,
}

/// What is kept of a history (the rest is derived).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Saved {
    live: Vec<Layout>,
    synced: BTreeMap<NodeId, u64>,
}

impl From<Saved> for LayoutHistory {
    fn from(saved: Saved) -> LayoutHistory {
        let mut h = LayoutHistory {
            live: saved.live,
            synced: saved.synced,
            rings: Vec::new(),
            gainers: Vec::new(),
        };
        h.derive();
        h
    }
}

impl From<LayoutHistory> for Saved {
    fn from(h: LayoutHistory) -> Saved {
        Saved {
            live: h.live,
            synced: h.synced,
        }
    }
}

impl LayoutHistory {
    /// A history whose only live version is `layout`, every member of which counts as synced.
    pub fn new(layout: Layout) -> LayoutHistory {
        let synced = layout
            .members
            .keys()
            .map(|id| (id.clone(), layout.version))
            .collect();
        let mut h = LayoutHistory {
            live: vec![layout],
            synced,
            rings: Vec::new(),
            gainers: Vec::new(),
        };
        h.derive();
        h
    }

    /// Rebuilds what is derived from the live versions: their rings, the gainers.
    fn derive(&mut self) {
        self.rings = self.live.iter().map(Layout::ring).collect();
        self.gainers = match self.transition() {
            None => Vec::new(),
            Some(t) => {
                let mut gainers: Vec<NodeId> = t.moves().into_iter().map(|m| m.target).collect();
                gainers.sort();
                gainers.dedup();
                gainers
            }
        };
    }

    /// The newest version.
    pub fn current(&self) -> &Layout {
        self.live.last().expect("a history has a live version")
    }

    /// The live versions, oldest first.
    pub fn live(&self) -> &[Layout] {
        &self.live
    }

    /// The versions live now, by number.
    pub fn live_versions(&self) -> Vec<u64> {
        self.live.iter().map(|l| l.version).collect()
    }

    fn transition(&self) -> Option<Transition<'_>> {
        match self.live.as_slice() {
            [old, new] => Some(Transition::new(old, new)),
            _ => None,
        }
    }

    /// Whether `node` has synced `version` (pulled every range it gained in it).
    pub fn is_synced(&self, node: &str, version: u64) -> bool {
        self.synced.get(node).is_some_and(|v| *v >= version)
    }

    /// The grow-only sync marks, for gossip.
    pub fn synced(&self) -> &BTreeMap<NodeId, u64> {
        &self.synced
    }

    /// Whether a new version may be planned now (nothing in flight).
    pub fn ready_for_change(&self) -> Result<(), HistoryError> {
        match self.transition() {
            None => Ok(()),
            Some(t) => Err(HistoryError::Busy {
                old: t.old.version,
                version: t.new.version,
                waiting: self.waiting(),
            }),
        }
    }

    /// How many nodes still have ranges of the newest version to pull.
    fn waiting(&self) -> usize {
        let version = self.current().version;
        self.gainers
            .iter()
            .filter(|n| !self.is_synced(n, version))
            .count()
    }

    /// Takes a newly committed version with the marks its proposer had (which retired the
    /// version before it there): the next one, with nothing else in flight once those marks
    /// are merged. A node that stays a member and gains nothing counts as synced at once; a
    /// node in the old version only is synced by definition (it serves none of the new one).
    pub fn commit(
        &mut self,
        next: Layout,
        marks: &BTreeMap<NodeId, u64>,
    ) -> Result<(), HistoryError> {
        self.merge_synced(marks);
        let current = self.current().version;
        if next.version <= current {
            return Ok(()); // Already taken.
        }
        if next.version != current + 1 {
            return Err(HistoryError::Gap {
                current,
                got: next.version,
                wanted: current + 1,
            });
        }
        self.ready_for_change()?;
        let version = next.version;
        self.live.push(next);
        self.derive();
        let members: Vec<NodeId> = self.current().members.keys().cloned().collect();
        let gainers = self.gainers.clone();
        for id in members.iter().filter(|id| !gainers.contains(id)) {
            self.mark(id, version);
        }
        self.retire();
        Ok(())
    }

    fn mark(&mut self, node: &str, version: u64) {
        let entry = self.synced.entry(node.to_string()).or_default();
        *entry = (*entry).max(version);
    }

    /// `node` has pulled every range it gained in `version` (from a write quorum of each
    /// range's old replicas).
    pub fn record_synced(&mut self, node: &str, version: u64) {
        self.mark(node, version);
        self.retire();
    }

    /// Merges another node's marks (gossip): each entry rises to the higher.
    pub fn merge_synced(&mut self, marks: &BTreeMap<NodeId, u64>) {
        for (node, version) in marks {
            self.mark(node, *version);
        }
        self.retire();
    }

    /// Starts over from `layout`, a version a peer holds as its only live one (the versions
    /// between were committed and retired while this node was away), keeping the marks.
    pub fn jump_to(&mut self, layout: Layout) {
        if layout.version <= self.current().version {
            return;
        }
        for id in layout.members.keys() {
            let entry = self.synced.entry(id.clone()).or_default();
            *entry = (*entry).max(layout.version);
        }
        self.live = vec![layout];
        self.derive();
    }

    /// Retires the old version once every node that gained ranges in the new one has synced
    /// them; returns the version retired, if one was.
    pub fn retire(&mut self) -> Option<u64> {
        if self.live.len() < 2 || self.waiting() > 0 {
            return None;
        }
        let old = self.live.remove(0);
        self.derive();
        // Marks of nodes gone from every live version are kept: a few bytes, and a late
        // gossip of them changes nothing.
        Some(old.version)
    }

    /// The ranges `node` must pull into the newest version (none when nothing is in flight or
    /// it has synced).
    pub fn moves_for(&self, node: &str) -> Vec<Move> {
        let Some(t) = self.transition() else {
            return Vec::new();
        };
        if self.is_synced(node, t.new.version) {
            return Vec::new();
        }
        t.moves().into_iter().filter(|m| m.target == node).collect()
    }

    /// The replica sets a write of `token` must meet its level in: one per live version.
    pub fn write_sets(&self, token: Token) -> Vec<Vec<NodeId>> {
        self.live
            .iter()
            .zip(&self.rings)
            .map(|(l, ring)| l.replicas(ring, token))
            .collect()
    }

    /// The version a read of `token` uses, and its replicas.
    pub fn read_set(&self, token: Token) -> (u64, Vec<NodeId>) {
        let sets = self.write_sets(token);
        let newest = sets.len() - 1;
        let version = self.current().version;
        let pulled =
            newest == 0 || gainers_pulled(&sets[0], &sets[newest], |n| self.is_synced(n, version));
        let at = if pulled { newest } else { 0 };
        (self.live[at].version, sets[at].clone())
    }

    /// Checks the version a request was routed with: a live one, or a newer one (this node
    /// learns it next), never a retired one.
    pub fn check_routed(&self, routed: u64) -> Result<(), Stale> {
        if routed >= self.live[0].version {
            Ok(())
        } else {
            Err(Stale {
                routed,
                live: self.live_versions(),
            })
        }
    }

    /// Whether `node` may remove its copy of `token`'s keys: only when it is a replica of the
    /// token in no live version.
    pub fn may_drop(&self, node: &str, token: Token) -> bool {
        self.write_sets(token)
            .iter()
            .all(|set| !set.iter().any(|n| n == node))
    }

    /// `id`'s state: joining, normal or leaving during a change, normal otherwise; `None` for
    /// a node in no live version.
    pub fn state_of(&self, id: &str) -> Option<NodeState> {
        match self.transition() {
            Some(t) => t.state_of(id),
            None => self
                .current()
                .members
                .contains_key(id)
                .then_some(NodeState::Normal),
        }
    }

    /// The version that removed `id`, if any live version's tombstones name it.
    pub fn removed_at(&self, id: &str) -> Option<u64> {
        self.live.iter().rev().find_map(|l| l.removed_at(id))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    use kvctl::model::layout::{Change, DEFAULT_DC, DEFAULT_RACK};
    use kvctl::model::ring::token_of;
    use proptest::prelude::*;

    use super::*;

    fn join(i: usize) -> Change {
        Change::Join {
            id: format!("node-{i}"),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
            dc: DEFAULT_DC.into(),
            rack: DEFAULT_RACK.into(),
            vnodes: 8,
            tokens: Vec::new(),
        }
    }

    fn three() -> LayoutHistory {
        let mut layout = Layout::initial(3, []);
        for i in 1..=3 {
            layout = layout.plan(&[join(i)]).unwrap();
        }
        LayoutHistory::new(layout)
    }

    #[test]
    fn a_join_is_read_from_the_old_version_until_the_new_node_synced() {
        let mut h = three();
        let v = h.current().version;
        let next = h.current().plan(&[join(4)]).unwrap();
        h.commit(next, &BTreeMap::new()).unwrap();
        assert_eq!(h.live_versions(), vec![v, v + 1]);
        assert_eq!(h.state_of("node-4"), Some(NodeState::Joining));
        assert_eq!(h.state_of("node-1"), Some(NodeState::Normal));
        let moves = h.moves_for("node-4");
        assert!(!moves.is_empty());
        let token = moves[0].upto;
        // Writes reach both sets; reads stay on the old one.
        let sets = h.write_sets(token);
        assert_eq!(sets.len(), 2);
        assert!(sets[1].iter().any(|n| n == "node-4"));
        assert!(!sets[0].iter().any(|n| n == "node-4"));
        assert_eq!(h.read_set(token).0, v);
        // Another change waits.
        let later = h.current().plan(&[join(5)]).unwrap();
        assert!(matches!(
            h.commit(later, &BTreeMap::new()),
            Err(HistoryError::Busy { waiting: 1, .. })
        ));
        // The old replicas that lost the range may not drop it yet.
        let lost: Vec<_> = sets[0].iter().filter(|n| !sets[1].contains(n)).collect();
        assert_eq!(lost.len(), 1);
        assert!(!h.may_drop(lost[0], token));
        h.record_synced("node-4", v + 1);
        assert_eq!(h.live_versions(), vec![v + 1]);
        assert_eq!(h.read_set(token), (v + 1, sets[1].clone()));
        assert!(h.may_drop(lost[0], token));
        assert_eq!(
            h.check_routed(v),
            Err(Stale {
                routed: v,
                live: vec![v + 1]
            })
        );
        assert!(h.check_routed(v + 1).is_ok() && h.check_routed(v + 2).is_ok());
    }

    #[test]
    fn versions_are_taken_in_order() {
        let mut h = three();
        let v = h.current().version;
        let next = h
            .current()
            .plan(&[
                Change::Decommission {
                    id: "node-3".into(),
                },
                join(4),
            ])
            .unwrap();
        let after = next.plan(&[join(5)]).unwrap();
        let none = BTreeMap::new();
        assert_eq!(
            h.commit(after.clone(), &none),
            Err(HistoryError::Gap {
                current: v,
                got: v + 2,
                wanted: v + 1
            })
        );
        h.commit(next.clone(), &none).unwrap();
        // Taking a version twice changes nothing.
        h.commit(next, &none).unwrap();
        assert_eq!(h.state_of("node-3"), Some(NodeState::Leaving));
        assert_eq!(h.removed_at("node-3"), Some(v + 1));
    }

    /// One node's actions in the model.
    #[derive(Debug, Clone)]
    enum Step {
        /// A change is planned on the newest version this node knows and committed.
        Change(Vec<(u8, usize)>),
        /// A node that has ranges to pull finishes pulling them.
        Sync(usize),
        /// One node's marks reach another (gossip, in any order).
        Gossip(usize, usize),
        /// A node learns the committed versions it missed.
        Catch(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            prop::collection::vec((0u8..3, 0usize..16), 1..3).prop_map(Step::Change),
            (0usize..16).prop_map(Step::Sync),
            (0usize..4, 0usize..4).prop_map(|(a, b)| Step::Gossip(a, b)),
            (0usize..4).prop_map(Step::Catch),
        ]
    }

    proptest! {
        /// Four observers (nodes' views) of one committed sequence, each learning versions and
        /// marks in its own order: in every view, every live version gives every token
        /// min(N, members) distinct replicas; a token is read from the new version only after
        /// every node that gained it synced; a node never may drop a token it replicates in a
        /// live version; at most two versions are live; and views that heard the same end up
        /// agreeing.
        #[test]
        fn every_view_keeps_the_transition_rules(steps in prop::collection::vec(step(), 1..40)) {
            let base = three();
            // Each committed version with its proposer's marks at the time.
            let mut committed: Vec<(Layout, BTreeMap<NodeId, u64>)> =
                vec![(base.current().clone(), base.synced().clone())];
            let mut rings: Vec<Ring> = vec![base.current().ring()];
            let mut views: Vec<LayoutHistory> = vec![base; 4];
            // What really happened: the nodes that finished pulling each version.
            let mut pulled: BTreeMap<u64, BTreeSet<NodeId>> = BTreeMap::new();
            let mut next_id = 4;
            let probes: Vec<Token> = (0..32u32).map(|i| token_of(&i.to_be_bytes())).collect();
            for s in steps {
                match s {
                    Step::Change(kinds) => {
                        // Committed through view 0, which must be up to date and idle.
                        let h = &mut views[0];
                        if h.current().version != committed.last().unwrap().0.version
                            || h.ready_for_change().is_err() {
                            continue;
                        }
                        let ids: Vec<NodeId> = h.current().members.keys().cloned().collect();
                        let batch: Vec<Change> = kinds.into_iter().map(|(kind, pick)| match kind {
                            0 => { next_id += 1; join(next_id) }
                            1 => Change::Decommission { id: ids[pick % ids.len()].clone() },
                            _ => Change::Remove { id: ids[pick % ids.len()].clone() },
                        }).collect();
                        let Ok(next) = h.current().plan(&batch) else { continue };
                        let marks = h.synced().clone();
                        h.commit(next.clone(), &marks).unwrap();
                        rings.push(next.ring());
                        committed.push((next, marks));
                    }
                    Step::Sync(pick) => {
                        let h = &mut views[pick % 4];
                        let targets: BTreeSet<NodeId> = h.current().members.keys()
                            .filter(|n| !h.moves_for(n).is_empty()).cloned().collect();
                        if let Some(node) = targets.iter().nth(pick % targets.len().max(1)) {
                            let version = h.current().version;
                            pulled.entry(version).or_default().insert(node.clone());
                            h.record_synced(node, version);
                        }
                    }
                    Step::Gossip(a, b) => {
                        let marks = views[a].synced().clone();
                        views[b].merge_synced(&marks);
                    }
                    Step::Catch(i) => {
                        let h = &mut views[i];
                        for (layout, marks) in &committed {
                            prop_assert_eq!(h.commit(layout.clone(), marks), Ok(()));
                        }
                    }
                }
                for h in &views {
                    prop_assert!(h.live().len() <= 2);
                    for t in &probes {
                        let sets = h.write_sets(*t);
                        for (layout, set) in h.live().iter().zip(&sets) {
                            let want = layout.replication.min(layout.members.len());
                            let distinct: BTreeSet<_> = set.iter().collect();
                            prop_assert_eq!(distinct.len(), want);
                            prop_assert_eq!(set.len(), want);
                        }
                        // A read uses a version only once every node the token gained in it
                        // (over the version before) has pulled it.
                        let (version, _) = h.read_set(*t);
                        let at = committed.iter().position(|(l, _)| l.version == version).unwrap();
                        if at > 0 {
                            let (prev, now) = (&committed[at - 1].0, &committed[at].0);
                            let before = prev.replicas(&rings[at - 1], *t);
                            for gainer in now.replicas(&rings[at], *t).iter().filter(|n| !before.contains(n)) {
                                prop_assert!(
                                    pulled.get(&version).is_some_and(|p| p.contains(gainer)),
                                    "read from v{} before {} pulled", version, gainer
                                );
                            }
                        }
                        for node in sets.iter().flatten() {
                            prop_assert!(!h.may_drop(node, *t));
                        }
                    }
                }
            }
            // Every view that catches up and hears every mark agrees.
            let all: Vec<BTreeMap<NodeId, u64>> = views.iter().map(|h| h.synced().clone()).collect();
            for h in &mut views {
                for (layout, marks) in &committed {
                    prop_assert_eq!(h.commit(layout.clone(), marks), Ok(()));
                }
                for marks in &all {
                    h.merge_synced(marks);
                }
            }
            for h in &views[1..] {
                prop_assert_eq!(h.live_versions(), views[0].live_versions());
                prop_assert_eq!(h.synced(), views[0].synced());
            }
        }
    }
}
