//! The node's Prometheus metrics (prometheus-client, OpenMetrics text), served on
//! `--metrics-listen` at `/metrics`. Every name starts with `kvctl_`.
//!
//! Requests are counted and timed per operation and consistency level through handles made
//! once (no label lookup on a request's path); what the node holds (hints, connections,
//! bytes in flight, workers, the engine's figures) is read when a scrape comes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use kvctl::storage::engine::Stats;
use kvctl::wire::proto::{Consistency, WorkerInfo, WorkerState};

/// The operations requests are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    Put,
    Delete,
}

const OPERATIONS: [(Operation, &str); 3] = [
    (Operation::Get, "get"),
    (Operation::Put, "put"),
    (Operation::Delete, "delete"),
];
const LEVELS: [(Consistency, &str); 3] = [
    (Consistency::One, "ONE"),
    (Consistency::Quorum, "QUORUM"),
    (Consistency::All, "ALL"),
];

type Labels = Vec<(String, String)>;

/// One operation at one level: how many, how many failed, how long.
struct Timed {
    requests: Counter,
    failures: Counter,
    seconds: Histogram,
}

/// What the node holds when a scrape comes.
pub struct Snapshot {
    pub hints_held: u64,
    pub hints_refused: u64,
    pub connections: usize,
    pub bytes_in_flight: usize,
    pub workers: Vec<WorkerInfo>,
    pub engine: Stats,
}

pub struct Metrics {
    registry: Registry,
    timed: Vec<Timed>,
    pub replica_reads: Counter,
    pub replica_writes: Counter,
    pub hints_delivered: Counter,
    pub repair_bytes: Counter,
    hints_held: Gauge,
    hints_refused: Gauge,
    connections: Gauge,
    bytes_in_flight: Gauge,
    worker_busy: Family<Labels, Gauge>,
    worker_failed: Family<Labels, Gauge>,
    worker_done: Family<Labels, Gauge>,
    worker_errors: Family<Labels, Gauge>,
    engine: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kvctl");
        let requests = Family::<Labels, Counter>::default();
        let failures = Family::<Labels, Counter>::default();
        // 100 µs to about 26 s.
        let seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "requests",
            "Client requests this node coordinated",
            requests.clone(),
        );
        registry.register(
            "request_failures",
            "Client requests this node answered with an error",
            failures.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "How long this node took to answer a client request",
            seconds.clone(),
        );
        let mut timed = Vec::new();
        for (_, op) in OPERATIONS {
            for (_, level) in LEVELS {
                let labels = vec![
                    ("operation".to_string(), op.to_string()),
                    ("consistency".to_string(), level.to_string()),
                ];
                timed.push(Timed {
                    requests: requests.get_or_create(&labels).clone(),
                    failures: failures.get_or_create(&labels).clone(),
                    seconds: seconds.get_or_create(&labels).clone(),
                });
            }
        }
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let family = |registry: &mut Registry, name: &str, help: &str| {
            let f = Family::<Labels, Gauge>::default();
            registry.register(name, help, f.clone());
            f
        };
        let replica_reads = counter(&mut registry, "replica_reads", "Replica reads served");
        let replica_writes = counter(&mut registry, "replica_writes", "Replica writes served");
        let hints_delivered = counter(
            &mut registry,
            "hints_delivered",
            "Hints delivered to the nodes they were for",
        );
        let repair_bytes = counter(
            &mut registry,
            "repair_bytes",
            "Bytes sent by repairs this node coordinated",
        );
        Metrics {
            timed,
            replica_reads,
            replica_writes,
            hints_delivered,
            repair_bytes,
            hints_held: gauge(&mut registry, "hints_held", "Hints held for other nodes"),
            hints_refused: gauge(
                &mut registry,
                "hints_refused",
                "Hints held because their target refused them as bad requests",
            ),
            connections: gauge(&mut registry, "connections", "Connections admitted"),
            bytes_in_flight: gauge(
                &mut registry,
                "bytes_in_flight",
                "Bytes held for requests in flight",
            ),
            worker_busy: family(
                &mut registry,
                "worker_busy",
                "1 while the worker is at work",
            ),
            worker_failed: family(&mut registry, "worker_failed", "1 once the worker failed"),
            worker_done: family(&mut registry, "worker_done", "Items the worker has done"),
            worker_errors: family(&mut registry, "worker_errors", "Errors the worker met"),
            engine: family(
                &mut registry,
                "engine",
                "The storage engine's figures, by name (flushes, compactions, cache hits, …)",
            ),
            registry,
        }
    }

    fn timed(&self, op: Operation, level: Consistency) -> &Timed {
        let o = OPERATIONS.iter().position(|(x, _)| *x == op).unwrap_or(0);
        let l = LEVELS.iter().position(|(x, _)| *x == level).unwrap_or(0);
        &self.timed[o * LEVELS.len() + l]
    }

    /// Records a client request this node answered.
    pub fn request(&self, op: Operation, level: Consistency, took: Duration, failed: bool) {
        let timed = self.timed(op, level);
        timed.requests.inc();
        if failed {
            timed.failures.inc();
        }
        timed.seconds.observe(took.as_secs_f64());
    }

    /// The metrics in the OpenMetrics text format, with what the node holds now.
    pub fn render(&self, now: Snapshot) -> String {
        let set = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.hints_held, now.hints_held);
        set(&self.hints_refused, now.hints_refused);
        set(&self.connections, now.connections as u64);
        set(&self.bytes_in_flight, now.bytes_in_flight as u64);
        for w in &now.workers {
            let labels = vec![("worker".to_string(), w.name.clone())];
            set(
                &self.worker_busy.get_or_create(&labels),
                u64::from(w.state == WorkerState::Busy),
            );
            set(
                &self.worker_failed.get_or_create(&labels),
                u64::from(w.state == WorkerState::Failed),
            );
            set(&self.worker_done.get_or_create(&labels), w.done);
            set(&self.worker_errors.get_or_create(&labels), w.errors);
        }
        let e = &now.engine;
        for (name, value) in [
            ("flushes", e.flushes),
            ("compactions", e.compactions),
            ("cache_hits", e.cache_hits),
            ("cache_misses", e.cache_misses),
            ("cache_bytes", e.cache_bytes),
            ("memtable_bytes", e.memtable_bytes),
            ("wal_syncs", e.wal_syncs),
            ("wal_segments", e.wal_segments),
            ("table_bytes_written", e.table_bytes_written),
            ("user_bytes_written", e.user_bytes_written),
            ("tables", e.tables_per_level.iter().sum()),
        ] {
            let labels = vec![("figure".to_string(), name.to_string())];
            set(&self.engine.get_or_create(&labels), value);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The most scrapes served at once, and how long one may take to send its request.
const SCRAPES_MAX: usize = 4;
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest HTTP request head read.
const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;

/// Serves `GET /metrics` on `listener` with what `render` says, until the task is dropped;
/// anything else gets 404. HTTP/1.1, one request per connection.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    let scrapes = Arc::new(tokio::sync::Semaphore::new(SCRAPES_MAX));
    while let Ok((mut stream, _)) = listener.accept().await {
        let Ok(permit) = scrapes.clone().try_acquire_owned() else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut head = Vec::new();
            let read = tokio::time::timeout(SCRAPE_READ_TIMEOUT, async {
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).await.ok()?;
                    if n == 0 || head.len() + n > REQUEST_HEAD_BYTES_MAX {
                        return None;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                Some(())
            });
            if !matches!(read.await, Ok(Some(()))) {
                return;
            }
            let response = if head.starts_with(b"GET /metrics ") {
                let body = render();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; \
                     version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: \
                     close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics listener at `addr` (port 0: any free port); the address it got.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests are counted and timed by operation and level; held figures appear as they
    /// are at the scrape; every series starts with `kvctl_`.
    #[test]
    fn metrics_render_the_kvctl_series() {
        let m = Metrics::new();
        m.request(
            Operation::Put,
            Consistency::Quorum,
            Duration::from_millis(3),
            false,
        );
        m.request(
            Operation::Get,
            Consistency::One,
            Duration::from_millis(1),
            true,
        );
        m.replica_writes.inc();
        let text = m.render(Snapshot {
            hints_held: 7,
            hints_refused: 0,
            connections: 3,
            bytes_in_flight: 1024,
            workers: vec![WorkerInfo {
                name: "gossip".into(),
                state: WorkerState::Busy,
                progress: String::new(),
                done: 5,
                errors: 0,
                last_error: None,
                last_error_at_ms: None,
            }],
            engine: Stats {
                flushes: 2,
                ..Stats::default()
            },
        });
        for line in [
            "kvctl_requests_total{operation=\"put\",consistency=\"QUORUM\"} 1",
            "kvctl_request_failures_total{operation=\"get\",consistency=\"ONE\"} 1",
            "kvctl_replica_writes_total 1",
            "kvctl_hints_held 7",
            "kvctl_connections 3",
            "kvctl_worker_busy{worker=\"gossip\"} 1",
            "kvctl_worker_done{worker=\"gossip\"} 5",
            "kvctl_engine{figure=\"flushes\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            text.contains("kvctl_request_duration_seconds_bucket"),
            "{text}"
        );
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("kvctl_"), "{line}");
        }
    }
}
