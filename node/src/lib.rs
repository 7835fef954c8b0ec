//! The kvctl node: a replica of its share of the ring, and a coordinator for any key.
//!
//! # Layout
//! - [`node`]: the assembly: builds the services, starts their workers, accepts connections
//!   ([`admission`] first) and shuts down in order. [`router`] hands each request to its
//!   service after [`access`] says the peer may ask it.
//! - [`config`]: one [`NodeConfig`] with a part per service, validated in one place;
//!   [`bootstrap`]: a start before serving (identity, id checks, tokens and joining, the
//!   generation, the lease, opening and migrating the data).
//! - [`service`]: the services, each with its state and worker: requests (get, put, forward,
//!   read repair), replica, gossip, hints, repair and anti-entropy, tombstones.
//! - [`logic`]: the I/O-free cores the services drive (coordinators, quorum, membership,
//!   failure detector, handoff, repair, Merkle trees, pacer, tombstone policy), with
//!   [`driver`]: the one loop shape that drives them.
//! - [`propose`]: proposing a layout version to the acceptors over the network.
//! - [`store`]: the replica store and its writer, hints, the dot lease, the engine's keyspace,
//!   migration.
//! - [`worker`]: named background workers and what they report (`kvctl workers`);
//!   [`metrics`]: Prometheus metrics and `/metrics`; [`complaints`]: the rate-limited log of
//!   what the node refused; [`clock`]: the wall clock.
//!
//! `docs/architecture.md` says where each behaviour of the design lives.

pub mod access;
pub mod admission;
pub mod bootstrap;
pub mod clock;
pub mod complaints;
pub mod config;
pub mod driver;
pub mod logic;
pub mod metrics;
pub mod node;
pub mod propose;
pub mod router;
pub mod service;
pub mod store;
pub mod worker;

pub use config::NodeConfig;
pub use node::{Node, NodeError};
