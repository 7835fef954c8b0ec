//! The hints service: hints stored for replicas that missed a put, and their replay, as the
//! `hint-replay` worker, to the nodes they are for once those are up again (paced by the
//! I/O-free [`Replay`]); hints older than the hint window are dropped.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvctl::wire::proto::{ErrorKind, Request, Response};
use kvctl::wire::transport::{size_allowance, Transport};
use parking_lot::Mutex;
use serde_bytes::ByteBuf;

use crate::driver::{Driver, Next};
use crate::logic::handoff::{self, HintRef, Replay, ReplayAction, ReplayStats};
use crate::service::gossip::Gossip;
use crate::service::{wall_ms, Common};
use crate::store::hints::{Hint, Hints};
use crate::store::replica::Replica;

/// How often a node looks for hints to replay.
const HANDOFF_INTERVAL: Duration = Duration::from_secs(1);
/// How long a hint's delivery may take (plus time for its size).
const HINT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// About how many bytes of hints a replay reads from the store at a time.
const HINTS_LISTED_BYTES: u64 = 4 << 20;

pub struct HintService {
    common: Arc<Common>,
    gossip: Arc<Gossip>,
    replica: Arc<Replica>,
    /// Hints this node holds for others.
    hints: Arc<Hints>,
    /// Hints held because their target refused them as bad requests, by target (see
    /// [`kvctl::wire::proto::Member::hints_refused`]).
    refused: Mutex<BTreeMap<String, u64>>,
    /// Bytes a second of hints replayed to one node.
    replay_bytes_per_sec: u64,
}

/// How a hint's delivery failed.
enum Undelivered {
    /// The target refused it as a bad request: it may be older and not read it yet, so the
    /// hint is kept (and counted in `status` as refused).
    Refused(String),
    /// Any other failure (down, busy, a full disk): tried again later.
    Failed(String),
}

/// Sends a hint's write to the node it is for: acknowledged once durable there. A write the
/// target says is invalid (versions no node makes, or trimmed away there) would be refused
/// forever: it counts as delivered (and is logged), so it does not hold back the hints after
/// it.
async fn deliver_hint(
    transport: &Transport,
    addr: SocketAddr,
    hint: Hint,
) -> Result<(), Undelivered> {
    let timeout = HINT_DELIVERY_TIMEOUT + size_allowance(hint.key.len() + hint.siblings.len());
    let request = Request::ReplicaWrite {
        key: ByteBuf::from(hint.key),
        siblings: ByteBuf::from(hint.siblings),
    };
    match transport
        .request_with_timeout(addr, &request, timeout)
        .await
    {
        Ok(Response::Ack) => Ok(()),
        Ok(Response::Error {
            kind: ErrorKind::Invalid,
            message,
        }) => {
            eprintln!("a hint was refused by {addr} as invalid and is dropped: {message}");
            Ok(())
        }
        Ok(Response::Error {
            kind: ErrorKind::BadRequest,
            message,
        }) => Err(Undelivered::Refused(format!(
            "{addr} refused a hint as a bad request ({message}); the hints are kept"
        ))),
        Ok(Response::Error { message, .. }) => Err(Undelivered::Failed(message)),
        Ok(_) => Err(Undelivered::Failed("unexpected reply".to_string())),
        Err(e) => Err(Undelivered::Failed(e.to_string())),
    }
}

/// Hint deletions in flight: each says whether it succeeded.
type Deletes = tokio::task::JoinSet<Result<(), String>>;

/// Waits for every deletion in `deletes`; the first failure, if any.
async fn settle_deletes(deletes: &mut Deletes) -> Result<(), String> {
    let mut first = Ok(());
    while let Some(done) = deletes.join_next().await {
        let done = done.map_err(|e| e.to_string()).and_then(|r| r);
        if first.is_ok() {
            first = done;
        }
    }
    first
}

impl HintService {
    pub fn new(
        common: Arc<Common>,
        gossip: Arc<Gossip>,
        replica: Arc<Replica>,
        hints: Arc<Hints>,
        replay_bytes_per_sec: u64,
    ) -> HintService {
        HintService {
            common,
            gossip,
            replica,
            hints,
            refused: Mutex::new(BTreeMap::new()),
            replay_bytes_per_sec,
        }
    }

    /// Hints held for every target.
    pub fn pending_total(&self) -> u64 {
        self.hints.pending_total()
    }

    /// Hints held because their target refused them as bad requests.
    pub fn refused_total(&self) -> u64 {
        self.refused.lock().values().sum()
    }

    /// Stores a hint of `key`'s `siblings` for `target` on this node, durably.
    pub async fn store(&self, target: &str, key: &[u8], siblings: &[u8]) -> Result<(), String> {
        let down_for = self.gossip.down_for(target);
        let hint = Hint {
            key: key.to_vec(),
            siblings: siblings.to_vec(),
        };
        let new = self
            .hints
            .make(target, &hint, wall_ms(), down_for)
            .map_err(|e| e.to_string())?;
        let bytes = new.bytes();
        let stored = self
            .replica
            .raw_write(new.engine_key, Some(new.value))
            .await;
        if stored.is_err() {
            self.hints.forget(&new.target, bytes);
        }
        stored.map_err(|e| format!("storing a hint failed: {e}"))
    }

    /// Replays hints to the nodes they are for once those are up again (at most one replay
    /// at a time per node, targets in turn), and drops hints older than the hint window.
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(HANDOFF_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let worker = self.common.workers.register("hint-replay");
        loop {
            let pending = self.hints.pending_total();
            worker.idle(format!("{pending} hint(s) held"));
            interval.tick().await;
            for target in self.hints.pending().into_keys() {
                worker.busy(format!("hints for {target}"));
                let addr = self.gossip.addr_if_up(&target);
                match self.replay(&target, addr).await {
                    Ok(stats) if stats.delivered + stats.expired > 0 => {
                        worker.done(stats.delivered);
                        self.common.metrics.hints_delivered.inc_by(stats.delivered);
                        eprintln!(
                            "hints for {target}: {} delivered ({} bytes), {} expired (older \
                             than the hint window)",
                            stats.delivered, stats.delivered_bytes, stats.expired
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        worker.error(format!("{target}: {e}"), false);
                        self.common
                            .complaints
                            .lock()
                            .log(&format!("to stop replaying hints to {target} for now: {e}"))
                    }
                }
            }
        }
    }

    /// One replay of `target`'s hints, oldest first, as a [`Replay`] paces it: to `addr` if
    /// the target is up there, else only dropping what is past the hint window.
    async fn replay(&self, target: &str, addr: Option<SocketAddr>) -> Result<ReplayStats, String> {
        let refused = Arc::new(AtomicBool::new(false));
        let outcome = self.replay_once(target, addr, &refused).await;
        let mut held = self.refused.lock();
        if refused.load(Ordering::Relaxed) {
            let pending = self.hints.pending().get(target).map_or(0, |p| p.count);
            held.insert(target.to_string(), pending);
        } else if outcome.as_ref().is_ok_and(|s| s.delivered > 0)
            || !self.hints.pending().contains_key(target)
        {
            held.remove(target);
        }
        outcome
    }

    /// [`HintService::replay`], setting `refused` when the target refuses a hint as a bad
    /// request.
    async fn replay_once(
        &self,
        target: &str,
        addr: Option<SocketAddr>,
        refused: &Arc<AtomicBool>,
    ) -> Result<ReplayStats, String> {
        let window_ms = self.hints.limits().window.as_millis() as u64;
        let mut replay = Replay::new(self.replay_bytes_per_sec, window_ms, wall_ms());
        let mut contents: HashMap<Vec<u8>, Hint> = HashMap::new();
        let mut driver = Driver::new(handoff::IN_FLIGHT_MAX);
        let mut deletes = Deletes::new();
        let mut last_batch = false;
        // This replay takes the hints made before it started: a target that keeps missing
        // writes must not keep one replay going (and the other targets waiting) for ever.
        let started = wall_ms();
        loop {
            if replay.wants_more() && last_batch {
                settle_deletes(&mut deletes).await?;
                return Ok(replay.stats().clone());
            }
            if replay.wants_more() {
                // Deleted hints must be gone before the next listing, or they would go again.
                settle_deletes(&mut deletes).await?;
                let (hints, t) = (self.hints.clone(), target.to_string());
                let listed =
                    tokio::task::spawn_blocking(move || hints.oldest(&t, HINTS_LISTED_BYTES))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                if listed.is_empty() {
                    return Ok(replay.stats().clone());
                }
                let now = wall_ms();
                let mut refs = Vec::with_capacity(listed.len());
                for (hint, content) in listed {
                    // While the target is down, only hints past the window go (expired); a
                    // target's hints are oldest first, so the rest wait too.
                    let live = now.saturating_sub(hint.created_ms) < window_ms;
                    if (addr.is_none() && live) || hint.created_ms > started {
                        last_batch = true;
                        break;
                    }
                    match content {
                        Some(content) => {
                            contents.insert(hint.id.clone(), content);
                            refs.push(hint);
                        }
                        None => {
                            eprintln!("dropping an undecodable hint for {target}");
                            self.delete(&mut deletes, target, hint);
                        }
                    }
                }
                replay.on_listed(refs, now);
            }
            while let Some(action) = replay.poll_action(wall_ms()) {
                match action {
                    ReplayAction::Deliver(hint) => {
                        let (Some(addr), Some(content)) = (addr, contents.remove(&hint.id)) else {
                            replay.on_delivered(hint, Err("the target is down".into()));
                            continue;
                        };
                        let (transport, tx) = (self.common.transport.clone(), driver.sender());
                        let refused = refused.clone();
                        tokio::spawn(async move {
                            let r = deliver_hint(&transport, addr, content).await;
                            let r = r.map_err(|e| match e {
                                Undelivered::Refused(why) => {
                                    refused.store(true, Ordering::Relaxed);
                                    why
                                }
                                Undelivered::Failed(why) => why,
                            });
                            let _ = tx.send((hint, r)).await;
                        });
                    }
                    ReplayAction::Delete(hint) | ReplayAction::Expire(hint) => {
                        contents.remove(&hint.id);
                        self.delete(&mut deletes, target, hint);
                    }
                }
            }
            if let Some(failure) = replay.failure() {
                settle_deletes(&mut deletes).await?;
                return Err(failure.to_string());
            }
            if replay.wants_more() {
                continue;
            }
            // The replay's clock is the wall clock (hints are dated by it).
            let wake = replay
                .poll_timeout()
                .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(wall_ms())));
            match driver.next(wake).await {
                Next::Event((hint, r)) => replay.on_delivered(hint, r),
                Next::Timeout | Next::Closed => {}
            }
        }
    }

    /// Deletes a hint durably (as a task in `deletes`), and forgets it once it is gone.
    fn delete(&self, deletes: &mut Deletes, target: &str, hint: HintRef) {
        let (replica, hints, target) =
            (self.replica.clone(), self.hints.clone(), target.to_string());
        deletes.spawn(async move {
            replica
                .raw_write(hint.id, None)
                .await
                .map_err(|e| format!("deleting a delivered hint failed: {e}"))?;
            hints.forget(&target, hint.bytes);
            Ok(())
        });
    }
}
