//! Clients cannot crowd out the cluster's own traffic: however many client connections a node
//! is offered, it keeps connections and bytes in flight for other nodes, so a restarted node
//! reconnects and replica writes are taken while clients hold all they may; and repairs asked
//! by clients are bounded in number and pace.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Cluster;
use kvctl::model::ring::token_of;
use kvctl::wire::certs::NODE_SERVER_NAME;
use kvctl::wire::proto::{self, Request, Response};

const MIB: usize = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn clients_cannot_take_the_connections_kept_for_nodes() {
    // 40 connections: clients may hold 20 of them.
    let c = Cluster::up_with_env(3, 0, &[("KVCTL_CONNECTIONS_MAX", "40")]);
    let rt = runtime();
    let node2: SocketAddr = c.addr(2).parse().unwrap();
    // Forty clients, each its own endpoint (so its own peer), each holding a connection.
    let clients: Vec<_> = (0..40).map(|_| c.client_transport(&rt)).collect();
    let replies: Vec<_> = clients
        .iter()
        .map(|t| rt.block_on(t.request(node2, &Request::Status)))
        .collect();
    let served = replies.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<String> = replies
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(served, 20, "{refused:?}");
    assert!(
        refused.iter().all(|e| e.contains("kept for other nodes")),
        "{refused:?}"
    );
    // Node 1 restarts (with the command line it had: `cluster up` would ask node 2, as a
    // client, whether it is up): its new connection to node 2 is a node's, and is taken.
    let mut node1 = c.restart_by_hand(1, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.run(&[
            "put",
            "k",
            "v",
            "--consistency",
            "all",
            "--node",
            &c.addr(1),
        ]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 could not write to node 2 while clients held their connections: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The clients that were admitted are still served.
    let still = clients
        .iter()
        .filter(|t| rt.block_on(t.request(node2, &Request::Status)).is_ok())
        .count();
    assert_eq!(still, 20);
    drop(clients);
    let _ = node1.kill();
    let _ = node1.wait();
}

#[test]
fn clients_cannot_take_the_bytes_kept_for_replication() {
    let c = Cluster::up_with_env(
        3,
        1,
        &[
            ("KVCTL_REQUEST_BYTES_IN_FLIGHT_MAX", "64MiB"),
            ("KVCTL_CONNECTION_BYTES_IN_FLIGHT_MAX", "16MiB"),
        ],
    );
    let rt = runtime();
    let node1: SocketAddr = c.addr(1).parse().unwrap();
    // Eight clients, each sending node 1 four requests of 4 MiB it never finishes: 128 MiB
    // offered, twice the node's pool.
    let clients: Vec<_> = (0..8).map(|_| Arc::new(c.client_transport(&rt))).collect();
    let mut streams = Vec::new();
    for t in &clients {
        let conn = rt
            .block_on(async { t.endpoint().connect(node1, NODE_SERVER_NAME).unwrap().await })
            .unwrap();
        for _ in 0..4 {
            let conn = conn.clone();
            streams.push(rt.spawn(async move {
                let flood = async {
                    let (mut send, mut recv) = conn.open_bi().await.ok()?;
                    let piece = vec![0xa5u8; MIB / 4];
                    for _ in 0..16 {
                        if send.write_all(&piece).await.is_err() {
                            // Refused: the reply says why.
                            let reply = recv.read_to_end(1 << 20).await.unwrap_or_default();
                            return match proto::decode::<Response>(&reply) {
                                Ok(Response::Error { message, .. }) => Some(message),
                                _ => None,
                            };
                        }
                    }
                    // Held unfinished until the node gives up on it.
                    std::future::pending::<()>().await;
                    None
                };
                tokio::time::timeout(Duration::from_secs(12), flood)
                    .await
                    .ok()
                    .flatten()
            }));
        }
    }
    // The flood has taken what it may.
    std::thread::sleep(Duration::from_millis(1500));
    // A 1 MiB write at ALL through node 2: node 1 must take its replica write.
    let big = vec![b'b'; MIB];
    let out = c.run_with_stdin(
        &[
            "put",
            "big",
            "-",
            "--consistency",
            "all",
            "--node",
            &c.addr(2),
        ],
        &big,
    );
    assert!(
        out.status.success(),
        "a replica write was refused while clients held their bytes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refusals: Vec<String> = streams
        .into_iter()
        .filter_map(|s| rt.block_on(s).unwrap())
        .collect();
    assert!(
        refusals
            .iter()
            .any(|r| r.contains("kept for other nodes") || r.contains("clients hold their limit")),
        "{refusals:?}"
    );
}

/// The ring's range (after, upto] that holds `token`, from every member's tokens.
fn range_of(tokens: &[u128], token: u128) -> (u128, u128) {
    let upto = tokens
        .iter()
        .copied()
        .find(|t| *t >= token)
        .unwrap_or(tokens[0]);
    let i = tokens.iter().position(|t| *t == upto).unwrap();
    let after = tokens[(i + tokens.len() - 1) % tokens.len()];
    (after, upto)
}

#[test]
fn repairs_are_bounded_in_number_and_pace() {
    // Node 3 gets no hints: it is down longer than the hint window.
    let c = Cluster::up_with_env(3, 2, &[("KVCTL_MAX_HINT_WINDOW", "1s")]);
    let rt = runtime();
    let node1: SocketAddr = c.addr(1).parse().unwrap();
    let admin = c.client_transport(&rt);
    let mut tokens: Vec<u128> = match rt.block_on(admin.request(node1, &Request::Status)) {
        Ok(Response::Members { members, .. }) => members
            .iter()
            .flat_map(|m| m.member.tokens.clone())
            .collect(),
        other => panic!("{other:?}"),
    };
    tokens.sort();
    // Four keys of one range.
    let mut by_range = std::collections::HashMap::<(u128, u128), Vec<String>>::new();
    let keys = (0..)
        .map(|i| format!("r{i}"))
        .find_map(|key| {
            let range = range_of(&tokens, token_of(key.as_bytes()));
            let keys = by_range.entry(range).or_default();
            keys.push(key);
            (keys.len() == 4).then(|| (range, keys.clone()))
        })
        .unwrap();
    let ((after, upto), keys) = keys;
    c.sigkill(3);
    std::thread::sleep(Duration::from_secs(4));
    let value = vec![b'r'; MIB];
    for key in &keys {
        let out = c.run_with_stdin(&["put", key, "-", "--node", &c.addr(1)], &value);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    c.must(&["cluster", "up", "--detach", "--node", "node-3"]);

    // Three repairs of the range at once, asking for one byte a second: two run, paced at the
    // floor of 1 MiB/s (not one byte a second), the third is refused.
    let repair = Request::Repair {
        after,
        upto,
        rate_bytes_per_sec: 1,
    };
    let started = Instant::now();
    let replies: Vec<_> = rt.block_on(async {
        let admin = Arc::new(admin);
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (admin, repair) = (admin.clone(), repair.clone());
                tokio::spawn(async move {
                    admin
                        .request_with_timeout(node1, &repair, Duration::from_secs(60))
                        .await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let took = started.elapsed();
    let refused: Vec<_> = replies
        .iter()
        .filter_map(|r| match r {
            Ok(Response::Error { message, .. }) => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{replies:?}");
    assert!(refused[0].contains("repairs_max"), "{refused:?}");
    let sent: u64 = replies
        .iter()
        .filter_map(|r| match r {
            Ok(Response::Repaired { keys_sent, .. }) => Some(*keys_sent),
            _ => None,
        })
        .sum();
    assert!(sent >= 4, "{replies:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // Node 3 has the keys now.
    for key in &keys {
        let out = c.must_json(&["get", key, "--consistency", "one", "--node", &c.addr(3)]);
        assert_eq!(out["found"], true, "{key}: {out}");
    }
}

/// A UDP relay in front of `node` for a peer that never finishes its handshakes: each client
/// source gets its own socket on 127.0.0.2 toward the node; the first `forwarded` datagrams
/// of each go through (the Initial, and the Initial again with the Retry token), later ones
/// are dropped, so every handshake starts on the node and stalls there.
async fn stalling_relay(node: SocketAddr, forwarded: usize) -> SocketAddr {
    use std::collections::hash_map::Entry;
    use tokio::net::UdpSocket;
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let mut upstreams: std::collections::HashMap<SocketAddr, (Arc<UdpSocket>, usize)> =
            std::collections::HashMap::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = front.recv_from(&mut buf).await else {
                return;
            };
            let (up, sent) = match upstreams.entry(from) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => {
                    let up = Arc::new(UdpSocket::bind("127.0.0.2:0").await.unwrap());
                    up.connect(node).await.unwrap();
                    let (back, front) = (up.clone(), front.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = back.recv(&mut buf).await {
                            let _ = front.send_to(&buf[..n], from).await;
                        }
                    });
                    v.insert((up, 0))
                }
            };
            *sent += 1;
            if *sent <= forwarded {
                let _ = up.send(&buf[..n]).await;
            }
        }
    });
    addr
}

#[test]
fn handshakes_that_never_finish_hold_no_connections() {
    // 24 connections: counted from arrival, 30 stalled handshakes would hold them all.
    let c = Cluster::up_with_env(3, 3, &[("KVCTL_CONNECTIONS_MAX", "24")]);
    let rt = runtime();
    let node1: SocketAddr = c.addr(1).parse().unwrap();
    let relay = rt.block_on(stalling_relay(node1, 2));
    let attackers: Vec<_> = (0..30).map(|_| c.client_transport(&rt)).collect();
    for t in &attackers {
        let _runtime = rt.enter();
        let connecting = t.endpoint().connect(relay, NODE_SERVER_NAME).unwrap();
        rt.spawn(async move {
            let _ = connecting.await;
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    // Meanwhile clients and nodes are served through node 1, each client a new connection.
    for i in 0..5 {
        let key = format!("k{i}");
        c.must(&[
            "put",
            &key,
            "v",
            "--consistency",
            "all",
            "--node",
            &c.addr(1),
        ]);
        assert_eq!(c.must(&["get", &key, "--node", &c.addr(1)]).trim(), "v");
    }
    let log = std::fs::read_to_string(c.home().join("nodes/node-1/node.log")).unwrap();
    assert!(log.contains("handshakes_per_ip_max"), "{log}");
    drop(attackers);
}
