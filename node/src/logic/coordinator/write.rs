//! A put's coordination on a replica of the key: the new version is made from what this node
//! stores before the coordinator starts; it is then sent to every other replica gossip reports
//! up while it becomes durable here, and this copy counts toward the level like theirs.
//!
//! Hinted handoff (when on): a replica that is down, whose write failed without being refused,
//! or that has not answered within half the budget (its patience) gets a hint: the driver
//! stores the write durably on this node for it ([`Action::Hint`]) and reports it with
//! [`WriteCoordinator::on_hinted`]. A stored hint counts toward ONE and QUORUM in the
//! replica's place; ALL counts only real replicas (the hint is kept all the same, so the
//! replica catches up). A replica that answers after its hint was asked for counts itself.
//!
//! Every replica write runs to its end even after the level is met: the driver goes on feeding
//! the coordinator until [`WriteCoordinator::is_settled`], so a replica that fails late still
//! gets its hint. When the level can no longer be met, the coordinator still waits for the
//! replies on their way (until the deadline), so the error says what really happened.

use std::collections::VecDeque;

use kvctl::wire::proto::Consistency;

use super::{no_reply, Action, DOWN};
use crate::logic::quorum::{QuorumNotReached, QuorumSets, Stored};
use kvctl::model::placement::Target;

/// How a put ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The level was met.
    Done,
    /// It was not: the write is stored on the replicas that answered.
    Failed(QuorumNotReached),
}

/// Why a replica did not store a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFailure {
    /// It could not be reached, timed out or was unavailable: it gets a hint.
    Missed(String),
    /// It refused the write (a limit, a malformed request): a hint would be refused too.
    Refused(String),
}

/// Whether a put stores hints for the replicas that miss it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hinting {
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Asked (or, for this node, being made durable); no answer yet.
    Asked,
    /// A hint is being stored for it (why it needed one); its own answer may still come.
    Hinting(String),
    /// Its hint does not count (ALL, or the hint failed: the reason says so), but a request to
    /// it is still on its way: its answer counts if it comes before the deadline.
    Waiting(String),
    Settled,
}

struct Replica {
    id: String,
    state: State,
    /// A request to it (or this node's own write) is on its way: an answer may come.
    asked: bool,
}

/// Why a hint that was stored does not count: it lives on this node, whose own copy failed.
const HINT_WITHOUT_COPY: &str =
    "a hint was kept for it, but this node's own copy failed, so the hint does not count";

pub struct WriteCoordinator {
    me: String,
    level: Consistency,
    hinting: Hinting,
    /// The level, counted in every live layout version's replica set.
    quorum: QuorumSets,
    replicas: Vec<Replica>,
    /// This node's own copy: durable (`Some(true)`), failed, or on its way.
    local: Option<bool>,
    /// Replicas whose hints are stored and count once this node's own copy is durable (the
    /// hints live on this node).
    held: Vec<String>,
    budget_ms: u64,
    started_ms: u64,
    patience_at_ms: u64,
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
        hinting: Hinting,
    ) -> WriteCoordinator {
        let quorum = QuorumSets::single(level, replicas.len());
        Self::build(
            me,
            replicas.iter(),
            quorum,
            level,
            now_ms,
            budget_ms,
            hinting,
        )
    }

    /// A put during a layout change: the level must be met in each of `sets`, the replicas
    /// of each live version (oldest first). A replica in several sets is asked once and counts
    /// in each; a hint counts only in the sets of versions the replica served before the
    /// newest (see [`QuorumSets`]).
    pub fn in_sets(
        me: &str,
        sets: &[Vec<Target>],
        level: Consistency,
        now_ms: u64,
        budget_ms: u64,
        hinting: Hinting,
    ) -> WriteCoordinator {
        let mut replicas: Vec<&Target> = Vec::new();
        for target in sets.iter().flatten() {
            if !replicas.iter().any(|r| r.id == target.id) {
                replicas.push(target);
            }
        }
        let ids = sets
            .iter()
            .map(|set| set.iter().map(|t| t.id.clone()).collect())
            .collect();
        let quorum = QuorumSets::new(level, ids);
        Self::build(
            me,
            replicas.into_iter(),
            quorum,
            level,
            now_ms,
            budget_ms,
            hinting,
        )
    }

    fn build<'t>(
        me: &str,
        replicas: impl ExactSizeIterator<Item = &'t Target>,
        quorum: QuorumSets,
        level: Consistency,
        now_ms: u64,
        budget_ms: u64,
        hinting: Hinting,
    ) -> WriteCoordinator {
        let mut c = WriteCoordinator {
            me: me.to_string(),
            level,
            hinting,
            quorum,
            replicas: Vec::with_capacity(replicas.len()),
            local: None,
            held: Vec::new(),
            budget_ms,
            started_ms: now_ms,
            patience_at_ms: now_ms.saturating_add(budget_ms / 2),
            deadline_ms: now_ms.saturating_add(budget_ms),
            actions: VecDeque::new(),
            outcome: None,
            done: false,
        };
        for target in replicas {
            let addr = target.reachable().filter(|_| target.id != me);
            c.replicas.push(Replica {
                id: target.id.clone(),
                state: State::Asked,
                asked: target.id == me || addr.is_some(),
            });
            if target.id == me {
                continue;
            }
            match addr {
                Some(addr) => c.actions.push_back(Action::Send {
                    to: target.id.clone(),
                    addr,
                }),
                None => c.missed(&target.id, DOWN.to_string()),
            }
        }
        c.advance();
        c
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`WriteCoordinator::on_timeout`] while replicas are outstanding: their
    /// patience (for hints), then the deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        let asked = self
            .replicas
            .iter()
            .any(|r| r.state == State::Asked && r.id != self.me);
        if self.is_settled() {
            None
        } else if asked && self.hinting == Hinting::On {
            Some(self.patience_at_ms.min(self.deadline_ms))
        } else {
            Some(self.deadline_ms)
        }
    }

    /// The outcome, once there is one (taken: later calls return `None`).
    pub fn poll_outcome(&mut self) -> Option<WriteOutcome> {
        self.outcome.take()
    }

    /// Whether every replica has answered, been hinted or given up on: the driver may stop.
    pub fn is_settled(&self) -> bool {
        self.actions.is_empty() && self.replicas.iter().all(|r| r.state == State::Settled)
    }

    /// This node's copy is durable (or failed to be).
    pub fn on_local(&mut self, durable: Result<(), String>) {
        let me = self.me.clone();
        self.on_reply(&me, durable.map_err(WriteFailure::Refused));
    }

    /// Replica `from` stored the write (or failed to). A reply nobody waits for is ignored.
    pub fn on_reply(&mut self, from: &str, stored: Result<(), WriteFailure>) {
        let Some(state) = self.state(from) else {
            return;
        };
        if state == State::Settled {
            return;
        }
        if from == self.me {
            let durable = stored.is_ok();
            self.local = Some(durable);
            self.settle(from);
            match stored {
                Ok(()) => self.count_ok(from, Stored::Durable),
                Err(WriteFailure::Missed(reason) | WriteFailure::Refused(reason)) => {
                    self.count_fail(from, reason)
                }
            }
            for id in std::mem::take(&mut self.held) {
                if durable {
                    self.count_ok(&id, Stored::Hinted);
                } else {
                    self.count_fail(&id, HINT_WITHOUT_COPY.to_string());
                }
            }
            return self.advance();
        }
        match (state, stored) {
            (_, Ok(())) => {
                self.settle(from);
                self.count_ok(from, Stored::Durable);
            }
            (State::Asked, Err(WriteFailure::Missed(reason))) => {
                self.set_asked(from, false);
                self.missed(from, reason);
            }
            (State::Asked, Err(WriteFailure::Refused(reason))) => {
                self.settle(from);
                self.count_fail(from, reason);
            }
            // Its hint is on its way: that decides.
            (State::Hinting(_), Err(_)) => self.set_asked(from, false),
            (State::Waiting(reason), Err(_)) => {
                self.settle(from);
                self.count_fail(from, reason);
            }
            (State::Settled, _) => {}
        }
        self.advance();
    }

    /// The hint for `target` is stored (durable), or could not be.
    pub fn on_hinted(&mut self, target: &str, stored: Result<(), String>) {
        let Some(State::Hinting(reason)) = self.state(target) else {
            return;
        };
        let not_counted = match stored {
            Ok(()) if self.level != Consistency::All => {
                self.settle(target);
                match self.local {
                    Some(true) => self.count_ok(target, Stored::Hinted),
                    None => self.held.push(target.to_string()),
                    Some(false) => self.count_fail(target, HINT_WITHOUT_COPY.to_string()),
                }
                return self.advance();
            }
            Ok(()) => format!("{reason} (a hint is kept for it)"),
            Err(e) => format!("{reason}, and no hint could be kept: {e}"),
        };
        let asked = self.replicas.iter().any(|r| r.id == target && r.asked);
        if asked {
            self.set(target, State::Waiting(not_counted));
        } else {
            self.settle(target);
            self.count_fail(target, not_counted);
        }
        self.advance();
    }

    /// The time is `now_ms`: replicas past their patience get a hint (they may still answer);
    /// past the deadline, the replicas still outstanding count as failed.
    pub fn on_timeout(&mut self, now_ms: u64) {
        // Also after the outcome: a replica still silent gets its hint, or it would miss the
        // write with nothing to bring it back.
        if now_ms >= self.patience_at_ms {
            let slow: Vec<String> = self
                .replicas
                .iter()
                .filter(|r| r.state == State::Asked && r.id != self.me)
                .map(|r| r.id.clone())
                .collect();
            for id in slow {
                let waited = now_ms.saturating_sub(self.started_ms);
                self.missed(&id, format!("no reply within {waited} ms"));
            }
        }
        if now_ms >= self.deadline_ms {
            let late: Vec<(String, State)> = self
                .replicas
                .iter()
                .filter(|r| r.state != State::Settled)
                .map(|r| (r.id.clone(), r.state.clone()))
                .collect();
            for (id, state) in late {
                self.settle(&id);
                let reason = match state {
                    State::Waiting(reason) => reason,
                    State::Hinting(reason) => {
                        format!("{reason}, and its hint was not kept in time")
                    }
                    _ => no_reply(self.budget_ms),
                };
                self.count_fail(&id, reason);
                if id == self.me {
                    self.local = Some(false);
                    for held in std::mem::take(&mut self.held) {
                        self.count_fail(&held, HINT_WITHOUT_COPY.to_string());
                    }
                }
            }
        }
        self.advance();
    }

    fn state(&self, id: &str) -> Option<State> {
        self.replicas
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.state.clone())
    }

    fn set(&mut self, id: &str, state: State) {
        if let Some(r) = self.replicas.iter_mut().find(|r| r.id == id) {
            r.state = state;
        }
    }

    fn set_asked(&mut self, id: &str, asked: bool) {
        if let Some(r) = self.replicas.iter_mut().find(|r| r.id == id) {
            r.asked = asked;
        }
    }

    fn settle(&mut self, id: &str) {
        self.set(id, State::Settled);
    }

    /// Replica `id` missed the write: a hint for it, if hints are on.
    fn missed(&mut self, id: &str, reason: String) {
        match self.hinting {
            Hinting::On => {
                self.set(id, State::Hinting(reason));
                self.actions.push_back(Action::Hint {
                    target: id.to_string(),
                });
            }
            Hinting::Off => {
                self.settle(id);
                self.count_fail(id, reason);
            }
        }
    }

    fn count_ok(&mut self, id: &str, how: Stored) {
        if !self.done {
            self.quorum.ok(id, how);
        }
    }

    fn count_fail(&mut self, id: &str, reason: String) {
        if !self.done {
            self.quorum.fail(id, &reason);
        }
    }

    fn advance(&mut self) {
        if self.done {
            return;
        }
        if self.quorum.reached() {
            self.finish(WriteOutcome::Done);
        } else if self.replicas.iter().all(|r| r.state == State::Settled) && self.held.is_empty() {
            let error = self.quorum.error().expect("the level is not met");
            self.finish(WriteOutcome::Failed(error));
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
    use crate::logic::coordinator::tests::{named, targets};

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
                let mut c = WriteCoordinator::new("node-2", &t, level, 0, 100, Hinting::Off);
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
                // Later replies are ignored; once every replica answered, the write is settled.
                for id in ["node-1", "node-2", "node-3"] {
                    c.on_reply(id, Ok(()));
                }
                c.on_local(Ok(()));
                assert!(c.poll_outcome().is_none() && c.poll_timeout().is_none());
                assert!(c.is_settled());
            }
        }
    }

    /// A down replica fails without a request; the failure waits for the replies on their way,
    /// so the error says what happened to each.
    #[test]
    fn failures_wait_for_the_outstanding_and_say_why() {
        let t = targets("1 2 3", "3");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::All, 0, 100, Hinting::Off);
        assert_eq!(sends(&mut c), ["node-2"]);
        c.on_local(Ok(()));
        assert!(c.poll_outcome().is_none(), "node-2 is still on its way");
        c.on_reply("node-2", Err(WriteFailure::Refused("disk full".into())));
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
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::One, 0, 100, Hinting::Off);
        c.on_local(Err("the replica is shutting down".into()));
        assert!(c.poll_outcome().is_none());
        c.on_reply("node-2", Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
    }

    /// At the deadline the outstanding replicas count as failed.
    #[test]
    fn the_deadline_fails_what_is_outstanding() {
        let t = targets("1 2 3", "");
        let mut c =
            WriteCoordinator::new("node-1", &t, Consistency::Quorum, 1000, 250, Hinting::Off);
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
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::One, 0, 10, Hinting::Off);
        assert!(sends(&mut c).is_empty());
        c.on_local(Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 0, 10, Hinting::Off);
        c.on_local(Ok(()));
        assert!(matches!(c.poll_outcome(), Some(WriteOutcome::Failed(_))));
    }

    fn hints(c: &mut WriteCoordinator) -> Vec<String> {
        std::iter::from_fn(|| c.poll_action())
            .filter_map(|a| match a {
                Action::Hint { target } => Some(target),
                _ => None,
            })
            .collect()
    }

    /// A down replica gets a hint at once; a stored hint counts toward ONE and QUORUM, not
    /// toward ALL (which fails, naming the replica, with the hint kept).
    #[test]
    fn hints_count_toward_one_and_quorum_not_all() {
        let t = targets("1 2 3", "2 3");
        for (level, ok) in [
            (Consistency::One, true),
            (Consistency::Quorum, true),
            (Consistency::All, false),
        ] {
            let mut c = WriteCoordinator::new("node-1", &t, level, 0, 100, Hinting::On);
            assert_eq!(hints(&mut c), ["node-2", "node-3"], "{level}");
            c.on_local(Ok(()));
            c.on_hinted("node-2", Ok(()));
            c.on_hinted("node-3", Ok(()));
            match c.poll_outcome() {
                Some(WriteOutcome::Done) => assert!(ok, "{level}"),
                Some(WriteOutcome::Failed(e)) => {
                    assert!(!ok, "{level}");
                    let text = e.to_string();
                    assert!(text.contains("node-2: down"), "{text}");
                    assert!(text.contains("a hint is kept for it"), "{text}");
                }
                None => panic!("{level}: no outcome"),
            }
            assert!(c.is_settled() && c.poll_timeout().is_none());
        }
    }

    /// A hint that cannot be stored (the target's hints are full) is a failure that says so.
    #[test]
    fn a_refused_hint_fails_the_replica() {
        let t = targets("1 2 3", "2 3");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 0, 100, Hinting::On);
        hints(&mut c);
        c.on_local(Ok(()));
        c.on_hinted("node-2", Err("hints for node-2 are full".into()));
        c.on_hinted("node-3", Err("hints for node-3 are full".into()));
        match c.poll_outcome() {
            Some(WriteOutcome::Failed(e)) => {
                let text = e.to_string();
                assert!(
                    text.contains("no hint could be kept: hints for node-2 are full"),
                    "{text}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// A replica that fails (not refusing) gets a hint, also after the level was met; one
    /// that refuses does not; the coordinator is settled only once every replica is.
    #[test]
    fn failures_are_hinted_also_after_the_outcome() {
        let t = targets("1 2 3", "");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::One, 0, 100, Hinting::On);
        assert_eq!(sends(&mut c), ["node-2", "node-3"]);
        c.on_local(Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
        assert!(!c.is_settled());
        c.on_reply(
            "node-2",
            Err(WriteFailure::Missed("connection lost".into())),
        );
        assert_eq!(hints(&mut c), ["node-2"]);
        c.on_reply(
            "node-3",
            Err(WriteFailure::Refused("value too large".into())),
        );
        assert!(hints(&mut c).is_empty());
        assert!(!c.is_settled(), "node-2's hint is on its way");
        c.on_hinted("node-2", Ok(()));
        assert!(c.is_settled());
        assert!(c.poll_outcome().is_none());
    }

    /// A replica silent past its patience (half the budget) gets a hint that counts in its
    /// place; if it answers while the hint is stored, its answer counts and the hint's does
    /// not count twice.
    #[test]
    fn slow_replicas_are_hinted_at_their_patience() {
        let t = targets("1 2 3", "");
        let mut c =
            WriteCoordinator::new("node-1", &t, Consistency::Quorum, 1_000, 400, Hinting::On);
        sends(&mut c);
        assert_eq!(c.poll_timeout(), Some(1_200));
        c.on_local(Ok(()));
        c.on_timeout(1_199);
        assert!(hints(&mut c).is_empty());
        c.on_timeout(1_200);
        assert_eq!(hints(&mut c), ["node-2", "node-3"]);
        assert_eq!(c.poll_timeout(), Some(1_400));
        c.on_reply("node-3", Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
        c.on_hinted("node-3", Ok(()));
        c.on_hinted("node-2", Ok(()));
        assert!(c.is_settled());
        // At the deadline, what is still unsettled fails (hints on their way included).
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::All, 1_000, 400, Hinting::On);
        sends(&mut c);
        c.on_local(Ok(()));
        c.on_timeout(1_200);
        hints(&mut c);
        c.on_timeout(1_400);
        assert!(matches!(c.poll_outcome(), Some(WriteOutcome::Failed(_))));
        assert!(c.is_settled());
    }

    /// The level met by others, a replica still silent at its patience gets its hint all the
    /// same (a node just killed, not yet convicted by the failure detector).
    #[test]
    fn silent_replicas_are_hinted_after_the_outcome() {
        let t = targets("1 2 3", "");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 0, 400, Hinting::On);
        sends(&mut c);
        c.on_local(Ok(()));
        c.on_reply("node-2", Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
        assert_eq!(c.poll_timeout(), Some(200));
        c.on_timeout(200);
        assert_eq!(hints(&mut c), ["node-3"]);
        assert_eq!(c.poll_timeout(), Some(400));
        c.on_hinted("node-3", Ok(()));
        assert!(c.is_settled() && c.poll_timeout().is_none());
    }

    /// Hints live on this node: they count only once its own copy is durable, and not at all
    /// if it failed (no replica would hold the write).
    #[test]
    fn hints_count_only_with_the_local_copy() {
        let t = targets("1 2 3", "2 3");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 0, 100, Hinting::On);
        hints(&mut c);
        c.on_hinted("node-2", Ok(()));
        c.on_hinted("node-3", Ok(()));
        assert!(
            c.poll_outcome().is_none(),
            "the local copy is not durable yet"
        );
        c.on_local(Err("storage: no room".into()));
        match c.poll_outcome() {
            Some(WriteOutcome::Failed(e)) => {
                assert_eq!(e.reached, 0);
                assert!(e.to_string().contains("own copy failed"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 0, 100, Hinting::On);
        hints(&mut c);
        c.on_hinted("node-2", Ok(()));
        c.on_local(Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
    }

    /// Under ALL a slow replica is hinted at its patience, but its own answer before the
    /// deadline still counts; so does a replica's answer after its hint was refused.
    #[test]
    fn a_slow_replica_still_counts_when_its_hint_does_not() {
        let t = targets("1 2 3", "");
        let mut c = WriteCoordinator::new("node-1", &t, Consistency::All, 0, 400, Hinting::On);
        sends(&mut c);
        c.on_local(Ok(()));
        c.on_reply("node-2", Ok(()));
        c.on_timeout(200);
        assert_eq!(hints(&mut c), ["node-3"]);
        c.on_hinted("node-3", Ok(()));
        assert!(c.poll_outcome().is_none(), "node-3 may still answer");
        c.on_reply("node-3", Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
        assert!(c.is_settled());

        let mut c = WriteCoordinator::new("node-1", &t, Consistency::Quorum, 0, 400, Hinting::On);
        sends(&mut c);
        c.on_local(Ok(()));
        c.on_timeout(200);
        hints(&mut c);
        c.on_hinted("node-2", Err("hints for node-2 are full".into()));
        c.on_hinted("node-3", Err("hints for node-3 are full".into()));
        assert!(c.poll_outcome().is_none());
        c.on_reply("node-2", Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));
        c.on_timeout(400);
        assert!(c.is_settled());
    }

    /// During a layout change the level is met in the old set and in the new one: a replica in
    /// both is asked once and counts in each; the joining replica's hint does not count toward
    /// the new set, so a write its new owners do not hold is not acknowledged.
    #[test]
    fn a_write_during_a_change_meets_the_level_in_every_live_set() {
        let old = targets("1 2 3", "");
        let new = targets("1 2 4", "");
        let mut c = WriteCoordinator::in_sets(
            "node-1",
            &[old, new],
            Consistency::Quorum,
            0,
            100,
            Hinting::On,
        );
        assert_eq!(sends(&mut c), ["node-2", "node-3", "node-4"]);
        c.on_local(Ok(()));
        c.on_reply("node-3", Ok(()));
        // The old set has two of three; the new one only node-1.
        assert_eq!(c.poll_outcome(), None);
        c.on_reply("node-4", Ok(()));
        assert_eq!(c.poll_outcome(), Some(WriteOutcome::Done));

        // node-4 (joining) down: its hint keeps the write for it but does not count; node-2
        // refusing leaves the new set one short.
        let old = targets("1 2 3", "");
        let new = targets("1 2 4", "4");
        let mut c = WriteCoordinator::in_sets(
            "node-1",
            &[old, new],
            Consistency::Quorum,
            0,
            100,
            Hinting::On,
        );
        assert_eq!(sends(&mut c), ["node-2", "node-3", "hint node-4"]);
        c.on_local(Ok(()));
        c.on_hinted("node-4", Ok(()));
        c.on_reply("node-3", Ok(()));
        assert_eq!(c.poll_outcome(), None);
        c.on_reply("node-2", Err(WriteFailure::Refused("full".into())));
        let Some(WriteOutcome::Failed(e)) = c.poll_outcome() else {
            panic!("the new set cannot reach QUORUM")
        };
        let text = e.to_string();
        assert!(
            text.starts_with("consistency QUORUM needs 2 of 3 replicas, reached 1"),
            "{text}"
        );
        assert!(text.contains("node-4: a hint does not count"), "{text}");
    }
}
