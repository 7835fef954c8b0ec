//! Node processes of a local cluster: starting them detached, finding them, stopping them.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The pid in `<dir>/node.pid` if that process is alive and is a kvctl node of `dir`.
pub fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(dir.join("node.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: kill with signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
        return None;
    }
    // Guard against a reused pid and against zombies: the process must be a live node started
    // with exactly `--home <dir>`.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if stat
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    {
        return None;
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let dir = dir.as_os_str().as_encoded_bytes();
    let started_here = args.windows(2).any(|w| w[0] == b"--home" && w[1] == dir);
    let is_node = args.windows(2).any(|w| w[0] == b"node" && w[1] == b"start");
    (started_here && is_node).then_some(pid)
}

/// Starts `kvctl <args>` in its own process group (so a Ctrl-C in the terminal reaches only the
/// launcher, which stops the nodes in order), with output appended to `log`.
pub fn spawn_detached(args: &[String], log: &Path) -> anyhow::Result<u32> {
    let exe = std::env::current_exe().context("finding the kvctl binary")?;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    use std::os::unix::process::CommandExt;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .context("starting a node process")?;
    Ok(child.id())
}

fn alive(pid: u32) -> bool {
    // Reap it first if it is our own exited child (a zombie still answers signal 0).
    // SAFETY: waitpid with WNOHANG on a pid that may not be our child just fails with ECHILD.
    unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Sends SIGTERM, waits up to `grace` for the process to exit, then SIGKILLs it. Returns true
/// if it stopped within the grace period.
pub fn stop(pid: u32, grace: Duration) -> bool {
    // SAFETY: plain signal delivery to a process we started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    false
}
