//! SSTables: immutable sorted files of checksummed data blocks, a bloom filter and a footer.
//!
//! A table is written under a temporary name, fsynced, renamed and its directory fsynced, and
//! only then recorded in the manifest. Its block index is not in the file: it lives in LMDB
//! (see `index`). Layout of the file:
//!
//! ```text
//! data blocks          see `block`
//! bloom filter         see `bloom`
//! footer (40 bytes)    see `footer`
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::block::{Block, BlockBuilder};
use super::bloom::{key_hash, Bloom};
use super::error::{EngineError, Result};
use super::footer::{Footer, FOOTER_BYTES};
use super::index::IndexEntries;
use super::logfile::sync_dir;

/// Where a data block is in its table file, and the last key it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHandle {
    pub last_key: Vec<u8>,
    pub offset: u64,
    pub len: u32,
}

/// What the manifest records of a live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    pub id: u64,
    pub level: u32,
    pub min_key: Vec<u8>,
    pub max_key: Vec<u8>,
    pub min_seq: u64,
    pub max_seq: u64,
    pub entries: u64,
    pub file_bytes: u64,
    pub block_count: u32,
}

impl TableMeta {
    pub fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.min_key.as_slice() <= hi && self.max_key.as_slice() >= lo
    }
}

pub fn table_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.sst"))
}

/// Writes one table. Keys must be added in strictly increasing order.
pub struct TableWriter {
    id: u64,
    path: PathBuf,
    tmp_path: PathBuf,
    file: BufWriter<File>,
    block: BlockBuilder,
    block_bytes: usize,
    scratch: Vec<u8>,
    offset: u64,
    handles: Vec<BlockHandle>,
    hashes: Vec<u64>,
    last_key: Vec<u8>,
    min_key: Option<Vec<u8>>,
    min_seq: u64,
    max_seq: u64,
}

impl TableWriter {
    pub fn create(dir: &Path, id: u64, block_bytes: usize) -> Result<Self> {
        let path = table_path(dir, id);
        let tmp_path = path.with_extension("sst.tmp");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)
            .map_err(|e| EngineError::io("creating table", &tmp_path, e))?;
        Ok(TableWriter {
            id,
            path,
            tmp_path,
            file: BufWriter::with_capacity(256 << 10, file),
            block: BlockBuilder::default(),
            block_bytes,
            scratch: Vec::new(),
            offset: 0,
            handles: Vec::new(),
            hashes: Vec::new(),
            last_key: Vec::new(),
            min_key: None,
            min_seq: u64::MAX,
            max_seq: 0,
        })
    }

    pub fn add(&mut self, key: &[u8], seq: u64, value: Option<&[u8]>) -> Result<()> {
        debug_assert!(
            self.min_key.is_none() || key > self.last_key.as_slice(),
            "keys out of order"
        );
        if self.min_key.is_none() {
            self.min_key = Some(key.to_vec());
        }
        let hash = key_hash(key);
        self.block.add(key, hash, seq, value);
        self.hashes.push(hash);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.min_seq = self.min_seq.min(seq);
        self.max_seq = self.max_seq.max(seq);
        if self.block.len() >= self.block_bytes {
            self.finish_block()?;
        }
        Ok(())
    }

    /// Bytes written so far, including the open block.
    pub fn bytes(&self) -> u64 {
        self.offset + self.block.len() as u64
    }

    fn finish_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        self.block.finish_into(&mut self.scratch);
        self.write(&self.scratch.clone())?;
        self.handles.push(BlockHandle {
            last_key: self.last_key.clone(),
            offset: self.offset - self.scratch.len() as u64,
            len: self.scratch.len() as u32,
        });
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| EngineError::io("writing table", &self.tmp_path, e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Finishes the file durably under its final name. Returns its metadata (at `level`), its
    /// block handles for the index, and its bloom filter. On error no file of the table is
    /// left behind (nothing refers to it yet), so a retry on a full disk does not eat the room
    /// it is waiting for.
    pub fn finish(
        self,
        level: u32,
        bloom_bits_per_key: u32,
    ) -> Result<(TableMeta, Vec<BlockHandle>, Bloom)> {
        let (tmp, path) = (self.tmp_path.clone(), self.path.clone());
        let finished = self.finish_durably(level, bloom_bits_per_key);
        if finished.is_err() {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&path);
        }
        finished
    }

    fn finish_durably(
        mut self,
        level: u32,
        bloom_bits_per_key: u32,
    ) -> Result<(TableMeta, Vec<BlockHandle>, Bloom)> {
        self.finish_block()?;
        let bloom = Bloom::build(&self.hashes, bloom_bits_per_key);
        let bloom_bytes = bloom.encode();
        let footer = Footer {
            bloom_offset: self.offset,
            bloom_len: bloom_bytes.len() as u32,
            bloom_crc: crc32c::crc32c(&bloom_bytes),
            block_count: self.handles.len() as u32,
            entries: self.hashes.len() as u64,
        };
        self.write(&bloom_bytes)?;
        let footer = footer.encode();
        self.write(&footer)?;
        let tmp = self.tmp_path.clone();
        let file = self
            .file
            .into_inner()
            .map_err(|e| EngineError::io("writing table", &tmp, e.into_error()))?;
        file.sync_all()
            .map_err(|e| EngineError::io("syncing table", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, &self.path)
            .map_err(|e| EngineError::io("renaming table", &self.path, e))?;
        let dir = self.path.parent().expect("a table path has a directory");
        sync_dir(dir).map_err(|e| EngineError::io("syncing directory", dir, e))?;
        let meta = TableMeta {
            id: self.id,
            level,
            min_key: self.min_key.unwrap_or_default(),
            max_key: self.last_key,
            min_seq: if self.hashes.is_empty() {
                0
            } else {
                self.min_seq
            },
            max_seq: self.max_seq,
            entries: self.hashes.len() as u64,
            file_bytes: self.offset,
            block_count: self.handles.len() as u32,
        };
        Ok((meta, self.handles, bloom))
    }

    /// Abandons the table, removing its temporary file.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// Ids of replaced tables that no reader holds any more: their block index entries are removed
/// by the next index commit. (Readers may look a table up in the index after a compaction has
/// replaced it, as long as they hold it, so the entries must outlive the last reader.)
pub type Graveyard = Arc<Mutex<Vec<u64>>>;

/// An open, immutable table. When a compaction replaces it, it is marked obsolete: once the last
/// reader lets go of it its file is deleted and its id goes to the graveyard.
pub struct Table {
    pub meta: TableMeta,
    pub path: PathBuf,
    file: File,
    bloom: Bloom,
    /// Where the data blocks end (the bloom filter starts).
    data_end: u64,
    mirror: Option<Mirror>,
    obsolete: OnceLock<Graveyard>,
}

/// An in-memory copy of a table's block index entries, counted against a shared budget.
struct Mirror {
    entries: IndexEntries,
    budget: Arc<AtomicU64>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.budget
            .fetch_sub(self.entries.bytes(), Ordering::Relaxed);
    }
}

impl Table {
    /// Opens the table the manifest describes, checking its footer and bloom filter.
    pub fn open(dir: &Path, meta: TableMeta) -> Result<Table> {
        let path = table_path(dir, meta.id);
        let file = File::open(&path).map_err(|e| EngineError::io("opening table", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| EngineError::io("reading table size", &path, e))?
            .len();
        let corrupt = |offset: u64, reason: String| EngineError::TableCorrupt {
            file: path.clone(),
            offset,
            reason,
        };
        if len != meta.file_bytes || len < FOOTER_BYTES as u64 {
            return Err(corrupt(
                0,
                format!("file is {len} bytes, manifest says {}", meta.file_bytes),
            ));
        }
        let footer_at = len - FOOTER_BYTES as u64;
        let mut footer = [0u8; FOOTER_BYTES];
        file.read_exact_at(&mut footer, footer_at)
            .map_err(|e| EngineError::io("reading table footer", &path, e))?;
        let footer = Footer::decode(&footer, len, &path)?;
        let mut bloom_bytes = vec![0u8; footer.bloom_len as usize];
        file.read_exact_at(&mut bloom_bytes, footer.bloom_offset)
            .map_err(|e| EngineError::io("reading bloom filter", &path, e))?;
        let bloom = footer.bloom(&bloom_bytes, &path)?;
        if footer.block_count != meta.block_count || footer.entries != meta.entries {
            return Err(corrupt(
                footer_at,
                format!(
                    "footer says {} blocks and {} entries, manifest {} and {}",
                    footer.block_count, footer.entries, meta.block_count, meta.entries
                ),
            ));
        }
        Ok(Table {
            meta,
            path,
            file,
            bloom,
            data_end: footer.bloom_offset,
            mirror: None,
            obsolete: OnceLock::new(),
        })
    }

    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// False only if the key is certainly absent (outside the key range, or not in the filter).
    pub fn may_contain(&self, key: &[u8], hash: u64) -> bool {
        key >= self.meta.min_key.as_slice()
            && key <= self.meta.max_key.as_slice()
            && self.bloom.may_contain(hash)
    }

    pub fn bloom_bytes(&self) -> usize {
        self.bloom.bytes()
    }

    /// Reads and verifies one block from the file.
    pub fn read_block(&self, offset: u64, len: u32) -> Result<Block> {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.data_end)
        {
            return Err(EngineError::TableCorrupt {
                file: self.path.clone(),
                offset,
                reason: format!("block index points past the data blocks (length {len})"),
            });
        }
        let mut data = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut data, offset)
            .map_err(|e| EngineError::io("reading table block", &self.path, e))?;
        Block::decode(data, &self.path, offset)
    }

    /// Keeps `entries` in memory for lookups if they fit what is left of `budget` (used bytes)
    /// under `budget_max` bytes.
    pub fn mirror_index(
        &mut self,
        entries: IndexEntries,
        budget: &Arc<AtomicU64>,
        budget_max: u64,
    ) {
        let bytes = entries.bytes();
        let fits = budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= budget_max).then_some(used + bytes)
            })
            .is_ok();
        if fits {
            self.mirror = Some(Mirror {
                entries,
                budget: budget.clone(),
            });
        }
    }

    /// The in-memory block index entries, if the table has them.
    pub fn mirrored_index(&self) -> Option<&IndexEntries> {
        self.mirror.as_ref().map(|m| &m.entries)
    }

    pub fn mark_obsolete(&self, graveyard: &Graveyard) {
        let _ = self.obsolete.set(graveyard.clone());
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Some(graveyard) = self.obsolete.get() {
            // Leftovers of a failed removal are collected on the next open (not in manifest).
            let _ = fs::remove_file(&self.path);
            graveyard.lock().push(self.meta.id);
        }
    }
}
