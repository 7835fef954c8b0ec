//! The `kvctl` binary: parses the command line and runs one subcommand.
//!
//! # Layout
//! - `cli`: the clap definitions of every subcommand.
//! - `completions`: `kvctl completions SHELL`.

mod cli;
mod completions;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Completions(args) => completions::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
