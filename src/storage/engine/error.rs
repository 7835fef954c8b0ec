//! The engine's one error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything the engine can report. Errors are `Clone` so that one failed group commit can be
/// handed to every writer of the group; I/O sources are shared through `Arc` for that reason.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("key is empty; keys must be 1 to {max} bytes")]
    EmptyKey { max: usize },

    #[error("key is {len} bytes, over the limit of {max} bytes (key_bytes_max)")]
    KeyTooLarge { len: usize, max: usize },

    #[error("value is {len} bytes, over the limit of {max} bytes (value_bytes_max)")]
    ValueTooLarge { len: usize, max: usize },

    #[error("write batch is {len} bytes, over the limit of {max} bytes (batch_bytes_max)")]
    BatchTooLarge { len: usize, max: usize },

    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },

    #[error("write-ahead log {} is corrupt at byte offset {offset}: {reason}", file.display())]
    WalCorrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    #[error(
        "checksum mismatch in {} at byte offset {offset} (expected {expected:#010x}, got {got:#010x})",
        file.display()
    )]
    ChecksumMismatch {
        file: PathBuf,
        offset: u64,
        expected: u32,
        got: u32,
    },

    #[error("table {} is corrupt at byte offset {offset}: {reason}", file.display())]
    TableCorrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    #[error("index (LMDB) error while {action}: {message}")]
    Index {
        action: &'static str,
        message: String,
    },

    #[error("index (LMDB) in {} is corrupt: {reason}", dir.display())]
    IndexCorrupt { dir: PathBuf, reason: String },

    #[error("engine directory {} is already open (lock held on {})", dir.display(), lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },

    #[error(
        "no room to grow the write-ahead log {}: {source}; nothing was written, and writes \
         resume once there is room",
        file.display()
    )]
    WalFull {
        file: PathBuf,
        source: Arc<io::Error>,
    },

    #[error("the write-ahead log failed earlier and refuses writes until the engine is reopened: {cause}")]
    WalPoisoned { cause: String },

    #[error("background work failed: {cause}")]
    Background { cause: String },

    #[error("the engine is closed")]
    Closed,

    #[error("invalid engine options: {reason}")]
    BadOptions { reason: String },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        EngineError::Io {
            action,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn index(action: &'static str, source: heed::Error) -> Self {
        EngineError::Index {
            action,
            message: source.to_string(),
        }
    }
}
