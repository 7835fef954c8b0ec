//! Test helpers: a local cluster of real `kvctl` processes on loopback, stopped on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct Cluster {
    pub home: tempfile::TempDir,
    pub base_port: u16,
    pub nodes: usize,
    /// Environment for every kvctl run (so nodes restarted by `cluster up` get it too).
    pub env: Vec<(String, String)>,
}

pub fn kvctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kvctl"))
}

impl Cluster {
    /// `kvctl cluster up --detach` with `nodes` nodes. `slot` (0..10) keeps the tests of one
    /// binary apart; the process id keeps concurrent runs apart.
    pub fn up(nodes: usize, slot: u16) -> Cluster {
        Cluster::up_with_env(nodes, slot, &[])
    }

    /// [`Cluster::up`] with environment variables for the nodes (their limits, say).
    pub fn up_with_env(nodes: usize, slot: u16, env: &[(&str, &str)]) -> Cluster {
        let base_port = 20_000 + (std::process::id() % 400) as u16 * 100 + slot * 10;
        let home = tempfile::tempdir().expect("temp dir");
        let cluster = Cluster {
            home,
            base_port,
            nodes,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let out = kvctl()
            .arg("--home")
            .arg(cluster.home.path())
            .args([
                "cluster",
                "up",
                "--detach",
                "--nodes",
                &nodes.to_string(),
                "--base-port",
                &base_port.to_string(),
            ])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run kvctl");
        assert!(
            out.status.success(),
            "cluster up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// A transport with a node certificate of the cluster's CA for the node id `id`.
    pub fn peer(
        &self,
        rt: &tokio::runtime::Runtime,
        id: &str,
    ) -> kvctl::wire::transport::Transport {
        let identity = self.node_identity(id);
        let _runtime = rt.enter();
        kvctl::wire::transport::Transport::client(&identity).unwrap()
    }

    /// A node certificate of the cluster's CA for the node id `id` (made with `kvctl cert
    /// node`), as an identity.
    pub fn node_identity(&self, id: &str) -> kvctl::wire::tls::Identity {
        let dir = tempfile::tempdir().unwrap();
        let out = kvctl()
            .args(["cert", "node", "--ca-dir"])
            .arg(self.home().join("certs"))
            .args(["--id", id, "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        kvctl::wire::tls::Identity::new(
            &kvctl::wire::certs::read(dir.path(), "node").unwrap(),
            &kvctl::wire::certs::read_cert(dir.path(), "ca").unwrap(),
        )
        .unwrap()
    }

    /// A transport with the cluster's client certificate.
    pub fn client_transport(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> kvctl::wire::transport::Transport {
        let dir = self.home().join("certs");
        let identity = kvctl::wire::tls::Identity::new(
            &kvctl::wire::certs::read(&dir, "client").unwrap(),
            &kvctl::wire::certs::read_cert(&dir, "ca").unwrap(),
        )
        .unwrap();
        let _runtime = rt.enter();
        kvctl::wire::transport::Transport::client(&identity).unwrap()
    }

    pub fn home(&self) -> PathBuf {
        self.home.path().to_path_buf()
    }

    pub fn addr(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.base_port + node as u16 - 1)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        kvctl()
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run kvctl")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = kvctl()
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kvctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        child.wait_with_output().expect("wait kvctl")
    }

    /// Runs kvctl and returns its stdout, failing the test if it fails.
    pub fn must(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kvctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn must_json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        serde_json::from_str(&self.must(&args)).expect("JSON output")
    }

    /// The node's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_memory(&self, node: usize) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(node)))
            .expect("the node's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .expect("VmHWM")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("a number of kB");
        kib * 1024
    }

    pub fn pid(&self, node: usize) -> u32 {
        let path = self.home.path().join(format!("nodes/node-{node}/node.pid"));
        std::fs::read_to_string(&path)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    pub fn sigkill(&self, node: usize) {
        let pid = self.pid(node);
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        // Wait until it is gone (a detached node is reaped by init at once).
        for _ in 0..250 {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("node {node} (pid {pid}) is still there 5 s after SIGKILL");
    }
}

impl Cluster {
    /// Kills node `node` and starts it again with the command line it had, by hand (so
    /// without `cluster up`, which asks the other nodes whether it is up), with `env` added;
    /// its output goes on to its log. The caller kills the process it returns.
    pub fn restart_by_hand(&self, node: usize, env: &[(&str, &str)]) -> std::process::Child {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid(node))).unwrap();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        self.sigkill(node);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.home().join(format!("nodes/node-{node}/node.log")))
            .unwrap();
        Command::new(&args[0])
            .args(&args[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["cluster", "down"]);
    }
}
