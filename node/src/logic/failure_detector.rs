//! The phi-accrual failure detector (Hayashibara et al., 2004), as Cassandra and Akka use it:
//! an I/O-free state machine fed the times a member's heartbeat was seen to advance, with the
//! time passed in.
//!
//! Instead of a yes/no timeout it gives a suspicion level, phi: how unlikely it is, given the
//! intervals seen so far, that the next heartbeat is still on its way after this long.
//! `phi = -log10(P(the next interval is longer than the time since the last heartbeat))`, with
//! the intervals taken as normally distributed (mean and standard deviation of the last
//! [`WINDOW`] intervals). A member is convicted (shown down) when phi reaches the threshold:
//! [`PHI_CONVICT_THRESHOLD_DEFAULT`] = 8 is a one-in-10^8 chance of a false conviction under
//! that model.
//!
//! Two allowances keep a live node from being convicted by jitter: the standard deviation is
//! at least [`MIN_STD_DEVIATION_MS`], and [`ACCEPTABLE_PAUSE_MS`] is added to the mean (a
//! stop-the-world pause, a busy machine). Because the model learns the intervals, a node that
//! is slow but regular (heartbeats every 2 s) is not convicted, while a node gone silent is,
//! after about mean + pause + 5.6 deviations: 2.6 to 4 s with gossip every 500 ms.

use std::collections::VecDeque;

/// The suspicion level at which a member is convicted (Cassandra's `phi_convict_threshold`).
pub const PHI_CONVICT_THRESHOLD_DEFAULT: f64 = 8.0;
/// How many of the latest heartbeat intervals the model learns from.
pub const WINDOW: usize = 100;
/// The least standard deviation the model assumes, so regular arrivals do not make it
/// convict on the first late one.
pub const MIN_STD_DEVIATION_MS: f64 = 250.0;
/// Added to the mean interval: a pause this long convicts no one.
pub const ACCEPTABLE_PAUSE_MS: f64 = 1_000.0;
/// Longer intervals are not learned (Cassandra's `MAX_INTERVAL`): a partition or a pause
/// would otherwise widen the model so much that a crash soon after took minutes to convict.
pub const MAX_INTERVAL_MS: u64 = 5_000;

/// One member's heartbeat arrivals.
#[derive(Debug, Clone)]
pub struct ArrivalWindow {
    intervals: VecDeque<u64>,
    sum: u64,
    sum_squares: u128,
    last_ms: u64,
    /// Whether the member has been heard from: a heartbeat seen to advance, or its word
    /// first-hand. A member known only from others' gossip (a restarted node learning of a
    /// node that died meanwhile) is not taken as up on their word.
    heard: bool,
}

impl ArrivalWindow {
    /// A window whose first heartbeat was seen at `now_ms` (`heard`: from the member itself);
    /// until real intervals arrive, it assumes one of `expected_interval_ms` (the gossip
    /// interval).
    pub fn new(now_ms: u64, expected_interval_ms: u64, heard: bool) -> ArrivalWindow {
        let mut w = ArrivalWindow {
            intervals: VecDeque::with_capacity(WINDOW),
            sum: 0,
            sum_squares: 0,
            last_ms: now_ms,
            heard,
        };
        w.push(expected_interval_ms.max(1));
        w
    }

    /// The member's heartbeat was seen to advance at `now_ms`.
    pub fn heartbeat(&mut self, now_ms: u64) {
        self.heard = true;
        let interval = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        if interval > 0 && interval <= MAX_INTERVAL_MS {
            self.push(interval);
        }
    }

    fn push(&mut self, interval: u64) {
        if self.intervals.len() == WINDOW {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_squares -= u128::from(old) * u128::from(old);
            }
        }
        self.intervals.push_back(interval);
        self.sum += interval;
        self.sum_squares += u128::from(interval) * u128::from(interval);
    }

    /// Whether the member's liveness was seen (not only relayed).
    pub fn heard(&self) -> bool {
        self.heard
    }

    /// When the last heartbeat was seen.
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    /// The mean of the intervals learned, in ms.
    pub fn mean_ms(&self) -> f64 {
        self.sum as f64 / self.intervals.len() as f64
    }

    fn std_deviation_ms(&self) -> f64 {
        let n = self.intervals.len() as f64;
        let mean = self.mean_ms();
        let variance = (self.sum_squares as f64 / n - mean * mean).max(0.0);
        variance.sqrt().max(MIN_STD_DEVIATION_MS)
    }

    /// The time at which phi reaches `threshold` if no heartbeat comes (phi only rises with
    /// silence): a member is up before it. Found by bisection, so that checking a member is a
    /// comparison rather than a phi computation on every request.
    pub fn convicted_at(&self, threshold: f64) -> u64 {
        let (mut lo, mut hi) = (0u64, 1u64 << 40);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.phi(self.last_ms.saturating_add(mid)) >= threshold {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.last_ms.saturating_add(lo)
    }

    /// The suspicion level at `now_ms`: 0 right after a heartbeat, rising the longer none
    /// comes (capped where f64 runs out of precision, about 300).
    pub fn phi(&self, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        let mean = self.mean_ms() + ACCEPTABLE_PAUSE_MS;
        let y = (elapsed - mean) / self.std_deviation_ms();
        // P(interval > elapsed) for a normal distribution, by the logistic approximation of
        // its CDF that Akka uses (error < 1e-4 of the CDF; exact enough in the tail phi reads).
        let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
        let later = if elapsed > mean {
            e / (1.0 + e)
        } else {
            1.0 - 1.0 / (1.0 + e)
        };
        (-later.max(f64::MIN_POSITIVE).log10()).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Heartbeats every `every` ms from 0 to `until`, with a seeded jitter of up to ±`jitter`.
    fn fed(every: u64, jitter: u64, until: u64) -> (ArrivalWindow, u64) {
        let mut w = ArrivalWindow::new(0, 500, true);
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut t = 0;
        while t < until {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            t += every - jitter + rng % (2 * jitter + 1);
            w.heartbeat(t);
        }
        (w, t)
    }

    /// The first time at or after `from` (in steps of 10 ms) that phi reaches the threshold.
    fn convicted_at(w: &ArrivalWindow, from: u64) -> u64 {
        (from..)
            .step_by(10)
            .find(|&t| w.phi(t) >= PHI_CONVICT_THRESHOLD_DEFAULT)
            .unwrap()
    }

    /// Steady arrivals keep phi low, right after a heartbeat and one interval later.
    #[test]
    fn steady_arrivals_keep_phi_low() {
        let (w, last) = fed(500, 150, 60_000);
        assert!(w.phi(last) < 0.1, "{}", w.phi(last));
        assert!(w.phi(last + 500) < 1.0, "{}", w.phi(last + 500));
        assert!(w.phi(last + 1_000) < 2.0, "{}", w.phi(last + 1_000));
        assert!((w.mean_ms() - 500.0).abs() < 50.0, "{}", w.mean_ms());
    }

    /// Silence convicts, within the ≤ 5 s the defaults promise for gossip every 500 ms, and
    /// phi only rises while silence lasts.
    #[test]
    fn silence_convicts_within_five_seconds() {
        let (w, last) = fed(500, 150, 60_000);
        let at = convicted_at(&w, last);
        assert!(at - last >= 1_500, "convicted after {} ms", at - last);
        assert!(at - last <= 5_000, "convicted after {} ms", at - last);
        let phis: Vec<f64> = (0..100).map(|i| w.phi(last + i * 100)).collect();
        assert!(phis.windows(2).all(|p| p[0] <= p[1]), "{phis:?}");
    }

    /// A node slow but alive (heartbeats every 2 s) is not convicted between its heartbeats,
    /// though silence that long would convict a node heard every 500 ms.
    #[test]
    fn slow_but_alive_is_not_convicted() {
        let (slow, last) = fed(2_000, 300, 120_000);
        assert!(slow.phi(last + 2_500) < PHI_CONVICT_THRESHOLD_DEFAULT);
        assert!(convicted_at(&slow, last) - last > 4_000);
        let (fast, last) = fed(500, 0, 60_000);
        assert!(fast.phi(last + 4_000) >= PHI_CONVICT_THRESHOLD_DEFAULT);
    }

    /// A heartbeat after conviction brings phi back to 0 at once (a restarted node is up
    /// right away); the window forgets intervals older than its last WINDOW.
    #[test]
    fn a_heartbeat_clears_suspicion_and_the_window_slides() {
        let (mut w, last) = fed(500, 0, 10_000);
        assert!(w.phi(last + 10_000) >= PHI_CONVICT_THRESHOLD_DEFAULT);
        w.heartbeat(last + 10_000);
        assert!(w.phi(last + 10_000) < 0.5, "{}", w.phi(last + 10_000));
        for i in 1..=WINDOW as u64 {
            w.heartbeat(last + 10_000 + i * 300);
        }
        assert_eq!(w.intervals.len(), WINDOW);
        assert!((w.mean_ms() - 300.0).abs() < 1e-9, "{}", w.mean_ms());
    }

    /// A member heard again after a long silence is convicted as quickly as before when it
    /// goes silent again: the long gap is not learned.
    #[test]
    fn a_long_gap_is_not_learned() {
        let (mut w, last) = fed(500, 100, 30_000);
        let before = convicted_at(&w, last) - last;
        w.heartbeat(last + 600_000);
        for i in 1..=5 {
            w.heartbeat(last + 600_000 + i * 500);
        }
        let t = last + 602_500;
        let after = convicted_at(&w, t) - t;
        assert!(after <= before + 200, "{after} ms now, {before} ms before");
    }

    /// The conviction time is where phi reaches the threshold.
    #[test]
    fn convicted_at_is_where_phi_crosses() {
        let (w, last) = fed(500, 100, 20_000);
        let at = w.convicted_at(PHI_CONVICT_THRESHOLD_DEFAULT);
        assert!(at > last);
        assert!(w.phi(at) >= PHI_CONVICT_THRESHOLD_DEFAULT);
        assert!(w.phi(at - 1) < PHI_CONVICT_THRESHOLD_DEFAULT);
    }

    /// A new member has only the expected interval to go on: it is up at once and convicted
    /// by silence all the same; time going backwards is not an arrival.
    #[test]
    fn a_new_member_and_a_clock_going_back() {
        let mut w = ArrivalWindow::new(1_000, 500, true);
        assert!(w.phi(1_000) < 0.01);
        assert!(convicted_at(&w, 1_000) - 1_000 <= 5_000);
        w.heartbeat(900);
        assert_eq!(w.last_ms(), 1_000);
        assert_eq!(w.intervals.len(), 1);
        // Known only second-hand until a heartbeat is seen to advance.
        let mut w = ArrivalWindow::new(0, 500, false);
        assert!(!w.heard());
        w.heartbeat(400);
        assert!(w.heard());
    }
}
