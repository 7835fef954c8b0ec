//! kvctl's shell, `kvctl shell`: an interactive REPL on rustyline, in the spirit of cqlsh and
//! redis-cli; with standard input not a terminal, it runs the lines as a script.
//!
//! # Layout
//! - [`words`]: splitting a line into words with shell-like quoting, and quoting a word back.
//! - [`command`]: the commands, their usage and help, and parsing a line into a [`Command`].
//! - [`session`]: the level and output format in force, the causal contexts remembered per
//!   key, and running a command with the client.
//! - [`helper`]: the line editor's helper: completion and hints.
//! - [`view`]: the ring and status views, shared with `kvctl ring` and `kvctl status`.
//! - `repl`: the interactive loop (prompt, history, Ctrl-C, Ctrl-D); `script`: running the
//!   lines of standard input.
//!
//! The crate depends on the library crate `kvctl` only; the binary passes it what it owns,
//! such as how to find a local node's process.

pub mod command;
pub mod helper;
mod repl;
mod script;
pub mod session;
pub mod view;
pub mod words;

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kvctl::client::Client;
use kvctl::wire::proto::Consistency;
use tokio::runtime::Runtime;

pub use command::Command;
pub use session::{Session, ShellError};

/// What `kvctl shell` was started with.
pub struct Options {
    /// The cluster's home (resolved).
    pub home: PathBuf,
    /// Coordinate every request through this node (default: any node of the cluster).
    pub node: Option<SocketAddr>,
    /// The level the session starts at.
    pub consistency: Consistency,
    /// The pid of a local node process from its directory, if it runs (for `status`).
    pub node_pid: fn(&Path) -> Option<u32>,
}

/// Runs the shell: interactively when standard input is a terminal, else as a script. Returns
/// whether every line succeeded (a person's mistakes in an interactive session do not count:
/// they were shown and the session went on).
pub fn run(options: Options) -> anyhow::Result<bool> {
    // One worker: the client's connections are kept alive between commands.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = {
        let _entered = runtime.enter();
        Client::from_home(&options.home)?
    };
    let mut session = Session::new(
        client,
        options.home.clone(),
        options.node,
        options.consistency,
        options.node_pid,
    );
    let ran = if io::stdin().is_terminal() {
        repl::run(&runtime, &mut session, &options.home)
    } else {
        script::run(&runtime, &mut session, io::stdin().lock())
    };
    runtime.block_on(session.close());
    ran
}

/// What the loop does after a line.
enum Step {
    /// Go on; the command named this key, if any.
    Next {
        key: Option<String>,
    },
    Exit,
}

/// Parses and runs one line, printing its reply: notes to standard error, then the result to
/// standard output. With `interruptible`, Ctrl-C cancels the command.
fn run_line(
    runtime: &Runtime,
    session: &mut Session,
    line: &str,
    interruptible: bool,
) -> Result<Step, ShellError> {
    let Some(command) = command::parse(line)? else {
        return Ok(Step::Next { key: None });
    };
    if command == Command::Exit {
        return Ok(Step::Exit);
    }
    let reply = runtime.block_on(async {
        if interruptible {
            tokio::select! {
                reply = session.execute(&command) => reply,
                _ = tokio::signal::ctrl_c() => Err(ShellError::Interrupted),
            }
        } else {
            session.execute(&command).await
        }
    })?;
    // A closed standard output or error (`kvctl shell < script | head`) is not the command's
    // failure; the binary's SIGPIPE handling ends the process.
    let mut err = io::stderr().lock();
    for note in &reply.notes {
        let _ = writeln!(err, "{note}");
    }
    drop(err);
    if !reply.text.is_empty() {
        let _ = writeln!(io::stdout().lock(), "{}", reply.text);
    }
    Ok(Step::Next {
        key: command.key().map(str::to_string),
    })
}
