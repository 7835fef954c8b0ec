//! Hint replay to one node come back, as an I/O-free state machine: which hint to send next,
//! when the throttle allows it, which to delete, when to stop.
//!
//! The driver lists a target's oldest hints ([`Replay::on_listed`]), carries out what
//! [`Replay::poll_action`] asks (deliver a hint as a replica write; delete a hint, or an
//! expired one, from the store) and reports each delivery's outcome. Hints go oldest first, at
//! most [`IN_FLIGHT_MAX`] at a time, paced to the rate in bytes a second; a hint is deleted
//! only once the target acknowledged it, which a replica does once the write is durable. A
//! hint older than the hint window is not delivered but expired (its key needs a repair). A
//! failed delivery stops the replay (the target may be down again): the hints stay, and the
//! next replay starts over from the oldest.

use std::collections::VecDeque;

/// Hints of one replay in flight at once.
pub const IN_FLIGHT_MAX: usize = 4;

/// A stored hint as the replay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintRef {
    /// The hint's key in the store.
    pub id: Vec<u8>,
    /// When the hint was made (ms, wall clock).
    pub created_ms: u64,
    /// Bytes it takes in the store (and on the wire, about).
    pub bytes: u64,
}

/// What a replay asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayAction {
    /// Send the hint's write to the target, and report with [`Replay::on_delivered`].
    Deliver(HintRef),
    /// The target acknowledged the hint: delete it from the store.
    Delete(HintRef),
    /// The hint outlived the hint window: delete it without delivering it.
    Expire(HintRef),
}

/// How far a replay got.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub expired: u64,
}

pub struct Replay {
    queue: VecDeque<HintRef>,
    in_flight: Vec<Vec<u8>>,
    /// Bytes a second the replay may send.
    rate_bytes_per_sec: u64,
    /// The earliest time the next delivery may start (the throttle).
    next_at_ms: u64,
    window_ms: u64,
    actions: VecDeque<ReplayAction>,
    failure: Option<String>,
    stats: ReplayStats,
}

impl Replay {
    /// A replay at `rate_bytes_per_sec` (0: unthrottled) of hints younger than `window_ms`.
    pub fn new(rate_bytes_per_sec: u64, window_ms: u64, now_ms: u64) -> Replay {
        Replay {
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            rate_bytes_per_sec,
            next_at_ms: now_ms,
            window_ms,
            actions: VecDeque::new(),
            failure: None,
            stats: ReplayStats::default(),
        }
    }

    /// The next hints of the target, oldest first (the driver lists more when
    /// [`Replay::wants_more`] says so).
    pub fn on_listed(&mut self, hints: Vec<HintRef>, now_ms: u64) {
        for hint in hints {
            if now_ms.saturating_sub(hint.created_ms) >= self.window_ms {
                self.stats.expired += 1;
                self.actions.push_back(ReplayAction::Expire(hint));
            } else {
                self.queue.push_back(hint);
            }
        }
    }

    /// Whether the replay has sent and settled everything listed (and has not failed): the
    /// driver lists the next hints, and stops when there are none.
    pub fn wants_more(&self) -> bool {
        self.failure.is_none()
            && self.queue.is_empty()
            && self.in_flight.is_empty()
            && self.actions.is_empty()
    }

    /// The next thing to do at `now_ms`, if any.
    pub fn poll_action(&mut self, now_ms: u64) -> Option<ReplayAction> {
        if let Some(action) = self.actions.pop_front() {
            return Some(action);
        }
        if self.failure.is_some()
            || self.in_flight.len() >= IN_FLIGHT_MAX
            || now_ms < self.next_at_ms
        {
            return None;
        }
        let hint = self.queue.pop_front()?;
        if let Some(pause) = hint
            .bytes
            .saturating_mul(1000)
            .checked_div(self.rate_bytes_per_sec)
        {
            self.next_at_ms = self.next_at_ms.max(now_ms).saturating_add(pause);
        }
        self.in_flight.push(hint.id.clone());
        Some(ReplayAction::Deliver(hint))
    }

    /// When to poll again for the next delivery (the throttle holds it back), if one waits.
    pub fn poll_timeout(&self) -> Option<u64> {
        let waiting = self.failure.is_none()
            && !self.queue.is_empty()
            && self.in_flight.len() < IN_FLIGHT_MAX;
        waiting.then_some(self.next_at_ms)
    }

    /// The target's answer to a delivered hint: acknowledged (durable there), or failed.
    pub fn on_delivered(&mut self, hint: HintRef, outcome: Result<(), String>) {
        let Some(at) = self.in_flight.iter().position(|id| *id == hint.id) else {
            return;
        };
        self.in_flight.swap_remove(at);
        match outcome {
            Ok(()) => {
                self.stats.delivered += 1;
                self.stats.delivered_bytes += hint.bytes;
                self.actions.push_back(ReplayAction::Delete(hint));
            }
            Err(reason) => {
                // Hints not sent yet stay stored for the next replay.
                self.queue.clear();
                self.failure.get_or_insert(reason);
            }
        }
    }

    /// Why the replay stopped early, once every delivery in flight is settled.
    pub fn failure(&self) -> Option<&str> {
        self.failure
            .as_deref()
            .filter(|_| self.in_flight.is_empty() && self.actions.is_empty())
    }

    /// Whether nothing is in flight or left to do (the replay may be dropped).
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && self.actions.is_empty() && self.queue.is_empty()
    }

    pub fn stats(&self) -> &ReplayStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(n: u8, created_ms: u64, bytes: u64) -> HintRef {
        HintRef {
            id: vec![n],
            created_ms,
            bytes,
        }
    }

    fn delivers(r: &mut Replay, now_ms: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(action) = r.poll_action(now_ms) {
            match action {
                ReplayAction::Deliver(h) => out.push(h.id[0]),
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    /// Oldest first, at most IN_FLIGHT_MAX at once; a hint is deleted only once acknowledged,
    /// and in the order acknowledgements come.
    #[test]
    fn oldest_first_bounded_deleted_after_the_ack() {
        let mut r = Replay::new(0, 10_000, 100);
        r.on_listed((1..=6).map(|n| hint(n, 90, 10)).collect(), 100);
        assert_eq!(delivers(&mut r, 100), vec![1, 2, 3, 4]);
        assert!(!r.wants_more());
        r.on_delivered(hint(2, 90, 10), Ok(()));
        assert_eq!(
            r.poll_action(100),
            Some(ReplayAction::Delete(hint(2, 90, 10)))
        );
        assert_eq!(delivers(&mut r, 100), vec![5]);
        for n in [1, 3, 4, 5] {
            r.on_delivered(hint(n, 90, 10), Ok(()));
        }
        let deleted: Vec<_> = std::iter::from_fn(|| r.poll_action(100)).collect();
        assert_eq!(deleted.len(), 5, "{deleted:?}"); // four deletes, then hint 6 goes out
        assert_eq!(deleted[4], ReplayAction::Deliver(hint(6, 90, 10)));
        r.on_delivered(hint(6, 90, 10), Ok(()));
        assert_eq!(
            r.poll_action(100),
            Some(ReplayAction::Delete(hint(6, 90, 10)))
        );
        assert!(r.wants_more() && r.is_idle());
        assert_eq!((r.stats().delivered, r.stats().delivered_bytes), (6, 60));
    }

    /// The throttle spaces deliveries by their bytes at the rate, and says when to poll.
    #[test]
    fn deliveries_are_paced_to_the_rate() {
        // 1,000 bytes a second: a 500-byte hint takes half a second of the allowance.
        let mut r = Replay::new(1_000, 60_000, 0);
        r.on_listed((1..=3).map(|n| hint(n, 0, 500)).collect(), 0);
        assert_eq!(delivers(&mut r, 0), vec![1]);
        assert_eq!(r.poll_timeout(), Some(500));
        assert_eq!(delivers(&mut r, 499), Vec::<u8>::new());
        assert_eq!(delivers(&mut r, 500), vec![2]);
        assert_eq!(r.poll_timeout(), Some(1_000));
        // Late polls do not bank allowance beyond now.
        assert_eq!(delivers(&mut r, 5_000), vec![3]);
        assert_eq!(r.poll_timeout(), None);
    }

    /// A failed delivery stops the replay: nothing more is sent, the unsent and the failed
    /// hints stay stored, and the failure is reported once in-flight deliveries settle.
    #[test]
    fn a_failure_stops_the_replay_and_keeps_the_hints() {
        let mut r = Replay::new(0, 60_000, 0);
        r.on_listed((1..=6).map(|n| hint(n, 0, 1)).collect(), 0);
        assert_eq!(delivers(&mut r, 0), vec![1, 2, 3, 4]);
        r.on_delivered(hint(1, 0, 1), Err("connection lost".into()));
        assert_eq!(r.failure(), None, "deliveries still in flight");
        r.on_delivered(hint(2, 0, 1), Ok(()));
        r.on_delivered(hint(3, 0, 1), Err("timed out".into()));
        r.on_delivered(hint(4, 0, 1), Ok(()));
        let actions: Vec<_> = std::iter::from_fn(|| r.poll_action(0)).collect();
        assert_eq!(
            actions,
            vec![
                ReplayAction::Delete(hint(2, 0, 1)),
                ReplayAction::Delete(hint(4, 0, 1))
            ]
        );
        assert_eq!(r.failure(), Some("connection lost"));
        assert!(!r.wants_more() && r.is_idle());
        // A late or unknown answer changes nothing.
        r.on_delivered(hint(9, 0, 1), Ok(()));
        assert_eq!(r.poll_action(0), None);
    }

    /// Hints older than the window are expired, not delivered.
    #[test]
    fn hints_past_the_window_expire() {
        let mut r = Replay::new(0, 1_000, 5_000);
        r.on_listed(vec![hint(1, 3_000, 1), hint(2, 4_500, 1)], 5_000);
        assert_eq!(
            r.poll_action(5_000),
            Some(ReplayAction::Expire(hint(1, 3_000, 1)))
        );
        assert_eq!(
            r.poll_action(5_000),
            Some(ReplayAction::Deliver(hint(2, 4_500, 1)))
        );
        assert_eq!(r.stats().expired, 1);
    }
}
