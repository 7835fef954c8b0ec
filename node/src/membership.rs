//! Gossip membership as a state machine: no sockets, no clock of its own. The driver calls
//! [`Membership::tick`] once a round with the current time and sends what it returns; it feeds
//! every member list it receives to [`Membership::merge`].
//!
//! Each node owns its entry: it bumps its heartbeat every round; a restart bumps its
//! generation. For every other node the entry with the highest `(generation, heartbeat)` wins,
//! so all nodes converge on the same members, addresses and tokens. A node whose heartbeat has
//! not advanced for `down_after_ms` is reported down (a phi-accrual detector comes later).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use kvctl::proto::{Member, MemberView};
use kvctl::ring::Ring;

/// A node is considered down when its heartbeat has not advanced for this long.
pub const DOWN_AFTER_MS: u64 = 5_000;

struct Known {
    member: Member,
    /// When its heartbeat last advanced, in this node's clock.
    changed_ms: u64,
}

pub struct Membership {
    me: Member,
    others: BTreeMap<String, Known>,
    seeds: Vec<SocketAddr>,
    rng: u64,
    down_after_ms: u64,
    /// The ring of the members' tokens, rebuilt only when tokens change (requests read it).
    ring: Arc<Ring>,
}

impl Membership {
    pub fn new(me: Member, seeds: Vec<SocketAddr>) -> Self {
        let rng = me.id.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        }) | 1;
        let seeds = seeds.into_iter().filter(|s| *s != me.addr).collect();
        let mut membership = Membership {
            me,
            others: BTreeMap::new(),
            seeds,
            rng,
            down_after_ms: DOWN_AFTER_MS,
            ring: Arc::new(Ring::empty()),
        };
        membership.rebuild_ring();
        membership
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// One gossip round: bumps this node's heartbeat and picks whom to gossip with (a random
    /// known node, or a seed now and then and whenever no node is known yet).
    pub fn tick(&mut self, now_ms: u64) -> Option<(SocketAddr, Vec<Member>)> {
        self.me.heartbeat += 1;
        let members = self.members();
        let peers: Vec<SocketAddr> = self.others.values().map(|k| k.member.addr).collect();
        let pick = self.next_random();
        let use_seed = peers.is_empty() || (!self.seeds.is_empty() && pick.is_multiple_of(4));
        let target = if use_seed {
            (!self.seeds.is_empty()).then(|| self.seeds[(pick >> 8) as usize % self.seeds.len()])
        } else {
            Some(peers[(pick >> 8) as usize % peers.len()])
        };
        let _ = now_ms;
        target.map(|t| (t, members))
    }

    /// Every member this node knows, itself included.
    pub fn members(&self) -> Vec<Member> {
        std::iter::once(self.me.clone())
            .chain(self.others.values().map(|k| k.member.clone()))
            .collect()
    }

    /// Takes in what another node knows.
    ///
    /// Returns the addresses of members that restarted (a new generation): connections to
    /// their old process are dead.
    pub fn merge(
        &mut self,
        members: impl IntoIterator<Item = Member>,
        now_ms: u64,
    ) -> Vec<SocketAddr> {
        let mut restarted = Vec::new();
        let mut tokens_changed = false;
        for m in members {
            if m.id == self.me.id {
                continue;
            }
            match self.others.get_mut(&m.id) {
                Some(known) => {
                    if (m.generation, m.heartbeat)
                        > (known.member.generation, known.member.heartbeat)
                    {
                        if m.generation != known.member.generation {
                            restarted.push(known.member.addr);
                        }
                        tokens_changed |= m.tokens != known.member.tokens;
                        known.member = m;
                        known.changed_ms = now_ms;
                    }
                }
                None => {
                    tokens_changed = true;
                    self.others.insert(
                        m.id.clone(),
                        Known {
                            member: m,
                            changed_ms: now_ms,
                        },
                    );
                }
            }
        }
        if tokens_changed {
            self.rebuild_ring();
        }
        restarted
    }

    pub fn is_up(&self, id: &str, now_ms: u64) -> bool {
        id == self.me.id
            || self
                .others
                .get(id)
                .is_some_and(|k| now_ms.saturating_sub(k.changed_ms) < self.down_after_ms)
    }

    pub fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        if id == self.me.id {
            return Some(self.me.addr);
        }
        self.others.get(id).map(|k| k.member.addr)
    }

    /// The ring of every known member that has tokens.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.clone()
    }

    fn rebuild_ring(&mut self) {
        self.ring = Arc::new(Ring::new(
            self.members()
                .into_iter()
                .filter(|m| !m.tokens.is_empty())
                .map(|m| (m.id, m.tokens)),
        ));
    }

    pub fn views(&self, now_ms: u64) -> Vec<MemberView> {
        let mut out = vec![MemberView {
            member: self.me.clone(),
            heartbeat_age_ms: 0,
            up: true,
        }];
        for k in self.others.values() {
            let age = now_ms.saturating_sub(k.changed_ms);
            out.push(MemberView {
                member: k.member.clone(),
                heartbeat_age_ms: age,
                up: age < self.down_after_ms,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvctl::proto::MemberState;

    fn member(i: u16) -> Member {
        Member {
            id: format!("node-{i}"),
            addr: format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
            tokens: vec![i as u128 * 1000],
            state: MemberState::Normal,
            generation: 1,
            heartbeat: 0,
        }
    }

    /// Five nodes that only know the first as a seed all learn every member, by exchanging
    /// gossip over a simulated network with injected time.
    #[test]
    fn membership_converges_through_a_seed() {
        let seed = member(1).addr;
        let mut nodes: Vec<Membership> = (1..=5)
            .map(|i| Membership::new(member(i), vec![seed]))
            .collect();
        let index = |addr: SocketAddr| (addr.port() - 7001) as usize;
        for round in 0..30u64 {
            let now = round * 1000;
            for i in 0..nodes.len() {
                if let Some((target, members)) = nodes[i].tick(now) {
                    let j = index(target);
                    nodes[j].merge(members, now);
                    let reply = nodes[j].members();
                    nodes[i].merge(reply, now);
                }
            }
        }
        for n in &nodes {
            assert_eq!(
                n.members().len(),
                5,
                "{} knows {} members",
                n.me().id,
                n.members().len()
            );
            assert_eq!(n.ring().nodes().len(), 5);
            assert!((1..=5).all(|i| n.is_up(&format!("node-{i}"), 30_000)));
        }
        // A node that stops gossiping is reported down once its heartbeat is stale.
        let now = 30_000 + DOWN_AFTER_MS + 1;
        assert!(!nodes[0].is_up("node-5", now));
    }
}
