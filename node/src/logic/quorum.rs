//! Counting replica replies toward a consistency level, without I/O.

use std::fmt;

use kvctl::wire::proto::Consistency;

/// A level that could not be met: how many replies were needed, how many came, and why the
/// others did not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "consistency {level} needs {needed} of {replicas} replicas, reached {reached}{}",
    Failures(failures)
)]
pub struct QuorumNotReached {
    pub level: Consistency,
    pub needed: usize,
    pub replicas: usize,
    pub reached: usize,
    /// (node id, reason) for every replica that failed.
    pub failures: Vec<(String, String)>,
}

struct Failures<'a>(&'a [(String, String)]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (node, reason)) in self.0.iter().enumerate() {
            write!(f, "{}{node}: {reason}", if i == 0 { "; " } else { ", " })?;
        }
        Ok(())
    }
}

/// Replies toward a level, out of the replicas asked.
#[derive(Debug)]
pub struct Quorum {
    level: Consistency,
    needed: usize,
    replicas: usize,
    ok: usize,
    failures: Vec<(String, String)>,
}

impl Quorum {
    pub fn new(level: Consistency, replicas: usize) -> Self {
        Quorum {
            level,
            needed: level.required(replicas),
            replicas,
            ok: 0,
            failures: Vec::new(),
        }
    }

    pub fn ok(&mut self) {
        self.ok += 1;
    }

    pub fn fail(&mut self, node: &str, reason: impl Into<String>) {
        self.failures.push((node.to_string(), reason.into()));
    }

    pub fn reached(&self) -> bool {
        self.needed > 0 && self.ok >= self.needed
    }

    /// True when even if every outstanding replica answered, the level could not be met.
    pub fn impossible(&self) -> bool {
        self.replicas - self.failures.len() < self.needed || self.needed == 0
    }

    pub fn outstanding(&self) -> usize {
        self.replicas - self.ok - self.failures.len()
    }

    /// Replies still needed to reach the level.
    pub fn missing(&self) -> usize {
        self.needed.saturating_sub(self.ok)
    }

    pub fn failures(&self) -> usize {
        self.failures.len()
    }

    pub fn error(&self) -> QuorumNotReached {
        QuorumNotReached {
            level: self.level,
            needed: self.needed,
            replicas: self.replicas,
            reached: self.ok,
            failures: self.failures.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QUORUM of 3 is met by 2 replies, made impossible by 2 failures, and the error says
    /// needed versus reached and why.
    #[test]
    fn quorum_counts_and_explains() {
        let mut q = Quorum::new(Consistency::Quorum, 3);
        q.ok();
        assert!(!q.reached() && !q.impossible());
        q.ok();
        assert!(q.reached());

        let mut q = Quorum::new(Consistency::All, 3);
        q.ok();
        q.fail("node-3", "down");
        assert!(q.impossible());
        let text = q.error().to_string();
        assert_eq!(
            text,
            "consistency ALL needs 3 of 3 replicas, reached 1; node-3: down"
        );
    }
}
