//! Repair of one token range across its replicas (anti-entropy), as an I/O-free state machine
//! driven like the coordinators: it asks for trees, scans and writes ([`RepairAction`]) and
//! is fed their results.
//!
//! 1. Every replica's root for the range ([`crate::logic::merkle`]); all equal: in sync, done.
//! 2. Otherwise every replica's leaves; the leaves not equal everywhere are the differing ones.
//! 3. For each differing leaf in turn, every replica's keys of the leaf's token range (a bulk
//!    transfer); each key's versions from all replicas are merged with the normal version
//!    merge (and trimmed to the key's limits, as replicas trim), and every replica whose
//!    stored versions are not that merge is sent it (a replica write: merged in, durable
//!    before it is acknowledged).
//!
//! A replica that cannot answer a tree or a scan fails the range (it is not in sync, and the
//! repair says which replica); a failed write is counted and fails the range once the leaf's
//! other writes are settled. Deletes are versions too (tombstones), so a repair never brings
//! a deleted value back: the tombstone's clock supersedes it in the merge.

use std::collections::{BTreeMap, VecDeque};

use kvctl::model::ring::Token;
use kvctl::model::version::{Siblings, SIBLINGS_MAX};

use crate::logic::merkle::{self, Hash};
use crate::logic::STORED_VERSIONS_BYTES_MAX;

/// A replica's keys of a token range with their stored (encoded) versions.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Most adjacent differing leaves scanned together.
pub const LEAVES_PER_SCAN: usize = 16;

/// What a repair asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairAction {
    /// Ask `replica` for the range's tree (its root, and with `leaves` its leaves); answer
    /// with [`RangeRepair::on_tree`].
    Tree { replica: String, leaves: bool },
    /// Ask `replica` for its keys of the token range (after, upto], with their stored
    /// versions; answer with [`RangeRepair::on_scan`].
    Scan {
        replica: String,
        after: Token,
        upto: Token,
    },
    /// Merge these versions (encoded siblings) of `key` into `replica`; answer with
    /// [`RangeRepair::on_written`].
    Write {
        replica: String,
        key: Vec<u8>,
        siblings: Vec<u8>,
    },
}

/// A replica's tree of the range: its root, and its leaves when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeReply {
    pub root: Hash,
    pub leaves: Option<Vec<Hash>>,
    pub keys: u64,
}

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// Keys in the range on the replica that holds the most.
    pub keys: u64,
    /// Leaves that differed between replicas.
    pub leaves_differing: u64,
    /// Replica writes sent (one per key and replica that lacked versions).
    pub keys_sent: u64,
    /// Bytes of versions those writes carried.
    pub bytes_sent: u64,
}

/// How a range's repair ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// Every replica held the same already.
    InSync(RepairStats),
    /// The differences were merged into every replica.
    Repaired(RepairStats),
    /// Not in sync: why.
    Failed(String, RepairStats),
}

enum Phase {
    Roots,
    Leaves,
    Scanning,
    Writing,
    Done,
}

pub struct RangeRepair {
    after: Token,
    upto: Token,
    replicas: Vec<String>,
    phase: Phase,
    roots: BTreeMap<String, Hash>,
    leaves: BTreeMap<String, Vec<Hash>>,
    differing: VecDeque<usize>,
    scans: BTreeMap<String, Entries>,
    writes_outstanding: usize,
    write_failure: Option<String>,
    actions: VecDeque<RepairAction>,
    stats: RepairStats,
    outcome: Option<RepairOutcome>,
}

impl RangeRepair {
    /// A repair of (after, upto] across `replicas` (ids; the driver knows how to reach them).
    pub fn new(after: Token, upto: Token, replicas: Vec<String>) -> RangeRepair {
        let actions = replicas
            .iter()
            .map(|r| RepairAction::Tree {
                replica: r.clone(),
                leaves: false,
            })
            .collect();
        let mut repair = RangeRepair {
            after,
            upto,
            replicas,
            phase: Phase::Roots,
            roots: BTreeMap::new(),
            leaves: BTreeMap::new(),
            differing: VecDeque::new(),
            scans: BTreeMap::new(),
            writes_outstanding: 0,
            write_failure: None,
            actions,
            stats: RepairStats::default(),
            outcome: None,
        };
        if repair.replicas.len() < 2 {
            repair.actions.clear();
            repair.finish_in_sync();
        }
        repair
    }

    pub fn poll_action(&mut self) -> Option<RepairAction> {
        self.actions.pop_front()
    }

    /// The outcome, once there is one (taken).
    pub fn poll_outcome(&mut self) -> Option<RepairOutcome> {
        self.outcome.take()
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// `from`'s tree, or why it could not give it.
    pub fn on_tree(&mut self, from: &str, tree: Result<TreeReply, String>) {
        let tree = match tree {
            Ok(tree) => tree,
            Err(e) => return self.fail(format!("{from}: {e}")),
        };
        self.stats.keys = self.stats.keys.max(tree.keys);
        match self.phase {
            Phase::Roots => {
                self.roots.insert(from.to_string(), tree.root);
                if self.roots.len() < self.replicas.len() {
                    return;
                }
                let first = self.roots.values().next().copied();
                if self.roots.values().all(|r| Some(*r) == first) {
                    return self.finish_in_sync();
                }
                self.phase = Phase::Leaves;
                for r in &self.replicas {
                    self.actions.push_back(RepairAction::Tree {
                        replica: r.clone(),
                        leaves: true,
                    });
                }
            }
            Phase::Leaves => {
                let Some(leaves) = tree.leaves.filter(|l| l.len() == merkle::LEAVES) else {
                    return self.fail(format!(
                        "{from}: a tree without its {} leaves",
                        merkle::LEAVES
                    ));
                };
                self.leaves.insert(from.to_string(), leaves);
                if self.leaves.len() < self.replicas.len() {
                    return;
                }
                let trees: Vec<&[Hash]> = self.leaves.values().map(Vec::as_slice).collect();
                self.differing = merkle::differing(&trees).into();
                self.stats.leaves_differing = self.differing.len() as u64;
                self.next_leaf();
            }
            _ => {}
        }
    }

    /// `from`'s keys of the leaf being repaired, or why it could not give them.
    pub fn on_scan(&mut self, from: &str, entries: Result<Entries, String>) {
        if !matches!(self.phase, Phase::Scanning) {
            return;
        }
        match entries {
            Ok(entries) => {
                self.scans.insert(from.to_string(), entries);
            }
            Err(e) => return self.fail(format!("{from}: {e}")),
        }
        if self.scans.len() == self.replicas.len() {
            self.reconcile();
        }
    }

    /// `replica` merged a write in (durably), or did not.
    pub fn on_written(&mut self, replica: &str, written: Result<(), String>) {
        if !matches!(self.phase, Phase::Writing) {
            return;
        }
        self.writes_outstanding = self.writes_outstanding.saturating_sub(1);
        if let Err(e) = written {
            self.write_failure
                .get_or_insert_with(|| format!("{replica}: {e}"));
        }
        if self.writes_outstanding == 0 {
            match self.write_failure.take() {
                Some(e) => self.fail(e),
                None => self.next_leaf(),
            }
        }
    }

    /// Scans the next run of differing leaves: up to [`LEAVES_PER_SCAN`] adjacent ones in one
    /// bulk transfer per replica (when most of a range differs, a scan per leaf would cost a
    /// round trip per leaf).
    fn next_leaf(&mut self) {
        while let Some(first) = self.differing.pop_front() {
            let Some((after, mut upto)) = merkle::leaf_range(self.after, self.upto, first) else {
                continue;
            };
            let mut last = first;
            while self.differing.front() == Some(&(last + 1)) && last + 1 - first < LEAVES_PER_SCAN
            {
                last += 1;
                self.differing.pop_front();
                if let Some((_, end)) = merkle::leaf_range(self.after, self.upto, last) {
                    upto = end;
                }
            }
            self.phase = Phase::Scanning;
            self.scans.clear();
            for r in &self.replicas {
                self.actions.push_back(RepairAction::Scan {
                    replica: r.clone(),
                    after,
                    upto,
                });
            }
            return;
        }
        self.phase = Phase::Done;
        self.outcome = Some(RepairOutcome::Repaired(self.stats.clone()));
    }

    /// Merges each key of the scanned leaf across the replicas and sends the merge to each
    /// replica that does not hold it.
    fn reconcile(&mut self) {
        let mut keys: BTreeMap<Vec<u8>, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        for (replica, entries) in std::mem::take(&mut self.scans) {
            for (key, siblings) in entries {
                keys.entry(key)
                    .or_default()
                    .insert(replica.clone(), siblings);
            }
        }
        let mut writes = Vec::new();
        for (key, held) in keys {
            let mut merged = Siblings::default();
            for (replica, bytes) in &held {
                match Siblings::decode(bytes) {
                    Ok(s) => merged = merged.merge_owned(s),
                    Err(e) => {
                        return self.fail(format!("{replica}: a stored key does not decode: {e}"))
                    }
                }
            }
            merged.trim(SIBLINGS_MAX, STORED_VERSIONS_BYTES_MAX);
            let encoded = merged.encode();
            for replica in &self.replicas {
                if held.get(replica) != Some(&encoded) {
                    writes.push((replica.clone(), key.clone(), encoded.clone()));
                }
            }
        }
        if writes.is_empty() {
            return self.next_leaf();
        }
        self.phase = Phase::Writing;
        self.writes_outstanding = writes.len();
        for (replica, key, siblings) in writes {
            self.stats.keys_sent += 1;
            self.stats.bytes_sent += (key.len() + siblings.len()) as u64;
            self.actions.push_back(RepairAction::Write {
                replica,
                key,
                siblings,
            });
        }
    }

    fn finish_in_sync(&mut self) {
        self.phase = Phase::Done;
        self.outcome = Some(RepairOutcome::InSync(self.stats.clone()));
    }

    fn fail(&mut self, why: String) {
        if matches!(self.phase, Phase::Done) {
            return;
        }
        self.phase = Phase::Done;
        self.actions.clear();
        self.outcome = Some(RepairOutcome::Failed(why, self.stats.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::coordinator::tests::version;
    use crate::logic::merkle::RangeTree;
    use kvctl::model::ring::token_of;

    type Store = BTreeMap<Vec<u8>, Vec<u8>>;

    /// Drives `repair` against in-memory replicas `stores` (by id) until it ends, carrying out
    /// writes as replicas do (merge, trim, store). Returns the outcome and the actions asked.
    fn drive(
        repair: &mut RangeRepair,
        stores: &mut BTreeMap<String, Store>,
        (after, upto): (Token, Token),
    ) -> (RepairOutcome, Vec<RepairAction>) {
        let mut asked = Vec::new();
        loop {
            if let Some(outcome) = repair.poll_outcome() {
                return (outcome, asked);
            }
            let action = repair.poll_action().expect("an action while not done");
            asked.push(action.clone());
            match answer_reads(repair, stores, (after, upto), action) {
                None => {}
                Some(RepairAction::Write {
                    replica,
                    key,
                    siblings,
                }) => {
                    let store = stores.get_mut(&replica).unwrap();
                    let incoming = Siblings::decode(&siblings).unwrap();
                    let stored = store
                        .get(&key)
                        .map(|b| Siblings::decode(b).unwrap())
                        .unwrap_or_default();
                    store.insert(key, stored.merge(&incoming).encode());
                    repair.on_written(&replica, Ok(()));
                }
                Some(other) => panic!("{other:?}"),
            }
        }
    }

    /// Answers a tree or scan `action` from the in-memory replicas `stores`; hands back any
    /// other action.
    fn answer_reads(
        repair: &mut RangeRepair,
        stores: &BTreeMap<String, Store>,
        (after, upto): (Token, Token),
        action: RepairAction,
    ) -> Option<RepairAction> {
        match action {
            RepairAction::Tree { replica, leaves } => {
                let tree = RangeTree::build(after, upto, stores[&replica].iter());
                let reply = TreeReply {
                    root: tree.root(),
                    keys: tree.keys,
                    leaves: leaves.then_some(tree.leaves),
                };
                repair.on_tree(&replica, Ok(reply));
                None
            }
            RepairAction::Scan {
                replica,
                after,
                upto,
            } => {
                let entries = stores[&replica]
                    .iter()
                    .filter(|(k, _)| merkle::in_range(after, upto, token_of(k)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                repair.on_scan(&replica, Ok(entries));
                None
            }
            write => Some(write),
        }
    }

    fn three(keys: usize) -> BTreeMap<String, Store> {
        let store: Store = (0..keys)
            .map(|i| {
                let k = format!("key-{i}").into_bytes();
                let v = version(None, "node-1", 1, format!("v{i}").as_bytes());
                (k, Siblings::from(v).encode())
            })
            .collect();
        ["node-1", "node-2", "node-3"]
            .into_iter()
            .map(|id| (id.to_string(), store.clone()))
            .collect()
    }

    fn ids() -> Vec<String> {
        ["node-1", "node-2", "node-3"].map(String::from).to_vec()
    }

    /// Replicas in sync cost one root each; nothing is scanned or written.
    #[test]
    fn in_sync_replicas_compare_roots_only() {
        let mut stores = three(300);
        let mut r = RangeRepair::new(0, 0, ids());
        let (outcome, asked) = drive(&mut r, &mut stores, (0, 0));
        assert!(matches!(
            outcome,
            RepairOutcome::InSync(RepairStats { keys: 300, .. })
        ));
        assert_eq!(asked.len(), 3);
    }

    /// A replica that missed writes, one that lost a key, and one that holds a version the
    /// others lack all end with the merge of everything; only the differing leaves are
    /// scanned, and only what a replica lacks is sent to it.
    #[test]
    fn differences_are_merged_into_every_replica() {
        let mut stores = three(2_000);
        let newer = |i: usize, node: &str| {
            let k = format!("key-{i}").into_bytes();
            let old = Siblings::decode(&stores_get(&k)).unwrap();
            let v = version(Some(&old.versions[0]), node, 2, b"newer");
            (k, Siblings::from(v).encode())
        };
        let (k5, v5) = newer(5, "node-2");
        stores
            .get_mut("node-2")
            .unwrap()
            .insert(k5.clone(), v5.clone());
        stores.get_mut("node-3").unwrap().remove(&b"key-9".to_vec());
        let (k7, v7) = newer(7, "node-3");
        stores
            .get_mut("node-3")
            .unwrap()
            .insert(k7.clone(), v7.clone());
        let mut r = RangeRepair::new(0, 0, ids());
        let (outcome, asked) = drive(&mut r, &mut stores, (0, 0));
        let RepairOutcome::Repaired(stats) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(stats.leaves_differing, 3);
        // key-5 to node-1 and node-3, key-7 to node-1 and node-2, key-9 to node-3.
        assert_eq!(stats.keys_sent, 5);
        let scans = asked
            .iter()
            .filter(|a| matches!(a, RepairAction::Scan { .. }))
            .count();
        assert_eq!(scans, 3 * 3);
        for store in stores.values() {
            assert_eq!(store, &stores["node-1"]);
            assert_eq!(store[&k5], v5);
            assert_eq!(store[&k7], v7);
            assert!(store.contains_key(&b"key-9".to_vec()));
        }
        // Once repaired, the range is in sync.
        let mut again = RangeRepair::new(0, 0, ids());
        assert!(matches!(
            drive(&mut again, &mut stores, (0, 0)).0,
            RepairOutcome::InSync(_)
        ));
    }

    fn stores_get(key: &[u8]) -> Vec<u8> {
        three(2_000)["node-1"][key].clone()
    }

    /// A delete (a tombstone) on one replica wins over the value it deleted on the others:
    /// repair spreads the tombstone, it does not bring the value back.
    #[test]
    fn a_tombstone_is_spread_not_undone() {
        let mut stores = three(50);
        let k = b"key-3".to_vec();
        let old = Siblings::decode(&stores["node-1"][&k]).unwrap();
        let mut tomb = version(Some(&old.versions[0]), "node-1", 3, b"");
        tomb.value = None;
        let tomb = Siblings::from(tomb).encode();
        stores
            .get_mut("node-1")
            .unwrap()
            .insert(k.clone(), tomb.clone());
        let mut r = RangeRepair::new(0, 0, ids());
        assert!(matches!(
            drive(&mut r, &mut stores, (0, 0)).0,
            RepairOutcome::Repaired(_)
        ));
        for store in stores.values() {
            let s = Siblings::decode(&store[&k]).unwrap();
            assert!(s.is_deleted(), "{s:?}");
        }
    }

    /// A replica that cannot give its tree or its keys fails the range, naming it; a failed
    /// write fails it once the leaf's writes are settled.
    #[test]
    fn failures_name_the_replica() {
        let mut r = RangeRepair::new(0, 0, ids());
        r.on_tree(
            "node-1",
            Ok(TreeReply {
                root: [1; 16],
                leaves: None,
                keys: 1,
            }),
        );
        r.on_tree("node-2", Err("unreachable".into()));
        match r.poll_outcome() {
            Some(RepairOutcome::Failed(why, _)) => assert_eq!(why, "node-2: unreachable"),
            other => panic!("{other:?}"),
        }
        assert!(r.is_done());

        let mut stores = three(20);
        stores.get_mut("node-2").unwrap().clear();
        let mut r = RangeRepair::new(0, 0, ids());
        let mut failed = false;
        while r.poll_outcome().is_none() {
            let action = r.poll_action().unwrap();
            match answer_reads(&mut r, &stores, (0, 0), action) {
                None => {}
                Some(RepairAction::Write { replica, .. }) => {
                    failed = true;
                    r.on_written(&replica, Err("disk full".into()));
                }
                Some(other) => panic!("{other:?}"),
            }
        }
        assert!(failed && r.is_done());
    }

    /// A range with one replica has nothing to compare.
    #[test]
    fn one_replica_is_in_sync() {
        let mut r = RangeRepair::new(0, 0, vec!["node-1".into()]);
        assert!(r.poll_action().is_none());
        assert!(matches!(r.poll_outcome(), Some(RepairOutcome::InSync(_))));
    }
}
