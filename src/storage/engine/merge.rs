//! Ordered iteration: sources over memtables and tables, and their k-way merge.
//!
//! Every source yields entries in strictly increasing key order. The merge yields every version
//! of every key, ordered by key and then newest first; scans and compactions keep the first
//! version of each key.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::Arc;

use super::block::Block;
use super::cache::BlockCache;
use super::entry::Entry;
use super::error::Result;
use super::index::Index;
use super::memtable::Memtable;
use super::table::Table;

/// Entries fetched from a memtable at a time; a scan does not hold the memtable's iterator.
const MEMTABLE_CHUNK_ENTRIES: usize = 256;

pub trait Source: Send {
    fn next_entry(&mut self) -> Result<Option<Entry>>;
}

fn past_end(key: &[u8], end: &Bound<Vec<u8>>) -> bool {
    match end {
        Bound::Included(e) => key > e.as_slice(),
        Bound::Excluded(e) => key >= e.as_slice(),
        Bound::Unbounded => false,
    }
}

/// A memtable's entries in `[start, end)`, fetched a chunk at a time.
pub struct MemSource {
    mem: Arc<Memtable>,
    next: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    buf: std::vec::IntoIter<Entry>,
    done: bool,
}

impl MemSource {
    pub fn new(mem: Arc<Memtable>, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Self {
        MemSource {
            mem,
            next: start,
            end,
            buf: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl Source for MemSource {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        if let Some(e) = self.buf.next() {
            return Ok(Some(e));
        }
        if self.done {
            return Ok(None);
        }
        let mut chunk = Vec::with_capacity(MEMTABLE_CHUNK_ENTRIES);
        let start = match &self.next {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match &self.end {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.mem
            .chunk(start, end, MEMTABLE_CHUNK_ENTRIES, &mut chunk);
        if chunk.len() < MEMTABLE_CHUNK_ENTRIES {
            self.done = true;
        }
        if let Some(last) = chunk.last() {
            self.next = Bound::Excluded(last.key.clone());
        }
        self.buf = chunk.into_iter();
        Ok(self.buf.next())
    }
}

/// A table's entries from `start` to `end`, a block at a time.
pub struct TableSource {
    table: Arc<Table>,
    cache: Arc<BlockCache>,
    fill_cache: bool,
    handles: std::vec::IntoIter<(u64, u32)>,
    block: Option<Arc<Block>>,
    pos: usize,
    start: Option<Vec<u8>>,
    /// An excluded start key, skipped if met.
    skip: Option<Vec<u8>>,
    end: Bound<Vec<u8>>,
}

impl TableSource {
    pub fn new(
        table: Arc<Table>,
        index: &Index,
        cache: Arc<BlockCache>,
        fill_cache: bool,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
    ) -> Result<Self> {
        let from = match &start {
            Bound::Included(k) | Bound::Excluded(k) => Some(k.clone()),
            Bound::Unbounded => None,
        };
        let mut handles = Vec::with_capacity((table.meta.block_count as usize).min(1 << 16));
        let collect = |offset, len| {
            handles.push((offset, len));
            Ok(true)
        };
        match table.mirrored_index() {
            Some(entries) => entries.visit(from.as_deref(), collect)?,
            None => {
                index.visit_blocks(&*index.read_txn()?, table.id(), from.as_deref(), collect)?
            }
        }
        let skip = match &start {
            Bound::Excluded(k) => Some(k.clone()),
            _ => None,
        };
        Ok(TableSource {
            table,
            cache,
            fill_cache,
            handles: handles.into_iter(),
            block: None,
            pos: 0,
            start: from,
            skip,
            end,
        })
    }

    fn load_next_block(&mut self) -> Result<bool> {
        let Some((offset, len)) = self.handles.next() else {
            self.block = None;
            return Ok(false);
        };
        let block = self
            .cache
            .block(&self.table, offset, len, self.fill_cache)?;
        // Keep seeking until a block holds keys at or after the start: with cut index keys, the
        // first blocks visited may end before it.
        self.pos = self.start.as_deref().map_or(0, |start| block.seek(start));
        if self.pos < block.len() {
            self.start = None;
        }
        self.block = Some(block);
        Ok(true)
    }
}

impl Source for TableSource {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            if let Some(block) = &self.block {
                if self.pos < block.len() {
                    let e = block.entry(self.pos);
                    if past_end(e.key, &self.end) {
                        self.block = None;
                        self.handles = Vec::new().into_iter();
                        return Ok(None);
                    }
                    self.pos += 1;
                    if let Some(skip) = self.skip.take() {
                        if skip.as_slice() == e.key {
                            continue;
                        }
                    }
                    return Ok(Some(Entry {
                        key: e.key.to_vec(),
                        seq: e.seq,
                        value: e.value.map(<[u8]>::to_vec),
                    }));
                }
            }
            if !self.load_next_block()? {
                return Ok(None);
            }
        }
    }
}

struct Head {
    entry: Entry,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    /// The heap is a max-heap: the smallest key, then the highest sequence number, is greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .entry
            .key
            .cmp(&self.entry.key)
            .then(self.entry.seq.cmp(&other.entry.seq))
            .then(other.source.cmp(&self.source))
    }
}

/// The k-way merge of sources.
pub struct Merge {
    sources: Vec<Box<dyn Source>>,
    heap: BinaryHeap<Head>,
    started: bool,
}

impl Merge {
    pub fn new(sources: Vec<Box<dyn Source>>) -> Self {
        Merge {
            heap: BinaryHeap::with_capacity(sources.len()),
            sources,
            started: false,
        }
    }

    /// The next version: smallest key first, newest first within a key.
    pub fn next_version(&mut self) -> Result<Option<Entry>> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                if let Some(entry) = self.sources[i].next_entry()? {
                    self.heap.push(Head { entry, source: i });
                }
            }
        }
        let Some(head) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(entry) = self.sources[head.source].next_entry()? {
            self.heap.push(Head {
                entry,
                source: head.source,
            });
        }
        Ok(Some(head.entry))
    }

    /// The newest version of the next key (possibly a tombstone), skipping older versions.
    pub fn next_newest(&mut self) -> Result<Option<Entry>> {
        let Some(entry) = self.next_version()? else {
            return Ok(None);
        };
        while self.heap.peek().is_some_and(|h| h.entry.key == entry.key) {
            self.next_version()?;
        }
        Ok(Some(entry))
    }
}
