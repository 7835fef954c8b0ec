//! The command line: every subcommand and its options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use kvctl::wire::proto::Consistency;
use kvctl::wire::role::Role;

/// kvctl: a leaderless, Dynamo-style distributed key-value store.
#[derive(Debug, Parser)]
#[command(name = "kvctl", version, propagate_version = true)]
pub struct Cli {
    /// Where the local cluster lives (description, certificates, node data and logs); client
    /// commands find the cluster here.
    #[arg(long, global = true, env = "KVCTL_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (its directory is --home: data/, certs/ with ca.pem, node.pem, node.key).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Start, stop and inspect a local multi-node cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Each node's state as the cluster sees it.
    Status(StatusArgs),
    /// Tokens and ownership per node; with --key, a key's token and preference list.
    Ring(RingArgs),
    /// Read a key: every sibling value and the causal context.
    Get(GetArgs),
    /// Write a key.
    Put(PutArgs),
    /// Delete a key (writes a versioned tombstone).
    Delete(DeleteArgs),
    /// An interactive shell (REPL): get, put, delete, ring, status, CONSISTENCY, OUTPUT, help.
    /// With standard input not a terminal, runs its lines as a script.
    Shell(ShellArgs),
    /// Compare every token range's replicas (Merkle trees) and merge what differs into each.
    Repair(RepairArgs),
    /// Each node's background workers (state, progress, errors) and its engine's figures.
    Workers(WorkersArgs),
    /// The cluster layout: its version, the versions live during a change, and each node's
    /// address, datacenter, rack, tokens and state.
    Layout(LayoutArgs),
    /// Run a YCSB-style workload against the cluster and report throughput and latency.
    Bench(BenchArgs),
    /// Create a cluster CA and node or client certificates for clusters on several machines.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Print shell completions for bash, zsh or fish.
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Start a node in the foreground (SIGINT or SIGTERM stops it cleanly).
    Start(NodeStartArgs),
}

#[derive(Debug, Args)]
pub struct NodeStartArgs {
    /// Address to listen on (UDP, QUIC), also the address other nodes use.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Nodes to join through, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ADDR,...")]
    pub seeds: Vec<SocketAddr>,
    /// The node's id. A node's id is the one its certificate (certs/node.pem) was made for;
    /// if given, this must be it.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Virtual nodes (tokens) to take on first start.
    #[arg(long, default_value_t = 128)]
    pub vnodes: usize,
    /// Replicas per key (N).
    #[arg(long, default_value_t = 3)]
    pub replication: usize,
    /// Threads serving requests (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Most WAL fsyncs a second the node's writer makes, on average: under load, writes wait
    /// a little and share an fsync. For disks that stall when flushed too often; 0: no limit.
    #[arg(long, value_name = "N", env = "KVCTL_SYNC_RATE_MAX",
          default_value_t = kvctl_node::store::replica::SYNC_RATE_DEFAULT)]
    pub sync_rate_max: u32,
    /// Most connections the node holds; more are closed with the reason. Clients may hold all
    /// but 32 of them (at most half), kept for other nodes.
    #[arg(long, value_name = "N", env = "KVCTL_CONNECTIONS_MAX",
          default_value_t = kvctl_node::admission::CONNECTIONS_MAX,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub connections_max: usize,
    /// Most TLS handshakes the node runs at once; more new connections are refused until one
    /// ends (a connection counts toward --connections-max once its handshake is done).
    #[arg(long, value_name = "N", env = "KVCTL_HANDSHAKES_MAX",
          default_value_t = kvctl_node::admission::HANDSHAKES_MAX,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub handshakes_max: usize,
    /// Most connections one peer (a remote UDP address: one client process or node) holds.
    #[arg(long, value_name = "N", env = "KVCTL_CONNECTIONS_PER_PEER_MAX",
          default_value_t = kvctl_node::admission::CONNECTIONS_PER_PEER_MAX,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub connections_per_peer_max: usize,
    /// Most bytes the node holds for requests in flight (requests, the versions they read,
    /// replies not yet taken); past it requests are refused as unavailable. E.g. 512MiB.
    #[arg(long, value_name = "SIZE", env = "KVCTL_REQUEST_BYTES_IN_FLIGHT_MAX",
          default_value = "1GiB", value_parser = parse_bytes)]
    pub request_bytes_in_flight_max: usize,
    /// Most bytes one connection's requests hold (its share of the above); a get at ALL of a
    /// 16 MiB value needs about 100MiB.
    #[arg(long, value_name = "SIZE", env = "KVCTL_CONNECTION_BYTES_IN_FLIGHT_MAX",
          default_value = "128MiB", value_parser = parse_bytes)]
    pub connection_bytes_in_flight_max: usize,
    /// Most bytes of writes waiting for the node's writer; more wait for room.
    #[arg(long, value_name = "SIZE", env = "KVCTL_WRITE_QUEUE_BYTES_MAX",
          default_value = "64MiB", value_parser = parse_bytes)]
    pub write_queue_bytes_max: usize,
    /// How long hints are kept for a node that is down (e.g. 10s, 30m, 3h): no hints are
    /// made for a node down longer, and older hints are dropped (that node needs a repair).
    #[arg(long, value_name = "DURATION", env = "KVCTL_MAX_HINT_WINDOW", default_value = "3h",
          value_parser = humantime::parse_duration)]
    pub max_hint_window: std::time::Duration,
    /// Most bytes of hints the node holds for one other node; a write that needs one more is
    /// refused.
    #[arg(long, value_name = "SIZE", env = "KVCTL_HINTS_BYTES_PER_TARGET_MAX",
          default_value = "1GiB", value_parser = parse_bytes)]
    pub hints_bytes_per_target_max: usize,
    /// Bytes a second of hints replayed to one node come back.
    #[arg(long, value_name = "SIZE", env = "KVCTL_HINT_REPLAY_RATE", default_value = "16MiB",
          value_parser = parse_bytes)]
    pub hint_replay_rate: usize,
    /// The failure detector's suspicion level at which a node is shown down (phi accrual;
    /// higher is slower to convict, lower is quicker but more often wrong).
    #[arg(long, value_name = "PHI", env = "KVCTL_PHI_CONVICT_THRESHOLD",
          default_value_t = kvctl_node::logic::failure_detector::PHI_CONVICT_THRESHOLD_DEFAULT,
          value_parser = parse_phi)]
    pub phi_convict_threshold: f64,
    /// How often the node repairs, in the background, the ranges it is the first replica of
    /// (Merkle anti-entropy, as `kvctl repair` does); 0s turns it off.
    #[arg(long, value_name = "DURATION", env = "KVCTL_AAE_INTERVAL", default_value = "10m",
          value_parser = humantime::parse_duration)]
    pub aae_interval: std::time::Duration,
    /// How long a delete's tombstone is kept at least (humantime, e.g. 10days, 1h, 5s); it is
    /// removed only after that and after a repair covering its range completed.
    #[arg(long, value_name = "DURATION", env = "KVCTL_TOMBSTONE_GRACE", default_value = "10days",
          value_parser = humantime::parse_duration)]
    pub tombstone_grace: std::time::Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0: any free port; `status` shows
    /// the address).
    #[arg(long, value_name = "ADDR", env = "KVCTL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

fn parse_phi(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(phi) if (1.0..=100.0).contains(&phi) => Ok(phi),
        _ => Err(format!(
            "{s:?} is not a suspicion level from 1 to 100 (the default is 8)"
        )),
    }
}

/// A size in bytes: a number, optionally followed by KiB, MiB or GiB.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (number, shift) = [("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)]
        .iter()
        .find_map(|(unit, shift)| s.strip_suffix(unit).map(|n| (n.trim(), *shift)))
        .unwrap_or((s, 0));
    let n: usize = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (a number of bytes, or e.g. 64MiB, 1GiB)"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s} is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("{s} is under the least of 1MiB"));
    }
    Ok(bytes)
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create (or restart) a local cluster on loopback and wait until every node sees the ring.
    Up(ClusterUpArgs),
    /// Stop the local cluster's nodes.
    Down,
    /// Same as `kvctl status`.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct ClusterUpArgs {
    /// Number of nodes (for a new cluster).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// First UDP port; node i listens on base-port + i - 1.
    #[arg(long, default_value_t = 7701)]
    pub base_port: u16,
    /// Replicas per key (N), for a new cluster.
    #[arg(long, default_value_t = 3)]
    pub replication: usize,
    /// Return once the cluster is up, leaving the nodes running.
    #[arg(long)]
    pub detach: bool,
    /// Start only these nodes of an existing cluster (comma-separated ids; default: every
    /// node not running), and wait only for the nodes running.
    #[arg(long = "node", value_name = "ID,...", value_delimiter = ',')]
    pub node: Vec<String>,
    /// Passed on to every node started (see `kvctl node start --max-hint-window`; default
    /// 3h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_hint_window: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Repair only the ranges this node (an id, e.g. node-2) holds a replica of, coordinated
    /// by it.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    /// Repair only the ring ranges that end in (AFTER, UPTO] (tokens, decimal or 0x hex).
    #[arg(long, value_name = "AFTER:UPTO", value_parser = parse_token_range)]
    pub range: Option<(u128, u128)>,
    /// Most MiB a second each range's repair sends: at least 1, at most 256 (nodes hold a
    /// repair to that; 0: the most).
    #[arg(long, value_name = "MIB_PER_SEC", default_value_t = 32.0)]
    pub rate: f64,
    /// Start over, ignoring ranges an interrupted repair already did.
    #[arg(long)]
    pub restart: bool,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

fn parse_token(s: &str) -> Result<u128, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u128::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a token (a number below 2^128, decimal or 0x hex)"))
}

fn parse_token_range(s: &str) -> Result<(u128, u128), String> {
    let (after, upto) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not a range: write AFTER:UPTO"))?;
    Ok((parse_token(after)?, parse_token(upto)?))
}

#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Ask this node (default: any node of the cluster).
    #[arg(long, value_name = "ADDR")]
    pub node: Option<SocketAddr>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct WorkersArgs {
    /// Only this node (its id, e.g. node-2).
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Ask this node (default: any node of the cluster).
    #[arg(long, value_name = "ADDR")]
    pub node: Option<SocketAddr>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RingArgs {
    /// Show this key's token and preference list.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, value_name = "ADDR")]
    pub node: Option<SocketAddr>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// ONE, QUORUM or ALL.
    #[arg(long, default_value = "quorum", value_parser = parse_consistency)]
    pub consistency: Consistency,
    /// The node that coordinates the request (default: any).
    #[arg(long, value_name = "ADDR")]
    pub node: Option<SocketAddr>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

fn parse_consistency(s: &str) -> Result<Consistency, String> {
    s.parse()
}

/// Role names, listed so that `--help` and the completions offer them.
fn role_parser() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.map(Role::name)).try_map(|name| name.parse::<Role>())
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The node that coordinates every request (default: any).
    #[arg(long, value_name = "ADDR")]
    pub node: Option<SocketAddr>,
    /// The level the shell starts at: ONE, QUORUM or ALL (`CONSISTENCY` changes it).
    #[arg(long, value_name = "LEVEL", default_value = "quorum", value_parser = parse_consistency)]
    pub consistency: Consistency,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub key: String,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    pub key: String,
    /// The value; `-` reads it from standard input.
    pub value: String,
    /// The causal context from a get: the write supersedes what that get saw.
    #[arg(long)]
    pub context: Option<String>,
    /// Last write wins: supersede every version this coordinator knows.
    #[arg(long)]
    pub lww: bool,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub key: String,
    /// Delete only what the get that returned this context saw (default: read first, then
    /// delete every version that read sees).
    #[arg(long)]
    pub context: Option<String>,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 50 % reads, 50 % updates.
    A,
    /// 95 % reads, 5 % updates.
    B,
    /// Reads only.
    C,
    /// No cluster: a disk check. Appends of --value-size bytes, each made durable (fdatasync)
    /// before the next, by --concurrency writers in --dir, --operations in all, as a node's
    /// WAL makes writes durable.
    Fsync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyOrder {
    Ordered,
    Hashed,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Workload::A)]
    pub workload: Workload,
    /// Records loaded before the run.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Operations in the run.
    #[arg(long, default_value_t = 100_000)]
    pub operations: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Requests in flight (for --workload fsync: writers, each with its own file; 3 is what the
    /// nodes of a local cluster do).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[arg(long, default_value = "quorum", value_parser = parse_consistency)]
    pub consistency: Consistency,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Record keys in number order (user000000000042) or hashed (YCSB's default).
    #[arg(long, value_enum, default_value_t = KeyOrder::Ordered)]
    pub key_order: KeyOrder,
    /// Directory on the disk to check, for --workload fsync (default: the home directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Send every request to this node (it coordinates them all; no retries elsewhere)
    /// instead of to a replica of each key (token-aware routing, the default).
    #[arg(long, value_name = "ADDR")]
    pub node: Option<SocketAddr>,
    /// Tries of one request at most, the first included (1: no retries).
    #[arg(long, value_name = "N", default_value_t = kvctl::client::retry::ATTEMPTS_DEFAULT,
          value_parser = clap::builder::RangedU64ValueParser::<u32>::new().range(1..=10))]
    pub attempts: u32,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a cluster CA (ca.pem, ca.key) in --out.
    Ca(CertOut),
    /// Create a node certificate signed by the CA in --ca-dir.
    Node(CertNodeArgs),
    /// Create a client certificate signed by the CA in --ca-dir.
    Client(CertClientArgs),
}

#[derive(Debug, Args)]
pub struct CertOut {
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days the CA is valid for (certificates it signs stop working when it expires).
    #[arg(long, default_value_t = kvctl::wire::certs::CA_LIFETIME_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct CertNodeArgs {
    /// Directory holding ca.pem and ca.key.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// The node's id, which the certificate vouches for (default: node- and 8 random hex
    /// digits). Every node of a cluster needs its own.
    #[arg(long)]
    pub id: Option<String>,
    /// Extra host names or IP addresses the node is reached by.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Where to write node.pem, node.key (and a copy of ca.pem).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days the certificate is valid for.
    #[arg(long, default_value_t = kvctl::wire::certs::CERT_LIFETIME_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct CertClientArgs {
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    #[arg(long, default_value = "client")]
    pub name: String,
    /// Where to write client.pem, client.key (and a copy of ca.pem).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// What the certificate may ask: app (get, put, delete, status, ring) or admin (also
    /// repair, membership and maintenance).
    #[arg(long, default_value = "admin", value_parser = role_parser())]
    pub role: Role,
    /// Days the certificate is valid for.
    #[arg(long, default_value_t = kvctl::wire::certs::CERT_LIFETIME_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}
