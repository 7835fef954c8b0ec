//! A get: the [`ReadCoordinator`] decides whom to ask and when it is done; this carries out
//! what it asks for (the local read, from memory here or off the runtime's threads, replica
//! reads as tasks) and feeds it their replies and the time. Replicas that answered with less
//! than the merge are repaired afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kvctl::model::ring::token_of;
use kvctl::model::version::Siblings;
use kvctl::wire::budget::RequestBudget;
use kvctl::wire::deadline::Deadline;
use kvctl::wire::proto::{self, Consistency, ErrorKind, Request, Response};
use kvctl::wire::transport::{size_allowance, TransportError, REQUEST_TIMEOUT};
use serde_bytes::ByteBuf;

use super::{Requests, EMPTY_RING};
use crate::driver::{Driver, Next};
use crate::logic::coordinator::{Action, ReadCoordinator, ReadFailure, ReadOutcome};
use crate::service::error;
use crate::store::replica::INCOMING_SIBLINGS_MAX;

/// How long a read repair waits for a replica to take the versions (no client waits for it).
const REPAIR_TIMEOUT: Duration = REQUEST_TIMEOUT;

impl Requests {
    pub async fn get(
        self: Arc<Self>,
        key: Vec<u8>,
        level: Consistency,
        budget: Arc<RequestBudget>,
        deadline: Deadline,
    ) -> Response {
        if let Err(e) = self.replica.check_key(&key) {
            return e;
        }
        let token = token_of(&key);
        let replicas = self.gossip.replicas_at(token);
        if replicas.is_empty() {
            return error(ErrorKind::Unavailable, EMPTY_RING);
        }
        let deadline = deadline.for_coordinator();
        let mut c = ReadCoordinator::new(
            &self.common.id,
            replicas.primaries,
            level,
            self.common.now_ms(),
            deadline.remaining().as_millis() as u64,
        );
        let mut driver = Driver::new(self.gossip.replication() + 1);
        let key = Arc::new(key);
        let outcome = loop {
            while let Some(action) = c.poll_action() {
                if action == Action::Local {
                    // Served from memory here, as most reads are; else off the runtime.
                    if let Some(read) = self.replica.read_local_cached(token, &key, &budget) {
                        c.on_local(read, self.common.now_ms());
                        continue;
                    }
                }
                let (tx, requests, key, budget) =
                    (driver.sender(), self.clone(), key.clone(), budget.clone());
                match action {
                    Action::Local => {
                        tokio::spawn(async move {
                            let read = requests.replica.read_local(key, budget).await;
                            let _ = tx.send((requests.common.id.clone(), read)).await;
                        });
                    }
                    Action::Send { to, addr } => {
                        tokio::spawn(async move {
                            let read = requests
                                .replica_read_from(addr, &key, &budget, deadline)
                                .await;
                            let _ = tx.send((to, read)).await;
                        });
                    }
                    // Gets make no hints.
                    Action::Hint { .. } => {}
                }
            }
            if let Some(outcome) = c.poll_outcome() {
                break outcome;
            }
            let wake = c.poll_timeout().map(|ms| self.common.instant_at(ms));
            match driver.next(wake).await {
                Next::Event((from, read)) => c.on_reply(&from, read, self.common.now_ms()),
                Next::Timeout | Next::Closed => c.on_timeout(self.common.now_ms()),
            }
        };
        match outcome {
            ReadOutcome::Done {
                merged,
                trimmed,
                stale,
            } => {
                self.replica.store().trims().record(&key, trimmed);
                self.read_repair(&key, &merged, stale, budget);
                let context = self.secret.seal(&key, &merged.context());
                let values: Vec<ByteBuf> = merged
                    .into_values()
                    .into_iter()
                    .map(ByteBuf::from)
                    .collect();
                Response::Value {
                    found: !values.is_empty(),
                    values,
                    context,
                }
            }
            ReadOutcome::Failed(e) => error(ErrorKind::Unavailable, e),
            ReadOutcome::Refused(e) => error(ErrorKind::Unavailable, e),
        }
    }

    /// Replica `addr`'s versions of `key`, its reply's bytes taken from `budget`.
    async fn replica_read_from(
        &self,
        addr: SocketAddr,
        key: &[u8],
        budget: &RequestBudget,
        deadline: Deadline,
    ) -> Result<Siblings, ReadFailure> {
        let timeout = deadline.remaining();
        let request = Request::ReplicaRead {
            key: ByteBuf::from(key.to_vec()),
        };
        let encoded = proto::encode_request(&request, Some(timeout));
        let sent = self
            .common
            .transport
            .send_encoded(addr, &encoded, timeout, Some(budget));
        match sent.await {
            Ok(Response::Replica { siblings: None }) => Ok(Siblings::default()),
            Ok(Response::Replica { siblings: Some(b) }) => Siblings::decode(&b)
                .and_then(|s| s.check_sent(INCOMING_SIBLINGS_MAX).map(|()| s))
                .map_err(|e| ReadFailure::Failed(format!("{addr} answered {e}"))),
            Ok(Response::Error { message, .. }) => Err(ReadFailure::Failed(message)),
            Ok(_) => Err(ReadFailure::Failed("unexpected reply".to_string())),
            Err(TransportError::Refused { reason, .. }) => {
                Err(ReadFailure::Refused(reason.to_string()))
            }
            Err(e) => Err(ReadFailure::Failed(e.to_string())),
        }
    }

    /// Read repair: the replicas that answered a get with less than the merged versions get
    /// them. The repair holds its bytes in the get's budget until it is done (or is skipped
    /// when the budget cannot cover it: a later read repairs the key).
    fn read_repair(
        self: &Arc<Self>,
        key: &[u8],
        merged: &Siblings,
        stale: Vec<String>,
        budget: Arc<RequestBudget>,
    ) {
        if stale.is_empty() {
            return;
        }
        let bytes = merged.encode();
        if budget.take(2 * bytes.len()).is_err() {
            return;
        }
        let (requests, key) = (self.clone(), key.to_vec());
        tokio::spawn(async move {
            let _budget = budget;
            for id in stale {
                if id == requests.common.id {
                    if let Ok(merged) = Siblings::decode(&bytes) {
                        let _ = requests.replica.store().merge_write(&key, merged).await;
                    }
                    continue;
                }
                if let Some(addr) = requests.gossip.addr_of(&id) {
                    let timeout = REPAIR_TIMEOUT + size_allowance(bytes.len());
                    let request = Request::ReplicaWrite {
                        key: ByteBuf::from(key.clone()),
                        siblings: ByteBuf::from(bytes.clone()),
                    };
                    let _ = requests
                        .common
                        .transport
                        .send_encoded(
                            addr,
                            &proto::encode_request(&request, Some(timeout)),
                            timeout,
                            None,
                        )
                        .await;
                }
            }
        });
    }
}
