//! A 3-node cluster started with `kvctl cluster up --detach` serves puts and gets at ONE,
//! QUORUM and ALL through every node, keeps concurrent writes as siblings, and deletes.

mod common;

use common::Cluster;

#[test]
fn cluster_put_and_get_at_every_level_through_every_node() {
    let c = Cluster::up(3, 0);
    let status = c.must_json(&["status"]);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes
        .iter()
        .all(|n| n["state"] == "normal" && n["pid"].is_u64()));
    for level in ["one", "quorum", "all"] {
        for node in 1..=3 {
            let key = format!("k-{level}-{node}");
            let value = format!("v-{level}-{node}");
            c.must(&[
                "put",
                &key,
                &value,
                "--consistency",
                level,
                "--node",
                &c.addr(node),
            ]);
            for reader in 1..=3 {
                let got = c.must_json(&[
                    "get",
                    &key,
                    "--consistency",
                    level,
                    "--node",
                    &c.addr(reader),
                ]);
                assert_eq!(got["found"], true, "{key} via node {reader}");
                assert_eq!(
                    got["values"],
                    serde_json::json!([value]),
                    "{key} via node {reader}"
                );
            }
        }
    }
    assert_eq!(c.must(&["get", "k-all-1"]).trim(), "v-all-1");
}

#[test]
fn cluster_concurrent_puts_become_siblings_and_context_resolves_them() {
    let c = Cluster::up(3, 1);
    c.must(&["put", "cart", "apple", "--node", &c.addr(1)]);
    c.must(&["put", "cart", "pear", "--node", &c.addr(2)]);
    let got = c.must_json(&["get", "cart"]);
    let mut values: Vec<String> = got["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    values.sort();
    assert_eq!(values, ["apple", "pear"]);
    let context = got["context"].as_str().unwrap().to_string();
    c.must(&["put", "cart", "apple+pear", "--context", &context]);
    let got = c.must_json(&["get", "cart", "--consistency", "all"]);
    assert_eq!(got["values"], serde_json::json!(["apple+pear"]));

    c.must(&["delete", "cart"]);
    let got = c.must_json(&["get", "cart", "--consistency", "all"]);
    assert_eq!(got["found"], false);
    let out = c.run(&["get", "cart"]);
    assert_eq!(out.status.code(), Some(3), "a missing key exits with 3");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn cluster_refuses_oversized_keys_and_values_and_stores_nothing() {
    let c = Cluster::up(3, 2);
    let long_key = "k".repeat(4097);
    let out = c.run(&["put", &long_key, "v"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("4097 bytes, over the limit of 4096 bytes (key_bytes_max)"),
        "{err}"
    );

    let big = vec![b'x'; (16 << 20) + 1];
    let out = c.run_with_stdin(&["put", "big", "-"], &big);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("value_bytes_max"), "{err}");
    assert_eq!(
        c.must_json(&["get", "big", "--consistency", "all"])["found"],
        false
    );

    // A value at the limit is fine.
    let ok = vec![b'y'; 16 << 20];
    let out = c.run_with_stdin(&["put", "big", "-"], &ok);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = c.must_json(&["get", "big"]);
    assert_eq!(got["values"][0].as_str().unwrap().len(), 16 << 20);
}
