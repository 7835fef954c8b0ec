//! A fault-injecting log file layer that simulates power loss.
//!
//! Appended bytes stay in memory until `sync`, as they would in the page cache. [`FaultFs::crash`]
//! then simulates losing power: every byte not yet synced is discarded, except for a random prefix
//! per file (a torn write that partly reached the disk), and every later append or sync fails.
//! Whatever the engine acknowledged in `sync` mode must survive this.
//!
//! [`FaultFs::set_space_left`] simulates a disk filling up: log files cannot grow past it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::logfile::{sync_dir, LogFile, LogFs};

#[derive(Default)]
struct Shared {
    crashed: bool,
    files: Vec<Arc<Mutex<FileState>>>,
    /// Crash when this many more appends have been made: (appends left, torn seed).
    crash_at_append: Option<(u64, u64)>,
    discarded: u64,
    /// Bytes the log files may still take (None: no limit).
    space_left: Option<u64>,
}

struct FileState {
    file: File,
    unsynced: Vec<u8>,
}

impl Shared {
    fn crash(&mut self, torn_seed: u64) {
        self.crashed = true;
        let mut seed = torn_seed;
        for file in &self.files {
            let mut state = file.lock();
            let unsynced = std::mem::take(&mut state.unsynced);
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let kept = if unsynced.is_empty() {
                0
            } else {
                (seed >> 33) as usize % unsynced.len()
            };
            // A torn write: a prefix of what was never synced still lands on the disk.
            let _ = state.file.write_all(&unsynced[..kept]);
            let _ = state.file.sync_data();
            self.discarded += (unsynced.len() - kept) as u64;
        }
    }
}

/// See the module documentation.
#[derive(Clone, Default)]
pub struct FaultFs {
    shared: Arc<Mutex<Shared>>,
}

impl FaultFs {
    pub fn new() -> Self {
        FaultFs::default()
    }

    /// Simulates power loss now. `torn_seed` picks how much of each file's unsynced tail reaches
    /// the disk (deterministically).
    pub fn crash(&self, torn_seed: u64) {
        self.shared.lock().crash(torn_seed);
    }

    /// Simulates power loss right after the `appends`-th append from now, so that the write in
    /// flight is lost (deterministically, whatever the thread timing).
    pub fn crash_at_append(&self, appends: u64, torn_seed: u64) {
        self.shared.lock().crash_at_append = Some((appends.max(1), torn_seed));
    }

    pub fn crashed(&self) -> bool {
        self.shared.lock().crashed
    }

    /// Lets log files take only `bytes` more (None: no limit); reserving more fails as on a full
    /// disk (ENOSPC).
    pub fn set_space_left(&self, bytes: Option<u64>) {
        self.shared.lock().space_left = bytes;
    }

    /// Unsynced bytes discarded by crashes so far.
    pub fn discarded_bytes(&self) -> u64 {
        self.shared.lock().discarded
    }
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss")
}

/// A full disk: ENOSPC (Linux), "No space left on device".
fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28)
}

struct FaultFile {
    fs: Arc<Mutex<Shared>>,
    state: Arc<Mutex<FileState>>,
}

impl LogFile for FaultFile {
    fn reserve(&mut self, additional: u64) -> io::Result<()> {
        let shared = self.fs.lock();
        if shared.crashed {
            return Err(power_lost());
        }
        match shared.space_left {
            Some(left) if additional > left => Err(no_space()),
            _ => Ok(()),
        }
    }

    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut shared = self.fs.lock();
        if shared.crashed {
            return Err(power_lost());
        }
        if let Some(left) = &mut shared.space_left {
            if buf.len() as u64 > *left {
                return Err(no_space());
            }
            *left -= buf.len() as u64;
        }
        self.state.lock().unsynced.extend_from_slice(buf);
        if let Some((left, seed)) = shared.crash_at_append {
            if left <= 1 {
                shared.crash(seed);
                return Err(power_lost());
            }
            shared.crash_at_append = Some((left - 1, seed));
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let shared = self.fs.lock();
        if shared.crashed {
            return Err(power_lost());
        }
        let mut state = self.state.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        state.file.write_all(&unsynced)?;
        state.file.sync_data()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.sync()
    }
}

impl LogFs for FaultFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        let mut shared = self.shared.lock();
        if shared.crashed {
            return Err(power_lost());
        }
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let state = Arc::new(Mutex::new(FileState {
            file,
            unsynced: Vec::new(),
        }));
        shared.files.push(state.clone());
        Ok(Box::new(FaultFile {
            fs: self.shared.clone(),
            state,
        }))
    }
}
