//! `kvctl workers`: each node's background workers (gossip, hint replay, anti-entropy, the
//! tombstone sweep, repairs in progress) and its engine's figures, as each node reports them.

use std::path::Path;

use kvctl::client::Client;
use kvctl::wire::proto::{EngineInfo, ErrorKind, WorkerInfo};
use serde_json::json;

use crate::cli::{Output, WorkersArgs};
use crate::output;

/// What one node said.
struct Report {
    id: String,
    outcome: Result<(Vec<WorkerInfo>, EngineInfo), String>,
}

pub async fn run(home: &Path, args: WorkersArgs) -> anyhow::Result<()> {
    let client = Client::from_home(home)?;
    let (_, members) = client.status(None).await?;
    if let Some(id) = &args.node {
        if !members.iter().any(|m| &m.member.id == id) {
            let ids: Vec<&str> = members.iter().map(|m| m.member.id.as_str()).collect();
            anyhow::bail!(
                "no node {id} in the cluster (its nodes: {})",
                ids.join(", ")
            );
        }
    }
    let mut reports = Vec::new();
    for m in members
        .iter()
        .filter(|m| args.node.as_ref().is_none_or(|id| *id == m.member.id))
    {
        let outcome = if !m.up {
            Err("down".to_string())
        } else {
            match client.node_info(m.member.addr).await {
                Ok((_, workers, engine)) => Ok((workers, engine)),
                Err(e) if e.kind() == Some(ErrorKind::Unsupported) => {
                    Err("an earlier release: it does not list its workers".to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        };
        reports.push(Report {
            id: m.member.id.clone(),
            outcome,
        });
    }
    client.close().await;
    match args.output {
        Output::Json => output::json(&json!({
            "nodes": reports.iter().map(report_json).collect::<Vec<_>>()
        }))?,
        Output::Table => {
            for report in &reports {
                output::text(&format!("{}:", report.id))?;
                match &report.outcome {
                    Ok((workers, engine)) => {
                        output::table(
                            &[
                                "worker",
                                "state",
                                "progress",
                                "done",
                                "errors",
                                "last error",
                            ],
                            workers.iter().map(worker_row).collect(),
                        )?;
                        output::text(&engine_line(engine))?;
                    }
                    Err(why) => output::text(&format!("  not asked: {why}"))?,
                }
            }
        }
    }
    Ok(())
}

fn worker_row(w: &WorkerInfo) -> Vec<String> {
    vec![
        w.name.clone(),
        w.state.to_string(),
        w.progress.clone(),
        w.done.to_string(),
        w.errors.to_string(),
        match (&w.last_error, w.last_error_at_ms) {
            (Some(e), Some(at)) => format!("{e} (at {})", time_of(at)),
            (Some(e), None) => e.clone(),
            (None, _) => "-".into(),
        },
    ]
}

/// A wall-clock time in milliseconds since the epoch, as RFC 3339 (UTC, seconds).
fn time_of(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn engine_line(e: &EngineInfo) -> String {
    let lookups = e.cache_hits + e.cache_misses;
    let hit_ratio = if lookups == 0 {
        "-".to_string()
    } else {
        format!("{:.1} %", 100.0 * e.cache_hits as f64 / lookups as f64)
    };
    format!(
        "engine: {} flushes, {} compactions, tables per level {:?}, memtable {} KiB, block \
         cache hits {hit_ratio}",
        e.flushes,
        e.compactions,
        e.tables_per_level,
        e.memtable_bytes >> 10
    )
}

fn report_json(r: &Report) -> serde_json::Value {
    match &r.outcome {
        Ok((workers, engine)) => json!({
            "id": r.id,
            "workers": workers.iter().map(|w| json!({
                "name": w.name,
                "state": w.state.to_string(),
                "progress": w.progress,
                "done": w.done,
                "errors": w.errors,
                "last_error": w.last_error,
                "last_error_at": w.last_error_at_ms.map(time_of),
            })).collect::<Vec<_>>(),
            "engine": {
                "last_seq": engine.last_seq,
                "memtable_bytes": engine.memtable_bytes,
                "wal_segments": engine.wal_segments,
                "tables_per_level": engine.tables_per_level,
                "bytes_per_level": engine.bytes_per_level,
                "cache_bytes": engine.cache_bytes,
                "cache_hits": engine.cache_hits,
                "cache_misses": engine.cache_misses,
                "flushes": engine.flushes,
                "compactions": engine.compactions,
                "wal_syncs": engine.wal_syncs,
            },
        }),
        Err(why) => json!({ "id": r.id, "error": why }),
    }
}
