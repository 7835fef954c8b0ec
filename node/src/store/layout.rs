//! The layout as a node keeps it: its live versions, the sync marks it knows, and its
//! acceptor's state for the slot being decided, in one file (`layout` in the node's
//! directory), replaced atomically and durably before any answer that depends on it leaves
//! (a promise or an acceptance must survive a crash, or the node could promise twice).
//!
//! The file is a short magic and a CBOR map; anything else is refused at open, naming the file.

use std::path::{Path, PathBuf};

use kvctl::model::layout::Layout;
use serde::{Deserialize, Serialize};

use crate::logic::commit::Acceptor;
use crate::logic::layouts::LayoutHistory;

/// The file's first bytes (and its format's version).
const MAGIC: &[u8; 9] = b"KVLAYOUT1";

/// The file's name in a node's directory.
pub const LAYOUT_FILE: &str = "layout";

/// What a node keeps of the layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutState {
    pub history: LayoutHistory,
    /// The slot (the version being decided) and this node's acceptor state for it.
    pub acceptor: Option<(u64, Acceptor<Layout>)>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutFileError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a kvctl layout file ({reason}); it was damaged or written by another \
         program: restore it from a backup, or wipe the node's directory and join it as a new \
         node",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
}

impl LayoutState {
    /// The state in `dir`, if the node has one.
    pub fn open(dir: &Path) -> Result<Option<LayoutState>, LayoutFileError> {
        let path = dir.join(LAYOUT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LayoutFileError::Io {
                    what: "reading",
                    path,
                    source,
                })
            }
        };
        let corrupt = |reason: String| LayoutFileError::Corrupt {
            path: path.clone(),
            reason,
        };
        let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(corrupt("it does not start with the layout magic".into()));
        };
        ciborium::from_reader(body)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Writes the state to `dir`, durably: once this returns, a crash finds it.
    pub fn save(&self, dir: &Path) -> Result<(), LayoutFileError> {
        let mut bytes = MAGIC.to_vec();
        ciborium::into_writer(self, &mut bytes).expect("a layout state encodes");
        let path = dir.join(LAYOUT_FILE);
        kvctl::storage::durable_file::write(&path, &bytes).map_err(|source| LayoutFileError::Io {
            what: "writing",
            path,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use kvctl::model::layout::{Change, DEFAULT_DC, DEFAULT_RACK};

    use super::*;
    use crate::logic::commit::Ballot;

    fn join(i: usize) -> Change {
        Change::Join {
            id: format!("node-{i}"),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
            dc: DEFAULT_DC.into(),
            rack: DEFAULT_RACK.into(),
            vnodes: 8,
            tokens: Vec::new(),
        }
    }

    #[test]
    fn the_state_survives_a_reopen_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LayoutState::open(dir.path()).unwrap().is_none());
        let mut layout = Layout::initial(3, []);
        for i in 1..=3 {
            layout = layout.plan(&[join(i)]).unwrap();
        }
        let mut history = LayoutHistory::new(layout.clone());
        let next = layout.plan(&[join(4)]).unwrap();
        let mut acceptor = Acceptor::default();
        acceptor.on_prepare(Ballot {
            round: 3,
            node: "node-2".into(),
        });
        acceptor.on_accept(
            Ballot {
                round: 3,
                node: "node-2".into(),
            },
            next.clone(),
        );
        history.commit(next.clone(), &BTreeMap::new()).unwrap();
        let state = LayoutState {
            history,
            acceptor: Some((next.version, acceptor.clone())),
        };
        state.save(dir.path()).unwrap();
        let back = LayoutState::open(dir.path()).unwrap().unwrap();
        assert_eq!(back.history.live_versions(), vec![4, 5]);
        assert_eq!(back.history.current(), &next);
        assert_eq!(back.acceptor, Some((5, acceptor)));

        let path = dir.path().join(LAYOUT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes.truncate(at);
        std::fs::write(&path, &bytes).unwrap();
        let e = LayoutState::open(dir.path()).unwrap_err();
        assert!(matches!(e, LayoutFileError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("layout"), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        let e = LayoutState::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
    }
}
