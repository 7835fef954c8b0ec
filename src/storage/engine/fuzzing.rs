//! The engine's decoders of bytes read from disk, as pure functions over byte slices, for the
//! fuzz targets (`fuzz/`): WAL segments and their write batches, table blocks, table footers
//! with their bloom filters, and the manifest and block index values kept in LMDB. Not part of
//! the engine's API: nothing else should call these.

use std::path::Path;

pub use super::block::{Block, BlockBuilder, EntryRef, Probe};
pub use super::bloom::{key_hash, Bloom};
pub use super::footer::{Footer, FOOTER_BYTES};
pub use super::table::TableMeta;
pub use super::wal::{append_record, SegmentReplay, RECORD_HEADER_BYTES};

use super::batch::WriteBatch;
use super::error::Result;

/// The name the decoders' errors give the file (there is none).
const FILE: &str = "fuzz-input";

/// Replays a WAL segment's `bytes` (see [`super::wal`]): its batches with their first
/// sequence numbers, and what the replay found.
pub fn wal_segment(
    bytes: &[u8],
    is_last: bool,
    after_seq: Option<u64>,
) -> Result<(Vec<(u64, WriteBatch)>, SegmentReplay)> {
    let mut batches = Vec::new();
    let replay = super::wal::replay_bytes(bytes, Path::new(FILE), is_last, after_seq, |s, b| {
        batches.push((s, b));
        Ok(())
    })?;
    Ok((batches, replay))
}

/// Decodes and verifies a table's data block (see [`super::block`]).
pub fn block(bytes: &[u8]) -> Result<Block> {
    Block::decode(bytes.to_vec(), Path::new(FILE), 0)
}

/// Decodes a whole table file's footer and bloom filter, as opening the table does.
pub fn table_tail(file: &[u8]) -> Result<(Footer, Bloom)> {
    let file_len = file.len() as u64;
    let mut footer = [0u8; FOOTER_BYTES];
    if let Some(tail) = file.len().checked_sub(FOOTER_BYTES).map(|at| &file[at..]) {
        footer.copy_from_slice(tail);
    }
    let footer = Footer::decode(&footer, file_len, Path::new(FILE))?;
    // The footer's bounds check puts the filter within the file, before the footer.
    let start = footer.bloom_offset as usize;
    let bloom_bytes = &file[start..start + footer.bloom_len as usize];
    let bloom = footer.bloom(bloom_bytes, Path::new(FILE))?;
    Ok((footer, bloom))
}

/// Encodes a manifest value (what the manifest in LMDB holds for a table).
pub fn encode_manifest_entry(meta: &TableMeta) -> Vec<u8> {
    super::index::encode_meta(meta)
}

/// Decodes a manifest value of table `id`; `None` if it is not one.
pub fn manifest_entry(id: u64, value: &[u8]) -> Option<TableMeta> {
    super::index::decode_meta(id, value)
}

/// Decodes a block index value: its block handles `(offset, len)`; `None` if it is not one.
pub fn block_index_value(value: &[u8]) -> Option<Vec<(u64, u32)>> {
    super::index::decode_handles(value).map(Iterator::collect)
}
