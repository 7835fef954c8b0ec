//! Client roles: a certificate made with `kvctl cert client --role app` reads, writes and asks
//! for status and the ring, and is refused repair with its role named, both through
//! `kvctl repair` and when it sends the request itself; the cluster's own certificate (admin)
//! repairs.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use common::{kvctl, Cluster};
use kvctl::wire::certs;
use kvctl::wire::proto::{ErrorKind, Request, Response};
use kvctl::wire::tls::Identity;

/// A client home for an application: the cluster's `cluster.json` and an app certificate.
fn must_app_home(c: &Cluster) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let out = kvctl()
        .args([
            "cert", "client", "--role", "app", "--name", "shop", "--ca-dir",
        ])
        .arg(c.home().join("certs"))
        .arg("--out")
        .arg(home.path().join("certs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("(role app)"), "{said}");
    std::fs::copy(
        c.home().join("cluster.json"),
        home.path().join("cluster.json"),
    )
    .unwrap();
    home
}

fn run_in(home: &Path, args: &[&str]) -> Output {
    kvctl().arg("--home").arg(home).args(args).output().unwrap()
}

fn must_run_in(home: &Path, args: &[&str]) -> String {
    let out = run_in(home, args);
    assert!(
        out.status.success(),
        "kvctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Says whether `message` is the refusal of a repair to an app certificate.
fn names_the_roles(message: &str) -> bool {
    message.contains("this request (repair) needs the admin role")
        && message.contains("this client certificate has the role app")
}

#[test]
fn cluster_roles_app_reads_and_writes_but_may_not_repair() {
    // An app certificate does what an app needs, and is refused repair by the CLI and the
    // protocol alike, with its role named; an admin certificate is not.
    let c = Cluster::up(3, 0);
    let app = must_app_home(&c);
    let app = app.path();

    // Reads, writes, deletes, status and the ring: all an app may do.
    must_run_in(app, &["put", "cart:1", "socks"]);
    assert_eq!(must_run_in(app, &["get", "cart:1"]).trim(), "socks");
    must_run_in(app, &["delete", "cart:1"]);
    assert_eq!(run_in(app, &["get", "cart:1"]).status.code(), Some(3));
    assert!(must_run_in(app, &["status"]).contains("node-3"));
    must_run_in(app, &["ring"]);

    // `kvctl repair` with the app certificate: refused at once, naming the role.
    let out = run_in(app, &["repair"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an app certificate repaired");
    assert!(names_the_roles(&stderr), "{stderr}");
    assert!(
        stderr.contains("kvctl cert client --role admin"),
        "{stderr}"
    );

    // The same request sent by hand, over QUIC with the app certificate: `Forbidden`, naming
    // the role. Status over the same connection is served.
    let addr: SocketAddr = c.addr(1).parse().unwrap();
    let certs_dir = app.join("certs");
    let identity = Identity::new(
        &certs::read(&certs_dir, "client").unwrap(),
        &certs::read_cert(&certs_dir, "ca").unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let transport = kvctl::wire::transport::Transport::client(&identity).unwrap();
        let repair = Request::Repair {
            after: 0,
            upto: 0,
            rate_bytes_per_sec: 0,
        };
        match transport.request(addr, &repair).await.unwrap() {
            Response::Error {
                kind: ErrorKind::Forbidden,
                message,
            } => assert!(names_the_roles(&message), "{message}"),
            other => panic!("a repair from an app certificate got {other:?}"),
        }
        match transport.request(addr, &Request::Status).await.unwrap() {
            Response::Members { members, .. } => assert_eq!(members.len(), 3),
            other => panic!("status from an app certificate got {other:?}"),
        }
        transport.close().await;
    });

    // The cluster's own certificate (made by `cluster up`) is an admin's: it repairs.
    c.must(&["repair"]);
}

#[test]
fn cert_client_refuses_an_unknown_role() {
    // An unknown role is refused before anything is written, listing the roles there are.
    let dir = tempfile::tempdir().unwrap();
    let out = kvctl()
        .args(["cert", "client", "--role", "root", "--ca-dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("invalid value 'root'") && stderr.contains("app, admin"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists());
}
