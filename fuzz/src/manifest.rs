//! The target for what the engine keeps in LMDB ([`kvctl::storage::engine`]'s index): manifest entries
//! and block index values.

use kvctl::storage::engine::fuzzing;

use crate::allowance::measured;

/// The table id manifest entries are decoded for.
const TABLE_ID: u64 = 42;

/// Decodes the fuzzer's bytes (after the first) as a manifest entry (first byte even) or a
/// block index value (odd), as opening the engine does. These formats have one encoding for
/// each value, so what decodes encodes back to the same bytes.
pub fn manifest(data: &[u8]) {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        let decoded = measured("a manifest entry", value.len(), || {
            fuzzing::manifest_entry(TABLE_ID, value)
        });
        if let Some(meta) = decoded {
            assert_eq!(meta.id, TABLE_ID);
            assert_eq!(fuzzing::encode_manifest_entry(&meta), value);
        }
    } else {
        let decoded = measured("a block index value", value.len(), || {
            fuzzing::block_index_value(value)
        });
        if let Some(handles) = decoded {
            let mut encoded = Vec::with_capacity(value.len());
            for (offset, len) in handles {
                encoded.extend_from_slice(&offset.to_le_bytes());
                encoded.extend_from_slice(&len.to_le_bytes());
            }
            assert_eq!(encoded, value);
        }
    }
}
