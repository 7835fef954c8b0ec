//! Coordination of gets and puts as I/O-free state machines.
//!
//! A coordinator holds the logic of one request: which replicas to ask, how many requests to
//! keep in flight, whom to ask next when one fails, counting replies toward the consistency
//! level, merging, deciding read repair, and handing a write to a replica when this node is
//! not one. It owns no socket, task or clock: its driver (`server.rs`) feeds it inputs (a
//! replica's reply, the local copy read or durable, the time when a timer fires) and carries
//! out what it asks for ([`Action`]: send to that node, do the local job), until it has an
//! outcome. Time is passed in as milliseconds on the driver's clock, and every coordinator has
//! one deadline (the request's budget): [`ReadCoordinator::poll_timeout`] says when to wake it.
//!
//! The model is quinn-proto's: a protocol core without I/O driven by a thin endpoint, so every
//! order of replies, every failure and every timeout is a unit test.
//!
//! - [`read`]: a get ([`ReadCoordinator`]).
//! - [`write`]: a put on a replica of the key ([`WriteCoordinator`]).
//! - [`forward`]: choosing to coordinate or to hand the request on ([`route`], [`Forwarder`]).

use std::net::SocketAddr;

pub mod forward;
pub mod read;
pub mod write;

pub use forward::{route, ForwardOutcome, ForwardReply, Forwarder, Route};
pub use read::{ReadCoordinator, ReadFailure, ReadOutcome};
pub use write::{Hinting, WriteCoordinator, WriteFailure, WriteOutcome};

/// What a coordinator asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Do this node's own part: read its copy (a get). A put's local copy is made before its
    /// coordinator starts; its durability is reported with `on_local`.
    Local,
    /// Send the request to node `to` at `addr`, and report its reply with `on_reply(to, ..)`.
    Send { to: String, addr: SocketAddr },
    /// Store a hint of the write for replica `target` on this node, durably, and report it
    /// with `on_hinted(target, ..)` (puts only).
    Hint { target: String },
}

/// Why a replica that was not asked failed, in the words errors carry.
pub(crate) const DOWN: &str = "down (no recent gossip)";

/// The failure recorded for a replica still outstanding at the deadline.
pub(crate) fn no_reply(budget_ms: u64) -> String {
    format!("no reply within the request's {budget_ms} ms")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;

    use kvctl::model::version::{new_version_against, Siblings, VClock, Version};

    use kvctl::model::placement::Target;

    /// What `actions` ask for, by name: "local", or the node sent to.
    pub fn named(actions: impl Iterator<Item = super::Action>) -> Vec<String> {
        actions
            .map(|a| match a {
                super::Action::Local => "local".to_string(),
                super::Action::Send { to, .. } => to,
                super::Action::Hint { target } => format!("hint {target}"),
            })
            .collect()
    }

    /// Targets `node-<i>` for each number in `ids` (in that order), those in `down` down.
    pub fn targets(ids: &str, down: &str) -> Vec<Target> {
        let down: Vec<&str> = down.split_whitespace().collect();
        ids.split_whitespace()
            .map(|i| Target {
                id: format!("node-{i}"),
                addr: Some(SocketAddr::from((
                    [127, 0, 0, 1],
                    7000 + i.parse::<u16>().unwrap(),
                ))),
                up: !down.contains(&i),
            })
            .collect()
    }

    /// A version written by `actor` (at time `at`) over `parent`, or over nothing.
    pub fn version(parent: Option<&Version>, actor: &str, at: u64, value: &[u8]) -> Version {
        let stored = parent.cloned().map(Siblings::from).unwrap_or_default();
        let context = parent.map_or_else(VClock::new, |p| p.clock.clone());
        new_version_against(&stored, &context, actor, 0, at, Some(value.to_vec()), 64)
    }
}
