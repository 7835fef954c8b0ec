//! `kvctl node start`: one node in the foreground.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use kvctl::model::context::{ClusterSecret, SECRET_FILE};
use kvctl::model::ring::{allocate_tokens, Ring};
use kvctl::storage::engine::Limits;
use kvctl::wire::certs;
use kvctl::wire::proto::{Request, Response};
use kvctl::wire::tls::Identity;
use kvctl::wire::transport::Transport;
use kvctl_node::hints::HintLimits;
use kvctl_node::lease::DotLease;
use kvctl_node::{admission, migration};
use kvctl_node::{Node, NodeConfig};

use crate::cli::NodeStartArgs;

/// How long a joining node waits for a seed to tell it the ring.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

pub fn identity(dir: &Path) -> anyhow::Result<Identity> {
    let certs_dir = dir.join("certs");
    let own = certs::read(&certs_dir, "node").context("reading the node certificate")?;
    let ca = certs::read_cert(&certs_dir, "ca").context("reading the cluster CA certificate")?;
    let identity = Identity::new(&own, &ca)?;
    identity.check_valid_now(&certs::paths(&certs_dir, "node").0)?;
    Ok(identity)
}

fn write_durably(path: &Path, text: &str) -> anyhow::Result<()> {
    kvctl::storage::durable_file::write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// This start's gossip generation, above the last start's even if the clock was set back,
/// written down before the node serves.
fn generation(dir: &Path) -> anyhow::Result<u64> {
    let path = dir.join("generation");
    let previous = match fs::read_to_string(&path) {
        Ok(text) => Some(
            text.trim()
                .parse::<u64>()
                .with_context(|| format!("{} is corrupt", path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let generation = kvctl_node::server::next_generation(previous);
    write_durably(&path, &generation.to_string())?;
    Ok(generation)
}

/// The node's tokens: kept from an earlier start, else chosen against the ring the seeds
/// report (or evenly spaced for the first node), and written down before the node serves.
async fn tokens(
    args: &NodeStartArgs,
    dir: &Path,
    id: &str,
    identity: &Identity,
) -> anyhow::Result<Vec<u128>> {
    let path = dir.join("tokens");
    if let Ok(text) = fs::read_to_string(&path) {
        let tokens: Result<Vec<u128>, _> = text.split_whitespace().map(str::parse).collect();
        let tokens = tokens.with_context(|| format!("{} is corrupt", path.display()))?;
        if tokens.is_empty() {
            bail!("{} lists no tokens", path.display());
        }
        return Ok(tokens);
    }
    let mut ring = Ring::empty();
    if !args.seeds.is_empty() {
        let client = Transport::client(identity)?;
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        'join: loop {
            for seed in &args.seeds {
                if let Ok(Response::Members { members, .. }) =
                    client.request(*seed, &Request::Status).await
                {
                    ring = Ring::new(
                        members
                            .into_iter()
                            .map(|v| v.member)
                            .filter(|m| m.id != id)
                            .map(|m| (m.id, m.tokens)),
                    );
                    break 'join;
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "no seed answered within {} s: {:?}",
                    JOIN_TIMEOUT.as_secs(),
                    args.seeds
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        client.close().await;
    }
    let tokens = allocate_tokens(&ring, args.vnodes);
    let text: String = tokens.iter().map(|t| format!("{t}\n")).collect();
    write_durably(&path, &text)?;
    Ok(tokens)
}

/// How long a starting node waits for a seed to say whether its id is taken.
const ID_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Refuses to start when a seed knows another live node under this id (another directory with
/// the same certificate): two nodes under one id would hand out the same dots. A seed that
/// does not answer in time (the whole cluster is starting) lets the start go on; gossip then
/// refuses the second node's entries.
async fn check_id_free(
    args: &NodeStartArgs,
    id: &str,
    incarnation: u64,
    identity: &Identity,
) -> anyhow::Result<()> {
    if args.seeds.is_empty() {
        return Ok(());
    }
    let client = std::sync::Arc::new(Transport::client(identity)?.with_timeout(ID_CHECK_TIMEOUT));
    let mut asks = tokio::task::JoinSet::new();
    for seed in args.seeds.iter().copied() {
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
    if let Some(other) = taken {
        bail!(
            "node id {id} is in use by the node at {} (up, incarnation {:016x}; this directory is \
             incarnation {incarnation:016x}): node ids must be unique. Give this node its own \
             certificate (`kvctl cert node --id <new id>`), or stop the other node and wait until \
             the cluster sees it down",
            other.member.addr,
            other.member.incarnation
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

pub async fn start(args: NodeStartArgs, dir: &Path) -> anyhow::Result<()> {
    // A file-size limit (ulimit -f) reached must fail the write that reaches it (EFBIG, which
    // the WAL reports like a full disk), not kill the node.
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let identity = identity(dir)?;
    // The node's id is the one its certificate was made for: the CA vouches for it, and other
    // nodes hold gossip to it.
    let id = certs::read_node_id(&dir.join("certs"), "node")?;
    if let Some(given) = args.node_id.as_ref().filter(|given| **given != id) {
        bail!(
            "--node-id {given}: {} was made for node {id}; start it as {id}, or make a \
             certificate for {given} with `kvctl cert node --id {given}`",
            certs::paths(&dir.join("certs"), "node").0.display()
        );
    }
    let id_path = dir.join("node-id");
    match fs::read_to_string(&id_path) {
        Ok(kept) if kept.trim() != id => bail!(
            "{} belongs to node {}, but its certificate is for node {id}",
            dir.display(),
            kept.trim()
        ),
        Ok(_) => {}
        Err(_) => write_durably(&id_path, &id)?,
    }
    let secret = ClusterSecret::read(&dir.join("certs").join(SECRET_FILE))?;
    let lease_path = dir.join("dot-lease");
    let lease = DotLease::open(&lease_path)?;
    check_id_free(&args, &id, lease.incarnation(), &identity).await?;
    let tokens = tokens(&args, dir, &id, &identity).await?;
    let (engine, _) = migration::open(&dir.join("data"), kvctl_node::replica::engine_options())
        .with_context(|| {
            format!(
                "opening the storage engine in {}",
                dir.join("data").display()
            )
        })?;
    let generation = generation(dir)?;
    let pid_path = dir.join("node.pid");
    write_durably(&pid_path, &std::process::id().to_string())?;
    println!(
        "node {id} listening on {} (replication {}, {} tokens, data in {})",
        args.listen,
        args.replication,
        tokens.len(),
        dir.join("data").display()
    );
    if args.tombstone_grace < args.max_hint_window {
        bail!(
            "--tombstone-grace ({}) is shorter than --max-hint-window ({}): a hint made before \
             a delete could be delivered after its tombstone is gone and bring the value back; \
             make the grace at least the hint window",
            humantime::format_duration(args.tombstone_grace),
            humantime::format_duration(args.max_hint_window)
        );
    }
    let config = NodeConfig {
        id: id.clone(),
        listen: args.listen,
        seeds: args.seeds.clone(),
        replication: args.replication,
        tokens,
        limits: Limits::default(),
        sync_rate_max: args.sync_rate_max,
        generation,
        secret,
        admission: admission::Limits {
            connections_max: args.connections_max,
            handshakes_max: args.handshakes_max,
            connections_per_peer_max: args.connections_per_peer_max,
            budget: kvctl::wire::budget::Limits {
                request_bytes_in_flight_max: args.request_bytes_in_flight_max,
                connection_bytes_in_flight_max: args.connection_bytes_in_flight_max,
            },
            write_queue_bytes_max: args.write_queue_bytes_max,
        },
        hints: HintLimits {
            bytes_per_target_max: args.hints_bytes_per_target_max as u64,
            window: args.max_hint_window,
        },
        hint_replay_bytes_per_sec: args.hint_replay_rate as u64,
        phi_convict_threshold: args.phi_convict_threshold,
        aae_interval: args.aae_interval,
        tombstone_grace: args.tombstone_grace,
        metrics_listen: args.metrics_listen,
    };
    let result = Node::run(config, &identity, engine, lease, shutdown_signal()).await;
    let _ = fs::remove_file(&pid_path);
    result?;
    println!("node {id} stopped");
    Ok(())
}
