//! The gossip service: this node's [`Membership`] (members, the ring, the failure detector),
//! the gossip rounds that spread it, and the answers drawn from it (a key's replicas, a
//! member's address, the members for `status`).

use std::net::SocketAddr;
use std::sync::Arc;

use kvctl::model::placement::{Placement, Replicas};
use kvctl::model::ring::{token_of, Ring};
use kvctl::wire::proto::{Member, MemberView, Request, Response};
use parking_lot::Mutex;

use crate::config::GOSSIP_INTERVAL;
use crate::logic::membership::Membership;
use crate::service::{wall_ms, Common};

pub struct Gossip {
    common: Arc<Common>,
    membership: Mutex<Membership>,
    placement: Placement,
}

/// What this node tells others about itself besides its entry, refreshed before each round.
pub struct Report {
    pub siblings_trimmed: u64,
    pub hints_pending: u64,
    pub hints_refused: u64,
}

impl Gossip {
    pub fn new(common: Arc<Common>, membership: Membership, replication: usize) -> Gossip {
        Gossip {
            common,
            membership: Mutex::new(membership),
            placement: Placement::new(replication),
        }
    }

    pub fn replication(&self) -> usize {
        self.placement.replication()
    }

    /// Gossips every [`GOSSIP_INTERVAL`] with a member the [`Membership`] picks, as the
    /// `gossip` worker; `report` says what to tell about this node this round.
    pub async fn run(self: Arc<Self>, report: impl Fn() -> Report) {
        let worker = self.common.workers.register("gossip");
        let mut interval = tokio::time::interval(GOSSIP_INTERVAL);
        loop {
            worker.idle(format!("a round every {} ms", GOSSIP_INTERVAL.as_millis()));
            interval.tick().await;
            worker.done(1);
            let report = report();
            let round = {
                let mut membership = self.membership.lock();
                membership.set_siblings_trimmed(report.siblings_trimmed);
                membership.set_hints_pending(report.hints_pending, report.hints_refused);
                membership.tick(self.common.now_ms())
            };
            let Some((target, members)) = round else {
                continue;
            };
            let (gossip, worker) = (self.clone(), worker.clone());
            tokio::spawn(async move {
                let transport = &gossip.common.transport;
                match transport
                    .request(target, &Request::Gossip { members })
                    .await
                {
                    Ok(Response::Members { members: views, .. }) => {
                        // The reply speaks for the node whose certificate answered.
                        let responder = transport.peer_of(target);
                        let responder = responder.as_ref().and_then(|p| p.node_id());
                        gossip.take(views.into_iter().map(|v| v.member), responder);
                    }
                    Ok(other) => worker.error(format!("{target} answered {other:?}"), false),
                    Err(e) => worker.error(e, false),
                }
            });
        }
    }

    /// Merges a member list sent by `sender`, logging what it refused.
    pub fn take(&self, members: impl IntoIterator<Item = Member>, sender: Option<&str>) {
        let now = self.common.now_ms();
        let merged = self
            .membership
            .lock()
            .merge(members, sender, now, wall_ms());
        for addr in merged.restarted {
            self.common.transport.forget(addr);
        }
        self.expect_members();
        if !merged.refused.is_empty() {
            let mut complaints = self.common.complaints.lock();
            for reason in &merged.refused {
                complaints.log(reason);
            }
        }
    }

    /// Tells the transport which node each member's address is, so a request meant for one
    /// node is never taken by another that now answers at its address.
    pub fn expect_members(&self) {
        let members = self.views();
        self.common.transport.expect_nodes(
            members
                .into_iter()
                .filter(|v| v.member.id != self.common.id)
                .map(|v| (v.member.addr, v.member.id)),
        );
    }

    /// Every member as this node sees it now.
    pub fn views(&self) -> Vec<MemberView> {
        let now = self.common.now_ms();
        self.membership.lock().views(now)
    }

    /// The answer to `status` and to a gossip round: the members as this node sees them.
    pub fn members_response(&self) -> Response {
        Response::Members {
            node: self.common.id.clone(),
            members: self.views(),
            replication: self.placement.replication() as u32,
        }
    }

    /// The replicas of `key` as this node sees the ring and its members now.
    pub fn replicas(&self, key: &[u8]) -> Replicas {
        self.replicas_at(token_of(key))
    }

    /// The replicas of the keys of `token`.
    pub fn replicas_at(&self, token: u128) -> Replicas {
        let membership = self.membership.lock();
        let members = membership.at(self.common.now_ms());
        self.placement
            .replicas_at(&membership.ring(), token, &members)
    }

    pub fn ring(&self) -> Arc<Ring> {
        self.membership.lock().ring()
    }

    pub fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        self.membership.lock().addr_of(id)
    }

    /// `id`'s address if it is up now.
    pub fn addr_if_up(&self, id: &str) -> Option<SocketAddr> {
        let membership = self.membership.lock();
        membership
            .is_up(id, self.common.now_ms())
            .then(|| membership.addr_of(id))
            .flatten()
    }

    /// How long `id` has been down (see [`Membership::down_for`]).
    pub fn down_for(&self, id: &str) -> Option<std::time::Duration> {
        self.membership.lock().down_for(id, self.common.now_ms())
    }

    /// Whether every member reads versions that carry write ids.
    pub fn all_read_write_ids(&self) -> bool {
        self.membership.lock().all_read_write_ids()
    }
}
