//! A node's start, before it serves: who it is (its certificate and the directory it owns),
//! its dot lease, its tokens (kept, or chosen against the ring its seeds report), its gossip
//! generation, and its data opened at this build's format (migrating an older one).
//!
//! Everything a start decides is written down durably in the node's directory before the node
//! serves, so the next start finds the same id, tokens and lease.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::wall_ms;

use kvctl::model::context::{ClusterSecret, SecretError, SECRET_FILE};
use kvctl::model::ring::{allocate_tokens, Ring};
use kvctl::storage::engine::Engine;
use kvctl::wire::certs::{self, CertError};
use kvctl::wire::proto::{Request, Response};
use kvctl::wire::tls::{Identity, TlsError};
use kvctl::wire::transport::{Transport, TransportError};

use crate::store::lease::{DotLease, LeaseError};
use crate::store::migration;

/// How long a joining node waits for a seed to tell it the ring.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a starting node waits for a seed to say whether its id is taken.
pub const ID_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a node cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("reading the node's certificates: {0}")]
    Certificate(#[from] CertError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(
        "--node-id {given}: {} was made for node {id}; start it as {id}, or make a certificate \
         for {given} with `kvctl cert node --id {given}`",
        cert.display()
    )]
    IdNotCertificate {
        given: String,
        id: String,
        cert: PathBuf,
    },
    #[error("{} belongs to node {kept}, but its certificate is for node {id}", dir.display())]
    DirectoryOfAnotherNode {
        dir: PathBuf,
        kept: String,
        id: String,
    },
    #[error(
        "node id {id} is in use by the node at {addr} (up, incarnation {theirs:016x}; this \
         directory is incarnation {ours:016x}): node ids must be unique. Give this node its own \
         certificate (`kvctl cert node --id <new id>`), or stop the other node and wait until \
         the cluster sees it down"
    )]
    IdInUse {
        id: String,
        addr: SocketAddr,
        theirs: u64,
        ours: u64,
    },
    #[error("no seed answered within {} s: {seeds:?}", JOIN_TIMEOUT.as_secs())]
    NoSeed { seeds: Vec<SocketAddr> },
    #[error("opening the storage engine in {}: {source}", dir.display())]
    Engine {
        dir: PathBuf,
        source: migration::MigrationError,
    },
}

/// How a node starts: its directory, and what it was asked.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub dir: PathBuf,
    /// The id asked for (`--node-id`); it must be the certificate's.
    pub node_id: Option<String>,
    pub seeds: Vec<SocketAddr>,
    /// Tokens to take on the first start.
    pub vnodes: usize,
}

/// What a start found and decided: all a [`crate::Node`] needs besides its configuration.
pub struct Bootstrapped {
    pub id: String,
    pub identity: Identity,
    pub secret: ClusterSecret,
    pub lease: DotLease,
    pub tokens: Vec<u128>,
    pub generation: u64,
    pub engine: Engine,
}

/// Starts a node in `options.dir`: checks who it is, takes its lease, its tokens and its
/// generation, and opens its data.
pub async fn bootstrap(options: &StartOptions) -> Result<Bootstrapped, BootstrapError> {
    let dir = options.dir.as_path();
    fs::create_dir_all(dir).map_err(|source| BootstrapError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    let identity = identity(dir)?;
    let id = own_id(dir, options.node_id.as_deref())?;
    let secret = ClusterSecret::read(&dir.join("certs").join(SECRET_FILE))?;
    let lease = DotLease::open(dir.join("dot-lease"))?;
    check_id_free(&options.seeds, &id, lease.incarnation(), &identity).await?;
    let tokens = tokens(options, &id, &identity).await?;
    let data = dir.join("data");
    let (engine, _) = migration::open(&data, crate::store::replica::engine_options())
        .map_err(|source| BootstrapError::Engine { dir: data, source })?;
    let generation = generation(dir)?;
    Ok(Bootstrapped {
        id,
        identity,
        secret,
        lease,
        tokens,
        generation,
        engine,
    })
}

/// The node's certificate and the CA it trusts, checked valid now.
pub fn identity(dir: &Path) -> Result<Identity, BootstrapError> {
    let certs_dir = dir.join("certs");
    let own = certs::read(&certs_dir, "node")?;
    let ca = certs::read_cert(&certs_dir, "ca")?;
    let identity = Identity::new(&own, &ca)?;
    identity.check_valid_now(&certs::paths(&certs_dir, "node").0)?;
    Ok(identity)
}

/// The node's id: the one its certificate was made for (the CA vouches for it, and other nodes
/// hold gossip to it). The directory is bound to it on the first start.
fn own_id(dir: &Path, given: Option<&str>) -> Result<String, BootstrapError> {
    let certs_dir = dir.join("certs");
    let id = certs::read_node_id(&certs_dir, "node")?;
    if let Some(given) = given.filter(|given| *given != id) {
        return Err(BootstrapError::IdNotCertificate {
            given: given.to_string(),
            id,
            cert: certs::paths(&certs_dir, "node").0,
        });
    }
    let id_path = dir.join("node-id");
    match fs::read_to_string(&id_path) {
        Ok(kept) if kept.trim() != id => Err(BootstrapError::DirectoryOfAnotherNode {
            dir: dir.to_path_buf(),
            kept: kept.trim().to_string(),
            id,
        }),
        Ok(_) => Ok(id),
        Err(_) => {
            write_durably(&id_path, &id)?;
            Ok(id)
        }
    }
}

pub fn write_durably(path: &Path, text: &str) -> Result<(), BootstrapError> {
    kvctl::storage::durable_file::write(path, text.as_bytes()).map_err(|source| {
        BootstrapError::Io {
            what: format!("writing {}", path.display()),
            source,
        }
    })
}

/// The gossip generation of a start that follows one with generation `previous`: the wall clock
/// in milliseconds, or one above `previous` if the clock is behind it (it was set back).
pub fn next_generation(previous: Option<u64>) -> u64 {
    let now = wall_ms();
    previous.map_or(now, |p| now.max(p + 1))
}

/// This start's gossip generation, above the last start's even if the clock was set back,
/// written down before the node serves.
fn generation(dir: &Path) -> Result<u64, BootstrapError> {
    let path = dir.join("generation");
    let previous = match fs::read_to_string(&path) {
        Ok(text) => Some(
            text.trim()
                .parse::<u64>()
                .map_err(|e| BootstrapError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(BootstrapError::Io {
                what: format!("reading {}", path.display()),
                source,
            })
        }
    };
    let generation = next_generation(previous);
    write_durably(&path, &generation.to_string())?;
    Ok(generation)
}

/// The node's tokens: kept from an earlier start, else chosen against the ring the seeds
/// report (or evenly spaced for the first node), and written down before the node serves.
async fn tokens(
    options: &StartOptions,
    id: &str,
    identity: &Identity,
) -> Result<Vec<u128>, BootstrapError> {
    let path = options.dir.join("tokens");
    if let Ok(text) = fs::read_to_string(&path) {
        let tokens: Result<Vec<u128>, _> = text.split_whitespace().map(str::parse).collect();
        let corrupt = |reason: String| BootstrapError::Corrupt {
            path: path.clone(),
            reason,
        };
        let tokens = tokens.map_err(|e| corrupt(e.to_string()))?;
        if tokens.is_empty() {
            return Err(corrupt("it lists no tokens".into()));
        }
        return Ok(tokens);
    }
    let ring = match options.seeds.is_empty() {
        true => Ring::empty(),
        false => ring_of_seeds(&options.seeds, id, identity).await?,
    };
    let tokens = allocate_tokens(&ring, options.vnodes);
    let text: String = tokens.iter().map(|t| format!("{t}\n")).collect();
    write_durably(&path, &text)?;
    Ok(tokens)
}

/// The ring of the first seed to answer (without this node), waiting up to [`JOIN_TIMEOUT`].
async fn ring_of_seeds(
    seeds: &[SocketAddr],
    id: &str,
    identity: &Identity,
) -> Result<Ring, BootstrapError> {
    let client = Transport::client(identity)?;
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let ring = 'join: loop {
        for seed in seeds {
            if let Ok(Response::Members { members, .. }) =
                client.request(*seed, &Request::Status).await
            {
                break 'join Ok(Ring::new(
                    members
                        .into_iter()
                        .map(|v| v.member)
                        .filter(|m| m.id != id)
                        .map(|m| (m.id, m.tokens)),
                ));
            }
        }
        if tokio::time::Instant::now() > deadline {
            break Err(BootstrapError::NoSeed {
                seeds: seeds.to_vec(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    client.close().await;
    ring
}

/// Refuses to start when a seed knows another live node under this id (another directory with
/// the same certificate): two nodes under one id would hand out the same dots. A seed that
/// does not answer in time (the whole cluster is starting) lets the start go on; gossip then
/// refuses the second node's entries.
async fn check_id_free(
    seeds: &[SocketAddr],
    id: &str,
    incarnation: u64,
    identity: &Identity,
) -> Result<(), BootstrapError> {
    if seeds.is_empty() {
        return Ok(());
    }
    let client = Arc::new(Transport::client(identity)?.with_timeout(ID_CHECK_TIMEOUT));
    let mut asks = tokio::task::JoinSet::new();
    for seed in seeds.iter().copied() {
        let client = client.clone();
        asks.spawn(async move { client.request(seed, &Request::Status).await });
    }
    let views = tokio::time::timeout(ID_CHECK_TIMEOUT, async {
        while let Some(answer) = asks.join_next().await {
            if let Ok(Ok(Response::Members { members, .. })) = answer {
                return Some(members);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    asks.abort_all();
    client.close().await;
    let taken = views
        .into_iter()
        .flatten()
        .find(|v| v.member.id == id && v.up && v.member.incarnation != incarnation);
    match taken {
        Some(other) => Err(BootstrapError::IdInUse {
            id: id.to_string(),
            addr: other.member.addr,
            theirs: other.member.incarnation,
            ours: incarnation,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_rises_even_when_the_clock_was_set_back() {
        let first = next_generation(None);
        assert!(first >= wall_ms() - 60_000);
        // The last start's generation is ahead of the clock (the clock was set back since).
        let ahead = wall_ms() + 3_600_000;
        assert_eq!(next_generation(Some(ahead)), ahead + 1);
        // Behind the clock: the clock.
        assert!(next_generation(Some(5)) >= first);
    }

    #[test]
    fn a_corrupt_generation_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("generation"), "not a number").unwrap();
        let e = generation(dir.path()).unwrap_err();
        assert!(
            matches!(e, BootstrapError::Corrupt { .. }) && e.to_string().contains("generation"),
            "{e}"
        );
        fs::write(dir.path().join("generation"), "41").unwrap();
        assert!(generation(dir.path()).unwrap() > 41);
    }
}
