//! Hinted handoff as a user meets it: with one of three nodes SIGKILLed, QUORUM writes go on;
//! `status` shows the node down (by the failure detector) and the hints its coordinator holds;
//! the hint holder is SIGKILLed too and restarted, and still has them; the node comes back and
//! the hints drain to it; then, with the other two stopped, ONE reads through that node alone
//! return every write it missed.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

/// `status --output json` as node `via` sees it: the entry of `id`.
fn node_status(c: &Cluster, via: usize, id: &str) -> Value {
    let status = c.must_json(&["status", "--node", &c.addr(via)]);
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in the status: {status}"))
}

/// Polls `check` every 100 ms for up to `within`; panics with `what` and the last status.
fn wait_for(within: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if start.elapsed() > within => {
                panic!("{what} did not happen within {within:?}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn writes_missed_by_a_dead_node_reach_it_through_hints() {
    let c = Cluster::up(3, 0);
    for i in 0..10 {
        c.must(&["put", &format!("before-{i}"), "old", "--node", &c.addr(1)]);
    }
    c.sigkill(3);
    let killed = Instant::now();

    // QUORUM writes go on through node 1; it keeps hints for node 3.
    let mut missed = Vec::new();
    for i in 0..40 {
        let (k, v) = (format!("missed-{i}"), format!("value-{i}"));
        c.must(&["put", &k, &v, "--node", &c.addr(1)]);
        missed.push((k, v));
    }
    // Overwrites and a delete that node 3 misses, too.
    let read = c.must_json(&["get", "before-1", "--node", &c.addr(1)]);
    let context = read["context"].as_str().unwrap();
    c.must(&[
        "put",
        "before-1",
        "new",
        "--context",
        context,
        "--node",
        &c.addr(1),
    ]);
    c.must(&["delete", "before-2", "--node", &c.addr(1)]);

    wait_for(Duration::from_secs(10), "node-3 shown down", || {
        let s = node_status(&c, 1, "node-3");
        (s["state"] == "down").then_some(()).ok_or(s.to_string())
    });
    // Shown down by the detector within a few seconds (the target is 5 s with the defaults).
    assert!(killed.elapsed() < Duration::from_secs(10));
    wait_for(
        Duration::from_secs(15),
        "hints for every missed write",
        || {
            let s = node_status(&c, 1, "node-1");
            let held = s["hints_pending"].as_u64().unwrap_or(0);
            (held >= 42).then_some(()).ok_or(s.to_string())
        },
    );
    let table = c.must(&["status", "--node", &c.addr(1)]);
    assert!(table.contains("hints"), "{table}");

    // The hint holder dies too, and comes back with its hints (they were durable).
    c.sigkill(1);
    let up = c.must(&["cluster", "up", "--detach", "--node", "node-1"]);
    assert!(up.contains("started node-1"), "{up}");
    let held = node_status(&c, 1, "node-1")["hints_pending"]
        .as_u64()
        .unwrap();
    assert!(held >= 42, "node-1 holds {held} hints after its restart");
    assert_eq!(node_status(&c, 1, "node-3")["state"], "down");

    // Node 3 comes back; the hints drain to it.
    let up = c.must(&["cluster", "up", "--detach", "--node", "node-3"]);
    assert!(up.contains("started node-3"), "{up}");
    wait_for(Duration::from_secs(30), "the hints drained", || {
        let s = node_status(&c, 1, "node-1");
        (s["hints_pending"] == 0).then_some(()).ok_or(s.to_string())
    });

    // Node 3 alone: every write it missed is there.
    c.sigkill(1);
    c.sigkill(2);
    let one = |k: &str| c.must_json(&["get", k, "--consistency", "one", "--node", &c.addr(3)]);
    for (k, v) in &missed {
        assert_eq!(one(k)["values"], serde_json::json!([v]), "{k}");
    }
    assert_eq!(one("before-1")["values"], serde_json::json!(["new"]));
    assert_eq!(one("before-2")["found"], false, "the delete reached node-3");
    assert_eq!(one("before-3")["values"], serde_json::json!(["old"]));
}

/// ALL cannot be met by a hint: with a node down it fails, naming the node, and says a hint
/// is kept; ONE and QUORUM succeed.
#[test]
fn all_needs_the_real_replicas() {
    let c = Cluster::up(3, 1);
    c.sigkill(2);
    wait_for(Duration::from_secs(10), "node-2 shown down", || {
        let s = node_status(&c, 1, "node-2");
        (s["state"] == "down").then_some(()).ok_or(s.to_string())
    });
    let out = c.run(&[
        "put",
        "k",
        "v",
        "--consistency",
        "all",
        "--node",
        &c.addr(1),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("consistency ALL needs 3 of 3"), "{err}");
    assert!(
        err.contains("node-2") && err.contains("a hint is kept for it"),
        "{err}"
    );
    c.must(&[
        "put",
        "k",
        "v",
        "--consistency",
        "one",
        "--node",
        &c.addr(1),
    ]);
    c.must(&[
        "put",
        "k",
        "w",
        "--consistency",
        "quorum",
        "--node",
        &c.addr(3),
    ]);
}

/// Hints are bounded per target: once a node holds `--hints-bytes-per-target-max` of hints for
/// the nodes that are down, a QUORUM write that needs more is refused, naming the limit, and
/// nothing acknowledged is lost: every write acknowledged before reads back.
#[test]
fn hints_are_bounded_per_target() {
    let c = Cluster::up_with_env(3, 2, &[("KVCTL_HINTS_BYTES_PER_TARGET_MAX", "1MiB")]);
    c.sigkill(2);
    c.sigkill(3);
    wait_for(
        Duration::from_secs(10),
        "node-2 and node-3 shown down",
        || {
            let (two, three) = (node_status(&c, 1, "node-2"), node_status(&c, 1, "node-3"));
            (two["state"] == "down" && three["state"] == "down")
                .then_some(())
                .ok_or(format!("{two} {three}"))
        },
    );
    let value = "x".repeat(100 << 10);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..30 {
        let key = format!("big-{i}");
        let out = c.run(&["put", &key, &value, "--node", &c.addr(1)]);
        if out.status.success() {
            acked.push(key);
        } else {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("a write past the hint limit is refused");
    assert!(refused.contains("hints_bytes_per_target_max"), "{refused}");
    assert!(
        acked.len() >= 5,
        "{} writes acknowledged first",
        acked.len()
    );
    for key in &acked {
        let got = c.must_json(&["get", key, "--consistency", "one", "--node", &c.addr(1)]);
        assert_eq!(
            got["values"][0].as_str().map(str::len),
            Some(value.len()),
            "{key}"
        );
    }
}
