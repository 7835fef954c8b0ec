//! A table's footer: the last [`FOOTER_BYTES`] of its file, saying where its bloom filter is and
//! how many blocks and entries it holds.
//!
//! Layout (little-endian): `bloom_offset u64 | bloom_len u32 | bloom_crc u32 | block_count u32 |
//! format_version u32 | entries u64 | footer_crc u32 (CRC32C of bytes 0..32) | magic u32 =
//! 0x5453564b ("KVST")`.

use std::path::Path;

use super::bloom::Bloom;
use super::error::{EngineError, Result};

/// The footer's size in bytes.
pub const FOOTER_BYTES: usize = 40;
/// The format of the tables this build writes and reads.
pub const TABLE_FORMAT_VERSION: u32 = 1;
/// The last four bytes of every table ("KVST", little-endian).
const MAGIC: u32 = 0x5453_564b;

/// A table footer's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Where the bloom filter starts; the data blocks end there.
    pub bloom_offset: u64,
    pub bloom_len: u32,
    /// CRC32C of the bloom filter's bytes.
    pub bloom_crc: u32,
    pub block_count: u32,
    pub entries: u64,
}

impl Footer {
    /// The footer's bytes.
    pub fn encode(&self) -> [u8; FOOTER_BYTES] {
        let mut out = [0u8; FOOTER_BYTES];
        out[0..8].copy_from_slice(&self.bloom_offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.bloom_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.bloom_crc.to_le_bytes());
        out[16..20].copy_from_slice(&self.block_count.to_le_bytes());
        out[20..24].copy_from_slice(&TABLE_FORMAT_VERSION.to_le_bytes());
        out[24..32].copy_from_slice(&self.entries.to_le_bytes());
        let crc = crc32c::crc32c(&out[..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out[36..40].copy_from_slice(&MAGIC.to_le_bytes());
        out
    }

    /// Decodes the footer at the end of the table `file`, of `file_len` bytes: its magic
    /// number, checksum and format version, and that the bloom filter ends where it starts.
    pub fn decode(bytes: &[u8; FOOTER_BYTES], file_len: u64, file: &Path) -> Result<Footer> {
        let footer_at = file_len.saturating_sub(FOOTER_BYTES as u64);
        let corrupt = |reason: String| EngineError::TableCorrupt {
            file: file.to_path_buf(),
            offset: footer_at,
            reason,
        };
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        if file_len < FOOTER_BYTES as u64 {
            return Err(corrupt(format!("file of {file_len} bytes has no footer")));
        }
        if u32_at(36) != MAGIC {
            return Err(corrupt("bad magic number".into()));
        }
        let (expected, got) = (u32_at(32), crc32c::crc32c(&bytes[..32]));
        if expected != got {
            return Err(EngineError::ChecksumMismatch {
                file: file.to_path_buf(),
                offset: footer_at,
                expected,
                got,
            });
        }
        if u32_at(20) != TABLE_FORMAT_VERSION {
            return Err(corrupt(format!("unknown format version {}", u32_at(20))));
        }
        let footer = Footer {
            bloom_offset: u64_at(0),
            bloom_len: u32_at(8),
            bloom_crc: u32_at(12),
            block_count: u32_at(16),
            entries: u64_at(24),
        };
        if footer.bloom_offset.checked_add(footer.bloom_len.into()) != Some(footer_at) {
            return Err(corrupt("bloom filter bounds disagree with the file".into()));
        }
        Ok(footer)
    }

    /// Checks and decodes the bloom filter's `bytes`, read from `file` where the footer says.
    pub fn bloom(&self, bytes: &[u8], file: &Path) -> Result<Bloom> {
        let got = crc32c::crc32c(bytes);
        if got != self.bloom_crc {
            return Err(EngineError::ChecksumMismatch {
                file: file.to_path_buf(),
                offset: self.bloom_offset,
                expected: self.bloom_crc,
                got,
            });
        }
        Bloom::decode(bytes).ok_or_else(|| EngineError::TableCorrupt {
            file: file.to_path_buf(),
            offset: self.bloom_offset,
            reason: "undecodable bloom filter".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A footer survives a round trip, and a flipped bit anywhere in it is refused.
    #[test]
    fn footer_roundtrip_and_bit_flips() {
        let footer = Footer {
            bloom_offset: 4096,
            bloom_len: 100,
            bloom_crc: 7,
            block_count: 3,
            entries: 99,
        };
        let path = Path::new("t.sst");
        let bytes = footer.encode();
        assert_eq!(Footer::decode(&bytes, 4236, path).unwrap(), footer);
        assert!(Footer::decode(&bytes, 4237, path).is_err(), "bounds");
        for bit in 0..FOOTER_BYTES * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Footer::decode(&damaged, 4236, path).is_err(), "bit {bit}");
        }
    }
}
