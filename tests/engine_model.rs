//! The engine behaves like a `BTreeMap` under random sequences of puts, deletes, batches, gets,
//! scans, flushes, compactions and reopens.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use kvctl::storage::engine::{Engine, Options, Store, SyncMode, WriteBatch};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Scan(u8, u8),
    Flush,
    Compact,
    Reopen,
}

/// Key `i`: mostly short keys, and every fifth one a 600-byte key sharing a long prefix, so that
/// LMDB's cut index keys collide.
fn key(i: u8) -> Vec<u8> {
    if i.is_multiple_of(5) {
        let mut k = vec![b'x'; 600];
        k.extend_from_slice(format!("{i:03}").as_bytes());
        k
    } else {
        format!("k{i:03}").into_bytes()
    }
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => proptest::collection::vec(any::<u8>(), 500..3000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..60;
    prop_oneof![
        30 => (k.clone(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        8 => k.clone().prop_map(Op::Delete),
        6 => proptest::collection::vec((k.clone(), proptest::option::of(value())), 1..12).prop_map(Op::Batch),
        20 => k.clone().prop_map(Op::Get),
        5 => (k.clone(), k).prop_map(|(a, b)| Op::Scan(a.min(b), a.max(b))),
        3 => Just(Op::Flush),
        2 => Just(Op::Compact),
        2 => Just(Op::Reopen),
    ]
}

fn options(background: bool) -> Options {
    Options {
        sync: SyncMode::None,
        memtable_bytes: 3000,
        block_bytes: 256,
        table_bytes: 4096,
        l0_compaction_trigger: 2,
        level1_bytes: 8192,
        level_size_ratio: 2,
        cache_bytes: 16 << 10,
        index_map_bytes: 64 << 20,
        background_compaction: background,
        // Without background threads every lookup goes to LMDB; with them, a budget that
        // mirrors some tables' block index in memory and not others.
        index_cache_bytes: if background { 2048 } else { 0 },
        ..Options::default()
    }
}

fn run(ops: Vec<Op>, background: bool, dir: &Path) -> Result<(), TestCaseError> {
    let mut engine = Engine::open(dir, options(background)).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                engine.put(&key(k), &v).unwrap();
                model.insert(key(k), v);
            }
            Op::Delete(k) => {
                engine.delete(&key(k)).unwrap();
                model.remove(&key(k));
            }
            Op::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for (k, v) in ops {
                    match v {
                        Some(v) => {
                            batch.put(key(k), v.clone());
                            model.insert(key(k), v);
                        }
                        None => {
                            batch.delete(key(k));
                            model.remove(&key(k));
                        }
                    }
                }
                engine.write(batch).unwrap();
            }
            Op::Get(k) => {
                prop_assert_eq!(engine.get(&key(k)).unwrap(), model.get(&key(k)).cloned());
            }
            Op::Scan(a, b) => {
                let (lo, hi) = (key(a).min(key(b)), key(a).max(key(b)));
                let got: Vec<_> = engine
                    .scan((Bound::Included(lo.clone()), Bound::Excluded(hi.clone())))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let want: Vec<_> = model
                    .range(lo.clone()..hi.clone())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(got, want);
                let got: Vec<_> = engine
                    .scan((Bound::Excluded(lo.clone()), Bound::Included(hi.clone())))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let want: Vec<_> = model
                    .range((Bound::Excluded(lo), Bound::Included(hi)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Flush => engine.flush().unwrap(),
            Op::Compact => engine.compact().unwrap(),
            Op::Reopen => {
                drop(engine);
                engine = Engine::open(dir, options(background)).unwrap();
            }
        }
    }
    let all: Vec<_> = engine
        .scan((Bound::Unbounded, Bound::Unbounded))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    prop_assert_eq!(all, want);
    drop(engine);
    let engine = Engine::open(dir, options(background)).unwrap();
    for (k, v) in &model {
        prop_assert_eq!(engine.get(k).unwrap(), Some(v.clone()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    /// Inline flushes and compactions (no background threads): fully deterministic.
    #[test]
    fn engine_matches_btreemap(ops in proptest::collection::vec(op(), 1..160)) {
        let dir = tempfile::tempdir().unwrap();
        run(ops, false, dir.path())?;
    }

    /// The same with background flush and compaction threads racing the operations.
    #[test]
    fn engine_matches_btreemap_with_background_work(ops in proptest::collection::vec(op(), 1..160)) {
        let dir = tempfile::tempdir().unwrap();
        run(ops, true, dir.path())?;
    }
}
