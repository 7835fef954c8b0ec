//! The client SDK's retries, with real processes: a put whose coordinator is killed after
//! applying it, before replying, is retried through another replica and still gives one
//! sibling (the write id makes the retry idempotent); reads and writes go on while a node is
//! dead and not yet known to be.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use kvctl::proto::{Request, Response};
use kvctl::ring::Ring;

const CRASH_ENV: &str = "KVCTL_FAILPOINT_CRASH_BEFORE_PUT_REPLY";

/// A key whose preference list starts with `node`, as the cluster's ring places it.
fn key_first_on(c: &Cluster, node: &str) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let transport = c.client_transport(&rt);
    let reply = rt
        .block_on(transport.request(c.addr(2).parse().unwrap(), &Request::Status))
        .expect("status");
    let Response::Members { members, .. } = reply else {
        panic!("unexpected reply {reply:?}");
    };
    let ring = Ring::new(
        members
            .iter()
            .map(|m| (m.member.id.clone(), m.member.tokens.clone())),
    );
    (0..10_000)
        .map(|i| format!("retried-{i}"))
        .find(|k| ring.preference_list(k.as_bytes(), 3)[0] == node)
        .expect("some key has node-1 first")
}

fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_put_retried_after_its_coordinator_died_gives_one_sibling() {
    let c = Cluster::up_with_env(3, 0, &[(CRASH_ENV, "node-1")]);
    let key = key_first_on(&c, "node-1");
    let pid = c.pid(1);

    // The client sends the put to node-1 (the key's first replica): node-1 applies it on a
    // quorum and is killed before replying; the client tries another replica, which succeeds.
    let out = c.must(&["put", &key, "only-once"]);
    assert_eq!(out.trim(), "OK");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "node-1 coordinated the put and was killed"
    );
    let log = std::fs::read_to_string(c.home().join("nodes/node-1/node.log")).unwrap();
    assert!(
        log.contains(CRASH_ENV),
        "node-1 did not crash at the failpoint:\n{log}"
    );

    // With node-1 back (its copy of the write too), every replica's versions merged: one
    // value, at ALL.
    c.must(&["cluster", "up", "--detach", "--node", "node-1"]);
    wait_until(Duration::from_secs(30), "a read at ALL", || {
        c.run(&["get", &key, "--consistency", "all"])
            .status
            .success()
    });
    let read = c.must_json(&["get", &key, "--consistency", "all"]);
    assert_eq!(read["values"], serde_json::json!(["only-once"]), "{read}");
    assert_eq!(read["siblings"], 1, "{read}");

    // A put with that context replaces it everywhere, leaving one value too.
    let context = read["context"].as_str().unwrap().to_string();
    c.must(&[
        "put",
        &key,
        "next",
        "--context",
        &context,
        "--node",
        &c.addr(2),
    ]);
    let read = c.must_json(&["get", &key, "--consistency", "all"]);
    assert_eq!(read["values"], serde_json::json!(["next"]), "{read}");
}

#[test]
fn requests_go_on_while_a_node_is_dead_but_not_yet_shown_down() {
    let c = Cluster::up(3, 1);
    for i in 0..10 {
        c.must(&["put", &format!("k{i}"), "before"]);
    }
    // Right after the kill, nodes and clients still think node-2 is up: a request routed to
    // it first fails to connect or times out, and the client moves on to another replica.
    c.sigkill(2);
    for i in 0..10 {
        let k = format!("k{i}");
        c.must(&["put", &k, "after", "--context", &{
            let read = c.must_json(&["get", &k]);
            read["context"].as_str().unwrap().to_string()
        }]);
        let read = c.must_json(&["get", &k]);
        assert_eq!(read["values"], serde_json::json!(["after"]), "{k}: {read}");
    }
    // Blind puts too (a write id makes them safe to retry).
    for i in 0..10 {
        c.must(&["put", &format!("blind-{i}"), "v"]);
    }
}
