//! Pacing the replica writer's fsyncs with a token bucket, without I/O (time is passed in).
//!
//! Many disks, cloud volumes above all, throttle flushes: past some rate every write stalls for
//! tens of milliseconds. The pacer keeps a node's durable rounds (one fsync each) under
//! `rate` per second on average while letting up to `burst` rounds go back to back, so a lightly
//! loaded node never waits, and under load the writes that arrive while a round waits for its
//! token share its fsync.

use std::time::{Duration, Instant};

/// Rounds that may go back to back after a quiet spell.
pub const SYNC_BURST: u32 = 4;

#[derive(Debug)]
pub struct SyncPacer {
    /// Time between tokens; zero means no pacing.
    every: Duration,
    burst: u32,
    /// When the bucket would be full again: tokens are `burst - (full_at - now) / every`.
    full_at: Option<Instant>,
}

impl SyncPacer {
    /// At most `rate` rounds per second on average (0: unpaced), `burst` back to back.
    pub fn new(rate: u32, burst: u32) -> Self {
        let every = if rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1) / rate
        };
        SyncPacer {
            every,
            burst: burst.max(1),
            full_at: None,
        }
    }

    /// Takes a token for a round that wants to start at `now`: returns how long it must wait.
    pub fn take(&mut self, now: Instant) -> Duration {
        if self.every.is_zero() {
            return Duration::ZERO;
        }
        let window = self.every * self.burst;
        // The bucket cannot be fuller than full: a quiet spell banks at most `burst` tokens.
        let full_at = self.full_at.map_or(now, |t| t.max(now));
        let start = (full_at + self.every)
            .checked_sub(window)
            .map_or(now, |t| t.max(now));
        self.full_at = Some(full_at + self.every);
        start - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pacer_lets_a_burst_through_then_spaces_rounds_at_the_rate() {
        let t0 = Instant::now();
        let mut p = SyncPacer::new(1000, 3);
        // Three back to back, then one per millisecond.
        assert_eq!(p.take(t0), Duration::ZERO);
        assert_eq!(p.take(t0), Duration::ZERO);
        assert_eq!(p.take(t0), Duration::ZERO);
        assert_eq!(p.take(t0), ms(1));
        assert_eq!(p.take(t0 + ms(1)), ms(1));
        // A quiet spell refills the bucket, but only up to the burst.
        let later = t0 + ms(100);
        for _ in 0..3 {
            assert_eq!(p.take(later), Duration::ZERO);
        }
        assert_eq!(p.take(later), ms(1));
    }

    #[test]
    fn pacer_keeps_the_average_rate_under_steady_demand() {
        let t0 = Instant::now();
        let mut p = SyncPacer::new(500, 4);
        let mut now = t0;
        for _ in 0..1000 {
            now += p.take(now);
        }
        // 1000 rounds at 500 a second, less the burst banked at the start.
        assert_eq!(now - t0, ms(2) * (1000 - 4));
    }

    #[test]
    fn pacer_with_rate_zero_never_waits() {
        let mut p = SyncPacer::new(0, 4);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(p.take(now), Duration::ZERO);
        }
    }
}
