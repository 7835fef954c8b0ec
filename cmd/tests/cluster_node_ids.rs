//! Node ids are unique by construction: each node's id is the one its certificate was made for.
//! Two nodes started by hand on one port of two addresses, without `--node-id`, are two
//! members; a second node with a copy of a running node's certificate refuses to start; and a
//! node whose directory was wiped comes back as a new incarnation, whose dots never collide
//! with those it handed out before.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn must(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn node_start(dir: &Path, listen: &str, seeds: Option<&str>) -> Command {
    let mut cmd = common::kvctl();
    cmd.arg("--home")
        .arg(dir)
        .args(["node", "start", "--listen", listen, "--replication", "2"]);
    if let Some(seeds) = seeds {
        cmd.args(["--seeds", seeds]);
    }
    cmd
}

#[test]
fn cluster_nodes_started_by_hand_get_unique_ids() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    let home = root.path().join("client");
    let (a, b, copy) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("copy"),
    );
    must(common::kvctl().args(["cert", "ca", "--out"]).arg(&ca));
    for dir in [&a, &b] {
        // No --id: the certificate gets a random one.
        must(
            common::kvctl()
                .args(["cert", "node", "--ca-dir"])
                .arg(&ca)
                .arg("--out")
                .arg(dir.join("certs")),
        );
    }
    must(
        common::kvctl()
            .args(["cert", "client", "--ca-dir"])
            .arg(&ca)
            .arg("--out")
            .arg(home.join("certs")),
    );
    let port = 20_000 + (std::process::id() % 400) as u16 * 100 + 70;
    let (addr_a, addr_b) = (format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}"));
    let quiet = |mut cmd: Command| {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        Node(cmd.spawn().unwrap())
    };
    let _a = quiet(node_start(&a, &addr_a, None));
    let _b = quiet(node_start(&b, &addr_b, Some(&addr_a)));
    let cluster = serde_json::json!({
        "replication": 2,
        "nodes": [
            { "id": "a", "addr": addr_a, "dir": "unused" },
            { "id": "b", "addr": addr_b, "dir": "unused" },
        ],
    });
    std::fs::write(home.join("cluster.json"), cluster.to_string()).unwrap();
    let status = |node: &str| -> Option<serde_json::Value> {
        let out = common::kvctl()
            .arg("--home")
            .arg(&home)
            .args(["status", "--node", node, "--output", "json"])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ids = loop {
        let both: Vec<serde_json::Value> = [&addr_a, &addr_b]
            .iter()
            .filter_map(|n| status(n))
            .collect();
        let seen_by_both = both.len() == 2
            && both.iter().all(|s| {
                let nodes = s["nodes"].as_array().unwrap();
                nodes.len() == 2 && nodes.iter().all(|n| n["state"] == "normal")
            });
        if seen_by_both {
            let nodes = both[0]["nodes"].as_array().unwrap().clone();
            break nodes
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>();
        }
        assert!(
            Instant::now() < deadline,
            "the two nodes never saw each other"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(ids[0], ids[1]);
    assert!(ids.iter().all(|id| id.starts_with("node-")), "{ids:?}");

    // A copy of a's certificate in another directory: the id is taken, the start refused.
    std::fs::create_dir_all(&copy).unwrap();
    let copied = copy.join("certs");
    std::fs::create_dir_all(&copied).unwrap();
    for file in ["node.pem", "node.key", "ca.pem", "cluster.secret"] {
        std::fs::copy(a.join("certs").join(file), copied.join(file)).unwrap();
    }
    let addr_copy = format!("127.0.0.3:{port}");
    let out = node_start(&copy, &addr_copy, Some(&addr_a))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the copy started: {stderr}");
    assert!(
        stderr.contains("is in use by the node at") && stderr.contains(&addr_a),
        "{stderr}"
    );
    // A --node-id that is not the certificate's is refused too.
    let out = node_start(&copy, &addr_copy, None)
        .args(["--node-id", "someone-else"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("was made for node"), "{stderr}");
}

#[test]
fn cluster_wiped_node_comes_back_without_reusing_dots() {
    let c = Cluster::up(3, 1);
    let node1 = c.addr(1);
    c.must(&["put", "k", "before", "--node", &node1]);
    c.sigkill(1);
    // The others see it down before the wiped node comes back under the same id.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let down = [2, 3].iter().all(|&n| {
            let s = c.must_json(&["status", "--node", &c.addr(n)]);
            s["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == "node-1" && m["state"] == "down")
        });
        if down {
            break;
        }
        assert!(Instant::now() < deadline, "node-1 never seen down");
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = c.home().join("nodes/node-1");
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    for file in ["dot-lease", "generation"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    c.must(&["cluster", "up", "--detach"]);
    // A write without context through the wiped node, which stores nothing and starts its
    // lease at 0: a new event, a sibling of the first, not taken for it.
    c.must(&["put", "k", "after", "--node", &node1]);
    let got = c.must_json(&["get", "k", "--consistency", "all"]);
    let mut values: Vec<&str> = got["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, ["after", "before"], "{got}");
}
