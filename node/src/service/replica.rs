//! The replica service: this node's copies of its keys, read and written for the coordinators
//! of gets and puts (this node's or another's), over the [`Replica`] store and its writer.

use std::sync::Arc;

use kvctl::model::ring::token_of;
use kvctl::model::version::{Siblings, SIBLINGS_FORMAT, SIBLINGS_FORMAT_WRITE_IDS};
use kvctl::storage::engine::{EngineError, Limits};
use kvctl::wire::budget::RequestBudget;
use kvctl::wire::deadline::Deadline;
use kvctl::wire::proto::{ErrorKind, Response};
use serde_bytes::ByteBuf;

use crate::admission;
use crate::logic::coordinator::ReadFailure;
use crate::service::error;
use crate::store::replica::{Replica, ReplicaError};

/// The formats of encoded siblings this build reads.
const SIBLINGS_FORMATS: [u8; 2] = [SIBLINGS_FORMAT, SIBLINGS_FORMAT_WRITE_IDS];

pub struct ReplicaService {
    replica: Arc<Replica>,
    limits: Limits,
    /// Engine reads running ([`admission::ENGINE_READS_MAX`]).
    reads: tokio::sync::Semaphore,
}

/// A key's versions from its stored bytes (none if nothing is stored).
fn decode_stored(stored: Option<Vec<u8>>) -> Result<Siblings, ReadFailure> {
    match stored {
        None => Ok(Siblings::default()),
        Some(bytes) => Siblings::decode(&bytes).map_err(|e| ReadFailure::Failed(e.to_string())),
    }
}

/// A refused write (too many siblings, too large, a bad context) is the request's fault; a
/// full disk is a state that passes (retry later); any other storage failure is the node's.
pub fn replica_error(e: ReplicaError) -> Response {
    match e {
        ReplicaError::Version(_) | ReplicaError::TooLarge { .. } => error(ErrorKind::BadRequest, e),
        ReplicaError::Engine(EngineError::WalFull { .. }) => error(ErrorKind::Unavailable, e),
        e => error(ErrorKind::Internal, e),
    }
}

impl ReplicaService {
    pub fn new(replica: Arc<Replica>, limits: Limits) -> ReplicaService {
        ReplicaService {
            replica,
            limits,
            reads: tokio::sync::Semaphore::new(admission::ENGINE_READS_MAX),
        }
    }

    /// The store under the service (its writer, its scans).
    pub fn store(&self) -> &Arc<Replica> {
        &self.replica
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks a key's size against [`Limits::key_bytes_max`].
    pub fn check_key(&self, key: &[u8]) -> Result<(), Response> {
        let max = self.limits.key_bytes_max;
        if key.is_empty() {
            return Err(error(
                ErrorKind::BadRequest,
                format!("key is empty; keys must be 1 to {max} bytes"),
            ));
        }
        if key.len() > max {
            return Err(error(
                ErrorKind::BadRequest,
                format!(
                    "key is {} bytes, over the limit of {max} bytes (key_bytes_max)",
                    key.len()
                ),
            ));
        }
        Ok(())
    }

    /// The stored bytes of `key` if the engine has them in memory (memtables, cached blocks),
    /// their size taken from `budget`; `None` if the read needs the disk.
    fn read_stored_cached(
        &self,
        token: u128,
        key: &[u8],
        budget: &RequestBudget,
    ) -> Option<Result<Option<Vec<u8>>, ReadFailure>> {
        let read = match self.replica.read_raw_cached_at(token, key) {
            Ok(read) => read?,
            Err(e) => return Some(Err(ReadFailure::Failed(e.to_string()))),
        };
        if let Some(bytes) = &read {
            if let Err(e) = budget.take(bytes.len()) {
                return Some(Err(ReadFailure::Refused(e.to_string())));
            }
        }
        Some(Ok(read))
    }

    /// The stored bytes of `key`, their size taken from `budget` once known. A read the engine
    /// answers from memory is done here; one that needs the disk runs off the runtime's
    /// threads, at most [`admission::ENGINE_READS_MAX`] at once.
    async fn read_stored(
        &self,
        key: Arc<Vec<u8>>,
        budget: Arc<RequestBudget>,
    ) -> Result<Option<Vec<u8>>, ReadFailure> {
        if let Some(read) = self.read_stored_cached(token_of(&key), &key, &budget) {
            return read;
        }
        let failed = |e: &dyn std::fmt::Display| ReadFailure::Failed(e.to_string());
        let _permit = self.reads.acquire().await.map_err(|e| failed(&e))?;
        let replica = self.replica.clone();
        let read = tokio::task::spawn_blocking(move || {
            let bytes = replica.read_raw(&key).map_err(|e| failed(&e))?;
            if let Some(bytes) = &bytes {
                budget
                    .take(bytes.len())
                    .map_err(|e| ReadFailure::Refused(e.to_string()))?;
            }
            Ok(bytes)
        });
        read.await.map_err(|e| failed(&e))?
    }

    /// This node's versions of `key`, for a get it coordinates, if the engine has them in
    /// memory.
    pub fn read_local_cached(
        &self,
        token: u128,
        key: &[u8],
        budget: &RequestBudget,
    ) -> Option<Result<Siblings, ReadFailure>> {
        Some(
            self.read_stored_cached(token, key, budget)?
                .and_then(decode_stored),
        )
    }

    /// This node's versions of `key`, for a get it coordinates.
    pub async fn read_local(
        &self,
        key: Arc<Vec<u8>>,
        budget: Arc<RequestBudget>,
    ) -> Result<Siblings, ReadFailure> {
        decode_stored(self.read_stored(key, budget).await?)
    }

    /// A replica read for another node's coordinator.
    pub async fn replica_read(&self, key: Vec<u8>, budget: Arc<RequestBudget>) -> Response {
        // Stored bytes are already the encoded siblings: pass them on without decoding.
        match self.read_stored(Arc::new(key), budget).await {
            Ok(None) => Response::Replica { siblings: None },
            Ok(Some(bytes)) => Response::Replica {
                siblings: Some(ByteBuf::from(bytes)),
            },
            Err(ReadFailure::Refused(e)) => error(ErrorKind::Unavailable, e),
            Err(ReadFailure::Failed(e)) => error(ErrorKind::Internal, e),
        }
    }

    /// A replica write from another node (a coordinator, a read repair, a hint, a repair).
    pub async fn replica_write(
        &self,
        key: Vec<u8>,
        siblings: Vec<u8>,
        deadline: Deadline,
    ) -> Response {
        if let Err(e) = self.check_key(&key) {
            return e;
        }
        let incoming = match Siblings::decode(&siblings) {
            Ok(s) => s,
            // A format this build does not read (the sender is newer) may be read after an
            // upgrade: a hint of it is kept. Anything else will never be read.
            Err(e)
                if !siblings
                    .first()
                    .is_some_and(|f| SIBLINGS_FORMATS.contains(f)) =>
            {
                return error(ErrorKind::BadRequest, e)
            }
            Err(e) => return error(ErrorKind::Invalid, e),
        };
        // Versions no node makes (over INCOMING_SIBLINGS_MAX, outside the bounds of
        // `Siblings::check_sent`) are refused by the merge first thing, before merging.
        // Past the sender's deadline the sender has stopped waiting: refused unwritten. Once
        // taken, the write is not raced against a timer: the writer's queue holds it until its
        // round is durable whether or not anyone waits (its room in the queue bounds what a
        // stalled disk can hold), and the sender gives up on its own deadline.
        if deadline.passed() {
            return error(
                ErrorKind::Unavailable,
                format!(
                    "the write came after the request's {} ms deadline had passed; not written",
                    deadline.budget().as_millis()
                ),
            );
        }
        match self.replica.merge_write(&key, incoming).await {
            Ok(_) => Response::Ack,
            Err(ReplicaError::Version(e)) => error(ErrorKind::Invalid, e),
            Err(ReplicaError::TooLarge { len, max }) => {
                error(ErrorKind::Invalid, ReplicaError::TooLarge { len, max })
            }
            Err(e) => replica_error(e),
        }
    }
}
