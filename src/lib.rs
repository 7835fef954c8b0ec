//! kvctl's shared library, in four layers; each imports only the layers above it in this list.
//!
//! # Layout
//! - [`storage`]: the storage engine every node keeps its data in (the `engine` feature, on
//!   by default; an application embedding the client builds without it, and without LMDB),
//!   and durable small files. Imports nothing else of the crate.
//! - [`model`]: the ring and a key's placement, versions and siblings, sealed causal contexts.
//! - [`wire`]: the protocol's messages, the QUIC transport with its budgets and deadlines,
//!   mutual TLS, certificates and client roles.
//! - [`client`]: the cluster-aware client SDK (topology, routing, pooling, retries) and a
//!   cluster's home directory.
//!
//! The node (`kvctl-node`) builds on all four; the shell and the `kvctl` binary on the
//! client. `docs/architecture.md` draws the whole house.

pub mod client;
pub mod model;
pub mod storage;
pub mod wire;
