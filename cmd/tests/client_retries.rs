//! The client SDK's retries, with real processes: a put whose coordinator is killed after
//! applying it, before replying, is retried through another replica and still gives one
//! sibling (the write id makes the retry idempotent); reads and writes go on while a node is
//! dead and not yet known to be.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;

const CRASH_ENV: &str = "KVCTL_FAILPOINT_CRASH_BEFORE_PUT_REPLY";

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
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("crashed");
    let c = Cluster::up_with_env(3, 0, &[(CRASH_ENV, marker.to_str().unwrap())]);
    let pids: Vec<u32> = (1..=3).map(|n| c.pid(n)).collect();

    // The node the client sends the put to applies it on a quorum and is killed before
    // replying (the fault-injection file names it); the client tries another replica, which
    // succeeds.
    let out = c.must(&["put", "retried", "only-once"]);
    assert_eq!(out.trim(), "OK");
    let crashed = std::fs::read_to_string(&marker).expect("a node crashed at the failpoint");
    let n: usize = crashed.trim_start_matches("node-").parse().unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pids[n - 1])).exists(),
        "{crashed} coordinated the put and was killed"
    );

    // With that node back (its copy of the write too), every replica's versions merged: one
    // value, at ALL.
    c.must(&["cluster", "up", "--detach", "--node", &crashed]);
    wait_until(Duration::from_secs(30), "a read at ALL", || {
        c.run(&["get", "retried", "--consistency", "all"])
            .status
            .success()
    });
    let read = c.must_json(&["get", "retried", "--consistency", "all"]);
    assert_eq!(read["values"], serde_json::json!(["only-once"]), "{read}");
    assert_eq!(read["siblings"], 1, "{read}");

    // A put with that context replaces it everywhere, leaving one value too.
    let context = read["context"].as_str().unwrap().to_string();
    c.must(&["put", "retried", "next", "--context", &context]);
    let read = c.must_json(&["get", "retried", "--consistency", "all"]);
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
