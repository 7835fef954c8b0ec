//! Engine options: durability mode, sizes, limits, and the hooks tests and the node layer plug in.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::EngineError;
use super::logfile::{LogFs, OsLogFs};

/// When a write is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// A write returns only after its WAL bytes are fsynced. Concurrent writers share one fsync
    /// (group commit). The default.
    Sync,
    /// The WAL is fsynced every period by a background thread; a crash loses at most one period.
    Periodic(Duration),
    /// The WAL is written to the OS but only fsynced at rotation and close.
    None,
}

/// Decides whether a tombstone may be dropped when compaction writes the bottom level.
///
/// Distributed deletes need a grace period (a replica that missed the delete must get it through
/// repair before the tombstone is gone), so the node layer owns this decision.
pub trait TombstonePolicy: Send + Sync {
    /// `seq` is the engine sequence number of the tombstone.
    fn may_drop(&self, key: &[u8], seq: u64) -> bool;
}

/// Drops every tombstone that reaches the bottom level: right for a standalone engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropTombstones;

impl TombstonePolicy for DropTombstones {
    fn may_drop(&self, _key: &[u8], _seq: u64) -> bool {
        true
    }
}

/// Keeps every tombstone forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepTombstones;

impl TombstonePolicy for KeepTombstones {
    fn may_drop(&self, _key: &[u8], _seq: u64) -> bool {
        false
    }
}

/// The named limits every write is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest key, in bytes (default 4 KiB). Keys must also be at least 1 byte.
    pub key_bytes_max: usize,
    /// Largest value, in bytes (default 16 MiB).
    pub value_bytes_max: usize,
    /// Largest write batch, encoded, in bytes (default 64 MiB); it is one WAL record.
    pub batch_bytes_max: usize,
}

/// Hard ceiling on `key_bytes_max`: table blocks store key lengths in a `u16`.
pub const KEY_BYTES_CEILING: usize = u16::MAX as usize;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            key_bytes_max: 4 * 1024,
            value_bytes_max: 16 << 20,
            batch_bytes_max: 64 << 20,
        }
    }
}

/// How the engine is opened. `Options::default()` is what a node uses.
#[derive(Clone)]
pub struct Options {
    pub sync: SyncMode,
    pub limits: Limits,
    /// A memtable is rotated (and flushed in the background) when it reaches this size.
    pub memtable_bytes: usize,
    /// Writers wait while this many rotated memtables are still waiting to be flushed.
    pub immutable_memtables_max: usize,
    /// Block cache capacity in bytes.
    pub cache_bytes: u64,
    /// Target size of a table data block.
    pub block_bytes: usize,
    /// Bloom filter bits per key; 10 gives about 0.8 % false positives.
    pub bloom_bits_per_key: u32,
    /// Compaction splits its output into tables of about this size.
    pub table_bytes: u64,
    /// Level 0 is compacted into level 1 when it holds this many tables.
    pub l0_compaction_trigger: usize,
    /// Flushes wait (and so, eventually, writers) while level 0 holds this many tables; this
    /// bounds read amplification.
    pub l0_stop_trigger: usize,
    /// Size target of level 1; each deeper level is `level_size_ratio` times larger.
    pub level1_bytes: u64,
    pub level_size_ratio: u64,
    /// Size of the LMDB memory map holding the manifest and block index.
    pub index_map_bytes: usize,
    /// Budget for in-memory mirrors of tables' block index entries; lookups in tables beyond
    /// it go to LMDB. 0 sends every lookup to LMDB.
    pub index_cache_bytes: u64,
    /// Run flushes and compactions on background threads (true) or only when asked.
    pub background_compaction: bool,
    pub tombstone_policy: Arc<dyn TombstonePolicy>,
    /// The file layer the WAL writes through; tests swap in a fault-injecting one.
    pub log_fs: Arc<dyn LogFs>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncMode::Sync,
            limits: Limits::default(),
            memtable_bytes: 64 << 20,
            immutable_memtables_max: 2,
            cache_bytes: 256 << 20,
            block_bytes: 4096,
            bloom_bits_per_key: 10,
            table_bytes: 64 << 20,
            l0_compaction_trigger: 4,
            l0_stop_trigger: 16,
            level1_bytes: 256 << 20,
            level_size_ratio: 10,
            index_map_bytes: 4 << 30,
            index_cache_bytes: 64 << 20,
            background_compaction: true,
            tombstone_policy: Arc::new(DropTombstones),
            log_fs: Arc::new(OsLogFs),
        }
    }
}

impl Options {
    /// Checks the options against the format's ceilings and against each other.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |reason: String| Err(EngineError::BadOptions { reason });
        let l = &self.limits;
        if l.key_bytes_max == 0 || l.key_bytes_max > KEY_BYTES_CEILING {
            return bad(format!("key_bytes_max must be 1 to {KEY_BYTES_CEILING}"));
        }
        // Value and batch lengths are u32 on disk; a batch record must also fit a value.
        if l.value_bytes_max > u32::MAX as usize / 2 || l.batch_bytes_max > u32::MAX as usize / 2 {
            return bad(format!(
                "value_bytes_max and batch_bytes_max must be at most {}",
                u32::MAX / 2
            ));
        }
        if l.batch_bytes_max < l.key_bytes_max + l.value_bytes_max + 13 {
            return bad("batch_bytes_max must hold one put of the largest key and value".into());
        }
        if self.l0_compaction_trigger == 0 || self.l0_compaction_trigger > self.l0_stop_trigger {
            return bad("l0_compaction_trigger must be 1 to l0_stop_trigger".into());
        }
        if self.memtable_bytes == 0 || self.block_bytes == 0 || self.table_bytes == 0 {
            return bad("memtable_bytes, block_bytes and table_bytes must be positive".into());
        }
        Ok(())
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("sync", &self.sync)
            .field("limits", &self.limits)
            .field("memtable_bytes", &self.memtable_bytes)
            .field("immutable_memtables_max", &self.immutable_memtables_max)
            .field("cache_bytes", &self.cache_bytes)
            .field("block_bytes", &self.block_bytes)
            .field("bloom_bits_per_key", &self.bloom_bits_per_key)
            .field("table_bytes", &self.table_bytes)
            .field("l0_compaction_trigger", &self.l0_compaction_trigger)
            .field("l0_stop_trigger", &self.l0_stop_trigger)
            .field("level1_bytes", &self.level1_bytes)
            .field("level_size_ratio", &self.level_size_ratio)
            .field("index_map_bytes", &self.index_map_bytes)
            .field("index_cache_bytes", &self.index_cache_bytes)
            .field("background_compaction", &self.background_compaction)
            .finish_non_exhaustive()
    }
}
