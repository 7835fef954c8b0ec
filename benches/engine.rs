//! Engine benchmark: this engine, fjall and raw heed (LMDB) side by side in one process, on the
//! same data (24-byte keys, 150-byte values, 1 million keys in random order).
//!
//! Workloads: (a) durable single writes from 16 threads, each waiting for its fsync;
//! (b) ingest in synced batches of 1,000; (c) random point reads after load, flush and
//! compaction (after one untimed warm-up pass), on 1 and 2 threads; (d) a full ordered scan.
//!
//! `cargo bench --bench engine`; `KVCTL_BENCH_KEYS` changes the key count.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use heed::types::Bytes;
use kvctl::storage::engine::{Engine, Options, Store, WriteBatch};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const VALUE_BYTES: usize = 150;
const WRITERS: usize = 16;
const DURABLE_WRITES_PER_WRITER: usize = 400;
const BATCH: usize = 1000;
const CACHE_BYTES: u64 = 256 << 20;

fn key(i: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k.copy_from_slice(
        format!(
            "key{:021}",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 10u64.pow(21)
        )
        .as_bytes(),
    );
    k
}

fn value(i: u64) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_BYTES];
    let mut x = i.wrapping_add(1);
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    v
}

trait Subject: Send + Sync {
    fn name(&self) -> &'static str;
    fn durable_put(&self, k: &[u8], v: &[u8]);
    fn synced_batch(&self, items: &[([u8; 24], Vec<u8>)]);
    fn settle(&self);
    fn get(&self, k: &[u8]) -> bool;
    fn scan(&self) -> usize;
}

struct Ours(Engine);

impl Subject for Ours {
    fn name(&self) -> &'static str {
        "kvctl"
    }
    fn durable_put(&self, k: &[u8], v: &[u8]) {
        self.0.put(k, v).unwrap();
    }
    fn synced_batch(&self, items: &[([u8; 24], Vec<u8>)]) {
        let mut b = WriteBatch::new();
        for (k, v) in items {
            b.put(k.as_slice(), v.as_slice());
        }
        self.0.write(b).unwrap();
    }
    fn settle(&self) {
        self.0.compact().unwrap();
    }
    fn get(&self, k: &[u8]) -> bool {
        self.0.get(k).unwrap().is_some()
    }
    fn scan(&self) -> usize {
        let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        self.0
            .scan(all)
            .unwrap()
            .fold(0, |n, item| n + usize::from(!item.unwrap().1.is_empty()))
    }
}

struct Fjall(fjall::Database, fjall::Keyspace);

impl Subject for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }
    fn durable_put(&self, k: &[u8], v: &[u8]) {
        self.1.insert(k, v).unwrap();
        self.0.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    fn synced_batch(&self, items: &[([u8; 24], Vec<u8>)]) {
        let mut b = self.0.batch().durability(Some(fjall::PersistMode::SyncAll));
        for (k, v) in items {
            b.insert(&self.1, k.as_slice(), v.as_slice());
        }
        b.commit().unwrap();
    }
    fn settle(&self) {
        self.1.rotate_memtable_and_wait().unwrap();
        self.1.major_compact().unwrap();
    }
    fn get(&self, k: &[u8]) -> bool {
        self.1.get(k).unwrap().is_some()
    }
    fn scan(&self) -> usize {
        self.1.iter().fold(0, |n, g| {
            n + usize::from(!g.into_inner().unwrap().1.is_empty())
        })
    }
}

struct Lmdb(heed::Env, heed::Database<'static, Bytes, Bytes>);

impl Subject for Lmdb {
    fn name(&self) -> &'static str {
        "heed"
    }
    fn durable_put(&self, k: &[u8], v: &[u8]) {
        let mut w = self.0.write_txn().unwrap();
        self.1.put(&mut w, k, v).unwrap();
        w.commit().unwrap();
    }
    fn synced_batch(&self, items: &[([u8; 24], Vec<u8>)]) {
        let mut w = self.0.write_txn().unwrap();
        for (k, v) in items {
            self.1.put(&mut w, k, v).unwrap();
        }
        w.commit().unwrap();
    }
    fn settle(&self) {}
    fn get(&self, k: &[u8]) -> bool {
        let r = self.0.read_txn().unwrap();
        self.1.get(&r, k).unwrap().is_some()
    }
    fn scan(&self) -> usize {
        let r = self.0.read_txn().unwrap();
        self.1
            .iter(&r)
            .unwrap()
            .fold(0, |n, x| n + usize::from(!x.unwrap().1.is_empty()))
    }
}

fn open(which: &str, dir: &Path) -> Arc<dyn Subject> {
    match which {
        "kvctl" => Arc::new(Ours(
            Engine::open(
                dir,
                Options {
                    cache_bytes: CACHE_BYTES,
                    ..Options::default()
                },
            )
            .unwrap(),
        )),
        "fjall" => {
            let db = fjall::Database::builder(dir)
                .cache_size(CACHE_BYTES)
                .open()
                .unwrap();
            let ks = db
                .keyspace("bench", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            Arc::new(Fjall(db, ks))
        }
        _ => {
            let env = unsafe {
                heed::EnvOpenOptions::new()
                    .map_size(8 << 30)
                    .max_dbs(2)
                    .open(dir)
                    .unwrap()
            };
            let w = env.write_txn().unwrap();
            let db = env
                .create_databases_and_commit(w, |o, w| {
                    o.create_database::<Bytes, Bytes>(w, Some("bench"))
                        .map(heed::CommitOrAbort::<_, ()>::Commit)
                })
                .unwrap()
                .unwrap_commit();
            Arc::new(Lmdb(env, db))
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Row {
    durable: f64,
    batch: f64,
    get1: f64,
    get2: f64,
    scan: f64,
}

fn run(which: &str, keys: u64, order: &[u64]) -> Row {
    let mut row = Row::default();
    // (a) durable single writes, 16 writers.
    {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let s = open(which, dir.path());
        let start = Instant::now();
        std::thread::scope(|scope| {
            for w in 0..WRITERS {
                let s = s.clone();
                scope.spawn(move || {
                    for i in 0..DURABLE_WRITES_PER_WRITER {
                        let n = (w * DURABLE_WRITES_PER_WRITER + i) as u64;
                        s.durable_put(&key(n), &value(n));
                    }
                });
            }
        });
        row.durable = (WRITERS * DURABLE_WRITES_PER_WRITER) as f64 / start.elapsed().as_secs_f64();
    }
    // (b) ingest in synced batches, then (c) reads and (d) scan on the loaded store.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let s = open(which, dir.path());
    let start = Instant::now();
    for chunk in order.chunks(BATCH) {
        let items: Vec<_> = chunk.iter().map(|&i| (key(i), value(i))).collect();
        s.synced_batch(&items);
    }
    row.batch = keys as f64 / start.elapsed().as_secs_f64();
    s.settle();
    let gets = keys.min(1_000_000);
    // Keys to look up, made before the clock starts.
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let probes: Vec<[u8; 24]> = (0..gets).map(|_| key(rng.random_range(0..keys))).collect();
    // One untimed pass first, the same for every engine, so that (c) measures steady-state reads
    // rather than how each engine's cache is left by compaction.
    for k in &probes {
        assert!(s.get(k), "{} lost a key", s.name());
    }
    for threads in [1usize, 2] {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let s = s.clone();
                let probes = &probes;
                scope.spawn(move || {
                    let share = probes.len() / threads;
                    for k in &probes[t * share..(t + 1) * share] {
                        assert!(s.get(k), "{} lost a key", s.name());
                    }
                });
            }
        });
        let rate = gets as f64 / start.elapsed().as_secs_f64();
        if threads == 1 {
            row.get1 = rate;
        } else {
            row.get2 = rate;
        }
    }
    let start = Instant::now();
    assert_eq!(s.scan() as u64, keys);
    row.scan = keys as f64 / start.elapsed().as_secs_f64();
    row
}

fn fmt(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let keys: u64 = std::env::var("KVCTL_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let only = std::env::var("KVCTL_BENCH_ONLY").ok();
    let mut order: Vec<u64> = (0..keys).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(1));
    let mut rows = Vec::new();
    for which in ["kvctl", "fjall", "heed"] {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|x| x == which))
        {
            continue;
        }
        eprintln!("running {which} ...");
        rows.push((which, run(which, keys, &order)));
    }
    let fj = rows.iter().find(|(n, _)| *n == "fjall").map(|(_, r)| *r);
    println!(
        "\n{} keys, 24-byte keys, {VALUE_BYTES}-byte values; ops/s (ratio to fjall)\n",
        keys
    );
    println!(
        "| engine | (a) durable puts, 16 writers | (b) synced batches of 1000, keys/s | (c) random gets, 1 thread | (c) random gets, 2 threads | (d) full scan, keys/s |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, r) in &rows {
        let cell = |x: f64, f: Option<f64>| match f {
            Some(f) if f > 0.0 => format!("{} ({:.2}×)", fmt(x), x / f),
            _ => fmt(x),
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            cell(r.durable, fj.map(|f| f.durable)),
            cell(r.batch, fj.map(|f| f.batch)),
            cell(r.get1, fj.map(|f| f.get1)),
            cell(r.get2, fj.map(|f| f.get2)),
            cell(r.scan, fj.map(|f| f.scan)),
        );
    }
}
