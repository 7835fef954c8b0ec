//! kvctl's shared library.
//!
//! # Layout
//! - [`engine`]: the storage engine every node keeps its data in: an LSM tree (WAL, memtable,
//!   SSTables with bloom filters, block cache, compaction) whose manifest and block index live
//!   in LMDB.
//!
//! The ring, versions (vector clocks), protocol, transport and client SDK join this crate as
//! the cluster is built.

pub mod certs;
pub mod client;
pub mod durable_file;
pub mod engine;
pub mod home;
pub mod proto;
pub mod ring;
pub mod tls;
pub mod transport;
pub mod version;
