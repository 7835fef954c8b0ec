//! `kvctl completions SHELL`: shell completions generated from the command definitions.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "kvctl", &mut out);
    io::stdout().lock().write_all(&out)?;
    Ok(())
}
