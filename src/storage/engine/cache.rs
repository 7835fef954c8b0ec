//! The block cache: decoded blocks, shared by all tables, bounded in bytes.

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::block::Block;
use super::error::Result;
use super::table::Table;

#[derive(Clone, Copy)]
struct BlockWeight;

impl Weighter<(u64, u64), Arc<Block>> for BlockWeight {
    fn weight(&self, _key: &(u64, u64), block: &Arc<Block>) -> u64 {
        block.bytes() as u64 + 64
    }
}

/// Keyed by (table id, block offset); table ids are never reused, so entries of deleted tables
/// simply age out.
pub struct BlockCache {
    cache: Cache<(u64, u64), Arc<Block>, BlockWeight>,
}

impl BlockCache {
    pub fn new(capacity_bytes: u64) -> Self {
        let estimated_items = (capacity_bytes / 4096).clamp(16, 1 << 22) as usize;
        BlockCache {
            cache: Cache::with_weighter(estimated_items, capacity_bytes.max(1), BlockWeight),
        }
    }

    /// The block at `offset` of `table`, from the cache or the file. Blocks read for compaction
    /// pass `fill: false` so that one big merge does not evict the working set.
    pub fn block(&self, table: &Table, offset: u64, len: u32, fill: bool) -> Result<Arc<Block>> {
        let key = (table.id(), offset);
        if let Some(block) = self.cache.get(&key) {
            return Ok(block);
        }
        let block = Arc::new(table.read_block(offset, len)?);
        if fill {
            self.cache.insert(key, block.clone());
        }
        Ok(block)
    }

    /// The block, if it is cached (nothing is read).
    pub fn cached(&self, table: &Table, offset: u64) -> Option<Arc<Block>> {
        self.cache.get(&(table.id(), offset))
    }

    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }

    pub fn hits(&self) -> u64 {
        self.cache.hits()
    }

    pub fn misses(&self) -> u64 {
        self.cache.misses()
    }
}
