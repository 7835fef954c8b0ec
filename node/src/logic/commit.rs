//! Committing a layout version at one point: single-decree Paxos per version slot.
//!
//! Version v+1 of the layout is decided by the members of version v (the acceptors). Any node
//! may propose a value for the slot (a whole new layout, planned on top of v). Two changes
//! racing from different nodes or operators end with exactly one value chosen for the slot; a
//! proposer whose value lost learns the winner (its outcome says so), and may plan its change
//! again on top of it for the next slot.
//!
//! The two roles are I/O-free: an [`Acceptor`] is the durable state of one slot on one node,
//! changed by [`Acceptor::on_prepare`] and [`Acceptor::on_accept`] (the caller makes the new
//! state durable before the reply leaves); a [`Proposer`] is a state machine fed replies and
//! the time, asking for sends, as the node's other coordinators are.
//!
//! The rules (Lamport, "Paxos Made Simple"): a ballot is (round, proposer id), totally
//! ordered. Phase 1: the proposer asks a majority to promise to ignore lower ballots; each
//! promise carries the highest-ballot value the acceptor accepted. Phase 2: the proposer asks
//! them to accept the value of the highest ballot among the promises (its own only if none
//! had accepted anything). A value accepted by a majority under one ballot is chosen, and every
//! later ballot that reaches phase 2 carries it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

pub use kvctl::model::layout::Ballot;

/// One node's durable state for one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptor<V> {
    /// No ballot below this one is taken.
    pub promised: Option<Ballot>,
    /// The last value accepted, under its ballot.
    pub accepted: Option<(Ballot, V)>,
    /// The value the node learned was chosen, if it did.
    pub chosen: Option<V>,
}

impl<V> Default for Acceptor<V> {
    fn default() -> Self {
        Acceptor {
            promised: None,
            accepted: None,
            chosen: None,
        }
    }
}

/// What a proposer asks an acceptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<V> {
    Prepare { ballot: Ballot },
    Accept { ballot: Ballot, value: V },
}

/// An acceptor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply<V> {
    /// Phase 1: the promise, with the value accepted last (if any).
    Promise {
        ballot: Ballot,
        accepted: Option<(Ballot, V)>,
    },
    /// Phase 2: the value is accepted under `ballot`.
    Accepted { ballot: Ballot },
    /// `ballot` is below what the acceptor promised.
    Nack { ballot: Ballot, promised: Ballot },
    /// The slot is decided already: this value.
    Chosen { value: V },
}

impl<V: Clone> Acceptor<V> {
    /// Phase 1. The state may change: make it durable before the reply leaves.
    pub fn on_prepare(&mut self, ballot: Ballot) -> Reply<V> {
        if let Some(value) = &self.chosen {
            return Reply::Chosen {
                value: value.clone(),
            };
        }
        match &self.promised {
            Some(promised) if *promised > ballot => Reply::Nack {
                ballot,
                promised: promised.clone(),
            },
            _ => {
                self.promised = Some(ballot.clone());
                Reply::Promise {
                    ballot,
                    accepted: self.accepted.clone(),
                }
            }
        }
    }

    /// Phase 2. The state may change: make it durable before the reply leaves.
    pub fn on_accept(&mut self, ballot: Ballot, value: V) -> Reply<V> {
        if let Some(value) = &self.chosen {
            return Reply::Chosen {
                value: value.clone(),
            };
        }
        match &self.promised {
            Some(promised) if *promised > ballot => Reply::Nack {
                ballot,
                promised: promised.clone(),
            },
            _ => {
                self.promised = Some(ballot.clone());
                self.accepted = Some((ballot.clone(), value));
                Reply::Accepted { ballot }
            }
        }
    }

    /// The slot was decided (the node learned it from a proposer or a peer).
    pub fn learn(&mut self, value: V) {
        self.chosen = Some(value);
    }
}

/// A send the proposer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send<V> {
    pub to: String,
    pub message: Message<V>,
}

/// How a proposal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<V> {
    /// `value` is chosen for the slot; `ours` says whether it is the value proposed.
    Chosen { value: V, ours: bool },
    /// No value could be chosen within the attempts allowed (acceptors down, or racing).
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prepare,
    Accept,
    /// Beaten by a higher ballot: waiting for the retry time.
    Waiting,
    Done,
}

/// Proposes a value for one slot.
pub struct Proposer<V> {
    me: String,
    acceptors: Vec<String>,
    value: V,
    ballot: Ballot,
    phase: Phase,
    promises: BTreeMap<String, Option<(Ballot, V)>>,
    accepts: BTreeSet<String>,
    /// The value of phase 2.
    proposal: Option<V>,
    /// The highest round seen in any ballot.
    highest_round: u64,
    outbox: VecDeque<Send<V>>,
    outcome: Option<Outcome<V>>,
    attempts: u32,
    attempts_max: u32,
    /// How long a phase may wait for its majority.
    phase_ms: u64,
    /// How long a beaten proposer waits before trying again (the caller gives each proposer a
    /// different one, so racing proposers stop beating each other).
    retry_ms: u64,
    wake_ms: u64,
    /// Why the last attempt did not succeed.
    last_failure: String,
}

impl<V: Clone + PartialEq> Proposer<V> {
    /// Starts proposing `value` to `acceptors` (the members of the version before the slot).
    pub fn new(
        me: &str,
        acceptors: Vec<String>,
        value: V,
        now_ms: u64,
        phase_ms: u64,
        retry_ms: u64,
        attempts_max: u32,
    ) -> Proposer<V> {
        let mut proposer = Proposer {
            me: me.to_string(),
            acceptors,
            value,
            ballot: Ballot {
                round: 0,
                node: me.to_string(),
            },
            phase: Phase::Waiting,
            promises: BTreeMap::new(),
            accepts: BTreeSet::new(),
            proposal: None,
            highest_round: 0,
            outbox: VecDeque::new(),
            outcome: None,
            attempts: 0,
            attempts_max: attempts_max.max(1),
            phase_ms,
            retry_ms,
            wake_ms: now_ms,
            last_failure: String::new(),
        };
        proposer.start(now_ms);
        proposer
    }

    fn majority(&self) -> usize {
        self.acceptors.len() / 2 + 1
    }

    /// A new attempt under a ballot above every one seen.
    fn start(&mut self, now_ms: u64) {
        if self.attempts >= self.attempts_max {
            self.finish(Outcome::Failed(format!(
                "no layout version was chosen after {} attempts: {}",
                self.attempts, self.last_failure
            )));
            return;
        }
        self.attempts += 1;
        self.highest_round += 1;
        self.ballot = Ballot {
            round: self.highest_round,
            node: self.me.clone(),
        };
        self.phase = Phase::Prepare;
        self.promises.clear();
        self.accepts.clear();
        self.proposal = None;
        self.wake_ms = now_ms + self.phase_ms;
        for to in self.acceptors.clone() {
            self.outbox.push_back(Send {
                to,
                message: Message::Prepare {
                    ballot: self.ballot.clone(),
                },
            });
        }
    }

    fn finish(&mut self, outcome: Outcome<V>) {
        self.phase = Phase::Done;
        self.outbox.clear();
        self.outcome = Some(outcome);
    }

    pub fn poll_action(&mut self) -> Option<Send<V>> {
        self.outbox.pop_front()
    }

    pub fn poll_outcome(&mut self) -> Option<Outcome<V>> {
        self.outcome.take()
    }

    /// When to call [`Proposer::on_timeout`] (ms on the caller's clock), unless done.
    pub fn poll_timeout(&self) -> Option<u64> {
        (self.phase != Phase::Done).then_some(self.wake_ms)
    }

    pub fn on_timeout(&mut self, now_ms: u64) {
        if now_ms < self.wake_ms {
            return;
        }
        match self.phase {
            Phase::Done => {}
            Phase::Waiting => self.start(now_ms),
            Phase::Prepare | Phase::Accept => {
                self.last_failure = format!(
                    "{} of {} members answered within {} ms (a majority is {})",
                    match self.phase {
                        Phase::Prepare => self.promises.len(),
                        _ => self.accepts.len(),
                    },
                    self.acceptors.len(),
                    self.phase_ms,
                    self.majority()
                );
                self.start(now_ms);
            }
        }
    }

    /// An acceptor's reply (one for an older ballot is ignored).
    pub fn on_reply(&mut self, from: &str, reply: Reply<V>, now_ms: u64) {
        if self.phase == Phase::Done || !self.acceptors.iter().any(|a| a == from) {
            return;
        }
        match reply {
            Reply::Chosen { value } => {
                let ours = value == self.value;
                self.finish(Outcome::Chosen { value, ours });
            }
            Reply::Nack { ballot, promised } => {
                self.highest_round = self.highest_round.max(promised.round);
                if ballot == self.ballot && matches!(self.phase, Phase::Prepare | Phase::Accept) {
                    self.last_failure = format!(
                        "{from} promised a higher ballot (round {}, {})",
                        promised.round, promised.node
                    );
                    self.phase = Phase::Waiting;
                    self.outbox.clear();
                    self.wake_ms = now_ms + self.retry_ms;
                }
            }
            Reply::Promise { ballot, accepted } => {
                if ballot != self.ballot || self.phase != Phase::Prepare {
                    return;
                }
                if let Some((b, _)) = &accepted {
                    self.highest_round = self.highest_round.max(b.round);
                }
                self.promises.insert(from.to_string(), accepted);
                if self.promises.len() >= self.majority() {
                    let value = self
                        .promises
                        .values()
                        .flatten()
                        .max_by(|a, b| a.0.cmp(&b.0))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| self.value.clone());
                    self.phase = Phase::Accept;
                    self.proposal = Some(value.clone());
                    self.wake_ms = now_ms + self.phase_ms;
                    for to in self.acceptors.clone() {
                        self.outbox.push_back(Send {
                            to,
                            message: Message::Accept {
                                ballot: self.ballot.clone(),
                                value: value.clone(),
                            },
                        });
                    }
                }
            }
            Reply::Accepted { ballot } => {
                if ballot != self.ballot || self.phase != Phase::Accept {
                    return;
                }
                self.accepts.insert(from.to_string());
                if self.accepts.len() >= self.majority() {
                    let value = self.proposal.clone().expect("phase 2 has its value");
                    let ours = value == self.value;
                    self.finish(Outcome::Chosen { value, ours });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    /// Delivers every message at once, in order, to fresh acceptors.
    #[test]
    fn a_lone_proposer_gets_its_value_chosen() {
        let mut acceptors: BTreeMap<String, Acceptor<&str>> = ids(3)
            .into_iter()
            .map(|id| (id, Acceptor::default()))
            .collect();
        let mut p = Proposer::new("node-1", ids(3), "v2", 0, 1000, 100, 3);
        let outcome = loop {
            while let Some(Send { to, message }) = p.poll_action() {
                let a = acceptors.get_mut(&to).unwrap();
                let reply = match message {
                    Message::Prepare { ballot } => a.on_prepare(ballot),
                    Message::Accept { ballot, value } => a.on_accept(ballot, value),
                };
                p.on_reply(&to, reply, 1);
            }
            if let Some(outcome) = p.poll_outcome() {
                break outcome;
            }
        };
        assert_eq!(
            outcome,
            Outcome::Chosen {
                value: "v2",
                ours: true
            }
        );
    }

    #[test]
    fn a_later_proposer_adopts_an_accepted_value_and_learns_it_lost() {
        let mut acceptors: Vec<Acceptor<&str>> = vec![Acceptor::default(); 3];
        let first = Ballot {
            round: 1,
            node: "node-1".into(),
        };
        // node-1's value reached one acceptor in phase 2, then node-1 went quiet.
        for a in &mut acceptors {
            a.on_prepare(first.clone());
        }
        acceptors[0].on_accept(first, "from node-1");
        let mut p = Proposer::new("node-2", ids(3), "from node-2", 0, 1000, 100, 3);
        let mut sent = Vec::new();
        while let Some(send) = p.poll_action() {
            sent.push(send);
        }
        // Round 1 by node-2 is above round 1 by node-1: promised, with the accepted value.
        for Send { to, message } in sent {
            let i: usize = to.trim_start_matches("node-").parse::<usize>().unwrap() - 1;
            let Message::Prepare { ballot } = message else {
                unreachable!()
            };
            let reply = acceptors[i].on_prepare(ballot);
            p.on_reply(&to, reply, 1);
        }
        let accepts: Vec<_> = std::iter::from_fn(|| p.poll_action()).collect();
        assert!(accepts.iter().all(|s| matches!(
            &s.message,
            Message::Accept { value, .. } if *value == "from node-1"
        )));
        for Send { to, message } in accepts {
            let i: usize = to.trim_start_matches("node-").parse::<usize>().unwrap() - 1;
            let Message::Accept { ballot, value } = message else {
                unreachable!()
            };
            let reply = acceptors[i].on_accept(ballot, value);
            p.on_reply(&to, reply, 2);
        }
        assert_eq!(
            p.poll_outcome(),
            Some(Outcome::Chosen {
                value: "from node-1",
                ours: false
            })
        );
    }

    #[test]
    fn without_a_majority_it_fails_naming_why() {
        let mut p: Proposer<&str> = Proposer::new("node-1", ids(3), "v", 0, 100, 10, 2);
        while p.poll_action().is_some() {}
        p.on_reply(
            "node-2",
            Reply::Promise {
                ballot: Ballot {
                    round: 1,
                    node: "node-1".into(),
                },
                accepted: None,
            },
            5,
        );
        p.on_timeout(100);
        while p.poll_action().is_some() {}
        p.on_timeout(200);
        let Some(Outcome::Failed(why)) = p.poll_outcome() else {
            panic!("expected a failure")
        };
        assert!(why.contains("after 2 attempts"), "{why}");
        assert!(why.contains("a majority is 2"), "{why}");
        assert_eq!(p.poll_timeout(), None);
    }

    /// A message in flight: to an acceptor, or a reply to a proposer.
    #[derive(Clone, Debug)]
    enum Flight {
        Request {
            proposer: usize,
            to: usize,
            message: Message<u32>,
        },
        Reply {
            proposer: usize,
            from: usize,
            reply: Reply<u32>,
        },
    }

    proptest! {
        /// Racing proposers over a network that reorders, drops and duplicates messages, with
        /// timeouts firing at random: every proposer that ends with a chosen value ends with
        /// the same one, it is one of those proposed, and no two values are ever accepted by
        /// a majority.
        #[test]
        fn racing_proposers_agree_on_one_value(
            acceptor_count in prop::sample::select(vec![3usize, 4, 5]),
            proposer_count in 2usize..4,
            steps in prop::collection::vec((0u8..10, any::<prop::sample::Index>()), 1..600),
        ) {
            let names = ids(acceptor_count);
            let mut acceptors: Vec<Acceptor<u32>> = vec![Acceptor::default(); acceptor_count];
            let mut proposers: Vec<Proposer<u32>> = (0..proposer_count)
                .map(|p| Proposer::new(&names[p], names.clone(), 100 + p as u32, 0, 50, 7 + 13 * p as u64, 20))
                .collect();
            let mut outcomes: Vec<Option<Outcome<u32>>> = vec![None; proposer_count];
            let mut flights: Vec<Flight> = Vec::new();
            // Per (ballot, value): the acceptors that accepted it.
            let mut accepted: BTreeMap<(Ballot, u32), BTreeSet<usize>> = BTreeMap::new();
            let mut now = 0u64;
            let index_of = |name: &str| names.iter().position(|n| n == name).unwrap();
            for (kind, pick) in steps {
                for (p, proposer) in proposers.iter_mut().enumerate() {
                    while let Some(Send { to, message }) = proposer.poll_action() {
                        flights.push(Flight::Request { proposer: p, to: index_of(&to), message });
                    }
                    if let Some(o) = proposer.poll_outcome() {
                        outcomes[p] = Some(o);
                    }
                }
                now += 1;
                match kind {
                    // Time passes and every proposer's timer is looked at.
                    0 => {
                        now += 20;
                        for proposer in &mut proposers {
                            proposer.on_timeout(now);
                        }
                    }
                    // A message is dropped.
                    1 if !flights.is_empty() => {
                        flights.swap_remove(pick.index(flights.len()));
                    }
                    // A message is delivered (and, for 2, kept to be delivered again).
                    _ if !flights.is_empty() => {
                        let i = pick.index(flights.len());
                        let flight = if kind == 2 { flights[i].clone() } else { flights.swap_remove(i) };
                        match flight {
                            Flight::Request { proposer, to, message } => {
                                let reply = match message {
                                    Message::Prepare { ballot } => acceptors[to].on_prepare(ballot),
                                    Message::Accept { ballot, value } => {
                                        let reply = acceptors[to].on_accept(ballot.clone(), value);
                                        if matches!(reply, Reply::Accepted { .. }) {
                                            accepted.entry((ballot, value)).or_default().insert(to);
                                        }
                                        reply
                                    }
                                };
                                flights.push(Flight::Reply { proposer, from: to, reply });
                            }
                            Flight::Reply { proposer, from, reply } => {
                                proposers[proposer].on_reply(&names[from], reply, now);
                            }
                        }
                    }
                    _ => {}
                }
            }
            for (p, proposer) in proposers.iter_mut().enumerate() {
                if let Some(o) = proposer.poll_outcome() {
                    outcomes[p] = Some(o);
                }
            }
            let majority = acceptor_count / 2 + 1;
            let chosen: BTreeSet<u32> = accepted
                .iter()
                .filter(|(_, who)| who.len() >= majority)
                .map(|((_, v), _)| *v)
                .collect();
            prop_assert!(chosen.len() <= 1, "two values accepted by a majority: {:?}", chosen);
            let learned: BTreeSet<u32> = outcomes
                .iter()
                .flatten()
                .filter_map(|o| match o {
                    Outcome::Chosen { value, .. } => Some(*value),
                    Outcome::Failed(_) => None,
                })
                .collect();
            prop_assert!(learned.len() <= 1, "proposers learned different values: {:?}", learned);
            if let Some(v) = learned.iter().next() {
                prop_assert!((100..100 + proposer_count as u32).contains(v));
                prop_assert!(chosen.contains(v));
            }
        }
    }
}
