//! The ring and status views, as text and as JSON: shared by the shell and by `kvctl ring` and
//! `kvctl status`, so that both print the same.

use std::collections::BTreeMap;
use std::path::Path;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use kvctl::client::home;
use kvctl::model::ring::{token_of, Ring};
use kvctl::wire::proto::MemberView;

/// A table with a header row (no newline at the end).
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
}

/// Pretty-printed JSON (no newline at the end).
pub fn json_text(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialize")
}

pub fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// The pids of the local cluster's node processes in `home`, by node id, as `pid_of` finds them
/// from a node's directory (empty for a cluster whose nodes run elsewhere).
pub fn local_pids(home: &Path, pid_of: fn(&Path) -> Option<u32>) -> BTreeMap<String, u32> {
    home::read(home)
        .map(|cluster| {
            cluster
                .nodes
                .iter()
                .filter_map(|n| Some((n.id.clone(), pid_of(&home.join(&n.dir))?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The ring as the members a node knows make it up.
pub struct RingView {
    ring: Ring,
    replication: usize,
}

impl RingView {
    pub fn new(members: &[MemberView], replication: usize) -> RingView {
        RingView {
            ring: Ring::new(
                members
                    .iter()
                    .map(|m| (m.member.id.clone(), m.member.tokens.clone())),
            ),
            replication,
        }
    }

    /// A key's token and preference list.
    pub fn key_json(&self, key: &str) -> serde_json::Value {
        serde_json::json!({
            "key": key,
            "token": format!("{:032x}", token_of(key.as_bytes())),
            "preference_list": self.ring.preference_list(key.as_bytes(), self.replication),
        })
    }

    pub fn key_text(&self, key: &str) -> String {
        let token = token_of(key.as_bytes());
        let pref = self.ring.preference_list(key.as_bytes(), self.replication);
        let replicas = pref.join(", ");
        let n = self.replication;
        format!(
            "key        {key}\ntoken      {token:032x}\n\
             replicas   {replicas} (N = {n}, first is the owner)"
        )
    }

    /// Each node's tokens and ownership, and the balance figure.
    pub fn json(&self) -> serde_json::Value {
        let ownership = self.ring.ownership();
        serde_json::json!({
            "nodes": self.ring.nodes().iter().map(|n| serde_json::json!({
                "id": n,
                "tokens": self.ring.tokens_of(n).len(),
                "ownership": ownership.get(n).copied().unwrap_or(0.0),
            })).collect::<Vec<_>>(),
            "balance": self.ring.balance(),
        })
    }

    pub fn text(&self) -> String {
        let ownership = self.ring.ownership();
        let rows = self
            .ring
            .nodes()
            .iter()
            .map(|n| {
                vec![
                    n.clone(),
                    self.ring.tokens_of(n).len().to_string(),
                    percent(ownership.get(n).copied().unwrap_or(0.0)),
                ]
            })
            .collect();
        format!(
            "{}\nbalance: largest ownership is {:.3} x the mean",
            table(&["node", "tokens", "ownership"], rows),
            self.ring.balance()
        )
    }
}

/// The members as one node (`seen_by`) sees them, with the pids of local node processes.
pub struct StatusView {
    seen_by: String,
    members: Vec<MemberView>,
    pids: BTreeMap<String, u32>,
    ownership: BTreeMap<String, f64>,
}

impl StatusView {
    pub fn new(
        seen_by: String,
        members: Vec<MemberView>,
        pids: BTreeMap<String, u32>,
    ) -> StatusView {
        let ownership = RingView::new(&members, 1).ring.ownership();
        StatusView {
            seen_by,
            members,
            pids,
            ownership,
        }
    }

    fn state(m: &MemberView) -> String {
        if m.up {
            format!("{:?}", m.member.state).to_lowercase()
        } else {
            "down".into()
        }
    }

    fn owned(&self, m: &MemberView) -> f64 {
        self.ownership.get(&m.member.id).copied().unwrap_or(0.0)
    }

    pub fn json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.member.id,
                    "address": m.member.addr.to_string(),
                    "state": Self::state(m),
                    "pid": self.pids.get(&m.member.id),
                    "ownership": self.owned(m),
                    "last_gossip_age_ms": m.heartbeat_age_ms,
                    "tokens": m.member.tokens.len(),
                    "phi": (m.phi * 100.0).round() / 100.0,
                    "hints_pending": m.member.hints_pending,
                    "hints_refused": m.member.hints_refused,
                    "metrics": m.member.metrics.map(|a| a.to_string()),
                    "siblings_trimmed": m.member.siblings_trimmed,
                })
            })
            .collect();
        serde_json::json!({ "seen_by": self.seen_by, "nodes": nodes })
    }

    pub fn text(&self) -> String {
        let rows = self
            .members
            .iter()
            .map(|m| {
                vec![
                    m.member.id.clone(),
                    m.member.addr.to_string(),
                    Self::state(m),
                    self.pids
                        .get(&m.member.id)
                        .map_or("-".into(), |p| p.to_string()),
                    percent(self.owned(m)),
                    format!("{:.1} s", m.heartbeat_age_ms as f64 / 1000.0),
                    match m.member.hints_refused {
                        0 => m.member.hints_pending.to_string(),
                        refused => format!("{} ({refused} refused)", m.member.hints_pending),
                    },
                    m.member.siblings_trimmed.to_string(),
                ]
            })
            .collect();
        table(
            &[
                "node",
                "address",
                "state",
                "pid",
                "ownership",
                "last gossip",
                "hints",
                "trimmed",
            ],
            rows,
        )
    }
}
