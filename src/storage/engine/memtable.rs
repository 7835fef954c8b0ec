//! The memtable: a sorted, concurrent map of the newest version of each recently written key,
//! with a hash index beside it for point lookups.
//!
//! Only the group-commit leader inserts (in sequence order); any number of readers look up and
//! iterate concurrently. A memtable is rotated at a size bound and then flushed to a table.
//!
//! A skip-list search follows about 2·log₂(n) pointers, each a likely cache miss when the keys
//! looked up are scattered through the key order (as hot keys are once keys start with their
//! ring token). So:
//! - point lookups go to a hash index by the key's hash (the one its tables' bloom filters use,
//!   computed once per lookup), which touches a couple of cache lines;
//! - the skip list, which inserts and ordered scans still search, keeps each key's first
//!   8 bytes inline ([`MemKey`]), so most comparisons settle without loading the key.
//!
//! The index shares each entry's key and value with the skip list (`Arc`s): a few words per
//! key, not a second copy.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;
use hashbrown::HashTable;
use parking_lot::RwLock;

use super::bloom::key_hash;
use super::entry::Entry;

/// Per-entry bookkeeping bytes counted on top of key and value (skip-list node, index slot and
/// the shared allocations' headers), so that many tiny entries still rotate the memtable at a
/// sensible size.
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Shards of the hash index, so readers of different keys rarely share a lock word.
const INDEX_SHARDS: usize = 16;

#[derive(Debug, Clone)]
pub struct Slot {
    pub seq: u64,
    pub value: Option<Arc<[u8]>>,
}

impl Slot {
    /// A copy of the value (`None`: a deletion).
    pub fn value_vec(&self) -> Option<Vec<u8>> {
        self.value.as_deref().map(<[u8]>::to_vec)
    }
}

/// A skip-list key: the key's first 8 bytes as a big-endian number (zero-padded), then the
/// whole key, compared in that field order (the derived order). Ordered exactly as the keys'
/// bytes are: keys whose heads differ differ within their first 8 bytes (a shorter key's
/// padding sorts as low as it should), and equal heads fall back to comparing the keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MemKey {
    head: u64,
    key: Arc<[u8]>,
}

impl MemKey {
    fn new(key: Arc<[u8]>) -> Self {
        let mut head = [0u8; 8];
        let n = key.len().min(8);
        head[..n].copy_from_slice(&key[..n]);
        MemKey {
            head: u64::from_be_bytes(head),
            key,
        }
    }
}

/// An index entry: the key's hash (kept, so growing the table does not hash keys again), the
/// key and its slot.
type Indexed = (u64, Arc<[u8]>, Slot);

pub struct Memtable {
    map: SkipMap<MemKey, Slot>,
    index: [RwLock<HashTable<Indexed>>; INDEX_SHARDS],
    bytes: AtomicUsize,
    max_seq: AtomicU64,
    /// WAL segments whose records live in this memtable; deleted once it is flushed.
    pub wal_segments: Vec<u64>,
}

impl Memtable {
    pub fn new(wal_segments: Vec<u64>) -> Self {
        Memtable {
            map: SkipMap::new(),
            index: std::array::from_fn(|_| RwLock::new(HashTable::new())),
            bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            wal_segments,
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<HashTable<Indexed>> {
        // The table picks buckets by the hash's low bits; shards by its high ones.
        &self.index[(hash >> 60) as usize % INDEX_SHARDS]
    }

    pub fn insert(&self, key: &[u8], seq: u64, value: Option<&[u8]>) {
        let added = key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD_BYTES;
        self.bytes.fetch_add(added, Ordering::Relaxed);
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
        let hash = key_hash(key);
        let key: Arc<[u8]> = Arc::from(key);
        let slot = Slot {
            seq,
            value: value.map(Arc::from),
        };
        // The skip list first: a key found in the index is in the skip list too.
        self.map.insert(MemKey::new(key.clone()), slot.clone());
        let mut shard = self.shard(hash).write();
        match shard.find_mut(hash, |(h, k, _)| *h == hash && **k == *key) {
            Some(entry) => entry.2 = slot,
            None => {
                shard.insert_unique(hash, (hash, key, slot), |(h, _, _)| *h);
            }
        }
    }

    /// The newest slot of `key`, whose [`key_hash`] is `hash`.
    pub fn get(&self, key: &[u8], hash: u64) -> Option<Slot> {
        let shard = self.shard(hash).read();
        shard
            .find(hash, |(h, k, _)| *h == hash && **k == *key)
            .map(|(_, _, slot)| slot.clone())
    }

    /// Approximate bytes held (replaced versions are still counted: they were written).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn max_seq(&self) -> u64 {
        self.max_seq.load(Ordering::Relaxed)
    }

    /// Up to `limit` entries with keys after `after` (or from `start`), in key order, up to `end`.
    pub fn chunk(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
        out: &mut Vec<Entry>,
    ) {
        let bound = |b: Bound<&[u8]>| b.map(|k| MemKey::new(Arc::from(k)));
        let range = self.map.range((bound(start), bound(end)));
        for e in range.take(limit) {
            let slot = e.value();
            out.push(Entry {
                key: e.key().key.to_vec(),
                seq: slot.seq,
                value: slot.value_vec(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Abbreviated keys order exactly as their bytes do, whatever their lengths and
        /// shared prefixes (zero bytes included, which the padding must not confuse).
        #[test]
        fn memkeys_order_as_their_bytes(
            a in proptest::collection::vec(0u8..3, 0..12),
            b in proptest::collection::vec(0u8..3, 0..12),
        ) {
            let (ka, kb) = (MemKey::new(Arc::from(&a[..])), MemKey::new(Arc::from(&b[..])));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
        }
    }

    #[test]
    fn lookups_and_scans_see_the_newest_slot() {
        let mem = Memtable::new(Vec::new());
        let keys: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| format!("k{:05}", i * 7919 % 2000).into_bytes())
            .collect();
        for (seq, key) in keys.iter().enumerate() {
            mem.insert(key, seq as u64, Some(key));
        }
        mem.insert(b"k00001", 5000, None);
        for key in &keys {
            let slot = mem.get(key, key_hash(key)).expect("inserted");
            if key == b"k00001" {
                assert_eq!((slot.seq, slot.value), (5000, None));
            } else {
                assert_eq!(slot.value.as_deref(), Some(&key[..]));
            }
        }
        assert!(mem.get(b"absent", key_hash(b"absent")).is_none());
        let mut out = Vec::new();
        mem.chunk(
            Bound::Excluded(b"k00010"),
            Bound::Included(b"k00013"),
            10,
            &mut out,
        );
        let got: Vec<&[u8]> = out.iter().map(|e| &e.key[..]).collect();
        assert_eq!(got, [&b"k00011"[..], b"k00012", b"k00013"]);
    }
}
