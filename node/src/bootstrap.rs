//! A node's start, before it serves: who it is (its certificate and the directory it owns),
//! its dot lease, its tokens (kept, or chosen against the ring its seeds report), its gossip
//! generation, and its data opened at this build's format (migrating an older one).
//!
//! Everything a start decides is written down durably in the node's directory before the node
//! serves, so the next start finds the same id, tokens and lease.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::wall_ms;

use kvctl::model::context::{ClusterSecret, SecretError, SECRET_FILE};
use kvctl::model::layout::{Change, Layout, LayoutError, LayoutMember, DEFAULT_DC, DEFAULT_RACK};
use kvctl::model::ring::{allocate_tokens, Ring};
use kvctl::storage::engine::Engine;
use kvctl::wire::certs::{self, CertError};
use kvctl::wire::proto::{ErrorKind, Request, Response};
use kvctl::wire::tls::{Identity, TlsError};
use kvctl::wire::transport::{Transport, TransportError};

use crate::logic::commit::Outcome;
use crate::logic::layouts::LayoutHistory;
use crate::propose::{announce, propose};
use crate::store::layout::{LayoutFileError, LayoutState};
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
    #[error(
        "node {id} was removed from the cluster at layout version {at}: a removed node never \
         comes back; wipe its directory and start it under a new id (`kvctl cert node --id \
         <new id>`) to join as a new node"
    )]
    Removed { id: String, at: u64 },
    #[error(
        "the seed at {seed} runs an earlier release, without a versioned layout, and this node \
         is not in its view: upgrade the cluster's nodes before adding one"
    )]
    SeedsTooOld { seed: SocketAddr },
    #[error("joining the cluster: {0}")]
    Layout(LayoutError),
    #[error("joining the cluster failed within {} s: {why}", JOIN_TIMEOUT.as_secs())]
    JoinFailed { why: String },
    #[error(transparent)]
    LayoutFile(#[from] LayoutFileError),
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
    /// The address the node listens on (and is reached at).
    pub listen: SocketAddr,
    /// Replicas per key, for the first version of a new cluster's layout.
    pub replication: usize,
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
    /// The layout, this node a member of its newest version.
    pub layout: LayoutState,
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
    let (tokens, layout) = layout_and_tokens(options, &id, &identity).await?;
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
        layout,
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

/// The tokens an earlier start (or `cluster up`) wrote down in `dir`, if any.
pub fn kept_tokens(dir: &Path) -> Result<Option<Vec<u128>>, BootstrapError> {
    let path = dir.join("tokens");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(None);
    };
    let corrupt = |reason: String| BootstrapError::Corrupt {
        path: path.clone(),
        reason,
    };
    let tokens: Result<Vec<u128>, _> = text.split_whitespace().map(str::parse).collect();
    let tokens = tokens.map_err(|e| corrupt(e.to_string()))?;
    if tokens.is_empty() {
        return Err(corrupt("it lists no tokens".into()));
    }
    Ok(Some(tokens))
}

/// The node's layout and its tokens in it: the layout it kept; else, for the first node (no
/// seeds), a first version of itself alone; else the cluster's, after this node's join was
/// committed there. Both are written down before the node serves.
async fn layout_and_tokens(
    options: &StartOptions,
    id: &str,
    identity: &Identity,
) -> Result<(Vec<u128>, LayoutState), BootstrapError> {
    let dir = options.dir.as_path();
    let kept = kept_tokens(dir)?;
    let state = match LayoutState::open(dir)? {
        Some(state) => {
            if let Some(at) = state.history.removed_at(id) {
                return Err(BootstrapError::Removed { id: id.into(), at });
            }
            state
        }
        None if options.seeds.is_empty() => {
            let tokens = kept
                .clone()
                .unwrap_or_else(|| allocate_tokens(&Ring::empty(), options.vnodes));
            let me = LayoutMember {
                addr: options.listen,
                dc: DEFAULT_DC.into(),
                rack: DEFAULT_RACK.into(),
                tokens,
            };
            let layout = Layout::initial(options.replication, [(id.to_string(), me)]);
            LayoutState {
                history: LayoutHistory::new(layout),
                acceptor: None,
            }
        }
        None => join(options, id, identity, kept.clone()).await?,
    };
    let tokens = match state.history.current().members.get(id) {
        Some(member) => member.tokens.clone(),
        // In an older live version only (leaving): its tokens there.
        None => state
            .history
            .live()
            .iter()
            .find_map(|l| l.members.get(id).map(|m| m.tokens.clone()))
            .or(kept.clone())
            .unwrap_or_default(),
    };
    if kept.as_ref() != Some(&tokens) {
        let text: String = tokens.iter().map(|t| format!("{t}\n")).collect();
        write_durably(&dir.join("tokens"), &text)?;
    }
    state.save(dir)?;
    Ok((tokens, state))
}

/// The live layouts of the first seed to answer, waiting up to the deadline. A seed of an
/// earlier release (it has no layout) lends its gossip view instead, taken as version 1, so a
/// cluster upgraded node by node gets the same first version on every node; a node that is
/// not in that view cannot join until the seeds are upgraded.
async fn layouts_of_seeds(
    client: &Transport,
    seeds: &[SocketAddr],
    id: &str,
    deadline: tokio::time::Instant,
) -> Result<LayoutHistory, BootstrapError> {
    loop {
        for seed in seeds {
            match client.request(*seed, &Request::LayoutGet).await {
                Ok(Response::Layouts { live, synced }) => {
                    let marks: BTreeMap<String, u64> = synced.into_iter().collect();
                    let mut layouts = live.into_iter().map(Layout::try_from);
                    let Some(Ok(first)) = layouts.next() else {
                        continue;
                    };
                    let mut history = LayoutHistory::new(first);
                    history.merge_synced(&marks);
                    for layout in layouts.flatten() {
                        let _ = history.commit(layout, &marks);
                    }
                    return Ok(history);
                }
                Ok(Response::Error {
                    kind: ErrorKind::Unsupported,
                    ..
                }) => {
                    if let Some(layout) = layout_of_gossip(client, *seed).await {
                        if !layout.members.contains_key(id) {
                            return Err(BootstrapError::SeedsTooOld { seed: *seed });
                        }
                        return Ok(LayoutHistory::new(layout));
                    }
                }
                _ => {}
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BootstrapError::NoSeed {
                seeds: seeds.to_vec(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Version 1 of a layout from a seed's gossip view (a seed of an earlier release).
async fn layout_of_gossip(client: &Transport, seed: SocketAddr) -> Option<Layout> {
    let Ok(Response::Members {
        members,
        replication,
        ..
    }) = client.request(seed, &Request::Status).await
    else {
        return None;
    };
    let members = members.into_iter().map(|v| {
        (
            v.member.id,
            LayoutMember {
                addr: v.member.addr,
                dc: DEFAULT_DC.into(),
                rack: DEFAULT_RACK.into(),
                tokens: v.member.tokens,
            },
        )
    });
    Some(Layout::initial((replication as usize).max(1), members))
}

/// Joins the cluster the seeds are in: plans this node's join on the newest version a seed
/// has and proposes it; a join that lost the race to another change is planned again on top
/// of it. Until ranges are streamed into new versions, a joined node counts as synced at once
/// (it serves its ranges before it has their data, as before layouts).
async fn join(
    options: &StartOptions,
    id: &str,
    identity: &Identity,
    kept: Option<Vec<u128>>,
) -> Result<LayoutState, BootstrapError> {
    let client = Arc::new(Transport::client(identity)?);
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    // Racing joiners wait different times before trying again.
    let retry = Duration::from_millis(50 + u64::from(crc32(id.as_bytes())) % 450);
    let mut last_failure = String::new();
    let joined = loop {
        if tokio::time::Instant::now() > deadline {
            break Err(BootstrapError::JoinFailed { why: last_failure });
        }
        let mut history = layouts_of_seeds(&client, &options.seeds, id, deadline).await?;
        if let Some(at) = history.removed_at(id) {
            break Err(BootstrapError::Removed { id: id.into(), at });
        }
        if history.current().members.contains_key(id) {
            // Joined already (an earlier start committed it, then stopped before writing it).
            break Ok(history);
        }
        if let Err(e) = history.ready_for_change() {
            last_failure = e.to_string();
            tokio::time::sleep(retry).await;
            continue;
        }
        let current = history.current().clone();
        let change = Change::Join {
            id: id.to_string(),
            addr: options.listen,
            dc: DEFAULT_DC.into(),
            rack: DEFAULT_RACK.into(),
            vnodes: options.vnodes,
            tokens: kept.clone().unwrap_or_default(),
        };
        let next = current.plan(&[change]).map_err(BootstrapError::Layout)?;
        match propose(&client, id, &current, next.clone(), retry).await {
            Outcome::Chosen { value, .. } if value == next => {
                let marks = history.synced().clone();
                history
                    .commit(next.clone(), &marks)
                    .map_err(|e| BootstrapError::JoinFailed { why: e.to_string() })?;
                history.record_synced(id, next.version);
                announce(&client, id, &next, history.synced()).await;
                break Ok(history);
            }
            Outcome::Chosen { value, .. } => {
                last_failure = format!(
                    "another change took layout version {} first; planning again on top of it",
                    value.version
                );
            }
            Outcome::Failed(why) => {
                last_failure = why;
                tokio::time::sleep(retry).await;
            }
        }
    };
    client.close().await;
    Ok(LayoutState {
        history: joined?,
        acceptor: None,
    })
}

/// A small, stable hash (CRC-32) of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (!(crc & 1)).wrapping_add(1));
        }
    }
    !crc
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
