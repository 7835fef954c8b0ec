//! The node's log of what it refused, rate-limited: bad input repeats every gossip round, and
//! a peer sending many distinct bad entries must not flood the log either.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often one complaint (a refused gossip entry, say) is logged at most.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(60);
/// The most distinct complaints remembered for [`COMPLAINT_INTERVAL`].
const COMPLAINTS_MAX: usize = 256;

#[derive(Default)]
pub struct Complaints {
    last: HashMap<String, Instant>,
    /// Complaints not logged since the last line, because too many distinct ones came at once.
    unlogged: u64,
}

impl Complaints {
    pub fn log(&mut self, what: &str) {
        let now = Instant::now();
        if self.last.len() >= COMPLAINTS_MAX {
            self.last
                .retain(|_, at| now.duration_since(*at) < COMPLAINT_INTERVAL);
        }
        match self.last.get(what) {
            Some(at) if now.duration_since(*at) < COMPLAINT_INTERVAL => {}
            _ if self.last.len() >= COMPLAINTS_MAX => self.unlogged += 1,
            _ => {
                if self.unlogged > 0 {
                    eprintln!(
                        "refused {} more entries, not logged (over {COMPLAINTS_MAX} distinct \
                         complaints in {} s)",
                        self.unlogged,
                        COMPLAINT_INTERVAL.as_secs()
                    );
                    self.unlogged = 0;
                }
                eprintln!("refused {what}");
                self.last.insert(what.to_string(), now);
            }
        }
    }
}
