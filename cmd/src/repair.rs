//! `kvctl repair`: anti-entropy on demand. Every token range of the ring (or those of one node,
//! or those ending in a token span) is repaired by one of its replicas: the replicas compare
//! Merkle trees, and only the keys of differing leaves are streamed and merged (see the node's
//! `repair` module and docs/repair.md).
//!
//! Resumable: the ranges done are kept in the cluster's home (`repair-state.json`, with the
//! ring they were done on and the selection); a repair started again with the same ring and
//! selection skips them. The file goes once every range it covers is in sync.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use kvctl::client::home;
use kvctl::client::{Client, RangeRepaired};
use kvctl::model::ring::Ring;
use kvctl::wire::proto::ErrorKind;
use kvctl_node::logic::merkle::in_range;
use serde::{Deserialize, Serialize};

use crate::bench::bar;
use crate::cli::{Output, RepairArgs};
use crate::output;

/// Where an interrupted repair's progress is kept, in the cluster's home.
pub const STATE_FILE: &str = "repair-state.json";

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    /// The ring the ranges were repaired on (its tokens and owners, hashed).
    ring: String,
    /// What was asked for (`--node`, `--range`).
    selection: String,
    /// Ranges done, as "after:upto".
    done: BTreeSet<String>,
}

fn range_name((after, upto): (u128, u128)) -> String {
    format!("{after:x}:{upto:x}")
}

/// A fingerprint of the ring: every range's end token and replicas.
fn fingerprint(ring: &Ring, replication: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (_, upto) in ring.token_ranges() {
        let replicas = ring.preference_list_for_token(upto, replication).join(",");
        for b in upto.to_be_bytes().iter().chain(replicas.as_bytes()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn load_state(path: &Path) -> Option<State> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn save_state(path: &Path, state: &State) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(state)?;
    kvctl::storage::durable_file::write(path, &text)?;
    Ok(())
}

/// What a repair did, over all its ranges.
#[derive(Debug, Default)]
struct Totals {
    ranges: u64,
    skipped: u64,
    in_sync: u64,
    repaired: u64,
    keys: u64,
    leaves_differing: u64,
    keys_sent: u64,
    bytes_sent: u64,
    failed: Vec<(String, String)>,
}

impl Totals {
    fn add(&mut self, r: &RangeRepaired) {
        if r.in_sync_before {
            self.in_sync += 1;
        } else {
            self.repaired += 1;
        }
        self.keys += r.keys;
        self.leaves_differing += r.leaves_differing;
        self.keys_sent += r.keys_sent;
        self.bytes_sent += r.bytes_sent;
    }
}

pub async fn run(home_dir: &Path, args: RepairArgs) -> anyhow::Result<()> {
    let client = Client::from_home(home_dir)?;
    let result = repair(home_dir, &client, &args).await;
    client.close().await;
    result
}

async fn repair(home_dir: &Path, client: &Client, args: &RepairArgs) -> anyhow::Result<()> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a number of MiB a second, 0 or more");
    }
    let rate = (args.rate * (1 << 20) as f64) as u64;
    let (_, members) = client.status(None).await?;
    let ring = Ring::new(
        members
            .iter()
            .map(|m| (m.member.id.clone(), m.member.tokens.clone())),
    );
    let replication = home::read(home_dir).map(|c| c.replication).unwrap_or(3);
    let addrs: BTreeMap<String, (SocketAddr, bool)> = members
        .iter()
        .map(|m| (m.member.id.clone(), (m.member.addr, m.up)))
        .collect();
    if let Some(id) = &args.node {
        if !ring.contains(id) {
            let ids: Vec<&str> = ring.nodes().iter().map(String::as_str).collect();
            bail!(
                "no node {id} in the cluster (its nodes: {})",
                ids.join(", ")
            );
        }
    }
    let ranges: Vec<((u128, u128), Vec<String>)> = ring
        .token_ranges()
        .into_iter()
        .map(|r| (r, ring.preference_list_for_token(r.1, replication)))
        .filter(|(_, replicas)| args.node.as_ref().is_none_or(|id| replicas.contains(id)))
        .filter(|((_, upto), _)| args.range.is_none_or(|(a, b)| in_range(a, b, *upto)))
        .collect();
    if ranges.is_empty() {
        bail!(
            "no token range matches --range {:?}",
            args.range.unwrap_or_default()
        );
    }

    let state_path: PathBuf = home_dir.join(STATE_FILE);
    let selection = format!(
        "node={} range={}",
        args.node.as_deref().unwrap_or("*"),
        args.range.map_or("*".to_string(), range_name)
    );
    let ring_print = fingerprint(&ring, replication);
    let mut state = match load_state(&state_path) {
        Some(s) if !args.restart && s.ring == ring_print && s.selection == selection => s,
        _ => State {
            ring: ring_print,
            selection,
            done: BTreeSet::new(),
        },
    };

    let started = Instant::now();
    let mut totals = Totals::default();
    let progress = bar(ranges.len() as u64, "ranges");
    for (range, replicas) in &ranges {
        totals.ranges += 1;
        progress.inc(1);
        let name = range_name(*range);
        if state.done.contains(&name) {
            totals.skipped += 1;
            continue;
        }
        // The node asked for, or the first replica that is up, coordinates.
        let coordinator = match &args.node {
            Some(id) => Some(id.clone()),
            None => replicas
                .iter()
                .find(|id| addrs.get(*id).is_some_and(|(_, up)| *up))
                .cloned(),
        };
        let Some((addr, _)) = coordinator.as_ref().and_then(|id| addrs.get(id)) else {
            totals
                .failed
                .push((name, format!("no replica is up ({})", replicas.join(", "))));
            continue;
        };
        match client.repair(*addr, range.0, range.1, rate).await {
            Ok(r) => {
                totals.add(&r);
                state.done.insert(name);
                save_state(&state_path, &state)?;
            }
            // Every other range would be refused the same way: stop at once, saying why.
            Err(e) if e.kind() == Some(ErrorKind::Forbidden) => {
                progress.finish_and_clear();
                bail!("{addr} refused the repair: {e}");
            }
            Err(e) => totals.failed.push((name, e.to_string())),
        }
    }
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if totals.failed.is_empty() {
        let _ = std::fs::remove_file(&state_path);
    }
    print_summary(&totals, seconds, args.output)?;
    if !totals.failed.is_empty() {
        for (range, why) in totals.failed.iter().take(10) {
            eprintln!("range {range}: {why}");
        }
        bail!(
            "{} of {} ranges are not in sync (run `kvctl repair` again to retry them; ranges \
             done are skipped)",
            totals.failed.len(),
            totals.ranges
        );
    }
    Ok(())
}

fn print_summary(t: &Totals, seconds: f64, out: Output) -> anyhow::Result<()> {
    match out {
        Output::Json => output::json(&serde_json::json!({
            "ranges": t.ranges,
            "ranges_skipped": t.skipped,
            "ranges_in_sync": t.in_sync,
            "ranges_repaired": t.repaired,
            "ranges_failed": t.failed.len(),
            "failures": t.failed.iter().map(|(r, why)| serde_json::json!({"range": r, "error": why})).collect::<Vec<_>>(),
            "keys": t.keys,
            "leaves_differing": t.leaves_differing,
            "keys_sent": t.keys_sent,
            "bytes_sent": t.bytes_sent,
            "seconds": (seconds * 1000.0).round() / 1000.0,
        }))?,
        Output::Table => output::table(
            &[
                "ranges",
                "skipped",
                "in sync",
                "repaired",
                "failed",
                "keys",
                "keys sent",
                "bytes sent",
                "time",
            ],
            vec![vec![
                t.ranges.to_string(),
                t.skipped.to_string(),
                t.in_sync.to_string(),
                t.repaired.to_string(),
                t.failed.len().to_string(),
                t.keys.to_string(),
                t.keys_sent.to_string(),
                t.bytes_sent.to_string(),
                format!("{seconds:.1} s"),
            ]],
        )?,
    }
    Ok(())
}
