//! A client with the cluster's own certificate cannot push a node's memory past its budget: it
//! floods node 1 with large requests it never finishes and with gets whose replies it never
//! reads, over more connections than a peer may hold, while another client keeps working
//! through the same node. The flood gets refusals naming the limits, the node's peak memory
//! stays within its budget, and once the flood ends every client is served again.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;
use kvctl::wire::certs::{self, NODE_SERVER_NAME};
use kvctl::wire::proto::{self, Consistency, Request, Response};
use kvctl::wire::tls::Identity;
use kvctl::wire::transport::Transport;
use serde_bytes::ByteBuf;

const MIB: usize = 1 << 20;
/// The node's limits in this test.
const POOL: &str = "96MiB";
const SHARE: &str = "32MiB";
const PER_PEER: &str = "2";
/// How long each flood lasts.
const FLOOD: Duration = Duration::from_secs(4);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What the flood saw.
#[derive(Default)]
struct Seen {
    refusals: Vec<String>,
    closed: Vec<String>,
}

/// A flooding client: one endpoint (one peer) with `connections` connections to `addr`; on
/// each, as many streams as the node allows, each sending `chunk`-sized pieces of a request
/// it never finishes, or (every other connection) a get of `big_key` whose reply it never
/// reads. When a stream is stopped, it reads the node's reply and records it.
async fn flood(transport: Transport, addr: SocketAddr, connections: usize, seen: Arc<Mutex<Seen>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let conn = match transport
            .endpoint()
            .connect(addr, NODE_SERVER_NAME)
            .unwrap()
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                seen.lock().unwrap().closed.push(e.to_string());
                continue;
            }
        };
        for _ in 0..kvctl::wire::transport::STREAMS_PER_CONNECTION_MAX {
            let (conn, seen, stop) = (conn.clone(), seen.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (mut send, mut recv) = match conn.open_bi().await {
                        Ok(pair) => pair,
                        Err(e) => {
                            seen.lock().unwrap().closed.push(e.to_string());
                            return;
                        }
                    };
                    if c % 2 == 1 {
                        // A get whose reply is never read.
                        let get = proto::encode(&Request::Get {
                            key: ByteBuf::from(b"big".to_vec()),
                            consistency: Consistency::One,
                        });
                        let _ = send.write_all(&get).await;
                        let _ = send.finish();
                        tokio::time::sleep(FLOOD).await;
                        continue;
                    }
                    // Most of a request, never finished.
                    let piece = vec![0xa5u8; MIB / 4];
                    let mut stopped = false;
                    for _ in 0..16 {
                        if send.write_all(&piece).await.is_err() {
                            stopped = true;
                            break;
                        }
                    }
                    if stopped {
                        if let Ok(reply) = recv.read_to_end(1 << 20).await {
                            if let Ok(Response::Error { message, .. }) = proto::decode(&reply) {
                                seen.lock().unwrap().refusals.push(message);
                            }
                        }
                    } else {
                        tokio::time::sleep(FLOOD).await;
                    }
                }
            }));
        }
    }
    tokio::time::sleep(FLOOD).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    transport.endpoint().close(0u32.into(), b"done");
}

/// Runs put and get through node 1 with the CLI until `done` (at least a few times, at most
/// a bounded number), returning the successes and the failures.
fn keep_working(c: &Cluster, done: &AtomicBool) -> (usize, Vec<String>) {
    let mut ok = 0;
    let mut failures = Vec::new();
    let mut i = 0;
    while (!done.load(Ordering::Relaxed) || i < 3) && i < 200 {
        let key = format!("steady-{i}");
        let put = c.run(&["put", &key, "v", "--node", &c.addr(1)]);
        let get = c.run(&["get", &key, "--node", &c.addr(1)]);
        for out in [put, get] {
            if out.status.success() {
                ok += 1;
            } else {
                failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        i += 1;
    }
    (ok, failures)
}

#[test]
fn cluster_flood_is_bounded_and_other_clients_keep_working() {
    let c = Cluster::up_with_env(
        3,
        0,
        &[
            ("KVCTL_REQUEST_BYTES_IN_FLIGHT_MAX", POOL),
            ("KVCTL_CONNECTION_BYTES_IN_FLIGHT_MAX", SHARE),
            ("KVCTL_CONNECTIONS_PER_PEER_MAX", PER_PEER),
        ],
    );
    let addr: SocketAddr = c.addr(1).parse().unwrap();
    let big = vec![b'b'; 4 * MIB];
    c.run_with_stdin(&["put", "big", "-"], &big);
    let dir = c.home().join("certs");
    let identity = Identity::new(
        &certs::read(&dir, "client").unwrap(),
        &certs::read_cert(&dir, "ca").unwrap(),
    )
    .unwrap();
    let before = c.peak_memory(1);
    let rt = runtime();

    // One peer, four connections (two over its limit): another client is not disturbed.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let done = AtomicBool::new(false);
    let (ok, failures) = std::thread::scope(|s| {
        let worker = s.spawn(|| keep_working(&c, &done));
        rt.block_on(async {
            let transport = Transport::client(&identity).unwrap();
            flood(transport, addr, 4, seen.clone()).await
        });
        done.store(true, Ordering::Relaxed);
        worker.join().unwrap()
    });
    assert!(failures.is_empty(), "{ok} ok, failures: {failures:?}");
    {
        let seen = seen.lock().unwrap();
        assert!(
            seen.closed
                .iter()
                .any(|e| e.contains("connections_per_peer_max")),
            "{:?}",
            seen.closed
        );
        assert!(
            seen.refusals
                .iter()
                .any(|m| m.contains("connection_bytes_in_flight_max")),
            "{:?}",
            seen.refusals
        );
    }

    // Six peers at once spend the node's whole pool: requests are refused as unavailable,
    // naming the node's limit, and memory stays bounded.
    let seen = Arc::new(Mutex::new(Seen::default()));
    rt.block_on(async {
        let mut floods = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let transport = Transport::client(&identity).unwrap();
            floods.spawn(flood(transport, addr, 2, seen.clone()));
        }
        while let Some(done) = floods.join_next().await {
            done.unwrap();
        }
    });
    let refusals = seen.lock().unwrap().refusals.clone();
    assert!(
        refusals
            .iter()
            .any(|m| m.contains("request_bytes_in_flight_max")),
        "{refusals:?}"
    );

    // The node's peak memory grew by at most its budget and its connections' QUIC windows,
    // with room for the allocator: far below what was sent at it (gigabytes).
    let grown = c.peak_memory(1).saturating_sub(before);
    eprintln!(
        "node 1: peak memory {} MiB before the floods, grown by {} MiB; {} refusals",
        before >> 20,
        grown >> 20,
        refusals.len()
    );
    assert!(
        grown < 320 * MIB as u64,
        "node 1 grew by {} MiB",
        grown >> 20
    );

    // Once the flood is over, everyone is served again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.run(&["put", "after", "flood", "--node", &c.addr(1)]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 still refuses: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        c.must(&["get", "after", "--node", &c.addr(1)]).trim(),
        "flood"
    );
    assert_eq!(c.must(&["get", "big"]).trim().len(), 4 * MIB);
}
