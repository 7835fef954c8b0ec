//! Table data blocks: sorted entries, an offset array for binary search, a small hash index
//! for point lookups, and a checksum.
//!
//! Layout (little-endian):
//!
//! ```text
//! entry*       key_len u16 | kind u8 (1 put, 2 tombstone) | seq u64 | value_len u32 | key | value
//! offsets      u32 per entry: where the entry starts, from the start of the block
//! buckets      u8 per bucket: index of the entry whose key hashes there, 0xFF none, 0xFE more
//!              than one (then search)
//! bucket_count u32 (0 when the block has more than 253 entries: no hash index)
//! count        u32
//! crc          u32: CRC32C of every byte of the block before it
//! ```
//!
//! A key's bucket is `((hash >> 32) * bucket_count) >> 32`, with `hash` the key's bloom hash.

use std::path::Path;

use super::error::{EngineError, Result};

const ENTRY_HEADER_BYTES: usize = 15;
const KIND_PUT: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;
const BUCKET_EMPTY: u8 = 0xFF;
const BUCKET_COLLISION: u8 = 0xFE;
/// Blocks with more entries than this have no hash index (entry indexes must fit below 0xFE).
const HASHED_ENTRIES_MAX: usize = 0xFD;

fn bucket(hash: u64, buckets: usize) -> usize {
    (((hash >> 32) * buckets as u64) >> 32) as usize
}

/// Builds one block.
#[derive(Default)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    offsets: Vec<u32>,
    hashes: Vec<u64>,
}

impl BlockBuilder {
    /// Adds an entry; `hash` is the key's bloom hash.
    pub fn add(&mut self, key: &[u8], hash: u64, seq: u64, value: Option<&[u8]>) {
        self.offsets.push(self.buf.len() as u32);
        self.hashes.push(hash);
        self.buf
            .extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.buf.push(if value.is_some() {
            KIND_PUT
        } else {
            KIND_TOMBSTONE
        });
        self.buf.extend_from_slice(&seq.to_le_bytes());
        let value = value.unwrap_or_default();
        self.buf
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    fn bucket_count(&self) -> usize {
        if self.offsets.len() > HASHED_ENTRIES_MAX {
            0
        } else {
            // About two buckets per entry keeps collisions rare.
            2 * self.offsets.len() + 1
        }
    }

    /// Size the block would have if finished now.
    pub fn len(&self) -> usize {
        self.buf.len() + 4 * self.offsets.len() + self.bucket_count() + 12
    }

    /// Finishes the block into `out` and resets the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.buf);
        for offset in &self.offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let buckets = self.bucket_count();
        let mut table = vec![BUCKET_EMPTY; buckets];
        if buckets > 0 {
            for (i, &h) in self.hashes.iter().enumerate() {
                let b = &mut table[bucket(h, buckets)];
                *b = if *b == BUCKET_EMPTY {
                    i as u8
                } else {
                    BUCKET_COLLISION
                };
            }
        }
        out.extend_from_slice(&table);
        out.extend_from_slice(&(buckets as u32).to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        self.buf.clear();
        self.offsets.clear();
        self.hashes.clear();
    }
}

/// What a block's hash index says of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The key is the entry at this index.
    Found(usize),
    /// The key is not in this block.
    Absent,
    /// The index cannot tell: search.
    Search,
}

/// One entry of a block, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub key: &'a [u8],
    pub seq: u64,
    pub value: Option<&'a [u8]>,
}

/// A decoded, verified block. Its structure is checked once in [`Block::decode`], so the
/// accessors cannot go out of bounds.
#[derive(Debug)]
pub struct Block {
    data: Vec<u8>,
    count: usize,
    offsets_at: usize,
    buckets_at: usize,
    buckets: usize,
}

impl Block {
    /// Verifies the checksum and the structure of `data`, read from `file` at `offset`.
    pub fn decode(data: Vec<u8>, file: &Path, offset: u64) -> Result<Block> {
        let corrupt = |reason: String| EngineError::TableCorrupt {
            file: file.to_path_buf(),
            offset,
            reason,
        };
        if data.len() < 12 {
            return Err(corrupt(format!(
                "block of {} bytes is too short",
                data.len()
            )));
        }
        let crc_at = data.len() - 4;
        let expected = u32::from_le_bytes(data[crc_at..].try_into().expect("4 bytes"));
        let got = crc32c::crc32c(&data[..crc_at]);
        if expected != got {
            return Err(EngineError::ChecksumMismatch {
                file: file.to_path_buf(),
                offset,
                expected,
                got,
            });
        }
        let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let count = u32_at(crc_at - 4) as usize;
        let buckets = u32_at(crc_at - 8) as usize;
        let buckets_at = (crc_at - 8)
            .checked_sub(buckets)
            .ok_or_else(|| corrupt(format!("{buckets} hash buckets do not fit")))?;
        let offsets_at = count
            .checked_mul(4)
            .and_then(|n| buckets_at.checked_sub(n))
            .ok_or_else(|| corrupt(format!("{count} entries do not fit")))?;
        if buckets > 0 && count > HASHED_ENTRIES_MAX {
            return Err(corrupt(format!("hash index over {count} entries")));
        }
        if data[buckets_at..buckets_at + buckets]
            .iter()
            .any(|&b| b != BUCKET_EMPTY && b != BUCKET_COLLISION && b as usize >= count)
        {
            return Err(corrupt("hash bucket names a missing entry".into()));
        }
        let block = Block {
            data,
            count,
            offsets_at,
            buckets_at,
            buckets,
        };
        for i in 0..count {
            let at = block.offset(i);
            let header_end = at
                .checked_add(ENTRY_HEADER_BYTES)
                .filter(|&end| end <= offsets_at)
                .ok_or_else(|| corrupt(format!("entry {i} header out of bounds")))?;
            let h = &block.data[at..header_end];
            let key_len = u16::from_le_bytes([h[0], h[1]]) as usize;
            let kind = h[2];
            let value_len = u32::from_le_bytes([h[11], h[12], h[13], h[14]]) as usize;
            if kind != KIND_PUT && kind != KIND_TOMBSTONE {
                return Err(corrupt(format!("entry {i} has unknown kind {kind}")));
            }
            if header_end + key_len + value_len > offsets_at {
                return Err(corrupt(format!("entry {i} body out of bounds")));
            }
        }
        Ok(block)
    }

    fn offset(&self, i: usize) -> usize {
        let at = self.offsets_at + 4 * i;
        u32::from_le_bytes(self.data[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes held, for the cache's weight.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn entry(&self, i: usize) -> EntryRef<'_> {
        let at = self.offset(i);
        let h = &self.data[at..at + ENTRY_HEADER_BYTES];
        let key_len = u16::from_le_bytes([h[0], h[1]]) as usize;
        let seq = u64::from_le_bytes(h[3..11].try_into().expect("8 bytes"));
        let value_len = u32::from_le_bytes([h[11], h[12], h[13], h[14]]) as usize;
        let key_at = at + ENTRY_HEADER_BYTES;
        let key = &self.data[key_at..key_at + key_len];
        let value =
            (h[2] == KIND_PUT).then(|| &self.data[key_at + key_len..key_at + key_len + value_len]);
        EntryRef { key, seq, value }
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let at = self.offset(i);
        let key_len = u16::from_le_bytes([self.data[at], self.data[at + 1]]) as usize;
        &self.data[at + ENTRY_HEADER_BYTES..at + ENTRY_HEADER_BYTES + key_len]
    }

    /// Asks the hash index about `key`, whose bloom hash is `hash`.
    pub fn probe(&self, key: &[u8], hash: u64) -> Probe {
        if self.buckets == 0 {
            return Probe::Search;
        }
        match self.data[self.buckets_at + bucket(hash, self.buckets)] {
            BUCKET_EMPTY => Probe::Absent,
            BUCKET_COLLISION => Probe::Search,
            i if self.key(i as usize) == key => Probe::Found(i as usize),
            _ => Probe::Absent,
        }
    }

    /// Index of the first entry whose key is `>= key` (`len()` if none).
    pub fn seek(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A built block decodes to the same entries, seeks correctly, and a flipped bit is a
    /// checksum error naming the file.
    #[test]
    fn block_roundtrip_seek_and_checksum() {
        use crate::storage::engine::bloom::key_hash;
        let mut b = BlockBuilder::default();
        for i in 0..50u32 {
            let key = format!("k{i:04}");
            let value = (i % 5 != 0).then(|| vec![i as u8; i as usize]);
            b.add(
                key.as_bytes(),
                key_hash(key.as_bytes()),
                i as u64 + 1,
                value.as_deref(),
            );
        }
        let mut data = Vec::new();
        b.finish_into(&mut data);
        let path = Path::new("t.sst");
        let block = Block::decode(data.clone(), path, 0).unwrap();
        assert_eq!(block.len(), 50);
        let e = block.entry(7);
        assert_eq!(
            (e.key, e.seq, e.value),
            (&b"k0007"[..], 8, Some(&[7u8; 7][..]))
        );
        assert_eq!(block.entry(10).value, None);
        assert_eq!(block.seek(b"k0007"), 7);
        assert_eq!(block.seek(b"k00075"), 8);
        assert_eq!(block.seek(b"a"), 0);
        assert_eq!(block.seek(b"z"), 50);
        for i in 0..50u32 {
            let key = format!("k{i:04}");
            let p = block.probe(key.as_bytes(), key_hash(key.as_bytes()));
            assert!(
                p == Probe::Found(i as usize) || p == Probe::Search,
                "{key}: {p:?}"
            );
            let absent = format!("k{i:04}x");
            let p = block.probe(absent.as_bytes(), key_hash(absent.as_bytes()));
            assert!(p == Probe::Absent || p == Probe::Search, "{absent}: {p:?}");
        }
        data[3] ^= 0x10;
        let err = Block::decode(data, path, 4096).unwrap_err();
        assert!(
            matches!(err, EngineError::ChecksumMismatch { offset: 4096, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("t.sst"));
    }
}
