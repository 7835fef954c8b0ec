//! The cluster home: where a local cluster keeps its description, certificates and node
//! directories, and where client commands find the cluster.
//!
//! ```text
//! <home>/cluster.json          nodes (id, address, directory) and the replication factor
//! <home>/certs/ca.{pem,key}    the cluster CA
//! <home>/certs/client.{pem,key}
//! <home>/nodes/<id>/           a node's home: data/, certs/, tokens, node.pid, node.log
//! ```

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable naming the home.
pub const HOME_ENV: &str = "KVCTL_HOME";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: String,
    pub addr: SocketAddr,
    /// The node's home, relative to the cluster home.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    pub replication: usize,
    pub nodes: Vec<NodeEntry>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    #[error("no cluster at {}: {} is missing (start one with `kvctl cluster up --home {}`)", home.display(), file.display(), home.display())]
    NoCluster { home: PathBuf, file: PathBuf },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid cluster file: {reason}", path.display())]
    Bad { path: PathBuf, reason: String },
    #[error("no home directory: set --home or {HOME_ENV}")]
    NoHome,
}

/// `--home` if given, else `$KVCTL_HOME`, else `~/.kvctl`.
///
/// The result is absolute, so node processes can be recognized by their `--home` argument
/// whatever directory a command runs from.
pub fn resolve(home: Option<&Path>) -> Result<PathBuf, HomeError> {
    let home = match home {
        Some(h) => h.to_path_buf(),
        None => match std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".kvctl"))
                .ok_or(HomeError::NoHome)?,
        },
    };
    Ok(std::path::absolute(&home).unwrap_or(home))
}

pub fn cluster_file(home: &Path) -> PathBuf {
    home.join("cluster.json")
}

pub fn certs_dir(home: &Path) -> PathBuf {
    home.join("certs")
}

pub fn read(home: &Path) -> Result<ClusterFile, HomeError> {
    let path = cluster_file(home);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HomeError::NoCluster {
                home: home.to_path_buf(),
                file: path,
            })
        }
        Err(source) => {
            return Err(HomeError::Io {
                action: "reading",
                path,
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| HomeError::Bad {
        path,
        reason: e.to_string(),
    })
}

/// Writes the cluster file atomically (temporary file, fsync, rename).
pub fn write(home: &Path, cluster: &ClusterFile) -> Result<(), HomeError> {
    let path = cluster_file(home);
    let tmp = path.with_extension("json.tmp");
    let io = |action, source| HomeError::Io {
        action,
        path: path.clone(),
        source,
    };
    fs::create_dir_all(home).map_err(|e| io("creating the home of", e))?;
    let mut file = fs::File::create(&tmp).map_err(|e| io("writing", e))?;
    let text = serde_json::to_string_pretty(cluster).expect("the cluster file serializes");
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("writing", e))?;
    fs::rename(&tmp, &path).map_err(|e| io("renaming", e))
}
