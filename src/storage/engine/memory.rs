//! An in-memory [`Store`] for tests of the layers above the engine. It enforces the same limits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;

use super::batch::{validate_key, WriteBatch};
use super::error::{EngineError, Result};
use super::options::Limits;
use super::store::{KeyRange, Scan, Stats, Store};

#[derive(Default)]
pub struct MemStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
    limits: Limits,
    seq: AtomicU64,
    closed: AtomicBool,
}

impl MemStore {
    pub fn new(limits: Limits) -> Self {
        MemStore {
            limits,
            ..MemStore::default()
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::Closed);
        }
        Ok(())
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        validate_key(key, &self.limits)?;
        Ok(self.map.read().get(key).cloned())
    }

    fn get_cached(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        self.get(key).map(Some)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.check_open()?;
        batch.validate(&self.limits)?;
        let mut map = self.map.write();
        for op in batch.ops() {
            match &op.value {
                Some(v) => map.insert(op.key.clone(), v.clone()),
                None => map.remove(&op.key),
            };
        }
        self.seq.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn scan(&self, range: KeyRange) -> Result<Scan> {
        self.check_open()?;
        let items: Vec<_> = self
            .map
            .read()
            .range(range)
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Ok(Box::new(items.into_iter()))
    }

    fn flush(&self) -> Result<()> {
        self.check_open()
    }

    fn compact(&self) -> Result<()> {
        self.check_open()
    }

    fn stats(&self) -> Stats {
        Stats {
            last_seq: self.seq.load(Ordering::Relaxed),
            ..Stats::default()
        }
    }

    fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
