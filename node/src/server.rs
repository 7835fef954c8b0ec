//! The node: serves requests over QUIC, coordinates reads and writes for any key, stores its
//! replicas, and gossips membership.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvctl::budget::{NodeBudget, RequestBudget};
use kvctl::context::ClusterSecret;
use kvctl::engine::{Engine, EngineError, Limits, Store};
use kvctl::proto::{self, Consistency, ErrorKind, Member, MemberState, Request, Response};
use kvctl::tls::{Identity, Peer};
use kvctl::transport::{serve_stream, size_allowance, Transport, TransportError, REQUEST_TIMEOUT};
use kvctl::version::{new_version_against, Siblings, CLOCK_ENTRIES_MAX};
use parking_lot::Mutex;
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;

use crate::admission::{self, Connections};
use crate::lease::DotLease;
use crate::membership::Membership;
use crate::pacer::{SyncPacer, SYNC_BURST};
use crate::quorum::Quorum;
use crate::replica::{Prepared, Replica, ReplicaError};

/// How long a node waits for a replica it handed a write to (which waits for its replicas).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(4);

/// How often a node gossips.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: String,
    pub listen: SocketAddr,
    pub seeds: Vec<SocketAddr>,
    /// Replicas per key (N).
    pub replication: usize,
    pub tokens: Vec<u128>,
    pub limits: Limits,
    /// Most durable rounds (one fsync each) a second the replica's writer starts, on average;
    /// 0 for no limit.
    pub sync_rate_max: u32,
    /// This start's gossip generation: higher than every earlier start's, so other nodes take
    /// the restarted node's state over what they remember (see [`next_generation`]).
    pub generation: u64,
    /// The key causal contexts are sealed with, the same on every node of the cluster.
    pub secret: ClusterSecret,
    /// Connections, bytes in flight, the write queue.
    pub admission: admission::Limits,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("storage: {0}")]
    Engine(#[from] kvctl::engine::EngineError),
}

/// The gossip generation of a start that follows one with generation `previous`: the wall clock
/// in milliseconds, or one above `previous` if the clock is behind it (it was set back).
pub fn next_generation(previous: Option<u64>) -> u64 {
    let now = wall_ms();
    previous.map_or(now, |p| now.max(p + 1))
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Most versions a replica write may carry: a set over [`kvctl::version::SIBLINGS_MAX`] is
/// trimmed to it, one this much larger is no node's and is refused unmerged.
const INCOMING_SIBLINGS_MAX: usize = 4 * kvctl::version::SIBLINGS_MAX;

/// Why a replica's versions could not be read for a get.
enum ReadFailure {
    /// This request's budget could not hold them: the whole request is refused.
    Refused(String),
    /// The replica failed: the get asks another.
    Failed(String),
}

fn error(kind: ErrorKind, message: impl std::fmt::Display) -> Response {
    Response::Error {
        kind,
        message: message.to_string(),
    }
}

/// A refused write (too many siblings, too large, a bad context) is the request's fault; a
/// full disk is a state that passes (retry later); any other storage failure is the node's.
fn replica_error(e: ReplicaError) -> Response {
    match e {
        ReplicaError::Version(_) | ReplicaError::TooLarge { .. } => error(ErrorKind::BadRequest, e),
        ReplicaError::Engine(EngineError::WalFull { .. }) => error(ErrorKind::Unavailable, e),
        e => error(ErrorKind::Internal, e),
    }
}

/// A put as the node takes it (from a client, or from a node that handed it on).
struct Put {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    /// The context token, as the client sent it.
    context: Option<String>,
    level: Consistency,
    lww: bool,
    forwarded: bool,
}

pub struct Node {
    config: NodeConfig,
    replica: Arc<Replica>,
    membership: Mutex<Membership>,
    transport: Arc<Transport>,
    started: Instant,
    /// The name this node's dots carry: its id and its lease's incarnation.
    actor: String,
    complaints: Mutex<Complaints>,
    connections: Arc<Connections>,
    budget: NodeBudget,
}

/// The connection error code of a connection refused by admission (its reason says why).
const CONNECTION_REFUSED_CODE: u32 = 1;

/// How often one complaint (a refused gossip entry, say) is logged at most.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(60);
/// The most distinct complaints remembered for [`COMPLAINT_INTERVAL`].
const COMPLAINTS_MAX: usize = 256;

/// Rate-limits the node's log of what it refused: bad input repeats every gossip round, and a
/// peer sending many distinct bad entries must not flood the log either.
#[derive(Default)]
struct Complaints {
    last: std::collections::HashMap<String, Instant>,
    /// Complaints not logged since the last line, because too many distinct ones came at once.
    unlogged: u64,
}

impl Complaints {
    fn log(&mut self, what: &str) {
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

impl Node {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs the node until `shutdown` completes, then closes the endpoint and the engine. The
    /// node's writes take their dots under `lease`.
    pub async fn run(
        config: NodeConfig,
        identity: &Identity,
        engine: Engine,
        lease: DotLease,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let transport = Arc::new(Transport::server(config.listen, identity)?);
        let me = Member {
            id: config.id.clone(),
            addr: config.listen,
            tokens: config.tokens.clone(),
            state: MemberState::Normal,
            generation: config.generation,
            heartbeat: 0,
            incarnation: lease.incarnation(),
            siblings_trimmed: 0,
        };
        let actor = lease.actor(&config.id);
        let engine = Arc::new(engine);
        let node = Arc::new(Node {
            membership: Mutex::new(Membership::new(me, config.seeds.clone())),
            replica: Arc::new(Replica::new(
                engine.clone(),
                lease,
                SyncPacer::new(config.sync_rate_max, SYNC_BURST),
                config.admission.write_queue_bytes_max,
            )),
            connections: Connections::new(config.admission),
            budget: NodeBudget::new(config.admission.budget),
            transport: transport.clone(),
            started: Instant::now(),
            actor,
            complaints: Mutex::new(Complaints::default()),
            config,
        });
        let gossip = tokio::spawn(node.clone().gossip_loop());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                incoming = transport.endpoint().accept() => {
                    let Some(incoming) = incoming else { break };
                    let node = node.clone();
                    tokio::spawn(async move {
                        // Counted from its arrival: handshakes in progress hold slots too.
                        let slot = node.connections.admit(incoming.remote_address());
                        // A failed handshake (no certificate, another CA) ends here.
                        let Ok(conn) = incoming.await else { return };
                        let _slot = match slot {
                            Ok(slot) => slot,
                            Err(reason) => {
                                node.complaints.lock().log(&reason);
                                conn.close(CONNECTION_REFUSED_CODE.into(), reason.as_bytes());
                                return;
                            }
                        };
                        let peer = Arc::new(kvctl::tls::peer(&conn));
                        let budget = match *peer {
                            Peer::Node { .. } => node.budget.node_connection(),
                            Peer::Client => node.budget.connection(),
                        };
                        while let Ok((send, recv)) = conn.accept_bi().await {
                            let (node, peer) = (node.clone(), peer.clone());
                            let budget = Arc::new(budget.request());
                            tokio::spawn(async move {
                                serve_stream(send, recv, budget, |req, budget| {
                                    node.handle(req, &peer, budget)
                                })
                                .await;
                            });
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        gossip.abort();
        transport.close().await;
        // Joining the writer waits for its last round: not on a runtime thread.
        let replica = node.replica.clone();
        let _ = tokio::task::spawn_blocking(move || replica.close()).await;
        engine.close()?;
        Ok(())
    }

    async fn gossip_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(GOSSIP_INTERVAL);
        loop {
            interval.tick().await;
            let round = {
                let mut membership = self.membership.lock();
                membership.set_siblings_trimmed(self.replica.trims().total());
                membership.tick(self.now_ms())
            };
            let Some((target, members)) = round else {
                continue;
            };
            let node = self.clone();
            tokio::spawn(async move {
                if let Ok(Response::Members { members: views, .. }) = node
                    .transport
                    .request(target, &Request::Gossip { members })
                    .await
                {
                    // The reply speaks for the node whose certificate answered.
                    let responder = node.transport.peer_of(target);
                    let responder = responder.as_ref().and_then(|p| p.node_id());
                    node.take_gossip(views.into_iter().map(|v| v.member), responder);
                }
            });
        }
    }

    /// Merges a member list sent by `sender`, logging what it refused.
    fn take_gossip(&self, members: impl IntoIterator<Item = Member>, sender: Option<&str>) {
        let now = self.now_ms();
        let merged = self
            .membership
            .lock()
            .merge(members, sender, now, wall_ms());
        for addr in merged.restarted {
            self.transport.forget(addr);
        }
        if !merged.refused.is_empty() {
            let mut complaints = self.complaints.lock();
            for reason in &merged.refused {
                complaints.log(reason);
            }
        }
    }

    async fn handle(
        self: Arc<Self>,
        request: Request,
        peer: &Peer,
        budget: Arc<RequestBudget>,
    ) -> Response {
        let from_node = peer.node_id().is_some();
        let node_only = matches!(
            request,
            Request::ReplicaRead { .. } | Request::ReplicaWrite { .. } | Request::Gossip { .. }
        ) || matches!(
            request,
            Request::Put {
                forwarded: true,
                ..
            }
        );
        if node_only && !from_node {
            return error(
                ErrorKind::BadRequest,
                "node-to-node requests need a node certificate; this is a client certificate",
            );
        }
        match request {
            Request::Get { key, consistency } => {
                self.get(key.into_vec(), consistency, budget).await
            }
            Request::Put {
                key,
                value,
                context,
                consistency,
                lww,
                forwarded,
            } => {
                let put = Put {
                    key: key.into_vec(),
                    value: value.map(ByteBuf::into_vec),
                    context,
                    level: consistency,
                    lww,
                    forwarded,
                };
                self.put(put, budget).await
            }
            Request::ReplicaRead { key } => self.replica_read(key.into_vec(), &budget).await,
            Request::ReplicaWrite { key, siblings } => {
                self.replica_write(key.into_vec(), siblings.into_vec())
                    .await
            }
            Request::Gossip { members } => {
                self.take_gossip(members, peer.node_id());
                let now = self.now_ms();
                Response::Members {
                    node: self.config.id.clone(),
                    members: self.membership.lock().views(now),
                }
            }
            Request::Status => {
                let now = self.now_ms();
                let views = self.membership.lock().views(now);
                Response::Members {
                    node: self.config.id.clone(),
                    members: views,
                }
            }
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), Response> {
        let max = self.config.limits.key_bytes_max;
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

    /// The replicas of `key`: (id, address, up).
    fn replicas(&self, key: &[u8]) -> Vec<(String, Option<SocketAddr>, bool)> {
        let membership = self.membership.lock();
        let now = self.now_ms();
        membership
            .ring()
            .preference_list(key, self.config.replication)
            .into_iter()
            .map(|id| {
                let addr = membership.addr_of(&id);
                let up = membership.is_up(&id, now);
                (id, addr, up)
            })
            .collect()
    }

    /// Reads from as many replicas as the level needs (this node's own first, then those gossip
    /// reports up), asking the next replica whenever one fails, and merges what they hold.
    async fn get(
        self: Arc<Self>,
        key: Vec<u8>,
        level: Consistency,
        budget: Arc<RequestBudget>,
    ) -> Response {
        if let Err(e) = self.check_key(&key) {
            return e;
        }
        let mut replicas = self.replicas(&key);
        if replicas.is_empty() {
            return error(
                ErrorKind::Unavailable,
                "the ring is empty: no node owns any token yet",
            );
        }
        // Local first, then up, then down; the sort is stable, so ring order breaks ties.
        replicas.sort_by_key(|(id, _, up)| (*id != self.config.id, !*up));
        let mut quorum = Quorum::new(level, replicas.len());
        let (tx, mut rx) = mpsc::channel(replicas.len());
        let mut merged = Siblings::default();
        let mut answers = Vec::new();
        let mut asked = 0;
        while !quorum.reached() && !quorum.impossible() {
            // Keep as many requests outstanding as replies are still needed.
            let in_flight = asked - answers.len() - quorum.failures();
            if in_flight < quorum.missing() && asked < replicas.len() {
                let (id, addr, up) = replicas[asked].clone();
                asked += 1;
                if id == self.config.id {
                    // The engine serves reads from memory or the page cache: no hand-off.
                    match self.read_local(&key, &budget) {
                        Ok(siblings) => {
                            quorum.ok();
                            merged = merged.merge(&siblings);
                            answers.push((id, siblings));
                        }
                        // A spent budget refuses the request: asking other replicas instead
                        // would only move the load onto them.
                        Err(ReadFailure::Refused(e)) => return error(ErrorKind::Unavailable, e),
                        Err(ReadFailure::Failed(e)) => quorum.fail(&id, e),
                    }
                    continue;
                }
                let Some(addr) = addr.filter(|_| up) else {
                    quorum.fail(&id, "down (no recent gossip)");
                    continue;
                };
                let (tx, node, budget) = (tx.clone(), self.clone(), budget.clone());
                let req = proto::encode(&Request::ReplicaRead {
                    key: ByteBuf::from(key.clone()),
                });
                tokio::spawn(async move {
                    let sent =
                        node.transport
                            .send_encoded(addr, &req, REQUEST_TIMEOUT, Some(&budget));
                    let r = match sent.await {
                        Ok(Response::Replica { siblings: None }) => Ok(Siblings::default()),
                        Ok(Response::Replica { siblings: Some(b) }) => {
                            Siblings::decode(&b).map_err(|e| ReadFailure::Failed(e.to_string()))
                        }
                        Ok(Response::Error { message, .. }) => Err(ReadFailure::Failed(message)),
                        Ok(_) => Err(ReadFailure::Failed("unexpected reply".to_string())),
                        Err(TransportError::Refused { reason, .. }) => {
                            Err(ReadFailure::Refused(reason.to_string()))
                        }
                        Err(e) => Err(ReadFailure::Failed(e.to_string())),
                    };
                    let _ = tx.send((id, r)).await;
                });
                continue;
            }
            match rx.recv().await {
                Some((id, Ok(siblings))) => {
                    quorum.ok();
                    merged = merged.merge(&siblings);
                    answers.push((id, siblings));
                }
                Some((_, Err(ReadFailure::Refused(e)))) => return error(ErrorKind::Unavailable, e),
                Some((id, Err(ReadFailure::Failed(reason)))) => quorum.fail(&id, reason),
                None => break,
            }
        }
        if !quorum.reached() {
            return error(ErrorKind::Unavailable, quorum.error());
        }
        // Replicas trim what they merge; the repair and the reply hold what they will keep.
        self.replica.trims().trim(&key, &mut merged);
        self.repair(&key, &merged, answers, budget);
        let values: Vec<ByteBuf> = merged.values().map(|v| ByteBuf::from(v.to_vec())).collect();
        Response::Value {
            found: !values.is_empty(),
            values,
            context: self.config.secret.seal(&key, &merged.context()),
        }
    }

    /// Read repair: replicas that answered with less than the merged versions get them.
    /// The repair holds its bytes in the get's budget until it is done (or is skipped when the
    /// budget cannot cover it: a later read repairs the key).
    fn repair(
        self: &Arc<Self>,
        key: &[u8],
        merged: &Siblings,
        answers: Vec<(String, Siblings)>,
        budget: Arc<RequestBudget>,
    ) {
        let stale: Vec<String> = answers
            .into_iter()
            .filter(|(_, s)| s != merged)
            .map(|(id, _)| id)
            .collect();
        if stale.is_empty() {
            return;
        }
        let bytes = merged.encode();
        if budget.take(2 * bytes.len()).is_err() {
            return;
        }
        let (node, key) = (self.clone(), key.to_vec());
        tokio::spawn(async move {
            let _budget = budget;
            for id in stale {
                if id == node.config.id {
                    if let Ok(merged) = Siblings::decode(&bytes) {
                        let _ = node.replica.merge_write(&key, merged).await;
                    }
                    continue;
                }
                let addr = node.membership.lock().addr_of(&id);
                if let Some(addr) = addr {
                    let req = proto::encode(&Request::ReplicaWrite {
                        key: ByteBuf::from(key.clone()),
                        siblings: ByteBuf::from(bytes.clone()),
                    });
                    let _ = node
                        .transport
                        .send_encoded(addr, &req, REQUEST_TIMEOUT, None)
                        .await;
                }
            }
        });
    }

    async fn put(self: Arc<Self>, put: Put, budget: Arc<RequestBudget>) -> Response {
        let Put {
            key,
            value,
            context,
            level,
            lww,
            forwarded,
        } = put;
        if let Err(e) = self.check_key(&key) {
            return e;
        }
        let max = self.config.limits.value_bytes_max;
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
        // Only a context the nodes sealed for this key is taken: see `kvctl::context`.
        let token = context;
        let context = match token
            .as_deref()
            .map(|t| self.config.secret.open(&key, t))
            .transpose()
        {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => return error(ErrorKind::BadRequest, format!("bad --context: {e}")),
        };
        let replicas = self.replicas(&key);
        if replicas.is_empty() {
            return error(
                ErrorKind::Unavailable,
                "the ring is empty: no node owns any token yet",
            );
        }
        if !replicas.iter().any(|(id, _, _)| *id == self.config.id) {
            if forwarded {
                // Two nodes disagree on the ring (a join in progress): don't bounce the write.
                return error(
                    ErrorKind::Unavailable,
                    "this node is not a replica of the key although another node thought so; \
                     the ring is changing, retry",
                );
            }
            return self
                .forward(
                    replicas,
                    Request::Put {
                        key: ByteBuf::from(key),
                        value: value.map(ByteBuf::from),
                        context: token,
                        consistency: level,
                        lww,
                        forwarded: true,
                    },
                )
                .await;
        }
        // The new version is built from what this node stores (by the replica's one writer, so
        // no other write to the key slips in between), then sent to the other replicas while it
        // becomes durable here; this copy counts toward the level like theirs. Its dot is above
        // the lease's floor, so even if this node crashes before its copy is durable, it never
        // hands the dot out again.
        let mut quorum = Quorum::new(level, replicas.len());
        let me = self.actor.clone();
        let now = wall_ms();
        let value_bytes = value.as_ref().map_or(0, Vec::len);
        let local = self
            .replica
            .update(&key, value_bytes, move |stored, floor| {
                let context = if lww {
                    stored.context().merge(&context)
                } else {
                    context
                };
                Ok(Siblings::from(new_version_against(
                    stored,
                    &context,
                    &me,
                    floor,
                    now,
                    value,
                    CLOCK_ENTRIES_MAX,
                )))
            })
            .await;
        let Prepared { incoming, durable } = match local {
            Ok(prepared) => prepared,
            Err(e) => return replica_error(e),
        };
        // One encoding of the replica write, shared by every replica's request: a put holds its
        // value a fixed number of times, whatever N.
        let payload = incoming.encode();
        let payload_bytes = payload.len();
        if let Err(e) = budget.take(2 * payload_bytes) {
            return error(ErrorKind::Unavailable, e);
        }
        let replica_write = Arc::new(proto::encode(&Request::ReplicaWrite {
            key: ByteBuf::from(key.clone()),
            siblings: ByteBuf::from(payload),
        }));
        let (tx, mut rx) = mpsc::channel::<(String, Result<(), String>)>(replicas.len());
        {
            let (tx, me) = (tx.clone(), self.config.id.clone());
            let timeout = REQUEST_TIMEOUT + size_allowance(payload_bytes);
            tokio::spawn(async move {
                let r = match tokio::time::timeout(timeout, durable).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e.to_string()),
                    Ok(Err(_)) => Err(ReplicaError::Closed.to_string()),
                    Err(_) => Err(format!(
                        "its own copy was not durable within {} ms",
                        timeout.as_millis()
                    )),
                };
                let _ = tx.send((me, r)).await;
            });
        }
        for (id, addr, up) in replicas {
            if id == self.config.id {
                continue;
            }
            let Some(addr) = addr.filter(|_| up) else {
                quorum.fail(&id, "down (no recent gossip)");
                continue;
            };
            let (tx, node, req) = (tx.clone(), self.clone(), replica_write.clone());
            let timeout = REQUEST_TIMEOUT + size_allowance(payload_bytes);
            // Each replica write runs to its end even after the level is met.
            tokio::spawn(async move {
                let r = match node.transport.send_encoded(addr, &req, timeout, None).await {
                    Ok(Response::Ack) => Ok(()),
                    Ok(Response::Error { message, .. }) => Err(message),
                    Ok(_) => Err("unexpected reply".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send((id, r)).await;
            });
        }
        drop(tx);
        // Even when the level can no longer be met, the replies already on their way are
        // awaited (each within the request timeout), so the error reports what really happened.
        while !quorum.reached() {
            match rx.recv().await {
                Some((_, Ok(()))) => quorum.ok(),
                Some((id, Err(reason))) => quorum.fail(&id, reason),
                None => break,
            }
        }
        if !quorum.reached() {
            return error(
                ErrorKind::Unavailable,
                format!(
                    "{} (the write is stored on the replicas that answered)",
                    quorum.error()
                ),
            );
        }
        // The context of the new version alone: siblings it did not see stay unseen.
        Response::Written {
            context: self.config.secret.seal(&key, &incoming.context()),
        }
    }

    /// Hands a write to a replica of the key (the coordinator of a write must store it).
    async fn forward(
        &self,
        replicas: Vec<(String, Option<SocketAddr>, bool)>,
        request: Request,
    ) -> Response {
        let mut reasons = Vec::new();
        for (id, addr, up) in replicas {
            let Some(addr) = addr.filter(|_| up) else {
                reasons.push(format!("{id}: down"));
                continue;
            };
            // The replica waits up to a request timeout for its own replicas: give it longer.
            let value_len = match &request {
                Request::Put { value, .. } => value.as_ref().map_or(0, |v| v.len()),
                _ => 0,
            };
            let timeout = FORWARD_TIMEOUT + size_allowance(value_len) * 2;
            match self
                .transport
                .request_with_timeout(addr, &request, timeout)
                .await
            {
                Ok(response) => return response,
                Err(e @ TransportError::Connect { .. }) => reasons.push(format!("{id}: {e}")),
                // It may have been applied: trying another replica could write it twice.
                Err(e) => {
                    return error(
                        ErrorKind::Unavailable,
                        format!("handed the write to {id}, which did not confirm it: {e}"),
                    )
                }
            }
        }
        error(
            ErrorKind::Unavailable,
            format!(
                "no replica of the key could coordinate the write: {}",
                reasons.join(", ")
            ),
        )
    }

    /// This node's versions of `key`, their bytes taken from `budget`.
    fn read_local(&self, key: &[u8], budget: &RequestBudget) -> Result<Siblings, ReadFailure> {
        let failed = |e: &dyn std::fmt::Display| ReadFailure::Failed(e.to_string());
        match self.replica.read_raw(key).map_err(|e| failed(&e))? {
            None => Ok(Siblings::default()),
            Some(bytes) => {
                budget
                    .take(bytes.len())
                    .map_err(|e| ReadFailure::Refused(e.to_string()))?;
                Siblings::decode(&bytes).map_err(|e| failed(&e))
            }
        }
    }

    async fn replica_read(&self, key: Vec<u8>, budget: &RequestBudget) -> Response {
        // Stored bytes are already the encoded siblings: pass them on without decoding.
        match self.replica.read_raw(&key) {
            Ok(None) => Response::Replica { siblings: None },
            Ok(Some(bytes)) => match budget.take(bytes.len()) {
                Ok(()) => Response::Replica {
                    siblings: Some(ByteBuf::from(bytes)),
                },
                Err(e) => error(ErrorKind::Unavailable, e),
            },
            Err(e) => error(ErrorKind::Internal, e),
        }
    }

    async fn replica_write(&self, key: Vec<u8>, siblings: Vec<u8>) -> Response {
        if let Err(e) = self.check_key(&key) {
            return e;
        }
        let incoming = match Siblings::decode(&siblings) {
            Ok(s) => s,
            Err(e) => return error(ErrorKind::BadRequest, e),
        };
        // No node sends more than SIBLINGS_MAX versions (replicas trim to it); a merge over
        // it is trimmed, but merging is quadratic in versions, so a far larger set is refused
        // as malformed before it is merged.
        if let Err(e) = incoming.check(INCOMING_SIBLINGS_MAX) {
            return error(ErrorKind::BadRequest, e);
        }
        match self.replica.merge_write(&key, incoming).await {
            Ok(_) => Response::Ack,
            Err(e) => replica_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_rises_even_when_the_clock_was_set_back() {
        let first = next_generation(None);
        assert!(first >= wall_ms() - 60_000);
        // The last start's generation is ahead of the clock (the clock was set back since).
        let ahead = wall_ms() + 3_600_000;
        assert_eq!(next_generation(Some(ahead)), ahead + 1);
        // Behind the clock: the clock.
        assert!(next_generation(Some(5)) >= first);
    }
}
