//! The `periodic` and `none` durability modes work under concurrent writes, memtable rotations
//! and explicit flushes (the periodic syncer must not deadlock with rotation), and keep every
//! write across a clean close.

use std::sync::Arc;
use std::time::Duration;

use kvctl::storage::engine::{Engine, Options, Store, SyncMode};

fn must_run(sync: SyncMode) {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        sync,
        memtable_bytes: 8 << 10,
        index_map_bytes: 64 << 20,
        ..Options::default()
    };
    let engine = Arc::new(Engine::open(dir.path(), options()).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for i in 0..1500u32 {
                    engine
                        .put(format!("w{w}-{i:05}").as_bytes(), &[w as u8; 40])
                        .unwrap();
                    if i % 500 == 0 {
                        engine.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert!(engine.stats().flushes > 0);
    drop(engine);
    let engine = Engine::open(dir.path(), options()).unwrap();
    for w in 0..4u8 {
        for i in (0..1500u32).step_by(7) {
            assert_eq!(
                engine.get(format!("w{w}-{i:05}").as_bytes()).unwrap(),
                Some(vec![w; 40])
            );
        }
    }
}

#[test]
fn engine_periodic_mode_rotates_and_keeps_writes() {
    must_run(SyncMode::Periodic(Duration::from_millis(1)));
}

#[test]
fn engine_none_mode_rotates_and_keeps_writes() {
    must_run(SyncMode::None);
}

#[test]
fn engine_bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.limits.key_bytes_max = 70_000;
    let err = Engine::open(dir.path(), options).err().unwrap();
    assert!(err.to_string().contains("key_bytes_max"), "{err}");
}
