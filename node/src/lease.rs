//! The dot lease: a durable bound above every dot counter this node has handed out.
//!
//! A coordinator sends a new version to the other replicas while it makes its own copy
//! durable. If it crashes in between, the other replicas may hold a dot `A:n` that A itself no
//! longer stores, and A, counting from what it stores, would hand out `A:n` again, to a
//! different write: replicas would take the two writes for one and keep only one of them.
//!
//! So counters come from a lease, like Riak's vnode counter leases. The lease file holds a bound
//! `B`; every counter this node hands out is at most `B`. On start the node takes the old bound
//! as its floor (every new counter is above it, so above anything handed out before the crash)
//! and writes a new bound `B + LEASE_STEP` before it serves. A counter that would pass the
//! bound moves it first (one small fsync). While it runs, the floor also rises with every
//! counter handed out, so a write whose round failed (its version already sent out) cannot
//! lend its dot to a later write either.
//!
//! A context may not claim to have seen a counter of this node above the bound: this node never
//! handed it out, and honouring it would push the node's counters toward [`COUNTER_MAX`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kvctl::version::COUNTER_MAX;

/// How far one lease reaches past the floor. Counters of a key grow by one per write, so a
/// lease is extended only after about four billion writes to one key since the node started;
/// and a node can restart about a billion times before counters reach [`COUNTER_MAX`].
pub const LEASE_STEP: u64 = 1 << 32;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    #[error("dot lease {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("dot lease {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("dot counters are exhausted (a counter would pass {COUNTER_MAX})")]
    Exhausted,
}

#[derive(Debug)]
pub struct DotLease {
    path: PathBuf,
    /// Every counter handed out, before this start or since, is at most this.
    floor: u64,
    bound: u64,
}

impl DotLease {
    /// Reads the lease at `path` (none yet: floor 0) and durably takes a new one above it (up
    /// to [`COUNTER_MAX`]: a node whose counters are exhausted still starts, and refuses to
    /// coordinate writes with [`LeaseError::Exhausted`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LeaseError> {
        let path = path.as_ref().to_path_buf();
        let floor = match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|e| LeaseError::Corrupt {
                    path: path.clone(),
                    reason: format!("{e} in {:?}", text.trim()),
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(source) => return Err(LeaseError::Io { path, source }),
        };
        let mut lease = DotLease {
            path,
            floor,
            bound: floor,
        };
        lease.extend_past(floor)?;
        Ok(lease)
    }

    /// New counters must be above this: every counter handed out so far is at most it.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// No counter above this was ever handed out.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Records that `counter` is handed out, moving the bound (durably) first if it must.
    pub fn cover(&mut self, counter: u64) -> Result<(), LeaseError> {
        if counter > COUNTER_MAX {
            return Err(LeaseError::Exhausted);
        }
        if counter > self.bound {
            self.extend_past(counter)?;
        }
        self.floor = self.floor.max(counter);
        Ok(())
    }

    fn extend_past(&mut self, counter: u64) -> Result<(), LeaseError> {
        let bound = counter.saturating_add(LEASE_STEP).min(COUNTER_MAX);
        kvctl::durable_file::write(&self.path, format!("{bound}\n").as_bytes()).map_err(
            |source| LeaseError::Io {
                path: self.path.clone(),
                source,
            },
        )?;
        self.bound = bound;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_floor_rises_past_everything_covered_before_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dot-lease");
        let mut lease = DotLease::open(&path).unwrap();
        assert_eq!(lease.floor(), 0);
        lease.cover(7).unwrap();
        assert_eq!(lease.floor(), 7, "the floor follows what is handed out");
        lease.cover(3).unwrap();
        assert_eq!(lease.floor(), 7);
        lease.cover(LEASE_STEP + 5).unwrap();
        assert!(lease.bound() >= LEASE_STEP + 5);
        drop(lease);
        // A restart (or a crash: every cover was durable before it returned).
        let lease = DotLease::open(&path).unwrap();
        assert!(lease.floor() >= LEASE_STEP + 5);
        let again = DotLease::open(&path).unwrap();
        assert!(again.floor() > lease.floor());
    }

    #[test]
    fn lease_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dot-lease");
        fs::write(&path, "twelve").unwrap();
        let err = DotLease::open(&path).unwrap_err();
        assert!(matches!(err, LeaseError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("dot-lease"), "{err}");
        // Exhausted counters: the node still starts, and refuses to hand out more.
        fs::write(&path, format!("{}", COUNTER_MAX)).unwrap();
        let mut lease = DotLease::open(&path).unwrap();
        assert!(matches!(
            lease.cover(lease.floor() + 1).unwrap_err(),
            LeaseError::Exhausted
        ));
        assert_eq!(lease.bound(), COUNTER_MAX);
    }
}
