//! Keys from 1 byte to the 4 KiB limit work everywhere (LMDB's 511-byte key limit does not leak
//! through), and keys, values and batches over the limits are refused with clear errors, storing
//! nothing.

use std::ops::Bound;

use kvctl::storage::engine::{Engine, EngineError, Options, Store, SyncMode, WriteBatch};

fn options() -> Options {
    Options {
        sync: SyncMode::None,
        block_bytes: 1024,
        index_map_bytes: 64 << 20,
        ..Options::default()
    }
}

fn all(engine: &Engine) -> Vec<(Vec<u8>, Vec<u8>)> {
    engine
        .scan((Bound::Unbounded, Bound::Unbounded))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn engine_keys_of_1_511_512_and_4096_bytes_work() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Vec<u8>> = [1usize, 511, 512, 4096]
        .iter()
        .map(|&n| vec![b'k'; n])
        .collect();
    let mut engine = Engine::open(dir.path(), options()).unwrap();
    for (i, k) in keys.iter().enumerate() {
        engine.put(k, format!("v{i}").as_bytes()).unwrap();
    }
    for step in ["memtable", "flushed", "compacted", "reopened"] {
        match step {
            "flushed" => engine.flush().unwrap(),
            "compacted" => engine.compact().unwrap(),
            "reopened" => {
                drop(engine);
                engine = Engine::open(dir.path(), options()).unwrap();
            }
            _ => {}
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                engine.get(k).unwrap(),
                Some(format!("v{i}").into_bytes()),
                "{step}: key of {} bytes",
                k.len()
            );
        }
        assert_eq!(all(&engine).len(), keys.len(), "{step}");
    }
}

/// Many 4 KiB keys that share their first 4000 bytes: their cut LMDB index keys collide, and
/// every one is still found, through LMDB and through the in-memory mirror of the index.
#[test]
fn engine_long_keys_with_common_prefix_are_all_found() {
    for index_cache_bytes in [0, 1 << 20] {
        must_find_long_keys(Options {
            index_cache_bytes,
            ..options()
        });
    }
}

fn must_find_long_keys(options: Options) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options).unwrap();
    let key = |i: u32| {
        let mut k = vec![b'p'; 4000];
        k.extend_from_slice(format!("{i:096}").as_bytes());
        k
    };
    for i in 0..300 {
        engine.put(&key(i), &i.to_le_bytes()).unwrap();
    }
    engine.compact().unwrap();
    for i in 0..300 {
        assert_eq!(engine.get(&key(i)).unwrap(), Some(i.to_le_bytes().to_vec()));
    }
    let mut absent = key(5);
    *absent.last_mut().unwrap() = b'x';
    assert_eq!(engine.get(&absent).unwrap(), None);
    let from = key(100);
    let n = engine
        .scan((Bound::Excluded(from), Bound::Unbounded))
        .unwrap()
        .count();
    assert_eq!(n, 199);
    assert!(
        engine.stats().block_index_entries < 300,
        "colliding cut keys share entries"
    );
}

#[test]
fn engine_oversized_inputs_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let err = engine.put(&vec![b'k'; 4097], b"v").unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::KeyTooLarge {
                len: 4097,
                max: 4096
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "key is 4097 bytes, over the limit of 4096 bytes (key_bytes_max)"
    );

    let err = engine.put(b"k", &vec![0u8; (16 << 20) + 1]).unwrap_err();
    assert!(matches!(err, EngineError::ValueTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("value_bytes_max"));

    let err = engine.put(b"", b"v").unwrap_err();
    assert!(matches!(err, EngineError::EmptyKey { .. }), "{err}");
    assert!(matches!(
        engine.get(&vec![b'k'; 4097]),
        Err(EngineError::KeyTooLarge { .. })
    ));

    // One bad operation refuses the whole batch.
    let mut batch = WriteBatch::new();
    batch
        .put(b"good".to_vec(), b"v".to_vec())
        .put(vec![b'k'; 5000], b"v".to_vec());
    assert!(matches!(
        engine.write(batch),
        Err(EngineError::KeyTooLarge { .. })
    ));

    // Values at the limit are fine.
    engine.put(b"big", &vec![7u8; 16 << 20]).unwrap();
    assert_eq!(all(&engine).len(), 1);
    assert_eq!(engine.get(b"good").unwrap(), None);
    engine.flush().unwrap();
    assert_eq!(engine.get(b"big").unwrap().map(|v| v.len()), Some(16 << 20));
}

/// A second open of the same directory is refused while the first holds it.
#[test]
fn engine_directory_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert!(matches!(
        Engine::open(dir.path(), options()),
        Err(EngineError::Locked { .. })
    ));
    drop(engine);
    Engine::open(dir.path(), options()).unwrap();
}
