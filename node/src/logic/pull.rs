//! Pulling a range into a new layout version: a node that gains the keys of (after, upto]
//! streams them from the range's replicas in the old version and merges them into its own
//! copy with the normal version merge (nothing is overwritten). The range counts as pulled once
//! a write quorum of the old replicas has been streamed in full: every write acknowledged in
//! the old version reached a write quorum of them, so at least one of those held it.
//!
//! Progress is kept per source as the last token merged; a pull restarted from its saved
//! [`Progress`] (the node was killed mid-stream) asks each source only for what is left. A
//! source that fails is left for another; the pull fails only when too few sources are left to
//! make the quorum, saying why for each.
//!
//! I/O-free: the driver streams (`ReplicaScan`), merges, reports each chunk's last token, and
//! saves the progress.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the driver is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullAction {
    /// Stream the keys of (after, upto] from `source` and merge them here.
    Scan {
        source: String,
        after: u128,
        upto: u128,
    },
}

/// How a pull ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// A write quorum of the sources was streamed in full.
    Pulled { sources: Vec<String> },
    /// Too few sources are left: each failed one with its reason.
    Failed(Vec<(String, String)>),
}

/// A source's state, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceProgress {
    /// Streamed up to this token (inclusive) so far; `None`: nothing yet.
    At(Option<u128>),
    /// Streamed in full.
    Done,
    /// Gave up on, with why.
    Failed(String),
}

/// A pull's durable progress: enough to go on after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub after: u128,
    pub upto: u128,
    pub sources: BTreeMap<String, SourceProgress>,
}

pub struct RangePull {
    progress: Progress,
    /// Sources streamed in full needed.
    needed: usize,
    /// At most this many sources stream at once.
    parallel: usize,
    /// The sources streaming now.
    streaming: Vec<String>,
    actions: std::collections::VecDeque<PullAction>,
    outcome: Option<PullOutcome>,
}

impl RangePull {
    /// A new pull of (after, upto] from `sources` (the old replicas), done once `needed` of
    /// them are streamed in full, `parallel` at a time.
    pub fn new(
        after: u128,
        upto: u128,
        sources: &[String],
        needed: usize,
        parallel: usize,
    ) -> RangePull {
        let progress = Progress {
            after,
            upto,
            sources: sources
                .iter()
                .map(|s| (s.clone(), SourceProgress::At(None)))
                .collect(),
        };
        Self::resume(progress, needed, parallel)
    }

    /// A pull going on from saved `progress`. Sources that had failed are tried again (they
    /// may be back).
    pub fn resume(mut progress: Progress, needed: usize, parallel: usize) -> RangePull {
        for state in progress.sources.values_mut() {
            if matches!(state, SourceProgress::Failed(_)) {
                *state = SourceProgress::At(None);
            }
        }
        let mut pull = RangePull {
            progress,
            needed: needed.max(1),
            parallel: parallel.max(1),
            streaming: Vec::new(),
            actions: std::collections::VecDeque::new(),
            outcome: None,
        };
        pull.advance();
        pull
    }

    /// The progress to save (after every chunk merged, or as often as the driver likes).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn poll_action(&mut self) -> Option<PullAction> {
        self.actions.pop_front()
    }

    pub fn poll_outcome(&mut self) -> Option<PullOutcome> {
        self.outcome.take()
    }

    /// `source`'s keys up to `token` (inclusive, in the range's order) are merged here.
    pub fn on_progress(&mut self, source: &str, token: u128) {
        if let Some(state @ SourceProgress::At(_)) = self.progress.sources.get_mut(source) {
            *state = SourceProgress::At(Some(token));
        }
    }

    /// `source` streamed everything asked of it.
    pub fn on_done(&mut self, source: &str) {
        self.end(source, SourceProgress::Done);
    }

    /// `source` failed (down, refused, timed out); its progress so far is kept for a retry.
    pub fn on_failed(&mut self, source: &str, reason: String) {
        self.end(source, SourceProgress::Failed(reason));
    }

    fn end(&mut self, source: &str, state: SourceProgress) {
        let Some(at) = self.streaming.iter().position(|s| s == source) else {
            return;
        };
        self.streaming.swap_remove(at);
        self.progress.sources.insert(source.to_string(), state);
        self.advance();
    }

    fn count(&self, f: impl Fn(&SourceProgress) -> bool) -> usize {
        self.progress.sources.values().filter(|s| f(s)).count()
    }

    fn advance(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        let done = self.count(|s| *s == SourceProgress::Done);
        if done >= self.needed {
            let sources = self
                .progress
                .sources
                .iter()
                .filter(|(_, s)| **s == SourceProgress::Done)
                .map(|(id, _)| id.clone())
                .collect();
            self.outcome = Some(PullOutcome::Pulled { sources });
            return;
        }
        let left = self.count(|s| !matches!(s, SourceProgress::Failed(_)));
        if left < self.needed {
            let failures = self
                .progress
                .sources
                .iter()
                .filter_map(|(id, s)| match s {
                    SourceProgress::Failed(why) => Some((id.clone(), why.clone())),
                    _ => None,
                })
                .collect();
            self.outcome = Some(PullOutcome::Failed(failures));
            return;
        }
        // Start sources until enough stream to make the quorum with those done, `parallel`
        // at most.
        let wanted = (self.needed - done).min(self.parallel);
        let idle: Vec<(String, Option<u128>)> = self
            .progress
            .sources
            .iter()
            .filter(|(id, _)| !self.streaming.contains(id))
            .filter_map(|(id, s)| match s {
                SourceProgress::At(at) => Some((id.clone(), *at)),
                _ => None,
            })
            .collect();
        for (source, at) in idle {
            if self.streaming.len() >= wanted {
                break;
            }
            let after = at.unwrap_or(self.progress.after);
            if at.is_some() && after == self.progress.upto {
                // Everything was streamed before it could say so.
                self.progress
                    .sources
                    .insert(source.clone(), SourceProgress::Done);
                return self.advance();
            }
            self.streaming.push(source.clone());
            self.actions.push_back(PullAction::Scan {
                source,
                after,
                upto: self.progress.upto,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn actions(p: &mut RangePull) -> Vec<PullAction> {
        std::iter::from_fn(|| p.poll_action()).collect()
    }

    fn scan(source: &str, after: u128, upto: u128) -> PullAction {
        PullAction::Scan {
            source: source.into(),
            after,
            upto,
        }
    }

    #[test]
    fn a_write_quorum_of_sources_is_streamed_and_a_failed_one_replaced() {
        let mut p = RangePull::new(100, 200, &ids(&["a", "b", "c"]), 2, 2);
        assert_eq!(actions(&mut p), [scan("a", 100, 200), scan("b", 100, 200)]);
        p.on_progress("a", 150);
        p.on_failed("b", "down".into());
        // c takes b's place.
        assert_eq!(actions(&mut p), [scan("c", 100, 200)]);
        p.on_done("a");
        assert_eq!(p.poll_outcome(), None);
        p.on_done("c");
        assert_eq!(
            p.poll_outcome(),
            Some(PullOutcome::Pulled {
                sources: ids(&["a", "c"])
            })
        );
    }

    #[test]
    fn a_restart_goes_on_where_each_source_was() {
        let mut p = RangePull::new(100, 200, &ids(&["a", "b", "c"]), 2, 1);
        assert_eq!(actions(&mut p), [scan("a", 100, 200)]);
        p.on_progress("a", 170);
        let saved = p.progress().clone();
        // The node was killed: the pull resumes from what was saved.
        let mut p = RangePull::resume(saved, 2, 1);
        assert_eq!(actions(&mut p), [scan("a", 170, 200)]);
        p.on_done("a");
        assert_eq!(actions(&mut p), [scan("b", 100, 200)]);
        p.on_progress("b", 200);
        let saved = p.progress().clone();
        // b had streamed everything but not said so: it counts as done at once.
        let mut p = RangePull::resume(saved, 2, 1);
        assert_eq!(
            p.poll_outcome(),
            Some(PullOutcome::Pulled {
                sources: ids(&["a", "b"])
            })
        );
    }

    #[test]
    fn too_few_sources_left_fails_naming_each() {
        let mut p = RangePull::new(5, 1, &ids(&["a", "b", "c"]), 2, 3);
        assert_eq!(actions(&mut p).len(), 2);
        p.on_failed("a", "down".into());
        assert_eq!(actions(&mut p), [scan("c", 5, 1)]);
        p.on_failed("c", "refused".into());
        assert_eq!(
            p.poll_outcome(),
            Some(PullOutcome::Failed(vec![
                ("a".into(), "down".into()),
                ("c".into(), "refused".into())
            ]))
        );
        // Failed sources are tried again after a restart.
        let mut p = RangePull::resume(p.progress().clone(), 2, 3);
        assert_eq!(actions(&mut p).len(), 2);
    }
}
