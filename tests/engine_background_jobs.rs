//! The engine's background jobs report what they do: a flush that fails (its table cannot be
//! created) is counted with its error, the flush is retried, and once it can succeed the
//! rotated memtables are written; the last error stays on record (`kvctl workers` shows it).

use std::time::{Duration, Instant};

use kvctl::storage::engine::{Engine, Options, Store, SyncMode, WriteBatch};

fn options() -> Options {
    Options {
        sync: SyncMode::Sync,
        memtable_bytes: 32 << 10,
        table_bytes: 64 << 10,
        block_bytes: 1024,
        index_map_bytes: 256 << 20,
        ..Options::default()
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_failing_flush_is_counted_with_its_error_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let before = engine.stats();
    assert_eq!(before.flush_job.errors, 0);
    assert_eq!(before.flush_job.last_error, None);
    // Tables cannot be created while their directory is gone.
    let tables = dir.path().join("tables");
    std::fs::remove_dir_all(&tables).unwrap();
    let value = vec![b'#'; 1024];
    // Until a memtable is rotated: its flush then fails (more would stall the writers).
    let mut written = 0u32;
    while engine.stats().immutable_memtables == 0 {
        let mut batch = WriteBatch::default();
        batch.put(format!("key-{written:04}").into_bytes(), value.clone());
        engine.write(batch).unwrap();
        written += 1;
    }
    wait_for("a failed flush", || engine.stats().flush_job.errors > 0);
    let failed = engine.stats();
    assert_eq!(failed.flushes, before.flushes);
    assert!(failed.immutable_memtables > 0);
    let error = failed
        .flush_job
        .last_error
        .clone()
        .expect("the error is kept");
    assert!(!error.is_empty());
    // Room again: the retried flush writes the rotated memtables; the error stays on record.
    std::fs::create_dir(&tables).unwrap();
    wait_for("the retried flushes", || {
        let s = engine.stats();
        s.immutable_memtables == 0 && s.flushes > before.flushes
    });
    let after = engine.stats();
    assert_eq!(after.flush_job.last_error, Some(error));
    assert!(after.flush_job.last_error_at_ms.is_some());
    assert!(!after.flush_job.busy || after.immutable_memtables > 0);
    for n in [0, written - 1] {
        assert_eq!(
            engine.get(format!("key-{n:04}").as_bytes()).unwrap(),
            Some(value.clone())
        );
    }
    engine.close().unwrap();
}
