//! The narrow trait the node layer stores data through, and what it returns.

use std::ops::Bound;

use super::batch::WriteBatch;
use super::error::Result;

/// A key range for [`Store::scan`].
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// An ordered scan: `(key, value)` pairs in increasing key order. It sees every write that was
/// acknowledged before it was created; writes made while it runs may or may not appear.
pub type Scan = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + Send>;

/// What one kind of background job (flushes, compactions) is doing, and how it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStats {
    /// A job of this kind is running now.
    pub busy: bool,
    /// Jobs of this kind that failed (each is retried).
    pub errors: u64,
    /// The last failure, if any ever happened.
    pub last_error: Option<String>,
    /// When the last failure came (wall clock, ms since the epoch).
    pub last_error_at_ms: Option<u64>,
}

/// Counters and sizes, for `kvctl status` and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub last_seq: u64,
    pub memtable_bytes: u64,
    pub immutable_memtables: u64,
    pub wal_segments: u64,
    /// Tables per level, level 0 first.
    pub tables_per_level: Vec<u64>,
    pub bytes_per_level: Vec<u64>,
    pub block_index_entries: u64,
    /// Bytes of block index entries mirrored in memory (see `index_cache_bytes`).
    pub index_cache_bytes: u64,
    pub bloom_bytes: u64,
    pub cache_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub flushes: u64,
    pub compactions: u64,
    /// Bytes written by flushes and compactions (write amplification = this / user bytes).
    pub table_bytes_written: u64,
    pub user_bytes_written: u64,
    pub wal_syncs: u64,
    pub write_groups: u64,
    /// The flush thread's work (rotated memtables written to level-0 tables).
    pub flush_job: JobStats,
    /// The compaction thread's work.
    pub compaction_job: JobStats,
}

/// The storage engine as the node layer sees it. Implemented by the LSM
/// [`Engine`](super::Engine) and by [`MemStore`](super::MemStore) for tests of upper layers.
pub trait Store: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// `key`'s value if it can be read without waiting on the disk (from the memtables and
    /// cached blocks): `Some(value)`, or `None` when the read would need the disk, to be done
    /// with [`Store::get`] where blocking is fine (off an async runtime's threads).
    fn get_cached(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        let _ = key;
        Ok(None)
    }

    /// Applies every operation of `batch` durably (per the sync mode) and atomically across
    /// crashes: after a restart either all of the batch is there or none of it. Readers running
    /// at the same moment may see some of its operations before the others.
    fn write(&self, batch: WriteBatch) -> Result<()>;

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.write(batch)
    }

    /// Writes a tombstone for `key`.
    fn delete(&self, key: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(batch)
    }

    fn scan(&self, range: KeyRange) -> Result<Scan>;

    /// Writes everything in memory to tables (the WAL already holds it durably).
    fn flush(&self) -> Result<()>;

    /// Merges all tables into one level, dropping shadowed versions and permitted tombstones.
    fn compact(&self) -> Result<()>;

    fn stats(&self) -> Stats;

    /// Stops background work and syncs the WAL. Later calls fail with `Closed`.
    fn close(&self) -> Result<()>;
}
