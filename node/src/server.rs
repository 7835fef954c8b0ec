//! The node: serves requests over QUIC, coordinates reads and writes for any key, stores its
//! replicas, and gossips membership.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvctl::model::context::ClusterSecret;
use kvctl::model::ring::token_of;
use kvctl::model::version::{
    new_version_against, Siblings, CLOCK_ENTRIES_MAX, SIBLINGS_FORMAT, SIBLINGS_FORMAT_WRITE_IDS,
};
use kvctl::storage::engine::{Engine, EngineError, Limits, Store};
use kvctl::wire::budget::{NodeBudget, RequestBudget};
use kvctl::wire::deadline::Deadline;
use kvctl::wire::proto::{
    self, Consistency, ErrorKind, Member, MemberState, Request, Response, ScanEntry,
};
use kvctl::wire::tls::{Identity, Peer};
use kvctl::wire::transport::{
    serve_stream, size_allowance, Reply, Transport, TransportError, CHUNK_BYTES, REQUEST_TIMEOUT,
};
use parking_lot::Mutex;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use crate::access;
use crate::admission::{self, Connections};
use crate::coordinator::{
    route, Action, ForwardOutcome, ForwardReply, Forwarder, Hinting, ReadCoordinator, ReadFailure,
    ReadOutcome, Route, WriteCoordinator, WriteFailure, WriteOutcome,
};
use crate::handoff::{self, HintRef, Replay, ReplayAction, ReplayStats};
use crate::hints::{Hint, HintLimits, Hints};
use crate::keyspace::{parse_synced_key, synced_key, synced_range};
use crate::lease::DotLease;
use crate::membership::Membership;
use crate::merkle::{self, RangeTree};
use crate::metrics::{Metrics, Operation, Snapshot};
use crate::pacer::{SyncPacer, SYNC_BURST};
use crate::placement::{Placement, Replicas};
use crate::repair::{Entries, RangeRepair, RepairAction, RepairOutcome, TreeReply};
use crate::replica::{Prepared, Replica, ReplicaError, INCOMING_SIBLINGS_MAX};
use crate::tombstones::TombstonePolicy;
use crate::worker::Workers;

/// How long a read repair waits for a replica to take the versions (no client waits for it).
const REPAIR_TIMEOUT: Duration = REQUEST_TIMEOUT;

/// Chunks of a bulk transfer read ahead of the peer (besides the one being written).
const CHUNKS_QUEUED: usize = 2;

const EMPTY_RING: &str = "the ring is empty: no node owns any token yet";

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
    /// Hints kept for replicas that miss writes: bytes per target, the window.
    pub hints: HintLimits,
    /// Bytes a second of hints replayed to one node.
    pub hint_replay_bytes_per_sec: u64,
    /// The failure detector's conviction threshold.
    pub phi_convict_threshold: f64,
    /// How often the node repairs the ranges it is the first replica of; zero: never.
    pub aae_interval: Duration,
    /// How long a tombstone is kept at least (and until a repair covering it completed).
    pub tombstone_grace: Duration,
    /// Where to serve Prometheus metrics (`/metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("storage: {0}")]
    Engine(#[from] kvctl::storage::engine::EngineError),
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

/// The formats of encoded siblings this build reads.
const SIBLINGS_FORMATS: [u8; 2] = [SIBLINGS_FORMAT, SIBLINGS_FORMAT_WRITE_IDS];

/// A key's versions from its stored bytes (none if nothing is stored).
fn decode_stored(stored: Option<Vec<u8>>) -> Result<Siblings, ReadFailure> {
    match stored {
        None => Ok(Siblings::default()),
        Some(bytes) => Siblings::decode(&bytes).map_err(|e| ReadFailure::Failed(e.to_string())),
    }
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
    /// The client's id for the logical write (see [`Request::Put`]).
    write_id: Option<u128>,
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
    placement: Placement,
    /// Engine reads running ([`admission::ENGINE_READS_MAX`]).
    reads: tokio::sync::Semaphore,
    /// Bulk transfers running ([`admission::BULK_TRANSFERS_MAX`]).
    bulk: Arc<tokio::sync::Semaphore>,
    /// Repairs this node coordinates ([`REPAIRS_MAX`]).
    repairs: tokio::sync::Semaphore,
    /// The background workers, by name (`kvctl workers`).
    workers: Workers,
    metrics: Metrics,
    /// Hints this node holds for others.
    hints: Arc<Hints>,
    /// Hints held because their target refused them as bad requests, by target (see
    /// [`Member::hints_refused`]).
    hints_refused: Mutex<BTreeMap<String, u64>>,
    /// Token ranges known in sync on every replica, and since when (wall clock, ms).
    synced: Mutex<BTreeMap<(u128, u128), u64>>,
    /// Fault injection for tests ([`CRASH_BEFORE_PUT_REPLY_ENV`]).
    crash_before_put_reply: Option<std::path::PathBuf>,
}

/// Fault injection for tests: a file path. The first node (of those started with it) to
/// coordinate a put to success creates that file, writes its id in it, and kills itself
/// (SIGKILL) just before the reply leaves, as a crash at the worst moment for the client
/// would: the write is applied, the client never hears. Nodes that find the file there go on.
pub const CRASH_BEFORE_PUT_REPLY_ENV: &str = "KVCTL_FAILPOINT_CRASH_BEFORE_PUT_REPLY";

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

/// What a repair's driver hears back.
enum RepairEvent {
    /// A replica's tree, and its wall clock when it began it (if it said).
    Tree(String, Result<TreeReply, String>, Option<u64>),
    Scan(String, Result<Entries, String>),
    Written(String, Result<(), String>),
}

/// The most ranges a node remembers as repaired in memory: every range of a ring of the most
/// members with the most tokens each.
const SYNCED_RANGES_MAX: usize =
    kvctl::wire::proto::MEMBERS_MAX * kvctl::wire::proto::TOKENS_PER_MEMBER_MAX;

/// The most repairs of ranges a node coordinates at once (asked by clients, or its own
/// anti-entropy); more are refused as unavailable.
pub const REPAIRS_MAX: usize = 2;
/// The slowest pace a repair may ask for, in bytes a second: slower would hold one of the
/// [`REPAIRS_MAX`] places for hours.
pub const REPAIR_BYTES_PER_SEC_MIN: u64 = 1 << 20;
/// The fastest pace a repair may ask for (and what 0, "as fast as allowed", means).
pub const REPAIR_BYTES_PER_SEC_MAX: u64 = 256 << 20;

/// The pace of a repair asked for at `rate` bytes a second: within
/// [[`REPAIR_BYTES_PER_SEC_MIN`], [`REPAIR_BYTES_PER_SEC_MAX`]], 0 meaning the most.
fn repair_rate(rate: u64) -> u64 {
    if rate == 0 {
        return REPAIR_BYTES_PER_SEC_MAX;
    }
    rate.clamp(REPAIR_BYTES_PER_SEC_MIN, REPAIR_BYTES_PER_SEC_MAX)
}

/// How long one step of a repair (a tree, a write) may take.
const REPAIR_STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn hash_of(bytes: &[u8]) -> Result<merkle::Hash, String> {
    bytes.try_into().map_err(|_| {
        format!(
            "a tree hash of {} bytes (expected {})",
            bytes.len(),
            merkle::HASH_BYTES
        )
    })
}

fn tree_reply(root: &[u8], leaves: &[ByteBuf], keys: u64) -> Result<TreeReply, String> {
    Ok(TreeReply {
        root: hash_of(root)?,
        leaves: if leaves.is_empty() {
            None
        } else {
            Some(
                leaves
                    .iter()
                    .map(|l| hash_of(l))
                    .collect::<Result<_, _>>()?,
            )
        },
        keys,
    })
}

/// A replica's keys of (after, upto] with their versions, by a bulk transfer.
async fn remote_scan(
    transport: &Transport,
    addr: SocketAddr,
    after: u128,
    upto: u128,
) -> Result<Entries, String> {
    let mut chunks = transport
        .chunks(addr, &Request::ReplicaScan { after, upto })
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        match chunk.map_err(|e| e.to_string())? {
            Response::Chunk { entries, .. } => out.extend(
                entries
                    .into_iter()
                    .map(|e| (e.key.into_vec(), e.siblings.into_vec())),
            ),
            Response::Error { message, .. } => return Err(message),
            _ => return Err("unexpected reply".to_string()),
        }
    }
    Ok(out)
}

/// The pace of background anti-entropy's writes, in bytes a second.
const AAE_BYTES_PER_SEC: u64 = 8 << 20;

/// How often a node looks for hints to replay.
const HANDOFF_INTERVAL: Duration = Duration::from_secs(1);
/// How long a hint's delivery may take (plus time for its size).
const HINT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// About how many bytes of hints a replay reads from the store at a time.
const HINTS_LISTED_BYTES: u64 = 4 << 20;

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
    node: Arc<Node>,
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
            let (tx, node) = (self.tx.clone(), self.node.clone());
            match action {
                Action::Local => {}
                Action::Send { to, addr } => {
                    let (req, timeout) = (self.request.clone(), self.timeout);
                    tokio::spawn(async move {
                        let sent = node.transport.send_encoded(addr, &req, timeout, None).await;
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
                        let r = node.store_hint(&target, &key, &payload).await;
                        let _ = tx.send(WriteEvent::Hinted(target, r)).await;
                    });
                }
            }
        }
    }

    /// Feeds the coordinator until `done` says to stop; `None` if the channel closed.
    async fn drive(&mut self, mut done: impl FnMut(&mut WriteCoordinator) -> bool) {
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut wake_at = None;
        loop {
            self.carry_out();
            if done(&mut self.c) {
                return;
            }
            self.node
                .set_timer(timer.as_mut(), &mut wake_at, self.c.poll_timeout());
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
                r = local => self.c.on_reply(&self.node.config.id, r),
                () = &mut timer => self.c.on_timeout(self.node.now_ms()),
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
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(crate::metrics::bind(addr).await.map_err(|e| {
                TransportError::Setup(format!("cannot serve metrics on {addr}: {e}"))
            })?),
            None => None,
        };
        let me = Member {
            id: config.id.clone(),
            addr: config.listen,
            tokens: config.tokens.clone(),
            state: MemberState::Normal,
            generation: config.generation,
            heartbeat: 0,
            incarnation: lease.incarnation(),
            siblings_trimmed: 0,
            hints_pending: 0,
            hints_refused: 0,
            metrics: metrics_listener.as_ref().map(|(_, addr)| *addr),
            siblings_format_max: SIBLINGS_FORMAT_WRITE_IDS,
        };
        let actor = lease.actor(&config.id);
        let engine = Arc::new(engine);
        let hints = Arc::new(Hints::open(engine.clone(), config.hints)?);
        let mut synced = BTreeMap::new();
        for entry in engine.scan(synced_range())? {
            let (k, v) = entry?;
            let since = std::str::from_utf8(&v).ok().and_then(|t| t.parse().ok());
            if let (Some(range), Some(since)) = (parse_synced_key(&k), since) {
                synced.insert(range, since);
            }
        }
        let mut membership = Membership::new(me, config.seeds.clone());
        membership.set_phi_convict_threshold(config.phi_convict_threshold);
        let node = Arc::new(Node {
            membership: Mutex::new(membership),
            hints,
            hints_refused: Mutex::new(BTreeMap::new()),
            synced: Mutex::new(synced),
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
            placement: Placement::new(config.replication),
            reads: tokio::sync::Semaphore::new(admission::ENGINE_READS_MAX),
            bulk: Arc::new(tokio::sync::Semaphore::new(admission::BULK_TRANSFERS_MAX)),
            repairs: tokio::sync::Semaphore::new(REPAIRS_MAX),
            workers: Workers::default(),
            metrics: Metrics::new(),
            crash_before_put_reply: std::env::var_os(CRASH_BEFORE_PUT_REPLY_ENV).map(Into::into),
            config,
        });
        let gossip = tokio::spawn(node.clone().gossip_loop());
        let handoff = tokio::spawn(node.clone().handoff_loop());
        let aae = tokio::spawn(node.clone().anti_entropy_loop());
        let sweeper = tokio::spawn(node.clone().tombstone_loop());
        let metrics = metrics_listener.map(|(listener, _)| {
            let n = node.clone();
            tokio::spawn(crate::metrics::serve(
                listener,
                Arc::new(move || n.scrape()),
            ))
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                incoming = transport.endpoint().accept() => {
                    let Some(incoming) = incoming else { break };
                    // A new address must first echo a Retry token: a flood of Initial packets
                    // from made-up addresses gets Retry packets back and nothing more.
                    if !incoming.remote_address_validated() && incoming.may_retry() {
                        let _ = incoming.retry();
                        continue;
                    }
                    let handshake = match node.connections.handshake(incoming.remote_address().ip()) {
                        Ok(handshake) => handshake,
                        Err(reason) => {
                            node.complaints.lock().log(&reason);
                            incoming.refuse();
                            continue;
                        }
                    };
                    let node = node.clone();
                    tokio::spawn(async move {
                        // A failed handshake (no certificate, another CA) ends here; one that
                        // never ends is cut at the idle timeout.
                        let Ok(conn) = incoming.await else { return };
                        drop(handshake);
                        // Counted once the certificate says who it is.
                        let peer = Arc::new(kvctl::wire::tls::peer(&conn));
                        let is_node = peer.node_id().is_some();
                        let _slot = match node.connections.admit(conn.remote_address(), is_node) {
                            Ok(slot) => slot,
                            Err(reason) => {
                                node.complaints.lock().log(&reason);
                                conn.close(CONNECTION_REFUSED_CODE.into(), reason.as_bytes());
                                return;
                            }
                        };
                        let budget = match *peer {
                            Peer::Node { .. } => node.budget.node_connection(),
                            Peer::Client { .. } => node.budget.connection(),
                        };
                        while let Ok((send, recv)) = conn.accept_bi().await {
                            let (node, peer) = (node.clone(), peer.clone());
                            let budget = Arc::new(budget.request());
                            tokio::spawn(async move {
                                serve_stream(send, recv, budget, |req, budget, deadline| {
                                    node.handle(req, &peer, budget, deadline)
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
        handoff.abort();
        aae.abort();
        sweeper.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        transport.close().await;
        // Joining the writer waits for its last round: not on a runtime thread.
        let replica = node.replica.clone();
        let _ = tokio::task::spawn_blocking(move || replica.close()).await;
        engine.close()?;
        Ok(())
    }

    async fn gossip_loop(self: Arc<Self>) {
        let worker = self.workers.register("gossip");
        let mut interval = tokio::time::interval(GOSSIP_INTERVAL);
        loop {
            worker.idle(format!("a round every {} ms", GOSSIP_INTERVAL.as_millis()));
            interval.tick().await;
            worker.done(1);
            let round = {
                let mut membership = self.membership.lock();
                membership.set_siblings_trimmed(self.replica.trims().total());
                let refused = self.hints_refused.lock().values().sum();
                membership.set_hints_pending(self.hints.pending_total(), refused);
                membership.tick(self.now_ms())
            };
            let Some((target, members)) = round else {
                continue;
            };
            let (node, worker) = (self.clone(), worker.clone());
            tokio::spawn(async move {
                match node
                    .transport
                    .request(target, &Request::Gossip { members })
                    .await
                {
                    Ok(Response::Members { members: views, .. }) => {
                        // The reply speaks for the node whose certificate answered.
                        let responder = node.transport.peer_of(target);
                        let responder = responder.as_ref().and_then(|p| p.node_id());
                        node.take_gossip(views.into_iter().map(|v| v.member), responder);
                    }
                    Ok(other) => worker.error(format!("{target} answered {other:?}"), false),
                    Err(e) => worker.error(e, false),
                }
            });
        }
    }

    /// Tells the transport which node each member's address is, so a request meant for one
    /// node is never taken by another that now answers at its address.
    fn expect_members(&self) {
        let now = self.now_ms();
        let members = self.membership.lock().views(now);
        self.transport.expect_nodes(
            members
                .into_iter()
                .filter(|v| v.member.id != self.config.id)
                .map(|v| (v.member.addr, v.member.id)),
        );
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
        self.expect_members();
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
        deadline: Deadline,
    ) -> Reply {
        if let Err(refusal) = access::check(&request, peer) {
            return refusal.into();
        }
        let started = Instant::now();
        let response = match request {
            Request::Get { key, consistency } => {
                let response = self
                    .clone()
                    .get(key.into_vec(), consistency, budget, deadline)
                    .await;
                let failed = matches!(response, Response::Error { .. });
                self.metrics
                    .request(Operation::Get, consistency, started.elapsed(), failed);
                response
            }
            Request::Put {
                key,
                value,
                context,
                consistency,
                lww,
                forwarded,
                write_id,
            } => {
                let op = if value.is_some() {
                    Operation::Put
                } else {
                    Operation::Delete
                };
                let put = Put {
                    key: key.into_vec(),
                    value: value.map(ByteBuf::into_vec),
                    context,
                    level: consistency,
                    lww,
                    forwarded,
                    write_id,
                };
                let response = self.clone().put(put, budget, deadline).await;
                if !forwarded {
                    let failed = matches!(response, Response::Error { .. });
                    self.metrics
                        .request(op, consistency, started.elapsed(), failed);
                }
                response
            }
            Request::ReplicaRead { key } => {
                self.metrics.replica_reads.inc();
                self.replica_read(key.into_vec(), budget).await
            }
            Request::ReplicaWrite { key, siblings } => {
                self.metrics.replica_writes.inc();
                self.replica_write(key.into_vec(), siblings.into_vec(), deadline)
                    .await
            }
            Request::Gossip { members } => {
                self.take_gossip(members, peer.node_id());
                let now = self.now_ms();
                Response::Members {
                    node: self.config.id.clone(),
                    members: self.membership.lock().views(now),
                    replication: self.placement.replication() as u32,
                }
            }
            Request::Status => {
                let now = self.now_ms();
                let views = self.membership.lock().views(now);
                Response::Members {
                    node: self.config.id.clone(),
                    members: views,
                    replication: self.placement.replication() as u32,
                }
            }
            Request::NodeInfo => self.info(),
            Request::ReplicaScan { after, upto } => return self.replica_scan(after, upto, &budget),
            Request::MerkleTree {
                after,
                upto,
                leaves,
            } => self.merkle_tree(after, upto, leaves).await,
            Request::Repair {
                after,
                upto,
                rate_bytes_per_sec,
            } => {
                let Ok(_running) = self.repairs.try_acquire() else {
                    return error(
                        ErrorKind::Unavailable,
                        format!(
                            "{REPAIRS_MAX} repairs are running on this node, the most it runs \
                             at once (repairs_max); retry later"
                        ),
                    )
                    .into();
                };
                let name = format!("repair ({after}, {upto}]");
                let worker = self.workers.register(&name);
                worker.busy("comparing and merging the replicas");
                let repaired = self
                    .repair_range(after, upto, repair_rate(rate_bytes_per_sec))
                    .await;
                self.workers.remove(&name);
                repaired
            }
            Request::RangeSynced {
                after,
                upto,
                since_ms,
            } => match self.check_synced(peer.node_id(), after, upto, since_ms) {
                Err(e) => error(ErrorKind::Invalid, e),
                Ok(since_ms) => match self.record_synced(after, upto, since_ms).await {
                    Ok(()) => Response::Ack,
                    Err(e) => error(ErrorKind::Internal, e),
                },
            },
        };
        response.into()
    }

    /// The node's metrics as a scrape sees them now.
    fn scrape(&self) -> String {
        let engine = kvctl::storage::engine::Store::stats(self.replica.engine().as_ref());
        self.metrics.render(Snapshot {
            hints_held: self.hints.pending_total(),
            hints_refused: self.hints_refused.lock().values().sum(),
            connections: self.connections.count(),
            bytes_in_flight: self.budget.held_bytes(),
            workers: self.worker_list(&engine),
            engine,
        })
    }

    /// The node's workers, with the engine's background threads as the engine reports them
    /// (flushes: busy while a rotated memtable waits; compactions: how many so far).
    fn worker_list(&self, engine: &kvctl::storage::engine::Stats) -> Vec<proto::WorkerInfo> {
        let mut workers = self.workers.list();
        let state = |busy| {
            if busy {
                proto::WorkerState::Busy
            } else {
                proto::WorkerState::Idle
            }
        };
        workers.push(proto::WorkerInfo {
            name: "engine-flush".into(),
            state: state(engine.immutable_memtables > 0),
            progress: format!(
                "{} rotated memtable(s) waiting, {} KiB in the memtable",
                engine.immutable_memtables,
                engine.memtable_bytes >> 10
            ),
            done: engine.flushes,
            errors: 0,
            last_error: None,
        });
        workers.push(proto::WorkerInfo {
            name: "engine-compaction".into(),
            state: proto::WorkerState::Idle,
            progress: format!("tables per level {:?}", engine.tables_per_level),
            done: engine.compactions,
            errors: 0,
            last_error: None,
        });
        workers
    }

    /// This node's workers and engine figures.
    fn info(&self) -> Response {
        let stats = kvctl::storage::engine::Store::stats(self.replica.engine().as_ref());
        Response::Info {
            node: self.config.id.clone(),
            workers: self.worker_list(&stats),
            engine: Box::new(proto::EngineInfo {
                last_seq: stats.last_seq,
                memtable_bytes: stats.memtable_bytes,
                wal_segments: stats.wal_segments,
                tables_per_level: stats.tables_per_level,
                bytes_per_level: stats.bytes_per_level,
                cache_bytes: stats.cache_bytes,
                cache_hits: stats.cache_hits,
                cache_misses: stats.cache_misses,
                flushes: stats.flushes,
                compactions: stats.compactions,
                wal_syncs: stats.wal_syncs,
            }),
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

    /// The replicas of `key` as this node sees the ring and its members now.
    fn replicas(&self, key: &[u8]) -> Replicas {
        self.replicas_at(token_of(key))
    }

    /// The replicas of the keys of `token`.
    fn replicas_at(&self, token: u128) -> Replicas {
        let membership = self.membership.lock();
        let members = membership.at(self.now_ms());
        self.placement
            .replicas_at(&membership.ring(), token, &members)
    }

    /// A get: the [`ReadCoordinator`] decides whom to ask and when it is done; this carries
    /// out what it asks for (the local read off the runtime's threads, replica reads as tasks)
    /// and feeds it their replies and the time.
    async fn get(
        self: Arc<Self>,
        key: Vec<u8>,
        level: Consistency,
        budget: Arc<RequestBudget>,
        deadline: Deadline,
    ) -> Response {
        if let Err(e) = self.check_key(&key) {
            return e;
        }
        let token = token_of(&key);
        let replicas = self.replicas_at(token);
        if replicas.is_empty() {
            return error(ErrorKind::Unavailable, EMPTY_RING);
        }
        let deadline = deadline.for_coordinator();
        let mut c = ReadCoordinator::new(
            &self.config.id,
            replicas.primaries,
            level,
            self.now_ms(),
            deadline.remaining().as_millis() as u64,
        );
        let (tx, mut rx) = mpsc::channel(self.config.replication + 1);
        let key = Arc::new(key);
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut wake_at = None;
        let outcome = loop {
            while let Some(action) = c.poll_action() {
                if action == Action::Local {
                    // Served from memory here, as most reads are; else off the runtime.
                    if let Some(read) = self.read_local_cached(token, &key, &budget) {
                        c.on_local(read, self.now_ms());
                        continue;
                    }
                }
                let (tx, node, key, budget) =
                    (tx.clone(), self.clone(), key.clone(), budget.clone());
                match action {
                    Action::Local => {
                        tokio::spawn(async move {
                            let me = node.config.id.clone();
                            let read = node.clone().read_local(key, budget).await;
                            let _ = tx.send((me, read)).await;
                        });
                    }
                    Action::Send { to, addr } => {
                        tokio::spawn(async move {
                            let read = node.replica_read_from(addr, &key, &budget, deadline).await;
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
            self.set_timer(timer.as_mut(), &mut wake_at, c.poll_timeout());
            tokio::select! {
                Some((from, read)) = rx.recv() => c.on_reply(&from, read, self.now_ms()),
                () = &mut timer => c.on_timeout(self.now_ms()),
            }
        };
        match outcome {
            ReadOutcome::Done {
                merged,
                trimmed,
                stale,
            } => {
                self.replica.trims().record(&key, trimmed);
                self.repair(&key, &merged, stale, budget);
                let context = self.config.secret.seal(&key, &merged.context());
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

    /// Sets a coordinator's `timer` to fire at `wake` (ms on the node's clock, see
    /// [`Node::now_ms`]), unless it is set for then already (`set` remembers when).
    fn set_timer(
        &self,
        timer: std::pin::Pin<&mut tokio::time::Sleep>,
        set: &mut Option<u64>,
        wake: Option<u64>,
    ) {
        let wake = wake.unwrap_or_default();
        if *set != Some(wake) {
            *set = Some(wake);
            let at = self.started + Duration::from_millis(wake);
            timer.reset(tokio::time::Instant::from_std(at));
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
    fn repair(
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
                    let timeout = REPAIR_TIMEOUT + size_allowance(bytes.len());
                    let request = Request::ReplicaWrite {
                        key: ByteBuf::from(key.clone()),
                        siblings: ByteBuf::from(bytes.clone()),
                    };
                    let _ = node
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

    async fn put(
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
        // Only a context the nodes sealed for this key is taken: see `kvctl::model::context`.
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
            return error(ErrorKind::Unavailable, EMPTY_RING);
        }
        match route(&self.config.id, &replicas, forwarded) {
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
        let write_id = write_id.filter(|_| self.membership.lock().all_read_write_ids());
        let value_bytes = value.as_ref().map_or(0, Vec::len);
        let local = self
            .replica
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
            &self.config.id,
            &replicas.primaries,
            level,
            self.now_ms(),
            timeout.as_millis() as u64,
            Hinting::On,
        );
        let (tx, rx) = mpsc::channel(2 * self.config.replication + 2);
        let mut write = WriteDriver {
            node: self.clone(),
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
            crash_first(marker, &self.config.id);
        }
        match outcome {
            // The context of the new version alone: siblings it did not see stay unseen.
            WriteOutcome::Done => Response::Written {
                context: self.config.secret.seal(&key, &incoming.context()),
            },
            WriteOutcome::Failed(e) => error(
                ErrorKind::Unavailable,
                format!("{e} (the write is stored on the replicas that answered)"),
            ),
        }
    }

    /// Checks a peer's word that (after, upto] is in sync as of `since_ms`: taken only from a
    /// replica of a range of this node's ring that this node is a replica of too, and never
    /// ahead of this node's clock (a time ahead would let tombstones go early). Returns the
    /// time to record.
    fn check_synced(
        &self,
        sender: Option<&str>,
        after: u128,
        upto: u128,
        since_ms: u64,
    ) -> Result<u64, String> {
        let ring = self.membership.lock().ring();
        if !ring.token_ranges().contains(&(after, upto)) {
            return Err(format!(
                "({after}, {upto}] is not a token range of this node's ring"
            ));
        }
        let replicas = ring.preference_list_for_token(upto, self.config.replication);
        let sender = sender.unwrap_or_default();
        if !replicas.iter().any(|r| r == sender) || !replicas.contains(&self.config.id) {
            return Err(format!(
                "{sender} and this node are not both replicas of ({after}, {upto}] (its replicas: \
                 {})",
                replicas.join(", ")
            ));
        }
        Ok(since_ms.min(wall_ms()))
    }

    /// Records, durably, that (after, upto] was in sync on every replica as of `since_ms`.
    async fn record_synced(&self, after: u128, upto: u128, since_ms: u64) -> Result<(), String> {
        let newer = self
            .synced
            .lock()
            .get(&(after, upto))
            .is_none_or(|s| *s < since_ms);
        if !newer {
            return Ok(());
        }
        self.replica
            .raw_write(
                synced_key(after, upto),
                Some(since_ms.to_string().into_bytes()),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut synced = self.synced.lock();
        if synced.len() >= SYNCED_RANGES_MAX && !synced.contains_key(&(after, upto)) {
            // Ranges of earlier rings go first (their entries stay on disk, read at start).
            let ranges: std::collections::HashSet<(u128, u128)> = self
                .membership
                .lock()
                .ring()
                .token_ranges()
                .into_iter()
                .collect();
            synced.retain(|range, _| ranges.contains(range));
        }
        let entry = synced.entry((after, upto)).or_default();
        *entry = (*entry).max(since_ms);
        Ok(())
    }

    /// Tombstone removal, as the [`TombstonePolicy`] says: every sweep interval, removes the
    /// keys of the repaired ranges whose versions are all tombstones past the cutoff. Before
    /// that repair, a replica that missed the delete could bring the value back; after it,
    /// every replica has the tombstone or has purged it.
    async fn tombstone_loop(self: Arc<Self>) {
        let policy = TombstonePolicy::new(self.config.tombstone_grace);
        let worker = self.workers.register("tombstone-sweep");
        worker.idle("no sweep yet");
        loop {
            tokio::time::sleep(policy.sweep_interval()).await;
            let now = wall_ms();
            let ranges: Vec<((u128, u128), u64)> =
                self.synced.lock().iter().map(|(r, s)| (*r, *s)).collect();
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

    /// Background anti-entropy: every `aae_interval`, repairs each range this node is the
    /// first replica of, one at a time, at [`AAE_BYTES_PER_SEC`].
    async fn anti_entropy_loop(self: Arc<Self>) {
        let every = self.config.aae_interval;
        let worker = self.workers.register("anti-entropy");
        if every.is_zero() {
            worker.idle("off (--aae-interval 0s)");
            return;
        }
        worker.idle("no round yet");
        loop {
            tokio::time::sleep(every).await;
            let ranges: Vec<(u128, u128)> = {
                let ring = self.membership.lock().ring();
                ring.token_ranges()
                    .into_iter()
                    .filter(|r| ring.owner(r.1) == Some(&self.config.id))
                    .collect()
            };
            let (mut repaired, mut sent, mut failed) = (0, 0, Vec::new());
            for (i, (after, upto)) in ranges.iter().enumerate() {
                worker.busy(format!("range {} of {}", i + 1, ranges.len()));
                let Ok(_running) = self.repairs.acquire().await else {
                    return;
                };
                match self.repair_range(*after, *upto, AAE_BYTES_PER_SEC).await {
                    Response::Repaired {
                        in_sync_before,
                        keys_sent,
                        ..
                    } => {
                        repaired += u64::from(!in_sync_before);
                        sent += keys_sent;
                    }
                    Response::Error { message, .. } => {
                        worker.error(&message, false);
                        failed.push(message)
                    }
                    _ => {}
                }
                worker.done(1);
            }
            worker.idle(format!(
                "last round: {} ranges, {repaired} repaired, {} not in sync",
                ranges.len(),
                failed.len()
            ));
            if repaired > 0 || !failed.is_empty() {
                eprintln!(
                    "anti-entropy: {} ranges compared, {repaired} repaired ({sent} keys sent), \
                     {} not in sync{}",
                    ranges.len(),
                    failed.len(),
                    failed
                        .first()
                        .map(|f| format!(" ({f})"))
                        .unwrap_or_default()
                );
            }
        }
    }

    /// Replays hints to the nodes they are for once those are up again (at most one replay
    /// at a time per node, targets in turn), and drops hints older than the hint window.
    async fn handoff_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(HANDOFF_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let worker = self.workers.register("hint-replay");
        loop {
            let pending = self.hints.pending_total();
            worker.idle(format!("{pending} hint(s) held"));
            interval.tick().await;
            for target in self.hints.pending().into_keys() {
                worker.busy(format!("hints for {target}"));
                let addr = {
                    let membership = self.membership.lock();
                    membership
                        .is_up(&target, self.now_ms())
                        .then(|| membership.addr_of(&target))
                        .flatten()
                };
                let outcome = self.replay_hints(&target, addr).await;
                match outcome {
                    Ok(stats) if stats.delivered + stats.expired > 0 => {
                        worker.done(stats.delivered);
                        self.metrics.hints_delivered.inc_by(stats.delivered);
                        eprintln!(
                            "hints for {target}: {} delivered ({} bytes), {} expired (older \
                             than the hint window)",
                            stats.delivered, stats.delivered_bytes, stats.expired
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        worker.error(format!("{target}: {e}"), false);
                        self.complaints
                            .lock()
                            .log(&format!("to stop replaying hints to {target} for now: {e}"))
                    }
                }
            }
        }
    }

    /// One replay of `target`'s hints, oldest first, as a [`Replay`] paces it: to `addr` if
    /// the target is up there, else only dropping what is past the hint window.
    async fn replay_hints(
        &self,
        target: &str,
        addr: Option<SocketAddr>,
    ) -> Result<ReplayStats, String> {
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let outcome = self.replay_hints_once(target, addr, &refused).await;
        let mut held = self.hints_refused.lock();
        if refused.load(std::sync::atomic::Ordering::Relaxed) {
            let pending = self.hints.pending().get(target).map_or(0, |p| p.count);
            held.insert(target.to_string(), pending);
        } else if outcome.as_ref().is_ok_and(|s| s.delivered > 0)
            || !self.hints.pending().contains_key(target)
        {
            held.remove(target);
        }
        outcome
    }

    /// [`Node::replay_hints`], setting `refused` when the target refuses a hint as a bad
    /// request.
    async fn replay_hints_once(
        &self,
        target: &str,
        addr: Option<SocketAddr>,
        refused: &Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<ReplayStats, String> {
        let window_ms = self.hints.limits().window.as_millis() as u64;
        let rate = self.config.hint_replay_bytes_per_sec;
        let mut replay = Replay::new(rate, window_ms, wall_ms());
        let mut contents: HashMap<Vec<u8>, Hint> = HashMap::new();
        let (tx, mut rx) = mpsc::channel(handoff::IN_FLIGHT_MAX);
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
                            self.delete_hint(&mut deletes, target, hint);
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
                        let (node, tx) = (self.transport.clone(), tx.clone());
                        let refused = refused.clone();
                        tokio::spawn(async move {
                            let r = deliver_hint(&node, addr, content).await;
                            let r = r.map_err(|e| match e {
                                Undelivered::Refused(why) => {
                                    refused.store(true, std::sync::atomic::Ordering::Relaxed);
                                    why
                                }
                                Undelivered::Failed(why) => why,
                            });
                            let _ = tx.send((hint, r)).await;
                        });
                    }
                    ReplayAction::Delete(hint) | ReplayAction::Expire(hint) => {
                        contents.remove(&hint.id);
                        self.delete_hint(&mut deletes, target, hint);
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
            let wait = replay
                .poll_timeout()
                .map(|at| Duration::from_millis(at.saturating_sub(wall_ms())));
            tokio::select! {
                Some((hint, r)) = rx.recv() => replay.on_delivered(hint, r),
                () = tokio::time::sleep(wait.unwrap_or(HANDOFF_INTERVAL)), if wait.is_some() => {}
            }
        }
    }

    /// Deletes a hint durably (as a task in `deletes`), and forgets it once it is gone.
    fn delete_hint(&self, deletes: &mut Deletes, target: &str, hint: HintRef) {
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

    /// A place among the [`admission::BULK_TRANSFERS_MAX`] scans (bulk transfers and Merkle
    /// trees) a node serves at once, or the refusal to answer with.
    fn bulk_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
        self.bulk.clone().try_acquire_owned().map_err(|_| {
            error(
                ErrorKind::Unavailable,
                format!(
                    "{} bulk transfers are running, the most a node serves at once \
                     (bulk_transfers_max); retry later",
                    admission::BULK_TRANSFERS_MAX
                ),
            )
        })
    }

    /// A place among the bulk transfers for this node's own scans (a repair it coordinates),
    /// waited for: the repairs are bounded by [`REPAIRS_MAX`] already.
    async fn bulk_permit_waiting(&self) -> Result<tokio::sync::OwnedSemaphorePermit, String> {
        self.bulk
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())
    }

    /// This replica's Merkle tree of (after, upto], built by one scan off the runtime's
    /// threads; at most [`admission::BULK_TRANSFERS_MAX`] scans (trees and bulk transfers) run.
    async fn merkle_tree(&self, after: u128, upto: u128, leaves: bool) -> Response {
        let _permit = match self.bulk_permit() {
            Ok(permit) => permit,
            Err(busy) => return busy,
        };
        let clock_ms = Some(wall_ms());
        match self.tree_of(after, upto).await {
            Ok(tree) => Response::Tree {
                root: ByteBuf::from(tree.root().to_vec()),
                leaves: if leaves {
                    tree.leaves
                        .iter()
                        .map(|l| ByteBuf::from(l.to_vec()))
                        .collect()
                } else {
                    Vec::new()
                },
                keys: tree.keys,
                clock_ms,
            },
            Err(e) => error(ErrorKind::Internal, e),
        }
    }

    /// This replica's tree of (after, upto] for a repair it coordinates, once a bulk transfer's
    /// place is free.
    async fn local_tree(&self, after: u128, upto: u128) -> Result<RangeTree, String> {
        let _permit = self.bulk_permit_waiting().await?;
        self.tree_of(after, upto).await
    }

    /// This replica's tree of (after, upto], by one scan off the runtime's threads (the caller
    /// holds a bulk transfer's place).
    async fn tree_of(&self, after: u128, upto: u128) -> Result<RangeTree, String> {
        let replica = self.replica.clone();
        tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            for entry in replica.scan(after, upto) {
                let (key, siblings) = entry.map_err(|e| e.to_string())?;
                let hash = merkle::entry_hash(&key, &siblings);
                entries.push((key, hash));
            }
            Ok(RangeTree::from_hashes(after, upto, entries))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// This replica's keys of (after, upto] with their stored versions, read off the
    /// runtime's threads.
    async fn local_scan(&self, after: u128, upto: u128) -> Result<Entries, String> {
        let replica = self.replica.clone();
        let permit = self.bulk_permit_waiting().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            replica
                .scan(after, upto)
                .map(|e| e.map_err(|e| e.to_string()))
                .collect()
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Repairs (after, upto] across its replicas, as a [`RangeRepair`] directs: trees, scans
    /// of the differing leaves, and writes of the merges, paced to `rate_bytes_per_sec`.
    async fn repair_range(self: &Arc<Self>, after: u128, upto: u128, rate: u64) -> Response {
        let (ring, ids, addrs) = {
            let membership = self.membership.lock();
            let ring = membership.ring();
            let ids = ring.preference_list_for_token(upto, self.config.replication);
            let now = self.now_ms();
            let addrs: HashMap<String, Option<SocketAddr>> = ids
                .iter()
                .map(|id| {
                    let up = membership.is_up(id, now);
                    (id.clone(), membership.addr_of(id).filter(|_| up))
                })
                .collect();
            (ring, ids, addrs)
        };
        // One of the ring's own ranges, whose keys all have these replicas: a span across
        // ranges would compare (and mark in sync) keys on nodes that are not their replicas.
        if !ring.token_ranges().contains(&(after, upto)) {
            return error(
                ErrorKind::BadRequest,
                format!(
                    "({after}, {upto}] is not a token range of this node's ring (the ring may \
                     have changed: list the ranges again)"
                ),
            );
        }
        if !ids.contains(&self.config.id) {
            return error(
                ErrorKind::BadRequest,
                format!(
                    "this node ({}) is not a replica of the range ({after}, {upto}] (its \
                     replicas: {}); ask one of them",
                    self.config.id,
                    ids.join(", ")
                ),
            );
        }
        if let Some((down, _)) = addrs.iter().find(|(_, a)| a.is_none()) {
            return error(
                ErrorKind::Unavailable,
                format!("cannot repair ({after}, {upto}]: its replica {down} is down"),
            );
        }
        let started_ms = wall_ms();
        let mut since_ms = started_ms;
        let replicas = ids.clone();
        let mut repair = RangeRepair::new(after, upto, ids);
        let (tx, mut rx) = mpsc::channel(64);
        let mut next_write = Instant::now();
        let outcome = loop {
            while let Some(action) = repair.poll_action() {
                let (node, tx) = (self.clone(), tx.clone());
                let addr = match &action {
                    RepairAction::Tree { replica, .. }
                    | RepairAction::Scan { replica, .. }
                    | RepairAction::Write { replica, .. } => addrs
                        .get(replica)
                        .copied()
                        .flatten()
                        .filter(|_| *replica != self.config.id),
                };
                if let RepairAction::Write { key, siblings, .. } = &action {
                    // The throttle: each write's bytes take their share of a second.
                    let bytes = (key.len() + siblings.len()) as u64;
                    tokio::time::sleep_until(next_write.into()).await;
                    if let Some(pause) = bytes.saturating_mul(1_000_000).checked_div(rate) {
                        next_write = next_write.max(Instant::now()) + Duration::from_micros(pause);
                    }
                }
                tokio::spawn(async move {
                    let event = node.repair_step((after, upto), action, addr).await;
                    let _ = tx.send(event).await;
                });
            }
            if let Some(outcome) = repair.poll_outcome() {
                break outcome;
            }
            let Some(event) = rx.recv().await else {
                return error(ErrorKind::Internal, "the repair lost its steps");
            };
            match event {
                RepairEvent::Tree(from, tree, clock_ms) => {
                    // Tombstones are written with their coordinator's clock, a replica's: from
                    // the earliest of the replicas' clocks, the repair covers every tombstone
                    // older than it whichever clock wrote it.
                    since_ms = since_ms.min(clock_ms.unwrap_or(started_ms));
                    repair.on_tree(&from, tree)
                }
                RepairEvent::Scan(from, entries) => repair.on_scan(&from, entries),
                RepairEvent::Written(to, written) => repair.on_written(&to, written),
            }
        };
        // Only if the ring did not change meanwhile (its ranges and replicas are the same).
        let unchanged = {
            let now = self.membership.lock().ring();
            Arc::ptr_eq(&now, &ring)
                || (now.token_ranges() == ring.token_ranges()
                    && now.preference_list_for_token(upto, self.config.replication) == replicas)
        };
        if unchanged
            && matches!(
                outcome,
                RepairOutcome::InSync(_) | RepairOutcome::Repaired(_)
            )
        {
            // Every tombstone older than the repair's start is on every replica now.
            for id in &replicas {
                let told = match addrs.get(id).copied().flatten() {
                    _ if *id == self.config.id => self.record_synced(after, upto, since_ms).await,
                    Some(addr) => {
                        let request = Request::RangeSynced {
                            after,
                            upto,
                            since_ms,
                        };
                        match self
                            .transport
                            .request_with_timeout(addr, &request, REPAIR_STEP_TIMEOUT)
                            .await
                        {
                            Ok(Response::Ack) => Ok(()),
                            Ok(other) => Err(format!("{other:?}")),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    None => Err("down".to_string()),
                };
                if let Err(e) = told {
                    self.complaints.lock().log(&format!(
                        "to tell {id} that ({after}, {upto}] is in sync: {e}"
                    ));
                }
            }
        }
        match outcome {
            RepairOutcome::InSync(stats) | RepairOutcome::Repaired(stats) => {
                self.metrics.repair_bytes.inc_by(stats.bytes_sent);
                Response::Repaired {
                    in_sync_before: stats.leaves_differing == 0,
                    keys: stats.keys,
                    leaves_differing: stats.leaves_differing,
                    keys_sent: stats.keys_sent,
                    bytes_sent: stats.bytes_sent,
                }
            }
            RepairOutcome::Failed(why, _) => error(
                ErrorKind::Unavailable,
                format!("the range ({after}, {upto}] is not in sync: {why}"),
            ),
        }
    }

    /// Carries out one step of the repair of `range`: on this node (`addr` is `None`) or on
    /// a replica.
    async fn repair_step(
        &self,
        (after, upto): (u128, u128),
        action: RepairAction,
        addr: Option<SocketAddr>,
    ) -> RepairEvent {
        match action {
            RepairAction::Tree { replica, leaves } => {
                let mut clock = Some(wall_ms());
                let tree = match addr {
                    None => self.local_tree(after, upto).await.map(|tree| TreeReply {
                        root: tree.root(),
                        leaves: leaves.then(|| tree.leaves.clone()),
                        keys: tree.keys,
                    }),
                    Some(addr) => {
                        let request = Request::MerkleTree {
                            after,
                            upto,
                            leaves,
                        };
                        match self
                            .transport
                            .request_with_timeout(addr, &request, REPAIR_STEP_TIMEOUT)
                            .await
                        {
                            Ok(Response::Tree {
                                root,
                                leaves,
                                keys,
                                clock_ms,
                            }) => {
                                clock = clock_ms;
                                tree_reply(&root, &leaves, keys)
                            }
                            Ok(Response::Error { message, .. }) => Err(message),
                            Ok(_) => Err("unexpected reply".to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                };
                RepairEvent::Tree(replica, tree, clock)
            }
            RepairAction::Scan {
                replica,
                after,
                upto,
            } => {
                let entries = match addr {
                    None => self.local_scan(after, upto).await,
                    Some(addr) => remote_scan(&self.transport, addr, after, upto).await,
                };
                RepairEvent::Scan(replica, entries)
            }
            RepairAction::Write {
                replica,
                key,
                siblings,
            } => {
                let written = match addr {
                    None => match Siblings::decode(&siblings) {
                        Ok(incoming) => self
                            .replica
                            .merge_write(&key, incoming)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    Some(addr) => {
                        let timeout = REPAIR_STEP_TIMEOUT + size_allowance(siblings.len());
                        let request = Request::ReplicaWrite {
                            key: ByteBuf::from(key),
                            siblings: ByteBuf::from(siblings),
                        };
                        match self
                            .transport
                            .request_with_timeout(addr, &request, timeout)
                            .await
                        {
                            Ok(Response::Ack) => Ok(()),
                            Ok(Response::Error { message, .. }) => Err(message),
                            Ok(_) => Err("unexpected reply".to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                };
                RepairEvent::Written(replica, written)
            }
        }
    }

    /// Stores a hint of `key`'s `siblings` for `target` on this node, durably.
    async fn store_hint(&self, target: &str, key: &[u8], siblings: &[u8]) -> Result<(), String> {
        let down_for = self.membership.lock().down_for(target, self.now_ms());
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

    /// Hands a request to a replica of the key, as the [`Forwarder`] chooses, within what is
    /// left of the request's deadline.
    async fn forward(
        &self,
        mut forwarder: Forwarder,
        request: Request,
        deadline: Deadline,
    ) -> Response {
        let deadline = deadline.for_coordinator();
        loop {
            if let Some(why) = forwarder.poll_failure() {
                return error(ErrorKind::Unavailable, why);
            }
            let Some(Action::Send { to, addr }) = forwarder.poll_action() else {
                return error(
                    ErrorKind::Internal,
                    "the forwarder stopped without an outcome",
                );
            };
            let reply = match self
                .transport
                .request_with_timeout(addr, &request, deadline.remaining())
                .await
            {
                Ok(response) => ForwardReply::Answered(response),
                Err(e @ TransportError::Connect { .. }) => ForwardReply::Unreachable(e.to_string()),
                Err(e) => ForwardReply::Unconfirmed(e.to_string()),
            };
            match forwarder.on_reply(&to, reply) {
                Some(ForwardOutcome::Answered(response)) => return response,
                Some(ForwardOutcome::Failed(why)) => return error(ErrorKind::Unavailable, why),
                None => {}
            }
        }
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

    /// A bulk transfer: the keys of (after, upto] and their versions, read by a blocking task
    /// in token order and sent in chunks of about [`CHUNK_BYTES`]. At most
    /// [`admission::BULK_TRANSFERS_MAX`] run at once; each holds at most
    /// [`CHUNKS_QUEUED`] + 1 chunks, taken from its request's budget up front.
    fn replica_scan(&self, after: u128, upto: u128, budget: &RequestBudget) -> Reply {
        let permit = match self.bulk_permit() {
            Ok(permit) => permit,
            Err(busy) => return busy.into(),
        };
        if let Err(e) = budget.take((CHUNKS_QUEUED + 1) * CHUNK_BYTES) {
            return error(ErrorKind::Unavailable, e).into();
        }
        let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
        let replica = self.replica.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut entries = Vec::new();
            let mut bytes = 0;
            for entry in replica.scan(after, upto) {
                match entry {
                    Ok((key, siblings)) => {
                        bytes += key.len() + siblings.len();
                        entries.push(ScanEntry {
                            key: ByteBuf::from(key),
                            siblings: ByteBuf::from(siblings),
                        });
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(error(ErrorKind::Internal, e));
                        return;
                    }
                }
                if bytes >= CHUNK_BYTES {
                    let chunk = Response::Chunk {
                        entries: std::mem::take(&mut entries),
                        last: false,
                    };
                    bytes = 0;
                    if tx.blocking_send(chunk).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.blocking_send(Response::Chunk {
                entries,
                last: true,
            });
        });
        Reply::Chunks(rx)
    }

    /// This node's versions of `key`, for a get it coordinates, if the engine has them in
    /// memory.
    fn read_local_cached(
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
    async fn read_local(
        self: Arc<Self>,
        key: Arc<Vec<u8>>,
        budget: Arc<RequestBudget>,
    ) -> Result<Siblings, ReadFailure> {
        decode_stored(self.read_stored(key, budget).await?)
    }

    async fn replica_read(&self, key: Vec<u8>, budget: Arc<RequestBudget>) -> Response {
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

    async fn replica_write(&self, key: Vec<u8>, siblings: Vec<u8>, deadline: Deadline) -> Response {
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

/// Kills this process with SIGKILL if it is the first to create `marker` (see
/// [`CRASH_BEFORE_PUT_REPLY_ENV`]).
fn crash_first(marker: &std::path::Path, id: &str) {
    use std::io::Write;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .and_then(|mut f| f.write_all(id.as_bytes()));
    if created.is_err() {
        return;
    }
    eprintln!("{CRASH_BEFORE_PUT_REPLY_ENV}: killing this node before the put's reply");
    // SAFETY: sending a signal to this process; nothing else is touched.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
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
