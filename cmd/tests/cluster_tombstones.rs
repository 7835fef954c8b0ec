//! Tombstone removal on real processes (grace period 1 s here): a delete's tombstone stays
//! until a repair covering its range has completed, however old it is, and is removed on every
//! replica after; a replica that missed the delete gets the tombstone from that repair first,
//! so the value never comes back.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use kvctl::wire::proto::{Request, Response};
use kvctl::wire::transport::Transport;
use serde_bytes::ByteBuf;

/// What replica `node` stores for `key`, asked as a node would (`None`: nothing at all).
fn stored(
    (c, rt, peer): (&Cluster, &tokio::runtime::Runtime, &Transport),
    node: usize,
    key: &str,
) -> Option<ByteBuf> {
    let addr = c.addr(node).parse().unwrap();
    let request = Request::ReplicaRead {
        key: ByteBuf::from(key.as_bytes().to_vec()),
    };
    // A connection to a node that restarted fails once, then is dialed afresh.
    let reply = rt
        .block_on(peer.request(addr, &request))
        .or_else(|_| rt.block_on(peer.request(addr, &request)))
        .unwrap();
    match reply {
        Response::Replica { siblings } => siblings,
        other => panic!("{other:?}"),
    }
}

/// Waits until node `seen_by` shows node 3 down, then for longer than the 1 s hint window, so
/// that node 3 gets no hints.
fn down_past_the_hint_window(c: &Cluster, seen_by: usize) {
    let start = Instant::now();
    while c.must_json(&["status", "--node", &c.addr(seen_by)])["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["id"] == "node-3" && n["state"] != "down")
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "node-3 not shown down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn tombstones_go_only_after_grace_and_repair() {
    let c = Cluster::up_with_env(
        3,
        0,
        &[
            ("KVCTL_TOMBSTONE_GRACE", "1s"),
            ("KVCTL_MAX_HINT_WINDOW", "1s"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let peer = c.peer(&rt, "node-9");
    let at = (&c, &rt, &peer);
    c.must(&["put", "a", "1", "--consistency", "all"]);
    c.must(&["put", "b", "1", "--consistency", "all"]);
    c.must(&["delete", "a", "--consistency", "all"]);
    // node 3 misses b's delete (down past the hint window: no hint).
    c.sigkill(3);
    // Shown down, then down for longer than the hint window.
    down_past_the_hint_window(&c, 1);
    c.must(&["delete", "b", "--node", &c.addr(1)]);
    std::thread::sleep(Duration::from_secs(3));
    // Past the grace period, but no repair yet: every tombstone stays.
    for node in 1..=2 {
        assert!(stored(at, node, "a").is_some(), "a on node {node}");
        assert!(stored(at, node, "b").is_some(), "b on node {node}");
    }
    c.must(&["cluster", "up", "--detach", "--node", "node-3"]);
    assert!(stored(at, 3, "b").is_some(), "node 3 holds b's value");
    c.must(&["repair"]);
    // After the repair: gone everywhere, once the sweeper has run.
    let start = Instant::now();
    loop {
        let left: Vec<(usize, &str)> = (1..=3)
            .flat_map(|n| [(n, "a"), (n, "b")])
            .filter(|(n, k)| stored(at, *n, k).is_some())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "tombstones still stored: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The value node 3 held never comes back: not by a read, a repair, or a restart.
    for node in 1..=3 {
        let got = c.must_json(&["get", "b", "--consistency", "all", "--node", &c.addr(node)]);
        assert_eq!(got["found"], false, "via node {node}");
    }
    c.must(&["repair"]);
    c.must(&["cluster", "down"]);
    c.must(&["cluster", "up", "--detach"]);
    for node in 1..=3 {
        assert!(stored(at, node, "b").is_none(), "b on node {node}");
    }
}

/// Where Debian's faketime package puts the library that shifts a process's wall clock.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A repair coordinated by a node whose clock is 10 minutes ahead counts its ranges in sync
/// from the earliest of the replicas' clocks, not from its own: a delete made after it, which
/// one replica missed, keeps its tombstone past the grace period until a repair covers it,
/// and the value that replica holds does not come back.
#[test]
fn a_repairer_whose_clock_is_ahead_does_not_let_a_tombstone_go_early() {
    if !std::path::Path::new(LIBFAKETIME).exists() {
        eprintln!("skipped: {LIBFAKETIME} is missing (apt-get install faketime; .ci/run does)");
        return;
    }
    let c = Cluster::up_with_env(
        3,
        1,
        &[
            ("KVCTL_TOMBSTONE_GRACE", "1s"),
            ("KVCTL_MAX_HINT_WINDOW", "1s"),
            ("KVCTL_AAE_INTERVAL", "0s"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let peer = c.peer(&rt, "node-9");
    let at = (&c, &rt, &peer);
    let mut node1 = c.restart_by_hand(
        1,
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME", "+10m"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let start = Instant::now();
    while !c
        .run(&[
            "put",
            "k",
            "v",
            "--consistency",
            "all",
            "--node",
            &c.addr(1),
        ])
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node 1 did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    c.must(&["repair", "--node", "node-1"]);
    // Node 3 misses the delete: down past the hint window.
    c.sigkill(3);
    down_past_the_hint_window(&c, 2);
    c.must(&["delete", "k", "--node", &c.addr(2)]);
    // Past the grace period and several sweeps: the tombstone stays, no repair covered it.
    std::thread::sleep(Duration::from_secs(4));
    for node in 1..=2 {
        assert!(
            stored(at, node, "k").is_some(),
            "k's tombstone went on node {node}"
        );
    }
    c.must(&["cluster", "up", "--detach", "--node", "node-3"]);
    let got = c.must_json(&["get", "k", "--consistency", "all", "--node", &c.addr(2)]);
    assert_eq!(got["found"], false, "the deleted value came back: {got}");
    let _ = node1.kill();
    let _ = node1.wait();
}
