//! The replica's side: each key's siblings stored in the engine, merged on every write.
//!
//! Every write (a replica merging versions it was sent, or a coordinator creating a version)
//! goes through one writer thread. It takes all the writes waiting, merges each into what is
//! stored (or into what an earlier write of the same round left), and makes the round durable
//! with one engine batch: one WAL append and one fsync for many writes, and no read-merge-write
//! races between writes to one key, since one thread does them in order.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use kvctl::engine::{Engine, EngineError, Options, Store, WriteBatch};
use kvctl::version::{Siblings, VersionError, SIBLINGS_MAX};
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Largest encoding of one key's stored versions (all siblings with their clocks): it must fit
/// in a message, or the key could no longer be read from another replica. One 16 MiB value
/// fits; concurrent writes beyond this are refused with a clear error.
pub const STORED_VERSIONS_BYTES_MAX: usize = kvctl::proto::MESSAGE_BYTES_MAX - (512 << 10);

/// A round is made durable once it holds this many bytes (or no write is waiting).
const ROUND_BYTES_MAX: usize = 16 << 20;
/// At most this many writes share a round.
const ROUND_WRITES_MAX: usize = 512;

/// Engine options for a node's replica store: the engine's value is a key's encoded siblings,
/// and a round's batch holds up to `ROUND_BYTES_MAX` plus one more key.
pub fn engine_options() -> Options {
    let mut options = Options::default();
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
    #[error("the replica is shutting down")]
    Closed,
}

type Make = Box<dyn FnOnce(&Siblings) -> Result<Siblings, VersionError> + Send>;
type Jobs = mpsc::Sender<(Vec<u8>, Job)>;

enum Job {
    /// Merge versions sent by a coordinator or by read repair.
    Merge {
        incoming: Siblings,
        reply: oneshot::Sender<Result<Siblings, ReplicaError>>,
    },
    /// Build new versions from what is stored (a coordinator's write) and merge them.
    Update {
        make: Make,
        reply: oneshot::Sender<Result<(Siblings, Siblings), ReplicaError>>,
    },
}

pub struct Replica {
    engine: Arc<Engine>,
    jobs: Mutex<Option<Jobs>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Replica {
    pub fn new(engine: Arc<Engine>) -> Self {
        let (tx, rx) = mpsc::channel();
        let writer_engine = engine.clone();
        let writer = std::thread::Builder::new()
            .name("kvctl-replica-writer".into())
            .spawn(move || write_rounds(&writer_engine, rx))
            .expect("the replica writer thread starts");
        Replica {
            engine,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The stored, encoded versions of `key`, as they are on disk.
    pub fn read_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ReplicaError> {
        Ok(self.engine.get(key)?)
    }

    /// The stored versions of `key` (empty if none).
    pub fn read(&self, key: &[u8]) -> Result<Siblings, ReplicaError> {
        read(&self.engine, key)
    }

    fn submit(&self, key: &[u8], job: Job) -> Result<(), ReplicaError> {
        let jobs = self.jobs.lock();
        let tx = jobs.as_ref().ok_or(ReplicaError::Closed)?;
        tx.send((key.to_vec(), job))
            .map_err(|_| ReplicaError::Closed)
    }

    /// Merges `incoming` into the stored versions of `key` and makes the result durable.
    pub async fn merge_write(
        &self,
        key: &[u8],
        incoming: Siblings,
    ) -> Result<Siblings, ReplicaError> {
        let (reply, done) = oneshot::channel();
        self.submit(key, Job::Merge { incoming, reply })?;
        done.await.map_err(|_| ReplicaError::Closed)?
    }

    /// Builds new versions from what is stored for `key` with `make`, merges and makes them
    /// durable. Returns (the new versions, everything now stored).
    pub async fn update(
        &self,
        key: &[u8],
        make: impl FnOnce(&Siblings) -> Result<Siblings, VersionError> + Send + 'static,
    ) -> Result<(Siblings, Siblings), ReplicaError> {
        let (reply, done) = oneshot::channel();
        self.submit(
            key,
            Job::Update {
                make: Box::new(make),
                reply,
            },
        )?;
        done.await.map_err(|_| ReplicaError::Closed)?
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
    match engine.get(key)? {
        Some(bytes) => Ok(Siblings::decode(&bytes)?),
        None => Ok(Siblings::default()),
    }
}

/// A write taken into the current round, waiting for the round to be durable.
enum Done {
    Merge(oneshot::Sender<Result<Siblings, ReplicaError>>, Siblings),
    Update(
        oneshot::Sender<Result<(Siblings, Siblings), ReplicaError>>,
        Siblings,
        Siblings,
    ),
}

fn write_rounds(engine: &Engine, jobs: mpsc::Receiver<(Vec<u8>, Job)>) {
    while let Ok(first) = jobs.recv() {
        // This round's state of every key it wrote, and what waits for the round's fsync.
        let mut round: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut waiting = Vec::new();
        let mut bytes = 0;
        let mut taken = 0;
        let mut next = Some(first);
        while let Some((key, job)) = next.take() {
            taken += 1;
            let stored = match round.get(&key) {
                Some(encoded) => Siblings::decode(encoded).map_err(ReplicaError::from),
                None => read(engine, &key),
            };
            let outcome = match stored {
                Ok(stored) => apply(&stored, job),
                Err(e) => {
                    fail(job, e);
                    Err(())
                }
            };
            if let Ok((encoded, done)) = outcome {
                // Counted as the batch will count it (key, value and framing), so a round
                // never outgrows `batch_bytes_max`.
                bytes += key.len() + encoded.len() + 9;
                round.insert(key, encoded);
                waiting.push(done);
            }
            // Failed jobs count too: a stream of them must not hold the round's fsync back.
            if bytes < ROUND_BYTES_MAX && taken < ROUND_WRITES_MAX {
                next = jobs.try_recv().ok();
            }
        }
        if round.is_empty() {
            continue;
        }
        let mut batch = WriteBatch::new();
        for (key, encoded) in round {
            batch.put(key, encoded);
        }
        let result = engine.write(batch).map_err(ReplicaError::from);
        for done in waiting {
            match (done, &result) {
                (Done::Merge(reply, merged), Ok(())) => drop(reply.send(Ok(merged))),
                (Done::Update(reply, incoming, merged), Ok(())) => {
                    drop(reply.send(Ok((incoming, merged))))
                }
                (Done::Merge(reply, _), Err(e)) => drop(reply.send(Err(e.clone()))),
                (Done::Update(reply, _, _), Err(e)) => drop(reply.send(Err(e.clone()))),
            }
        }
    }
}

fn fail(job: Job, e: ReplicaError) {
    match job {
        Job::Merge { reply, .. } => drop(reply.send(Err(e))),
        Job::Update { reply, .. } => drop(reply.send(Err(e))),
    }
}

/// Applies one job to the stored versions. A job that fails is answered here (and written
/// nowhere); one that succeeds returns the key's new encoding and waits for the round.
fn apply(stored: &Siblings, job: Job) -> Result<(Vec<u8>, Done), ()> {
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
        Job::Merge { incoming, reply } => {
            let merged = stored.merge(&incoming);
            match check(&merged) {
                Ok(encoded) => Ok((encoded, Done::Merge(reply, merged))),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Err(())
                }
            }
        }
        Job::Update { make, reply } => {
            let made = make(stored).map_err(ReplicaError::from);
            let outcome = made.and_then(|incoming| {
                let merged = stored.merge(&incoming);
                check(&merged).map(|encoded| (encoded, incoming, merged))
            });
            match outcome {
                Ok((encoded, incoming, merged)) => {
                    Ok((encoded, Done::Update(reply, incoming, merged)))
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Err(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kvctl::engine::Engine;
    use kvctl::version::{new_version_against, VClock, CLOCK_ENTRIES_MAX};

    use super::*;

    /// Forty concurrent writes without context, coordinated by one node, all survive as
    /// siblings with distinct dots (each built from what the writes before it left), durably;
    /// and merging versions sent by another node keeps everything.
    #[test]
    fn replica_concurrent_updates_all_become_siblings() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            index_map_bytes: 64 << 20,
            ..engine_options()
        };
        let engine = Arc::new(Engine::open(dir.path(), options).unwrap());
        let replica = Arc::new(Replica::new(engine.clone()));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let writes: Vec<_> = (0..40u8)
                .map(|i| {
                    let replica = replica.clone();
                    tokio::spawn(async move {
                        replica
                            .update(b"k", move |stored| {
                                let v = new_version_against(
                                    stored,
                                    &VClock::new(),
                                    "n1",
                                    1,
                                    Some(vec![i]),
                                    CLOCK_ENTRIES_MAX,
                                );
                                Ok(Siblings::from(v))
                            })
                            .await
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let replica = Replica::new(engine);
        let err = rt.block_on(replica.update(b"k", |_| {
            Err(VersionError::BadContext {
                reason: "test".into(),
            })
        }));
        assert!(err.is_err());
        assert_eq!(replica.read(b"k").unwrap().len(), 41);
    }
}
