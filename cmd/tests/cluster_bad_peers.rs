//! A node certificate proves who is talking, not that they are kind. A peer holding a valid
//! node certificate of the cluster (made with `kvctl cert node` from the cluster's CA) that
//! sends bad gossip or oversized sibling sets cannot disable a node: the gossip entries are
//! refused and logged and the ring stays as it was; a replica write over the sibling limit is
//! trimmed to the newest versions (counted in `kvctl status`), one far over it is refused; and
//! the cluster keeps serving.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Cluster;
use kvctl::model::version::{new_version, Siblings, VClock, SIBLINGS_MAX};
use kvctl::wire::certs::NODE_SERVER_NAME;
use kvctl::wire::proto::{self, ErrorKind, Member, MemberState, Request, Response};
use kvctl::wire::transport::Transport;
use serde_bytes::ByteBuf;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The node's own view of the cluster: each member's id, address and tokens.
fn ring_of(transport: &Transport, rt: &tokio::runtime::Runtime, addr: SocketAddr) -> Vec<Member> {
    match rt
        .block_on(transport.request(addr, &Request::Status))
        .unwrap()
    {
        Response::Members { members, .. } => {
            let mut members: Vec<Member> = members.into_iter().map(|v| v.member).collect();
            for m in &mut members {
                // What changes on its own, round after round.
                m.heartbeat = 0;
                m.siblings_trimmed = 0;
            }
            members.sort_by(|a, b| a.id.cmp(&b.id));
            members
        }
        other => panic!("status: {other:?}"),
    }
}

fn log_of(c: &Cluster, node: usize) -> String {
    std::fs::read_to_string(c.home().join(format!("nodes/node-{node}/node.log"))).unwrap()
}

fn works(c: &Cluster, key: &str) {
    for node in 1..=c.nodes {
        let key = format!("{key}-{node}");
        c.must(&["put", &key, "value", "--node", &c.addr(node)]);
        assert_eq!(
            c.must(&["get", &key, "--node", &c.addr(node)]).trim(),
            "value"
        );
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_gossip_from_a_node_certificate_is_refused_and_logged() {
    let c = Cluster::up(3, 0);
    let rt = runtime();
    let evil = c.peer(&rt, "evil");
    let node1: SocketAddr = c.addr(1).parse().unwrap();
    let before = ring_of(&evil, &rt, node1);
    assert_eq!(before.len(), 3);
    let node2 = before.iter().find(|m| m.id == "node-2").unwrap().clone();
    let node1_tokens = before
        .iter()
        .find(|m| m.id == "node-1")
        .unwrap()
        .tokens
        .clone();

    let far_future = (u64::MAX >> 1) as u128;
    let members: Vec<Member> = vec![
        // A real node moved elsewhere, with a generation far ahead of anyone's clock.
        Member {
            addr: "127.0.0.9:1".parse().unwrap(),
            generation: u64::MAX / 2,
            heartbeat: u64::MAX / 2,
            ..node2.clone()
        },
        // A real node's tokens changed by someone else.
        Member {
            tokens: vec![far_future],
            generation: node2.generation + 1,
            ..node2.clone()
        },
        // The sender's own entry without tokens.
        Member {
            id: "evil".into(),
            addr: "127.0.0.9:2".parse().unwrap(),
            tokens: vec![],
            state: MemberState::Normal,
            generation: 1,
            heartbeat: 1,
            incarnation: 1,
            siblings_trimmed: 0,
            hints_pending: 0,
            hints_refused: 0,
            metrics: None,
            siblings_format_max: 0,
        },
        // A member whose id sorts before node-1's, claiming node-1's tokens to win the ties.
        Member {
            id: "a".into(),
            addr: "127.0.0.9:3".parse().unwrap(),
            tokens: node1_tokens.clone(),
            state: MemberState::Normal,
            generation: 1,
            heartbeat: 1,
            incarnation: 1,
            siblings_trimmed: 0,
            hints_pending: 0,
            hints_refused: 0,
            metrics: None,
            siblings_format_max: 0,
        },
    ]
    .into_iter()
    // And a flood of members, each claiming one of node-1's tokens.
    .chain((0..1000).map(|i| Member {
        id: format!("fake-{i}"),
        addr: "127.0.0.9:4".parse().unwrap(),
        tokens: vec![node1_tokens[i % node1_tokens.len()]],
        state: MemberState::Normal,
        generation: 1,
        heartbeat: 1,
        incarnation: 1,
        siblings_trimmed: 0,
        hints_pending: 0,
        hints_refused: 0,
        metrics: None,
        siblings_format_max: 0,
    }))
    .collect();
    for _ in 0..3 {
        let reply = rt
            .block_on(evil.request(
                node1,
                &Request::Gossip {
                    members: members.clone(),
                },
            ))
            .unwrap();
        assert!(matches!(reply, Response::Members { .. }), "{reply:?}");
    }
    // More members, or more tokens, than any message may carry: refused as it is decoded.
    let over = |members: Vec<Member>, says: &str| {
        let reply = rt
            .block_on(evil.request(node1, &Request::Gossip { members }))
            .unwrap();
        match reply {
            Response::Error { kind, message } => {
                assert_eq!(kind, ErrorKind::BadRequest);
                assert!(message.contains(says), "{message}");
            }
            other => panic!("{other:?}"),
        }
    };
    over(
        (0..=proto::MEMBERS_MAX)
            .map(|i| Member {
                id: format!("many-{i}"),
                ..node2.clone()
            })
            .collect(),
        "at most 1024 members",
    );
    over(
        vec![Member {
            tokens: (0..1000u128).map(|t| t << 100).collect(),
            ..node2.clone()
        }],
        "at most 256 tokens",
    );

    // A gossip message over the message limit is refused as such.
    let huge = Request::Gossip {
        members: (0..200_000u128)
            .map(|i| Member {
                id: format!("huge-{i}"),
                tokens: vec![i << 64],
                ..node2.clone()
            })
            .collect(),
    };
    let bytes = proto::encode(&huge);
    assert!(bytes.len() > proto::MESSAGE_BYTES_MAX);
    rt.block_on(async {
        let conn = evil
            .endpoint()
            .connect(node1, NODE_SERVER_NAME)
            .unwrap()
            .await
            .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        // The node stops reading once the limit is passed: the write fails, the reply comes.
        let write = async {
            let _ = send.write_all(&bytes).await;
            let _ = send.finish();
        };
        let (_, reply) = tokio::join!(write, recv.read_to_end(1 << 20));
        let reply = reply.unwrap();
        match proto::decode::<Response>(&reply).unwrap() {
            Response::Error { kind, message } => {
                assert_eq!(kind, ErrorKind::BadRequest);
                assert!(message.contains("over the limit"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    });

    // Nothing changed: the same members, addresses and tokens, as every node sees them.
    assert_eq!(ring_of(&evil, &rt, node1), before);
    for node in 2..=3 {
        let seen = ring_of(&evil, &rt, c.addr(node).parse().unwrap());
        assert_eq!(seen, before, "node {node}");
    }
    let log = log_of(&c, 1);
    for says in [
        "refused",
        "node-2",
        "more than 3600000 ms ahead",
        "only node-2 may",
        "member evil has 0 tokens",
        "member a claims tokens node-1 holds",
    ] {
        assert!(log.contains(says), "node 1's log lacks {says:?}:\n{log}");
    }
    let status = c.must_json(&["status"]);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status}");
    works(&c, "after-bad-gossip");
}

#[test]
fn replica_writes_over_the_sibling_limit_are_trimmed_or_refused() {
    let c = Cluster::up(3, 1);
    let rt = runtime();
    let evil = c.peer(&rt, "evil");
    let node1: SocketAddr = c.addr(1).parse().unwrap();
    let versions = |n: usize| {
        Siblings::from_versions((0..n).map(|i| {
            new_version(
                &VClock::new(),
                &format!("writer-{i}"),
                1_800_000_000_000 + i as u64,
                Some(format!("v{i}").into_bytes()),
                16,
            )
        }))
    };
    let write = |siblings: &Siblings| {
        rt.block_on(evil.request(
            node1,
            &Request::ReplicaWrite {
                key: ByteBuf::from(b"crowded".to_vec()),
                siblings: ByteBuf::from(siblings.encode()),
            },
        ))
        .unwrap()
    };

    // Over the limit: merged, and the newest SIBLINGS_MAX kept.
    let over = SIBLINGS_MAX + 6;
    assert_eq!(write(&versions(over)), Response::Ack);
    let stored = match rt
        .block_on(evil.request(
            node1,
            &Request::ReplicaRead {
                key: ByteBuf::from(b"crowded".to_vec()),
            },
        ))
        .unwrap()
    {
        Response::Replica {
            siblings: Some(bytes),
        } => Siblings::decode(&bytes).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(stored.len(), SIBLINGS_MAX);
    let kept: Vec<&[u8]> = stored.values().collect();
    assert!(kept.contains(&&b"v69"[..]) && !kept.contains(&&b"v0"[..]));

    // Far over it: refused unmerged, as invalid (never to be sent again).
    match write(&versions(SIBLINGS_MAX * 4 + 1)) {
        Response::Error { kind, message } => {
            assert_eq!(kind, ErrorKind::Invalid);
            assert!(message.contains("siblings"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // The trim is said in the log and in status (gossiped, so every node shows it).
    wait_for("node 1's log to say it trimmed", || {
        log_of(&c, 1).contains("trimmed")
    });
    wait_for("status to count what node 1 trimmed", || {
        let status = c.must_json(&["status", "--node", &c.addr(2)]);
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "node-1" && n["siblings_trimmed"].as_u64().unwrap() >= 6)
    });
    let table = c.must(&["status"]);
    assert!(table.contains("trimmed"), "{table}");

    // A client get of the key sees the kept versions, and the cluster keeps working.
    let get = c.must_json(&[
        "get",
        "crowded",
        "--node",
        &c.addr(1),
        "--consistency",
        "all",
    ]);
    assert_eq!(get["siblings"], SIBLINGS_MAX, "{get}");
    works(&c, "after-crowded");
    assert!(Path::new(&c.home().join("nodes/node-1/node.pid")).exists());
}
