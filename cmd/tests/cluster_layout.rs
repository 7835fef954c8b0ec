//! The versioned layout: `cluster up` makes its first version (every node normal); two nodes
//! started by hand at once, through different seeds, both join, each through a version of its
//! own committed at one point (one of them wins the race for version 2, the other plans again
//! on top of it and takes version 3); every node ends holding version 3 with the five members;
//! a joined node restarted keeps its place and makes no new version.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A node directory with a certificate for `id` from the cluster's CA.
fn node_dir(cluster: &Cluster, root: &Path, id: &str) -> PathBuf {
    let dir = root.join(id);
    let certs = cluster.home().join("certs");
    let out = common::kvctl()
        .args(["cert", "node", "--id", id, "--ca-dir"])
        .arg(&certs)
        .arg("--out")
        .arg(dir.join("certs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        certs.join("cluster.secret"),
        dir.join("certs").join("cluster.secret"),
    )
    .unwrap();
    dir
}

fn start(dir: &Path, addr: &str, seed: &str) -> Node {
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    Node(
        common::kvctl()
            .arg("--home")
            .arg(dir)
            .args(["node", "start", "--listen", addr, "--seeds", seed])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The layout as the node at `addr` holds it, once it answers.
fn layout_at(cluster: &Cluster, addr: &str) -> Option<serde_json::Value> {
    let out = cluster.run(&["layout", "--node", addr, "--output", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn ids(layout: &serde_json::Value) -> Vec<String> {
    layout["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn joins_race_through_different_seeds_and_every_node_agrees() {
    let cluster = Cluster::up(3, 0);
    let first = cluster.must_json(&["layout"]);
    assert_eq!(first["version"], 1, "{first}");
    assert_eq!(first["live_versions"], serde_json::json!([1]));
    assert_eq!(ids(&first), ["node-1", "node-2", "node-3"]);
    for node in first["nodes"].as_array().unwrap() {
        assert_eq!(node["state"], "normal", "{node}");
        assert_eq!(
            (node["dc"].as_str(), node["rack"].as_str()),
            (Some("dc1"), Some("rack1"))
        );
        assert_eq!(node["tokens"], 128);
    }

    let root = tempfile::tempdir().unwrap();
    let (d4, d5) = (
        node_dir(&cluster, root.path(), "node-4"),
        node_dir(&cluster, root.path(), "node-5"),
    );
    let addr = |i: u16| format!("127.0.0.1:{}", cluster.base_port + i - 1);
    let mut n4 = start(&d4, &addr(4), &addr(1));
    let _n5 = start(&d5, &addr(5), &addr(2));

    // Every node, the new ones too, ends at version 3 with the five members.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 1..=5 {
        loop {
            let layout = layout_at(&cluster, &addr(i));
            if let Some(layout) = &layout {
                if layout["version"] == 3 && layout["live_versions"] == serde_json::json!([3]) {
                    assert_eq!(
                        ids(layout),
                        ["node-1", "node-2", "node-3", "node-4", "node-5"],
                        "{layout}"
                    );
                    assert!(layout["removed"].as_array().unwrap().is_empty());
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {i} holds {layout:?}; node-4: {}; node-5: {}",
                std::fs::read_to_string(d4.join("node.log")).unwrap_or_default(),
                std::fs::read_to_string(d5.join("node.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // Restarted, node-4 keeps its place: no version is added.
    let _ = n4.0.kill();
    let _ = n4.0.wait();
    n4 = start(&d4, &addr(4), &addr(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        if let Some(layout) = layout_at(&cluster, &addr(4)) {
            break layout;
        }
        assert!(Instant::now() < deadline, "node-4 did not come back");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(again["version"], 3, "{again}");
    drop(n4);
}
