//! The storage engine: an LSM tree whose indexes live in LMDB.
//!
//! A write goes to the write-ahead log ([`wal`]) and, once durable, into the memtable
//! ([`memtable`]). Full memtables are flushed in the background to immutable tables ([`table`],
//! made of [`block`]s and a [`bloom`] filter), recorded in the manifest and block index in LMDB
//! ([`index`]). Compaction ([`levels`], [`merge`]) merges tables level by level. Reads consult
//! the memtables, then the tables newest first, through the block cache ([`cache`]).
//!
//! [`Engine`] implements the [`Store`] trait (the node's replica holds an `Engine`);
//! [`MemStore`] implements it in memory for tests. [`Store::get_cached`] reads without waiting
//! on the disk, or says the read needs it. [`faultfs`] simulates power loss under the WAL.
//! `fuzzing` exposes the decoders of disk bytes to the fuzz targets.
//!
//! The byte layouts are written down in `docs/storage-format.md`.

mod batch;
mod block;
mod bloom;
mod cache;
mod entry;
mod error;
pub mod faultfs;
mod footer;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod levels;
mod logfile;
mod lsm;
mod memory;
mod memtable;
mod merge;
mod options;
mod store;
mod table;
mod wal;

pub use batch::{Op, WriteBatch};
pub use error::{EngineError, Result};
pub use index::INDEX_KEY_BYTES_MAX;
pub use logfile::{LogFile, LogFs, OsLogFs};
pub use lsm::Engine;
pub use memory::MemStore;
pub use options::{
    DropTombstones, KeepTombstones, Limits, Options, SyncMode, TombstonePolicy, KEY_BYTES_CEILING,
};
pub use store::{JobStats, KeyRange, Scan, Stats, Store};
