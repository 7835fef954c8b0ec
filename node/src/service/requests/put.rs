//! A put: routed (coordinated here, or forwarded to a replica), its new version made by the
//! replica's writer against what this node stores, sent to the other replicas while it becomes
//! durable here, counted by the [`WriteCoordinator`] toward the level; replicas that miss it
//! get hints.

use std::sync::Arc;
use std::time::Duration;

use kvctl::model::version::{new_version_against, Siblings, CLOCK_ENTRIES_MAX};
use kvctl::wire::budget::RequestBudget;
use kvctl::wire::deadline::Deadline;
use kvctl::wire::proto::{self, Consistency, ErrorKind, Request, Response};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use super::{crash_first, Requests, EMPTY_RING};
use crate::logic::coordinator::{
    route, Action, Hinting, Route, WriteCoordinator, WriteFailure, WriteOutcome,
};
use crate::service::replica::replica_error;
use crate::service::{error, wall_ms};
use crate::store::replica::{Prepared, ReplicaError};

/// A put as the node takes it (from a client, or from a node that handed it on).
pub struct Put {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// The context token, as the client sent it.
    pub context: Option<String>,
    pub level: Consistency,
    pub lww: bool,
    pub forwarded: bool,
    /// The client's id for the logical write (see [`Request::Put`]).
    pub write_id: Option<u128>,
}

/// What a put's driver hears back.
enum WriteEvent {
    /// A replica (or this node's copy) stored the write, or did not.
    Stored(String, Result<(), WriteFailure>),
    /// The hint for a replica is durable here, or could not be kept.
    Hinted(String, Result<(), String>),
}

/// Carries out what a put's [`WriteCoordinator`] asks: replica writes and hints as tasks, its
/// timer; feeds it their outcomes, and this node's copy becoming durable.
struct WriteDriver {
    requests: Arc<Requests>,
    c: WriteCoordinator,
    /// This node's copy, until it is durable (or failed).
    durable: Option<oneshot::Receiver<Result<(), ReplicaError>>>,
    key: Arc<Vec<u8>>,
    /// The encoded siblings of the write (a hint's content).
    payload: Arc<Vec<u8>>,
    /// The encoded replica write request.
    request: Arc<Vec<u8>>,
    timeout: Duration,
    tx: mpsc::Sender<WriteEvent>,
    rx: mpsc::Receiver<WriteEvent>,
    /// Held until every replica write and hint is settled.
    _budget: Arc<RequestBudget>,
}

impl WriteDriver {
    fn carry_out(&mut self) {
        while let Some(action) = self.c.poll_action() {
            let (tx, requests) = (self.tx.clone(), self.requests.clone());
            match action {
                Action::Local => {}
                Action::Send { to, addr } => {
                    let (req, timeout) = (self.request.clone(), self.timeout);
                    tokio::spawn(async move {
                        let transport = &requests.common.transport;
                        let sent = transport.send_encoded(addr, &req, timeout, None).await;
                        let r = match sent {
                            Ok(Response::Ack) => Ok(()),
                            Ok(Response::Error {
                                kind: ErrorKind::BadRequest | ErrorKind::Invalid,
                                message,
                            }) => Err(WriteFailure::Refused(message)),
                            Ok(Response::Error { message, .. }) => {
                                Err(WriteFailure::Missed(message))
                            }
                            Ok(_) => Err(WriteFailure::Refused("unexpected reply".to_string())),
                            Err(e) => Err(WriteFailure::Missed(e.to_string())),
                        };
                        let _ = tx.send(WriteEvent::Stored(to, r)).await;
                    });
                }
                Action::Hint { target } => {
                    let (key, payload) = (self.key.clone(), self.payload.clone());
                    tokio::spawn(async move {
                        let r = requests.hints.store(&target, &key, &payload).await;
                        let _ = tx.send(WriteEvent::Hinted(target, r)).await;
                    });
                }
            }
        }
    }

    /// Feeds the coordinator until `done` says to stop. The put path keeps its own loop (not
    /// [`crate::driver`]'s): this node's copy becoming durable is a branch of its select,
    /// one task and one message less per put.
    async fn drive(&mut self, mut done: impl FnMut(&mut WriteCoordinator) -> bool) {
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut wake_at = None;
        let common = self.requests.common.clone();
        loop {
            self.carry_out();
            if done(&mut self.c) {
                return;
            }
            common.set_timer(timer.as_mut(), &mut wake_at, self.c.poll_timeout());
            // Awaited here rather than by a task of its own: one task and one message less
            // per put.
            let local = std::future::poll_fn(|cx| {
                let Some(durable) = self.durable.as_mut() else {
                    return std::task::Poll::Pending;
                };
                let r =
                    std::task::ready!(std::future::Future::poll(std::pin::Pin::new(durable), cx));
                self.durable = None;
                std::task::Poll::Ready(match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(WriteFailure::Refused(e.to_string())),
                    Err(_) => Err(WriteFailure::Refused(ReplicaError::Closed.to_string())),
                })
            });
            tokio::select! {
                Some(event) = self.rx.recv() => match event {
                    WriteEvent::Stored(from, r) => self.c.on_reply(&from, r),
                    WriteEvent::Hinted(target, r) => self.c.on_hinted(&target, r),
                },
                r = local => self.c.on_reply(&common.id, r),
                () = &mut timer => self.c.on_timeout(common.now_ms()),
            }
        }
    }

    async fn run_until_outcome(&mut self) -> WriteOutcome {
        let mut outcome = None;
        self.drive(|c| {
            outcome = c.poll_outcome();
            outcome.is_some()
        })
        .await;
        outcome.expect("the coordinator has an outcome")
    }

    async fn run_until_settled(mut self) {
        self.drive(|c| c.is_settled()).await;
    }
}

impl Requests {
    pub async fn put(
        self: Arc<Self>,
        put: Put,
        budget: Arc<RequestBudget>,
        deadline: Deadline,
    ) -> Response {
        let Put {
            key,
            value,
            context,
            level,
            lww,
            forwarded,
            write_id,
        } = put;
        if let Err(e) = self.replica.check_key(&key) {
            return e;
        }
        let max = self.replica.limits().value_bytes_max;
        if let Some(v) = &value {
            if v.len() > max {
                return error(
                    ErrorKind::BadRequest,
                    format!(
                        "value is {} bytes, over the limit of {max} bytes (value_bytes_max)",
                        v.len()
                    ),
                );
            }
        }
        // Only a context the nodes sealed for this key is taken: see `kvctl::model::context`.
        let token = context;
        let context = match token
            .as_deref()
            .map(|t| self.secret.open(&key, t))
            .transpose()
        {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => return error(ErrorKind::BadRequest, format!("bad --context: {e}")),
        };
        let replicas = self.gossip.replicas(&key);
        if replicas.is_empty() {
            return error(ErrorKind::Unavailable, EMPTY_RING);
        }
        match route(&self.common.id, &replicas, forwarded) {
            Route::Coordinate => {}
            Route::NotReplica => {
                return error(
                    ErrorKind::Unavailable,
                    "this node is not a replica of the key although another node thought so; \
                     the ring is changing, retry",
                )
            }
            Route::Forward(forwarder) => {
                let request = Request::Put {
                    key: ByteBuf::from(key),
                    value: value.map(ByteBuf::from),
                    context: token,
                    consistency: level,
                    lww,
                    forwarded: true,
                    write_id,
                };
                return self.forward(forwarder, request, deadline).await;
            }
        }
        // The new version is built from what this node stores (by the replica's one writer, so
        // no other write to the key slips in between), then sent to the other replicas while it
        // becomes durable here; this copy counts toward the level like theirs. Its dot is above
        // the lease's floor, so even if this node crashes before its copy is durable, it never
        // hands the dot out again.
        let me = self.actor.clone();
        let now = wall_ms();
        // A version keeps its write id only once every member reads the format that carries
        // it: a node of an earlier release would refuse it (during a rolling upgrade, retried
        // puts may still give two siblings).
        let write_id = write_id.filter(|_| self.gossip.all_read_write_ids());
        let value_bytes = value.as_ref().map_or(0, Vec::len);
        let local = self
            .replica
            .store()
            .update(&key, value_bytes, move |stored, floor| {
                // A retry of a write this node already stores (its client lost the reply):
                // send that version on again instead of making a second one.
                if let Some(applied) = write_id.and_then(|id| {
                    stored
                        .versions
                        .iter()
                        .find(|v| v.write_id == Some(id) && v.value == value)
                }) {
                    return Ok(Siblings::from(applied.clone()));
                }
                let context = if lww {
                    stored.context().merge(&context)
                } else {
                    context
                };
                let mut version = new_version_against(
                    stored,
                    &context,
                    &me,
                    floor,
                    now,
                    value,
                    CLOCK_ENTRIES_MAX,
                );
                version.write_id = write_id;
                Ok(Siblings::from(version))
            })
            .await;
        let Prepared { incoming, durable } = match local {
            Ok(prepared) => prepared,
            Err(e) => return replica_error(e),
        };
        // One encoding of the replica write, shared by every replica's request (and by the
        // hints of those that miss it): a put holds its value a fixed number of times,
        // whatever N.
        let payload = incoming.encode();
        if let Err(e) = budget.take(2 * payload.len()) {
            return error(ErrorKind::Unavailable, e);
        }
        let deadline = deadline.for_coordinator();
        let timeout = deadline.remaining();
        let replica_write = Request::ReplicaWrite {
            key: ByteBuf::from(key),
            siblings: ByteBuf::from(payload),
        };
        let request = Arc::new(proto::encode_request(&replica_write, Some(timeout)));
        // The key and the payload back from the request (moved, not copied).
        let Request::ReplicaWrite { key, siblings } = replica_write else {
            unreachable!("built just above")
        };
        let (key, payload) = (key.into_vec(), Arc::new(siblings.into_vec()));
        let c = WriteCoordinator::new(
            &self.common.id,
            &replicas.primaries,
            level,
            self.common.now_ms(),
            timeout.as_millis() as u64,
            Hinting::On,
        );
        let (tx, rx) = mpsc::channel(2 * self.gossip.replication() + 2);
        let mut write = WriteDriver {
            requests: self.clone(),
            c,
            durable: Some(durable),
            key: Arc::new(key),
            payload,
            request,
            timeout,
            tx,
            rx,
            _budget: budget,
        };
        let outcome = write.run_until_outcome().await;
        let key = write.key.clone();
        // The replica writes still on their way run to their end, and those that fail get
        // their hints, after the client has its answer.
        if !write.c.is_settled() {
            tokio::spawn(write.run_until_settled());
        }
        if let (Some(marker), WriteOutcome::Done) = (&self.crash_before_put_reply, &outcome) {
            crash_first(marker, &self.common.id);
        }
        match outcome {
            // The context of the new version alone: siblings it did not see stay unseen.
            WriteOutcome::Done => Response::Written {
                context: self.secret.seal(&key, &incoming.context()),
            },
            WriteOutcome::Failed(e) => error(
                ErrorKind::Unavailable,
                format!("{e} (the write is stored on the replicas that answered)"),
            ),
        }
    }
}
