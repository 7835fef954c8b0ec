//! `kvctl workers` lists every node's named background workers with their states and its
//! engine's figures: gossip counts its rounds, the other loops say what they wait for, and
//! `--node` narrows the list to one node. Every node of `cluster up` serves Prometheus
//! metrics at the address `status` shows, with the `kvctl_` series of the requests it served.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;

#[test]
fn workers_are_listed_per_node_with_their_states() {
    let c = Cluster::up(3, 0);
    for i in 0..20 {
        c.must(&["put", &format!("k{i}"), "v"]);
    }
    // A few gossip rounds on every node.
    let start = Instant::now();
    let report = loop {
        let report = c.must_json(&["workers"]);
        let rounds: Vec<u64> = report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                n["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|w| w["name"] == "gossip")
                    .map_or(0, |w| w["done"].as_u64().unwrap())
            })
            .collect();
        if rounds.len() == 3 && rounds.iter().all(|r| *r >= 2) {
            break report;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{report}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let nodes = report["nodes"].as_array().unwrap();
    let mut ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["node-1", "node-2", "node-3"], "{report}");
    for node in nodes {
        let workers = node["workers"].as_array().unwrap();
        for name in [
            "gossip",
            "hint-replay",
            "anti-entropy",
            "tombstone-sweep",
            "engine-flush",
            "engine-compaction",
        ] {
            let w = workers
                .iter()
                .find(|w| w["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing: {node}"));
            let state = w["state"].as_str().unwrap();
            assert!(["idle", "busy", "failed"].contains(&state), "{w}");
            assert!(w["progress"].is_string() && w["errors"].is_u64(), "{w}");
        }
        let engine = &node["engine"];
        assert!(engine["last_seq"].as_u64().unwrap() > 0, "{node}");
        for field in ["flushes", "compactions", "cache_hits", "memtable_bytes"] {
            assert!(engine[field].is_u64(), "{field}: {node}");
        }
    }
    let one = c.must_json(&["workers", "--node", "node-2"]);
    assert_eq!(one["nodes"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one["nodes"][0]["id"], "node-2");
    let table = c.must(&["workers"]);
    assert!(
        table.contains("node-1:") && table.contains("gossip") && table.contains("engine:"),
        "{table}"
    );
    let out = c.run(&["workers", "--node", "node-9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node node-9"));
}

/// The body of `GET /metrics` at `addr`.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: kvctl\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn metrics_are_served_at_the_address_status_shows() {
    let c = Cluster::up(3, 1);
    for i in 0..5 {
        c.must(&["put", &format!("k{i}"), "v", "--node", &c.addr(1)]);
        c.must(&[
            "get",
            &format!("k{i}"),
            "--consistency",
            "one",
            "--node",
            &c.addr(1),
        ]);
    }
    let status = c.must_json(&["status", "--node", &c.addr(1)]);
    let node1 = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "node-1")
        .unwrap();
    let addr = node1["metrics"].as_str().expect("a metrics address");
    let text = scrape(addr);
    for series in [
        "kvctl_requests_total{operation=\"put\",consistency=\"QUORUM\"} 5",
        "kvctl_requests_total{operation=\"get\",consistency=\"ONE\"} 5",
        "kvctl_request_duration_seconds_bucket",
        "kvctl_replica_reads_total",
        "kvctl_connections ",
        "kvctl_worker_done{worker=\"gossip\"}",
        "kvctl_engine{figure=\"flushes\"}",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("kvctl_"), "{line}");
    }
    // Anything else is not found.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}
