//! Whether this node coordinates a put, or hands it to a replica of the key (the coordinator
//! of a write must store it, so that its new version is built from a replica's versions).
//!
//! A handed-on write goes to the replicas in ring order, skipping those gossip reports down;
//! one that cannot be reached is skipped for the next, but one that was reached and did not
//! confirm may have applied it, so the forwarder stops there rather than write it twice.

use std::collections::VecDeque;

use super::Action;
use kvctl::model::placement::{Replicas, Target};

/// What to do with a put.
#[derive(Debug)]
pub enum Route {
    /// This node is a replica: coordinate it.
    Coordinate,
    /// Hand it to a replica.
    Forward(Forwarder),
    /// The put was handed here by a node that thought this one a replica, and it is not:
    /// two nodes disagree on the ring (a join in progress). It is not bounced again.
    NotReplica,
}

/// Where a put for a key with `replicas` goes when it reaches node `me`; `forwarded` when
/// another node handed it here.
pub fn route(me: &str, replicas: &Replicas, forwarded: bool) -> Route {
    if replicas.is_primary(me) {
        Route::Coordinate
    } else if forwarded {
        Route::NotReplica
    } else {
        Route::Forward(Forwarder::new(replicas.primaries.clone()))
    }
}

/// A replica's answer to a handed-on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardReply<R> {
    /// It answered: its answer is the client's.
    Answered(R),
    /// It could not be reached (nothing was sent): the next replica is asked.
    Unreachable(String),
    /// It was reached and did not confirm (a timeout, a lost stream): it may have applied it.
    Unconfirmed(String),
}

/// How a handed-on request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardOutcome<R> {
    Answered(R),
    /// No replica could take it, or the one that did did not confirm: why.
    Failed(String),
}

#[derive(Debug)]
pub struct Forwarder {
    targets: Vec<Target>,
    next: usize,
    /// The replica asked and not yet answered.
    asked: Option<String>,
    reasons: Vec<String>,
    actions: VecDeque<Action>,
    failed: Option<String>,
}

impl Forwarder {
    pub fn new(targets: Vec<Target>) -> Forwarder {
        let mut f = Forwarder {
            targets,
            next: 0,
            asked: None,
            reasons: Vec::new(),
            actions: VecDeque::new(),
            failed: None,
        };
        f.ask_next();
        f
    }

    /// The next thing to do, if any: one [`Action::Send`] at a time.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Replica `from`'s answer; with it, the outcome, or `None` while another is asked.
    pub fn on_reply<R>(&mut self, from: &str, reply: ForwardReply<R>) -> Option<ForwardOutcome<R>> {
        if self.asked.as_deref() != Some(from) {
            return None;
        }
        self.asked = None;
        match reply {
            ForwardReply::Answered(r) => return Some(ForwardOutcome::Answered(r)),
            ForwardReply::Unreachable(reason) => self.reasons.push(format!("{from}: {reason}")),
            ForwardReply::Unconfirmed(reason) => {
                return Some(ForwardOutcome::Failed(format!(
                    "handed the write to {from}, which did not confirm it: {reason}"
                )))
            }
        }
        self.ask_next();
        self.failed.take().map(ForwardOutcome::Failed)
    }

    /// Why nothing can be asked, when nothing could be from the start (every replica down).
    pub fn poll_failure(&mut self) -> Option<String> {
        self.failed.take()
    }

    fn ask_next(&mut self) {
        while let Some(target) = self.targets.get(self.next) {
            self.next += 1;
            match target.reachable() {
                Some(addr) => {
                    self.asked = Some(target.id.clone());
                    self.actions.push_back(Action::Send {
                        to: target.id.clone(),
                        addr,
                    });
                    return;
                }
                None => self.reasons.push(format!("{}: down", target.id)),
            }
        }
        self.failed = Some(format!(
            "no replica of the key could coordinate the write: {}",
            self.reasons.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::coordinator::tests::targets;

    fn replicas(ids: &str, down: &str) -> Replicas {
        Replicas {
            primaries: targets(ids, down),
            fallbacks: Vec::new(),
        }
    }

    fn sent(f: &mut Forwarder) -> Option<String> {
        match f.poll_action() {
            Some(Action::Send { to, .. }) => Some(to),
            other => {
                assert!(other.is_none(), "{other:?}");
                None
            }
        }
    }

    /// A replica coordinates; another node forwards; a forwarded put reaching a non-replica
    /// is not bounced again.
    #[test]
    fn routes() {
        let r = replicas("1 2 3", "");
        assert!(matches!(route("node-2", &r, false), Route::Coordinate));
        assert!(matches!(route("node-2", &r, true), Route::Coordinate));
        assert!(matches!(route("node-4", &r, true), Route::NotReplica));
        assert!(matches!(route("node-4", &r, false), Route::Forward(_)));
    }

    /// Down replicas are skipped, an unreachable one moves on to the next, an answer is the
    /// outcome.
    #[test]
    fn forwards_to_the_first_that_answers() {
        let mut f = Forwarder::new(targets("1 2 3", "1"));
        assert_eq!(sent(&mut f).as_deref(), Some("node-2"));
        assert_eq!(sent(&mut f), None, "one at a time");
        let r = f.on_reply(
            "node-2",
            ForwardReply::<u8>::Unreachable("connection refused".into()),
        );
        assert_eq!(r, None);
        assert_eq!(sent(&mut f).as_deref(), Some("node-3"));
        // A stray reply from a replica not asked is ignored.
        assert_eq!(f.on_reply("node-2", ForwardReply::Answered(9)), None);
        assert_eq!(
            f.on_reply("node-3", ForwardReply::Answered(7)),
            Some(ForwardOutcome::Answered(7))
        );
    }

    /// A replica that was reached and did not confirm stops the forwarding (it may have
    /// applied the write); every replica unreachable fails with every reason.
    #[test]
    fn stops_at_an_unconfirmed_write_and_explains_exhaustion() {
        let mut f = Forwarder::new(targets("1 2 3", ""));
        assert_eq!(sent(&mut f).as_deref(), Some("node-1"));
        match f.on_reply(
            "node-1",
            ForwardReply::<u8>::Unconfirmed("timed out".into()),
        ) {
            Some(ForwardOutcome::Failed(why)) => {
                assert!(why.contains("node-1, which did not confirm"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sent(&mut f), None);

        let mut f = Forwarder::new(targets("1 2 3", "2"));
        assert_eq!(sent(&mut f).as_deref(), Some("node-1"));
        assert_eq!(
            f.on_reply("node-1", ForwardReply::<u8>::Unreachable("refused".into())),
            None
        );
        assert_eq!(sent(&mut f).as_deref(), Some("node-3"));
        match f.on_reply("node-3", ForwardReply::<u8>::Unreachable("no route".into())) {
            Some(ForwardOutcome::Failed(why)) => assert_eq!(
                why,
                "no replica of the key could coordinate the write: node-1: refused, node-2: \
                 down, node-3: no route"
            ),
            other => panic!("{other:?}"),
        }

        let mut f = Forwarder::new(targets("1 2", "1 2"));
        assert_eq!(sent(&mut f), None);
        assert!(f
            .poll_failure()
            .unwrap()
            .contains("node-1: down, node-2: down"));
    }
}
