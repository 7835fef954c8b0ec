//! Targets for table files ([`kvctl::storage::engine`]'s SSTables): their data blocks, and their footer
//! with the bloom filter it points to.

use kvctl::storage::engine::fuzzing::{self, key_hash, BlockBuilder, Footer, FOOTER_BYTES};

use crate::allowance::measured;

/// First byte: make the checksums (and the footer's magic, version and bloom bounds) right
/// first, so that the fuzzer gets past them.
const FLAG_FIX: u8 = 1;

/// Decodes the fuzzer's bytes as a data block, as a read does with what the disk gave it. A
/// block that decodes answers every accessor for every entry, and its entries build a block
/// that decodes to the same entries.
pub fn table_block(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if flags & FLAG_FIX != 0 && bytes.len() >= 4 {
        let crc_at = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..crc_at]);
        bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
    }
    let decoded = measured("Block::decode", bytes.len(), || fuzzing::block(&bytes));
    let Ok(block) = decoded else {
        return;
    };
    let mut builder = BlockBuilder::default();
    let mut entries = Vec::with_capacity(block.len());
    for i in 0..block.len() {
        let entry = block.entry(i);
        assert_eq!(block.key(i), entry.key);
        let _ = (
            block.seek(entry.key),
            block.probe(entry.key, key_hash(entry.key)),
        );
        builder.add(entry.key, key_hash(entry.key), entry.seq, entry.value);
        entries.push(entry);
    }
    let _ = block.seek(b"");
    let mut rebuilt = Vec::new();
    builder.finish_into(&mut rebuilt);
    let again = fuzzing::block(&rebuilt).unwrap_or_else(|e| panic!("a rebuilt block: {e}"));
    assert_eq!(again.len(), block.len());
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(&again.entry(i), entry, "entry {i} changed when rebuilt");
        if i < u8::MAX as usize {
            let probe = again.probe(entry.key, key_hash(entry.key));
            assert_ne!(
                probe,
                fuzzing::Probe::Absent,
                "the built index misses entry {i}"
            );
        }
    }
}

/// Decodes the fuzzer's bytes as a whole table file's footer and bloom filter, as opening a
/// table does. A footer that decodes encodes to the file's last bytes.
pub fn table_tail(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    if flags & FLAG_FIX != 0 {
        fix_footer(&mut file);
    }
    let decoded = measured("a table's footer and bloom filter", file.len(), || {
        fuzzing::table_tail(&file)
    });
    let Ok((footer, bloom)) = decoded else {
        return;
    };
    assert_eq!(&footer.encode()[..], &file[file.len() - FOOTER_BYTES..]);
    for key in [&b""[..], b"a", b"key-1"] {
        let _ = bloom.may_contain(key_hash(key));
    }
    assert_eq!(bloom.bytes(), footer.bloom_len as usize);
}

/// Makes the footer at the end of `file` one that decodes, but for the bloom filter's bytes:
/// the right magic and version, the filter ending where the footer starts, both checksums.
fn fix_footer(file: &mut [u8]) {
    let Some(footer_at) = file.len().checked_sub(FOOTER_BYTES) else {
        return;
    };
    let tail: &[u8; FOOTER_BYTES] = file[footer_at..].try_into().expect("the footer's size");
    let bloom_len = u32::from_le_bytes(tail[8..12].try_into().expect("4 bytes"));
    let bloom_len = bloom_len.min(footer_at as u32);
    let bloom_offset = footer_at as u64 - u64::from(bloom_len);
    let footer = Footer {
        bloom_offset,
        bloom_len,
        bloom_crc: crc32c::crc32c(&file[bloom_offset as usize..footer_at]),
        block_count: u32::from_le_bytes(tail[16..20].try_into().expect("4 bytes")),
        entries: u64::from_le_bytes(tail[24..32].try_into().expect("8 bytes")),
    };
    file[footer_at..].copy_from_slice(&footer.encode());
}
