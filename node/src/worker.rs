//! Named background workers: every loop a node runs in the background (gossip, hint replay,
//! anti-entropy, the tombstone sweep, repairs in progress) reports under a name what it is
//! doing, how much it has done, and its errors, for `kvctl workers` (the `NodeInfo` request).
//!
//! A worker's report is a few fields behind a lock, touched once per round or item, never on
//! a request's path.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use kvctl::wire::proto::{WorkerInfo, WorkerState};

/// The most workers a node lists (repairs in progress come and go; the oldest finished ones
/// are forgotten first).
pub const WORKERS_MAX: usize = 64;

/// The workers of a node.
#[derive(Default)]
pub struct Workers {
    workers: Mutex<BTreeMap<String, Arc<Mutex<WorkerInfo>>>>,
}

/// One worker's handle: what it reports through.
#[derive(Clone)]
pub struct Worker {
    info: Arc<Mutex<WorkerInfo>>,
}

impl Workers {
    /// Registers a worker named `name` (a second registration of a name replaces the first),
    /// idle.
    pub fn register(&self, name: &str) -> Worker {
        let info = Arc::new(Mutex::new(WorkerInfo {
            name: name.to_string(),
            state: WorkerState::Idle,
            progress: String::new(),
            done: 0,
            errors: 0,
            last_error: None,
            last_error_at_ms: None,
        }));
        let mut workers = self.workers.lock();
        if workers.len() >= WORKERS_MAX && !workers.contains_key(name) {
            // Forget an idle worker, else any.
            let forget = workers
                .iter()
                .find(|(_, w)| w.lock().state != WorkerState::Busy)
                .or_else(|| workers.iter().next())
                .map(|(name, _)| name.clone());
            if let Some(forget) = forget {
                workers.remove(&forget);
            }
        }
        workers.insert(name.to_string(), info.clone());
        Worker { info }
    }

    /// Forgets the worker named `name` (a repair that ended).
    pub fn remove(&self, name: &str) {
        self.workers.lock().remove(name);
    }

    /// Every worker's report, by name.
    pub fn list(&self) -> Vec<WorkerInfo> {
        self.workers
            .lock()
            .values()
            .map(|w| w.lock().clone())
            .collect()
    }
}

impl Worker {
    /// The worker is at work on `progress` (a phrase: "range 3 of 40").
    pub fn busy(&self, progress: impl Into<String>) {
        let mut info = self.info.lock();
        info.state = WorkerState::Busy;
        info.progress = progress.into();
    }

    /// The worker waits for its next round; `progress` says how the last one went.
    pub fn idle(&self, progress: impl Into<String>) {
        let mut info = self.info.lock();
        info.state = WorkerState::Idle;
        info.progress = progress.into();
    }

    /// `n` more items done.
    pub fn done(&self, n: u64) {
        self.info.lock().done += n;
    }

    /// An error (the worker goes on); `fatal` marks the worker failed.
    pub fn error(&self, error: impl std::fmt::Display, fatal: bool) {
        let mut info = self.info.lock();
        info.errors += 1;
        info.last_error = Some(error.to_string());
        info.last_error_at_ms = Some(crate::clock::wall_ms());
        if fatal {
            info.state = WorkerState::Failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers report their state, progress, items and errors by name; the list is bounded.
    #[test]
    fn workers_report_and_stay_bounded() {
        let workers = Workers::default();
        let gossip = workers.register("gossip");
        let sweep = workers.register("tombstone-sweep");
        gossip.busy("round 3");
        gossip.done(3);
        sweep.error("disk", false);
        sweep.idle("3 removed");
        let list = workers.list();
        assert_eq!(list.len(), 2);
        let g = list.iter().find(|w| w.name == "gossip").unwrap();
        assert_eq!(
            (g.state, g.progress.as_str(), g.done),
            (WorkerState::Busy, "round 3", 3)
        );
        let s = list.iter().find(|w| w.name == "tombstone-sweep").unwrap();
        assert_eq!(s.state, WorkerState::Idle);
        assert_eq!((s.errors, s.last_error.as_deref()), (1, Some("disk")));
        assert!(s.last_error_at_ms.is_some_and(|at| at > 0));
        sweep.error("gone", true);
        assert!(workers
            .list()
            .iter()
            .any(|w| w.name == "tombstone-sweep" && w.state == WorkerState::Failed));
        for i in 0..2 * WORKERS_MAX {
            workers.register(&format!("repair-{i}"));
        }
        assert_eq!(workers.list().len(), WORKERS_MAX);
        workers.remove(&format!("repair-{}", 2 * WORKERS_MAX - 1));
        assert_eq!(workers.list().len(), WORKERS_MAX - 1);
    }
}
