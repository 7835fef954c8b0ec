//! kvctl's shared library.
//!
//! # Layout
//! - [`engine`]: the storage engine every node keeps its data in: an LSM tree (WAL, memtable,
//!   SSTables with bloom filters, block cache, compaction) whose manifest and block index live
//!   in LMDB.
//! - [`ring`]: the consistent-hash ring; [`version`]: dotted version vectors and siblings;
//!   [`context`]: the causal context tokens nodes seal with the cluster secret.
//! - [`proto`]: the wire messages; [`transport`]: QUIC requests; [`deadline`]: the time
//!   budget a request carries; [`budget`]: admission
//!   control (bytes in flight per node and per connection); [`tls`] and [`certs`]: mutual
//!   TLS and the certificates; [`client`]: the client SDK; [`home`]: a cluster's directory.

pub mod budget;
pub mod certs;
pub mod client;
pub mod context;
pub mod deadline;
pub mod durable_file;
pub mod engine;
pub mod home;
pub mod proto;
pub mod ring;
pub mod tls;
pub mod transport;
pub mod version;
