//! The tombstone policy, without I/O: when a delete's tombstone may be removed.
//!
//! A tombstone must outlive every replica that still holds the value it deleted, or a repair,
//! a hint or a read repair would bring the value back. So a key is removed only when every one
//! of its versions is a tombstone older than both the grace period and the last repair that
//! brought its range in sync (less a margin for clocks: the grace, at most a minute). The
//! node's sweep (see `server.rs`) asks this policy, then removes a key only if it still holds
//! exactly what was judged.

use std::time::Duration;

use kvctl::model::version::Siblings;

/// The margin for clock differences is the grace period, at most this.
const CLOCK_MARGIN_MAX: Duration = Duration::from_secs(60);

/// When tombstones go, for a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TombstonePolicy {
    grace_ms: u64,
    margin_ms: u64,
}

impl TombstonePolicy {
    pub fn new(grace: Duration) -> TombstonePolicy {
        TombstonePolicy {
            grace_ms: grace.as_millis() as u64,
            margin_ms: grace.min(CLOCK_MARGIN_MAX).as_millis() as u64,
        }
    }

    /// How often a node sweeps: every half grace period, from 1 s to 10 min.
    pub fn sweep_interval(&self) -> Duration {
        (Duration::from_millis(self.grace_ms) / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(600))
    }

    /// The time (wall clock, ms) a tombstone of a range found in sync as of `synced_ms` must
    /// be older than to go, at `now_ms`.
    pub fn cutoff_ms(&self, now_ms: u64, synced_ms: u64) -> u64 {
        now_ms
            .saturating_sub(self.grace_ms)
            .min(synced_ms.saturating_sub(self.margin_ms))
    }

    /// Whether a key holding `siblings` may be removed at `cutoff_ms`: it holds versions, all
    /// tombstones, the newest older than the cutoff.
    pub fn removable(&self, siblings: &Siblings, cutoff_ms: u64) -> bool {
        let newest = siblings.versions.iter().map(|v| v.timestamp_ms).max();
        siblings.is_deleted() && newest.is_some_and(|t| t < cutoff_ms)
    }
}

#[cfg(test)]
mod tests {
    use kvctl::model::version::{new_version, Siblings, VClock, CLOCK_ENTRIES_MAX};

    use super::*;

    fn version(at_ms: u64, value: Option<&[u8]>) -> Siblings {
        // Each its own node's first write: concurrent with the others.
        Siblings::from(new_version(
            &VClock::new(),
            &format!("n{at_ms}#00"),
            at_ms,
            value.map(<[u8]>::to_vec),
            CLOCK_ENTRIES_MAX,
        ))
    }

    /// The cutoff is the earlier of "a grace period ago" and "the range's last repair less
    /// the clock margin"; with no repair yet (synced at 0) nothing goes.
    #[test]
    fn the_cutoff_waits_for_both_the_grace_and_a_repair() {
        let p = TombstonePolicy::new(Duration::from_secs(10));
        let now = 1_000_000;
        assert_eq!(p.cutoff_ms(now, now), now - 10_000);
        assert_eq!(p.cutoff_ms(now, 500_000), 490_000);
        assert_eq!(p.cutoff_ms(now, 0), 0);
        // The margin is the grace, at most a minute.
        let long = TombstonePolicy::new(Duration::from_secs(86_400));
        assert_eq!(long.cutoff_ms(200_000_000, 50_000_000), 50_000_000 - 60_000);
    }

    /// Only keys whose every version is a tombstone older than the cutoff go.
    #[test]
    fn only_old_tombstones_go() {
        let p = TombstonePolicy::new(Duration::from_secs(1));
        let cutoff = 5_000;
        assert!(p.removable(&version(4_999, None), cutoff));
        assert!(!p.removable(&version(5_000, None), cutoff));
        assert!(!p.removable(&version(10, Some(b"v")), cutoff));
        let mixed = version(10, None).merge(&version(20, Some(b"v")));
        assert!(!p.removable(&mixed, cutoff));
        assert!(!p.removable(&Siblings::default(), cutoff));
    }

    /// Sweeps run every half grace period, within 1 s and 10 min.
    #[test]
    fn sweeps_are_paced_by_the_grace() {
        let every = |s| TombstonePolicy::new(Duration::from_secs(s)).sweep_interval();
        assert_eq!(every(1), Duration::from_secs(1));
        assert_eq!(every(60), Duration::from_secs(30));
        assert_eq!(every(864_000), Duration::from_secs(600));
    }
}
