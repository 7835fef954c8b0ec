//! `kvctl repair` on real processes: a node whose disk was replaced comes back empty and, after
//! a repair, alone serves every key it owns; a delete a replica missed is spread by repair and
//! never undone; a range that cannot be repaired is a clear error, and a repair started again
//! skips the ranges already done.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

fn wait_until_down(c: &Cluster, via: usize, id: &str) {
    let start = Instant::now();
    loop {
        let status = c.must_json(&["status", "--node", &c.addr(via)]);
        let state = status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .map(|n| n["state"].clone());
        if state == Some(Value::from("down")) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{id} is not shown down: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn one_via(c: &Cluster, node: usize, key: &str) -> Value {
    c.must_json(&["get", key, "--consistency", "one", "--node", &c.addr(node)])
}

#[test]
fn a_replaced_disk_is_refilled_by_repair() {
    let c = Cluster::up(3, 0);
    for i in 0..150 {
        c.must(&["put", &format!("k{i}"), &format!("v{i}")]);
    }
    c.must(&["delete", "k7"]);
    c.sigkill(3);
    let data = c.home().join("nodes/node-3/data");
    std::fs::remove_dir_all(&data).unwrap();
    c.must(&["cluster", "up", "--detach", "--node", "node-3"]);
    // Empty: node 3 alone has nothing.
    assert_eq!(one_via(&c, 3, "k1")["found"], false);

    let report = c.must_json(&["repair"]);
    assert_eq!(report["ranges_failed"], 0, "{report}");
    assert!(report["keys_sent"].as_u64().unwrap() >= 150, "{report}");
    assert!(report["ranges_repaired"].as_u64().unwrap() > 0, "{report}");
    // Again: everything is in sync, nothing is sent.
    let again = c.must_json(&["repair"]);
    assert_eq!(again["keys_sent"], 0, "{again}");
    assert_eq!(again["ranges_in_sync"], again["ranges"], "{again}");

    c.sigkill(1);
    c.sigkill(2);
    for i in (0..150).filter(|i| *i != 7) {
        let got = one_via(&c, 3, &format!("k{i}"));
        assert_eq!(got["values"], serde_json::json!([format!("v{i}")]), "k{i}");
    }
    assert_eq!(
        one_via(&c, 3, "k7")["found"],
        false,
        "the delete came along"
    );
}

#[test]
fn a_missed_delete_is_spread_not_undone() {
    // A hint window of 1 s: node 3, down longer, gets no hints; only repair can tell it.
    // Four nodes: some ranges have no replica on node 3.
    let c = Cluster::up(4, 1);
    c.must(&["cluster", "down"]);
    c.must(&["cluster", "up", "--detach", "--max-hint-window", "1s"]);
    // Keys node 3 holds a replica of (so ONE through it reads its own copy).
    let held = |prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|k| {
                let ring = c.must_json(&["ring", "--key", k]);
                ring["preference_list"]
                    .as_array()
                    .unwrap()
                    .contains(&"node-3".into())
            })
            .unwrap()
    };
    let (gone, kept) = (held("gone"), held("kept"));
    let (gone, kept) = (gone.as_str(), kept.as_str());
    c.must(&["put", gone, "value", "--consistency", "all"]);
    c.must(&["put", kept, "value", "--consistency", "all"]);
    c.sigkill(3);
    wait_until_down(&c, 1, "node-3");
    std::thread::sleep(Duration::from_millis(1200));
    c.must(&["delete", gone, "--node", &c.addr(1)]);
    let status = c.must_json(&["status", "--node", &c.addr(1)]);
    assert!(
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["hints_pending"] == 0),
        "no hints past the window: {status}"
    );

    // A repair with node 3 down cannot bring its ranges in sync: a clear error, not 0.
    let out = c.run(&["repair", "--output", "json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in sync") && err.contains("node-3"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let done =
        report["ranges_in_sync"].as_u64().unwrap() + report["ranges_repaired"].as_u64().unwrap();
    assert!(
        report["ranges_failed"].as_u64().unwrap() > 0 && done > 0,
        "{report}"
    );

    c.must(&[
        "cluster",
        "up",
        "--detach",
        "--node",
        "node-3",
        "--max-hint-window",
        "1s",
    ]);
    // Node 3 still holds the value it never saw deleted...
    assert_eq!(one_via(&c, 3, gone)["values"], serde_json::json!(["value"]));
    // ...and the repair, started again, skips what it did and spreads the tombstone.
    let report = c.must_json(&["repair"]);
    assert_eq!(report["ranges_skipped"].as_u64().unwrap(), done, "{report}");
    assert_eq!(report["ranges_failed"], 0, "{report}");
    assert_eq!(one_via(&c, 3, gone)["found"], false);
    assert_eq!(one_via(&c, 3, kept)["values"], serde_json::json!(["value"]));
    for node in 1..=4 {
        let all = c.must_json(&["get", gone, "--consistency", "all", "--node", &c.addr(node)]);
        assert_eq!(all["found"], false, "via node {node}");
    }
    // Nothing brings it back: another repair, a restart of every node.
    c.must(&["repair"]);
    c.must(&["cluster", "down"]);
    c.must(&["cluster", "up", "--detach"]);
    for node in 1..=4 {
        assert_eq!(one_via(&c, node, gone)["found"], false, "via node {node}");
    }
}

#[test]
fn unknown_nodes_are_a_clear_error() {
    let c = Cluster::up(3, 2);
    let out = c.run(&["repair", "--node", "node-9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no node node-9") && err.contains("node-1"),
        "{err}"
    );
    let out = c.run(&["repair", "--range", "12:zz"]);
    assert!(!out.status.success());
    // One node's ranges, coordinated by it.
    let report = c.must_json(&["repair", "--node", "node-2"]);
    assert!(report["ranges"].as_u64().unwrap() > 0);
}

/// With background anti-entropy on (every 2 s here), a node come back empty is refilled with
/// no one typing `kvctl repair`.
#[test]
fn background_anti_entropy_converges_replicas() {
    let c = Cluster::up_with_env(3, 3, &[("KVCTL_AAE_INTERVAL", "2s")]);
    for i in 0..40 {
        c.must(&["put", &format!("k{i}"), &format!("v{i}")]);
    }
    c.sigkill(3);
    std::fs::remove_dir_all(c.home().join("nodes/node-3/data")).unwrap();
    c.must(&["cluster", "up", "--detach", "--node", "node-3"]);
    let start = Instant::now();
    let missing = || {
        (0..40)
            .filter(|i| one_via(&c, 3, &format!("k{i}"))["found"] == false)
            .count()
    };
    loop {
        let left = missing();
        if left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{left} keys still missing on node 3"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
