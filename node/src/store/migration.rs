//! Opening a node's data directory at the format this build writes ([`FORMAT_VERSION`]),
//! migrating one of the first release (format 1) on the way.
//!
//! Format 1 kept each key's versions under the key itself; format 2 under its data key (see
//! [`crate::store::keyspace`]). A format-1 directory `data` is copied into `data.migrating` with the
//! new keys and the format mark, then `data` is renamed to `data.format1`, `data.migrating` to
//! `data`, and `data.format1` is removed. A crash at any point leaves a state the next start
//! finishes: a `data.migrating` beside a `data` is an unfinished copy (removed and redone); a
//! `data.migrating` without `data` is a finished copy (renamed into place); a leftover
//! `data.format1` beside a migrated `data` is removed. A directory of a format this build does
//! not know (a later release's) is refused with a message saying so.

use std::fs;
use std::path::{Path, PathBuf};

use kvctl::storage::engine::{Engine, EngineError, Options, Store, WriteBatch};

use crate::store::keyspace::{data_key, FORMAT_KEY, FORMAT_VERSION};

/// A migration batch is written once it holds this many bytes.
const BATCH_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    #[error("storage: {0}")]
    Engine(#[from] EngineError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} holds data of format {found}, which this build does not read (it reads format \
         {FORMAT_VERSION}); it was written by a later release of kvctl: run that release",
        path.display()
    )]
    Format { path: PathBuf, found: String },
}

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The directory was already of this format (or new).
    Current,
    /// It was of format 1, and its keys were migrated.
    Migrated { keys: u64 },
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> MigrationError + 'a {
    move |source| MigrationError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn sibling(data: &Path, suffix: &str) -> PathBuf {
    let mut name = data.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    data.with_file_name(name)
}

/// Opens the engine in `data` at [`FORMAT_VERSION`], migrating a format-1 directory (or
/// finishing a migration a crash interrupted) first.
pub fn open(data: &Path, options: Options) -> Result<(Engine, Opened), MigrationError> {
    let migrating = sibling(data, ".migrating");
    let old = sibling(data, ".format1");
    if migrating.exists() {
        if data.exists() {
            fs::remove_dir_all(&migrating)
                .map_err(io("removing the unfinished copy", &migrating))?;
        } else {
            fs::rename(&migrating, data).map_err(io("renaming the migrated copy", &migrating))?;
            sync_parent(data)?;
        }
    }
    if old.exists() && data.exists() {
        fs::remove_dir_all(&old).map_err(io("removing the format-1 data", &old))?;
    }
    let engine = Engine::open(data, options.clone())?;
    match engine.get(FORMAT_KEY)? {
        Some(found) if found == FORMAT_VERSION.to_string().as_bytes() => {
            return Ok((engine, Opened::Current))
        }
        Some(found) => {
            return Err(MigrationError::Format {
                path: data.to_path_buf(),
                found: String::from_utf8_lossy(&found).into_owned(),
            })
        }
        None => {}
    }
    let empty = engine
        .scan((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))?
        .next()
        .is_none();
    if empty {
        engine.put(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())?;
        return Ok((engine, Opened::Current));
    }
    eprintln!(
        "{} is of format 1: migrating its keys to format {FORMAT_VERSION} (keys ordered by ring \
         token)",
        data.display()
    );
    let keys = copy(&engine, &migrating, options.clone())?;
    engine.close()?;
    drop(engine);
    fs::rename(data, &old).map_err(io("renaming the format-1 data", data))?;
    fs::rename(&migrating, data).map_err(io("renaming the migrated copy", &migrating))?;
    sync_parent(data)?;
    fs::remove_dir_all(&old).map_err(io("removing the format-1 data", &old))?;
    eprintln!("migrated {keys} keys of {}", data.display());
    let engine = Engine::open(data, options)?;
    Ok((engine, Opened::Migrated { keys }))
}

/// Copies every key of `from` (format 1) into a new engine in `to` with its data key, then the
/// format mark, durably; returns how many keys it copied.
fn copy(from: &Engine, to: &Path, options: Options) -> Result<u64, MigrationError> {
    let target = Engine::open(to, options)?;
    let mut batch = WriteBatch::new();
    let mut bytes = 0;
    let mut keys = 0;
    for entry in from.scan((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))? {
        let (key, value) = entry?;
        bytes += key.len() + value.len() + 32;
        batch.put(data_key(&key), value);
        keys += 1;
        if bytes >= BATCH_BYTES {
            target.write(std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    // The mark comes last: a copy with it is complete.
    batch.put(FORMAT_KEY, FORMAT_VERSION.to_string().into_bytes());
    target.write(batch)?;
    target.flush()?;
    target.close()?;
    Ok(keys)
}

fn sync_parent(path: &Path) -> Result<(), MigrationError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", parent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keyspace::{data_ranges, parse_data_key};
    use crate::store::replica::engine_options;

    fn format1(dir: &Path, keys: u32) {
        let engine = Engine::open(dir, engine_options()).unwrap();
        let mut batch = WriteBatch::new();
        for i in 0..keys {
            batch.put(format!("key-{i}"), format!("versions-{i}"));
        }
        engine.write(batch).unwrap();
        engine.close().unwrap();
    }

    fn check_migrated(engine: &Engine, keys: u32) {
        for i in 0..keys {
            assert_eq!(
                engine
                    .get(&data_key(format!("key-{i}").as_bytes()))
                    .unwrap(),
                Some(format!("versions-{i}").into_bytes())
            );
            assert_eq!(engine.get(format!("key-{i}").as_bytes()).unwrap(), None);
        }
        let all: Vec<_> = data_ranges(0, 0)
            .into_iter()
            .flat_map(|r| engine.scan(r).unwrap())
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(all.len(), keys as usize);
        assert!(all.iter().all(|k| parse_data_key(k).is_some()));
    }

    /// A format-1 directory is migrated once, keeps every key's versions under its data key,
    /// and opens as current afterwards; a new directory is current at once.
    #[test]
    fn format1_is_migrated_once() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        format1(&data, 3000);
        let (engine, opened) = open(&data, engine_options()).unwrap();
        assert_eq!(opened, Opened::Migrated { keys: 3000 });
        check_migrated(&engine, 3000);
        engine.close().unwrap();
        drop(engine);
        let (engine, opened) = open(&data, engine_options()).unwrap();
        assert_eq!(opened, Opened::Current);
        check_migrated(&engine, 3000);
        assert!(!sibling(&data, ".migrating").exists() && !sibling(&data, ".format1").exists());

        let fresh = tmp.path().join("fresh");
        let (engine, opened) = open(&fresh, engine_options()).unwrap();
        assert_eq!(opened, Opened::Current);
        assert_eq!(
            engine.get(FORMAT_KEY).unwrap(),
            Some(FORMAT_VERSION.to_string().into_bytes())
        );
    }

    /// Crashes at each step of a migration: the next open finishes it with every key.
    #[test]
    fn an_interrupted_migration_is_finished() {
        let tmp = tempfile::tempdir().unwrap();
        // Crash during the copy: an unfinished copy beside the format-1 data.
        let data = tmp.path().join("a");
        format1(&data, 100);
        fs::create_dir_all(sibling(&data, ".migrating")).unwrap();
        fs::write(sibling(&data, ".migrating").join("junk"), b"half a table").unwrap();
        let (engine, opened) = open(&data, engine_options()).unwrap();
        assert_eq!(opened, Opened::Migrated { keys: 100 });
        check_migrated(&engine, 100);

        // Crash between the two renames: the finished copy, and the format-1 data aside.
        let data = tmp.path().join("b");
        format1(&data, 100);
        {
            let from = Engine::open(&data, engine_options()).unwrap();
            copy(&from, &sibling(&data, ".migrating"), engine_options()).unwrap();
            from.close().unwrap();
        }
        fs::rename(&data, sibling(&data, ".format1")).unwrap();
        let (engine, opened) = open(&data, engine_options()).unwrap();
        assert_eq!(opened, Opened::Current);
        check_migrated(&engine, 100);
        assert!(!sibling(&data, ".format1").exists());
        assert!(!sibling(&data, ".migrating").exists());
    }

    /// A directory of a later format is refused, saying so, and left as it is.
    #[test]
    fn a_later_format_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        {
            let engine = Engine::open(&data, engine_options()).unwrap();
            engine.put(FORMAT_KEY, b"3").unwrap();
            engine.put(&data_key(b"k"), b"v").unwrap();
            engine.close().unwrap();
        }
        let e = match open(&data, engine_options()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a later format was opened"),
        };
        assert!(e.contains("format 3") && e.contains("later release"), "{e}");
        let engine = Engine::open(&data, engine_options()).unwrap();
        assert_eq!(engine.get(&data_key(b"k")).unwrap(), Some(b"v".to_vec()));
    }
}
