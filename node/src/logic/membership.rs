//! Gossip membership as a state machine: no sockets, no clock of its own. The driver calls
//! [`Membership::tick`] once a round with the current time and sends what it returns; it feeds
//! every member list it receives to [`Membership::merge`], saying which node sent it (the id its
//! certificate names).
//!
//! Each node owns its entry: it bumps its heartbeat every round; a restart bumps its
//! generation. For every other node the entry with the highest `(generation, heartbeat)` wins,
//! so all nodes converge on the same members, addresses and tokens. Whether a member is up is
//! this node's own judgement: a phi-accrual detector ([`crate::logic::failure_detector`]) fed the
//! times its heartbeat was seen to advance convicts it (down) when phi reaches the threshold
//! (`--phi-convict-threshold`, default 8), and a heartbeat seen again clears it.
//!
//! # What gossip is trusted with
//!
//! A node certificate says who sends a list, not that the list is true. So every entry is
//! checked on receipt, and a bad one is refused (reported to the caller, to log) while the
//! rest of the list is taken:
//!
//! - its shape: a valid id, 1 to [`TOKENS_PER_MEMBER_MAX`] distinct tokens, a generation at
//!   most [`GENERATION_AHEAD_MAX_MS`] ahead of this node's wall clock; at most
//!   [`MEMBERS_MAX`] members are known (so a member list always fits a message);
//! - a known node's address and tokens change only on the node's own word (the list's sender
//!   is that node); relayed entries may only carry its liveness, and the node's own word wins
//!   over any relayed entry;
//! - tokens are never shared: an entry whose tokens another member holds is refused (ids that
//!   sort first would otherwise win the ties and take over ranges);
//! - ids are unique: an entry for a known id with another incarnation replaces it only once the
//!   known one is down (a wiped node come back); while both live, it is a collision, refused.
//!   An entry claiming this node's id with another incarnation and a later generation is one
//!   too.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use kvctl::model::ring::Ring;
use kvctl::model::version::SIBLINGS_FORMAT_WRITE_IDS;
use kvctl::wire::certs::check_node_id;
use kvctl::wire::proto::{Member, MemberView};

use crate::logic::failure_detector::{ArrivalWindow, PHI_CONVICT_THRESHOLD_DEFAULT};

/// How often a node gossips (and so bumps its heartbeat), in ms.
pub const HEARTBEAT_INTERVAL_MS: u64 = 500;
/// The most members a node knows (itself included); entries for more are refused. The same
/// bound as a message's list of members, so a node's list always fits one.
pub const MEMBERS_MAX: usize = kvctl::wire::proto::MEMBERS_MAX;
/// The most tokens a member may own (as many as a message may carry).
pub const TOKENS_PER_MEMBER_MAX: usize = kvctl::wire::proto::TOKENS_PER_MEMBER_MAX;
/// How far ahead of this node's wall clock a generation may be (clocks differ a little; a
/// generation far in the future would let an entry win over the node's real ones).
pub const GENERATION_AHEAD_MAX_MS: u64 = 3_600_000;

/// What a merge did besides taking entries in.
#[derive(Debug, Default)]
pub struct Merged {
    /// Addresses of members that restarted (a new generation): connections to their old
    /// process are dead.
    pub restarted: Vec<SocketAddr>,
    /// Entries refused, each with the reason.
    pub refused: Vec<String>,
}

struct Known {
    member: Member,
    /// When its heartbeat was seen to advance, in this node's clock.
    arrivals: ArrivalWindow,
    /// When the detector convicts it if it stays silent (recomputed on every arrival), so
    /// that checking it, on every request, is a comparison.
    convicted_at_ms: u64,
}

impl Known {
    fn new(member: Member, arrivals: ArrivalWindow, phi_convict_threshold: f64) -> Known {
        let convicted_at_ms = arrivals.convicted_at(phi_convict_threshold);
        Known {
            member,
            arrivals,
            convicted_at_ms,
        }
    }

    fn is_up(&self, now_ms: u64) -> bool {
        self.arrivals.heard() && now_ms < self.convicted_at_ms
    }
}

/// What [`Membership::take`] did with an entry.
enum Taken {
    /// Nothing newer than what is known.
    Stale,
    Updated {
        restarted: Option<SocketAddr>,
        tokens_changed: bool,
    },
}

pub struct Membership {
    me: Member,
    others: BTreeMap<String, Known>,
    seeds: Vec<SocketAddr>,
    rng: u64,
    phi_convict_threshold: f64,
    /// The ring of the members' tokens, rebuilt only when tokens change (requests read it).
    ring: Arc<Ring>,
    /// Whether every member reads siblings with write ids (see [`Membership::all_read_write_ids`]).
    all_read_write_ids: bool,
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
            phi_convict_threshold: PHI_CONVICT_THRESHOLD_DEFAULT,
            ring: Arc::new(Ring::empty()),
            all_read_write_ids: false,
        };
        membership.rebuild_ring();
        membership.note_formats();
        membership
    }

    /// Sets the suspicion level at which a member is shown down (see
    /// [`crate::logic::failure_detector`]).
    pub fn set_phi_convict_threshold(&mut self, phi: f64) {
        self.phi_convict_threshold = phi;
        for k in self.others.values_mut() {
            k.convicted_at_ms = k.arrivals.convicted_at(phi);
        }
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Records how many versions this node has trimmed so far, for its next gossip round.
    pub fn set_siblings_trimmed(&mut self, total: u64) {
        self.me.siblings_trimmed = total;
    }

    /// Records how many hints this node holds, for its next gossip round.
    pub fn set_hints_pending(&mut self, total: u64, refused: u64) {
        self.me.hints_pending = total;
        self.me.hints_refused = refused;
    }

    /// How long member `id` has been silent, if this node's detector holds it down.
    pub fn down_for(&self, id: &str, now_ms: u64) -> Option<std::time::Duration> {
        let k = self.others.get(id)?;
        (!k.is_up(now_ms))
            .then(|| std::time::Duration::from_millis(now_ms.saturating_sub(k.arrivals.last_ms())))
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

    /// Takes in what another node knows: `members`, sent by the node `sender` (the id its
    /// certificate names; `None` if unknown), at `now_ms` on this node's clock and `wall_ms` on
    /// the wall clock. See the module documentation for what is refused.
    pub fn merge(
        &mut self,
        members: impl IntoIterator<Item = Member>,
        sender: Option<&str>,
        now_ms: u64,
        wall_ms: u64,
    ) -> Merged {
        let mut merged = Merged::default();
        let mut tokens_changed = false;
        for m in members {
            let direct = sender == Some(m.id.as_str());
            match self.take(m, direct, now_ms, wall_ms) {
                Ok(Taken::Stale) => {}
                Ok(Taken::Updated {
                    restarted,
                    tokens_changed: changed,
                }) => {
                    merged.restarted.extend(restarted);
                    tokens_changed |= changed;
                }
                Err(reason) => merged.refused.push(match sender {
                    Some(s) => format!("gossip from {s}: {reason}"),
                    None => format!("gossip: {reason}"),
                }),
            }
        }
        if tokens_changed {
            self.rebuild_ring();
        }
        self.note_formats();
        merged
    }

    /// Whether every member this node knows (up or down: a down one gets hints and repairs
    /// later) reads siblings that carry write ids, so that versions may keep theirs.
    pub fn all_read_write_ids(&self) -> bool {
        self.all_read_write_ids
    }

    fn note_formats(&mut self) {
        self.all_read_write_ids = std::iter::once(&self.me)
            .chain(self.others.values().map(|k| &k.member))
            .all(|m| m.siblings_format_max >= SIBLINGS_FORMAT_WRITE_IDS);
    }

    /// Checks one entry and takes it in if it is newer.
    fn take(
        &mut self,
        m: Member,
        direct: bool,
        now_ms: u64,
        wall_ms: u64,
    ) -> Result<Taken, String> {
        check_node_id(&m.id)?;
        if m.tokens.is_empty() || m.tokens.len() > TOKENS_PER_MEMBER_MAX {
            return Err(format!(
                "member {} has {} tokens (1 to {TOKENS_PER_MEMBER_MAX})",
                m.id,
                m.tokens.len()
            ));
        }
        let mut sorted = m.tokens.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("member {} lists a token twice", m.id));
        }
        if m.generation > wall_ms.saturating_add(GENERATION_AHEAD_MAX_MS) {
            return Err(format!(
                "member {} has generation {}, more than {GENERATION_AHEAD_MAX_MS} ms ahead of \
                 this node's clock ({wall_ms})",
                m.id, m.generation
            ));
        }
        if m.id == self.me.id {
            if m.incarnation != self.me.incarnation && m.generation >= self.me.generation {
                return Err(format!(
                    "another node claims this node's id {} (at {}, incarnation {:016x}; this \
                     node is incarnation {:016x}): node ids must be unique",
                    m.id, m.addr, m.incarnation, self.me.incarnation
                ));
            }
            return Ok(Taken::Stale);
        }
        let known = self.others.get(&m.id);
        if let Some(k) = known {
            let newer = (m.generation, m.heartbeat) > (k.member.generation, k.member.heartbeat);
            if m.incarnation != k.member.incarnation {
                if k.is_up(now_ms) || m.generation <= k.member.generation {
                    // A newer entry of a node gone down is its replacement; anything else is two
                    // live nodes under one id.
                    return if newer || direct {
                        Err(format!(
                            "node id {} is claimed by two nodes: {} (incarnation {:016x}) and \
                             {} (incarnation {:016x}); node ids must be unique",
                            m.id, k.member.addr, k.member.incarnation, m.addr, m.incarnation
                        ))
                    } else {
                        Ok(Taken::Stale)
                    };
                }
            } else if !(newer || (direct && m != k.member)) {
                return Ok(Taken::Stale);
            }
            let moved = m.addr != k.member.addr || m.tokens != k.member.tokens;
            if moved && !direct {
                return Err(format!(
                    "a relayed entry would change the address or tokens of {} (only {0} may)",
                    m.id
                ));
            }
        } else if self.others.len() + 1 >= MEMBERS_MAX {
            return Err(format!(
                "member {} would be member {} (at most {MEMBERS_MAX})",
                m.id,
                self.others.len() + 2
            ));
        }
        if let Some(owner) = self.token_holder(&m.id, &m.tokens) {
            return Err(format!(
                "member {} claims tokens {owner} holds (tokens are never shared)",
                m.id
            ));
        }
        // First-hand word, or a new generation (the process restarted just now), is a sign
        // of life; an entry first learned from others is not, until its heartbeat advances.
        let fresh = |heard| ArrivalWindow::new(now_ms, HEARTBEAT_INTERVAL_MS, heard);
        let (restarted, tokens_changed, arrivals) = match self.others.remove(&m.id) {
            Some(k) => {
                let restarted = m.generation != k.member.generation;
                let arrivals = if restarted || m.incarnation != k.member.incarnation {
                    // A new process: what the old one's heartbeats did says nothing of it.
                    fresh(true)
                } else {
                    let mut arrivals = k.arrivals;
                    if m.heartbeat > k.member.heartbeat || direct {
                        arrivals.heartbeat(now_ms);
                    }
                    arrivals
                };
                (
                    restarted.then_some(k.member.addr),
                    m.tokens != k.member.tokens,
                    arrivals,
                )
            }
            None => (None, true, fresh(direct)),
        };
        let known = Known::new(m, arrivals, self.phi_convict_threshold);
        self.others.insert(known.member.id.clone(), known);
        Ok(Taken::Updated {
            restarted,
            tokens_changed,
        })
    }

    /// Another member (not `id`) that holds one of `tokens`, if any.
    fn token_holder(&self, id: &str, tokens: &[u128]) -> Option<String> {
        let owners: HashMap<u128, &str> = self
            .members_ref()
            .filter(|m| m.id != id)
            .flat_map(|m| m.tokens.iter().map(move |t| (*t, m.id.as_str())))
            .collect();
        tokens
            .iter()
            .find_map(|t| owners.get(t).map(|o| o.to_string()))
    }

    fn members_ref(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.me).chain(self.others.values().map(|k| &k.member))
    }

    pub fn is_up(&self, id: &str, now_ms: u64) -> bool {
        id == self.me.id || self.others.get(id).is_some_and(|k| k.is_up(now_ms))
    }

    pub fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        if id == self.me.id {
            return Some(self.me.addr);
        }
        self.others.get(id).map(|k| k.member.addr)
    }

    /// The members as placement sees them at `now_ms`.
    pub fn at(&self, now_ms: u64) -> MembersAt<'_> {
        MembersAt {
            membership: self,
            now_ms,
        }
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
            phi: 0.0,
        }];
        for k in self.others.values() {
            let phi = k.arrivals.phi(now_ms);
            out.push(MemberView {
                member: k.member.clone(),
                heartbeat_age_ms: now_ms.saturating_sub(k.arrivals.last_ms()),
                up: k.is_up(now_ms),
                phi,
            });
        }
        out
    }
}

/// The members' addresses and states at one time, for [`kvctl::model::placement`].
pub struct MembersAt<'a> {
    membership: &'a Membership,
    now_ms: u64,
}

impl kvctl::model::placement::Members for MembersAt<'_> {
    fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        self.membership.addr_of(id)
    }

    fn is_up(&self, id: &str) -> bool {
        self.membership.is_up(id, self.now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvctl::wire::proto::MemberState;
    use std::time::Duration;

    const WALL: u64 = 1_800_000_000_000;
    /// Silence long enough for the failure detector to convict a node heard every 500 ms.
    const SILENT_MS: u64 = 10_000;

    fn member(i: u16) -> Member {
        Member {
            id: format!("node-{i}"),
            addr: format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
            tokens: vec![i as u128 * 1000],
            state: MemberState::Normal,
            generation: 1,
            heartbeat: 0,
            incarnation: u64::from(i),
            siblings_trimmed: 0,
            hints_pending: 0,
            hints_refused: 0,
            metrics: None,
            siblings_format_max: 0,
        }
    }

    /// Versions keep write ids only once every known member, itself included, says it reads
    /// format 3: a member of an earlier release (no field: 0) holds them back until it
    /// comes back upgraded.
    #[test]
    fn write_ids_wait_for_every_member_to_read_them() {
        let upgraded = |i| Member {
            siblings_format_max: SIBLINGS_FORMAT_WRITE_IDS,
            ..member(i)
        };
        let mut m = Membership::new(upgraded(1), vec![]);
        assert!(m.all_read_write_ids(), "alone and upgraded");
        m.merge(vec![upgraded(2), member(3)], Some("node-2"), 1_000, 1_000);
        assert!(!m.all_read_write_ids(), "node-3 is of an earlier release");
        let mut back = upgraded(3);
        back.generation = 2;
        m.merge(vec![back], Some("node-3"), 2_000, 2_000);
        assert!(m.all_read_write_ids());
    }

    /// A member first learned from another node's gossip is not up on its word (it may have
    /// died since: a restarted node learning of a dead one); its heartbeat seen to advance, or
    /// its own word, makes it up.
    #[test]
    fn relayed_members_are_up_only_once_heard() {
        let mut a = Membership::new(member(1), vec![]);
        let taken = a.merge([member(3)], Some("node-2"), 1000, WALL);
        assert!(taken.refused.is_empty(), "{:?}", taken.refused);
        assert!(!a.is_up("node-3", 1000));
        assert!(a.down_for("node-3", 1000).is_some());
        let beat = Member {
            heartbeat: 1,
            ..member(3)
        };
        a.merge([beat], Some("node-2"), 1500, WALL);
        assert!(a.is_up("node-3", 1500));
        let mut b = Membership::new(member(1), vec![]);
        b.merge([member(3)], Some("node-3"), 1000, WALL);
        assert!(b.is_up("node-3", 1000));
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
                    let (from, to) = (nodes[i].me().id.clone(), nodes[j].me().id.clone());
                    let taken = nodes[j].merge(members, Some(&from), now, WALL);
                    assert!(taken.refused.is_empty(), "{:?}", taken.refused);
                    let reply = nodes[j].members();
                    let taken = nodes[i].merge(reply, Some(&to), now, WALL);
                    assert!(taken.refused.is_empty(), "{:?}", taken.refused);
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
        // A node that stops gossiping is convicted by the failure detector within seconds,
        // and says for how long it has been silent.
        let now = 30_000 + SILENT_MS;
        assert!(!nodes[0].is_up("node-5", now));
        assert!(nodes[0].down_for("node-5", now).unwrap() >= Duration::from_millis(SILENT_MS));
        assert_eq!(nodes[0].down_for("node-5", 30_000), None);
        let views = nodes[0].views(now);
        let five = views.iter().find(|v| v.member.id == "node-5").unwrap();
        assert!(
            !five.up && five.phi >= PHI_CONVICT_THRESHOLD_DEFAULT,
            "{}",
            five.phi
        );
    }

    fn newer(m: &Member, generation: u64) -> Member {
        Member {
            generation,
            ..m.clone()
        }
    }

    /// Bad entries relayed by a node (with a certificate, but not the member's) are refused
    /// with a reason and change nothing; the rest of the list is taken; the member's own word
    /// may move it.
    #[test]
    fn membership_refuses_bad_relayed_entries() {
        let mut a = Membership::new(member(1), vec![]);
        let b = member(2);
        assert!(a
            .merge([b.clone()], Some("node-2"), 0, WALL)
            .refused
            .is_empty());
        let ring_before = a.ring().nodes().len();
        let mut moved = newer(&b, 5);
        moved.addr = "10.9.9.9:1".parse().unwrap();
        let mut retokened = newer(&b, 6);
        retokened.tokens = vec![77];
        let far_future = newer(&b, WALL + GENERATION_AHEAD_MAX_MS + 1);
        let mut tie_winner = member(3);
        tie_winner.id = "aaa".into();
        tie_winner.tokens = b.tokens.clone();
        let mut many_tokens = member(4);
        many_tokens.tokens = (0..=TOKENS_PER_MEMBER_MAX as u128)
            .map(|t| t + 50_000)
            .collect();
        let mut bad_id = member(5);
        bad_id.id = "no spaces".into();
        let mut twice = member(6);
        twice.tokens = vec![9, 9];
        let fine = member(7);
        let taken = a.merge(
            [
                moved,
                retokened,
                far_future,
                tie_winner,
                many_tokens,
                bad_id,
                twice,
                fine,
            ],
            Some("node-9"),
            100,
            WALL,
        );
        let text = taken.refused.join("\n");
        assert_eq!(taken.refused.len(), 7, "{text}");
        for says in [
            "would change the address or tokens of node-2",
            "ahead of this node's clock",
            "claims tokens node-2 holds",
            "tokens (1 to 256)",
            "use letters, digits",
            "a token twice",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }
        assert!(text.starts_with("gossip from node-9: "), "{text}");
        assert_eq!(a.addr_of("node-2"), Some(b.addr));
        assert_eq!(a.ring().nodes().len(), ring_before + 1, "node-7 joined");
        // The member itself may move.
        let mut direct = newer(&b, 7);
        direct.addr = "10.9.9.9:1".parse().unwrap();
        assert!(a
            .merge([direct.clone()], Some("node-2"), 200, WALL)
            .refused
            .is_empty());
        assert_eq!(a.addr_of("node-2"), Some(direct.addr));
        // Its own word wins over a relayed entry that claimed to be newer.
        let mut hb = newer(&direct, 7);
        hb.heartbeat = 1_000_000;
        assert!(a.merge([hb], Some("node-9"), 300, WALL).refused.is_empty());
        let real = newer(&direct, 7);
        assert!(a
            .merge([real], Some("node-2"), 400, WALL)
            .refused
            .is_empty());
        assert_eq!(a.views(400)[1].member.heartbeat, 0);
    }

    /// The member list stays bounded: past MEMBERS_MAX, new members are refused.
    #[test]
    fn membership_is_bounded() {
        let mut a = Membership::new(member(1), vec![]);
        let flood: Vec<Member> = (0..MEMBERS_MAX as u128 + 10)
            .map(|i| Member {
                id: format!("m{i}"),
                tokens: vec![1_000_000 + i],
                ..member(2)
            })
            .collect();
        let taken = a.merge(flood, Some("evil"), 0, WALL);
        assert_eq!(a.members().len(), MEMBERS_MAX);
        assert_eq!(taken.refused.len(), 11);
        assert!(
            taken.refused[0].contains("at most 1024"),
            "{:?}",
            taken.refused[0]
        );
        // The longest member list fits in a message.
        let bytes = kvctl::wire::proto::encode(&kvctl::wire::proto::Request::Gossip {
            members: (0..MEMBERS_MAX as u128)
                .map(|i| Member {
                    id: "n".repeat(kvctl::wire::certs::NODE_ID_BYTES_MAX),
                    tokens: (0..TOKENS_PER_MEMBER_MAX as u128)
                        .map(|t| u128::MAX - t - i)
                        .collect(),
                    ..member(2)
                })
                .collect(),
        });
        assert!(
            bytes.len() < kvctl::wire::proto::MESSAGE_BYTES_MAX,
            "{} bytes",
            bytes.len()
        );
    }

    /// Two live nodes under one id are a collision, whoever relays them; once the known one is
    /// down, a newer incarnation (a wiped node come back) replaces it.
    #[test]
    fn membership_detects_id_collisions_and_takes_replacements() {
        let mut a = Membership::new(member(1), vec![]);
        let b = member(2);
        a.merge([b.clone()], Some("node-2"), 0, WALL);
        let impostor = Member {
            incarnation: 99,
            addr: "127.0.0.2:7002".parse().unwrap(),
            ..newer(&b, 10)
        };
        let taken = a.merge([impostor.clone()], Some("node-2"), 1000, WALL);
        assert!(
            taken.refused[0].contains("claimed by two nodes"),
            "{:?}",
            taken.refused
        );
        assert_eq!(a.addr_of("node-2"), Some(b.addr));
        // This node's own id, claimed by another incarnation started later.
        let me_too = Member {
            incarnation: 42,
            ..newer(&member(1), 10)
        };
        let taken = a.merge([me_too], Some("node-9"), 1000, WALL);
        assert!(
            taken.refused[0].contains("claims this node's id"),
            "{:?}",
            taken.refused
        );
        // node-2 goes down; its replacement (another incarnation, a newer generation) is taken.
        let later = 1000 + SILENT_MS;
        let taken = a.merge([impostor.clone()], Some("node-2"), later, WALL);
        assert!(taken.refused.is_empty(), "{:?}", taken.refused);
        assert_eq!(a.addr_of("node-2"), Some(impostor.addr));
        // The old incarnation, relayed late, is stale now.
        let taken = a.merge([b], Some("node-3"), later + 1, WALL);
        assert!(taken.refused.is_empty());
        assert_eq!(a.addr_of("node-2"), Some(impostor.addr));
    }
}
