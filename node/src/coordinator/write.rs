//! A put's coordination on a replica of the key: the new version is made from what this node
//! stores before the coordinator starts; it is then sent to every other replica gossip reports
//! up while it becomes durable here, and this copy counts toward the level like theirs.
//!
//! Every replica write runs to its end even after the level is met (the driver lets them
//! finish; the coordinator ignores their replies). When the level can no longer be met, the
//! coordinator still waits for the replies on their way (until the deadline), so the error
//! says what really happened.

use std::collections::VecDeque;

use kvctl::proto::Consistency;

use super::{no_reply, Action, DOWN};
use crate::placement::Target;
use crate::quorum::{Quorum, QuorumNotReached};

/// How a put ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The level was met.
    Done,
    /// It was not: the write is stored on the replicas that answered.
    Failed(QuorumNotReached),
}

pub struct WriteCoordinator {
    me: String,
    quorum: Quorum,
    outstanding: Vec<String>,
    budget_ms: u64,
    deadline_ms: u64,
    actions: VecDeque<Action>,
    outcome: Option<WriteOutcome>,
    done: bool,
}

impl WriteCoordinator {
    /// A put coordinated by `me`, one of the key's `replicas` (whose local copy is being made
    /// durable), at `level`, started at `now_ms` with `budget_ms` to finish.
    pub fn new(
        me: &str,
        replicas: &[Target],
        level: Consistency,
        now_ms: u64,
        budget_ms: u64,
    ) -> WriteCoordinator {
        let mut c = WriteCoordinator {
            me: me.to_string(),
            quorum: Quorum::new(level, replicas.len()),
            outstanding: Vec::new(),
            budget_ms,
            deadline_ms: now_ms.saturating_add(budget_ms),
            actions: VecDeque::new(),
            outcome: None,
            done: false,
        };
        for target in replicas {
            if target.id == me {
                c.outstanding.push(target.id.clone());
            } else if let Some(addr) = target.reachable() {
                c.outstanding.push(target.id.clone());
                c.actions.push_back(Action::Send {
                    to: target.id.clone(),
                    addr,
                });
            } else {
                c.quorum.fail(&target.id, DOWN);
            }
        }
        c.advance();
        c
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`WriteCoordinator::on_timeout`]: the deadline, while the put runs.
    pub fn poll_timeout(&self) -> Option<u64> {
        (!self.done).then_some(self.deadline_ms)
    }

    /// The outcome, once there is one (taken: later calls return `None`).
    pub fn poll_outcome(&mut self) -> Option<WriteOutcome> {
        self.outcome.take()
    }

    /// This node's copy is durable (or failed to be).
    pub fn on_local(&mut self, durable: Result<(), String>) {
        let me = self.me.clone();
        self.on_reply(&me, durable);
    }

    /// Replica `from` stored the write (or failed to). A reply nobody waits for is ignored.
    pub fn on_reply(&mut self, from: &str, stored: Result<(), String>) {
        let Some(at) = self.outstanding.iter().position(|id| id == from) else {
            return;
        };
        self.outstanding.swap_remove(at);
        if self.done {
            return;
        }
        match stored {
            Ok(()) => self.quorum.ok(),
            Err(reason) => self.quorum.fail(from, reason),
        }
        self.advance();
    }

    /// The time is `now_ms`: past the deadline, the replicas still outstanding count as failed.
    pub fn on_timeout(&mut self, now_ms: u64) {
        if self.done || now_ms < self.deadline_ms {
            return;
        }
        for id in std::mem::take(&mut self.outstanding) {
            self.quorum.fail(&id, no_reply(self.budget_ms));
        }
        self.advance();
    }

    fn advance(&mut self) {
        if self.done {
            return;
        }
        if self.quorum.reached() {
            self.finish(WriteOutcome::Done);
        } else if self.outstanding.is_empty() {
            self.finish(WriteOutcome::Failed(self.quorum.error()));
        }
    }

    fn finish(&mut self, outcome: WriteOutcome) {
        self.outcome = Some(outcome);
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::tests::{named, targets};

    fn sends(c: &mut WriteCoordinator) -> Vec<String> {
        named(std::iter::from_fn(|| c.poll_action()))
    }

    /// Every up replica but this one gets the write at once, whatever the level; the level is
    /// met by the local copy and the replies, in any order.
    #[test]
    fn every_level_counts_local_and_replies() {
        for (level, needed) in [
            (Consistency::One, 1),
            (Consistency::Quorum, 2),
            (Consistency::All, 3),
        ] {
            for local_first in [true, false] {
                let t = targets("1 2 3", "");
                let mut c = WriteCoordinator::new("node-2", &t, level, 0, 100);
                assert_eq!(sends(&mut c), ["node-1", "node-3"]);
                let mut replies: Vec<&str> = vec!["node-2", "node-3", "node-1"];
                if !local_first {
                    replies.rotate_left(1);
                }
                for (i, id) in replies.into_iter().enumerate() {
                    assert!(c.poll_outcome().is_none(), "{level}: done after {i}");
                    c.on_reply(id, Ok(()));
                    if i + 1 == needed {
                        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done), "{level}");
                        break;
                    }
                }
                // Later replies are ignored.
                c.on_reply("node-1", Ok(()));
                c.on_local(Ok(()));
                assert!(c.poll_outcome().is_none() && c.poll_timeout().is_none());
            }
        }
    }

    /// A down replica fails without a request; the failure waits for the replies on their way,
    /// so the error says what happened to each.
    #[test]
    fn failures_wait_for_the_outstanding_and_say_why() {
        let t = targets("1 2 3", "3");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::All, 0, 100);
        assert_eq!(sends(&mut c), ["node-2"]);
        c.on_local(Ok(()));
        assert!(c.poll_outcome().is_none(), "node-2 is still on its way");
        c.on_reply("node-2", Err("disk full".into()));
        match c.poll_outcome() {
            Some(WriteOutcome::Failed(e)) => {
                assert_eq!((e.needed, e.reached), (3, 1));
                let text = e.to_string();
                assert!(text.contains("node-3: down"), "{text}");
                assert!(text.contains("node-2: disk full"), "{text}");
            }
            other => panic!("{other:?}"),
        }

        // The local copy failing counts as a failure like any other.
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::One, 0, 100);
        c.on_local(Err("the replica is shutting down".into()));
        assert!(c.poll_outcome().is_none());
        c.on_reply("node-2", Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
    }

    /// At the deadline the outstanding replicas count as failed.
    #[test]
    fn the_deadline_fails_what_is_outstanding() {
        let t = targets("1 2 3", "");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 1000, 250);
        assert_eq!(c.poll_timeout(), Some(1250));
        sends(&mut c);
        c.on_reply("node-3", Ok(()));
        c.on_timeout(1249);
        assert!(c.poll_outcome().is_none());
        c.on_timeout(1250);
        match c.poll_outcome() {
            Some(WriteOutcome::Failed(e)) => {
                assert_eq!(e.reached, 1);
                assert_eq!(e.failures.len(), 2);
                assert!(e
                    .to_string()
                    .contains("no reply within the request's 250 ms"));
            }
            other => panic!("{other:?}"),
        }
        c.on_local(Ok(()));
        assert!(c.poll_outcome().is_none());
    }

    /// With every other replica down, ONE is met by the local copy alone and QUORUM fails
    /// once it is durable.
    #[test]
    fn alone_on_the_ring() {
        let t = targets("1 2 3", "2 3");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::One, 0, 10);
        assert!(sends(&mut c).is_empty());
        c.on_local(Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 0, 10);
        c.on_local(Ok(()));
        assert!(matches!(c.poll_outcome(), Some(WriteOutcome::Failed(_))));
    }
}
