//! `kvctl bench`: a small YCSB workload against a real local cluster, and the disk check
//! (`--workload fsync`), which needs no cluster.

mod common;

use common::{kvctl, Cluster};

#[test]
fn bench_workload_a_reads_and_updates_through_the_cluster() {
    let cluster = Cluster::up(3, 0);
    let report = cluster.must_json(&[
        "bench",
        "--workload",
        "a",
        "--records",
        "50",
        "--operations",
        "200",
        // More requests at once than a node admits connections per peer: the client's
        // requests share one connection per node.
        "--concurrency",
        "16",
        "--value-size",
        "100",
    ]);
    assert_eq!(report["workload"], "a");
    assert_eq!(report["operations"], 200, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let rows = report["latency"].as_array().expect("latency rows");
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["operation"].as_str())
        .collect();
    assert_eq!(names, ["read", "update"], "{report}");
    for row in rows {
        let (p50, p99) = (
            row["p50_ms"].as_f64().unwrap(),
            row["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{row}");
    }
    // The loaded records are in the cluster, with the benchmark's values.
    let got = cluster.must_json(&["get", "user000000000049"]);
    assert_eq!(got["found"], true, "{got}");
    assert_eq!(got["values"][0], "v".repeat(100), "{got}");
}

#[test]
fn bench_fsync_measures_the_disk_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = kvctl()
        .args(["bench", "--workload", "fsync", "--dir"])
        .arg(dir.path())
        .args([
            "--concurrency",
            "2",
            "--operations",
            "300",
            "--value-size",
            "1300",
        ])
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(report["syncs"], 300, "{report}");
    assert_eq!(report["writers"], 2, "{report}");
    assert_eq!(report["append_bytes"], 1300, "{report}");
    let (p50, p99, max) = (
        report["p50_ms"].as_f64().unwrap(),
        report["p99_ms"].as_f64().unwrap(),
        report["max_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{report}");
    assert!(report["stalls"].as_u64().unwrap() <= 300, "{report}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the scratch files stay behind: {left:?}");
}

#[test]
fn bench_fsync_refuses_a_missing_directory_and_a_zero_count() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-there");
    let out = kvctl()
        .args(["bench", "--workload", "fsync", "--dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give --dir an existing directory"), "{err}");
    assert!(!missing.exists());

    let out = kvctl()
        .args(["bench", "--workload", "fsync", "--operations", "0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be positive"), "{err}");
}
