//! One versioned entry as the engine stores it internally.

/// A key's version: `value: None` is a tombstone. `seq` orders versions of the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub seq: u64,
    pub value: Option<Vec<u8>>,
}
