//! The client SDK: a cluster-aware client over QUIC with mutual TLS (the client layer: it
//! builds on [`crate::wire`] and [`crate::model`], never on the storage engine).
//!
//! - [`topology`]: the client's picture of the cluster and its routing;
//!   [`retry`]: what may be tried again; [`home`]: a cluster's directory (certificates, the
//!   nodes' addresses).
//!
//! - **Topology**: the client asks any reachable node for its view of the cluster (members,
//!   tokens, states, N) before its first request for a key, and asks again in the background
//!   every [`ClientBuilder::topology_refresh`] and after a node failed it, so it follows what
//!   gossip changes ([`crate::client::topology`]).
//! - **Routing**: a request for a key goes straight to one of the key's replicas (token-aware,
//!   spreading requests over them), so the common path takes no extra hop; other nodes are
//!   tried after them. Requests without a key go to the nodes in turn.
//! - **Pooling**: one QUIC connection per node, shared by every request in flight to it
//!   ([`Transport`]), dialed again when it dies; a node that failed lately is tried after the
//!   others, for a backoff that doubles with each failure in a row.
//! - **Retries**: a failed request is tried again on another node where that is safe
//!   ([`crate::client::retry`]), within a bounded number of tries; every put carries a write id chosen
//!   here and kept on every retry, so a put retried after its coordinator applied it gives
//!   one sibling, not two. When every try failed, [`ClientError::Exhausted`] names each node
//!   tried and why it failed.

pub mod home;
pub mod retry;
pub mod topology;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use ring::rand::SecureRandom;
use serde_bytes::ByteBuf;

use crate::client::retry::{Failure, Operation, RetryPolicy};
use crate::client::topology::Topology;
use crate::wire::certs;
use crate::wire::proto::{
    Consistency, EngineInfo, ErrorKind, MemberView, Request, Response, WireLayout, WorkerInfo,
};
use crate::wire::tls::{Identity, TlsError};
use crate::wire::transport::{size_allowance, Transport, TransportError, REQUEST_TIMEOUT};
use home::HomeError;

/// How long a client waits for a reply by default, and the time budget its requests carry
/// (see [`crate::wire::deadline`]): the coordinator works to it less a margin, so that its "not
/// enough replicas" answer arrives before the client gives up. Puts add time for a large
/// value.
pub const CLIENT_TIMEOUT: Duration =
    Duration::from_millis(2 * REQUEST_TIMEOUT.as_millis() as u64 + 1000);

/// How often the client asks for the topology again by default.
pub const TOPOLOGY_REFRESH: Duration = Duration::from_secs(5);

/// How long the client waits for one node's topology before it asks another as well.
pub const TOPOLOGY_HEDGE_DELAY: Duration = Duration::from_millis(200);

/// How long a node that failed a request is tried only after the others, at most (the
/// backoff starts at [`FAILED_NODE_BACKOFF_MIN`] and doubles with each failure in a row).
pub const FAILED_NODE_BACKOFF: Duration = Duration::from_secs(5);
pub const FAILED_NODE_BACKOFF_MIN: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the client knows no node of the cluster")]
    NoNode,
    /// Every try failed; `failures` says where and why, in order.
    #[error("{}", exhausted_message(.failures))]
    Exhausted { failures: Vec<TryFailure> },
    #[error("{message}")]
    Refused { kind: ErrorKind, message: String },
    #[error("unexpected reply from {addr}: {reply}")]
    Unexpected { addr: SocketAddr, reply: String },
}

/// One failed try of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryFailure {
    pub addr: SocketAddr,
    /// What went wrong, as the node or the transport said.
    pub reason: String,
    /// The node answered with this error (else the transport failed).
    pub kind: Option<ErrorKind>,
}

fn exhausted_message(failures: &[TryFailure]) -> String {
    match failures {
        [only] if only.kind.is_some() => only.reason.clone(),
        [only] => format!("no node answered: {}", only.reason),
        _ => format!(
            "{} tries failed: {}",
            failures.len(),
            failures
                .iter()
                .map(|f| match f.kind {
                    Some(_) => format!("{}: {}", f.addr, f.reason),
                    None => f.reason.clone(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

impl ClientError {
    /// The error kind a node answered with, if the request failed that way.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Refused { kind, .. } => Some(*kind),
            ClientError::Exhausted { failures } => failures.last().and_then(|f| f.kind),
            _ => None,
        }
    }
}

/// What a get returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    pub found: bool,
    /// The live values, one per sibling.
    pub values: Vec<Vec<u8>>,
    /// The causal context to pass to the next put of this key.
    pub context: String,
}

/// Builds a [`Client`]: its nodes to start from, timeouts, retries and routing.
pub struct ClientBuilder {
    identity: Identity,
    seeds: Vec<SocketAddr>,
    config: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    request_timeout: Duration,
    retry: RetryPolicy,
    token_aware: bool,
    topology_refresh: Duration,
    replication: usize,
    write_ids: bool,
}

impl ClientBuilder {
    /// A client with `identity` (a client certificate of the cluster's CA) that finds the
    /// cluster through `seeds`.
    pub fn new(identity: Identity, seeds: Vec<SocketAddr>) -> ClientBuilder {
        ClientBuilder {
            identity,
            seeds,
            config: Config {
                request_timeout: CLIENT_TIMEOUT,
                retry: RetryPolicy::default(),
                token_aware: true,
                topology_refresh: TOPOLOGY_REFRESH,
                replication: 3,
                write_ids: true,
            },
        }
    }

    /// How long one try waits for its reply (and the time budget it carries); default
    /// [`CLIENT_TIMEOUT`].
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.request_timeout = timeout;
        self
    }

    /// Tries of one request at most, the first included (1: no retries; default 3).
    pub fn attempts_max(mut self, attempts: u32) -> ClientBuilder {
        self.config.retry.attempts_max = attempts.max(1);
        self
    }

    /// The whole retry policy (tries, backoff).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> ClientBuilder {
        self.config.retry = policy;
        self
    }

    /// Send a request for a key to its replicas first (default), or to the nodes in turn.
    pub fn token_aware(mut self, on: bool) -> ClientBuilder {
        self.config.token_aware = on;
        self
    }

    /// How often to ask for the topology again (default [`TOPOLOGY_REFRESH`]).
    pub fn topology_refresh(mut self, every: Duration) -> ClientBuilder {
        self.config.topology_refresh = every;
        self
    }

    /// Replicas per key, for nodes that do not say (the first releases); default 3.
    pub fn replication(mut self, n: usize) -> ClientBuilder {
        self.config.replication = n.max(1);
        self
    }

    /// Give every put a write id (default), which makes retrying it safe. Without, a put
    /// that may have been applied is not tried again (only one that never left is).
    pub fn write_ids(mut self, on: bool) -> ClientBuilder {
        self.config.write_ids = on;
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let transport =
            Transport::client(&self.identity)?.with_timeout(self.config.request_timeout);
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                seeds: self.seeds,
                config: self.config,
                topology: RwLock::new(None),
                stale: AtomicBool::new(false),
                refreshing: AtomicBool::new(false),
                fetch: tokio::sync::Mutex::new(()),
                next: AtomicUsize::new(0),
                failed: Mutex::new(HashMap::new()),
                fetch_failed: Mutex::new(None),
            }),
        })
    }
}

/// A cluster-aware client. Cheap to share (`Arc`) between tasks; [`Client::close`] it when
/// done so nodes free its connections at once.
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    seeds: Vec<SocketAddr>,
    config: Config,
    /// The latest topology and when it was fetched.
    topology: RwLock<Option<(Arc<Topology>, Instant)>>,
    /// A node failed: fetch the topology again at the next request.
    stale: AtomicBool,
    refreshing: AtomicBool,
    /// One first fetch at a time (requests made at once share it).
    fetch: tokio::sync::Mutex<()>,
    next: AtomicUsize,
    /// Nodes that failed lately: when last, and how many times in a row (an entry goes when
    /// the node answers; at most one per node the client knows).
    failed: Mutex<HashMap<SocketAddr, (Instant, u32)>>,
    /// When the last first fetch of the topology failed (no node answered): requests that
    /// waited for it go on without one instead of each trying again.
    fetch_failed: Mutex<Option<Instant>>,
}

impl Client {
    /// A client of the nodes at `nodes` with the default settings (see [`ClientBuilder`]).
    pub fn new(identity: &Identity, nodes: Vec<SocketAddr>) -> Result<Client, ClientError> {
        ClientBuilder::new(identity.clone(), nodes).build()
    }

    /// A builder for a client of the cluster described in `home`, with the home's client
    /// certificate.
    pub fn builder_from_home(home: &Path) -> Result<ClientBuilder, ClientError> {
        let cluster = home::read(home)?;
        let dir = home::certs_dir(home);
        let own = certs::read(&dir, "client")?;
        let ca = certs::read_cert(&dir, "ca")?;
        let identity = Identity::new(&own, &ca)?;
        identity.check_valid_now(&certs::paths(&dir, "client").0)?;
        Ok(
            ClientBuilder::new(identity, cluster.nodes.iter().map(|n| n.addr).collect())
                .replication(cluster.replication),
        )
    }

    /// A client of the cluster described in `home`, with the default settings.
    pub fn from_home(home: &Path) -> Result<Client, ClientError> {
        Client::builder_from_home(home)?.build()
    }

    /// Closes the client's connections, telling the nodes (so they free their places at once
    /// instead of at the idle timeout).
    pub async fn close(&self) {
        self.inner.transport.close().await;
    }

    /// The nodes the client knows: the topology's members, or the seeds before it has one.
    pub fn nodes(&self) -> Vec<SocketAddr> {
        match &*self.inner.topology.read() {
            Some((t, _)) if !t.addrs().is_empty() => t.addrs().to_vec(),
            _ => self.inner.seeds.clone(),
        }
    }

    /// The topology the client routes by, fetching it first if it has none.
    pub async fn topology(&self) -> Option<Arc<Topology>> {
        self.inner.topology().await
    }

    /// Sends `request` to `node`, or to the nodes in turn until one answers (retrying where
    /// [`crate::client::retry`] allows). Returns the address that answered and its response.
    pub async fn request(
        &self,
        node: Option<SocketAddr>,
        request: &Request,
    ) -> Result<(SocketAddr, Response), ClientError> {
        let operation = match request {
            Request::Get { .. } | Request::Status | Request::NodeInfo => Operation::Read,
            _ => Operation::Write { idempotent: false },
        };
        self.inner
            .send(None, node, request, operation, Duration::ZERO)
            .await
    }

    fn refused(response: Response, addr: SocketAddr) -> ClientError {
        match response {
            Response::Error { kind, message } => ClientError::Refused { kind, message },
            other => ClientError::Unexpected {
                addr,
                reply: format!("{other:?}"),
            },
        }
    }

    /// Reads `key` at `consistency`, through `node` if given (no retries elsewhere then).
    pub async fn get(
        &self,
        key: &[u8],
        consistency: Consistency,
        node: Option<SocketAddr>,
    ) -> Result<GetResult, ClientError> {
        let request = Request::Get {
            key: ByteBuf::from(key.to_vec()),
            consistency,
        };
        let reply = self
            .inner
            .send(Some(key), node, &request, Operation::Read, Duration::ZERO)
            .await?;
        match reply {
            (
                _,
                Response::Value {
                    found,
                    values,
                    context,
                },
            ) => Ok(GetResult {
                found,
                values: values.into_iter().map(ByteBuf::into_vec).collect(),
                context,
            }),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    /// Writes `value` (or deletes, with `None`); returns the new causal context. Through
    /// `node` if given (no retries elsewhere then).
    pub async fn put(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        context: Option<&str>,
        consistency: Consistency,
        lww: bool,
        node: Option<SocketAddr>,
    ) -> Result<String, ClientError> {
        let write_id = self.inner.config.write_ids.then(new_write_id);
        let request = Request::Put {
            key: ByteBuf::from(key.to_vec()),
            value: value.map(|v| ByteBuf::from(v.to_vec())),
            context: context.map(str::to_string),
            consistency,
            lww,
            forwarded: false,
            write_id,
        };
        let operation = Operation::Write {
            idempotent: write_id.is_some(),
        };
        // The value may be handed on twice (to a replica, then to the others) before the reply.
        let extra = size_allowance(value.map_or(0, <[u8]>::len)) * 3;
        match self
            .inner
            .send(Some(key), node, &request, operation, extra)
            .await?
        {
            (_, Response::Written { context }) => Ok(context),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    /// A node's view of the cluster: (the node's id, the members it knows).
    pub async fn status(
        &self,
        node: Option<SocketAddr>,
    ) -> Result<(String, Vec<MemberView>), ClientError> {
        let reply = self
            .inner
            .send(
                None,
                node,
                &Request::Status,
                Operation::Read,
                Duration::ZERO,
            )
            .await?;
        match reply {
            (_, Response::Members { node, members, .. }) => Ok((node, members)),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    /// `node`'s background workers and engine figures: the node's id, its workers, its
    /// engine (a node of an earlier release answers `Unsupported`).
    /// A node's live layout versions (oldest first) and its sync marks (`node`: any node).
    pub async fn layouts(
        &self,
        node: Option<SocketAddr>,
    ) -> Result<(SocketAddr, Vec<WireLayout>, Vec<(String, u64)>), ClientError> {
        let reply = self
            .inner
            .send(
                None,
                node,
                &Request::LayoutGet,
                Operation::Read,
                Duration::ZERO,
            )
            .await?;
        match reply {
            (addr, Response::Layouts { live, synced }) => Ok((addr, live, synced)),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    pub async fn node_info(
        &self,
        node: SocketAddr,
    ) -> Result<(String, Vec<WorkerInfo>, EngineInfo), ClientError> {
        let reply = self
            .inner
            .send(
                None,
                Some(node),
                &Request::NodeInfo,
                Operation::Read,
                Duration::ZERO,
            )
            .await?;
        match reply {
            (
                _,
                Response::Info {
                    node,
                    workers,
                    engine,
                },
            ) => Ok((node, workers, *engine)),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    /// Has `node` repair the token range (after, upto] across its replicas (it must be one),
    /// sending at most `rate_bytes_per_sec` (0: the most the node allows); waits up to the longest request
    /// budget ([`crate::wire::deadline::REQUEST_BUDGET_MAX`]).
    pub async fn repair(
        &self,
        node: SocketAddr,
        after: u128,
        upto: u128,
        rate_bytes_per_sec: u64,
    ) -> Result<RangeRepaired, ClientError> {
        let request = Request::Repair {
            after,
            upto,
            rate_bytes_per_sec,
        };
        let extra = crate::wire::deadline::REQUEST_BUDGET_MAX
            .saturating_sub(self.inner.config.request_timeout);
        let reply = self
            .inner
            .send(None, Some(node), &request, Operation::Read, extra)
            .await?;
        match reply {
            (
                _,
                Response::Repaired {
                    in_sync_before,
                    keys,
                    leaves_differing,
                    keys_sent,
                    bytes_sent,
                },
            ) => Ok(RangeRepaired {
                in_sync_before,
                keys,
                leaves_differing,
                keys_sent,
                bytes_sent,
            }),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }
}

/// A fresh random write id (128 bits: two clients never pick the same one).
fn new_write_id() -> u128 {
    let mut bytes = [0u8; 16];
    // The system's random source does not fail on the platforms we run on; if it ever did,
    // a write id from the clock and a counter still keeps this client's writes apart.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return now ^ ((COUNTER.fetch_add(1, Ordering::Relaxed) as u128) << 96);
    }
    u128::from_le_bytes(bytes)
}

impl Inner {
    /// The topology, fetched now if there is none yet (token-aware clients only); a refresh
    /// is started in the background when it is old or a node failed since.
    async fn topology(self: &Arc<Self>) -> Option<Arc<Topology>> {
        let current = self.topology.read().clone();
        match current {
            Some((topology, at)) => {
                let old = at.elapsed() >= self.config.topology_refresh;
                if (old || self.stale.load(Ordering::Relaxed))
                    && !self.refreshing.swap(true, Ordering::AcqRel)
                {
                    let inner = self.clone();
                    tokio::spawn(async move {
                        inner.refresh().await;
                        inner.refreshing.store(false, Ordering::Release);
                    });
                }
                Some(topology)
            }
            None => {
                let _one = self.fetch.lock().await;
                let failed_lately = self
                    .fetch_failed
                    .lock()
                    .is_some_and(|at| at.elapsed() < self.config.topology_refresh);
                if self.topology.read().is_none() && !failed_lately {
                    self.refresh().await;
                    if self.topology.read().is_none() {
                        *self.fetch_failed.lock() = Some(Instant::now());
                    }
                }
                self.topology.read().as_ref().map(|(t, _)| t.clone())
            }
        }
    }

    /// Asks the known nodes for their view of the cluster and keeps the first answer. One is
    /// asked at a time, the next as soon as one fails or after [`TOPOLOGY_HEDGE_DELAY`]
    /// without an answer, so a dead node (whose handshake would run to the timeout) costs
    /// that delay, not the timeout.
    async fn refresh(self: &Arc<Self>) {
        self.stale.store(false, Ordering::Relaxed);
        let mut pending = self.rotation(None).into_iter();
        let mut asks = tokio::task::JoinSet::new();
        let ask = |asks: &mut tokio::task::JoinSet<_>, addr: SocketAddr| {
            let inner = self.clone();
            asks.spawn(async move {
                let timeout = inner.config.request_timeout;
                let reply = inner
                    .transport
                    .request_with_timeout(addr, &Request::Status, timeout)
                    .await;
                (addr, reply)
            });
        };
        loop {
            if asks.is_empty() {
                match pending.next() {
                    Some(addr) => ask(&mut asks, addr),
                    None => return,
                }
            }
            let hedge = tokio::time::sleep(TOPOLOGY_HEDGE_DELAY);
            tokio::select! {
                done = asks.join_next() => match done {
                    Some(Ok((_, Ok(Response::Members { members, replication, .. })))) => {
                        let n = match replication {
                            0 => self.config.replication,
                            n => n as usize,
                        };
                        let topology = Topology::new(&members, n);
                        *self.topology.write() = Some((Arc::new(topology), Instant::now()));
                        return;
                    }
                    Some(Ok((addr, _))) => {
                        self.note_failure(addr);
                        self.stale.store(false, Ordering::Relaxed);
                        if let Some(next) = pending.next() {
                            ask(&mut asks, next);
                        }
                    }
                    Some(Err(_)) | None => {}
                },
                _ = hedge => {
                    if let Some(next) = pending.next() {
                        ask(&mut asks, next);
                    }
                }
            }
        }
    }

    /// Every node the client knows, starting at the next in rotation, those that failed
    /// lately last; with a topology and a key, the key's replicas first.
    fn rotation(&self, routed: Option<Vec<SocketAddr>>) -> Vec<SocketAddr> {
        let mut order = match routed {
            Some(order) if !order.is_empty() => order,
            _ => {
                let mut known = match &*self.topology.read() {
                    Some((t, _)) => t.addrs().to_vec(),
                    None => Vec::new(),
                };
                for seed in &self.seeds {
                    if !known.contains(seed) {
                        known.push(*seed);
                    }
                }
                if !known.is_empty() {
                    let start = self.next.fetch_add(1, Ordering::Relaxed) % known.len();
                    known.rotate_left(start);
                }
                known
            }
        };
        // Nodes in their backoff go last (the sort is stable: the order above breaks ties). A
        // node's failures in a row are kept until it answers, so its backoff keeps doubling.
        let failed = self.failed.lock();
        if failed.is_empty() {
            return order;
        }
        order.sort_by_key(|addr| {
            failed
                .get(addr)
                .is_some_and(|(at, count)| at.elapsed() < failed_node_backoff(*count))
        });
        order
    }

    fn note_failure(&self, addr: SocketAddr) {
        let mut failed = self.failed.lock();
        let entry = failed.entry(addr).or_insert((Instant::now(), 0));
        *entry = (Instant::now(), entry.1.saturating_add(1));
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Sends `request` (about `key`, if it has one) to `node`, or along the route, trying
    /// again where the retry policy allows; each try waits `request_timeout + extra`.
    async fn send(
        self: &Arc<Self>,
        key: Option<&[u8]>,
        node: Option<SocketAddr>,
        request: &Request,
        operation: Operation,
        extra: Duration,
    ) -> Result<(SocketAddr, Response), ClientError> {
        let timeout = self.config.request_timeout + extra;
        if let Some(addr) = node {
            let response = self
                .transport
                .request_with_timeout(addr, request, timeout)
                .await?;
            return Ok((addr, response));
        }
        let routed = match key {
            Some(key) if self.config.token_aware => {
                let rotation = self.next.fetch_add(1, Ordering::Relaxed);
                self.topology().await.map(|t| t.route(key, rotation))
            }
            _ => None,
        };
        let order = self.rotation(routed);
        if order.is_empty() {
            return Err(ClientError::NoNode);
        }
        let mut failures: Vec<TryFailure> = Vec::new();
        // Tries so far of each node in `order` (a node appears there once).
        let mut tries = vec![0u32; order.len()];
        for attempt in 1.. {
            let at = (attempt as usize - 1) % order.len();
            let addr = order[at];
            let before = &mut tries[at];
            // Only a node tried before waits (a zero sleep would still wait for the timer's
            // next tick, a millisecond, on every request).
            let backoff = self.config.retry.backoff_before(*before);
            if !backoff.is_zero() {
                tokio::time::sleep(backoff).await;
            }
            *before += 1;
            let failure = match self
                .transport
                .request_with_timeout(addr, request, timeout)
                .await
            {
                Ok(Response::Error { kind, message }) => {
                    failures.push(TryFailure {
                        addr,
                        reason: message,
                        kind: Some(kind),
                    });
                    if kind == ErrorKind::Internal {
                        self.note_failure(addr);
                    }
                    Failure::Answered(kind)
                }
                Ok(response) => {
                    self.failed.lock().remove(&addr);
                    return Ok((addr, response));
                }
                Err(e) => {
                    // Only a request that never got a stream is known not to be taken;
                    // admission control refuses a request with an `Unavailable` answer.
                    let failure = match e {
                        TransportError::Connect { .. } => Failure::NotSent,
                        TransportError::Setup(_) => return Err(e.into()),
                        _ => Failure::Lost,
                    };
                    failures.push(TryFailure {
                        addr,
                        reason: e.to_string(),
                        kind: None,
                    });
                    self.note_failure(addr);
                    failure
                }
            };
            if !self.config.retry.may_retry(operation, failure, attempt) {
                let unsure = failure == Failure::Lost
                    && operation == (Operation::Write { idempotent: false });
                if let (true, Some(last)) = (unsure, failures.last_mut()) {
                    last.reason.push_str(
                        "; not tried again: the put may have been applied, and without a \
                         write id a second try could apply it twice",
                    );
                }
                break;
            }
        }
        match failures.pop() {
            Some(TryFailure {
                kind: Some(kind),
                reason,
                ..
            }) if failures.is_empty() => Err(ClientError::Refused {
                kind,
                message: reason,
            }),
            Some(last) => {
                failures.push(last);
                Err(ClientError::Exhausted { failures })
            }
            None => Err(ClientError::NoNode),
        }
    }
}

/// How long a node that failed `count` times in a row is tried after the others.
fn failed_node_backoff(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(8);
    (FAILED_NODE_BACKOFF_MIN * 2u32.pow(doublings)).min(FAILED_NODE_BACKOFF)
}

/// What the repair of one token range did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeRepaired {
    /// Every replica held the same already.
    pub in_sync_before: bool,
    /// Keys in the range (on the replica with the most).
    pub keys: u64,
    /// Merkle leaves that differed.
    pub leaves_differing: u64,
    /// Replica writes sent (a key to a replica that lacked some of its versions).
    pub keys_sent: u64,
    pub bytes_sent: u64,
}
