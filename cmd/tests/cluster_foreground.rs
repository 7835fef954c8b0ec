//! `kvctl cluster up` in the foreground serves until Ctrl-C (SIGINT), then stops every node.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn cluster_up_in_the_foreground_stops_its_nodes_on_ctrl_c() {
    let home = tempfile::tempdir().unwrap();
    let base_port = 20_000 + (std::process::id() % 400) as u16 * 100 + 50;
    let mut launcher = common::kvctl()
        .arg("--home")
        .arg(home.path())
        .args([
            "cluster",
            "up",
            "--nodes",
            "2",
            "--base-port",
            &base_port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Bound the test: whatever happens, the launcher is gone within 90 s.
    let watched = launcher.id() as libc::pid_t;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        // SAFETY: signalling the launcher this test started (harmless if it already exited).
        unsafe { libc::kill(watched, libc::SIGKILL) };
    });
    let stdout = launcher.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines.next().expect("the launcher ended early").unwrap();
        if line.contains("Ctrl-C stops the cluster") {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not come up");
    }
    let pids: Vec<u32> = (1..=2)
        .map(|i| {
            let path = home.path().join(format!("nodes/node-{i}/node.pid"));
            std::fs::read_to_string(path)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    // SAFETY: signalling the launcher this test started.
    unsafe { libc::kill(launcher.id() as libc::pid_t, libc::SIGINT) };
    let status = launcher.wait().unwrap();
    assert!(
        status.success(),
        "the launcher exits cleanly on Ctrl-C: {status}"
    );
    let rest: String = lines.map_while(Result::ok).collect::<Vec<_>>().join("\n");
    assert!(
        rest.contains("stopped node-1") && rest.contains("stopped node-2"),
        "{rest}"
    );
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "node {pid} still runs"
        );
    }
}
