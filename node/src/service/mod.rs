//! The node's services: each owns its state and its background worker, and drives the I/O-free
//! cores of [`crate::logic`] with the node's I/O.
//!
//! - [`requests`]: gets and puts from clients (coordinating, forwarding, read repair, the
//!   hints a put leaves for replicas that missed it).
//! - [`replica`]: this node's copies: replica reads and writes for other nodes' coordinators,
//!   local reads for this node's.
//! - [`gossip`]: membership and the failure detector, the gossip rounds (worker `gossip`),
//!   and where a key's replicas are.
//! - [`hints`]: storing hints, and replaying them to nodes come back (worker `hint-replay`).
//! - [`repair`]: Merkle trees and bulk scans for peers, range repair and its pace, the ranges
//!   known in sync, and background anti-entropy (worker `anti-entropy`; `repair (a, b]` while
//!   one runs).
//! - [`layout`]: the layout history and this node's votes in layout commits, kept durable;
//!   learning versions chosen elsewhere (worker `layout-sync`).
//! - [`tombstones`]: removing tombstones the policy lets go (worker `tombstone-sweep`).
//!
//! [`crate::router`] maps requests to them; [`crate::node`] builds them and starts their workers.

pub mod gossip;
pub mod hints;
pub mod layout;
pub mod repair;
pub mod replica;
pub mod requests;
pub mod tombstones;

use std::time::{Duration, Instant};

use kvctl::wire::proto::{ErrorKind, Response};
use kvctl::wire::transport::Transport;
use parking_lot::Mutex;
use std::sync::Arc;

use crate::complaints::Complaints;
use crate::metrics::Metrics;
use crate::worker::Workers;

/// What every service shares: who this node is, its transport to other nodes, its clock, its
/// log of refusals, its metrics and its workers.
pub struct Common {
    pub id: String,
    pub transport: Arc<Transport>,
    /// The node's monotonic clock starts here ([`Common::now_ms`]).
    pub started: Instant,
    pub complaints: Mutex<Complaints>,
    pub metrics: Metrics,
    pub workers: Workers,
}

impl Common {
    /// Milliseconds since the node started: the clock the I/O-free cores are given.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The instant `ms` on [`Common::now_ms`]'s clock is (when a state machine asked to wake).
    pub fn instant_at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// Sets a state machine's `timer` to fire at `wake` (ms on [`Common::now_ms`]'s clock),
    /// unless it is set for then already (`set` remembers when).
    pub fn set_timer(
        &self,
        timer: std::pin::Pin<&mut tokio::time::Sleep>,
        set: &mut Option<u64>,
        wake: Option<u64>,
    ) {
        let wake = wake.unwrap_or_default();
        if *set != Some(wake) {
            *set = Some(wake);
            let at = self.started + Duration::from_millis(wake);
            timer.reset(tokio::time::Instant::from_std(at));
        }
    }
}

pub use crate::clock::wall_ms;

/// An error reply.
pub fn error(kind: ErrorKind, message: impl std::fmt::Display) -> Response {
    Response::Error {
        kind,
        message: message.to_string(),
    }
}
