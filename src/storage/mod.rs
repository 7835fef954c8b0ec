//! The storage layer: what a node keeps on its disk. It imports nothing else of the crate.
//!
//! - [`engine`] (the `engine` feature, on by default; the client SDK builds without it): an
//!   LSM tree (WAL, memtable, SSTables with bloom filters, block cache, compaction) whose
//!   manifest and block index live in LMDB.
//! - [`durable_file`]: a small file replaced atomically and durably (a node's metadata, a
//!   repair's checkpoint).

pub mod durable_file;
#[cfg(feature = "engine")]
pub mod engine;
