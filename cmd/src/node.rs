//! `kvctl node start`: one node in the foreground (its start is `kvctl_node::bootstrap`'s,
//! its configuration `kvctl_node::NodeConfig`'s; this maps the flags onto them).

use std::fs;
use std::path::Path;

use kvctl::storage::engine::Limits;
use kvctl_node::bootstrap::{self, Bootstrapped, StartOptions};
use kvctl_node::config::{
    GossipConfig, HintsConfig, LayoutConfig, RepairConfig, ReplicaConfig, RequestsConfig,
    TombstonesConfig,
};
use kvctl_node::store::hints::HintLimits;
use kvctl_node::{admission, Node, NodeConfig};

use crate::cli::NodeStartArgs;

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

/// The node's configuration from its flags and what its start decided.
fn config(args: &NodeStartArgs, dir: &Path, started: &Bootstrapped) -> NodeConfig {
    NodeConfig {
        id: started.id.clone(),
        listen: args.listen,
        replication: args.replication,
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
        requests: RequestsConfig {
            limits: Limits::default(),
            secret: started.secret.clone(),
        },
        replica: ReplicaConfig {
            sync_rate_max: args.sync_rate_max,
        },
        gossip: GossipConfig {
            seeds: args.seeds.clone(),
            tokens: started.tokens.clone(),
            generation: started.generation,
            phi_convict_threshold: args.phi_convict_threshold,
        },
        hints: HintsConfig {
            limits: HintLimits {
                bytes_per_target_max: args.hints_bytes_per_target_max as u64,
                window: args.max_hint_window,
            },
            replay_bytes_per_sec: args.hint_replay_rate as u64,
        },
        repair: RepairConfig {
            aae_interval: args.aae_interval,
        },
        tombstones: TombstonesConfig {
            grace: args.tombstone_grace,
        },
        layout: LayoutConfig {
            dir: dir.to_path_buf(),
        },
        metrics_listen: args.metrics_listen,
    }
}

pub async fn start(args: NodeStartArgs, dir: &Path) -> anyhow::Result<()> {
    // A file-size limit (ulimit -f) reached must fail the write that reaches it (EFBIG, which
    // the WAL reports like a full disk), not kill the node.
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let started = bootstrap::bootstrap(&StartOptions {
        dir: dir.to_path_buf(),
        node_id: args.node_id.clone(),
        seeds: args.seeds.clone(),
        vnodes: args.vnodes,
        listen: args.listen,
        replication: args.replication,
    })
    .await?;
    let config = config(&args, dir, &started);
    let Bootstrapped {
        id,
        identity,
        lease,
        engine,
        tokens,
        layout,
        ..
    } = started;
    let pid_path = dir.join("node.pid");
    bootstrap::write_durably(&pid_path, &std::process::id().to_string())?;
    println!(
        "node {id} listening on {} (replication {}, {} tokens, data in {})",
        args.listen,
        args.replication,
        tokens.len(),
        dir.join("data").display()
    );
    config.validate()?;
    let result = Node::run(config, &identity, engine, lease, layout, shutdown_signal()).await;
    let _ = fs::remove_file(&pid_path);
    result?;
    println!("node {id} stopped");
    Ok(())
}
