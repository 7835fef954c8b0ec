//! Running the lines of a non-terminal standard input as a script: the same output as the
//! interactive shell, no prompt; a failed line prints `error: line N: …` and the script goes
//! on.

use std::io::{BufRead, Read};

use anyhow::Context;
use tokio::runtime::Runtime;

use crate::session::Session;
use crate::{run_line, Step};

/// Most bytes of one script line: room for a value at the nodes' 16 MiB limit and its command.
/// A longer line stops the script.
pub const LINE_BYTES_MAX: usize = 17 << 20;

/// Runs every line of `input`; returns whether all succeeded.
pub fn run(
    runtime: &Runtime,
    session: &mut Session,
    mut input: impl BufRead,
) -> anyhow::Result<bool> {
    let mut all_succeeded = true;
    let mut buf = Vec::new();
    for number in 1.. {
        buf.clear();
        let read = input
            .by_ref()
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
            .context("reading the script from standard input")?;
        if read == 0 {
            break;
        }
        if buf.len() > LINE_BYTES_MAX && !buf.ends_with(b"\n") {
            eprintln!("error: line {number}: longer than {LINE_BYTES_MAX} bytes; stopped");
            return Ok(false);
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        match run_line(runtime, session, line, false) {
            Ok(Step::Exit) => break,
            Ok(Step::Next { .. }) => {}
            Err(e) => {
                eprintln!("error: line {number}: {}", e.one_line());
                all_succeeded = false;
            }
        }
    }
    Ok(all_succeeded)
}
