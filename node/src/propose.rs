//! Proposing a layout version over the network: drives the I/O-free
//! [`Proposer`](crate::logic::commit::Proposer) with requests to the acceptors (the members of
//! the version before the slot), then tells every member of the new version it was chosen.
//! Used by a joining node's start (before it serves) and by the layout service.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvctl::model::layout::Layout;
use kvctl::model::ring::NodeId;
use kvctl::wire::proto::{LayoutVote, Request, Response, WireLayout};
use kvctl::wire::transport::Transport;

use crate::driver::{Driver, Next};
use crate::logic::commit::{Outcome, Proposer, Reply};

/// How long a phase of a commit waits for a majority.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts at one slot before giving up.
pub const ATTEMPTS_MAX: u32 = 8;

/// An acceptor's reply as sent.
pub fn vote_of(reply: Reply<Layout>) -> LayoutVote {
    match reply {
        Reply::Promise { ballot, accepted } => LayoutVote::Promise {
            ballot,
            accepted: accepted.map(|(b, l)| (b, WireLayout::from(&l))),
        },
        Reply::Accepted { ballot } => LayoutVote::Accepted { ballot },
        Reply::Nack { ballot, promised } => LayoutVote::Nack { ballot, promised },
        Reply::Chosen { value } => LayoutVote::Chosen {
            layout: WireLayout::from(&value),
        },
    }
}

/// A reply as received (a layout that does not decode makes the reply count as none).
fn reply_of(vote: LayoutVote) -> Option<Reply<Layout>> {
    Some(match vote {
        LayoutVote::Promise { ballot, accepted } => Reply::Promise {
            ballot,
            accepted: match accepted {
                Some((b, l)) => Some((b, Layout::try_from(l).ok()?)),
                None => None,
            },
        },
        LayoutVote::Accepted { ballot } => Reply::Accepted { ballot },
        LayoutVote::Nack { ballot, promised } => Reply::Nack { ballot, promised },
        LayoutVote::Chosen { layout } => Reply::Chosen {
            value: Layout::try_from(layout).ok()?,
        },
    })
}

/// Proposes `next` as the version after `current` to `current`'s members; the outcome says
/// which layout was chosen for the slot (ours or another's). `retry` spreads racing
/// proposers apart (a different one per node).
pub async fn propose(
    transport: &Arc<Transport>,
    me: &str,
    current: &Layout,
    next: Layout,
    retry: Duration,
) -> Outcome<Layout> {
    let slot = next.version;
    let acceptors: Vec<NodeId> = current.members.keys().cloned().collect();
    let addrs: BTreeMap<NodeId, SocketAddr> = current
        .members
        .iter()
        .map(|(id, m)| (id.clone(), m.addr))
        .collect();
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    let mut proposer = Proposer::new(
        me,
        acceptors,
        next,
        now_ms(),
        PHASE_TIMEOUT.as_millis() as u64,
        retry.as_millis() as u64,
        ATTEMPTS_MAX,
    );
    let mut driver = Driver::new(2 * addrs.len() + 2);
    loop {
        while let Some(send) = proposer.poll_action() {
            let Some(addr) = addrs.get(&send.to).copied() else {
                continue;
            };
            let request = match send.message {
                crate::logic::commit::Message::Prepare { ballot } => {
                    Request::LayoutPrepare { slot, ballot }
                }
                crate::logic::commit::Message::Accept { ballot, value } => Request::LayoutAccept {
                    slot,
                    ballot,
                    layout: WireLayout::from(&value),
                },
            };
            let (transport, tx, to) = (transport.clone(), driver.sender(), send.to);
            tokio::spawn(async move {
                let reply = match transport
                    .request_with_timeout(addr, &request, PHASE_TIMEOUT)
                    .await
                {
                    Ok(Response::LayoutVote(vote)) => reply_of(*vote),
                    _ => None,
                };
                let _ = tx.send((to, reply)).await;
            });
        }
        if let Some(outcome) = proposer.poll_outcome() {
            if let Outcome::Chosen { value, .. } = &outcome {
                announce(transport, me, value, &BTreeMap::new()).await;
            }
            return outcome;
        }
        let wake = proposer
            .poll_timeout()
            .map(|ms| started + Duration::from_millis(ms));
        match driver.next(wake).await {
            Next::Event((from, Some(reply))) => proposer.on_reply(&from, reply, now_ms()),
            Next::Event((_, None)) => {}
            Next::Timeout | Next::Closed => proposer.on_timeout(now_ms()),
        }
    }
}

/// Tells every member of `layout` but `me` that it was chosen (best effort: a member that
/// misses it learns it from the layout sync).
pub async fn announce(
    transport: &Arc<Transport>,
    me: &str,
    layout: &Layout,
    synced: &BTreeMap<NodeId, u64>,
) {
    let request = Request::LayoutCommit {
        layout: WireLayout::from(layout),
        synced: synced.iter().map(|(n, v)| (n.clone(), *v)).collect(),
    };
    let mut sends = tokio::task::JoinSet::new();
    for (id, member) in &layout.members {
        if id == me {
            continue;
        }
        let (transport, request, addr) = (transport.clone(), request.clone(), member.addr);
        sends.spawn(async move {
            let _ = transport
                .request_with_timeout(addr, &request, PHASE_TIMEOUT)
                .await;
        });
    }
    while sends.join_next().await.is_some() {}
}
