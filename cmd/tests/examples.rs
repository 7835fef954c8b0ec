//! The programs in `examples/` (built by `cargo test`, or `cargo build --examples`) run
//! against a real cluster and do what they say.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Cluster;

/// Runs the example `name` with the cluster's home; returns its standard output.
fn must_run_example(c: &Cluster, name: &str, args: &[&str]) -> String {
    let bin: PathBuf = PathBuf::from(env!("CARGO_BIN_EXE_kvctl"))
        .parent()
        .expect("the target directory")
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: `cargo test --workspace` builds the examples (or run `cargo build \
         --examples`)",
        bin.display()
    );
    let out = Command::new(&bin)
        .arg(c.home())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_examples_run_against_a_cluster() {
    let c = Cluster::up(3, 0);

    let out = must_run_example(&c, "embed_client", &[]);
    assert!(out.contains("greeting = hello"), "{out}");
    assert!(out.contains("replicas of greeting: node-"), "{out}");
    assert_eq!(c.must(&["get", "greeting"]).trim(), "hello");

    // Every increment is written with the context of the read before it; what runs at once
    // comes back as siblings and is resolved, so one value is left.
    let out = must_run_example(&c, "read_modify_write", &[]);
    assert!(out.contains("100 increments by 4 tasks"), "{out}");
    assert!(out.contains("(1 value left)"), "{out}");
    let read = c.must_json(&["get", "example:counter"]);
    assert_eq!(read["siblings"], 1, "{read}");
    let count: u64 = read["values"][0].as_str().unwrap().parse().unwrap();
    assert!((1..=100).contains(&count), "{read}");

    let out = must_run_example(&c, "workload", &["1"]);
    assert!(out.contains(", 0 errors"), "{out}");
    let ops: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(ops > 0, "{out}");
}
