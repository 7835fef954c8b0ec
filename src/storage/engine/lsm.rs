//! The LSM engine: group commit into the WAL, memtables, background flush and compaction, and
//! the read path over memtables and tables.

use std::fs::{self, File, OpenOptions};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use super::batch::{validate_key, WriteBatch};
use super::block::Probe;
use super::bloom::key_hash;
use super::cache::BlockCache;
use super::entry::Entry;
use super::error::{EngineError, Result};
use super::index::{Edit, Index, IndexEntries};
use super::levels::{CompactionTask, Levels, Shape, LEVELS};
use super::logfile::sync_dir;
use super::memtable::Memtable;
use super::merge::{MemSource, Merge, Source, TableSource};
use super::options::{Options, SyncMode};
use super::store::{JobStats, KeyRange, Scan, Stats, Store};
use super::table::{table_path, Graveyard, Table, TableWriter};
use super::wal::{self, WalWriter};

/// Groups a leader commits before handing leadership to a waiting writer, so that no writer
/// leads forever while others keep arriving.
const LEADER_GROUPS_MAX: usize = 8;
/// How long a failed background job waits before it is retried.
const BACKGROUND_RETRY: Duration = Duration::from_secs(1);

/// What the readers see: the memtables and the tables, swapped as a whole.
struct State {
    active: Arc<Memtable>,
    /// Rotated memtables waiting to be flushed, oldest first.
    immutables: Vec<Arc<Memtable>>,
    version: Arc<Levels>,
}

enum Turn {
    Waiting,
    Lead,
    Done(Result<()>),
}

struct Waiter {
    turn: Mutex<Turn>,
    cv: Condvar,
}

impl Waiter {
    fn set(&self, turn: Turn) {
        *self.turn.lock() = turn;
        self.cv.notify_one();
    }
}

struct Pending {
    batch: WriteBatch,
    waiter: Arc<Waiter>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    leading: bool,
}

struct WalState {
    writer: WalWriter,
    poisoned: Option<String>,
    /// The log is durable up to this sequence number (written into every record, so recovery
    /// can tell a torn write from a damaged record that had been synced).
    synced_seq: u64,
}

#[derive(Default)]
struct Background {
    shutdown: bool,
    /// The last flush failure, until a flush succeeds; writers stalled on flushes see it.
    flush_error: Option<String>,
    /// The last compaction failure, until a compaction succeeds.
    compaction_error: Option<String>,
    /// Bumped whenever the live set changes, to wake whoever waits on it.
    changes: u64,
}

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    compactions: AtomicU64,
    table_bytes_written: AtomicU64,
    user_bytes_written: AtomicU64,
    wal_syncs: AtomicU64,
    write_groups: AtomicU64,
    flushing: AtomicBool,
    compacting: AtomicBool,
    flush_errors: AtomicU64,
    compaction_errors: AtomicU64,
    /// The last flush failure and the last compaction failure, kept after later successes.
    last_errors: Mutex<[Option<(String, u64)>; 2]>,
}

/// The wall clock in milliseconds since the epoch (when a background job failed).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Marks a kind of background job running until dropped.
struct Busy<'a>(&'a AtomicBool);

impl<'a> Busy<'a> {
    fn mark(flag: &'a AtomicBool) -> Busy<'a> {
        flag.store(true, Ordering::Relaxed);
        Busy(flag)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// What a lookup found.
enum Lookup {
    /// The key's value, or `None` if it has none (never written, or deleted).
    Found(Option<Vec<u8>>),
    /// A lookup limited to memory would have had to read the disk.
    NotInMemory,
}

/// What one table holds of a key.
enum TableGet {
    /// A value, or a tombstone (`None`).
    Found(Option<Vec<u8>>),
    Absent,
    NotInMemory,
}

struct Inner {
    dir: PathBuf,
    tables_dir: PathBuf,
    wal_dir: PathBuf,
    options: Options,
    index: Index,
    cache: Arc<BlockCache>,
    state: RwLock<Arc<State>>,
    queue: Mutex<Queue>,
    wal: Mutex<WalState>,
    last_seq: AtomicU64,
    next_table_id: AtomicU64,
    background: Mutex<Background>,
    /// Signalled on every change of `background` or of the live set.
    background_cv: Condvar,
    compaction: Mutex<[Vec<u8>; LEVELS]>,
    graveyard: Graveyard,
    /// Bytes of block index entries mirrored in memory.
    mirrored: Arc<AtomicU64>,
    /// Serializes flushes: memtables must reach the manifest oldest first.
    flushing: Mutex<()>,
    closed: AtomicBool,
    counters: Counters,
    _lock: File,
}

/// The LSM storage engine. See the module documentation of [`crate::storage::engine`].
pub struct Engine {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Opens (creating if needed) the engine in `dir`: recovers the WAL, checks the manifest,
    /// removes files the manifest does not name, and starts the background threads.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let tables_dir = dir.join("tables");
        let wal_dir = dir.join("wal");
        for d in [&dir, &tables_dir, &wal_dir] {
            fs::create_dir_all(d).map_err(|e| EngineError::io("creating directory", d, e))?;
        }
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| EngineError::io("opening lock file", &lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(EngineError::Locked {
                dir,
                lock: lock_path,
            });
        }

        let index = Index::open(&dir.join("index"), options.index_map_bytes)?;
        let metas = index.tables()?;
        let mut tables = Vec::with_capacity(metas.len());
        let mut max_table_id = 0;
        let mut last_seq = index.last_flushed_seq()?;
        let mirrored = Arc::new(AtomicU64::new(0));
        for meta in metas {
            max_table_id = max_table_id.max(meta.id);
            last_seq = last_seq.max(meta.max_seq);
            let mut table = Table::open(&tables_dir, meta)?;
            if mirrored.load(Ordering::Acquire) < options.index_cache_bytes {
                let entries = index.entries(table.id())?;
                table.mirror_index(entries, &mirrored, options.index_cache_bytes);
            }
            tables.push(Arc::new(table));
        }
        // Writes take the sequence numbers after this one: the index must leave one.
        if last_seq == u64::MAX {
            return Err(EngineError::IndexCorrupt {
                dir: dir.join("index"),
                reason: format!("sequence number {last_seq} (the largest) leaves none for writes"),
            });
        }
        remove_unlisted_tables(&tables_dir, &tables)?;
        index.forget_unlisted()?;
        let version = Levels::from_tables(tables);

        let last_flushed = index.last_flushed_seq()?;
        let mut segments = wal::list_segments(&wal_dir)?;
        // A segment created but never written to (a crash, or a failed rotation, right after
        // it was made) holds nothing: the one before it is the newest.
        while let Some(&id) = segments.last() {
            let path = wal::segment_path(&wal_dir, id);
            let len = std::fs::metadata(&path)
                .map_err(|e| EngineError::io("reading WAL segment", &path, e))?
                .len();
            if len > 0 {
                break;
            }
            std::fs::remove_file(&path)
                .map_err(|e| EngineError::io("removing empty WAL segment", &path, e))?;
            segments.pop();
        }
        let new_segment = segments.last().map_or(1, |id| id + 1);
        let mut segment_ids = segments.clone();
        segment_ids.push(new_segment);
        let memtable = Memtable::new(segment_ids);
        let mut previous: Option<u64> = None;
        for (i, &id) in segments.iter().enumerate() {
            let path = wal::segment_path(&wal_dir, id);
            let replay =
                wal::replay_segment(&path, i + 1 == segments.len(), previous, |seq, batch| {
                    for (n, op) in batch.ops().iter().enumerate() {
                        let op_seq = seq + n as u64;
                        if op_seq > last_flushed {
                            memtable.insert(&op.key, op_seq, op.value.as_deref());
                        }
                    }
                    Ok(())
                })?;
            previous = replay.last_seq.or(previous);
        }
        // What was replayed counts as durable from here on (new records say so): make it so,
        // in case the process that wrote it was killed before its fsync.
        if let Some(&id) = segments.last() {
            let path = wal::segment_path(&wal_dir, id);
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| EngineError::io("syncing replayed WAL segment", &path, e))?;
        }
        last_seq = last_seq.max(previous.unwrap_or(0));
        let writer = WalWriter::create(&options.log_fs, &wal_dir, new_segment)?;
        let next_table_id = index.next_table_id()?.max(max_table_id + 1);

        let inner = Arc::new(Inner {
            cache: Arc::new(BlockCache::new(options.cache_bytes)),
            state: RwLock::new(Arc::new(State {
                active: Arc::new(memtable),
                immutables: Vec::new(),
                version: Arc::new(version),
            })),
            queue: Mutex::new(Queue::default()),
            wal: Mutex::new(WalState {
                writer,
                poisoned: None,
                synced_seq: last_seq,
            }),
            last_seq: AtomicU64::new(last_seq),
            next_table_id: AtomicU64::new(next_table_id),
            background: Mutex::new(Background::default()),
            background_cv: Condvar::new(),
            compaction: Mutex::new(Default::default()),
            graveyard: Graveyard::default(),
            mirrored,
            flushing: Mutex::new(()),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            _lock: lock,
            dir,
            tables_dir,
            wal_dir,
            options,
            index,
        });
        let mut threads = Vec::new();
        let spawn = |name: &str, f: fn(&Inner)| {
            let worker = inner.clone();
            thread::Builder::new()
                .name(name.into())
                .spawn(move || f(&worker))
                .map_err(|e| EngineError::io("starting thread", &inner.dir, e))
        };
        if inner.options.background_compaction {
            threads.push(spawn("kvctl-flush", Inner::flush_loop)?);
            threads.push(spawn("kvctl-compact", Inner::compact_loop)?);
        }
        if let SyncMode::Periodic(_) = inner.options.sync {
            threads.push(spawn("kvctl-wal-sync", Inner::periodic_sync_loop)?);
        }
        Ok(Engine {
            inner,
            threads: Mutex::new(threads),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }
}

/// Removes table files (and temporaries) that the manifest does not list: leftovers of a
/// flush or compaction that crashed before its commit, or of a removal that did not finish.
fn remove_unlisted_tables(dir: &Path, live: &[Arc<Table>]) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| EngineError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io("listing", dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let listed = name
            .strip_suffix(".sst")
            .and_then(|id| id.parse::<u64>().ok())
            .is_some_and(|id| live.iter().any(|t| t.id() == id));
        if !listed && (name.ends_with(".sst") || name.ends_with(".sst.tmp")) {
            fs::remove_file(&path)
                .map_err(|e| EngineError::io("removing unlisted table", &path, e))?;
        }
    }
    sync_dir(dir).map_err(|e| EngineError::io("syncing directory", dir, e))
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::Closed);
        }
        Ok(())
    }

    fn state(&self) -> Arc<State> {
        self.state.read().clone()
    }

    fn notify_background(&self) {
        let mut bg = self.background.lock();
        bg.changes += 1;
        self.background_cv.notify_all();
    }

    // ---- writes -------------------------------------------------------------------------

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.check_open()?;
        batch.validate(&self.options.limits)?;
        if batch.is_empty() {
            return Ok(());
        }
        let waiter = Arc::new(Waiter {
            turn: Mutex::new(Turn::Waiting),
            cv: Condvar::new(),
        });
        let lead = {
            let mut queue = self.queue.lock();
            queue.pending.push(Pending {
                batch,
                waiter: waiter.clone(),
            });
            !std::mem::replace(&mut queue.leading, true)
        };
        if !lead {
            let mut turn = waiter.turn.lock();
            loop {
                match std::mem::replace(&mut *turn, Turn::Waiting) {
                    Turn::Waiting => waiter.cv.wait(&mut turn),
                    Turn::Done(result) => return result,
                    Turn::Lead => break,
                }
            }
        }
        self.lead();
        let turn = std::mem::replace(&mut *waiter.turn.lock(), Turn::Waiting);
        match turn {
            Turn::Done(result) => result,
            _ => unreachable!("a leader commits its own write before it stops leading"),
        }
    }

    /// Commits groups of pending writes: one WAL append and (in sync mode) one fsync per group.
    fn lead(&self) {
        let mut buf = Vec::new();
        for _ in 0..LEADER_GROUPS_MAX {
            let group = {
                let mut queue = self.queue.lock();
                if queue.pending.is_empty() {
                    queue.leading = false;
                    return;
                }
                std::mem::take(&mut queue.pending)
            };
            let result = self.commit_group(&group, &mut buf);
            for p in group {
                p.waiter.set(Turn::Done(result.clone()));
            }
        }
        let mut queue = self.queue.lock();
        match queue.pending.first() {
            Some(next) => next.waiter.set(Turn::Lead),
            None => queue.leading = false,
        }
    }

    fn commit_group(&self, group: &[Pending], buf: &mut Vec<u8>) -> Result<()> {
        self.wait_for_room()?;
        let mut wal = self.wal.lock();
        if let Some(cause) = &wal.poisoned {
            return Err(EngineError::WalPoisoned {
                cause: cause.clone(),
            });
        }
        buf.clear();
        let first_seq = self.last_seq.load(Ordering::Acquire) + 1;
        let mut seq = first_seq;
        let mut user_bytes = 0;
        for p in group {
            wal::append_record(buf, seq, wal.synced_seq, &p.batch);
            seq += p.batch.len() as u64;
            user_bytes += p.batch.encoded_len() as u64;
        }
        // A full disk shows here, before anything of the group is written: the group fails
        // and the log takes later writes once there is room. Other errors poison it.
        if let Err(e) = wal.writer.reserve(buf.len() as u64) {
            if !matches!(e, EngineError::WalFull { .. }) {
                wal.poisoned = Some(e.to_string());
            }
            return Err(e);
        }
        let appended = wal
            .writer
            .append(buf)
            .and_then(|()| match self.options.sync {
                SyncMode::Sync => {
                    self.counters.wal_syncs.fetch_add(1, Ordering::Relaxed);
                    wal.writer.sync()?;
                    wal.synced_seq = seq - 1;
                    Ok(())
                }
                _ => Ok(()),
            });
        if let Err(e) = appended {
            // The segment may now end in a partial record, and after a failed fsync the page
            // cache cannot be trusted: refuse further writes rather than risk acknowledging one
            // that recovery would not find.
            wal.poisoned = Some(e.to_string());
            return Err(e);
        }
        let active = self.state().active.clone();
        let mut seq = first_seq;
        for p in group {
            for op in p.batch.ops() {
                active.insert(&op.key, seq, op.value.as_deref());
                seq += 1;
            }
        }
        self.last_seq.store(seq - 1, Ordering::Release);
        self.counters.write_groups.fetch_add(1, Ordering::Relaxed);
        self.counters
            .user_bytes_written
            .fetch_add(user_bytes, Ordering::Relaxed);
        if active.bytes() >= self.options.memtable_bytes {
            // The group is durable; a failed rotation is retried by the next group.
            let _ = self.rotate(&mut wal);
        }
        Ok(())
    }

    /// Waits while too many memtables are waiting to be flushed (write stall).
    fn wait_for_room(&self) -> Result<()> {
        let mut bg = self.background.lock();
        loop {
            if self.state().immutables.len() < self.options.immutable_memtables_max.max(1) {
                return Ok(());
            }
            if let Some(cause) = &bg.flush_error {
                return Err(EngineError::Background {
                    cause: cause.clone(),
                });
            }
            if bg.shutdown {
                return Err(EngineError::Closed);
            }
            if !self.options.background_compaction {
                drop(bg);
                self.flush_pending()?;
                bg = self.background.lock();
                continue;
            }
            self.background_cv.wait_for(&mut bg, BACKGROUND_RETRY);
        }
    }

    /// Seals the active memtable and starts a new WAL segment for its successor.
    fn rotate(&self, wal: &mut WalState) -> Result<()> {
        if self.state().active.is_empty() {
            return Ok(());
        }
        // The next segment first: if it cannot be made (a full disk), nothing has changed and
        // the next group tries again. Recovery ignores it while it is empty.
        let id = wal.writer.id() + 1;
        let writer = WalWriter::create(&self.options.log_fs, &self.wal_dir, id)?;
        // Older segments are always complete, synced and trimmed: only the newest may have a
        // torn tail or reserved space. A failed sync may have dropped the segment's dirty
        // pages: poison the log.
        if let Err(e) = wal.writer.finish() {
            wal.poisoned = Some(e.to_string());
            return Err(e);
        }
        wal.synced_seq = self.last_seq.load(Ordering::Acquire);
        {
            let mut state = self.state.write();
            let mut immutables = state.immutables.clone();
            immutables.push(state.active.clone());
            *state = Arc::new(State {
                active: Arc::new(Memtable::new(vec![id])),
                immutables,
                version: state.version.clone(),
            });
        }
        wal.writer = writer;
        self.notify_background();
        Ok(())
    }

    // ---- flush --------------------------------------------------------------------------

    fn flush_loop(&self) {
        let mut bg = self.background.lock();
        loop {
            if bg.shutdown {
                return;
            }
            let state = self.state();
            let l0_full = state.version.levels[0].len() >= self.options.l0_stop_trigger.max(1);
            if state.immutables.is_empty() || l0_full {
                self.background_cv.wait_for(&mut bg, BACKGROUND_RETRY);
                continue;
            }
            drop(bg);
            let result = self.flush_oldest(&state.immutables[0]);
            bg = self.background.lock();
            match result {
                Ok(()) => bg.flush_error = None,
                Err(e) => {
                    self.counters.flush_errors.fetch_add(1, Ordering::Relaxed);
                    self.counters.last_errors.lock()[0] = Some((e.to_string(), wall_ms()));
                    bg.flush_error = Some(e.to_string());
                    self.background_cv.wait_for(&mut bg, BACKGROUND_RETRY);
                }
            }
        }
    }

    /// Flushes every rotated memtable in the caller's thread, then runs the compactions the
    /// shape calls for (used when there are no background threads).
    fn flush_pending(&self) -> Result<()> {
        loop {
            let state = self.state();
            let Some(mem) = state.immutables.first() else {
                break;
            };
            self.flush_oldest(mem)?;
        }
        self.compact_while_needed()
    }

    /// Writes the oldest rotated memtable to a level-0 table, commits it with the new
    /// `last_flushed_seq` in one LMDB transaction, then deletes its WAL segments.
    fn flush_oldest(&self, mem: &Arc<Memtable>) -> Result<()> {
        let _flushing = self.flushing.lock();
        let _busy = Busy::mark(&self.counters.flushing);
        if !self
            .state()
            .immutables
            .first()
            .is_some_and(|m| Arc::ptr_eq(m, mem))
        {
            return Ok(()); // Another thread flushed it.
        }
        let mut table = None;
        let mut entries = IndexEntries::default();
        if !mem.is_empty() {
            let id = self.next_table_id.fetch_add(1, Ordering::AcqRel);
            let mut writer = TableWriter::create(&self.tables_dir, id, self.options.block_bytes)?;
            let mut source = MemSource::new(mem.clone(), Bound::Unbounded, Bound::Unbounded);
            let written = (|| {
                while let Some(e) = source.next_entry()? {
                    writer.add(&e.key, e.seq, e.value.as_deref())?;
                }
                Ok::<_, EngineError>(())
            })();
            if let Err(e) = written {
                writer.abandon();
                return Err(e);
            }
            let (meta, handles, _) = writer.finish(0, self.options.bloom_bits_per_key)?;
            entries = IndexEntries::from_handles(&handles);
            self.counters
                .table_bytes_written
                .fetch_add(meta.file_bytes, Ordering::Relaxed);
            table = Some(Table::open(&self.tables_dir, meta)?);
        }
        let added: Vec<_> = table.iter().map(|t| (&t.meta, &entries)).collect();
        let forgotten = std::mem::take(&mut *self.graveyard.lock());
        let committed = self.index.commit(&Edit {
            added,
            removed: Vec::new(),
            forgotten: forgotten.clone(),
            last_flushed_seq: Some(mem.max_seq()),
            next_table_id: self.next_table_id.load(Ordering::Acquire),
        });
        if let Err(e) = committed {
            self.graveyard.lock().extend(forgotten);
            return Err(e);
        }
        let table = table.map(|mut t| {
            t.mirror_index(entries, &self.mirrored, self.options.index_cache_bytes);
            Arc::new(t)
        });
        {
            let mut state = self.state.write();
            let immutables = state
                .immutables
                .iter()
                .filter(|m| !Arc::ptr_eq(m, mem))
                .cloned()
                .collect();
            let version = match &table {
                Some(t) => Arc::new(state.version.apply(&[], std::slice::from_ref(t))),
                None => state.version.clone(),
            };
            *state = Arc::new(State {
                active: state.active.clone(),
                immutables,
                version,
            });
        }
        for &id in &mem.wal_segments {
            let path = wal::segment_path(&self.wal_dir, id);
            // A segment left behind is harmless: its records are at or below last_flushed_seq.
            let _ = fs::remove_file(path);
        }
        let _ = sync_dir(&self.wal_dir);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.notify_background();
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.check_open()?;
        {
            let mut wal = self.wal.lock();
            if let Some(cause) = &wal.poisoned {
                return Err(EngineError::WalPoisoned {
                    cause: cause.clone(),
                });
            }
            self.rotate(&mut wal)?;
        }
        // Only one thread may flush (memtables must reach the manifest oldest first): the
        // background flusher when there is one, else this thread.
        if !self.options.background_compaction {
            return self.flush_pending();
        }
        // Wait for the newest memtable rotated so far, not for memtables rotated later.
        let Some(target) = self.state().immutables.last().cloned() else {
            return Ok(());
        };
        let mut bg = self.background.lock();
        loop {
            if !self
                .state()
                .immutables
                .iter()
                .any(|m| Arc::ptr_eq(m, &target))
            {
                return Ok(());
            }
            if let Some(cause) = &bg.flush_error {
                return Err(EngineError::Background {
                    cause: cause.clone(),
                });
            }
            if bg.shutdown {
                return Err(EngineError::Closed);
            }
            self.background_cv.wait_for(&mut bg, BACKGROUND_RETRY);
        }
    }

    // ---- compaction ---------------------------------------------------------------------

    fn shape(&self) -> Shape {
        Shape {
            l0_trigger: self.options.l0_compaction_trigger,
            level1_bytes: self.options.level1_bytes,
            ratio: self.options.level_size_ratio,
        }
    }

    fn compact_loop(&self) {
        let mut bg = self.background.lock();
        loop {
            if bg.shutdown {
                return;
            }
            drop(bg);
            let result = self.compact_while_needed();
            bg = self.background.lock();
            match result {
                Ok(()) => bg.compaction_error = None,
                Err(e) => {
                    self.counters
                        .compaction_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.counters.last_errors.lock()[1] = Some((e.to_string(), wall_ms()));
                    bg.compaction_error = Some(e.to_string());
                }
            }
            if !bg.shutdown {
                self.background_cv.wait_for(&mut bg, BACKGROUND_RETRY);
            }
        }
    }

    fn compact_while_needed(&self) -> Result<()> {
        loop {
            if self.background.lock().shutdown {
                return Ok(());
            }
            let mut cursors = self.compaction.lock();
            let version = self.state().version.clone();
            let Some(task) = version.pick(&self.shape(), &mut cursors) else {
                return Ok(());
            };
            self.run_compaction(task)?;
        }
    }

    fn compact(&self) -> Result<()> {
        self.flush()?;
        let _cursors = self.compaction.lock();
        let version = self.state().version.clone();
        match version.full() {
            Some(task) => self.run_compaction(task),
            None => Ok(()),
        }
    }

    /// Merges the task's inputs into new tables at its output level and swaps them in with one
    /// LMDB transaction. Shadowed versions are dropped; tombstones only at the bottom, and only
    /// where the tombstone policy allows. The caller holds `self.compaction`.
    fn run_compaction(&self, task: CompactionTask) -> Result<()> {
        let _busy = Busy::mark(&self.counters.compacting);
        let mut sources: Vec<Box<dyn Source>> = Vec::with_capacity(task.inputs.len());
        for t in &task.inputs {
            sources.push(Box::new(TableSource::new(
                t.clone(),
                &self.index,
                self.cache.clone(),
                false,
                Bound::Unbounded,
                Bound::Unbounded,
            )?));
        }
        let mut merge = Merge::new(sources);
        let mut outputs: Vec<(super::table::TableMeta, IndexEntries)> = Vec::new();
        let mut writer: Option<TableWriter> = None;
        let result = (|| {
            while let Some(e) = merge.next_newest()? {
                if e.value.is_none()
                    && task.bottom
                    && self.options.tombstone_policy.may_drop(&e.key, e.seq)
                {
                    continue;
                }
                if writer
                    .as_ref()
                    .is_some_and(|w| w.bytes() >= self.options.table_bytes)
                {
                    let w = writer.take().expect("checked");
                    let (meta, handles, _) =
                        w.finish(task.output_level, self.options.bloom_bits_per_key)?;
                    outputs.push((meta, IndexEntries::from_handles(&handles)));
                }
                if writer.is_none() {
                    let id = self.next_table_id.fetch_add(1, Ordering::AcqRel);
                    writer = Some(TableWriter::create(
                        &self.tables_dir,
                        id,
                        self.options.block_bytes,
                    )?);
                }
                let w = writer.as_mut().expect("just created");
                w.add(&e.key, e.seq, e.value.as_deref())?;
            }
            if let Some(w) = writer.take() {
                let (meta, handles, _) =
                    w.finish(task.output_level, self.options.bloom_bits_per_key)?;
                outputs.push((meta, IndexEntries::from_handles(&handles)));
            }
            Ok::<_, EngineError>(())
        })();
        if let Err(e) = result {
            if let Some(w) = writer.take() {
                w.abandon();
            }
            for (meta, _) in &outputs {
                let _ = fs::remove_file(table_path(&self.tables_dir, meta.id));
            }
            return Err(e);
        }
        let mut opened = Vec::with_capacity(outputs.len());
        for (meta, _) in &outputs {
            self.counters
                .table_bytes_written
                .fetch_add(meta.file_bytes, Ordering::Relaxed);
            opened.push(Table::open(&self.tables_dir, meta.clone())?);
        }
        let removed: Vec<u64> = task.inputs.iter().map(|t| t.id()).collect();
        let forgotten = std::mem::take(&mut *self.graveyard.lock());
        let committed = self.index.commit(&Edit {
            added: outputs.iter().map(|(m, e)| (m, e)).collect(),
            removed: removed.clone(),
            forgotten: forgotten.clone(),
            last_flushed_seq: None,
            next_table_id: self.next_table_id.load(Ordering::Acquire),
        });
        if let Err(e) = committed {
            self.graveyard.lock().extend(forgotten);
            return Err(e);
        }
        let tables: Vec<_> = opened
            .into_iter()
            .zip(outputs)
            .map(|(mut t, (_, entries))| {
                t.mirror_index(entries, &self.mirrored, self.options.index_cache_bytes);
                Arc::new(t)
            })
            .collect();
        {
            let mut state = self.state.write();
            *state = Arc::new(State {
                active: state.active.clone(),
                immutables: state.immutables.clone(),
                version: Arc::new(state.version.apply(&removed, &tables)),
            });
        }
        for t in &task.inputs {
            t.mark_obsolete(&self.graveyard);
        }
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        self.notify_background();
        Ok(())
    }

    // ---- periodic sync ------------------------------------------------------------------

    fn periodic_sync_loop(&self) {
        let SyncMode::Periodic(period) = self.options.sync else {
            return;
        };
        let mut bg = self.background.lock();
        loop {
            self.background_cv.wait_for(&mut bg, period);
            if bg.shutdown {
                return;
            }
            // Never hold `background` while taking `wal`: rotation takes them the other way.
            drop(bg);
            {
                let mut wal = self.wal.lock();
                if wal.poisoned.is_none() {
                    self.counters.wal_syncs.fetch_add(1, Ordering::Relaxed);
                    // Appends happen under the same lock: everything up to `last_seq` is in.
                    let appended = self.last_seq.load(Ordering::Acquire);
                    match wal.writer.sync() {
                        Ok(()) => wal.synced_seq = appended,
                        Err(e) => wal.poisoned = Some(e.to_string()),
                    }
                }
            }
            bg = self.background.lock();
        }
    }

    // ---- reads --------------------------------------------------------------------------

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.lookup(key, false)? {
            Lookup::Found(value) => Ok(value),
            Lookup::NotInMemory => unreachable!("a read that may use the disk always answers"),
        }
    }

    /// Looks `key` up in the memtables, then the tables newest first; with `memory_only`, a
    /// lookup that would read a block or the block index from disk stops with `NotInMemory`.
    fn lookup(&self, key: &[u8], memory_only: bool) -> Result<Lookup> {
        self.check_open()?;
        validate_key(key, &self.options.limits)?;
        let state = self.state();
        let hash = key_hash(key);
        if let Some(slot) = state.active.get(key, hash) {
            return Ok(Lookup::Found(slot.value_vec()));
        }
        for mem in state.immutables.iter().rev() {
            if let Some(slot) = mem.get(key, hash) {
                return Ok(Lookup::Found(slot.value_vec()));
            }
        }
        let mut rtxn = None;
        let version = &state.version;
        let candidates = version.levels[0]
            .iter()
            .chain(version.levels[1..].iter().filter_map(|level| {
                let i = level.partition_point(|t| t.meta.max_key.as_slice() < key);
                level.get(i)
            }));
        for table in candidates {
            if table.may_contain(key, hash) {
                match self.table_get(table, key, hash, &mut rtxn, memory_only)? {
                    TableGet::Found(value) => return Ok(Lookup::Found(value)),
                    TableGet::Absent => {}
                    TableGet::NotInMemory => return Ok(Lookup::NotInMemory),
                }
            }
        }
        Ok(Lookup::Found(None))
    }

    fn table_get<'a>(
        &'a self,
        table: &Table,
        key: &[u8],
        hash: u64,
        rtxn: &mut Option<heed::RoTxn<'a, heed::WithTls>>,
        memory_only: bool,
    ) -> Result<TableGet> {
        let mut found = TableGet::Absent;
        let visit = |offset, len| {
            let block = if memory_only {
                match self.cache.cached(table, offset) {
                    Some(block) => block,
                    None => {
                        found = TableGet::NotInMemory;
                        return Ok(false);
                    }
                }
            } else {
                self.cache.block(table, offset, len, true)?
            };
            let i = match block.probe(key, hash) {
                Probe::Found(i) => i,
                // Absent here; a later block can hold it only if it sorts after this one.
                Probe::Absent if !block.is_empty() && block.key(block.len() - 1) >= key => {
                    return Ok(false)
                }
                Probe::Absent | Probe::Search => block.seek(key),
            };
            if i == block.len() {
                // The key is past this block's last key: it can only be in a later block.
                return Ok(true);
            }
            let e = block.entry(i);
            if e.key == key {
                found = TableGet::Found(e.value.map(<[u8]>::to_vec));
            }
            Ok(false)
        };
        match table.mirrored_index() {
            Some(entries) => entries.visit(Some(key), visit)?,
            // The block index in LMDB is memory-mapped: reading it may fault pages in.
            None if memory_only => return Ok(TableGet::NotInMemory),
            None => {
                if rtxn.is_none() {
                    *rtxn = Some(self.index.read_txn()?);
                }
                let rtxn = rtxn.as_ref().expect("just set");
                self.index
                    .visit_blocks(rtxn, table.id(), Some(key), visit)?;
            }
        }
        Ok(found)
    }

    fn scan(&self, range: KeyRange) -> Result<Scan> {
        self.check_open()?;
        let (start, end) = range;
        let state = self.state();
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        let mems = std::iter::once(&state.active).chain(state.immutables.iter().rev());
        for mem in mems {
            sources.push(Box::new(MemSource::new(
                mem.clone(),
                start.clone(),
                end.clone(),
            )));
        }
        let in_range = |t: &Table| {
            let after_start = match &start {
                Bound::Included(s) | Bound::Excluded(s) => {
                    t.meta.max_key.as_slice() >= s.as_slice()
                }
                Bound::Unbounded => true,
            };
            let before_end = match &end {
                Bound::Included(e) => t.meta.min_key.as_slice() <= e.as_slice(),
                Bound::Excluded(e) => t.meta.min_key.as_slice() < e.as_slice(),
                Bound::Unbounded => true,
            };
            after_start && before_end
        };
        for table in state.version.tables().filter(|t| in_range(t)) {
            sources.push(Box::new(TableSource::new(
                table.clone(),
                &self.index,
                self.cache.clone(),
                true,
                start.clone(),
                end.clone(),
            )?));
        }
        let mut merge = Merge::new(sources);
        Ok(Box::new(std::iter::from_fn(move || loop {
            match merge.next_newest() {
                Err(e) => return Some(Err(e)),
                Ok(None) => return None,
                Ok(Some(Entry { value: None, .. })) => continue,
                Ok(Some(Entry {
                    key,
                    value: Some(v),
                    ..
                })) => return Some(Ok((key, v))),
            }
        })))
    }

    fn stats(&self) -> Stats {
        let state = self.state();
        let c = &self.counters;
        let [flush_error, compaction_error] = c.last_errors.lock().clone();
        Stats {
            last_seq: self.last_seq.load(Ordering::Acquire),
            memtable_bytes: state.active.bytes() as u64,
            immutable_memtables: state.immutables.len() as u64,
            wal_segments: wal::list_segments(&self.wal_dir).map_or(0, |s| s.len() as u64),
            tables_per_level: state
                .version
                .levels
                .iter()
                .map(|l| l.len() as u64)
                .collect(),
            bytes_per_level: (0..LEVELS).map(|l| state.version.level_bytes(l)).collect(),
            block_index_entries: self.index.block_index_entries().unwrap_or(0),
            index_cache_bytes: self.mirrored.load(Ordering::Relaxed),
            bloom_bytes: state.version.tables().map(|t| t.bloom_bytes() as u64).sum(),
            cache_bytes: self.cache.bytes(),
            cache_hits: self.cache.hits(),
            cache_misses: self.cache.misses(),
            flushes: c.flushes.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            table_bytes_written: c.table_bytes_written.load(Ordering::Relaxed),
            user_bytes_written: c.user_bytes_written.load(Ordering::Relaxed),
            wal_syncs: c.wal_syncs.load(Ordering::Relaxed),
            write_groups: c.write_groups.load(Ordering::Relaxed),
            flush_job: JobStats {
                busy: c.flushing.load(Ordering::Relaxed),
                errors: c.flush_errors.load(Ordering::Relaxed),
                last_error_at_ms: flush_error.as_ref().map(|e| e.1),
                last_error: flush_error.map(|e| e.0),
            },
            compaction_job: JobStats {
                busy: c.compacting.load(Ordering::Relaxed),
                errors: c.compaction_errors.load(Ordering::Relaxed),
                last_error_at_ms: compaction_error.as_ref().map(|e| e.1),
                last_error: compaction_error.map(|e| e.0),
            },
        }
    }
}

impl Store for Engine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn get_cached(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        Ok(match self.inner.lookup(key, true)? {
            Lookup::Found(value) => Some(value),
            Lookup::NotInMemory => None,
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(batch)
    }

    fn scan(&self, range: KeyRange) -> Result<Scan> {
        self.inner.scan(range)
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn compact(&self) -> Result<()> {
        self.inner.compact()
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }

    fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut bg = self.inner.background.lock();
            bg.shutdown = true;
            self.inner.background_cv.notify_all();
        }
        for handle in self.threads.lock().drain(..) {
            let _ = handle.join();
        }
        let mut wal = self.inner.wal.lock();
        if wal.poisoned.is_some() {
            return Ok(());
        }
        wal.writer.finish()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = Store::close(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index whose last flushed sequence number is the largest there is (only damage makes
    /// one) is refused as corrupt when the engine opens, instead of overflowing at the first
    /// write.
    #[test]
    fn an_index_that_leaves_no_sequence_number_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let options = || Options {
            index_map_bytes: 64 << 20,
            ..Options::default()
        };
        drop(Engine::open(dir.path(), options()).unwrap());
        let index = Index::open(&dir.path().join("index"), 64 << 20).unwrap();
        index
            .commit(&Edit {
                last_flushed_seq: Some(u64::MAX),
                next_table_id: 1,
                ..Edit::default()
            })
            .unwrap();
        drop(index);
        match Engine::open(dir.path(), options()) {
            Err(EngineError::IndexCorrupt { reason, .. }) => {
                assert!(reason.contains("leaves none"), "{reason}")
            }
            Err(other) => panic!("expected IndexCorrupt, got {other}"),
            Ok(_) => panic!("an engine opened on an index without sequence numbers left"),
        }
    }
}
