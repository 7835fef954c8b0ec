//! The node's assembly: builds the services from a [`NodeConfig`], starts their workers,
//! accepts connections (admission first), hands each request to the [`crate::router`], and
//! shuts down in order: workers, then connections, then the replica's writer, then the engine.

use std::sync::Arc;
use std::time::Instant;

use kvctl::model::version::SIBLINGS_FORMAT_WRITE_IDS;
use kvctl::storage::engine::{Engine, EngineError, JobStats, Stats, Store};
use kvctl::wire::budget::NodeBudget;
use kvctl::wire::proto::{self, Member, MemberState, Response};
use kvctl::wire::tls::{Identity, Peer};
use kvctl::wire::transport::{serve_stream, Transport, TransportError};
use parking_lot::Mutex;

use crate::admission::Connections;
use crate::complaints::Complaints;
use crate::config::{ConfigError, NodeConfig};
use crate::logic::membership::Membership;
use crate::logic::pacer::{SyncPacer, SYNC_BURST};
use crate::logic::tombstones::TombstonePolicy;
use crate::metrics::{Metrics, Snapshot};
use crate::service::gossip::{Gossip, Report};
use crate::service::hints::HintService;
use crate::service::layout::LayoutService;
use crate::service::repair::RepairService;
use crate::service::replica::ReplicaService;
use crate::service::requests::Requests;
use crate::service::tombstones::TombstoneSweep;
use crate::service::Common;
use crate::store::hints::Hints;
use crate::store::layout::LayoutState;
use crate::store::lease::DotLease;
use crate::store::replica::Replica;
use crate::worker::Workers;

/// The connection error code of a connection refused by admission (its reason says why).
const CONNECTION_REFUSED_CODE: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("storage: {0}")]
    Engine(#[from] EngineError),
}

/// A running node: its services, and what the accept loop needs.
pub struct Node {
    pub(crate) common: Arc<Common>,
    pub(crate) gossip: Arc<Gossip>,
    pub(crate) replica: Arc<ReplicaService>,
    pub(crate) hints: Arc<HintService>,
    pub(crate) repair: Arc<RepairService>,
    pub(crate) requests: Arc<Requests>,
    pub(crate) layout: Arc<LayoutService>,
    connections: Arc<Connections>,
    budget: NodeBudget,
}

impl Node {
    /// Runs the node until `shutdown` completes, then stops it in order. The node's writes
    /// take their dots under `lease`.
    pub async fn run(
        config: NodeConfig,
        identity: &Identity,
        engine: Engine,
        lease: DotLease,
        layout: LayoutState,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        config.validate()?;
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
            tokens: config.gossip.tokens.clone(),
            state: MemberState::Normal,
            generation: config.gossip.generation,
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
        let common = Arc::new(Common {
            id: config.id.clone(),
            transport: transport.clone(),
            started: Instant::now(),
            complaints: Mutex::new(Complaints::default()),
            metrics: Metrics::new(),
            workers: Workers::default(),
        });
        let store = Arc::new(Replica::new(
            engine.clone(),
            lease,
            SyncPacer::new(config.replica.sync_rate_max, SYNC_BURST),
            config.admission.write_queue_bytes_max,
        ));
        let mut membership = Membership::new(me, config.gossip.seeds.clone());
        membership.set_phi_convict_threshold(config.gossip.phi_convict_threshold);
        let gossip = Arc::new(Gossip::new(common.clone(), membership, config.replication));
        let replica = Arc::new(ReplicaService::new(store.clone(), config.requests.limits));
        let hints = Arc::new(HintService::new(
            common.clone(),
            gossip.clone(),
            store.clone(),
            Arc::new(Hints::open(engine.clone(), config.hints.limits)?),
            config.hints.replay_bytes_per_sec,
        ));
        let repair = Arc::new(RepairService::open(
            common.clone(),
            gossip.clone(),
            store.clone(),
            config.repair.aae_interval,
        )?);
        let sweep = Arc::new(TombstoneSweep::new(
            common.clone(),
            repair.clone(),
            store.clone(),
            TombstonePolicy::new(config.tombstones.grace),
        ));
        let requests = Arc::new(Requests::new(
            common.clone(),
            gossip.clone(),
            replica.clone(),
            hints.clone(),
            config.requests.secret.clone(),
            actor,
        ));
        let layout = Arc::new(LayoutService::new(
            common.clone(),
            config.layout.dir.clone(),
            layout,
        ));
        let node = Arc::new(Node {
            layout,
            common,
            gossip,
            replica,
            hints,
            repair,
            requests,
            connections: Connections::new(config.admission),
            budget: NodeBudget::new(config.admission.budget),
        });
        // The workers, in the order they stop.
        let report = {
            let (store, hints) = (store.clone(), node.hints.clone());
            move || Report {
                siblings_trimmed: store.trims().total(),
                hints_pending: hints.pending_total(),
                hints_refused: hints.refused_total(),
            }
        };
        let mut workers = vec![
            tokio::spawn(node.repair.clone().run_anti_entropy()),
            tokio::spawn(sweep.run()),
            tokio::spawn(node.hints.clone().run()),
            tokio::spawn(node.gossip.clone().run(report)),
            tokio::spawn(node.layout.clone().run()),
        ];
        if let Some((listener, _)) = metrics_listener {
            let n = node.clone();
            let scrape = Arc::new(move || n.scrape());
            workers.push(tokio::spawn(crate::metrics::serve(listener, scrape)));
        }
        node.clone().accept(shutdown).await;
        for worker in workers {
            worker.abort();
        }
        transport.close().await;
        // Joining the writer waits for its last round: not on a runtime thread.
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        engine.close()?;
        Ok(())
    }

    /// Accepts connections until `shutdown` completes: each admitted (see
    /// [`crate::admission`]), each of its streams a request for the router.
    async fn accept(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let endpoint = self.common.transport.endpoint().clone();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    // A new address must first echo a Retry token: a flood of Initial packets
                    // from made-up addresses gets Retry packets back and nothing more.
                    if !incoming.remote_address_validated() && incoming.may_retry() {
                        let _ = incoming.retry();
                        continue;
                    }
                    let ip = incoming.remote_address().ip();
                    let handshake = match self.connections.handshake(ip) {
                        Ok(handshake) => handshake,
                        Err(reason) => {
                            self.common.complaints.lock().log(&reason);
                            incoming.refuse();
                            continue;
                        }
                    };
                    let node = self.clone();
                    tokio::spawn(async move {
                        // A failed handshake (no certificate, another CA) ends here; one that
                        // never ends is cut at the idle timeout.
                        let Ok(conn) = incoming.await else { return };
                        drop(handshake);
                        node.serve(conn).await;
                    });
                }
                () = &mut shutdown => break,
            }
        }
    }

    /// Serves an established connection: counted once its certificate says who it is, each
    /// stream a request within the connection's budget.
    async fn serve(self: Arc<Self>, conn: quinn::Connection) {
        let peer = Arc::new(kvctl::wire::tls::peer(&conn));
        let is_node = peer.node_id().is_some();
        let _slot = match self.connections.admit(conn.remote_address(), is_node) {
            Ok(slot) => slot,
            Err(reason) => {
                self.common.complaints.lock().log(&reason);
                conn.close(CONNECTION_REFUSED_CODE.into(), reason.as_bytes());
                return;
            }
        };
        let budget = match *peer {
            Peer::Node { .. } => self.budget.node_connection(),
            Peer::Client { .. } => self.budget.connection(),
        };
        while let Ok((send, recv)) = conn.accept_bi().await {
            let (node, peer) = (self.clone(), peer.clone());
            let budget = Arc::new(budget.request());
            tokio::spawn(async move {
                serve_stream(send, recv, budget, |req, budget, deadline| {
                    node.handle(req, &peer, budget, deadline)
                })
                .await;
            });
        }
    }

    fn engine_stats(&self) -> Stats {
        Store::stats(self.replica.store().engine().as_ref())
    }

    /// The node's metrics as a scrape sees them now.
    fn scrape(&self) -> String {
        let engine = self.engine_stats();
        self.common.metrics.render(Snapshot {
            hints_held: self.hints.pending_total(),
            hints_refused: self.hints.refused_total(),
            connections: self.connections.count(),
            bytes_in_flight: self.budget.held_bytes(),
            workers: self.worker_list(&engine),
            engine,
        })
    }

    /// The node's workers, with the engine's flush and compaction threads as the engine
    /// reports them.
    fn worker_list(&self, engine: &Stats) -> Vec<proto::WorkerInfo> {
        let mut workers = self.common.workers.list();
        let engine_worker =
            |name: &str, job: &JobStats, progress: String, done: u64| proto::WorkerInfo {
                name: name.into(),
                state: if job.busy {
                    proto::WorkerState::Busy
                } else {
                    proto::WorkerState::Idle
                },
                progress,
                done,
                errors: job.errors,
                last_error: job.last_error.clone(),
                last_error_at_ms: job.last_error_at_ms,
            };
        workers.push(engine_worker(
            "engine-flush",
            &engine.flush_job,
            format!(
                "{} rotated memtable(s) waiting, {} KiB in the memtable",
                engine.immutable_memtables,
                engine.memtable_bytes >> 10
            ),
            engine.flushes,
        ));
        workers.push(engine_worker(
            "engine-compaction",
            &engine.compaction_job,
            format!("tables per level {:?}", engine.tables_per_level),
            engine.compactions,
        ));
        workers
    }

    /// This node's workers and engine figures (`NodeInfo`).
    pub(crate) fn info(&self) -> Response {
        let stats = self.engine_stats();
        Response::Info {
            node: self.common.id.clone(),
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
}
