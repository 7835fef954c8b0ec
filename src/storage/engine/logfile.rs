//! The file layer the WAL writes through, so tests can inject faults (see `faultfs`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// An append-only file.
pub trait LogFile: Send {
    /// Makes room for `additional` more bytes after the appended ones, so that appending them
    /// cannot run out of space. On error (a full disk) nothing has been appended and the file
    /// can go on being appended to once there is room.
    fn reserve(&mut self, additional: u64) -> io::Result<()> {
        let _ = additional;
        Ok(())
    }
    /// Appends `buf`. After an error the file may end in part of it: a log must not take
    /// further appends.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes every appended byte durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Makes every appended byte durable and ends the file right after them, dropping space
    /// reserved ahead: the file will not be appended to again.
    fn finish(&mut self) -> io::Result<()>;
}

/// Creates log files.
pub trait LogFs: Send + Sync {
    /// Creates a new, empty file (failing if it exists) and makes its directory entry durable.
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>>;
}

/// Zeros written ahead of a log file's end, a chunk at a time. Appends then overwrite blocks the
/// file already has, so the fsync that follows them flushes their data alone; growing the file
/// (a metadata change that costs a journal commit, and another device write) happens once per
/// chunk instead of on every sync.
pub const PREALLOCATE_CHUNK_BYTES: u64 = 1 << 20;

/// The real file system. Files are preallocated by [`PREALLOCATE_CHUNK_BYTES`], so they may end
/// in zeros until [`LogFile::finish`] trims them.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsLogFs;

struct OsLogFile {
    file: File,
    /// End of the appended bytes.
    len: u64,
    /// End of the zeros written ahead of `len`.
    zeroed: u64,
}

impl LogFile for OsLogFile {
    fn reserve(&mut self, additional: u64) -> io::Result<()> {
        let end = self.len + additional;
        if end <= self.zeroed {
            return Ok(());
        }
        // Zeros up to the end of the chunk the bytes will end in. The file system takes the
        // blocks now (or says it is full); what was zeroed stays zeroed if it fails midway.
        let target = end.div_ceil(PREALLOCATE_CHUNK_BYTES) * PREALLOCATE_CHUNK_BYTES;
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        while self.zeroed < target {
            let n = (target - self.zeroed).min(ZEROS.len() as u64) as usize;
            if let Err(e) = self.file.write_all_at(&ZEROS[..n], self.zeroed) {
                // Short of a whole chunk, but the bytes asked for may have room already.
                return if self.zeroed >= end { Ok(()) } else { Err(e) };
            }
            self.zeroed += n as u64;
        }
        Ok(())
    }

    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.reserve(buf.len() as u64)?;
        self.file.write_all_at(buf, self.len)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.zeroed = self.len;
        self.file.sync_all()
    }
}

impl LogFs for OsLogFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        if let Some(dir) = path.parent() {
            if let Err(e) = sync_dir(dir) {
                // Not left behind to block the next attempt with the same name.
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        }
        Ok(Box::new(OsLogFile {
            file,
            len: 0,
            zeroed: 0,
        }))
    }
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
