//! Placement: which nodes hold a key, and which stand in for them.
//!
//! A key's primaries are the first N distinct nodes clockwise from its token (its preference
//! list). After them come its fallbacks: the next distinct nodes clockwise, in ring order, that
//! a sloppy quorum hands a down primary's writes to (with a hint naming the primary). Today the
//! one strategy is ring order ([`Strategy::RingOrder`]); datacenter- and rack-aware strategies
//! choose the same two lists with their own rules.

use std::net::SocketAddr;

use crate::model::ring::{token_of, Ring, Token};

/// A node a request may be sent to, as this node sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    /// Where it listens, if gossip told us.
    pub addr: Option<SocketAddr>,
    /// Whether gossip reports it up.
    pub up: bool,
}

impl Target {
    /// The address to send to, if the node is up and its address known.
    pub fn reachable(&self) -> Option<SocketAddr> {
        self.addr.filter(|_| self.up)
    }
}

/// A key's replicas: its primaries (N of them, fewer on a smaller ring) and the fallbacks after
/// them (at most N).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replicas {
    pub primaries: Vec<Target>,
    pub fallbacks: Vec<Target>,
}

impl Replicas {
    pub fn is_empty(&self) -> bool {
        self.primaries.is_empty()
    }

    /// Whether `id` is one of the primaries.
    pub fn is_primary(&self, id: &str) -> bool {
        self.primaries.iter().any(|t| t.id == id)
    }
}

/// How replicas are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The first distinct nodes clockwise on the ring.
    #[default]
    RingOrder,
}

/// Chooses a key's replicas from the ring and the members' states.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    replication: usize,
    strategy: Strategy,
}

/// What placement needs to know of a member: its address, and whether it is up.
pub trait Members {
    fn addr_of(&self, id: &str) -> Option<SocketAddr>;
    fn is_up(&self, id: &str) -> bool;
}

impl Placement {
    /// Placement of `replication` replicas per key.
    pub fn new(replication: usize) -> Placement {
        Placement {
            replication,
            strategy: Strategy::RingOrder,
        }
    }

    pub fn replication(&self) -> usize {
        self.replication
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The primaries and fallbacks of `key` on `ring`.
    pub fn replicas(&self, ring: &Ring, key: &[u8], members: &impl Members) -> Replicas {
        self.replicas_at(ring, token_of(key), members)
    }

    /// The primaries and fallbacks of the keys of `token` on `ring`.
    pub fn replicas_at(&self, ring: &Ring, token: Token, members: &impl Members) -> Replicas {
        match self.strategy {
            Strategy::RingOrder => {
                let n = self.replication;
                let mut ids = ring.preference_list_for_token(token, 2 * n).into_iter();
                let target = |id: String| Target {
                    addr: members.addr_of(&id),
                    up: members.is_up(&id),
                    id,
                };
                Replicas {
                    primaries: ids.by_ref().take(n).map(target).collect(),
                    fallbacks: ids.map(target).collect(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ring::build_balanced;
    use std::collections::HashSet;

    struct Up(HashSet<String>);

    impl Members for Up {
        fn addr_of(&self, id: &str) -> Option<SocketAddr> {
            let n: u16 = id.trim_start_matches("node-").parse().ok()?;
            Some(SocketAddr::from(([127, 0, 0, 1], 7000 + n)))
        }
        fn is_up(&self, id: &str) -> bool {
            self.0.contains(id)
        }
    }

    fn ids(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.id.as_str()).collect()
    }

    /// Primaries are the preference list; fallbacks are the next distinct nodes after it, up
    /// to N, never repeating a primary; states and addresses come from the members.
    #[test]
    fn primaries_then_fallbacks_in_ring_order() {
        let nodes: Vec<String> = (1..=7).map(|i| format!("node-{i}")).collect();
        let ring = build_balanced(&nodes, 16);
        let up = Up(nodes.iter().filter(|n| *n != "node-3").cloned().collect());
        let placement = Placement::new(3);
        for key in [&b"a"[..], b"key-17", b"zzz"] {
            let r = placement.replicas(&ring, key, &up);
            let list = ring.preference_list(key, 6);
            assert_eq!(
                ids(&r.primaries),
                list[..3].iter().map(String::as_str).collect::<Vec<_>>()
            );
            assert_eq!(
                ids(&r.fallbacks),
                list[3..].iter().map(String::as_str).collect::<Vec<_>>()
            );
            for t in r.primaries.iter().chain(&r.fallbacks) {
                assert_eq!(t.up, t.id != "node-3");
                assert_eq!(t.reachable().is_some(), t.up);
            }
            assert!(r.is_primary(&list[0]) && !r.is_primary(&list[3]));
        }
    }

    /// A ring smaller than N has fewer primaries and no fallbacks; an empty ring has nothing.
    #[test]
    fn small_and_empty_rings() {
        let nodes: Vec<String> = (1..=2).map(|i| format!("node-{i}")).collect();
        let ring = build_balanced(&nodes, 8);
        let up = Up(nodes.iter().cloned().collect());
        let r = Placement::new(3).replicas(&ring, b"k", &up);
        assert_eq!(r.primaries.len(), 2);
        assert!(r.fallbacks.is_empty());
        let nodes: Vec<String> = (1..=4).map(|i| format!("node-{i}")).collect();
        let r = Placement::new(3).replicas(&build_balanced(&nodes, 8), b"k", &up);
        assert_eq!((r.primaries.len(), r.fallbacks.len()), (3, 1));
        assert!(Placement::new(3)
            .replicas(&Ring::empty(), b"k", &up)
            .is_empty());
    }
}
