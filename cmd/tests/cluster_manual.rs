//! A cluster set up by hand, as on several machines: `kvctl cert` makes the CA, a node
//! certificate and a client certificate; `kvctl node start` runs the node; client commands
//! reach it through a home holding `cluster.json` and the client certificate. Also `--lww`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

#[test]
fn cluster_from_kvctl_cert_and_node_start() {
    let root = tempfile::tempdir().unwrap();
    let (ca, node_dir, home) = (
        root.path().join("ca"),
        root.path().join("n1"),
        root.path().join("client"),
    );
    must(common::kvctl().args(["cert", "ca", "--out"]).arg(&ca));
    must(
        common::kvctl()
            .args(["cert", "node", "--id", "n1", "--ca-dir"])
            .arg(&ca)
            .arg("--out")
            .arg(node_dir.join("certs")),
    );
    must(
        common::kvctl()
            .args(["cert", "client", "--ca-dir"])
            .arg(&ca)
            .arg("--out")
            .arg(home.join("certs")),
    );
    // Refuses to overwrite.
    let again = common::kvctl()
        .args(["cert", "ca", "--out"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let port = 20_000 + (std::process::id() % 400) as u16 * 100 + 60;
    let addr = format!("127.0.0.1:{port}");
    let _node = Node(
        common::kvctl()
            .arg("--home")
            .arg(&node_dir)
            .args([
                "node",
                "start",
                "--listen",
                &addr,
                "--replication",
                "1",
                "--node-id",
                "n1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cluster = serde_json::json!({
        "replication": 1,
        "nodes": [{ "id": "n1", "addr": addr, "dir": "unused" }],
    });
    std::fs::write(home.join("cluster.json"), cluster.to_string()).unwrap();
    let kv = |args: &[&str]| {
        let mut c = common::kvctl();
        c.arg("--home").arg(&home).args(args);
        c
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kv(&["put", "k", "a"]).output().unwrap().status.success() {
        assert!(Instant::now() < deadline, "the node did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    must(&mut kv(&["put", "k", "b"]));
    let got: serde_json::Value =
        serde_json::from_str(&must(&mut kv(&["get", "k", "--output", "json"]))).unwrap();
    assert_eq!(
        got["values"].as_array().unwrap().len(),
        2,
        "two puts without context: siblings"
    );
    must(&mut kv(&["put", "k", "c", "--lww"]));
    assert_eq!(
        must(&mut kv(&["get", "k"])).trim(),
        "c",
        "--lww supersedes every sibling"
    );
    let status = must(&mut kv(&["cluster", "status", "--output", "json"]));
    assert!(status.contains("\"n1\""), "{status}");
}
