//! The tombstone sweep, as the `tombstone-sweep` worker: removes the tombstones the I/O-free
//! [`TombstonePolicy`] lets go, in the ranges the repair service knows in sync.

use std::sync::Arc;

use kvctl::model::version::Siblings;

use crate::logic::tombstones::TombstonePolicy;
use crate::service::repair::RepairService;
use crate::service::{wall_ms, Common};
use crate::store::replica::Replica;

pub struct TombstoneSweep {
    common: Arc<Common>,
    repair: Arc<RepairService>,
    replica: Arc<Replica>,
    policy: TombstonePolicy,
}

impl TombstoneSweep {
    pub fn new(
        common: Arc<Common>,
        repair: Arc<RepairService>,
        replica: Arc<Replica>,
        policy: TombstonePolicy,
    ) -> TombstoneSweep {
        TombstoneSweep {
            common,
            repair,
            replica,
            policy,
        }
    }

    /// Every sweep interval, removes the keys of the repaired ranges whose versions are all
    /// tombstones past the cutoff. Before that repair, a replica that missed the delete could
    /// bring the value back; after it, every replica has the tombstone or has purged it.
    pub async fn run(self: Arc<Self>) {
        let policy = self.policy;
        let worker = self.common.workers.register("tombstone-sweep");
        worker.idle("no sweep yet");
        loop {
            tokio::time::sleep(policy.sweep_interval()).await;
            let now = wall_ms();
            let ranges = self.repair.synced();
            let mut purged = 0;
            let count = ranges.len();
            for (i, ((after, upto), since)) in ranges.into_iter().enumerate() {
                worker.busy(format!("repaired range {} of {count}", i + 1));
                let cutoff = policy.cutoff_ms(now, since);
                let replica = self.replica.clone();
                let old = tokio::task::spawn_blocking(move || {
                    let mut old = Vec::new();
                    for (key, bytes) in replica.scan(after, upto).flatten() {
                        let Ok(siblings) = Siblings::decode(&bytes) else {
                            continue;
                        };
                        if policy.removable(&siblings, cutoff) {
                            old.push((key, bytes));
                        }
                    }
                    old
                })
                .await
                .unwrap_or_default();
                for (key, bytes) in old {
                    if let Ok(true) = self.replica.purge(&key, bytes).await {
                        purged += 1;
                    }
                }
            }
            worker.done(purged);
            worker.idle(format!(
                "last sweep: {purged} tombstone(s) removed in {count} repaired range(s)"
            ));
            if purged > 0 {
                eprintln!("removed {purged} tombstone(s) past the grace period in repaired ranges");
            }
        }
    }
}
