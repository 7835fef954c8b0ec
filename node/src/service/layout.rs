//! The layout service: this node's layout history and its acceptor in layout commits, kept
//! durable ([`LayoutState`]) before any answer leaves; learning versions chosen elsewhere
//! (`LayoutCommit`, or by asking a peer, as the `layout-sync` worker does every few seconds).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kvctl::model::layout::{Ballot, Layout};
use kvctl::model::ring::NodeId;
use kvctl::wire::proto::{ErrorKind, LayoutVote, Request, Response, WireLayout};
use parking_lot::Mutex;

use crate::logic::commit::Acceptor;
use crate::logic::layouts::HistoryError;
use crate::propose::vote_of;
use crate::service::{error, Common};
use crate::store::layout::LayoutState;

/// How often the node asks a peer for layout versions it may have missed.
const SYNC_INTERVAL: Duration = Duration::from_secs(2);

pub struct LayoutService {
    common: Arc<Common>,
    dir: PathBuf,
    state: Mutex<LayoutState>,
}

impl LayoutService {
    pub fn new(common: Arc<Common>, dir: PathBuf, state: LayoutState) -> LayoutService {
        LayoutService {
            common,
            dir,
            state: Mutex::new(state),
        }
    }

    /// The newest version this node knows.
    pub fn current(&self) -> Layout {
        self.state.lock().history.current().clone()
    }

    /// The answer to `LayoutGet`.
    pub fn layouts(&self) -> Response {
        let state = self.state.lock();
        Response::Layouts {
            live: state.history.live().iter().map(WireLayout::from).collect(),
            synced: state
                .history
                .synced()
                .iter()
                .map(|(n, v)| (n.clone(), *v))
                .collect(),
        }
    }

    /// Phase 1 or 2 of a commit of version `slot`: answered from the acceptor's state for the
    /// slot, made durable first. A slot this node has decided already is answered with its
    /// newest version (the proposer learns it lost, and plans again on top of it).
    pub fn vote(&self, slot: u64, ballot: Ballot, accept: Option<WireLayout>) -> Response {
        let mut state = self.state.lock();
        let current = state.history.current().version;
        if slot <= current {
            return Response::LayoutVote(Box::new(LayoutVote::Chosen {
                layout: WireLayout::from(state.history.current()),
            }));
        }
        if slot > current + 1 {
            return error(
                ErrorKind::Unavailable,
                format!(
                    "this node knows layout version {current}, not yet {}: it cannot vote for \
                     version {slot}",
                    slot - 1
                ),
            );
        }
        let mut acceptor = match state.acceptor.take() {
            Some((s, a)) if s == slot => a,
            _ => Acceptor::default(),
        };
        let reply = match accept {
            None => acceptor.on_prepare(ballot),
            Some(wire) => match Layout::try_from(wire) {
                Ok(layout) if layout.version == slot => acceptor.on_accept(ballot, layout),
                Ok(layout) => {
                    state.acceptor = Some((slot, acceptor));
                    return error(
                        ErrorKind::Invalid,
                        format!(
                            "a layout of version {} offered for slot {slot}",
                            layout.version
                        ),
                    );
                }
                Err(e) => {
                    state.acceptor = Some((slot, acceptor));
                    return error(ErrorKind::Invalid, e);
                }
            },
        };
        state.acceptor = Some((slot, acceptor));
        if let Err(e) = state.save(&self.dir) {
            return error(ErrorKind::Internal, e);
        }
        Response::LayoutVote(Box::new(vote_of(reply)))
    }

    /// Takes versions chosen elsewhere, in order, with the proposer's sync marks.
    pub fn learn(&self, layouts: Vec<WireLayout>, synced: Vec<(String, u64)>) -> Response {
        let marks: BTreeMap<NodeId, u64> = synced.into_iter().collect();
        let mut state = self.state.lock();
        let before = state.history.current().version;
        let mut first = true;
        for wire in layouts {
            let layout = match Layout::try_from(wire) {
                Ok(layout) => layout,
                Err(e) => return error(ErrorKind::Invalid, e),
            };
            match state.history.commit(layout.clone(), &marks) {
                Ok(()) => {}
                // The versions between were retired where they came from: start from it.
                Err(HistoryError::Gap { .. }) if first => state.history.jump_to(layout),
                Err(e) => return error(ErrorKind::Unavailable, e),
            }
            first = false;
        }
        state.history.merge_synced(&marks);
        if state.history.current().version != before {
            if state
                .acceptor
                .as_ref()
                .is_some_and(|(slot, _)| *slot <= state.history.current().version)
            {
                state.acceptor = None;
            }
            if let Err(e) = state.save(&self.dir) {
                return error(ErrorKind::Internal, e);
            }
        }
        Response::Ack
    }

    /// The `layout-sync` worker: every [`SYNC_INTERVAL`], asks one member (in turn) for its
    /// layout versions and learns the ones this node lacks.
    pub async fn run(self: Arc<Self>) {
        let worker = self.common.workers.register("layout-sync");
        let mut turn = 0usize;
        loop {
            let current = self.current();
            worker.idle(format!("layout version {}", current.version));
            tokio::time::sleep(SYNC_INTERVAL).await;
            let peers: Vec<_> = current
                .members
                .iter()
                .filter(|(id, _)| **id != self.common.id)
                .map(|(_, m)| m.addr)
                .collect();
            if peers.is_empty() {
                continue;
            }
            turn += 1;
            let addr = peers[turn % peers.len()];
            match self
                .common
                .transport
                .request_with_timeout(addr, &Request::LayoutGet, SYNC_INTERVAL)
                .await
            {
                Ok(Response::Layouts { live, synced }) => {
                    let newer: Vec<WireLayout> = live
                        .into_iter()
                        .filter(|l| l.version > current.version)
                        .collect();
                    let count = newer.len() as u64;
                    if let Response::Error { message, .. } = self.learn(newer, synced) {
                        worker.error(format!("from {addr}: {message}"), false);
                    } else {
                        worker.done(count);
                    }
                }
                Ok(Response::Error {
                    kind: ErrorKind::Unsupported,
                    ..
                }) => {}
                Ok(other) => worker.error(format!("{addr} answered {other:?}"), false),
                Err(e) => worker.error(format!("{addr}: {e}"), false),
            }
        }
    }
}
