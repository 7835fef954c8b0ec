//! `kvctl bench --workload fsync`: how fast, and how steadily, a disk makes appends durable.
//!
//! Each of `--concurrency` writers appends `--value-size` bytes to its own log file through the
//! engine's file layer (preallocated, as the WAL is) and syncs it after every append, until
//! `--operations` syncs are done in all. No cluster is involved. A node acknowledges a write
//! only after a sync like these on W replicas, so this sync's latency is a floor under write
//! latency; and nodes that share a disk (a local cluster) see its stalls at the same moment,
//! which no quorum can hide. etcd's documentation asks the same of a disk (fio with fdatasync,
//! p99 under 10 ms).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use kvctl::storage::engine::{LogFs, OsLogFs};

use crate::cli::{BenchArgs, Output};
use crate::output;

/// Syncs slower than this are counted as stalls in the report.
const STALL: Duration = Duration::from_millis(10);

/// What the writers measured.
struct Measured {
    syncs: Histogram<u64>,
    elapsed: Duration,
}

pub fn run(dir: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.operations == 0 || args.value_size == 0 {
        bail!("--concurrency, --operations and --value-size must be positive for --workload fsync");
    }
    // A scratch directory beside whatever else is there, removed when done (also on error).
    let scratch = tempfile::Builder::new()
        .prefix(".kvctl-bench-fsync-")
        .tempdir_in(dir)
        .with_context(|| {
            format!(
                "making a scratch directory in {} (give --dir an existing directory on the disk \
                 to check)",
                dir.display()
            )
        })?;
    let bar = crate::bench::bar(args.operations, "fsync");
    let measured = measure(scratch.path(), args, &bar)?;
    bar.finish_and_clear();
    scratch
        .close()
        .with_context(|| format!("removing the scratch directory in {}", dir.display()))?;
    report(dir, args, &measured)
}

fn measure(
    scratch: &Path,
    args: &BenchArgs,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Measured> {
    // Syncs handed out so far; a writer that fails pushes it past the end to stop the others.
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let writers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let path = scratch.join(format!("writer-{w}.log"));
            let (next, bar) = (next.clone(), bar.clone());
            let (operations, size) = (args.operations, args.value_size);
            std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
                let written = write_and_sync(&path, size, operations, &next, &bar);
                if written.is_err() {
                    next.store(u64::MAX / 2, Ordering::Relaxed);
                }
                written
            })
        })
        .collect();
    // Every writer is joined before the scratch directory can go.
    let mut syncs = crate::bench::histogram();
    let mut failed = None;
    for writer in writers {
        match writer.join() {
            Ok(Ok(h)) => syncs.add(h).expect("same bounds"),
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(_) => failed = failed.or(Some(anyhow::anyhow!("a writer thread panicked"))),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Measured {
        syncs,
        elapsed: start.elapsed(),
    })
}

/// One writer: appends `size` bytes and syncs, while syncs are left to hand out.
fn write_and_sync(
    path: &Path,
    size: usize,
    operations: u64,
    next: &AtomicU64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    let mut file = OsLogFs
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let record = vec![0xA5u8; size];
    let mut syncs = crate::bench::histogram();
    while next.fetch_add(1, Ordering::Relaxed) < operations {
        let began = Instant::now();
        file.append(&record)
            .with_context(|| format!("appending to {}", path.display()))?;
        file.sync()
            .with_context(|| format!("syncing {}", path.display()))?;
        let _ = syncs.record(began.elapsed().as_micros().max(1) as u64);
        bar.inc(1);
    }
    file.finish()
        .with_context(|| format!("closing {}", path.display()))?;
    Ok(syncs)
}

fn report(dir: &Path, args: &BenchArgs, m: &Measured) -> anyhow::Result<()> {
    let h = &m.syncs;
    let rate = h.len() as f64 / m.elapsed.as_secs_f64();
    let stalls = h.count_between(STALL.as_micros() as u64, h.max());
    let [p50, p99, p999, max] = [
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    ]
    .map(crate::bench::ms);
    match args.output {
        Output::Json => output::json(&serde_json::json!({
            "workload": "fsync",
            "dir": dir.display().to_string(),
            "writers": args.concurrency,
            "append_bytes": args.value_size,
            "syncs": h.len(),
            "seconds": m.elapsed.as_secs_f64(),
            "syncs_per_sec": rate,
            "p50_ms": p50,
            "p99_ms": p99,
            "p999_ms": p999,
            "max_ms": max,
            "stalls": stalls,
            "stall_ms": STALL.as_millis() as u64,
        }))?,
        Output::Table => {
            println!(
                "fsync: {} syncs in {:.2} s = {rate:.0} syncs/s ({} writers, {}-byte appends, in {}); \
                 {stalls} took {} ms or more",
                h.len(),
                m.elapsed.as_secs_f64(),
                args.concurrency,
                args.value_size,
                dir.display(),
                STALL.as_millis(),
            );
            let mut row = vec!["append + fdatasync".to_string(), h.len().to_string()];
            row.extend([p50, p99, p999, max].map(|v| format!("{v:.2}")));
            output::table(
                &[
                    "operation",
                    "count",
                    "p50 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "max ms",
                ],
                vec![row],
            )?;
        }
    }
    Ok(())
}
