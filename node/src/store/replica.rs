//! The replica's side: each key's siblings stored in the engine, merged on every write.
//!
//! Every write (a replica merging versions it was sent, or a coordinator creating a version)
//! goes through one writer thread. It takes all the writes waiting, merges each into what is
//! stored (or into what an earlier write of the same round left), and makes the round durable
//! with one engine batch: one WAL append and one fsync for many writes, and no read-merge-write
//! races between writes to one key, since one thread does them in order.
//!
//! At most [`WRITES_QUEUED_MAX`] writes, of at most [`WRITE_QUEUE_BYTES_MAX`] bytes in all
//! (configurable), wait for the writer; requests bringing more wait for room, so a flood of
//! writes slows its senders down and the queue's memory stays bounded. A write is counted from
//! the moment it waits until its round is durable.
//!
//! Rounds are paced by a [`SyncPacer`]: under load, writes wait a little and share the next
//! round's fsync, so a node's fsyncs per second stay bounded (many disks, cloud volumes above
//! all, throttle flushes, and a throttled disk stalls every write).
//!
//! A coordinator's write is handed back as soon as its new version is made ([`Prepared`]), so
//! the coordinator can send it to the other replicas while the round becomes durable here; the
//! dots it carries come above the [`DotLease`]'s floor, so a crash in between cannot make this
//! node hand the same dot out twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvctl::model::version::{Siblings, VersionError, SIBLINGS_MAX};
use kvctl::storage::engine::{Engine, EngineError, Options, Store, WriteBatch};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::logic::pacer::SyncPacer;
use crate::store::keyspace::{
    data_key, data_key_at, data_ranges, parse_data_key, DATA_PREFIX_BYTES,
};
use crate::store::lease::{DotLease, LeaseError};

pub use crate::logic::STORED_VERSIONS_BYTES_MAX;

/// A round is made durable once it holds this many bytes (or no write is waiting).
const ROUND_BYTES_MAX: usize = 16 << 20;
/// At most this many writes share a round.
const ROUND_WRITES_MAX: usize = 512;

/// At most this many writes wait for the writer; more wait to be queued (backpressure on the
/// requests that bring them).
pub const WRITES_QUEUED_MAX: usize = 1024;

/// Default most bytes of writes (their values and versions) waiting for the writer or in its
/// current round.
pub const WRITE_QUEUE_BYTES_MAX: usize = 64 << 20;

/// Default most durable rounds (fsyncs) a second a node's writer starts, on average.
pub const SYNC_RATE_DEFAULT: u32 = 1000;

/// Engine options for a node's replica store: the engine's key is a key's data key (see
/// [`crate::store::keyspace`]), its value the key's encoded siblings, and a round's batch holds up to
/// `ROUND_BYTES_MAX` plus one more key.
pub fn engine_options() -> Options {
    let mut options = Options::default();
    options.limits.key_bytes_max += DATA_PREFIX_BYTES;
    options.limits.value_bytes_max = STORED_VERSIONS_BYTES_MAX;
    options.limits.batch_bytes_max = ROUND_BYTES_MAX + STORED_VERSIONS_BYTES_MAX + (1 << 20);
    options
}

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    #[error("storage: {0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Version(#[from] VersionError),
    #[error("the versions of the key would take {len} bytes, over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("{0}")]
    Lease(Arc<LeaseError>),
    #[error("the replica is shutting down")]
    Closed,
}

/// Builds a coordinator's new versions from what is stored and the dot counter floor.
type Make = Box<dyn FnOnce(&Siblings, u64) -> Result<Siblings, VersionError> + Send>;
type Jobs = mpsc::Sender<Queued>;

/// A write waiting for the writer, with its bytes' place in the queue.
struct Queued {
    key: Vec<u8>,
    job: Job,
    room: OwnedSemaphorePermit,
}

enum Job {
    /// Merge versions sent by a coordinator or by read repair.
    Merge {
        incoming: Siblings,
        reply: oneshot::Sender<Result<Siblings, ReplicaError>>,
    },
    /// Build new versions from what is stored (a coordinator's write) and merge them.
    Update {
        make: Make,
        prepared: oneshot::Sender<Result<Prepared, ReplicaError>>,
    },
    /// Delete the key if its stored versions are still exactly `expected` (a tombstone past
    /// its grace period: a write since then keeps it).
    Purge {
        expected: Vec<u8>,
        done: oneshot::Sender<Result<bool, ReplicaError>>,
    },
    /// Put (or, with `None`, delete) an engine key outside the data namespace (a hint): the
    /// queued key is the engine key itself.
    Raw {
        value: Option<Vec<u8>>,
        done: oneshot::Sender<Result<(), ReplicaError>>,
    },
}

/// A coordinator's write as the writer made it: the new versions, ready to be sent to the other
/// replicas now, and this replica's copy, which is durable when `durable` says so.
pub struct Prepared {
    pub incoming: Siblings,
    pub durable: oneshot::Receiver<Result<(), ReplicaError>>,
}

/// The versions this node dropped to keep keys within [`SIBLINGS_MAX`] and
/// [`STORED_VERSIONS_BYTES_MAX`] ([`Siblings::trim`]), counted and logged.
#[derive(Debug, Default)]
pub struct Trims {
    total: AtomicU64,
    /// What was trimmed since the last log line, and when that was.
    unlogged: Mutex<(u64, Option<Instant>)>,
}

/// At most one log line about trimmed siblings per this long.
const TRIM_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Trims {
    /// Counts and logs `dropped` versions of `key` trimmed (by a merge here, or by a get this
    /// node coordinated).
    pub fn record(&self, key: &[u8], dropped: usize) {
        let dropped = dropped as u64;
        if dropped == 0 {
            return;
        }
        let total = self.total.fetch_add(dropped, Ordering::Relaxed) + dropped;
        let mut unlogged = self.unlogged.lock();
        unlogged.0 += dropped;
        let now = Instant::now();
        if unlogged
            .1
            .is_none_or(|at| now.duration_since(at) >= TRIM_LOG_INTERVAL)
        {
            eprintln!(
                "trimmed {} sibling(s) to keep key {} within {SIBLINGS_MAX} versions and \
                 {STORED_VERSIONS_BYTES_MAX} bytes: kept the newest ({total} trimmed since start); \
                 clients writing it should read it and write back with the context",
                unlogged.0,
                key[..key.len().min(64)].escape_ascii(),
            );
            *unlogged = (0, Some(now));
        }
    }

    /// Versions trimmed since the node started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

pub struct Replica {
    engine: Arc<Engine>,
    trims: Arc<Trims>,
    jobs: Mutex<Option<Jobs>>,
    /// The queue's room, in bytes.
    room: Arc<Semaphore>,
    room_max: usize,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Replica {
    /// A replica over `engine`, handing out dots under `lease`, its durable rounds paced by
    /// `pacer`, with at most `queue_bytes_max` bytes of writes waiting.
    pub fn new(
        engine: Arc<Engine>,
        mut lease: DotLease,
        mut pacer: SyncPacer,
        queue_bytes_max: usize,
    ) -> Self {
        let room_max = queue_bytes_max.clamp(1, u32::MAX as usize);
        let (tx, rx) = mpsc::channel(WRITES_QUEUED_MAX);
        let writer_engine = engine.clone();
        let trims = Arc::new(Trims::default());
        let writer_trims = trims.clone();
        let writer = std::thread::Builder::new()
            .name("kvctl-replica-writer".into())
            .spawn(move || write_rounds(&writer_engine, &writer_trims, &mut lease, &mut pacer, rx))
            .expect("the replica writer thread starts");
        Replica {
            engine,
            trims,
            jobs: Mutex::new(Some(tx)),
            room: Arc::new(Semaphore::new(room_max)),
            room_max,
            writer: Mutex::new(Some(writer)),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The versions this replica trimmed to keep keys within their limits.
    pub fn trims(&self) -> &Trims {
        &self.trims
    }

    /// The stored, encoded versions of `key`, as they are on disk.
    pub fn read_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ReplicaError> {
        Ok(self.engine.get(&data_key(key))?)
    }

    /// Every key whose token is in the ring range (after, upto] (`after == upto`: the whole
    /// ring) and its stored, encoded versions, in token order.
    pub fn scan(
        &self,
        after: u128,
        upto: u128,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), ReplicaError>> + Send + 'static {
        let engine = self.engine.clone();
        data_ranges(after, upto).into_iter().flat_map(move |range| {
            let scan: Box<dyn Iterator<Item = _> + Send> = match engine.scan(range) {
                Ok(scan) => Box::new(scan.filter_map(|entry| match entry {
                    Ok((engine_key, value)) => {
                        parse_data_key(&engine_key).map(|(_, key)| Ok((key.to_vec(), value)))
                    }
                    Err(e) => Some(Err(ReplicaError::from(e))),
                })),
                Err(e) => Box::new(std::iter::once(Err(ReplicaError::from(e)))),
            };
            scan
        })
    }

    /// The stored, encoded versions of `key` if they can be read without waiting on the disk
    /// (see [`Store::get_cached`]): `None` when the read needs [`Replica::read_raw`].
    pub fn read_raw_cached(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, ReplicaError> {
        Ok(self.engine.get_cached(&data_key(key))?)
    }

    /// [`Replica::read_raw_cached`] of a key whose token is known.
    pub fn read_raw_cached_at(
        &self,
        token: u128,
        key: &[u8],
    ) -> Result<Option<Option<Vec<u8>>>, ReplicaError> {
        Ok(self.engine.get_cached(&data_key_at(token, key))?)
    }

    /// The stored versions of `key` (empty if none).
    pub fn read(&self, key: &[u8]) -> Result<Siblings, ReplicaError> {
        read(&self.engine, key)
    }

    /// Queues `job`, which holds about `bytes`, once the queue has room for it (a job larger
    /// than the whole queue waits for an empty one).
    async fn submit(&self, key: &[u8], job: Job, bytes: usize) -> Result<(), ReplicaError> {
        let tx = self.jobs.lock().clone().ok_or(ReplicaError::Closed)?;
        let wanted = (bytes + key.len()).clamp(1, self.room_max) as u32;
        let room = self
            .room
            .clone()
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| ReplicaError::Closed)?;
        tx.send(Queued {
            key: key.to_vec(),
            job,
            room,
        })
        .await
        .map_err(|_| ReplicaError::Closed)
    }

    /// Merges `incoming` into the stored versions of `key` and makes the result durable.
    pub async fn merge_write(
        &self,
        key: &[u8],
        incoming: Siblings,
    ) -> Result<Siblings, ReplicaError> {
        let (reply, done) = oneshot::channel();
        let bytes = incoming
            .versions
            .iter()
            .map(|v| v.value.as_ref().map_or(0, Vec::len) + VERSION_OVERHEAD_BYTES)
            .sum();
        self.submit(key, Job::Merge { incoming, reply }, bytes)
            .await?;
        done.await.map_err(|_| ReplicaError::Closed)?
    }

    /// Builds new versions from what is stored for `key` with `make` (given the stored
    /// versions and the floor new dot counters must be above), merges them and makes them
    /// durable. Returns as soon as the new versions are made, before they are durable here.
    /// `value_bytes` is the size of the value `make` writes (for the queue's bound).
    pub async fn update(
        &self,
        key: &[u8],
        value_bytes: usize,
        make: impl FnOnce(&Siblings, u64) -> Result<Siblings, VersionError> + Send + 'static,
    ) -> Result<Prepared, ReplicaError> {
        let (prepared, made) = oneshot::channel();
        self.submit(
            key,
            Job::Update {
                make: Box::new(make),
                prepared,
            },
            value_bytes + VERSION_OVERHEAD_BYTES,
        )
        .await?;
        made.await.map_err(|_| ReplicaError::Closed)?
    }

    /// Puts `value` under `engine_key` (deletes it, for `None`), a key outside the data
    /// namespace (see [`crate::store::keyspace`]), durably, in the writer's next round.
    pub async fn raw_write(
        &self,
        engine_key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> Result<(), ReplicaError> {
        let (done, durable) = oneshot::channel();
        let bytes = value.as_ref().map_or(0, Vec::len);
        self.submit(&engine_key, Job::Raw { value, done }, bytes)
            .await?;
        durable.await.map_err(|_| ReplicaError::Closed)?
    }

    /// Deletes `key` if what it stores is still `expected` (encoded siblings), durably;
    /// whether it did.
    pub async fn purge(&self, key: &[u8], expected: Vec<u8>) -> Result<bool, ReplicaError> {
        let (done, purged) = oneshot::channel();
        self.submit(key, Job::Purge { expected, done }, 0).await?;
        purged.await.map_err(|_| ReplicaError::Closed)?
    }

    /// Stops taking writes and waits for the writer to finish the writes already taken.
    pub fn close(&self) {
        self.jobs.lock().take();
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.close();
    }
}

fn read(engine: &Engine, key: &[u8]) -> Result<Siblings, ReplicaError> {
    read_at(engine, &data_key(key))
}

/// The stored versions under `engine_key`, a key's data key.
fn read_at(engine: &Engine, engine_key: &[u8]) -> Result<Siblings, ReplicaError> {
    match engine.get(engine_key)? {
        Some(bytes) => Ok(Siblings::decode(&bytes)?),
        None => Ok(Siblings::default()),
    }
}

/// What a version holds besides its value, about (clock, dot, framing).
const VERSION_OVERHEAD_BYTES: usize = 256;

/// A write taken into the current round, waiting for the round to be durable.
enum Done {
    Merge(oneshot::Sender<Result<Siblings, ReplicaError>>, Siblings),
    Update(oneshot::Sender<Result<(), ReplicaError>>),
    Purge(oneshot::Sender<Result<bool, ReplicaError>>),
}

impl Done {
    fn send(self, result: &Result<(), ReplicaError>) {
        match (self, result) {
            (Done::Merge(reply, merged), Ok(())) => drop(reply.send(Ok(merged))),
            (Done::Update(durable), Ok(())) => drop(durable.send(Ok(()))),
            (Done::Merge(reply, _), Err(e)) => drop(reply.send(Err(e.clone()))),
            (Done::Update(durable), Err(e)) => drop(durable.send(Err(e.clone()))),
            (Done::Purge(done), Ok(())) => drop(done.send(Ok(true))),
            (Done::Purge(done), Err(e)) => drop(done.send(Err(e.clone()))),
        }
    }
}

fn write_rounds(
    engine: &Engine,
    trims: &Trims,
    lease: &mut DotLease,
    pacer: &mut SyncPacer,
    mut jobs: mpsc::Receiver<Queued>,
) {
    while let Some(first) = jobs.blocking_recv() {
        // Writes that come while the round waits for its turn join it.
        let wait = pacer.take(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        // This round's state of every key it wrote (by engine key), and what waits for the
        // round's fsync.
        // (`None`: the key is deleted, a purged tombstone.)
        let mut round: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        // Engine keys outside the data namespace, in the order they came.
        let mut raw = Vec::new();
        let mut waiting = Vec::new();
        // The queue's room the round's writes hold, given back once the round is durable.
        let mut rooms = Vec::new();
        let mut bytes = 0;
        let mut taken = 0;
        let mut next = Some(first);
        while let Some(Queued { key, job, room }) = next.take() {
            rooms.push(room);
            taken += 1;
            if let Job::Raw { value, done } = job {
                bytes += key.len() + value.as_ref().map_or(0, Vec::len) + 9;
                raw.push((key, value));
                waiting.push(Done::Update(done));
                if bytes < ROUND_BYTES_MAX && taken < ROUND_WRITES_MAX {
                    next = jobs.try_recv().ok();
                }
                continue;
            }
            // The engine key, made once per write (it costs the key's MD5).
            let engine_key = data_key(&key);
            if let Job::Purge { expected, done } = job {
                let current = match round.get(&engine_key) {
                    Some(v) => Ok(v.clone()),
                    None => engine.get(&engine_key).map_err(ReplicaError::from),
                };
                match current {
                    Ok(Some(stored)) if stored == expected => {
                        bytes += engine_key.len() + 9;
                        round.insert(engine_key, None);
                        waiting.push(Done::Purge(done));
                    }
                    Ok(_) => drop(done.send(Ok(false))),
                    Err(e) => drop(done.send(Err(e))),
                }
                if bytes < ROUND_BYTES_MAX && taken < ROUND_WRITES_MAX {
                    next = jobs.try_recv().ok();
                }
                continue;
            }
            let stored = match round.get(&engine_key) {
                Some(Some(encoded)) => Siblings::decode(encoded).map_err(ReplicaError::from),
                Some(None) => Ok(Siblings::default()),
                None => read_at(engine, &engine_key),
            };
            let outcome = match stored {
                Ok(stored) => apply(&key, stored, trims, lease, job),
                Err(e) => {
                    fail(job, e);
                    Err(())
                }
            };
            if let Ok((encoded, done)) = outcome {
                // Counted as the batch will count it (key, value and framing), so a round
                // never outgrows `batch_bytes_max`.
                bytes += engine_key.len() + encoded.len() + 9;
                round.insert(engine_key, Some(encoded));
                waiting.push(done);
            }
            // Failed jobs count too: a stream of them must not hold the round's fsync back.
            if bytes < ROUND_BYTES_MAX && taken < ROUND_WRITES_MAX {
                next = jobs.try_recv().ok();
            }
        }
        if round.is_empty() && raw.is_empty() {
            continue;
        }
        let mut batch = WriteBatch::new();
        for (engine_key, encoded) in round {
            match encoded {
                Some(encoded) => batch.put(engine_key, encoded),
                None => batch.delete(engine_key),
            };
        }
        for (engine_key, value) in raw {
            match value {
                Some(value) => batch.put(engine_key, value),
                None => batch.delete(engine_key),
            };
        }
        let result = engine.write(batch).map_err(ReplicaError::from);
        for done in waiting {
            done.send(&result);
        }
        drop(rooms);
    }
}

fn fail(job: Job, e: ReplicaError) {
    match job {
        Job::Merge { reply, .. } => drop(reply.send(Err(e))),
        Job::Update { prepared, .. } => drop(prepared.send(Err(e))),
        Job::Raw { done, .. } => drop(done.send(Err(e))),
        Job::Purge { done, .. } => drop(done.send(Err(e))),
    }
}

/// Merges versions another node sent into the stored ones, trimmed to the limits. Refused,
/// with nothing written: versions no node makes ([`Siblings::check_sent`]), versions that claim
/// events of this node's lease it never handed out (they would dominate its next writes), and
/// a write whose every new version the trim drops (acknowledging it would claim a write this
/// replica does not hold). Otherwise versions other replicas accepted are never refused: over
/// the limits, the newest are kept, so replicas converge.
fn merge(
    key: &[u8],
    stored: Siblings,
    incoming: Siblings,
    trims: &Trims,
    lease: &DotLease,
) -> Result<Siblings, ReplicaError> {
    incoming.check_sent(INCOMING_SIBLINGS_MAX)?;
    for v in &incoming.versions {
        let claimed = std::iter::once((&*v.dot.node, v.dot.counter))
            .chain(v.clock.iter().map(|(n, e)| (n, e.counter)));
        for (node, counter) in claimed {
            if lease.is_own(node) && counter > lease.bound() {
                return Err(ReplicaError::Version(VersionError::Implausible {
                    reason: format!(
                        "they claim write {counter} of this node ({node}), which has made none \
                         above {}",
                        lease.bound()
                    ),
                }));
            }
        }
    }
    let sent: Vec<_> = incoming.versions.iter().map(|v| v.dot.clone()).collect();
    let mut merged = stored.merge_owned(incoming);
    // The sent versions the merge keeps (a version a stored one descends from is superseded,
    // not lost); after the trim, at least one of them must still be there.
    let kept: Vec<_> = sent
        .into_iter()
        .filter(|dot| merged.versions.iter().any(|v| v.dot == *dot))
        .collect();
    let dropped = merged.trim(SIBLINGS_MAX, STORED_VERSIONS_BYTES_MAX);
    if dropped > 0
        && !kept.is_empty()
        && !kept
            .iter()
            .any(|d| merged.versions.iter().any(|v| v.dot == *d))
    {
        return Err(ReplicaError::Version(VersionError::Trimmed {
            max: SIBLINGS_MAX,
        }));
    }
    trims.record(key, dropped);
    Ok(merged)
}

/// Most versions a replica write may carry: a set over [`SIBLINGS_MAX`] is trimmed to it, one
/// this much larger is no node's and is refused unmerged (merging is quadratic in versions).
pub const INCOMING_SIBLINGS_MAX: usize = 4 * SIBLINGS_MAX;

/// Applies one job to the stored versions. A job that fails is answered here (and written
/// nowhere); one that succeeds returns the key's new encoding and waits for the round. A
/// coordinator's new versions are handed back at once, their dots covered by the lease.
fn apply(
    key: &[u8],
    stored: Siblings,
    trims: &Trims,
    lease: &mut DotLease,
    job: Job,
) -> Result<(Vec<u8>, Done), ()> {
    let check = |merged: &Siblings| -> Result<Vec<u8>, ReplicaError> {
        merged.check(SIBLINGS_MAX)?;
        let encoded = merged.encode();
        if encoded.len() > STORED_VERSIONS_BYTES_MAX {
            return Err(ReplicaError::TooLarge {
                len: encoded.len(),
                max: STORED_VERSIONS_BYTES_MAX,
            });
        }
        Ok(encoded)
    };
    match job {
        // Versions other replicas accepted are never refused: over the limits, the newest
        // are kept.
        Job::Merge { incoming, reply } => match merge(key, stored, incoming, trims, lease) {
            Ok(merged) => match check(&merged) {
                // Only a single version larger than any coordinator accepts is still over.
                Ok(encoded) => Ok((encoded, Done::Merge(reply, merged))),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Err(())
                }
            },
            Err(e) => {
                let _ = reply.send(Err(e));
                Err(())
            }
        },
        Job::Update { make, prepared } => {
            let made = make(&stored, lease.floor()).map_err(ReplicaError::from);
            let outcome = made.and_then(|incoming| {
                // A version already stored (a retried put's, sent on again) was checked when
                // it came; it may be another node's, whose counters are not this lease's.
                let new = incoming
                    .versions
                    .iter()
                    .filter(|v| !stored.versions.contains(v));
                for v in new {
                    if v.dot.seen > lease.bound() {
                        return Err(ReplicaError::Version(VersionError::BadContext {
                            reason: format!(
                                "it has seen write {} of node {}, which has made none above {}",
                                v.dot.seen,
                                v.dot.node,
                                lease.bound()
                            ),
                        }));
                    }
                    lease
                        .cover(v.dot.counter)
                        .map_err(|e| ReplicaError::Lease(Arc::new(e)))?;
                }
                let merged = stored.merge_owned(incoming.clone());
                check(&merged).map(|encoded| (encoded, incoming))
            });
            match outcome {
                Ok((encoded, incoming)) => {
                    let (durable_tx, durable) = oneshot::channel();
                    let _ = prepared.send(Ok(Prepared { incoming, durable }));
                    Ok((encoded, Done::Update(durable_tx)))
                }
                Err(e) => {
                    let _ = prepared.send(Err(e));
                    Err(())
                }
            }
        }
        // Taken by the round before it reads anything (see `write_rounds`).
        Job::Raw { done, .. } => {
            let _ = done.send(Err(ReplicaError::Closed));
            Err(())
        }
        Job::Purge { done, .. } => {
            let _ = done.send(Err(ReplicaError::Closed));
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use kvctl::model::version::{new_version_against, VClock, CLOCK_ENTRIES_MAX};
    use kvctl::storage::engine::Engine;

    use super::*;

    /// A node's engine in `dir`, with a small LMDB map for tests.
    fn open_engine(dir: &std::path::Path) -> Arc<Engine> {
        let options = Options {
            index_map_bytes: 64 << 20,
            ..engine_options()
        };
        Arc::new(Engine::open(dir, options).unwrap())
    }

    /// An unpaced replica over `engine`, with its lease at `lease`.
    fn unpaced(engine: Arc<Engine>, lease: &std::path::Path) -> Replica {
        Replica::new(
            engine,
            DotLease::open(lease).unwrap(),
            SyncPacer::new(0, 1),
            WRITE_QUEUE_BYTES_MAX,
        )
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// Forty concurrent writes without context, coordinated by one node, all survive as
    /// siblings with distinct dots (each built from what the writes before it left), durably;
    /// and merging versions sent by another node keeps everything.
    #[test]
    fn replica_concurrent_updates_all_become_siblings() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(dir.path());
        let lease = dir.path().join("dot-lease");
        let replica = Arc::new(unpaced(engine.clone(), &lease));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let writes: Vec<_> = (0..40u8)
                .map(|i| {
                    let replica = replica.clone();
                    tokio::spawn(async move {
                        let prepared = replica
                            .update(b"k", 1, move |stored, floor| {
                                let v = new_version_against(
                                    stored,
                                    &VClock::new(),
                                    "n1",
                                    floor,
                                    1,
                                    Some(vec![i]),
                                    CLOCK_ENTRIES_MAX,
                                );
                                Ok(Siblings::from(v))
                            })
                            .await?;
                        prepared.durable.await.unwrap()
                    })
                })
                .collect();
            for w in writes {
                w.await.unwrap().unwrap();
            }
            let other = new_version_against(
                &Siblings::default(),
                &VClock::new(),
                "n2",
                0,
                1,
                Some(vec![99]),
                16,
            );
            replica
                .merge_write(b"k", Siblings::from(other))
                .await
                .unwrap();
        });
        replica.close();
        let stored = replica.read(b"k").unwrap();
        assert_eq!(stored.len(), 41);
        let mut values: Vec<u8> = stored.values().map(|v| v[0]).collect();
        values.sort_unstable();
        let mut want: Vec<u8> = (0..40).collect();
        want.push(99);
        assert_eq!(values, want);
        // Refused writes answer with an error and store nothing.
        let rt = current_thread();
        let replica = unpaced(engine, &lease);
        let err = rt.block_on(replica.update(b"k", 0, |_, _| {
            Err(VersionError::BadContext {
                reason: "test".into(),
            })
        }));
        assert!(err.is_err());
        assert_eq!(replica.read(b"k").unwrap().len(), 41);
    }

    /// More writes than the queue holds at once all complete: the excess waits for room.
    #[test]
    fn replica_writes_beyond_the_queue_wait_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(&dir.path().join("data"));
        let replica = Arc::new(unpaced(engine, &dir.path().join("dot-lease")));
        let rt = current_thread();
        let n = 2 * WRITES_QUEUED_MAX + 7;
        rt.block_on(async {
            let writes: Vec<_> = (0..n)
                .map(|i| {
                    let replica = replica.clone();
                    tokio::spawn(async move {
                        let v = new_version_against(
                            &Siblings::default(),
                            &VClock::new(),
                            "n2",
                            0,
                            1,
                            Some(vec![1]),
                            CLOCK_ENTRIES_MAX,
                        );
                        let key = format!("k{i}").into_bytes();
                        replica.merge_write(&key, Siblings::from(v)).await
                    })
                })
                .collect();
            for w in writes {
                w.await.unwrap().unwrap();
            }
        });
        replica.close();
        for i in [0, n / 2, n - 1] {
            assert_eq!(replica.read(format!("k{i}").as_bytes()).unwrap().len(), 1);
        }
    }

    /// A context claiming a write of this node above its lease's bound (which it never made)
    /// is refused, so forged contexts cannot push the node's counters toward exhaustion.
    #[test]
    fn replica_refuses_a_context_claiming_writes_it_never_made() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(&dir.path().join("data"));
        let lease = dir.path().join("dot-lease");
        let replica = unpaced(engine, &lease);
        // The bound the replica's lease took (the file holds it).
        let bound: u64 = std::fs::read_to_string(&lease)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let rt = current_thread();
        let forged = new_version_against(
            &Siblings::default(),
            &VClock::new(),
            "n1",
            bound,
            1,
            None,
            CLOCK_ENTRIES_MAX,
        );
        let context = Siblings::from(forged).context();
        let result = rt.block_on(replica.update(b"k", 1, move |stored, floor| {
            Ok(Siblings::from(new_version_against(
                stored,
                &context,
                "n1",
                floor,
                2,
                Some(b"v".to_vec()),
                CLOCK_ENTRIES_MAX,
            )))
        }));
        match result {
            Err(ReplicaError::Version(VersionError::BadContext { reason })) => {
                assert!(reason.contains("has made none above"), "{reason}")
            }
            Err(other) => panic!("expected a bad context, got {other}"),
            Ok(_) => panic!("expected a bad context, got a write"),
        }
        assert!(replica.read(b"k").unwrap().is_empty());
    }

    /// The crash the lease is for: a coordinator hands out a dot, the other replicas store it,
    /// and the coordinator's own copy never becomes durable (here: its data is gone). After a
    /// restart the same write from the same state gets a different dot, so the replicas keep
    /// both writes instead of taking the second for the first.
    #[test]
    fn replica_dot_lost_in_a_crash_is_not_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let lease_path = dir.path().join("dot-lease");
        let rt = current_thread();
        let write_once = |data: &str, value: u8| {
            let replica = unpaced(open_engine(&dir.path().join(data)), &lease_path);
            let prepared = rt
                .block_on(replica.update(b"k", 1, move |stored, floor| {
                    Ok(Siblings::from(new_version_against(
                        stored,
                        &VClock::new(),
                        "n1",
                        floor,
                        1,
                        Some(vec![value]),
                        CLOCK_ENTRIES_MAX,
                    )))
                }))
                .unwrap();
            rt.block_on(prepared.durable).unwrap().unwrap();
            replica.close();
            prepared.incoming
        };
        let sent = write_once("before", 1);
        // Restarted with none of what it stored (the copy that never became durable).
        let again = write_once("after", 2);
        assert_ne!(sent.versions[0].dot, again.versions[0].dot);
        // Another replica that holds the first write keeps both.
        assert_eq!(sent.merge(&again).len(), 2);
    }

    /// A version of `node`'s `counter`-th write at `now_ms`, seen nothing else.
    fn version_of(node: &str, counter: u64, now_ms: u64) -> kvctl::model::version::Version {
        new_version_against(
            &Siblings::default(),
            &VClock::new(),
            node,
            counter - 1,
            now_ms,
            Some(vec![1]),
            CLOCK_ENTRIES_MAX,
        )
    }

    /// Versions from another node that no node makes are refused unwritten: a counter at
    /// `u64::MAX` (where new dots saturate, so it would dominate every later write), and a
    /// claim to a write of this node's own lease that it never handed out.
    #[test]
    fn replica_refuses_versions_no_node_makes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(&dir.path().join("data"));
        let lease = dir.path().join("dot-lease");
        let replica = unpaced(engine, &lease);
        let text = std::fs::read_to_string(&lease).unwrap();
        let mut words = text.split_whitespace();
        let bound: u64 = words.next().unwrap().parse().unwrap();
        let own = format!("n1#{}", words.next().unwrap());
        let rt = current_thread();
        let merge = |v| rt.block_on(replica.merge_write(b"k", Siblings::from(v)));
        let implausible = |r: Result<Siblings, ReplicaError>| match r {
            Err(ReplicaError::Version(VersionError::Implausible { reason })) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let reason = implausible(merge(version_of("n2#00", u64::MAX, 5)));
        assert!(reason.contains("counters 1"), "{reason}");
        let reason = implausible(merge(version_of(&own, bound + 1, 5)));
        assert!(reason.contains("has made none above"), "{reason}");
        assert!(replica.read(b"k").unwrap().is_empty());
        // Within the lease, and another node's at the bound: taken.
        merge(version_of(&own, bound, 5)).unwrap();
        merge(version_of("n2#00", kvctl::model::version::COUNTER_MAX, 6)).unwrap();
        assert_eq!(replica.read(b"k").unwrap().len(), 2);
    }

    /// At the sibling limit, a write whose version the trim would drop (the oldest) is refused
    /// and changes nothing, so no replica acknowledges a write it does not hold; a newer one
    /// is taken, the oldest stored version trimmed instead.
    #[test]
    fn replica_refuses_a_write_its_trim_drops() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(&dir.path().join("data"));
        let replica = unpaced(engine, &dir.path().join("dot-lease"));
        let rt = current_thread();
        let full = Siblings::from_versions(
            (1..=SIBLINGS_MAX as u64).map(|i| version_of("n2#00", i, 1_000 + i)),
        );
        rt.block_on(replica.merge_write(b"k", full.clone()))
            .unwrap();
        let old = Siblings::from(version_of("n3#00", 1, 10));
        match rt.block_on(replica.merge_write(b"k", old)) {
            Err(ReplicaError::Version(VersionError::Trimmed { max })) => {
                assert_eq!(max, SIBLINGS_MAX)
            }
            other => panic!("expected the write refused as trimmed, got {other:?}"),
        }
        assert_eq!(replica.read(b"k").unwrap(), full);
        let new = version_of("n3#00", 2, 5_000);
        let merged = rt
            .block_on(replica.merge_write(b"k", Siblings::from(new.clone())))
            .unwrap();
        assert_eq!(merged.len(), SIBLINGS_MAX);
        assert!(merged.versions.contains(&new));
        // A set that keeps some of its versions is taken (replicas converge by such merges).
        let mixed =
            Siblings::from_versions([version_of("n4#00", 1, 11), version_of("n4#00", 2, 9_000)]);
        rt.block_on(replica.merge_write(b"k", mixed)).unwrap();
    }
}
