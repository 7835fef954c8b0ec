//! Damaged files are reported with where the damage is, never read as wrong data: a corrupted
//! table block, and a WAL cut or bit-flipped, through the whole engine.

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use kvctl::storage::engine::{Engine, EngineError, Options, Store, SyncMode};

fn options() -> Options {
    Options {
        sync: SyncMode::Sync,
        block_bytes: 512,
        index_map_bytes: 64 << 20,
        ..Options::default()
    }
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A flipped bit in a table's data block gives a checksum error naming the table file, for the
/// keys of that block; keys of other blocks still read correctly.
#[test]
fn engine_corrupt_table_block_is_a_checksum_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), options()).unwrap();
        for i in 0..500u32 {
            engine
                .put(
                    format!("key{i:05}").as_bytes(),
                    format!("value-{i}").as_bytes(),
                )
                .unwrap();
        }
        engine.compact().unwrap();
    }
    let tables = files_with_suffix(&dir.path().join("tables"), ".sst");
    assert_eq!(tables.len(), 1);
    let mut bytes = fs::read(&tables[0]).unwrap();
    bytes[20] ^= 0x04; // inside the first data block
    fs::write(&tables[0], &bytes).unwrap();

    let engine = Engine::open(dir.path(), options()).unwrap();
    match engine.get(b"key00000") {
        Err(EngineError::ChecksumMismatch { file, offset, .. }) => {
            assert_eq!(file, tables[0]);
            assert_eq!(offset, 0);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let err = engine.get(b"key00001").unwrap_err();
    assert!(
        err.to_string().contains(&tables[0].display().to_string()),
        "{err}"
    );
    assert_eq!(
        engine.get(b"key00499").unwrap(),
        Some(b"value-499".to_vec())
    );
    let scan: Result<Vec<_>, _> = engine
        .scan((Bound::Unbounded, Bound::Unbounded))
        .unwrap()
        .collect();
    assert!(matches!(scan, Err(EngineError::ChecksumMismatch { .. })));
}

/// Writes `n` single-key records through the engine and returns its directory (closed).
fn must_write_records(n: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    for i in 0..n {
        engine
            .put(
                format!("k{i:04}").as_bytes(),
                &vec![i as u8; 10 + i as usize % 13],
            )
            .unwrap();
    }
    dir
}

fn present(engine: &Engine, n: u32) -> u32 {
    let mut count = 0;
    for i in 0..n {
        if let Some(v) = engine.get(format!("k{i:04}").as_bytes()).unwrap() {
            assert_eq!(v, vec![i as u8; 10 + i as usize % 13], "record {i} damaged");
            assert_eq!(count, i, "record {i} present after a missing one");
            count += 1;
        }
    }
    count
}

/// The one WAL segment that holds records, and its bytes.
fn must_read_wal(dir: &Path) -> (PathBuf, Vec<u8>) {
    let segments = files_with_suffix(&dir.join("wal"), ".log");
    let segment = segments
        .into_iter()
        .find(|p| fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let bytes = fs::read(&segment).unwrap();
    (segment, bytes)
}

/// Cutting the WAL at every byte offset of its last records recovers exactly the records
/// complete before the cut.
#[test]
fn engine_torn_wal_recovers_exactly_the_complete_records() {
    let n = 30;
    let dir = must_write_records(n);
    let (segment, bytes) = must_read_wal(dir.path());
    // Each record holds one put of a 5-byte key: 28 header + 4 count + 1 kind + 4 + 5 + 4 + value.
    let mut ends = Vec::new();
    let mut at = 0;
    for i in 0..n {
        at += 28 + 4 + 1 + 4 + 5 + 4 + 10 + i as usize % 13;
        ends.push(at);
    }
    assert_eq!(*ends.last().unwrap(), bytes.len());
    let copy_root = tempfile::tempdir().unwrap();
    for cut in ends[n as usize - 4]..=bytes.len() {
        let copy = copy_root.path().join(format!("cut{cut}"));
        copy_dir(dir.path(), &copy);
        let name = segment.file_name().unwrap();
        fs::write(copy.join("wal").join(name), &bytes[..cut]).unwrap();
        let engine = Engine::open(&copy, options()).unwrap();
        let complete = ends.iter().filter(|&&e| e <= cut).count() as u32;
        assert_eq!(present(&engine, n), complete, "cut at {cut}");
        drop(engine);
        fs::remove_dir_all(&copy).unwrap();
    }
}

/// Flipping random bits in the WAL gives either an exact prefix of the records or a corruption
/// error naming the segment; never a panic, never a damaged value.
#[test]
fn engine_bit_flipped_wal_gives_prefix_or_named_error() {
    let n = 30;
    let dir = must_write_records(n);
    let (segment, bytes) = must_read_wal(dir.path());
    let copy_root = tempfile::tempdir().unwrap();
    let mut errors = 0;
    for trial in 0..60u64 {
        let byte = (trial * 7919 + 13) as usize % bytes.len();
        let mut damaged = bytes.clone();
        damaged[byte] ^= 1 << (trial % 8);
        let copy = copy_root.path().join(format!("flip{trial}"));
        copy_dir(dir.path(), &copy);
        let damaged_path = copy.join("wal").join(segment.file_name().unwrap());
        fs::write(&damaged_path, &damaged).unwrap();
        match Engine::open(&copy, options()) {
            Ok(engine) => {
                present(&engine, n);
            }
            Err(EngineError::WalCorrupt { file, .. }) => {
                assert_eq!(file, damaged_path);
                errors += 1;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
        fs::remove_dir_all(&copy).unwrap();
    }
    assert!(errors > 0, "no flip was reported as corruption");
}
