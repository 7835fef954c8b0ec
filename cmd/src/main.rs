//! The `kvctl` binary: parses the command line and runs one subcommand.
//!
//! # Layout
//! - `cli`: the clap definitions of every subcommand.
//! - `node`: `kvctl node start`.
//! - `cluster`: `kvctl cluster up|down|status` and `kvctl status`; `process` starts and stops
//!   the node processes of a local cluster.
//! - `kv`: `kvctl get|put|delete`; `ring`: `kvctl ring`; `cert`: `kvctl cert`.
//! - `kvctl shell` is the `kvctl-shell` crate; `kvctl ring` and `kvctl status` print its views.
//! - `bench`: `kvctl bench`, YCSB-style workloads; `disk`: its disk check (`--workload fsync`).
//! - `completions`: `kvctl completions SHELL`; `output`: tables and JSON.

mod bench;
mod cert;
mod cli;
mod cluster;
mod completions;
mod disk;
mod kv;
mod layout;
mod node;
mod output;
mod process;
mod repair;
mod ring;
mod workers;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kvctl::client::home;

use cli::{Cli, ClusterCommand, Command, NodeCommand, Workload};

/// mimalloc: the node's request path allocates many small buffers (messages, versions), and
/// glibc's malloc showed up at ~12 % of a node's CPU under `kvctl bench`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a get that found nothing.
const EXIT_NOT_FOUND: u8 = 3;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A node's runtime: `threads` workers, or a single-threaded one for 1 (cheaper: no hand-offs
/// between workers, which matters when several nodes share a machine's cores).
fn node_runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = || home::resolve(cli.home.as_deref());
    match cli.command {
        Command::Completions(args) => completions::run(&args)?,
        Command::Cert(command) => cert::run(command)?,
        Command::Node(NodeCommand::Start(args)) => {
            let dir = cli
                .home
                .clone()
                .context("`kvctl node start` needs --home, the node's directory")?;
            node_runtime(args.threads)?.block_on(node::start(args, &dir))?
        }
        Command::Cluster(ClusterCommand::Up(args)) => {
            runtime()?.block_on(cluster::up(&home()?, args))?
        }
        Command::Cluster(ClusterCommand::Down) => cluster::down(&home()?)?,
        Command::Cluster(ClusterCommand::Status(args)) | Command::Status(args) => {
            runtime()?.block_on(cluster::status(&home()?, args))?
        }
        Command::Ring(args) => runtime()?.block_on(ring::run(&home()?, args))?,
        Command::Get(args) => {
            if !runtime()?.block_on(kv::get(&home()?, args))? {
                return Ok(ExitCode::from(EXIT_NOT_FOUND));
            }
        }
        Command::Put(args) => runtime()?.block_on(kv::put(&home()?, args))?,
        Command::Delete(args) => runtime()?.block_on(kv::delete(&home()?, args))?,
        Command::Shell(args) => {
            let options = kvctl_shell::Options {
                home: home()?,
                node: args.node,
                consistency: args.consistency,
                node_pid: process::running_pid,
            };
            if !kvctl_shell::run(options)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Repair(args) => runtime()?.block_on(repair::run(&home()?, args))?,
        Command::Workers(args) => runtime()?.block_on(workers::run(&home()?, args))?,
        Command::Layout(args) => runtime()?.block_on(layout::run(&home()?, args))?,
        Command::Bench(args) if args.workload == Workload::Fsync => {
            let dir = match &args.dir {
                Some(dir) => dir.clone(),
                None => home()?,
            };
            disk::run(&dir, &args)?
        }
        // One thread drives the requests in flight: it shares the machine with the nodes.
        Command::Bench(args) => node_runtime(Some(1))?.block_on(bench::run(&home()?, args))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Node(_)) {
        // A command whose output goes to a pipe closed early (`kvctl status | head -3`) ends
        // quietly, as Unix tools do, instead of panicking in `println!`. Nodes keep Rust's
        // default (SIGPIPE ignored).
        // SAFETY: setting a signal's disposition to its default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`kvctl ... | head`) is not an error worth a message.
            if err
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(io::stderr(), "kvctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
