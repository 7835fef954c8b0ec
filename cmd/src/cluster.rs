//! `kvctl cluster up|down|status`: a local multi-node cluster on loopback.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use kvctl::client::home::{self, ClusterFile, NodeEntry};
use kvctl::client::Client;
use kvctl::model::context::{ClusterSecret, SECRET_FILE};
use kvctl::model::layout::{Layout, LayoutMember, DEFAULT_DC, DEFAULT_RACK};
use kvctl::model::ring::build_balanced;
use kvctl::wire::certs::{self, Validity};
use kvctl::wire::role::Role;
use kvctl_node::logic::layouts::LayoutHistory;
use kvctl_node::store::layout::LayoutState;
use kvctl_shell::view::{self, StatusView};

use crate::cli::{ClusterUpArgs, Output, StatusArgs};
use crate::output;
use crate::process::{running_pid, spawn_detached, stop};

/// How long `cluster up` waits for every node to see the whole ring.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const VNODES: usize = 128;

fn node_dir(home: &Path, node: &NodeEntry) -> PathBuf {
    home.join(&node.dir)
}

/// Creates the CA, certificates, node directories, tokens and cluster file of a new cluster.
fn create(home: &Path, args: &ClusterUpArgs) -> anyhow::Result<ClusterFile> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.replication == 0 {
        bail!("--replication must be at least 1");
    }
    let certs_dir = home::certs_dir(home);
    let ca = certs::new_ca(Validity::days(certs::CA_LIFETIME_DAYS))?;
    certs::write(&certs_dir, "ca", &ca)?;
    // The operator's certificate: admin, so `kvctl repair` and the maintenance commands work.
    let validity = Validity::days(certs::CERT_LIFETIME_DAYS);
    let client = certs::new_client(&ca, "cli", Role::Admin, validity)?;
    certs::write(&certs_dir, "client", &client)?;
    ClusterSecret::create(&certs_dir.join(SECRET_FILE))?;
    let ids: Vec<String> = (1..=args.nodes).map(|i| format!("node-{i}")).collect();
    let ring = build_balanced(&ids, VNODES);
    let mut nodes = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let port = args
            .base_port
            .checked_add(i as u16)
            .context("--base-port leaves no room for the nodes")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let entry = NodeEntry {
            id: id.clone(),
            addr,
            dir: PathBuf::from("nodes").join(id),
        };
        let dir = node_dir(home, &entry);
        let node_certs = dir.join("certs");
        let node = certs::new_node(&ca, id, &[], Validity::days(certs::CERT_LIFETIME_DAYS))?;
        certs::write(&node_certs, "node", &node)?;
        fs::copy(certs_dir.join("ca.pem"), node_certs.join("ca.pem"))?;
        ClusterSecret::copy(&certs_dir.join(SECRET_FILE), &node_certs.join(SECRET_FILE))?;
        let tokens: String = ring
            .tokens_of(id)
            .iter()
            .map(|t| format!("{t}\n"))
            .collect();
        fs::write(dir.join("tokens"), tokens)?;
        fs::write(dir.join("node-id"), id)?;
        nodes.push(entry);
    }
    let cluster = ClusterFile {
        replication: args.replication,
        nodes,
    };
    home::write(home, &cluster)?;
    ensure_layout(home, &cluster)?;
    Ok(cluster)
}

/// Gives a cluster whose nodes hold no layout yet (new, or made by an earlier kvctl) its first
/// version: every node of the cluster file with the tokens in its directory, written into each
/// node's directory. A cluster where any node holds a layout keeps it (nodes without one join).
fn ensure_layout(home: &Path, cluster: &ClusterFile) -> anyhow::Result<()> {
    let dirs: Vec<PathBuf> = cluster.nodes.iter().map(|n| node_dir(home, n)).collect();
    for dir in &dirs {
        if LayoutState::open(dir)?.is_some() {
            return Ok(());
        }
    }
    let mut members = Vec::new();
    for (node, dir) in cluster.nodes.iter().zip(&dirs) {
        let tokens = kvctl_node::bootstrap::kept_tokens(dir)?
            .with_context(|| format!("{} holds no tokens file", dir.display()))?;
        members.push((
            node.id.clone(),
            LayoutMember {
                addr: node.addr,
                dc: DEFAULT_DC.into(),
                rack: DEFAULT_RACK.into(),
                tokens,
            },
        ));
    }
    let state = LayoutState {
        history: LayoutHistory::new(Layout::initial(cluster.replication, members)),
        acceptor: None,
    };
    for dir in &dirs {
        state.save(dir)?;
    }
    Ok(())
}

/// Gives a cluster made by an earlier kvctl, which had no cluster secret, one: in the home's
/// certificates and in every node's. Contexts handed out before are refused from now on (they
/// were not signed); a get hands out a new one.
fn ensure_secret(home: &Path, cluster: &ClusterFile) -> anyhow::Result<()> {
    let master = home::certs_dir(home).join(SECRET_FILE);
    if !master.exists() {
        ClusterSecret::create(&master)?;
        println!("made the cluster secret {}", master.display());
    }
    for node in &cluster.nodes {
        let copy = node_dir(home, node).join("certs").join(SECRET_FILE);
        if !copy.exists() {
            ClusterSecret::copy(&master, &copy)?;
        }
    }
    Ok(())
}

fn threads_per_node(nodes: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / nodes.max(1)).max(1)
}

fn start_node(
    home: &Path,
    cluster: &ClusterFile,
    node: &NodeEntry,
    up: &ClusterUpArgs,
) -> anyhow::Result<u32> {
    let dir = node_dir(home, node);
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.id != node.id)
        .map(|n| n.addr.to_string())
        .collect();
    let mut args = vec![
        "--home".to_string(),
        dir.to_string_lossy().into_owned(),
        "node".into(),
        "start".into(),
        "--listen".into(),
        node.addr.to_string(),
        "--node-id".into(),
        node.id.clone(),
        "--replication".into(),
        cluster.replication.to_string(),
        // The nodes share this machine's cores.
        "--threads".into(),
        threads_per_node(cluster.nodes.len()).to_string(),
        // Each node's metrics on a free loopback port, shown by `status`.
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(window) = up.max_hint_window {
        args.push("--max-hint-window".into());
        args.push(humantime::format_duration(window).to_string());
    }
    if !seeds.is_empty() {
        args.push("--seeds".into());
        args.push(seeds.join(","));
    }
    let pid = spawn_detached(&args, &dir.join("node.log"))?;
    // Written now so that `cluster down` finds the node even while it is still starting.
    fs::write(dir.join("node.pid"), pid.to_string())?;
    Ok(pid)
}

/// How many of the `expected` nodes see every one of them up, polled until all do.
async fn wait_for_ring(
    client: &Client,
    cluster: &ClusterFile,
    expected: &[&NodeEntry],
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + UP_TIMEOUT;
    let n = expected.len();
    loop {
        let mut ready = 0;
        let mut waiting = Vec::new();
        for node in expected {
            match client.status(Some(node.addr)).await {
                Ok((_, members)) => {
                    let up = expected
                        .iter()
                        .filter(|e| members.iter().any(|m| m.member.id == e.id && m.up))
                        .count();
                    if up == n {
                        ready += 1;
                    } else {
                        waiting.push(format!("{} sees {up}/{n}", node.id));
                    }
                }
                Err(_) => waiting.push(format!("{} starting", node.id)),
            }
        }
        bar.set_position(ready as u64);
        if ready == n {
            return Ok(());
        }
        bar.set_message(waiting.join(", "));
        if Instant::now() > deadline {
            bail!(
                "the cluster did not come up within {} s ({}); see the node logs under {}",
                UP_TIMEOUT.as_secs(),
                waiting.join(", "),
                cluster
                    .nodes
                    .first()
                    .map(|n| n.dir.display().to_string())
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn up(home: &Path, args: ClusterUpArgs) -> anyhow::Result<()> {
    let cluster = match home::read(home) {
        Ok(c) => c,
        Err(home::HomeError::NoCluster { .. }) => create(home, &args)?,
        Err(e) => return Err(e.into()),
    };
    ensure_secret(home, &cluster)?;
    ensure_layout(home, &cluster)?;
    if let Some(unknown) = args
        .node
        .iter()
        .find(|id| !cluster.nodes.iter().any(|n| n.id == **id))
    {
        let ids: Vec<&str> = cluster.nodes.iter().map(|n| n.id.as_str()).collect();
        bail!(
            "no node {unknown} in the cluster at {} (its nodes: {})",
            home.display(),
            ids.join(", ")
        );
    }
    let mut started = Vec::new();
    for node in &cluster.nodes {
        let dir = node_dir(home, node);
        let chosen = args.node.is_empty() || args.node.contains(&node.id);
        if chosen && running_pid(&dir).is_none() {
            started.push((node.id.clone(), start_node(home, &cluster, node, &args)?));
        }
    }
    // Every node, or with --node the nodes running now: the others stay down.
    let expected: Vec<&NodeEntry> = cluster
        .nodes
        .iter()
        .filter(|n| args.node.is_empty() || running_pid(&node_dir(home, n)).is_some())
        .collect();
    let client = Client::from_home(home)?;
    let bar = ProgressBar::new(expected.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} nodes see the full ring {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    // Ctrl-C while waiting stops what was started, as it does later.
    let waited = tokio::select! {
        waited = wait_for_ring(&client, &cluster, &expected, &bar) => waited,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    bar.finish_and_clear();
    if let Err(e) = waited {
        if !args.detach || e.to_string() == "interrupted" {
            let _ = down(home);
        }
        return Err(e);
    }
    if started.is_empty() {
        println!("cluster at {} is already running", home.display());
    } else {
        let names: Vec<&str> = started.iter().map(|(id, _)| id.as_str()).collect();
        println!("started {} at {}", names.join(", "), home.display());
    }
    print_status(home, &client, None, Output::Table).await?;
    client.close().await;
    if args.detach {
        println!(
            "\nnodes keep running; stop them with `kvctl cluster down --home {}`",
            home.display()
        );
        return Ok(());
    }
    // Listen before saying so: a Ctrl-C right after the message must not kill the launcher.
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    println!("\nCtrl-C stops the cluster");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    down(home)
}

pub fn down(home: &Path) -> anyhow::Result<()> {
    let cluster = home::read(home)?;
    let mut any = false;
    for node in &cluster.nodes {
        if let Some(pid) = running_pid(&node_dir(home, node)) {
            any = true;
            let clean = stop(pid, STOP_GRACE);
            println!(
                "stopped {} (pid {pid}){}",
                node.id,
                if clean { "" } else { " after SIGKILL" }
            );
        }
    }
    if !any {
        println!("no node of the cluster at {} is running", home.display());
    }
    Ok(())
}

/// One row per member, as the asked node sees the cluster.
pub async fn print_status(
    home: &Path,
    client: &Client,
    node: Option<SocketAddr>,
    output: Output,
) -> anyhow::Result<()> {
    let (responder, members) = client.status(node).await?;
    let status = StatusView::new(responder, members, view::local_pids(home, running_pid));
    match output {
        Output::Json => output::json(&status.json())?,
        Output::Table => output::text(&status.text())?,
    }
    Ok(())
}

pub async fn status(home: &Path, args: StatusArgs) -> anyhow::Result<()> {
    let client = Client::from_home(home)?;
    let printed = print_status(home, &client, args.node, args.output).await;
    client.close().await;
    printed
}
