//! With one of three nodes SIGKILLed, QUORUM reads and writes go on and ALL fails with a clear
//! error; `cluster up` restarts the node with its data, and every acknowledged QUORUM write is
//! read back.

mod common;

use common::Cluster;

#[test]
fn cluster_survives_a_killed_node_and_loses_no_acknowledged_write() {
    let c = Cluster::up(3, 3);
    let mut acked = Vec::new();
    for i in 0..30 {
        let (k, v) = (format!("before-{i}"), format!("value-{i}"));
        c.must(&["put", &k, &v, "--node", &c.addr(1 + i % 3)]);
        acked.push((k, v));
    }
    c.sigkill(3);

    for i in 0..30 {
        let (k, v) = (format!("during-{i}"), format!("value-{i}"));
        c.must(&["put", &k, &v, "--node", &c.addr(1 + i % 2)]);
        acked.push((k, v));
    }
    for (k, v) in acked.iter().step_by(5) {
        assert_eq!(c.must(&["get", k, "--node", &c.addr(2)]).trim(), v);
    }
    let out = c.run(&[
        "put",
        "all-key",
        "x",
        "--consistency",
        "all",
        "--node",
        &c.addr(1),
    ]);
    assert!(!out.status.success(), "ALL must fail with a node down");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("consistency ALL needs 3 of 3 replicas, reached 2"),
        "{err}"
    );
    assert!(
        err.contains("node-3"),
        "the error names the failed replica: {err}"
    );

    let up = c.must(&["cluster", "up", "--detach"]);
    assert!(up.contains("started node-3"), "{up}");
    for node in 1..=3 {
        for (k, v) in &acked {
            let got = c.must_json(&["get", k, "--node", &c.addr(node)]);
            assert_eq!(got["values"], serde_json::json!([v]), "{k} via node {node}");
        }
    }
    // The restarted node has its data: ALL reads and writes work again.
    c.must(&["put", "all-key", "x", "--consistency", "all"]);
    assert_eq!(
        c.must(&["get", "before-2", "--consistency", "all"]).trim(),
        "value-2"
    );
}
