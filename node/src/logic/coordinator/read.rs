//! A get's coordination: ask this node's own copy first, then the replicas gossip reports up,
//! keeping as many requests in flight as replies are still needed and asking the next replica
//! whenever one fails; merge what they hold; name the replicas that answered with less, for
//! read repair.
//!
//! A replica that has not answered within half the budget (its patience) is not waited for
//! alone: the next replica is asked too, and whichever answers counts (the slow one still may).

use std::collections::VecDeque;

use kvctl::model::version::{Siblings, SIBLINGS_MAX};
use kvctl::wire::proto::Consistency;

use super::{no_reply, Action, DOWN};
use crate::logic::quorum::{Quorum, QuorumNotReached};
use crate::logic::STORED_VERSIONS_BYTES_MAX;
use kvctl::model::placement::Target;

/// Why a replica's versions could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailure {
    /// This request's budget could not hold them: the whole get is refused (asking other
    /// replicas instead would only move the load onto them).
    Refused(String),
    /// The replica failed: the get asks another.
    Failed(String),
}

/// How a get ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The level was met.
    Done {
        /// What the replicas that answered hold, merged and trimmed to the key's limits.
        merged: Siblings,
        /// Versions the trim dropped (for the node's count).
        trimmed: usize,
        /// Replicas that answered with less than `merged`: they get it (read repair).
        stale: Vec<String>,
    },
    /// Too many replicas failed or did not answer in time.
    Failed(QuorumNotReached),
    /// The request's budget refused a reply.
    Refused(String),
}

pub struct ReadCoordinator {
    me: String,
    /// Local first, then up, then down, ring order breaking ties.
    targets: Vec<Target>,
    next: usize,
    quorum: Quorum,
    /// Replicas asked that have not answered.
    outstanding: Vec<Asked>,
    merged: Siblings,
    answers: Vec<(String, Siblings)>,
    budget_ms: u64,
    deadline_ms: u64,
    /// How long a replica is waited for before the next one is asked too.
    patience_ms: u64,
    /// The time of the latest input.
    now_ms: u64,
    actions: VecDeque<Action>,
    outcome: Option<ReadOutcome>,
    done: bool,
}

/// A replica asked and not answered yet.
#[derive(Debug)]
struct Asked {
    id: String,
    at_ms: u64,
    /// Past its patience: another replica was asked in its place.
    slow: bool,
}

impl ReadCoordinator {
    /// A get coordinated by node `me` over the key's `replicas`, at `level`, started at
    /// `now_ms` with `budget_ms` to finish.
    pub fn new(
        me: &str,
        mut replicas: Vec<Target>,
        level: Consistency,
        now_ms: u64,
        budget_ms: u64,
    ) -> ReadCoordinator {
        // The sort is stable, so ring order breaks ties.
        replicas.sort_by_key(|t| (t.id != me, !t.up));
        let mut c = ReadCoordinator {
            me: me.to_string(),
            quorum: Quorum::new(level, replicas.len()),
            targets: replicas,
            next: 0,
            outstanding: Vec::new(),
            merged: Siblings::default(),
            answers: Vec::new(),
            budget_ms,
            deadline_ms: now_ms.saturating_add(budget_ms),
            patience_ms: budget_ms / 2,
            now_ms,
            actions: VecDeque::new(),
            outcome: None,
            done: false,
        };
        c.advance();
        c
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`ReadCoordinator::on_timeout`], while the get runs: the deadline, or
    /// sooner when a replica's patience runs out.
    pub fn poll_timeout(&self) -> Option<u64> {
        let patience = self
            .outstanding
            .iter()
            .filter(|a| !a.slow)
            .map(|a| a.at_ms.saturating_add(self.patience_ms));
        (!self.done).then(|| patience.fold(self.deadline_ms, u64::min))
    }

    /// The outcome, once there is one (taken: later calls return `None`).
    pub fn poll_outcome(&mut self) -> Option<ReadOutcome> {
        self.outcome.take()
    }

    /// This node's own copy, as asked by [`Action::Local`], read by `now_ms`.
    pub fn on_local(&mut self, read: Result<Siblings, ReadFailure>, now_ms: u64) {
        let me = self.me.clone();
        self.on_reply(&me, read, now_ms);
    }

    /// Replica `from`'s reply. A reply nobody waits for (late, after the outcome, or from a
    /// replica not asked) is ignored.
    pub fn on_reply(&mut self, from: &str, read: Result<Siblings, ReadFailure>, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(at) = self.outstanding.iter().position(|a| a.id == from) else {
            return;
        };
        self.outstanding.swap_remove(at);
        if self.done {
            return;
        }
        match read {
            Ok(siblings) => {
                self.quorum.ok();
                self.merged = std::mem::take(&mut self.merged).merge_owned(siblings.clone());
                self.answers.push((from.to_string(), siblings));
            }
            Err(ReadFailure::Refused(reason)) => return self.finish(ReadOutcome::Refused(reason)),
            Err(ReadFailure::Failed(reason)) => self.quorum.fail(from, reason),
        }
        self.advance();
    }

    /// The time is `now_ms`: a replica past its patience has the next one asked too; past
    /// the deadline, the replicas still outstanding count as failed and the get fails.
    pub fn on_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.done {
            return;
        }
        if now_ms < self.deadline_ms {
            for a in &mut self.outstanding {
                a.slow |= now_ms >= a.at_ms.saturating_add(self.patience_ms);
            }
            return self.advance();
        }
        for a in std::mem::take(&mut self.outstanding) {
            self.quorum.fail(&a.id, no_reply(self.budget_ms));
        }
        self.actions.clear();
        self.finish(ReadOutcome::Failed(self.quorum.error()));
    }

    fn finish(&mut self, outcome: ReadOutcome) {
        self.outcome = Some(outcome);
        // Later replies are ignored (they may still arrive).
        self.done = true;
        self.actions.clear();
    }

    fn advance(&mut self) {
        while !self.done {
            if self.quorum.reached() {
                let mut merged = std::mem::take(&mut self.merged);
                // Replicas trim what they merge; the repair and the reply hold what they keep.
                let trimmed = merged.trim(SIBLINGS_MAX, STORED_VERSIONS_BYTES_MAX);
                let stale = std::mem::take(&mut self.answers)
                    .into_iter()
                    .filter(|(_, s)| *s != merged)
                    .map(|(id, _)| id)
                    .collect();
                return self.finish(ReadOutcome::Done {
                    merged,
                    trimmed,
                    stale,
                });
            }
            if self.quorum.impossible() {
                return self.finish(ReadOutcome::Failed(self.quorum.error()));
            }
            let waited = self.outstanding.iter().filter(|a| !a.slow).count();
            if waited >= self.quorum.missing() || self.next >= self.targets.len() {
                return;
            }
            let target = &self.targets[self.next];
            self.next += 1;
            let asked = Asked {
                id: target.id.clone(),
                at_ms: self.now_ms,
                slow: false,
            };
            if target.id == self.me {
                self.outstanding.push(asked);
                self.actions.push_back(Action::Local);
            } else if let Some(addr) = target.reachable() {
                self.outstanding.push(asked);
                self.actions.push_back(Action::Send {
                    to: target.id.clone(),
                    addr,
                });
            } else {
                let id = target.id.clone();
                self.quorum.fail(&id, DOWN);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::coordinator::tests::{named, targets, version};

    fn sends(c: &mut ReadCoordinator) -> Vec<String> {
        named(std::iter::from_fn(|| c.poll_action()))
    }

    fn done(c: &mut ReadCoordinator) -> (Siblings, Vec<String>) {
        match c.poll_outcome() {
            Some(ReadOutcome::Done { merged, stale, .. }) => (merged, stale),
            other => panic!("expected a merged read, got {other:?}"),
        }
    }

    /// ONE, QUORUM and ALL ask the local copy first and as many others as replies are
    /// still needed, in ring order among the up replicas.
    #[test]
    fn every_level_asks_what_it_needs() {
        for (level, asked) in [
            (Consistency::One, vec!["local"]),
            (Consistency::Quorum, vec!["local", "node-1"]),
            (Consistency::All, vec!["local", "node-1", "node-3"]),
        ] {
            let mut c = ReadCoordinator::new("node-2", targets("1 2 3", ""), level, 0, 1000);
            assert_eq!(sends(&mut c), asked, "{level}");
            c.on_local(Ok(Siblings::default()), 0);
            for id in &asked[1..] {
                assert!(c.poll_outcome().is_none());
                c.on_reply(id, Ok(Siblings::default()), 0);
            }
            let (merged, stale) = done(&mut c);
            assert!(merged.is_empty() && stale.is_empty());
            // The outcome is given once; a late reply changes nothing.
            c.on_reply("node-3", Ok(Siblings::default()), 0);
            assert!(c.poll_outcome().is_none() && c.poll_timeout().is_none());
        }
    }

    /// A coordinator that is not a replica asks the others; replies in any order merge to
    /// the same versions, and the replicas that held less are the ones repaired.
    #[test]
    fn replies_in_any_order_merge_and_name_the_stale() {
        let old = version(None, "node-1#1", 1, b"old");
        let new = version(Some(&old), "node-3#1", 1, b"new");
        let mut results = Vec::new();
        for order in [
            ["node-1", "node-2", "node-3"],
            ["node-3", "node-1", "node-2"],
        ] {
            let mut c =
                ReadCoordinator::new("node-9", targets("1 2 3", ""), Consistency::All, 0, 1000);
            assert_eq!(sends(&mut c), ["node-1", "node-2", "node-3"]);
            for id in order {
                let held = match id {
                    "node-1" => Siblings::from(old.clone()),
                    "node-2" => Siblings::default(),
                    _ => Siblings::from(new.clone()),
                };
                c.on_reply(id, Ok(held), 0);
            }
            let (merged, mut stale) = done(&mut c);
            stale.sort();
            assert_eq!(merged, Siblings::from(new.clone()));
            assert_eq!(stale, ["node-1", "node-2"]);
            results.push(merged);
        }
        assert_eq!(results[0], results[1]);
    }

    /// Concurrent versions on two replicas come back as siblings; both replicas are stale.
    #[test]
    fn concurrent_versions_become_siblings() {
        let a = version(None, "node-1#1", 1, b"a");
        let b = version(None, "node-2#1", 1, b"b");
        let mut c =
            ReadCoordinator::new("node-1", targets("1 2 3", ""), Consistency::Quorum, 0, 10);
        assert_eq!(sends(&mut c), ["local", "node-2"]);
        c.on_reply("node-2", Ok(Siblings::from(b)), 0);
        c.on_local(Ok(Siblings::from(a)), 0);
        let (merged, stale) = done(&mut c);
        assert_eq!(merged.len(), 2);
        assert_eq!(stale.len(), 2);
    }

    /// A failed replica makes the coordinator ask the next; down replicas are asked last and
    /// fail without a request; the level fails once it cannot be met, saying why.
    #[test]
    fn failures_ask_the_next_replica() {
        let mut c =
            ReadCoordinator::new("node-1", targets("1 2 3", "2"), Consistency::Quorum, 0, 10);
        // node-2 is down: node-3 is asked before it.
        assert_eq!(sends(&mut c), ["local", "node-3"]);
        c.on_reply("node-3", Err(ReadFailure::Failed("disk on fire".into())), 0);
        // The next is node-2, down: it fails without a request, and QUORUM is impossible, so
        // the get fails without waiting for the local read.
        assert!(sends(&mut c).is_empty());
        match c.poll_outcome() {
            Some(ReadOutcome::Failed(e)) => {
                assert_eq!(e.reached, 0);
                let text = e.to_string();
                assert!(text.contains("node-3: disk on fire"), "{text}");
                assert!(text.contains("node-2: down"), "{text}");
            }
            other => panic!("{other:?}"),
        }

        // ONE: the local copy failing moves the read to the next replica.
        let mut c = ReadCoordinator::new("node-1", targets("1 2 3", ""), Consistency::One, 0, 10);
        assert_eq!(sends(&mut c), ["local"]);
        c.on_local(Err(ReadFailure::Failed("corrupt block".into())), 0);
        assert_eq!(sends(&mut c), ["node-2"]);
        c.on_reply("node-2", Ok(Siblings::default()), 0);
        let (_, stale) = done(&mut c);
        assert!(stale.is_empty());
    }

    /// A refused reply (the request's budget is spent) refuses the whole get at once.
    #[test]
    fn a_refused_reply_refuses_the_get() {
        let mut c = ReadCoordinator::new("node-1", targets("1 2 3", ""), Consistency::All, 0, 10);
        assert_eq!(sends(&mut c).len(), 3);
        c.on_reply("node-2", Err(ReadFailure::Refused("over budget".into())), 0);
        assert_eq!(
            c.poll_outcome(),
            Some(ReadOutcome::Refused("over budget".into()))
        );
        c.on_local(Ok(Siblings::default()), 0);
        assert!(c.poll_outcome().is_none() && sends(&mut c).is_empty());
    }

    /// At the deadline the outstanding replicas count as failed; before it nothing happens.
    #[test]
    fn the_deadline_fails_what_is_outstanding() {
        let t = targets("1 2 3", "3");
        let mut c = ReadCoordinator::new("node-1", t, Consistency::Quorum, 100, 50);
        assert_eq!(sends(&mut c), ["local", "node-2"]);
        // First wake-up: node-2's patience (half the budget).
        assert_eq!(c.poll_timeout(), Some(125));
        c.on_local(Ok(Siblings::default()), 101);
        c.on_timeout(125);
        // The next replica, node-3, is down: nothing more to ask; the deadline is next.
        assert!(sends(&mut c).is_empty());
        assert_eq!(c.poll_timeout(), Some(150));
        c.on_timeout(149);
        assert!(c.poll_outcome().is_none());
        c.on_timeout(150);
        match c.poll_outcome() {
            Some(ReadOutcome::Failed(e)) => {
                assert_eq!((e.needed, e.reached), (2, 1));
                let text = e.to_string();
                assert!(
                    text.contains("node-2: no reply within the request's 50 ms"),
                    "{text}"
                );
                assert!(text.contains("node-3: down"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        // The reply that comes after the deadline is ignored.
        c.on_reply("node-2", Ok(Siblings::default()), 151);
        assert!(c.poll_outcome().is_none() && sends(&mut c).is_empty());
    }

    /// A replica slower than its patience has the next one asked too; the first answers that
    /// meet the level win, and the slow one's reply may still count.
    #[test]
    fn a_slow_replica_has_the_next_asked() {
        let mut c =
            ReadCoordinator::new("node-1", targets("1 2 3", ""), Consistency::Quorum, 0, 1000);
        assert_eq!(sends(&mut c), ["local", "node-2"]);
        c.on_local(Ok(Siblings::default()), 1);
        assert_eq!(c.poll_timeout(), Some(500));
        c.on_timeout(499);
        assert!(sends(&mut c).is_empty());
        c.on_timeout(500);
        assert_eq!(sends(&mut c), ["node-3"]);
        assert_eq!(c.poll_timeout(), Some(1000));
        c.on_reply("node-3", Ok(Siblings::default()), 600);
        assert!(matches!(c.poll_outcome(), Some(ReadOutcome::Done { .. })));

        // The slow one answering first counts just the same.
        let mut c = ReadCoordinator::new("node-1", targets("1 2 3", ""), Consistency::All, 0, 100);
        assert_eq!(sends(&mut c).len(), 3);
        c.on_timeout(50);
        assert!(sends(&mut c).is_empty(), "no replica is left to ask");
        for id in ["node-1", "node-2", "node-3"] {
            c.on_reply(id, Ok(Siblings::default()), 60);
        }
        assert!(matches!(c.poll_outcome(), Some(ReadOutcome::Done { .. })));
    }

    /// Replies from replicas that were never asked are ignored.
    #[test]
    fn unasked_replies_are_ignored() {
        let mut c = ReadCoordinator::new("node-1", targets("1 2 3", ""), Consistency::One, 0, 10);
        assert_eq!(sends(&mut c), ["local"]);
        c.on_reply("node-2", Ok(Siblings::default()), 0);
        c.on_reply("node-7", Ok(Siblings::default()), 0);
        assert!(c.poll_outcome().is_none());
    }

    /// A merge over the sibling limit is trimmed, and the trim is counted.
    #[test]
    fn the_merge_is_trimmed() {
        let many: Vec<_> = (0..SIBLINGS_MAX + 3)
            .map(|i| version(None, &format!("node-{i}#1"), 1, b"v"))
            .collect();
        let mut c = ReadCoordinator::new("node-1", targets("1 2 3", ""), Consistency::One, 0, 10);
        assert_eq!(sends(&mut c), ["local"]);
        c.on_local(Ok(Siblings::from_versions(many)), 0);
        match c.poll_outcome() {
            Some(ReadOutcome::Done {
                merged,
                trimmed,
                stale,
            }) => {
                assert_eq!((merged.len(), trimmed), (SIBLINGS_MAX, 3));
                assert_eq!(stale, ["node-1"], "the local copy is trimmed too");
            }
            other => panic!("{other:?}"),
        }
    }
}
