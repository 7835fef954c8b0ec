//! One time budget per request, carried with it and shared by client, coordinator and
//! replicas.
//!
//! A client sends its request with the time it will wait (`timeout_ms` in the envelope, see
//! [`crate::wire::proto::encode_request`]). The node that receives it takes that as the request's
//! [`Deadline`], bounded by [`REQUEST_BUDGET_MAX`] (the sender is not trusted), or
//! [`REQUEST_BUDGET_DEFAULT`] if none was sent. A coordinator finishes [`REPLY_MARGIN`] of its
//! budget early, so that its answer (or its "not enough replicas", naming who did not answer)
//! reaches the caller before the caller gives up, and every request it sends on carries what
//! is left. A replica bounds its own work by the deadline it was sent.

use std::time::{Duration, Instant};

/// The budget of a request whose sender gave none (a node of release 1).
pub const REQUEST_BUDGET_DEFAULT: Duration = Duration::from_secs(5);
/// The most time a node gives a request, whatever its sender asks: what a request holds
/// (budget bytes, a stream, a task) is held at most this long.
pub const REQUEST_BUDGET_MAX: Duration = Duration::from_secs(120);
/// The least time a node gives a request: below it, nothing but an error could be returned.
pub const REQUEST_BUDGET_MIN: Duration = Duration::from_millis(10);
/// The part of its budget a coordinator keeps for its reply to travel back: a tenth, at most
/// [`REPLY_MARGIN_MAX`].
pub const REPLY_MARGIN: u32 = 10;
pub const REPLY_MARGIN_MAX: Duration = Duration::from_millis(500);

/// When a request must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from `start`.
    pub fn after(start: Instant, budget: Duration) -> Deadline {
        Deadline {
            at: start + budget,
            budget,
        }
    }

    /// The deadline of a request received at `start` whose sender asked for `asked`: bounded
    /// to [`REQUEST_BUDGET_MIN`]..=[`REQUEST_BUDGET_MAX`], [`REQUEST_BUDGET_DEFAULT`] if none.
    pub fn received(start: Instant, asked: Option<Duration>) -> Deadline {
        let budget = asked
            .unwrap_or(REQUEST_BUDGET_DEFAULT)
            .clamp(REQUEST_BUDGET_MIN, REQUEST_BUDGET_MAX);
        Deadline::after(start, budget)
    }

    /// The deadline a coordinator works to: earlier by the reply's margin.
    pub fn for_coordinator(self) -> Deadline {
        let margin = (self.budget / REPLY_MARGIN).min(REPLY_MARGIN_MAX);
        Deadline {
            at: self.at - margin,
            budget: self.budget - margin,
        }
    }

    /// The instant it passes.
    pub fn at(self) -> Instant {
        self.at
    }

    /// The whole budget it was made with.
    pub fn budget(self) -> Duration {
        self.budget
    }

    /// The time left at `now` (zero once passed).
    pub fn remaining_at(self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// The time left now.
    pub fn remaining(self) -> Duration {
        self.remaining_at(Instant::now())
    }

    pub fn passed(self) -> bool {
        self.remaining().is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sender asks is bounded; none gets the default; a coordinator keeps a margin.
    #[test]
    fn budgets_are_bounded_and_shared() {
        let t = Instant::now();
        assert_eq!(Deadline::received(t, None).budget(), REQUEST_BUDGET_DEFAULT);
        let huge = Deadline::received(t, Some(Duration::from_secs(86_400)));
        assert_eq!(huge.budget(), REQUEST_BUDGET_MAX);
        assert_eq!(
            Deadline::received(t, Some(Duration::ZERO)).budget(),
            REQUEST_BUDGET_MIN
        );
        let d = Deadline::received(t, Some(Duration::from_secs(2)));
        let c = d.for_coordinator();
        assert_eq!(c.budget(), Duration::from_millis(1800));
        assert_eq!(c.at(), t + Duration::from_millis(1800));
        assert_eq!(
            huge.for_coordinator().budget(),
            REQUEST_BUDGET_MAX - REPLY_MARGIN_MAX
        );
        assert_eq!(
            d.remaining_at(t + Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(d.remaining_at(t + Duration::from_secs(3)), Duration::ZERO);
    }
}
