//! When the client SDK may try a failed request again, on another node, and how long it waits
//! between tries. No I/O: [`RetryPolicy::may_retry`] judges one failure of one operation.
//!
//! A request may be tried again only when that cannot apply it twice. A read can always be.
//! A write whose request never left (no connection, no stream) was not applied. A write that
//! may have been applied (its reply was lost, its connection closed after it went out, or the
//! coordinator reached fewer replicas than the level asked and some may hold it) is tried again
//! only when it is idempotent, which takes a write id (the SDK's default, see
//! [`crate::wire::proto::Request::Put`]). A causal context or last-write-wins does not make a put
//! idempotent here: applied twice through two coordinators, it gives two concurrent versions
//! with the same value, the duplicate siblings write ids exist to prevent.

use std::time::Duration;

use crate::wire::proto::ErrorKind;

/// What a request does, for the purpose of trying it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A get, a status: no effect on the data.
    Read,
    /// A put or a delete; `idempotent` when applying it twice gives what applying it once
    /// does.
    Write { idempotent: bool },
}

/// How one try of a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request never reached the node: no connection or stream could be opened.
    NotSent,
    /// The request was sent but its reply did not come (timeout, connection lost): the node
    /// may have applied it.
    Lost,
    /// The node answered with an error of this kind.
    Answered(ErrorKind),
}

/// The client's retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries of one request at most, the first included (1: no retries).
    pub attempts_max: u32,
    /// The wait before trying a node already tried, doubled each time, at most
    /// [`RetryPolicy::backoff_max`].
    pub backoff: Duration,
    pub backoff_max: Duration,
}

/// Tries of one request by default: the first and two more (on other nodes).
pub const ATTEMPTS_DEFAULT: u32 = 3;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: ATTEMPTS_DEFAULT,
            backoff: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// No retries: one try per request.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            attempts_max: 1,
            ..RetryPolicy::default()
        }
    }

    /// Whether `operation`, having failed with `failure` on try number `attempt` (1 for the
    /// first), may be tried again.
    pub fn may_retry(&self, operation: Operation, failure: Failure, attempt: u32) -> bool {
        if attempt >= self.attempts_max {
            return false;
        }
        let safe_if_applied = match operation {
            Operation::Read => true,
            Operation::Write { idempotent } => idempotent,
        };
        match failure {
            Failure::NotSent => true,
            Failure::Lost => safe_if_applied,
            // Too few replicas, or the node failed: another coordinator may do better (once:
            // a second refusal says the cluster, not the coordinator, is short), but some
            // replicas may hold the write already.
            Failure::Answered(ErrorKind::Unavailable | ErrorKind::Internal) => {
                safe_if_applied && attempt == 1
            }
            // The request itself is wrong, or the node too old: another node says the same.
            Failure::Answered(_) => false,
        }
    }

    /// The wait before try number `attempt` (2 for the first retry) of a node already tried
    /// `tries` times.
    pub fn backoff_before(&self, tries: u32) -> Duration {
        if tries == 0 {
            return Duration::ZERO;
        }
        let doublings = (tries - 1).min(16);
        (self.backoff * 2u32.pow(doublings)).min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads are always tried again; blind writes only when the request never left; writes
    /// with a write id (or context, LWW) whenever the failure allows it; bad requests never.
    #[test]
    fn what_may_be_retried() {
        let p = RetryPolicy::default();
        let read = Operation::Read;
        let blind = Operation::Write { idempotent: false };
        let idem = Operation::Write { idempotent: true };
        let unavailable = Failure::Answered(ErrorKind::Unavailable);
        let bad = Failure::Answered(ErrorKind::BadRequest);
        for op in [read, blind, idem] {
            assert!(p.may_retry(op, Failure::NotSent, 1));
            assert!(!p.may_retry(op, bad, 1));
            assert!(!p.may_retry(op, Failure::Answered(ErrorKind::Unsupported), 1));
        }
        assert!(p.may_retry(read, Failure::Lost, 1));
        assert!(p.may_retry(idem, Failure::Lost, 2));
        assert!(p.may_retry(idem, unavailable, 1));
        assert!(
            !p.may_retry(read, unavailable, 2),
            "refused twice: the cluster is short"
        );
        assert!(!p.may_retry(blind, Failure::Lost, 1));
        assert!(!p.may_retry(blind, unavailable, 1));
    }

    /// The budget bounds the tries; none() means one try; backoff doubles up to its cap.
    #[test]
    fn budget_and_backoff() {
        let p = RetryPolicy::default();
        assert!(p.may_retry(Operation::Read, Failure::NotSent, ATTEMPTS_DEFAULT - 1));
        assert!(!p.may_retry(Operation::Read, Failure::NotSent, ATTEMPTS_DEFAULT));
        assert!(!RetryPolicy::none().may_retry(Operation::Read, Failure::NotSent, 1));
        assert_eq!(p.backoff_before(0), Duration::ZERO);
        assert_eq!(p.backoff_before(1), Duration::from_millis(50));
        assert_eq!(p.backoff_before(3), Duration::from_millis(200));
        assert_eq!(p.backoff_before(40), Duration::from_secs(1));
    }
}
