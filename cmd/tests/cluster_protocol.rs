//! The protocol's room to grow, on a real cluster: a bulk transfer (`ReplicaScan`) streams a
//! token range's keys in chunks, in token order, to a node certificate only; a request the node
//! does not know is answered with a typed `Unsupported` error, a message of a later protocol
//! version with unknown fields is read by the fields the node knows, and the node keeps
//! serving.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ciborium::Value;
use common::Cluster;
use kvctl::model::ring::token_of;
use kvctl::model::version::Siblings;
use kvctl::wire::proto::{ErrorKind, Request, Response};
use kvctl::wire::transport::{Transport, CHUNK_BYTES};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every chunk of a transfer of (after, upto] from `addr`: (chunks, keys in order).
fn scan(
    rt: &tokio::runtime::Runtime,
    t: &Transport,
    addr: SocketAddr,
    after: u128,
    upto: u128,
) -> (usize, Vec<Vec<u8>>) {
    rt.block_on(async {
        let mut chunks = t
            .chunks(addr, &Request::ReplicaScan { after, upto })
            .await
            .unwrap();
        let (mut n, mut keys, mut last) = (0, Vec::new(), false);
        while let Some(chunk) = chunks.next().await {
            match chunk.unwrap() {
                Response::Chunk { entries, last: l } => {
                    assert!(!last, "a chunk after the last");
                    let bytes: usize = entries.iter().map(|e| e.key.len() + e.siblings.len()).sum();
                    let largest = entries.iter().map(|e| e.key.len() + e.siblings.len()).max();
                    assert!(bytes < CHUNK_BYTES + largest.unwrap_or(0), "{bytes}");
                    for e in entries {
                        Siblings::decode(&e.siblings).expect("stored versions");
                        keys.push(e.key.into_vec());
                    }
                    n += 1;
                    last = l;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(last, "the transfer ended with its last chunk");
        (n, keys)
    })
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn bulk_transfers_and_unknown_requests() {
    let c = Cluster::up(3, 0);
    let rt = runtime();
    let addr: SocketAddr = c.addr(1).parse().unwrap();
    // 40 keys of 64 KiB (several chunks) and 200 small ones.
    let big = vec![b'v'; 64 << 10];
    for i in 0..40 {
        c.run_with_stdin(&["put", &format!("big-{i}"), "-"], &big);
    }
    for i in 0..200 {
        c.must(&["put", &format!("small-{i}"), "x"]);
    }
    let written: BTreeSet<Vec<u8>> = (0..40)
        .map(|i| format!("big-{i}"))
        .chain((0..200).map(|i| format!("small-{i}")))
        .map(String::into_bytes)
        .collect();

    let node = c.peer(&rt, "node-9");
    // The whole ring: every key (N = 3 on 3 nodes: every node holds every key), in token
    // order, in several chunks.
    let (chunks, keys) = scan(&rt, &node, addr, 0, 0);
    assert!(chunks >= 3, "{chunks} chunks");
    let tokens: Vec<u128> = keys.iter().map(|k| token_of(k)).collect();
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]), "token order");
    assert_eq!(keys.iter().cloned().collect::<BTreeSet<_>>(), written);

    // Ranges that split the ring (one wrapping past its top) hold each key exactly once.
    let cuts = [u128::MAX / 5, u128::MAX / 2, u128::MAX / 4 * 3];
    let mut union = Vec::new();
    for (i, after) in cuts.iter().enumerate() {
        let upto = cuts[(i + 1) % cuts.len()];
        let (_, keys) = scan(&rt, &node, addr, *after, upto);
        for k in &keys {
            let t = token_of(k);
            let inside = if after < &upto {
                *after < t && t <= upto
            } else {
                t > *after || t <= upto
            };
            assert!(inside, "key of token {t} outside ({after}, {upto}]");
        }
        union.extend(keys);
    }
    union.sort();
    let all: Vec<Vec<u8>> = written.iter().cloned().collect();
    assert_eq!(union, all);

    // A client certificate cannot start one: the refusal comes as one message.
    let client = c.client_transport(&rt);
    rt.block_on(async {
        let mut chunks = client
            .chunks(addr, &Request::ReplicaScan { after: 0, upto: 0 })
            .await
            .unwrap();
        match chunks.next().await.unwrap().unwrap() {
            Response::Error { kind, message } => {
                assert_eq!(kind, ErrorKind::BadRequest);
                assert!(message.contains("node certificate"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(chunks.next().await.is_none());
    });

    // A request of a later release: a typed error naming it. A known request of a later
    // version, with fields this build does not know: served.
    let later = |body: Value| {
        cbor(&Value::Map(vec![
            (text("v"), Value::Integer(9.into())),
            (text("body"), body),
            (text("timeout_ms"), Value::Integer(2000.into())),
            (text("priority"), text("high")),
        ]))
    };
    let unknown = later(Value::Map(vec![(
        text("MerkleLevel"),
        Value::Map(vec![(text("depth"), Value::Integer(3.into()))]),
    )]));
    match rt
        .block_on(node.send_encoded(addr, &unknown, Duration::from_secs(5), None))
        .unwrap()
    {
        Response::Error { kind, message } => {
            assert_eq!(kind, ErrorKind::Unsupported);
            assert!(
                message.contains("unknown request 'MerkleLevel'"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let status = later(Value::Map(vec![(
        text("Get"),
        Value::Map(vec![
            (text("key"), Value::Bytes(b"small-7".to_vec())),
            (text("consistency"), text("Quorum")),
            (text("hedged"), Value::Bool(true)),
        ]),
    )]));
    match rt
        .block_on(client.send_encoded(addr, &status, Duration::from_secs(5), None))
        .unwrap()
    {
        Response::Value { found, values, .. } => {
            assert!(found);
            assert_eq!(values[0].as_ref(), b"x");
        }
        other => panic!("{other:?}"),
    }
    // And the node goes on as before.
    assert_eq!(c.must(&["get", "small-9"]).trim(), "x");
}
