//! Every write acknowledged in `sync` mode survives SIGKILL of the writing process at a random
//! moment, and nothing that was not written appears.
//!
//! This test binary is its own child: run with `KVCTL_CRASH_CHILD_DIR` set, it writes until
//! killed, printing `ack <key>` after each acknowledged write. The parent kills it after a
//! seeded random delay, reopens the engine and checks. `KVCTL_CRASH_CYCLES` sets the number of
//! cycles (default 50).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::ops::Bound;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kvctl::storage::engine::{Engine, Options, Store, SyncMode, WriteBatch};
use rand::{Rng, SeedableRng};

const CHILD_DIR_ENV: &str = "KVCTL_CRASH_CHILD_DIR";
const CHILD_START_ENV: &str = "KVCTL_CRASH_CHILD_START";
const WRITERS: u64 = 4;

fn options() -> Options {
    Options {
        sync: SyncMode::Sync,
        // Small memtables and tables so that flushes and compactions are killed mid-way too.
        memtable_bytes: 48 << 10,
        table_bytes: 64 << 10,
        block_bytes: 1024,
        l0_compaction_trigger: 3,
        level1_bytes: 256 << 10,
        index_map_bytes: 256 << 20,
        ..Options::default()
    }
}

fn key(writer: u64, n: u64) -> String {
    format!("w{writer}-{n:010}")
}

/// The only value ever written for `key`, so any other content is garbage.
fn value_of(key: &str) -> Vec<u8> {
    let n: u64 = key
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut v = key.as_bytes().to_vec();
    v.resize(16 + (n as usize * 37) % 600, b'.');
    v
}

fn child(dir: &str, start: u64) {
    let engine = std::sync::Arc::new(Engine::open(dir, options()).expect("child opens the engine"));
    println!("ready");
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut n = start;
                loop {
                    // Every fifth write is a batch of three keys, acknowledged together.
                    let keys: Vec<String> = if n.is_multiple_of(5) {
                        (0..3).map(|i| key(w, n + i)).collect()
                    } else {
                        vec![key(w, n)]
                    };
                    n += keys.len() as u64;
                    let mut batch = WriteBatch::new();
                    for k in &keys {
                        batch.put(k.as_bytes(), value_of(k));
                    }
                    engine.write(batch).expect("child write");
                    let mut out = std::io::stdout().lock();
                    for k in &keys {
                        writeln!(out, "ack {k}").expect("stdout");
                    }
                    out.flush().expect("stdout");
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn check(dir: &std::path::Path, acked: &BTreeSet<String>) -> Result<usize, String> {
    let engine = Engine::open(dir, options()).map_err(|e| format!("reopen failed: {e}"))?;
    for k in acked {
        match engine.get(k.as_bytes()) {
            Ok(Some(v)) if v == value_of(k) => {}
            Ok(Some(_)) => return Err(format!("acknowledged key {k} has a wrong value")),
            Ok(None) => return Err(format!("acknowledged key {k} is missing")),
            Err(e) => return Err(format!("reading {k}: {e}")),
        }
    }
    let mut present = 0;
    for item in engine
        .scan((Bound::Unbounded, Bound::Unbounded))
        .map_err(|e| e.to_string())?
    {
        let (k, v) = item.map_err(|e| format!("scan: {e}"))?;
        let k = String::from_utf8(k).map_err(|_| "a key that was never written".to_string())?;
        if v != value_of(&k) {
            return Err(format!("key {k} holds garbage"));
        }
        present += 1;
    }
    Ok(present)
}

fn parent() {
    let cycles: u64 = std::env::var("KVCTL_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("KVCTL_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut acked = BTreeSet::new();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_START_ENV, (cycle * 10_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line == "ready" => {}
            other => panic!("cycle {cycle}: child did not start: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(5..120)));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("cycle {cycle}: child exited on its own: {status}");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");
        reader.join().expect("reader");
        let before = acked.len();
        for line in rx.try_iter() {
            if let Some(k) = line.strip_prefix("ack ") {
                acked.insert(k.to_string());
            }
        }
        match check(dir.path(), &acked) {
            Ok(present) => println!(
                "cycle {cycle}: {} new acknowledged writes, {} in all, {present} keys present",
                acked.len() - before,
                acked.len()
            ),
            Err(e) => panic!("cycle {cycle}: {e}"),
        }
    }
    println!(
        "engine_crash: {cycles} SIGKILL cycles, {} acknowledged writes, none lost",
        acked.len()
    );
}

fn main() {
    match std::env::var(CHILD_DIR_ENV) {
        Ok(dir) => {
            let start = std::env::var(CHILD_START_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            child(&dir, start)
        }
        Err(_) => parent(),
    }
}
