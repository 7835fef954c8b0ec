//! A node or client whose own certificate has expired says so at once, naming the file and how
//! to make a new one, instead of failing every handshake with its peers.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::kvctl;
use kvctl::client::home::{self, ClusterFile, NodeEntry};
use kvctl::wire::certs::{self, Validity};
use kvctl::wire::role::Role;

fn expired() -> Validity {
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    Validity {
        not_before: now - 3 * day,
        not_after: now - day,
    }
}

#[test]
fn a_node_with_an_expired_certificate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    let ca = certs::new_ca(Validity::days(1)).unwrap();
    certs::write(
        &certs_dir,
        "node",
        &certs::new_node(&ca, "n1", &[], expired()).unwrap(),
    )
    .unwrap();
    std::fs::write(certs_dir.join("ca.pem"), &ca.cert).unwrap();

    let mut child = kvctl()
        .arg("--home")
        .arg(dir.path())
        .args(["node", "start", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a node with an expired certificate kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(
        err.contains("node.pem")
            && err.contains("certificate expired")
            && err.contains("kvctl cert"),
        "{err}"
    );
}

#[test]
fn a_client_with_an_expired_certificate_says_so() {
    let home_dir = tempfile::tempdir().unwrap();
    let certs_dir = home::certs_dir(home_dir.path());
    let ca = certs::new_ca(Validity::days(1)).unwrap();
    certs::write(&certs_dir, "ca", &ca).unwrap();
    certs::write(
        &certs_dir,
        "client",
        &certs::new_client(&ca, "cli", Role::Admin, expired()).unwrap(),
    )
    .unwrap();
    home::write(
        home_dir.path(),
        &ClusterFile {
            replication: 1,
            nodes: vec![NodeEntry {
                id: "node-1".into(),
                addr: "127.0.0.1:9".parse().unwrap(),
                dir: "nodes/node-1".into(),
            }],
        },
    )
    .unwrap();
    let out = kvctl()
        .arg("--home")
        .arg(home_dir.path())
        .args(["get", "k"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("client.pem")
            && err.contains("certificate expired")
            && err.contains("kvctl cert"),
        "{err}"
    );
}
