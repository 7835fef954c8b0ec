//! Reads that never wait on the disk: `get_cached` answers from the memtables, cached blocks
//! and bloom filters, and says when a read would need the disk instead of reading it (the node
//! then reads off its async runtime's threads). Its answers are `get`'s.

use kvctl::storage::engine::{Engine, Options, Store, SyncMode};

fn options() -> Options {
    Options {
        sync: SyncMode::None,
        block_bytes: 1024,
        index_map_bytes: 64 << 20,
        ..Options::default()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

#[test]
fn cached_reads_answer_from_memory_or_say_they_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    for i in 0..2000 {
        engine
            .put(&key(i), format!("value-{i}").as_bytes())
            .unwrap();
    }
    engine.delete(&key(7)).unwrap();
    // In the memtable: answered, deletions too.
    assert_eq!(
        engine.get_cached(&key(3)).unwrap(),
        Some(Some(b"value-3".to_vec()))
    );
    assert_eq!(engine.get_cached(&key(7)).unwrap(), Some(None));
    engine.flush().unwrap();
    engine.close().unwrap();
    drop(engine);

    // Reopened: nothing is cached, so reads of stored keys need the disk.
    let engine = Engine::open(dir.path(), options()).unwrap();
    let cold = (0..2000)
        .filter(|&i| engine.get_cached(&key(i)).unwrap().is_none())
        .count();
    assert!(cold > 1900, "{cold} of 2000 reads needed the disk");
    // A key no table may hold is answered by the bloom filters alone (a few false positives
    // need the disk).
    let absent = (0..1000)
        .filter(|i| engine.get_cached(format!("absent-{i}").as_bytes()).unwrap() == Some(None))
        .count();
    assert!(
        absent > 900,
        "{absent} of 1000 absent keys answered from memory"
    );
    // Once `get` has read a key's block, the cached read answers it, as `get` does.
    for i in 0..2000 {
        let read = engine.get(&key(i)).unwrap();
        assert_eq!(engine.get_cached(&key(i)).unwrap(), Some(read.clone()));
        let expected = (i != 7).then(|| format!("value-{i}").into_bytes());
        assert_eq!(read, expected);
    }
}
