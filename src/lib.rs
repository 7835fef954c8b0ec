//! kvctl's shared library.
//!
//! # Layout
//! - [`engine`] (the `engine` feature, on by default; the client SDK builds without it): the
//!   storage engine every node keeps its data in: an LSM tree (WAL, memtable,
//!   SSTables with bloom filters, block cache, compaction) whose manifest and block index live
//!   in LMDB.
//! - [`ring`]: the consistent-hash ring; [`placement`]: a key's primaries and fallbacks (used by
//!   nodes and the client SDK alike); [`version`]: dotted version vectors and siblings
//!   ([`actor_name`]: the names in their clocks, kept inline);
//!   [`context`]: the causal context tokens nodes seal with the cluster secret.
//! - [`proto`]: the wire messages; [`transport`]: QUIC requests; [`deadline`]: the time
//!   budget a request carries; [`budget`]: admission
//!   control (bytes in flight per node and per connection); [`tls`] and [`certs`]: mutual
//!   TLS and the certificates; [`role`]: what a client certificate may ask (least privilege);
//!   [`client`]: the client SDK, with [`topology`] (its picture of the cluster, routing) and
//!   [`retry`] (what it may try again); [`home`]: a cluster's directory.

pub mod actor_name;
pub mod bounded_list;
pub mod budget;
pub mod certs;
pub mod client;
pub mod context;
pub mod deadline;
pub mod durable_file;
#[cfg(feature = "engine")]
pub mod engine;
pub mod home;
pub mod placement;
pub mod proto;
pub mod retry;
pub mod ring;
pub mod role;
pub mod tls;
pub mod topology;
pub mod transport;
pub mod version;
