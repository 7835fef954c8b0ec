//! The repair service: Merkle trees and bulk scans of this node's ranges for peers, repairs of
//! token ranges across their replicas (driving the I/O-free [`RangeRepair`], paced), the
//! ranges known in sync on every replica and since when (what lets tombstones go), and
//! background anti-entropy as the `anti-entropy` worker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvctl::model::version::Siblings;
use kvctl::wire::budget::RequestBudget;
use kvctl::wire::proto::{ErrorKind, Request, Response, ScanEntry};
use kvctl::wire::transport::{size_allowance, Reply, Transport, CHUNK_BYTES};
use parking_lot::Mutex;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::admission;
use crate::driver::{Driver, Next};
use crate::logic::merkle::{self, RangeTree};
use crate::logic::repair::{Entries, RangeRepair, RepairAction, RepairOutcome, TreeReply};
use crate::service::gossip::Gossip;
use crate::service::{error, wall_ms, Common};
use crate::store::keyspace::{parse_synced_key, synced_key, synced_range};
use crate::store::replica::{Replica, ReplicaError};
use kvctl::storage::engine::Store;

/// Chunks of a bulk transfer read ahead of the peer (besides the one being written).
const CHUNKS_QUEUED: usize = 2;

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

/// The pace of background anti-entropy's writes, in bytes a second.
const AAE_BYTES_PER_SEC: u64 = 8 << 20;

/// How long one step of a repair (a tree, a write) may take.
const REPAIR_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The pace of a repair asked for at `rate` bytes a second: within
/// [[`REPAIR_BYTES_PER_SEC_MIN`], [`REPAIR_BYTES_PER_SEC_MAX`]], 0 meaning the most.
fn repair_rate(rate: u64) -> u64 {
    if rate == 0 {
        return REPAIR_BYTES_PER_SEC_MAX;
    }
    rate.clamp(REPAIR_BYTES_PER_SEC_MIN, REPAIR_BYTES_PER_SEC_MAX)
}

/// What a repair's driver hears back.
enum RepairEvent {
    /// A replica's tree, and its wall clock when it began it (if it said).
    Tree(String, Result<TreeReply, String>, Option<u64>),
    Scan(String, Result<Entries, String>),
    Written(String, Result<(), String>),
}

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

pub struct RepairService {
    common: Arc<Common>,
    gossip: Arc<Gossip>,
    replica: Arc<Replica>,
    /// Token ranges known in sync on every replica, and since when (wall clock, ms).
    synced: Mutex<BTreeMap<(u128, u128), u64>>,
    /// Repairs this node coordinates ([`REPAIRS_MAX`]).
    repairs: Semaphore,
    /// Bulk transfers running ([`admission::BULK_TRANSFERS_MAX`]).
    bulk: Arc<Semaphore>,
    /// How often anti-entropy runs; zero: never.
    aae_interval: Duration,
}

impl RepairService {
    /// The service, with the ranges recorded in sync by earlier starts.
    pub fn open(
        common: Arc<Common>,
        gossip: Arc<Gossip>,
        replica: Arc<Replica>,
        aae_interval: Duration,
    ) -> Result<RepairService, kvctl::storage::engine::EngineError> {
        let mut synced = BTreeMap::new();
        for entry in Store::scan(replica.engine().as_ref(), synced_range())? {
            let (k, v) = entry?;
            let since = std::str::from_utf8(&v).ok().and_then(|t| t.parse().ok());
            if let (Some(range), Some(since)) = (parse_synced_key(&k), since) {
                synced.insert(range, since);
            }
        }
        Ok(RepairService {
            common,
            gossip,
            replica,
            synced: Mutex::new(synced),
            repairs: Semaphore::new(REPAIRS_MAX),
            bulk: Arc::new(Semaphore::new(admission::BULK_TRANSFERS_MAX)),
            aae_interval,
        })
    }

    /// The ranges known in sync on every replica, and since when (wall clock, ms).
    pub fn synced(&self) -> Vec<((u128, u128), u64)> {
        self.synced.lock().iter().map(|(r, s)| (*r, *s)).collect()
    }

    /// A repair asked by a client: one of [`REPAIRS_MAX`], listed as a worker while it runs.
    pub async fn repair(self: &Arc<Self>, after: u128, upto: u128, rate: u64) -> Response {
        let Ok(_running) = self.repairs.try_acquire() else {
            return error(
                ErrorKind::Unavailable,
                format!(
                    "{REPAIRS_MAX} repairs are running on this node, the most it runs at once \
                     (repairs_max); retry later"
                ),
            );
        };
        let name = format!("repair ({after}, {upto}]");
        let worker = self.common.workers.register(&name);
        worker.busy("comparing and merging the replicas");
        let repaired = self.repair_range(after, upto, repair_rate(rate)).await;
        self.common.workers.remove(&name);
        repaired
    }

    /// A peer's word that (after, upto] is in sync as of `since_ms`, checked and recorded.
    pub async fn range_synced(
        &self,
        sender: Option<&str>,
        after: u128,
        upto: u128,
        since_ms: u64,
    ) -> Response {
        match self.check_synced(sender, after, upto, since_ms) {
            Err(e) => error(ErrorKind::Invalid, e),
            Ok(since_ms) => match self.record_synced(after, upto, since_ms).await {
                Ok(()) => Response::Ack,
                Err(e) => error(ErrorKind::Internal, e),
            },
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
        let ring = self.gossip.ring();
        if !ring.token_ranges().contains(&(after, upto)) {
            return Err(format!(
                "({after}, {upto}] is not a token range of this node's ring"
            ));
        }
        let replicas = ring.preference_list_for_token(upto, self.gossip.replication());
        let sender = sender.unwrap_or_default();
        if !replicas.iter().any(|r| r == sender) || !replicas.contains(&self.common.id) {
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
            let ranges: HashSet<(u128, u128)> =
                self.gossip.ring().token_ranges().into_iter().collect();
            synced.retain(|range, _| ranges.contains(range));
        }
        let entry = synced.entry((after, upto)).or_default();
        *entry = (*entry).max(since_ms);
        Ok(())
    }

    /// Background anti-entropy: every `aae_interval`, repairs each range this node is the
    /// first replica of, one at a time, at [`AAE_BYTES_PER_SEC`].
    pub async fn run_anti_entropy(self: Arc<Self>) {
        let every = self.aae_interval;
        let worker = self.common.workers.register("anti-entropy");
        if every.is_zero() {
            worker.idle("off (--aae-interval 0s)");
            return;
        }
        worker.idle("no round yet");
        loop {
            tokio::time::sleep(every).await;
            let ranges: Vec<(u128, u128)> = {
                let ring = self.gossip.ring();
                ring.token_ranges()
                    .into_iter()
                    .filter(|r| ring.owner(r.1) == Some(&self.common.id))
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

    /// A place among the [`admission::BULK_TRANSFERS_MAX`] scans (bulk transfers and Merkle
    /// trees) a node serves at once, or the refusal to answer with.
    fn bulk_permit(&self) -> Result<OwnedSemaphorePermit, Response> {
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
    async fn bulk_permit_waiting(&self) -> Result<OwnedSemaphorePermit, String> {
        self.bulk
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())
    }

    /// This replica's Merkle tree of (after, upto] for a peer, built by one scan off the
    /// runtime's threads; at most [`admission::BULK_TRANSFERS_MAX`] scans (trees and bulk
    /// transfers) run.
    pub async fn merkle_tree(&self, after: u128, upto: u128, leaves: bool) -> Response {
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

    /// A bulk transfer for a peer: the keys of (after, upto] and their versions, read by a
    /// blocking task in token order and sent in chunks of about [`CHUNK_BYTES`]. At most
    /// [`admission::BULK_TRANSFERS_MAX`] run at once; each holds at most [`CHUNKS_QUEUED`] + 1
    /// chunks, taken from its request's budget up front.
    pub fn replica_scan(&self, after: u128, upto: u128, budget: &RequestBudget) -> Reply {
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

    /// Repairs (after, upto] across its replicas, as a [`RangeRepair`] directs: trees, scans
    /// of the differing leaves, and writes of the merges, paced to `rate_bytes_per_sec`.
    async fn repair_range(self: &Arc<Self>, after: u128, upto: u128, rate: u64) -> Response {
        let ring = self.gossip.ring();
        let ids = ring.preference_list_for_token(upto, self.gossip.replication());
        let addrs: HashMap<String, Option<SocketAddr>> = ids
            .iter()
            .map(|id| (id.clone(), self.gossip.addr_if_up(id)))
            .collect();
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
        if !ids.contains(&self.common.id) {
            return error(
                ErrorKind::BadRequest,
                format!(
                    "this node ({}) is not a replica of the range ({after}, {upto}] (its \
                     replicas: {}); ask one of them",
                    self.common.id,
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
        let mut driver = Driver::new(64);
        let mut next_write = Instant::now();
        let outcome = loop {
            while let Some(action) = repair.poll_action() {
                let (service, tx) = (self.clone(), driver.sender());
                let addr = match &action {
                    RepairAction::Tree { replica, .. }
                    | RepairAction::Scan { replica, .. }
                    | RepairAction::Write { replica, .. } => addrs
                        .get(replica)
                        .copied()
                        .flatten()
                        .filter(|_| *replica != self.common.id),
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
                    let event = service.repair_step((after, upto), action, addr).await;
                    let _ = tx.send(event).await;
                });
            }
            if let Some(outcome) = repair.poll_outcome() {
                break outcome;
            }
            // A repair's machine sets no timer: each step has its own timeout.
            let Next::Event(event) = driver.next(None).await else {
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
            let now = self.gossip.ring();
            Arc::ptr_eq(&now, &ring)
                || (now.token_ranges() == ring.token_ranges()
                    && now.preference_list_for_token(upto, self.gossip.replication()) == replicas)
        };
        if unchanged
            && matches!(
                outcome,
                RepairOutcome::InSync(_) | RepairOutcome::Repaired(_)
            )
        {
            self.tell_synced(after, upto, since_ms, &replicas, &addrs)
                .await;
        }
        match outcome {
            RepairOutcome::InSync(stats) | RepairOutcome::Repaired(stats) => {
                self.common.metrics.repair_bytes.inc_by(stats.bytes_sent);
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

    /// Tells every replica (this node too) that (after, upto] is in sync as of `since_ms`:
    /// every tombstone older than the repair's start is on every replica now.
    async fn tell_synced(
        &self,
        after: u128,
        upto: u128,
        since_ms: u64,
        replicas: &[String],
        addrs: &HashMap<String, Option<SocketAddr>>,
    ) {
        for id in replicas {
            let told = match addrs.get(id).copied().flatten() {
                _ if *id == self.common.id => self.record_synced(after, upto, since_ms).await,
                Some(addr) => {
                    let request = Request::RangeSynced {
                        after,
                        upto,
                        since_ms,
                    };
                    match self
                        .common
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
                self.common.complaints.lock().log(&format!(
                    "to tell {id} that ({after}, {upto}] is in sync: {e}"
                ));
            }
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
        let transport = &self.common.transport;
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
                        match transport
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
                    Some(addr) => remote_scan(transport, addr, after, upto).await,
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
                            .map_err(|e: ReplicaError| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    Some(addr) => {
                        let timeout = REPAIR_STEP_TIMEOUT + size_allowance(siblings.len());
                        let request = Request::ReplicaWrite {
                            key: ByteBuf::from(key),
                            siblings: ByteBuf::from(siblings),
                        };
                        match transport
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
}
