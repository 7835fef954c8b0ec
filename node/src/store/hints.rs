//! The hints a node holds for replicas that missed writes (hinted handoff, Cassandra style:
//! the coordinator keeps them).
//!
//! A hint is a key's versions as the coordinator wrote them, kept for one target node in the
//! hints namespace of the node's engine ([`crate::store::keyspace::hint_key`]: the target, the time,
//! a sequence number, so a target's hints are one ordered scan, oldest first). Its value is
//! the key's length (4 bytes, big-endian), the key, and the key's encoded siblings. It is
//! written through the replica writer like any write, so it is durable before the put counts
//! it. Replaying it is a replica write of those siblings: merges are idempotent, so a hint
//! delivered twice, or after the replica got the write anyway, changes nothing.
//!
//! Bounds: at most `bytes_per_target_max` bytes of hints per target (beyond it, a put that
//! needs a hint for that target is refused with [`HintError::Full`]); no hint is made for a
//! target down longer than the hint window (that node needs a repair), and a hint older than
//! the window is deleted undelivered (see [`crate::logic::handoff`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvctl::storage::engine::{Engine, EngineError, Store};
use parking_lot::Mutex;

use crate::logic::handoff::HintRef;
use crate::store::keyspace::{hint_key, hints_of, hints_range, parse_hint_key};

/// Default most bytes of hints a node holds for one target.
pub const HINTS_BYTES_PER_TARGET_MAX_DEFAULT: u64 = 1 << 30;
/// Default hint window (Cassandra's `max_hint_window`): no hints for a node down longer.
pub const MAX_HINT_WINDOW_DEFAULT: Duration = Duration::from_secs(3 * 3600);
/// Default replay rate, in bytes a second per target.
pub const HINT_REPLAY_BYTES_PER_SEC_DEFAULT: u64 = 16 << 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HintError {
    #[error(
        "this node already holds {held} bytes of hints for {target}, and {bytes} more would \
         pass the limit of {max} bytes (hints_bytes_per_target_max)"
    )]
    Full {
        target: String,
        held: u64,
        bytes: u64,
        max: u64,
    },
    #[error(
        "{target} has been down for {down_for_s} s, longer than the hint window of {window_s} s \
         (--max-hint-window): no hints are kept for it; run `kvctl repair` once it is back"
    )]
    WindowPassed {
        target: String,
        down_for_s: u64,
        window_s: u64,
    },
}

/// Hints held for one target.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub count: u64,
    pub bytes: u64,
}

/// A hint's content: the key and its encoded siblings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub key: Vec<u8>,
    pub siblings: Vec<u8>,
}

impl Hint {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.key.len() + self.siblings.len());
        out.extend_from_slice(&(self.key.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.siblings);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Hint> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let key = bytes.get(4..4 + len)?.to_vec();
        let siblings = bytes[4 + len..].to_vec();
        Some(Hint { key, siblings })
    }
}

/// A hint ready to be written: its engine key and value, its place reserved in the bound.
pub struct NewHint {
    pub target: String,
    pub engine_key: Vec<u8>,
    pub value: Vec<u8>,
}

impl NewHint {
    pub fn bytes(&self) -> u64 {
        (self.engine_key.len() + self.value.len()) as u64
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HintLimits {
    pub bytes_per_target_max: u64,
    pub window: Duration,
}

impl Default for HintLimits {
    fn default() -> Self {
        HintLimits {
            bytes_per_target_max: HINTS_BYTES_PER_TARGET_MAX_DEFAULT,
            window: MAX_HINT_WINDOW_DEFAULT,
        }
    }
}

pub struct Hints {
    engine: Arc<Engine>,
    limits: HintLimits,
    pending: Mutex<BTreeMap<String, Pending>>,
    seq: AtomicU64,
}

impl Hints {
    /// The hints stored in `engine`, counted per target (one scan of the hints namespace).
    pub fn open(engine: Arc<Engine>, limits: HintLimits) -> Result<Hints, EngineError> {
        let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
        let mut seq = 0;
        for entry in engine.scan(hints_range())? {
            let (k, v) = entry?;
            if let Some((target, _, s)) = parse_hint_key(&k) {
                let p = pending.entry(target.to_string()).or_default();
                p.count += 1;
                p.bytes += (k.len() + v.len()) as u64;
                seq = seq.max(s + 1);
            }
        }
        Ok(Hints {
            engine,
            limits,
            pending: Mutex::new(pending),
            seq: AtomicU64::new(seq),
        })
    }

    pub fn limits(&self) -> HintLimits {
        self.limits
    }

    /// A hint for `target` of `hint`, made at `now_ms` (wall clock), for a target down for
    /// `down_for` (if known): its bytes are reserved in the target's bound until
    /// [`Hints::written`] says whether it was stored.
    pub fn make(
        &self,
        target: &str,
        hint: &Hint,
        now_ms: u64,
        down_for: Option<Duration>,
    ) -> Result<NewHint, HintError> {
        if let Some(down_for) = down_for.filter(|d| *d >= self.limits.window) {
            return Err(HintError::WindowPassed {
                target: target.to_string(),
                down_for_s: down_for.as_secs(),
                window_s: self.limits.window.as_secs(),
            });
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let new = NewHint {
            target: target.to_string(),
            engine_key: hint_key(target, now_ms, seq),
            value: hint.encode(),
        };
        let mut pending = self.pending.lock();
        let p = pending.entry(target.to_string()).or_default();
        let max = self.limits.bytes_per_target_max;
        if p.bytes + new.bytes() > max {
            return Err(HintError::Full {
                target: target.to_string(),
                held: p.bytes,
                bytes: new.bytes(),
                max,
            });
        }
        p.count += 1;
        p.bytes += new.bytes();
        Ok(new)
    }

    /// Whether `hint` was stored: if not, its reservation is given back.
    pub fn written(&self, hint: &NewHint, stored: bool) {
        if !stored {
            self.forget(&hint.target, hint.bytes());
        }
    }

    /// A hint of `target` taking `bytes` was deleted.
    pub fn forget(&self, target: &str, bytes: u64) {
        let mut pending = self.pending.lock();
        if let Some(p) = pending.get_mut(target) {
            p.count = p.count.saturating_sub(1);
            p.bytes = p.bytes.saturating_sub(bytes);
            if p.count == 0 {
                pending.remove(target);
            }
        }
    }

    /// The hints held per target.
    pub fn pending(&self) -> BTreeMap<String, Pending> {
        self.pending.lock().clone()
    }

    /// How many hints this node holds in all.
    pub fn pending_total(&self) -> u64 {
        self.pending.lock().values().map(|p| p.count).sum()
    }

    /// The oldest hints of `target` (blocking: reads the engine), up to about `bytes_max`
    /// bytes (at least one), with their contents. A hint whose value does not decode is
    /// listed with no content (the replay expires it).
    pub fn oldest(
        &self,
        target: &str,
        bytes_max: u64,
    ) -> Result<Vec<(HintRef, Option<Hint>)>, EngineError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in self.engine.scan(hints_of(target))? {
            let (k, v) = entry?;
            let Some((_, created_ms, _)) = parse_hint_key(&k) else {
                continue;
            };
            let size = (k.len() + v.len()) as u64;
            let hint = Hint::decode(&v);
            out.push((
                HintRef {
                    id: k,
                    created_ms,
                    bytes: size,
                },
                hint,
            ));
            bytes += size;
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvctl::storage::engine::WriteBatch;

    fn engine(dir: &std::path::Path) -> Arc<Engine> {
        let options = kvctl::storage::engine::Options {
            index_map_bytes: 64 << 20,
            ..crate::store::replica::engine_options()
        };
        Arc::new(Engine::open(dir, options).unwrap())
    }

    fn store(hints: &Hints, new: &NewHint) {
        let mut batch = WriteBatch::new();
        batch.put(new.engine_key.clone(), new.value.clone());
        hints.engine.write(batch).unwrap();
        hints.written(new, true);
    }

    fn hint(key: &str) -> Hint {
        Hint {
            key: key.as_bytes().to_vec(),
            siblings: vec![7; 100],
        }
    }

    /// Hints are counted per target, listed oldest first with their contents, bounded per
    /// target in bytes, and counted again from the disk when the store is reopened.
    #[test]
    fn hints_are_bounded_listed_oldest_first_and_recounted() {
        let dir = tempfile::tempdir().unwrap();
        let limits = HintLimits {
            bytes_per_target_max: 1_000,
            window: Duration::from_secs(60),
        };
        let hints = Hints::open(engine(dir.path()), limits).unwrap();
        let mut made = Vec::new();
        for (i, at) in [30u64, 10, 20].into_iter().enumerate() {
            let new = hints
                .make("node-2", &hint(&format!("k{i}")), at, None)
                .unwrap();
            store(&hints, &new);
            made.push(new.bytes());
        }
        store(&hints, &hints.make("node-3", &hint("x"), 5, None).unwrap());
        let listed = hints.oldest("node-2", u64::MAX).unwrap();
        let keys: Vec<_> = listed
            .iter()
            .map(|(r, h)| (r.created_ms, h.clone().unwrap().key))
            .collect();
        assert_eq!(
            keys,
            vec![
                (10, b"k1".to_vec()),
                (20, b"k2".to_vec()),
                (30, b"k0".to_vec())
            ]
        );
        assert_eq!(hints.oldest("node-2", 1).unwrap().len(), 1);
        let held: u64 = made.iter().sum();
        assert_eq!(
            hints.pending()["node-2"],
            Pending {
                count: 3,
                bytes: held
            }
        );
        // The bound: this one would pass 1,000 bytes for node-2 (not for node-3).
        let mut full = None;
        for i in 0.. {
            match hints.make("node-2", &hint(&format!("more{i}")), 40, None) {
                Ok(new) => store(&hints, &new),
                Err(e) => {
                    full = Some(e);
                    break;
                }
            }
        }
        let full = full.unwrap();
        assert!(matches!(full, HintError::Full { max: 1_000, .. }), "{full}");
        assert!(full.to_string().contains("hints_bytes_per_target_max"));
        assert!(hints.make("node-3", &hint("y"), 40, None).is_ok());
        // A hint not stored gives its room back.
        let before = hints.pending()["node-3"];
        let lost = hints.make("node-3", &hint("z"), 41, None).unwrap();
        hints.written(&lost, false);
        assert_eq!(hints.pending()["node-3"].count, before.count);
        let total = hints.pending_total();
        let engine = hints.engine.clone();
        drop(hints);
        let reopened = Hints::open(engine, limits).unwrap();
        // node-3's second hint ("y") was made but never written: it is not on disk.
        assert_eq!(reopened.pending_total(), total - 1);
        let again = reopened.make("node-2", &hint("k"), 50, None);
        assert!(matches!(again, Err(HintError::Full { .. })));
    }

    /// No hint for a target down longer than the window; hint contents survive encoding.
    #[test]
    fn the_window_and_the_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let hints = Hints::open(engine(dir.path()), HintLimits::default()).unwrap();
        let e = hints
            .make(
                "node-2",
                &hint("k"),
                0,
                Some(MAX_HINT_WINDOW_DEFAULT + Duration::from_secs(1)),
            )
            .err()
            .unwrap();
        assert!(e.to_string().contains("--max-hint-window"), "{e}");
        assert!(hints
            .make("node-2", &hint("k"), 0, Some(Duration::from_secs(60)))
            .is_ok());
        let h = hint("key");
        assert_eq!(Hint::decode(&h.encode()), Some(h));
        assert_eq!(Hint::decode(b"\x00\x00\x00\x09ab"), None);
    }
}
