//! `kvctl shell` in a real pseudo-terminal against a real 3-node cluster: Tab completes
//! command names, levels and the keys used in the session, Ctrl-C cancels the line, Ctrl-D
//! leaves with status 0, and the history kept in the cluster's home is recalled with the up
//! arrow in the next session.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use rexpect::error::Error;
use rexpect::process::WaitStatus;
use rexpect::session::{Options, PtySession};

/// How long any one expected output may take.
const EXPECT_TIMEOUT_MS: u64 = 20_000;
/// How long the shell may take to exit once told to.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const UP_ARROW: &str = "\x1b[A";

/// `kvctl shell` on the cluster, in a new pseudo-terminal, its prompt shown.
fn must_spawn_shell(c: &Cluster) -> PtySession {
    let mut command = common::kvctl();
    command
        .arg("--home")
        .arg(c.home())
        .arg("shell")
        // A terminal rustyline drives with escape sequences (it falls back to plain reads for
        // "dumb" ones).
        .env("TERM", "xterm");
    let options = Options::new()
        .timeout_ms(Some(EXPECT_TIMEOUT_MS))
        .strip_ansi_escape_codes(true);
    let mut shell = rexpect::spawn_with_options(command, options).expect("kvctl shell in a pty");
    shell.exp_string("QUORUM> ").expect("the first prompt");
    shell
}

/// Types `keys` (Enter is "\r", Tab "\t").
fn must_type(shell: &mut PtySession, keys: &str) {
    shell.send(keys).expect("typing into the pty");
    shell.flush().expect("typing into the pty");
}

/// Waits for the shell to exit; fails the test unless it exits with status 0 in time.
fn must_exit_zero(shell: &PtySession) {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        match shell.process().status() {
            Some(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Some(WaitStatus::Exited(_, code)) => {
                assert_eq!(code, 0, "kvctl shell exited with {code}");
                return;
            }
            other => panic!("kvctl shell did not exit with 0 in time: {other:?}"),
        }
    }
}

#[test]
fn shell_tty_completes_commands_levels_and_keys() -> Result<(), Error> {
    // After `put alpha …`, `get al<Tab>` completes the key and `CONS<Tab> one` the command (the
    // lines run as completed), and Ctrl-D on an empty line leaves with status 0.
    let c = Cluster::up(3, 0);
    let mut shell = must_spawn_shell(&c);
    must_type(&mut shell, "put alpha value-of-alpha\r");
    shell.exp_string("OK")?;
    shell.exp_string("QUORUM> ")?;

    must_type(&mut shell, "get al\t");
    shell.exp_string("get alpha")?;
    must_type(&mut shell, "\r");
    shell.exp_string("value-of-alpha")?;
    shell.exp_string("QUORUM> ")?;

    must_type(&mut shell, "CONS\t");
    shell.exp_string("CONSISTENCY")?;
    must_type(&mut shell, " one\r");
    shell.exp_string("Consistency level set to ONE.")?;
    shell.exp_string("ONE> ")?;

    must_type(&mut shell, "OUTPUT j\t\r");
    shell.exp_string("Output format set to json.")?;
    shell.exp_string("ONE> ")?;

    shell.send_control('d')?;
    must_exit_zero(&shell);
    Ok(())
}

#[test]
fn shell_tty_keeps_history_across_sessions_and_ctrl_c_cancels_the_line() -> Result<(), Error> {
    // The lines of one session are in `<home>/shell_history`; in the next session the up
    // arrow recalls the last (which then runs), Ctrl-C drops a line typed but not entered, and
    // `exit` leaves with status 0.
    let c = Cluster::up(3, 1);
    let mut first = must_spawn_shell(&c);
    must_type(&mut first, "put beta 1\r");
    first.exp_string("OK")?;
    first.exp_string("QUORUM> ")?;
    must_type(&mut first, "CONSISTENCY all\r");
    first.exp_string("Consistency level set to ALL.")?;
    first.exp_string("ALL> ")?;
    first.send_control('d')?;
    must_exit_zero(&first);
    drop(first);

    let history = std::fs::read_to_string(c.home().join("shell_history"))
        .expect("the history file in the cluster's home");
    assert!(
        history.contains("put beta 1") && history.contains("CONSISTENCY all"),
        "{history}"
    );

    let mut second = must_spawn_shell(&c);
    must_type(&mut second, UP_ARROW);
    second.exp_string("CONSISTENCY all")?;
    must_type(&mut second, "\r");
    second.exp_string("Consistency level set to ALL.")?;
    second.exp_string("ALL> ")?;

    must_type(&mut second, "put dropped x");
    second.exp_string("put dropped x")?;
    second.send_control('c')?;
    second.exp_string("ALL> ")?;
    must_type(&mut second, "get dropped\r");
    second.exp_string("(not found)")?;
    second.exp_string("ALL> ")?;

    must_type(&mut second, "exit\r");
    must_exit_zero(&second);
    Ok(())
}
