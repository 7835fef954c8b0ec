//! A full disk: a write that finds no room for its WAL record fails with a clear error and
//! writes nothing; every write acknowledged before stays readable, the engine keeps serving
//! reads, and writes succeed again once there is room, without reopening. After a reopen, the
//! acknowledged writes are there and the refused ones are not.

use std::sync::Arc;

use kvctl::storage::engine::faultfs::FaultFs;
use kvctl::storage::engine::{Engine, EngineError, Options, Store, SyncMode};

fn options(fault: &FaultFs) -> Options {
    Options {
        sync: SyncMode::Sync,
        memtable_bytes: 32 << 10,
        table_bytes: 64 << 10,
        block_bytes: 1024,
        index_map_bytes: 256 << 20,
        log_fs: Arc::new(fault.clone()),
        ..Options::default()
    }
}

fn value_of(n: u64) -> Vec<u8> {
    format!("value-{n:06}-{}", "#".repeat(200)).into_bytes()
}

fn key(n: u64) -> String {
    format!("key-{n:06}")
}

#[test]
fn engine_full_disk_refuses_writes_clearly_and_resumes_when_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultFs::new();
    let engine = Engine::open(dir.path(), options(&fault)).unwrap();
    for n in 0..100 {
        engine.put(key(n).as_bytes(), &value_of(n)).unwrap();
    }
    // Room for about ten more records.
    fault.set_space_left(Some(10 * 260));
    let mut acked = 100;
    let refused = loop {
        match engine.put(key(acked).as_bytes(), &value_of(acked)) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 200, "the disk never filled up");
    };
    assert!(acked > 100, "some writes fit in the room left");
    assert!(
        matches!(refused, EngineError::WalFull { .. }),
        "expected WalFull, got {refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("No space left on device") && message.contains("nothing was written"),
        "{message}"
    );

    // Still full: refused again the same way, not poisoned; reads go on.
    let again = engine.put(b"another", &value_of(0)).unwrap_err();
    assert!(matches!(again, EngineError::WalFull { .. }), "{again:?}");
    for n in 0..acked {
        assert_eq!(engine.get(key(n).as_bytes()).unwrap(), Some(value_of(n)));
    }
    assert_eq!(engine.get(key(acked).as_bytes()).unwrap(), None);
    assert_eq!(engine.get(b"another").unwrap(), None);

    // Room again: writes resume without a reopen, past a memtable rotation too.
    fault.set_space_left(None);
    let resumed_from = acked + 1;
    for n in resumed_from..resumed_from + 300 {
        engine.put(key(n).as_bytes(), &value_of(n)).unwrap();
    }
    engine.close().unwrap();
    drop(engine);

    let engine = Engine::open(dir.path(), options(&FaultFs::new())).unwrap();
    for n in (0..acked).chain(resumed_from..resumed_from + 300) {
        assert_eq!(
            engine.get(key(n).as_bytes()).unwrap(),
            Some(value_of(n)),
            "{}",
            key(n)
        );
    }
    assert_eq!(engine.get(key(acked).as_bytes()).unwrap(), None);
    assert_eq!(engine.get(b"another").unwrap(), None);
    engine.close().unwrap();
}

/// A rotation that made the next segment and then stopped (a full disk, a crash) leaves an
/// empty newest segment behind a segment that still ends in its reserved zeros. Reopening finds
/// every write and goes on.
#[test]
fn engine_reopens_after_a_rotation_that_stopped_halfway() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        memtable_bytes: 32 << 10,
        index_map_bytes: 256 << 20,
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), options()).unwrap();
    for n in 0..50 {
        engine.put(key(n).as_bytes(), &value_of(n)).unwrap();
    }
    engine.close().unwrap();
    drop(engine);

    let wal = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let newest = segments.last().unwrap().clone();
    let id: u64 = newest
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The newest segment as it was before being trimmed, and the next one, made but empty.
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    file.set_len(file.metadata().unwrap().len() + (1 << 20))
        .unwrap();
    let next = wal.join(format!("{:020}.log", id + 1));
    std::fs::File::create(&next).unwrap();

    let engine = Engine::open(dir.path(), options()).unwrap();
    for n in 0..50 {
        assert_eq!(engine.get(key(n).as_bytes()).unwrap(), Some(value_of(n)));
    }
    for n in 50..400 {
        engine.put(key(n).as_bytes(), &value_of(n)).unwrap();
    }
    engine.close().unwrap();
    drop(engine);
    let engine = Engine::open(dir.path(), options()).unwrap();
    for n in 0..400 {
        assert_eq!(engine.get(key(n).as_bytes()).unwrap(), Some(value_of(n)));
    }
    engine.close().unwrap();
}
