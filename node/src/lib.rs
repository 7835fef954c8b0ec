//! The kvctl node server.
//!
//! # Layout
//! - [`server`]: the node's driver: QUIC endpoint, certificates and admission, gossip rounds,
//!   and the I/O the coordinators ask for (sends, local reads and writes, timers).
//! - [`coordinator`]: gets and puts as I/O-free state machines (which replicas to ask,
//!   counting toward the level, merging, read repair, forwarding).
//! - [`placement`]: a key's primaries and the fallbacks after them (`kvctl::model::placement`,
//!   shared with the client SDK).
//! - [`access`]: who may send which request (node certificates, client roles).
//! - [`admission`]: connections per node and per peer, and the node's limits.
//! - [`keyspace`]: the engine's keys: data keys ordered by ring token, hints, node metadata.
//! - [`migration`]: opening a data directory at this build's format, migrating older ones.
//! - [`failure_detector`]: the phi-accrual failure detector (I/O-free, time passed in).
//! - [`hints`]: hints held for replicas that missed writes (durable, bounded per target).
//! - [`handoff`]: replaying hints to a node come back, as an I/O-free state machine.
//! - [`lease`]: the durable bound above every dot counter the node hands out.
//! - [`membership`]: gossip membership as an I/O-free state machine.
//! - [`merkle`]: a token range's Merkle tree (leaves, hashing), for anti-entropy.
//! - [`repair`]: repairing a token range across its replicas, as an I/O-free state machine.
//! - [`pacer`]: pacing the replica writer's fsyncs (a token bucket, without I/O).
//! - [`quorum`]: counting replica replies toward a consistency level.
//! - [`replica`]: a key's siblings stored in the engine, merged on every write.
//! - [`tombstones`]: when a delete's tombstone may be removed (I/O-free).
//! - [`worker`]: the node's named background workers and what they report.
//! - [`metrics`]: the node's Prometheus metrics and the `/metrics` listener.

pub mod access;
pub mod admission;
pub mod coordinator;
pub mod failure_detector;
pub mod handoff;
pub mod hints;
pub mod keyspace;
pub mod lease;
pub mod membership;
pub mod merkle;
pub mod metrics;
pub mod migration;
pub mod pacer;
pub use kvctl::model::placement;
pub mod quorum;
pub mod repair;
pub mod replica;
pub mod server;
pub mod tombstones;
pub mod worker;

pub use server::{Node, NodeConfig, NodeError};
