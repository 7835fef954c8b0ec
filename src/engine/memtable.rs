//! The memtable: a sorted, concurrent map of the newest version of each recently written key.
//!
//! Only the group-commit leader inserts (in sequence order); any number of readers look up and
//! iterate concurrently. A memtable is rotated at a size bound and then flushed to a table.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_skiplist::SkipMap;

use super::entry::Entry;

/// Per-entry bookkeeping bytes counted on top of key and value, so that many tiny entries still
/// rotate the memtable at a sensible size.
const ENTRY_OVERHEAD_BYTES: usize = 48;

#[derive(Debug, Clone)]
pub struct Slot {
    pub seq: u64,
    pub value: Option<Vec<u8>>,
}

pub struct Memtable {
    map: SkipMap<Vec<u8>, Slot>,
    bytes: AtomicUsize,
    max_seq: AtomicU64,
    /// WAL segments whose records live in this memtable; deleted once it is flushed.
    pub wal_segments: Vec<u64>,
}

impl Memtable {
    pub fn new(wal_segments: Vec<u64>) -> Self {
        Memtable {
            map: SkipMap::new(),
            bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            wal_segments,
        }
    }

    pub fn insert(&self, key: &[u8], seq: u64, value: Option<&[u8]>) {
        let added = key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD_BYTES;
        self.bytes.fetch_add(added, Ordering::Relaxed);
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
        self.map.insert(
            key.to_vec(),
            Slot {
                seq,
                value: value.map(<[u8]>::to_vec),
            },
        );
    }

    pub fn get(&self, key: &[u8]) -> Option<Slot> {
        self.map.get(key).map(|e| e.value().clone())
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
        let range = self.map.range::<[u8], _>((start, end));
        for e in range.take(limit) {
            let slot = e.value();
            out.push(Entry {
                key: e.key().clone(),
                seq: slot.seq,
                value: slot.value.clone(),
            });
        }
    }
}
