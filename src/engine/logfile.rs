//! The file layer the WAL writes through, so tests can inject faults (see `faultfs`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// An append-only file.
pub trait LogFile: Send {
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes every appended byte durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// Creates log files.
pub trait LogFs: Send + Sync {
    /// Creates a new, empty file (failing if it exists) and makes its directory entry durable.
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsLogFs;

struct OsLogFile(File);

impl LogFile for OsLogFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl LogFs for OsLogFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(Box::new(OsLogFile(file)))
    }
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
