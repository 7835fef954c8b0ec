//! What other nodes send is checked like what clients send. A peer holding a node certificate
//! of the cluster (made with `kvctl cert node`) cannot write versions no node makes (a counter
//! at `u64::MAX` that would dominate every later write, a claim to writes node 1 never made),
//! nor mark ranges in sync that are not its to mark; a process that takes over a node's
//! address with another certificate acknowledges nothing meant for that node; hints a node
//! refuses as bad requests are kept, said in `status`, and delivered once it takes them; and
//! no replica acknowledges a write its sibling trim drops.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Cluster;
use kvctl::model::version::{
    new_version_against, Siblings, VClock, CLOCK_ENTRIES_MAX, COUNTER_MAX,
};
use kvctl::wire::budget::NodeBudget;
use kvctl::wire::proto::{ErrorKind, Member, Request, Response};
use kvctl::wire::tls::Identity;
use kvctl::wire::transport::{serve_stream, Reply, Transport};
use serde_bytes::ByteBuf;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The members node `addr` knows.
fn members(rt: &tokio::runtime::Runtime, t: &Transport, addr: SocketAddr) -> Vec<Member> {
    match rt.block_on(t.request(addr, &Request::Status)).unwrap() {
        Response::Members { members, .. } => members.into_iter().map(|v| v.member).collect(),
        other => panic!("status: {other:?}"),
    }
}

/// Siblings of one version of `node`'s `counter`-th write, holding `value`.
fn version(node: &str, counter: u64, value: &[u8]) -> Vec<u8> {
    Siblings::from(new_version_against(
        &Siblings::default(),
        &VClock::new(),
        node,
        counter - 1,
        1,
        Some(value.to_vec()),
        CLOCK_ENTRIES_MAX,
    ))
    .encode()
}

fn must_invalid(reply: Response, says: &str) {
    match reply {
        Response::Error {
            kind: ErrorKind::Invalid,
            message,
        } => assert!(message.contains(says), "{message}"),
        other => panic!("expected an invalid-request refusal saying {says:?}, got {other:?}"),
    }
}

#[test]
fn versions_and_sync_marks_from_a_node_certificate_are_checked() {
    let c = Cluster::up(3, 0);
    let rt = runtime();
    let evil = c.peer(&rt, "evil");
    let node1: SocketAddr = c.addr(1).parse().unwrap();
    c.must(&["put", "k", "v1", "--consistency", "all"]);
    let me = members(&rt, &evil, node1)
        .into_iter()
        .find(|m| m.id == "node-1")
        .unwrap();
    let node1_actor = format!("node-1#{:016x}", me.incarnation);

    let write = |siblings: Vec<u8>| {
        rt.block_on(evil.request(
            node1,
            &Request::ReplicaWrite {
                key: ByteBuf::from(b"k".to_vec()),
                siblings: ByteBuf::from(siblings),
            },
        ))
        .unwrap()
    };
    // A counter at u64::MAX: every later dot would saturate under it.
    must_invalid(
        write(version("evil#00", u64::MAX, b"forever")),
        "counters 1",
    );
    // Node 1's own writes, far past any it made.
    must_invalid(
        write(version(&node1_actor, COUNTER_MAX, b"mine")),
        "which has made none above",
    );
    // Later writes through node 1 are what a get sees.
    c.must(&["put", "k", "v2", "--node", &c.addr(1)]);
    let got = c.must(&["get", "k", "--node", &c.addr(1)]);
    assert!(
        got.contains("v2") && !got.contains("forever") && !got.contains("mine"),
        "{got}"
    );

    // Sync marks: the whole ring at the end of time, and a real range from a non-replica.
    let synced = |after: u128, upto: u128| {
        rt.block_on(evil.request(
            node1,
            &Request::RangeSynced {
                after,
                upto,
                since_ms: u64::MAX,
            },
        ))
        .unwrap()
    };
    must_invalid(synced(0, 0), "is not a token range of this node's ring");
    // A range of node 1's (ending at one of its tokens): evil is no replica of it.
    let upto = me.tokens[0];
    let after = members(&rt, &evil, node1)
        .iter()
        .flat_map(|m| m.tokens.clone())
        .filter(|t| *t < upto)
        .max()
        .unwrap_or_else(|| {
            let all = members(&rt, &evil, node1);
            all.iter().flat_map(|m| m.tokens.clone()).max().unwrap()
        });
    must_invalid(synced(after, upto), "are not both replicas");
}

/// A stand-in at an address: serves with `identity`, answering every request with what
/// `answer` says, counting the requests.
fn stand_in(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    identity: &Identity,
    answer: Arc<dyn Fn(&Request) -> Response + Send + Sync>,
) -> (Arc<Transport>, Arc<AtomicUsize>) {
    let _guard = rt.enter();
    // The port was the killed node's: retry until the kernel lets it go.
    let deadline = Instant::now() + Duration::from_secs(10);
    let transport = loop {
        match Transport::server(addr, identity) {
            Ok(t) => break Arc::new(t),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot listen on {addr}: {e}"),
        }
    };
    let seen = Arc::new(AtomicUsize::new(0));
    let budget = NodeBudget::new(kvctl::wire::budget::Limits::default());
    let (t, s) = (transport.clone(), seen.clone());
    rt.spawn(async move {
        while let Some(incoming) = t.endpoint().accept().await {
            let (answer, seen, budget) = (answer.clone(), s.clone(), budget.clone());
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let connection = budget.node_connection();
                while let Ok((send, recv)) = conn.accept_bi().await {
                    let (answer, seen) = (answer.clone(), seen.clone());
                    let request_budget = Arc::new(connection.request());
                    tokio::spawn(serve_stream(send, recv, request_budget, move |r, _, _| {
                        seen.fetch_add(1, Ordering::Relaxed);
                        let reply = answer(&r);
                        async move { Reply::One(reply) }
                    }));
                }
            });
        }
    });
    (transport, seen)
}

#[test]
fn a_node_answering_at_another_nodes_address_is_not_taken_for_it() {
    let c = Cluster::up(3, 1);
    let rt = runtime();
    c.must(&["put", "before", "v", "--consistency", "all"]);
    let node3: SocketAddr = c.addr(3).parse().unwrap();
    c.sigkill(3);
    let impostor = c.node_identity("impostor");
    let (_server, seen) = stand_in(&rt, node3, &impostor, Arc::new(|_| Response::Ack));
    // Node 3 still looks up (its silence is young): node 1 dials its address for each write.
    let mut said = Vec::new();
    for i in 0..5 {
        let key = format!("k{i}");
        let out = c.run(&[
            "put",
            &key,
            "v",
            "--consistency",
            "all",
            "--node",
            &c.addr(1),
        ]);
        assert!(
            !out.status.success(),
            "a write at ALL was acknowledged with node 3 gone"
        );
        said.push(String::from_utf8_lossy(&out.stderr).into_owned());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        seen.load(Ordering::Relaxed),
        0,
        "the process at node 3's address was sent requests: {said:?}"
    );
    eprintln!("{said:#?}");
}

#[test]
fn hints_a_node_refuses_as_bad_requests_are_kept_until_it_takes_them() {
    let c = Cluster::up_with_env(3, 2, &[("KVCTL_PHI_CONVICT_THRESHOLD", "3")]);
    let rt = runtime();
    let node1: SocketAddr = c.addr(1).parse().unwrap();
    let node3: SocketAddr = c.addr(3).parse().unwrap();
    let fake3 = c.node_identity("node-3");
    let client = c.client_transport(&rt);
    let me3 = members(&rt, &client, node1)
        .into_iter()
        .find(|m| m.id == "node-3")
        .unwrap();
    c.sigkill(3);
    // Node 1 holds node 3 down, then takes writes node 3 misses: hints.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut written = 0;
    while written < 20 {
        assert!(Instant::now() < deadline, "no hints were made for node 3");
        let key = format!("h{written}");
        let out = c.run(&[
            "put",
            &key,
            "v",
            "--consistency",
            "one",
            "--node",
            &c.addr(1),
        ]);
        if out.status.success() {
            written += 1;
        }
    }
    let status = |c: &Cluster| -> (u64, u64) {
        let json = c.must_json(&["status", "--node", &c.addr(1)]);
        let node1 = json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "node-1")
            .unwrap()
            .clone();
        (
            node1["hints_pending"].as_u64().unwrap(),
            node1["hints_refused"].as_u64().unwrap(),
        )
    };
    let wait = |what: &str, ok: &dyn Fn((u64, u64)) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let now = status(&c);
            if ok(now) {
                return now;
            }
            assert!(Instant::now() < deadline, "waiting for {what}: {now:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    // One hint a write: node 1 is a replica of every key of three nodes.
    let (pending, _) = wait("a hint a write for node 3", &|(p, _)| p >= written);

    // A node 3 that does not read them yet (as after a downgrade): it answers every replica
    // write as a bad request, and gossips so node 1 holds it up.
    let takes = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = takes.clone();
    let (server, _) = stand_in(
        &rt,
        node3,
        &fake3,
        Arc::new(move |r| match r {
            Request::ReplicaWrite { .. } if !t.load(Ordering::Relaxed) => Response::Error {
                kind: ErrorKind::BadRequest,
                message: "not a set of siblings: unknown format byte 3".into(),
            },
            _ => Response::Ack,
        }),
    );
    let heartbeat = Arc::new(AtomicU64::new(1));
    let generation = me3.generation + 1;
    let (s, h) = (server.clone(), heartbeat.clone());
    rt.spawn(async move {
        loop {
            let member = Member {
                generation,
                heartbeat: h.fetch_add(1, Ordering::Relaxed),
                ..me3.clone()
            };
            let _ = s
                .request(
                    node1,
                    &Request::Gossip {
                        members: vec![member],
                    },
                )
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (held, refused) = wait("the refused hints said in status", &|(_, r)| r > 0);
    assert_eq!(held, pending, "hints were dropped on a bad request");
    assert!(refused > 0 && refused <= held);
    // Once node 3 takes them, they are delivered and the status clears.
    takes.store(true, Ordering::Relaxed);
    wait("the hints delivered", &|(p, r)| p == 0 && r == 0);
}

#[test]
fn a_write_the_sibling_trim_drops_is_not_acknowledged() {
    let c = Cluster::up(3, 3);
    let rt = runtime();
    let peer = c.peer(&rt, "node-9");
    // A key at the sibling limit: 64 concurrent versions, on every replica.
    let full = Siblings::from_versions((1..=kvctl::model::version::SIBLINGS_MAX as u64).map(|i| {
        new_version_against(
            &Siblings::default(),
            &VClock::new(),
            "w#00",
            i - 1,
            1_000_000 + i,
            Some(format!("v{i}").into_bytes()),
            CLOCK_ENTRIES_MAX,
        )
    }));
    let write = |node: usize, siblings: Vec<u8>| {
        rt.block_on(peer.request(
            c.addr(node).parse().unwrap(),
            &Request::ReplicaWrite {
                key: ByteBuf::from(b"full".to_vec()),
                siblings: ByteBuf::from(siblings),
            },
        ))
        .unwrap()
    };
    for node in 1..=3 {
        assert_eq!(write(node, full.encode()), Response::Ack);
    }
    // A concurrent write from a coordinator whose clock is behind: the oldest of 65, so the
    // trim would drop it. Refused, not acknowledged.
    let late = Siblings::from(new_version_against(
        &Siblings::default(),
        &VClock::new(),
        "late#00",
        0,
        5,
        Some(b"late".to_vec()),
        CLOCK_ENTRIES_MAX,
    ));
    must_invalid(write(1, late.encode()), "trimmed away");
    // A client's blind write there is refused by its coordinator, naming the limit.
    let out = c.run(&["put", "full", "x", "--node", &c.addr(2)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("siblings"), "{err}");
    // The key still holds exactly the 64: neither write is anywhere.
    let got = c.must_json(&["get", "full", "--consistency", "all"]);
    let values = got["values"].as_array().unwrap();
    assert_eq!(values.len(), kvctl::model::version::SIBLINGS_MAX, "{got}");
    assert!(!values.iter().any(|v| v == "late" || v == "x"), "{got}");
}
