//! The kvctl node server.
//!
//! # Layout
//! - [`server`]: the node: QUIC endpoint, request handling, coordination of reads and writes.
//! - [`membership`]: gossip membership as an I/O-free state machine.
//! - [`quorum`]: counting replica replies toward a consistency level.
//! - [`replica`]: a key's siblings stored in the engine, merged on every write.

pub mod membership;
pub mod quorum;
pub mod replica;
pub mod server;

pub use server::{Node, NodeConfig, NodeError};
