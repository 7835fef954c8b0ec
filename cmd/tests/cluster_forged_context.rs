//! A client cannot forge a causal context: a hand-made context claiming a huge counter of
//! another node, an altered one, a truncated one, and the context of another key are all
//! refused with a clear error, and every node keeps taking writes (before and after a restart).

mod common;

use std::collections::BTreeMap;

use common::Cluster;
use kvctl::model::context::{hex_encode, CONTEXT_FORMAT};
use kvctl::model::version::{ClockEntry, COUNTER_MAX};

/// `{"node-2": {counter: 2^62 - 1}}` as CBOR: the clock of the attack, written by hand.
fn forged_clock() -> Vec<u8> {
    let mut entries = BTreeMap::new();
    entries.insert(
        "node-2".to_string(),
        ClockEntry {
            counter: COUNTER_MAX - 1,
            timestamp_ms: u64::MAX,
        },
    );
    let mut cbor = Vec::new();
    ciborium::into_writer(&entries, &mut cbor).unwrap();
    cbor
}

fn must_refuse(c: &Cluster, args: &[&str], says: &str) {
    let out = c.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(
        stderr.contains("bad causal context token") && stderr.contains(says),
        "{args:?}: {stderr}"
    );
}

#[test]
fn cluster_refuses_forged_contexts_and_keeps_taking_writes() {
    let c = Cluster::up(3, 0);
    let node1 = c.addr(1);
    let node2 = c.addr(2);

    // The attack of the issue: the bare clock (the unsigned format of earlier builds) ...
    let unsigned = hex_encode(&forged_clock());
    must_refuse(
        &c,
        &[
            "put",
            "victim",
            "x",
            "--context",
            &unsigned,
            "--node",
            &node1,
        ],
        "unsigned format",
    );
    // ... and in the current format with a tag made up without the cluster secret.
    let mut body = vec![CONTEXT_FORMAT];
    body.extend_from_slice(&forged_clock());
    body.extend_from_slice(&[0xab; 32]);
    must_refuse(
        &c,
        &[
            "put",
            "victim",
            "x",
            "--context",
            &hex_encode(&body),
            "--node",
            &node1,
        ],
        "not made by this cluster",
    );

    // A real context, altered, truncated, or used for another key: refused.
    c.must(&["put", "cart", "apple"]);
    let got = c.must_json(&["get", "cart"]);
    let context = got["context"].as_str().unwrap().to_string();
    let mut altered = context.clone().into_bytes();
    altered[4] = if altered[4] == b'0' { b'1' } else { b'0' };
    let altered = String::from_utf8(altered).unwrap();
    must_refuse(
        &c,
        &["put", "cart", "x", "--context", &altered],
        "not made by this cluster",
    );
    must_refuse(
        &c,
        &[
            "put",
            "cart",
            "x",
            "--context",
            &context[..context.len() - 8],
        ],
        "not made by this cluster",
    );
    must_refuse(
        &c,
        &["put", "other", "x", "--context", &context],
        "not made by this cluster",
    );
    // The real one, for its key, through any node: accepted, and it resolves what it saw.
    c.must(&[
        "put",
        "cart",
        "apple+pear",
        "--context",
        &context,
        "--node",
        &node2,
    ]);
    assert_eq!(c.must(&["get", "cart"]).trim(), "apple+pear");

    // Every node still coordinates writes without context, for any key.
    for node in 1..=3 {
        for i in 0..3 {
            let key = format!("k{node}-{i}");
            c.must(&["put", &key, "v", "--node", &c.addr(node)]);
        }
    }
    // Also after a restart of the whole cluster.
    c.must(&["cluster", "down"]);
    c.must(&["cluster", "up", "--detach"]);
    for node in 1..=3 {
        c.must(&["put", "after", "restart", "--node", &c.addr(node)]);
    }
    let got = c.must_json(&["get", "after"]);
    assert_eq!(got["values"].as_array().unwrap().len(), 3, "{got}");
}
