//! The kvctl node server.
//!
//! # Layout
//! - [`server`]: the node: QUIC endpoint, request handling, coordination of reads and writes.
//! - [`admission`]: connections per node and per peer, and the node's limits.
//! - [`lease`]: the durable bound above every dot counter the node hands out.
//! - [`membership`]: gossip membership as an I/O-free state machine.
//! - [`pacer`]: pacing the replica writer's fsyncs (a token bucket, without I/O).
//! - [`quorum`]: counting replica replies toward a consistency level.
//! - [`replica`]: a key's siblings stored in the engine, merged on every write.

pub mod admission;
pub mod lease;
pub mod membership;
pub mod pacer;
pub mod quorum;
pub mod replica;
pub mod server;

pub use server::{Node, NodeConfig, NodeError};
