//! Counting replica replies toward a consistency level, without I/O.

use std::fmt;

use kvctl::wire::proto::Consistency;

/// A level that could not be met: how many replies were needed, how many came, and why the
/// others did not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "consistency {level} needs {needed} of {replicas} replicas, reached {reached}{}",
    Failures(failures)
)]
pub struct QuorumNotReached {
    pub level: Consistency,
    pub needed: usize,
    pub replicas: usize,
    pub reached: usize,
    /// (node id, reason) for every replica that failed.
    pub failures: Vec<(String, String)>,
}

struct Failures<'a>(&'a [(String, String)]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (node, reason)) in self.0.iter().enumerate() {
            write!(f, "{}{node}: {reason}", if i == 0 { "; " } else { ", " })?;
        }
        Ok(())
    }
}

/// Replies toward a level, out of the replicas asked.
#[derive(Debug)]
pub struct Quorum {
    level: Consistency,
    needed: usize,
    replicas: usize,
    ok: usize,
    failures: Vec<(String, String)>,
}

impl Quorum {
    pub fn new(level: Consistency, replicas: usize) -> Self {
        Quorum {
            level,
            needed: level.required(replicas),
            replicas,
            ok: 0,
            failures: Vec::new(),
        }
    }

    pub fn ok(&mut self) {
        self.ok += 1;
    }

    pub fn fail(&mut self, node: &str, reason: impl Into<String>) {
        self.failures.push((node.to_string(), reason.into()));
    }

    pub fn reached(&self) -> bool {
        self.needed > 0 && self.ok >= self.needed
    }

    /// True when even if every outstanding replica answered, the level could not be met.
    pub fn impossible(&self) -> bool {
        self.replicas - self.failures.len() < self.needed || self.needed == 0
    }

    pub fn outstanding(&self) -> usize {
        self.replicas - self.ok - self.failures.len()
    }

    /// Replies still needed to reach the level.
    pub fn missing(&self) -> usize {
        self.needed.saturating_sub(self.ok)
    }

    pub fn failures(&self) -> usize {
        self.failures.len()
    }

    pub fn error(&self) -> QuorumNotReached {
        QuorumNotReached {
            level: self.level,
            needed: self.needed,
            replicas: self.replicas,
            reached: self.ok,
            failures: self.failures.clone(),
        }
    }
}

/// How a replica's write counted in the sets of a layout transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The replica stored it.
    Durable,
    /// A hint for it is stored: it counts in the sets of versions the replica already served
    /// (the hint reaches it later), never in a set it is joining.
    Hinted,
}

/// A write's level counted in each live layout version's replica set at once: met only when it
/// is met in every set (a node in several sets counts in each). A hint counts only in the sets
/// of the versions before the newest: a joining replica's data must really be there.
#[derive(Debug)]
pub struct QuorumSets {
    /// Each set's members (`None`: the only set, of every replica asked, as outside a layout
    /// change: nothing to look up) and its count.
    sets: Vec<(Option<Vec<String>>, Quorum)>,
}

impl QuorumSets {
    /// Sets oldest first, the last the newest version's.
    pub fn new(level: Consistency, sets: Vec<Vec<String>>) -> QuorumSets {
        QuorumSets {
            sets: sets
                .into_iter()
                .map(|set| {
                    let quorum = Quorum::new(level, set.len());
                    (Some(set), quorum)
                })
                .collect(),
        }
    }

    /// One set of `replicas` replicas, every one asked counting in it (no layout change).
    pub fn single(level: Consistency, replicas: usize) -> QuorumSets {
        QuorumSets {
            sets: vec![(None, Quorum::new(level, replicas))],
        }
    }

    fn holds(set: &Option<Vec<String>>, node: &str) -> bool {
        set.as_ref().is_none_or(|set| set.iter().any(|n| n == node))
    }

    pub fn ok(&mut self, node: &str, how: Stored) {
        let newest = self.sets.len().saturating_sub(1);
        for (i, (set, quorum)) in self.sets.iter_mut().enumerate() {
            if Self::holds(set, node) {
                if how == Stored::Hinted && i == newest && newest > 0 {
                    quorum.fail(node, "a hint does not count toward a version it joins");
                } else {
                    quorum.ok();
                }
            }
        }
    }

    pub fn fail(&mut self, node: &str, reason: &str) {
        for (set, quorum) in &mut self.sets {
            if Self::holds(set, node) {
                quorum.fail(node, reason);
            }
        }
    }

    pub fn reached(&self) -> bool {
        self.sets.iter().all(|(_, q)| q.reached())
    }

    pub fn impossible(&self) -> bool {
        self.sets.iter().any(|(_, q)| q.impossible())
    }

    /// Why the level is not met: the first set where it is not.
    pub fn error(&self) -> Option<QuorumNotReached> {
        self.sets
            .iter()
            .find(|(_, q)| !q.reached())
            .map(|(_, q)| q.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QUORUM of 3 is met by 2 replies, made impossible by 2 failures, and the error says
    /// needed versus reached and why.
    #[test]
    fn quorum_counts_and_explains() {
        let mut q = Quorum::new(Consistency::Quorum, 3);
        q.ok();
        assert!(!q.reached() && !q.impossible());
        q.ok();
        assert!(q.reached());

        let mut q = Quorum::new(Consistency::All, 3);
        q.ok();
        q.fail("node-3", "down");
        assert!(q.impossible());
        let text = q.error().to_string();
        assert_eq!(
            text,
            "consistency ALL needs 3 of 3 replicas, reached 1; node-3: down"
        );
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// During a join, QUORUM must be met in the old set and in the new one; a node in both
    /// counts in each; a hint counts in the old set only.
    #[test]
    fn quorum_sets_need_every_version() {
        let old = ids(&["a", "b", "c"]);
        let new = ids(&["a", "b", "d"]);
        let mut q = QuorumSets::new(Consistency::Quorum, vec![old.clone(), new.clone()]);
        q.ok("c", Stored::Durable);
        q.ok("d", Stored::Durable);
        assert!(!q.reached());
        q.ok("a", Stored::Durable);
        assert!(q.reached());

        // c and d hinted: the old set counts c's hint, the new set not d's.
        let mut q = QuorumSets::new(Consistency::Quorum, vec![old.clone(), new.clone()]);
        q.ok("a", Stored::Durable);
        q.ok("c", Stored::Hinted);
        q.ok("d", Stored::Hinted);
        assert!(!q.reached());
        q.fail("b", "down");
        assert!(q.impossible());
        let e = q.error().unwrap().to_string();
        assert!(e.contains("needs 2 of 3"), "{e}");
        assert!(e.contains("d: a hint does not count"), "{e}");

        // One live version: a hint counts as before.
        let mut q = QuorumSets::new(Consistency::Quorum, vec![old]);
        q.ok("a", Stored::Durable);
        q.ok("c", Stored::Hinted);
        assert!(q.reached());
        let mut q = QuorumSets::single(Consistency::Quorum, 3);
        q.ok("a", Stored::Durable);
        q.ok("c", Stored::Hinted);
        assert!(q.reached());
    }
}
