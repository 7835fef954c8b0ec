//! The client's picture of the cluster: the members, their tokens and states as one node
//! reported them, and the routing of a key to the nodes to ask, in order.
//!
//! No I/O: the client SDK fetches a node's view ([`crate::wire::proto::Response::Members`]) and
//! builds a [`Topology`] from it; [`Topology::route`] then orders the nodes for one request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use crate::model::placement::{Members, Placement};
use crate::model::ring::{token_of, Ring};
use crate::wire::proto::MemberView;

/// What the client knows of one member.
#[derive(Debug, Clone)]
struct Node {
    addr: SocketAddr,
    /// As the reporting node's failure detector saw it.
    up: bool,
}

/// The cluster as one node reported it.
#[derive(Debug, Clone)]
pub struct Topology {
    ring: Ring,
    nodes: HashMap<String, Node>,
    placement: Placement,
    /// Every member's address, in id order (stable, for rotation).
    addrs: Vec<SocketAddr>,
    /// Each ring range's primaries, worked out on its first request (indexed by
    /// [`Ring::range_index`]): a route then costs the key's token and a binary search, not
    /// a preference list with its ids and lookups. A topology is never changed, only replaced.
    ranges: Vec<OnceLock<Box<RangeRoute>>>,
}

/// The primaries of one ring range, in preference order.
#[derive(Debug, Clone)]
struct RangeRoute {
    /// Those up, with a known address.
    up: Vec<SocketAddr>,
    /// Those reported down whose address is known (tried after those up).
    down: Vec<SocketAddr>,
}

impl Members for Topology {
    fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        self.nodes.get(id).map(|n| n.addr)
    }

    fn is_up(&self, id: &str) -> bool {
        self.nodes.get(id).is_some_and(|n| n.up)
    }
}

impl Topology {
    /// The topology a node's `members` describe, with `replication` replicas per key.
    pub fn new(members: &[MemberView], replication: usize) -> Topology {
        let ring = Ring::new(
            members
                .iter()
                .map(|m| (m.member.id.clone(), m.member.tokens.clone())),
        );
        let nodes: HashMap<String, Node> = members
            .iter()
            .map(|m| {
                (
                    m.member.id.clone(),
                    Node {
                        addr: m.member.addr,
                        up: m.up,
                    },
                )
            })
            .collect();
        let mut ids: Vec<&String> = nodes.keys().collect();
        ids.sort();
        let addrs = ids.into_iter().map(|id| nodes[id].addr).collect();
        let ranges = (0..ring.len()).map(|_| OnceLock::new()).collect();
        Topology {
            ring,
            nodes,
            placement: Placement::new(replication.max(1)),
            addrs,
            ranges,
        }
    }

    /// Every member's address.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn replication(&self) -> usize {
        self.placement.replication()
    }

    /// The nodes to send a request for `key` to, in the order to try them: the key's
    /// primaries that are up, starting at `rotation` (so requests for one key spread over
    /// its replicas), then its primaries reported down, then every other member (any node
    /// can coordinate any key; a non-replica hands a put on).
    pub fn route(&self, key: &[u8], rotation: usize) -> Vec<SocketAddr> {
        let token = token_of(key);
        let Some(range) = self.ring.range_index(token) else {
            return self.addrs.clone();
        };
        let primaries = self.ranges[range].get_or_init(|| {
            let replicas = self.placement.replicas_at(&self.ring, token, self);
            Box::new(RangeRoute {
                up: replicas
                    .primaries
                    .iter()
                    .filter_map(|t| t.reachable())
                    .collect(),
                down: replicas
                    .primaries
                    .iter()
                    .filter(|t| !t.up)
                    .filter_map(|t| t.addr)
                    .collect(),
            })
        });
        let mut order = Vec::with_capacity(self.addrs.len());
        let up = &primaries.up;
        if !up.is_empty() {
            let shift = rotation % up.len();
            order.extend(up[shift..].iter().chain(&up[..shift]));
        }
        order.extend(&primaries.down);
        let routed = order.len();
        for addr in &self.addrs {
            if !order[..routed].contains(addr) {
                order.push(*addr);
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ring::build_balanced;
    use crate::wire::proto::{Member, MemberState};

    fn views(n: usize, down: &[usize]) -> Vec<MemberView> {
        let ids: Vec<String> = (1..=n).map(|i| format!("node-{i}")).collect();
        let ring = build_balanced(&ids, 16);
        (1..=n)
            .map(|i| MemberView {
                member: Member {
                    id: format!("node-{i}"),
                    addr: SocketAddr::from(([127, 0, 0, 1], 7700 + i as u16)),
                    tokens: ring.tokens_of(&format!("node-{i}")).to_vec(),
                    state: MemberState::Normal,
                    generation: 1,
                    heartbeat: 1,
                    incarnation: 1,
                    siblings_trimmed: 0,
                    hints_pending: 0,
                    hints_refused: 0,
                    metrics: None,
                    siblings_format_max: 0,
                },
                heartbeat_age_ms: 0,
                up: !down.contains(&i),
                phi: 0.0,
            })
            .collect()
    }

    fn addr_of(t: &Topology, id: &str) -> SocketAddr {
        t.addr_of(id).unwrap()
    }

    /// A key goes first to its primaries (rotating among them), then to the others; every
    /// member appears once.
    #[test]
    fn routes_to_primaries_first_and_rotates() {
        let t = Topology::new(&views(5, &[]), 3);
        for key in [&b"a"[..], b"user:42", b"zzz"] {
            let primaries: Vec<SocketAddr> = t
                .ring()
                .preference_list(key, 3)
                .iter()
                .map(|id| addr_of(&t, id))
                .collect();
            let mut firsts = Vec::new();
            for rotation in 0..3 {
                let order = t.route(key, rotation);
                assert_eq!(order.len(), 5);
                let mut sorted = order.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(sorted.len(), 5, "a member repeated: {order:?}");
                let mut head = order[..3].to_vec();
                head.sort();
                let mut want = primaries.clone();
                want.sort();
                assert_eq!(head, want);
                firsts.push(order[0]);
            }
            firsts.sort();
            firsts.dedup();
            assert_eq!(firsts.len(), 3, "rotation spreads over the primaries");
        }
    }

    /// A primary reported down is tried after the primaries that are up, before the others.
    #[test]
    fn down_primaries_come_after_live_ones() {
        let key = b"some-key";
        let all = Topology::new(&views(5, &[]), 3);
        let down_id = all.ring().preference_list(key, 3)[0].clone();
        let down_index: usize = down_id.trim_start_matches("node-").parse().unwrap();
        let t = Topology::new(&views(5, &[down_index]), 3);
        for rotation in 0..4 {
            let order = t.route(key, rotation);
            assert_eq!(order[2], addr_of(&t, &down_id), "{order:?}");
            assert!(!order[..2].contains(&addr_of(&t, &down_id)));
        }
    }

    /// Routes come from each range's cached primaries: asking again, or for other keys of
    /// the same range, gives what the preference list says.
    #[test]
    fn cached_ranges_route_like_the_preference_list() {
        let t = Topology::new(&views(7, &[2]), 3);
        for round in 0..2 {
            for i in 0..300 {
                let key = format!("key-{i}");
                let want: Vec<SocketAddr> = t
                    .ring()
                    .preference_list(key.as_bytes(), 3)
                    .iter()
                    .filter(|id| *id != "node-2")
                    .map(|id| addr_of(&t, id))
                    .collect();
                let order = t.route(key.as_bytes(), 0);
                assert_eq!(&order[..want.len()], &want[..], "round {round}, {key}");
                assert_eq!(order.len(), 7);
            }
        }
    }

    /// An empty topology routes nowhere.
    #[test]
    fn empty_routes_nowhere() {
        let t = Topology::new(&[], 3);
        assert!(t.route(b"k", 0).is_empty());
    }
}
