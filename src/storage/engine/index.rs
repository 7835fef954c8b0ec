//! The engine's indexes and metadata in LMDB (through heed): the manifest of live tables, the
//! block index of every table, and engine metadata.
//!
//! Databases (all keys and values are raw bytes; integers big-endian in keys so they sort,
//! little-endian in values):
//!
//! - `manifest`: `table_id u64 BE` → encoded [`TableMeta`] (see `encode_meta`).
//! - `block_index`: `table_id u64 BE ++ truncated last key` → one or more block handles, each
//!   `offset u64 LE | len u32 LE`. LMDB keys are at most 511 bytes, so a block's last key is cut
//!   to [`INDEX_KEY_BYTES_MAX`] - 8 bytes; consecutive blocks whose cut keys are equal share one
//!   entry, their handles concatenated in file order. A lookup seeks the first entry `>=` the
//!   (cut) key and walks blocks from there until one whose real last key is `>=` the key.
//! - `meta`: `last_flushed_seq` → u64 LE; `next_table_id` → u64 LE; `format_version` → u32 LE.
//!
//! A flush or a compaction changes all of this in one write transaction ([`Index::commit`]).
//!
//! Reads may use an in-memory mirror of a table's block index entries ([`IndexEntries`], the
//! same entries with the same lookup rule) while the mirrors fit the `index_cache_bytes`
//! budget; tables beyond it are looked up in LMDB.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, WithTls};

use super::error::{EngineError, Result};
use super::table::{BlockHandle, TableMeta};

/// LMDB's key size limit in its default build.
pub const INDEX_KEY_BYTES_MAX: usize = 511;
const PREFIX_BYTES: usize = 8;
const HANDLE_BYTES: usize = 12;
pub const INDEX_FORMAT_VERSION: u32 = 1;
const META_LAST_FLUSHED_SEQ: &[u8] = b"last_flushed_seq";
const META_NEXT_TABLE_ID: &[u8] = b"next_table_id";
const META_FORMAT_VERSION: &[u8] = b"format_version";

type Raw = Database<'static, Bytes, Bytes>;

/// One atomic change of the live set.
#[derive(Default)]
pub struct Edit<'a> {
    pub added: Vec<(&'a TableMeta, &'a IndexEntries)>,
    /// Tables leaving the manifest. Their block index entries stay until they are forgotten.
    pub removed: Vec<u64>,
    /// Removed tables no reader holds any more: their block index entries go.
    pub forgotten: Vec<u64>,
    pub last_flushed_seq: Option<u64>,
    pub next_table_id: u64,
}

/// A table's block index entries, in the order and with the keys they have in LMDB.
///
/// Lookups binary-search a compact array first: for each key, the 8 bytes that follow the
/// prefix all keys share, as a big-endian `u64` (zero-padded), which orders like the keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexEntries {
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    handle_ends: Vec<u32>,
    handles: Vec<(u64, u32)>,
    shared: usize,
    probes: Vec<u64>,
}

fn probe(key: &[u8], shared: usize) -> u64 {
    let mut word = [0u8; 8];
    let tail = key.get(shared..).unwrap_or_default();
    let n = tail.len().min(8);
    word[..n].copy_from_slice(&tail[..n]);
    u64::from_be_bytes(word)
}

impl IndexEntries {
    /// Groups the handles of consecutive blocks whose cut last keys are equal.
    pub fn from_handles(handles: &[BlockHandle]) -> IndexEntries {
        let mut entries = IndexEntries::default();
        for h in handles {
            let cut = cut_key(&h.last_key);
            let same = entries.len() > 0 && entries.key(entries.len() - 1) == cut;
            if !same {
                entries.keys.extend_from_slice(cut);
                entries.key_ends.push(entries.keys.len() as u32);
                entries.handle_ends.push(entries.handles.len() as u32);
            }
            entries.handles.push((h.offset, h.len));
            *entries.handle_ends.last_mut().expect("an entry exists") =
                entries.handles.len() as u32;
        }
        entries.build_probes();
        entries
    }

    fn build_probes(&mut self) {
        if self.len() == 0 {
            return;
        }
        let (first, last) = (self.key(0), self.key(self.len() - 1));
        self.shared = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        self.probes = (0..self.len())
            .map(|i| probe(self.key(i), self.shared))
            .collect();
    }

    fn push(&mut self, cut: &[u8], handles: impl Iterator<Item = (u64, u32)>) {
        self.keys.extend_from_slice(cut);
        self.key_ends.push(self.keys.len() as u32);
        self.handles.extend(handles);
        self.handle_ends.push(self.handles.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.key_ends[i - 1] as usize
        };
        &self.keys[start..self.key_ends[i] as usize]
    }

    fn handles(&self, i: usize) -> &[(u64, u32)] {
        let start = if i == 0 {
            0
        } else {
            self.handle_ends[i - 1] as usize
        };
        &self.handles[start..self.handle_ends[i] as usize]
    }

    /// Memory held, for the mirror budget.
    pub fn bytes(&self) -> u64 {
        (self.keys.len() + 16 * self.key_ends.len() + 16 * self.handles.len()) as u64
    }

    /// Index of the first entry whose key is `>= cut`.
    fn seek(&self, cut: &[u8]) -> usize {
        let Some(first) = (self.len() > 0).then(|| self.key(0)) else {
            return 0;
        };
        let common = &first[..self.shared];
        if !cut.starts_with(common) {
            return if cut < common { 0 } else { self.len() };
        }
        let p = probe(cut, self.shared);
        let mut lo = self.probes.partition_point(|&x| x < p);
        let mut hi = lo + self.probes[lo..].partition_point(|&x| x == p);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(mid) < cut {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Like [`Index::visit_blocks`], from memory.
    pub fn visit(
        &self,
        from: Option<&[u8]>,
        mut visit: impl FnMut(u64, u32) -> Result<bool>,
    ) -> Result<()> {
        let first = from.map_or(0, |key| self.seek(cut_key(key)));
        for i in first..self.len() {
            for &(offset, len) in self.handles(i) {
                if !visit(offset, len)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

pub struct Index {
    env: Env,
    dir: PathBuf,
    manifest: Raw,
    blocks: Raw,
    meta: Raw,
}

impl Index {
    pub fn open(dir: &Path, map_bytes: usize) -> Result<Index> {
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::io("creating index directory", dir, e))?;
        let mut options = EnvOpenOptions::new();
        options.map_size(map_bytes).max_dbs(8);
        // SAFETY: the engine holds an exclusive lock on its directory, so no other process maps
        // this environment, and this process opens it once per engine.
        let env =
            unsafe { options.open(dir) }.map_err(|e| EngineError::index("opening LMDB", e))?;
        if env.max_key_size() < INDEX_KEY_BYTES_MAX {
            return Err(EngineError::IndexCorrupt {
                dir: dir.to_path_buf(),
                reason: format!(
                    "LMDB allows keys of {} bytes, need {INDEX_KEY_BYTES_MAX}",
                    env.max_key_size()
                ),
            });
        }
        let wtxn = env
            .write_txn()
            .map_err(|e| EngineError::index("starting a transaction", e))?;
        let (manifest, blocks, meta) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let manifest = opener.create_database::<Bytes, Bytes>(wtxn, Some("manifest"))?;
                let blocks = opener.create_database::<Bytes, Bytes>(wtxn, Some("block_index"))?;
                let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((manifest, blocks, meta)))
            })
            .map_err(|e| EngineError::index("creating databases", e))?
            .unwrap_commit();
        let index = Index {
            env,
            dir: dir.to_path_buf(),
            manifest,
            blocks,
            meta,
        };
        index.check_format()?;
        Ok(index)
    }

    fn check_format(&self) -> Result<()> {
        let mut wtxn = self
            .env
            .write_txn()
            .map_err(|e| EngineError::index("starting a transaction", e))?;
        match self
            .meta
            .get(&wtxn, META_FORMAT_VERSION)
            .map_err(|e| EngineError::index("reading meta", e))?
        {
            Some(v) if v == INDEX_FORMAT_VERSION.to_le_bytes() => return Ok(()),
            Some(v) => {
                return Err(self.corrupt(format!("unknown index format version {v:?}")));
            }
            None => {}
        }
        self.meta
            .put(
                &mut wtxn,
                META_FORMAT_VERSION,
                &INDEX_FORMAT_VERSION.to_le_bytes(),
            )
            .map_err(|e| EngineError::index("writing meta", e))?;
        wtxn.commit()
            .map_err(|e| EngineError::index("committing", e))
    }

    fn corrupt(&self, reason: String) -> EngineError {
        EngineError::IndexCorrupt {
            dir: self.dir.clone(),
            reason,
        }
    }

    pub fn read_txn(&self) -> Result<RoTxn<'_, WithTls>> {
        self.env
            .read_txn()
            .map_err(|e| EngineError::index("starting a read transaction", e))
    }

    /// The live tables, by id.
    pub fn tables(&self) -> Result<Vec<TableMeta>> {
        let rtxn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self
            .manifest
            .iter(&rtxn)
            .map_err(|e| EngineError::index("reading manifest", e))?
        {
            let (key, value) = item.map_err(|e| EngineError::index("reading manifest", e))?;
            let id = key
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt(format!("manifest key of {} bytes", key.len())))?;
            let meta = decode_meta(id, value).ok_or_else(|| {
                self.corrupt(format!("undecodable manifest entry for table {id}"))
            })?;
            out.push(meta);
        }
        Ok(out)
    }

    fn meta_u64(&self, key: &[u8]) -> Result<u64> {
        let rtxn = self.read_txn()?;
        match self
            .meta
            .get(&rtxn, key)
            .map_err(|e| EngineError::index("reading meta", e))?
        {
            None => Ok(0),
            Some(v) => v.try_into().map(u64::from_le_bytes).map_err(|_| {
                self.corrupt(format!(
                    "meta {} is {} bytes",
                    String::from_utf8_lossy(key),
                    v.len()
                ))
            }),
        }
    }

    pub fn last_flushed_seq(&self) -> Result<u64> {
        self.meta_u64(META_LAST_FLUSHED_SEQ)
    }

    pub fn next_table_id(&self) -> Result<u64> {
        self.meta_u64(META_NEXT_TABLE_ID)
    }

    /// Applies `edit` in one write transaction: it is all there after a crash, or none of it.
    pub fn commit(&self, edit: &Edit<'_>) -> Result<()> {
        let err = |action| move |e| EngineError::index(action, e);
        let mut wtxn = self
            .env
            .write_txn()
            .map_err(err("starting a transaction"))?;
        for &id in &edit.removed {
            self.manifest
                .delete(&mut wtxn, &id.to_be_bytes())
                .map_err(err("removing a table"))?;
        }
        for &id in &edit.forgotten {
            let (lo, hi) = (id.to_be_bytes(), (id + 1).to_be_bytes());
            let range = (Bound::Included(&lo[..]), Bound::Excluded(&hi[..]));
            self.blocks
                .delete_range(&mut wtxn, &range)
                .map_err(err("removing a block index"))?;
        }
        let mut key = Vec::with_capacity(INDEX_KEY_BYTES_MAX);
        let mut value = Vec::new();
        for (meta, entries) in &edit.added {
            self.manifest
                .put(&mut wtxn, &meta.id.to_be_bytes(), &encode_meta(meta))
                .map_err(err("adding a table"))?;
            for i in 0..entries.len() {
                index_key(meta.id, entries.key(i), &mut key);
                value.clear();
                for (offset, len) in entries.handles(i) {
                    value.extend_from_slice(&offset.to_le_bytes());
                    value.extend_from_slice(&len.to_le_bytes());
                }
                self.blocks
                    .put(&mut wtxn, &key, &value)
                    .map_err(err("adding a block index"))?;
            }
        }
        if let Some(seq) = edit.last_flushed_seq {
            self.meta
                .put(&mut wtxn, META_LAST_FLUSHED_SEQ, &seq.to_le_bytes())
                .map_err(err("writing meta"))?;
        }
        self.meta
            .put(
                &mut wtxn,
                META_NEXT_TABLE_ID,
                &edit.next_table_id.to_le_bytes(),
            )
            .map_err(err("writing meta"))?;
        wtxn.commit().map_err(err("committing"))
    }

    /// A table's block index entries, read from LMDB (to mirror them in memory).
    pub fn entries(&self, table_id: u64) -> Result<IndexEntries> {
        let err = |e| EngineError::index("reading the block index", e);
        let rtxn = self.read_txn()?;
        let (lo, hi) = (table_id.to_be_bytes(), (table_id + 1).to_be_bytes());
        let range = (Bound::Included(&lo[..]), Bound::Excluded(&hi[..]));
        let mut entries = IndexEntries::default();
        for item in self.blocks.range(&rtxn, &range).map_err(err)? {
            let (key, value) = item.map_err(err)?;
            let handles = self.decode_handles(table_id, value)?;
            let cut = key
                .get(PREFIX_BYTES..)
                .ok_or_else(|| self.corrupt(format!("block index key of {} bytes", key.len())))?;
            entries.push(cut, handles);
        }
        entries.build_probes();
        Ok(entries)
    }

    fn decode_handles<'v>(
        &self,
        table_id: u64,
        value: &'v [u8],
    ) -> Result<impl Iterator<Item = (u64, u32)> + 'v> {
        decode_handles(value).ok_or_else(|| {
            self.corrupt(format!(
                "block index value of {} bytes for table {table_id}",
                value.len()
            ))
        })
    }

    /// Calls `visit(offset, len)` for the table's blocks in file order, starting from the
    /// first that may hold `from` (or the first block), until `visit` returns false.
    pub fn visit_blocks(
        &self,
        rtxn: &RoTxn<'_>,
        table_id: u64,
        from: Option<&[u8]>,
        mut visit: impl FnMut(u64, u32) -> Result<bool>,
    ) -> Result<()> {
        let err = |e| EngineError::index("reading the block index", e);
        let mut start = Vec::with_capacity(INDEX_KEY_BYTES_MAX);
        match from {
            Some(key) => index_key(table_id, key, &mut start),
            None => start.extend_from_slice(&table_id.to_be_bytes()),
        }
        let end = (table_id + 1).to_be_bytes();
        let range = (Bound::Included(&start[..]), Bound::Excluded(&end[..]));
        for item in self.blocks.range(rtxn, &range).map_err(err)? {
            let (_, value) = item.map_err(err)?;
            for (offset, len) in self.decode_handles(table_id, value)? {
                if !visit(offset, len)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Removes the block index entries of tables the manifest does not list (left by tables
    /// that were replaced but still read when the engine stopped).
    pub fn forget_unlisted(&self) -> Result<()> {
        let live: std::collections::HashSet<u64> = self.tables()?.iter().map(|t| t.id).collect();
        let mut stale = Vec::new();
        {
            let rtxn = self.read_txn()?;
            let err = |e| EngineError::index("reading the block index", e);
            let mut next = Some(0u64);
            // Jump from table to table rather than reading every entry.
            while let Some(from) = next {
                let lo = from.to_be_bytes();
                let range = (Bound::Included(&lo[..]), Bound::Unbounded);
                let mut iter = self.blocks.range(&rtxn, &range).map_err(err)?;
                let Some(item) = iter.next() else { break };
                let (key, _) = item.map_err(err)?;
                let id = key
                    .get(..PREFIX_BYTES)
                    .and_then(|p| p.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| {
                        self.corrupt(format!("block index key of {} bytes", key.len()))
                    })?;
                if !live.contains(&id) {
                    stale.push(id);
                }
                next = id.checked_add(1);
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        let next_table_id = self.next_table_id()?;
        self.commit(&Edit {
            forgotten: stale,
            next_table_id,
            ..Edit::default()
        })
    }

    /// Number of entries in the block index (for stats and tests).
    pub fn block_index_entries(&self) -> Result<u64> {
        let rtxn = self.read_txn()?;
        self.blocks
            .len(&rtxn)
            .map_err(|e| EngineError::index("counting the block index", e))
    }
}

/// The block handles of a block index value (`offset u64 LE | len u32 LE`, one or more), or
/// `None` if the value is not a whole number of them.
pub(crate) fn decode_handles(value: &[u8]) -> Option<impl Iterator<Item = (u64, u32)> + '_> {
    if value.is_empty() || !value.len().is_multiple_of(HANDLE_BYTES) {
        return None;
    }
    Some(value.chunks_exact(HANDLE_BYTES).map(|h| {
        let offset = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
        (
            offset,
            u32::from_le_bytes(h[8..].try_into().expect("4 bytes")),
        )
    }))
}

fn cut_key(key: &[u8]) -> &[u8] {
    &key[..key.len().min(INDEX_KEY_BYTES_MAX - PREFIX_BYTES)]
}

fn index_key(table_id: u64, key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&table_id.to_be_bytes());
    out.extend_from_slice(cut_key(key));
}

/// Manifest value: `version u8 = 1 | level u32 | min_seq u64 | max_seq u64 | entries u64 |
/// file_bytes u64 | block_count u32 | min_key_len u32 | min_key | max_key_len u32 | max_key`.
pub(crate) fn encode_meta(meta: &TableMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(53 + meta.min_key.len() + meta.max_key.len());
    out.push(1);
    out.extend_from_slice(&meta.level.to_le_bytes());
    out.extend_from_slice(&meta.min_seq.to_le_bytes());
    out.extend_from_slice(&meta.max_seq.to_le_bytes());
    out.extend_from_slice(&meta.entries.to_le_bytes());
    out.extend_from_slice(&meta.file_bytes.to_le_bytes());
    out.extend_from_slice(&meta.block_count.to_le_bytes());
    out.extend_from_slice(&(meta.min_key.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.min_key);
    out.extend_from_slice(&(meta.max_key.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.max_key);
    out
}

/// Decodes a manifest value written by [`encode_meta`] for table `id`; `None` for anything else.
pub(crate) fn decode_meta(id: u64, mut b: &[u8]) -> Option<TableMeta> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Some(head)
    }
    let u32_of = |b: &mut &[u8]| take(b, 4).map(|x| u32::from_le_bytes(x.try_into().expect("4")));
    let u64_of = |b: &mut &[u8]| take(b, 8).map(|x| u64::from_le_bytes(x.try_into().expect("8")));
    if take(&mut b, 1)? != [1] {
        return None;
    }
    let level = u32_of(&mut b)?;
    let min_seq = u64_of(&mut b)?;
    let max_seq = u64_of(&mut b)?;
    let entries = u64_of(&mut b)?;
    let file_bytes = u64_of(&mut b)?;
    let block_count = u32_of(&mut b)?;
    let n = u32_of(&mut b)? as usize;
    let min_key = take(&mut b, n)?.to_vec();
    let n = u32_of(&mut b)? as usize;
    let max_key = take(&mut b, n)?.to_vec();
    b.is_empty().then_some(TableMeta {
        id,
        level,
        min_key,
        max_key,
        min_seq,
        max_seq,
        entries,
        file_bytes,
        block_count,
    })
}
