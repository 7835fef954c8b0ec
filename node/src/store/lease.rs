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
//!
//! The lease also names the node's **incarnation**: a random 64-bit number chosen when the
//! lease file is first made. The node's dots carry it (the actor of a dot is `<id>#<incarnation>`,
//! see [`DotLease::actor`]), so a node whose directory was wiped, and which comes back under
//! the same id with a lease starting at 0, is a new actor: its dots cannot collide with those it
//! handed out before the wipe.
//!
//! File format (text): `<bound> <incarnation as 16 hex digits>\n`. A file of an earlier build
//! holds the bound alone; it is given an incarnation on open.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kvctl::model::version::COUNTER_MAX;

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
    incarnation: u64,
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
        let (floor, incarnation) = match fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|reason| LeaseError::Corrupt {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, None),
            Err(source) => return Err(LeaseError::Io { path, source }),
        };
        let incarnation = match incarnation {
            Some(i) => i,
            None => random_incarnation().map_err(|source| LeaseError::Io {
                path: path.clone(),
                source,
            })?,
        };
        let mut lease = DotLease {
            path,
            incarnation,
            floor,
            bound: floor,
        };
        lease.extend_past(floor)?;
        Ok(lease)
    }

    /// The random number naming this lease's life: kept across restarts, new after a wipe.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The name the dots of node `id` carry in this incarnation.
    pub fn actor(&self, id: &str) -> String {
        format!("{id}#{:016x}", self.incarnation)
    }

    /// Whether `actor` names this lease's incarnation (as [`DotLease::actor`] makes names):
    /// its dots are this node's, and none above [`DotLease::bound`] was ever handed out.
    pub fn is_own(&self, actor: &str) -> bool {
        let Some(at) = actor.len().checked_sub(17) else {
            return false;
        };
        actor.as_bytes()[at] == b'#'
            && actor
                .get(at + 1..)
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                == Some(self.incarnation)
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
        let text = format!("{bound} {:016x}\n", self.incarnation);
        kvctl::storage::durable_file::write(&self.path, text.as_bytes()).map_err(|source| {
            LeaseError::Io {
                path: self.path.clone(),
                source,
            }
        })?;
        self.bound = bound;
        Ok(())
    }
}

/// Reads `<bound> [<incarnation>]`.
fn parse(text: &str) -> Result<(u64, Option<u64>), String> {
    let mut fields = text.split_whitespace();
    let bound = fields.next().ok_or("the file is empty")?;
    let bound = bound
        .parse::<u64>()
        .map_err(|e| format!("{e} in {bound:?}"))?;
    let incarnation = fields
        .next()
        .map(|i| u64::from_str_radix(i, 16).map_err(|e| format!("{e} in {i:?}")))
        .transpose()?;
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?}"));
    }
    Ok((bound, incarnation))
}

fn random_incarnation() -> io::Result<u64> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| io::Error::other("no random numbers from the operating system"))?;
    Ok(u64::from_le_bytes(bytes))
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
        assert_eq!(
            again.incarnation(),
            lease.incarnation(),
            "kept across restarts"
        );
    }

    /// A wiped lease (a wiped directory) starts at 0 again, but as another actor, so its dots
    /// are new events; an earlier build's file keeps its floor and gets an incarnation.
    #[test]
    fn lease_wiped_is_a_new_incarnation_and_old_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dot-lease");
        let before = DotLease::open(&path).unwrap();
        fs::remove_file(&path).unwrap();
        let after = DotLease::open(&path).unwrap();
        assert_eq!(after.floor(), 0);
        assert_ne!(before.actor("n1"), after.actor("n1"));
        assert!(after.actor("n1").starts_with("n1#"));
        fs::write(&path, "12345\n").unwrap();
        let old = DotLease::open(&path).unwrap();
        assert_eq!(old.floor(), 12345);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{} {:016x}\n", old.bound(), old.incarnation())
        );
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
