//! The replica's side: each key's siblings stored in the engine, merged on every write.

use std::sync::Arc;

use kvctl::engine::{Engine, EngineError, Options, Store};
use kvctl::version::{Siblings, VersionError};
use parking_lot::Mutex;

/// Largest encoding of one key's stored versions (all siblings with their clocks): it must fit
/// in a message, or the key could no longer be read from another replica. One 16 MiB value
/// fits; concurrent writes beyond this are refused with a clear error.
pub const STORED_VERSIONS_BYTES_MAX: usize = kvctl::proto::MESSAGE_BYTES_MAX - (512 << 10);

/// Engine options for a node's replica store: the engine's value is a key's encoded siblings.
pub fn engine_options() -> Options {
    let mut options = Options::default();
    options.limits.value_bytes_max = STORED_VERSIONS_BYTES_MAX;
    options.limits.batch_bytes_max = STORED_VERSIONS_BYTES_MAX + (1 << 20);
    options
}

/// Read-merge-write of one key is serialized by one of these locks (chosen by key hash), so two
/// concurrent writes to a key cannot lose each other's versions.
const KEY_LOCKS: usize = 256;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    #[error("storage: {0}")]
    Engine(#[from] EngineError),
    #[error("stored versions of the key are unreadable: {0}")]
    Version(#[from] VersionError),
}

pub struct Replica {
    engine: Arc<Engine>,
    locks: Vec<Mutex<()>>,
}

impl Replica {
    pub fn new(engine: Arc<Engine>) -> Self {
        Replica {
            engine,
            locks: (0..KEY_LOCKS).map(|_| Mutex::new(())).collect(),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn lock(&self, key: &[u8]) -> parking_lot::MutexGuard<'_, ()> {
        let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        self.locks[(h % KEY_LOCKS as u64) as usize].lock()
    }

    /// The stored, encoded versions of `key`, as they are on disk.
    pub fn read_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ReplicaError> {
        Ok(self.engine.get(key)?)
    }

    /// The stored versions of `key` (empty if none).
    pub fn read(&self, key: &[u8]) -> Result<Siblings, ReplicaError> {
        match self.engine.get(key)? {
            Some(bytes) => Ok(Siblings::decode(&bytes)?),
            None => Ok(Siblings::default()),
        }
    }

    /// Merges `incoming` into the stored versions of `key` and makes the result durable.
    /// `check` sees the merged siblings before they are written and may refuse them.
    pub fn merge_write(
        &self,
        key: &[u8],
        incoming: &Siblings,
        check: impl FnOnce(&Siblings) -> Result<(), VersionError>,
    ) -> Result<Siblings, ReplicaError> {
        let _guard = self.lock(key);
        let merged = self.read(key)?.merge(incoming);
        check(&merged)?;
        self.engine.put(key, &merged.encode())?;
        Ok(merged)
    }

    /// Like [`Replica::merge_write`], but builds the incoming versions from what is stored, under
    /// the key's lock (the coordinator's new version must see every local version).
    pub fn update(
        &self,
        key: &[u8],
        make: impl FnOnce(&Siblings) -> Result<Siblings, VersionError>,
    ) -> Result<(Siblings, Siblings), ReplicaError> {
        let _guard = self.lock(key);
        let stored = self.read(key)?;
        let incoming = make(&stored)?;
        let merged = stored.merge(&incoming);
        merged.check(kvctl::version::SIBLINGS_MAX)?;
        self.engine.put(key, &merged.encode())?;
        Ok((incoming, merged))
    }
}
