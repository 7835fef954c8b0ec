//! The command line: every subcommand and its options.

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

/// kvctl: a leaderless, Dynamo-style distributed key-value store.
#[derive(Debug, Parser)]
#[command(name = "kvctl", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print shell completions for bash, zsh or fish.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}
