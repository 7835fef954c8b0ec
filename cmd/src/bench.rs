//! `kvctl bench`: YCSB-style workloads against a running cluster.
//!
//! Workload a is 50 % reads and 50 % updates, b 95 % / 5 %, c reads only; keys are drawn from
//! a zipfian distribution (YCSB's, θ = 0.99) over the loaded records. The load phase writes
//! every record first. Requests in flight are bounded by `--concurrency`. `--workload fsync`, the
//! disk check, is in `disk`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use kvctl::client::Client;
use rand::{Rng, SeedableRng};

use crate::cli::{BenchArgs, KeyOrder, Output, Workload};
use crate::output;

/// YCSB's zipfian generator over `0..n` (Gray et al., "Quickly generating billion-record
/// synthetic databases").
struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    fn new(n: u64) -> Zipfian {
        let theta = 0.99;
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2.min(n));
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian {
            n,
            theta,
            alpha,
            zetan,
            eta,
        }
    }

    fn next(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let v = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.n - 1)
    }
}

/// Record `i`'s key: `user` and its number (`ordered`: the zipfian's hot records sit side by
/// side in key order), or `user` and the FNV-1a hash of its number (`hashed`, YCSB's default insert
/// order: hot records spread over the key space, as real keys mostly are).
fn key(i: u64, order: KeyOrder) -> String {
    match order {
        KeyOrder::Ordered => format!("user{i:012}"),
        KeyOrder::Hashed => {
            let h = i
                .to_le_bytes()
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
                });
            format!("user{h:016x}")
        }
    }
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("a valid template"),
    );
    bar
}

#[derive(Default)]
struct Stats {
    reads: Option<Histogram<u64>>,
    updates: Option<Histogram<u64>>,
    errors: u64,
}

/// Microseconds, from 1 µs to a minute, three significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub async fn run(home: &Path, args: BenchArgs) -> anyhow::Result<()> {
    let Some(read_percent) = read_percent(args.workload) else {
        bail!("--workload fsync checks a disk and needs no cluster: it does not run here");
    };
    if args.dir.is_some() {
        bail!("--dir is for --workload fsync; workloads a, b and c run against the cluster");
    }
    if args.records == 0 || args.concurrency == 0 {
        bail!("--records and --concurrency must be positive");
    }
    let client = Arc::new(
        Client::builder_from_home(home)?
            .attempts_max(args.attempts)
            .build()?,
    );
    let node = args.node;
    let value = vec![b'v'; args.value_size];
    let level = args.consistency;
    let order = args.key_order;

    // Load.
    let load = bar(args.records, "load");
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, value, next, load) =
            (client.clone(), value.clone(), next.clone(), load.clone());
        let records = args.records;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= records {
                    return Ok::<_, anyhow::Error>(());
                }
                client
                    .put(
                        key(i, order).as_bytes(),
                        Some(&value),
                        None,
                        level,
                        false,
                        node,
                    )
                    .await?;
                load.inc(1);
            }
        }));
    }
    for t in tasks {
        t.await
            .context("a load task failed")?
            .context("loading records")?;
    }
    load.finish_and_clear();

    // Run.
    let zipf = Arc::new(Zipfian::new(args.records));
    let run_bar = bar(
        args.operations,
        &format!("workload {:?}", args.workload).to_lowercase(),
    );
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let (client, value, next, bar, zipf) = (
            client.clone(),
            value.clone(),
            next.clone(),
            run_bar.clone(),
            zipf.clone(),
        );
        let (operations, seed) = (args.operations, args.seed.wrapping_add(t as u64));
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut stats = Stats {
                reads: Some(histogram()),
                updates: Some(histogram()),
                errors: 0,
            };
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < operations {
                let k = key(zipf.next(&mut rng), order);
                let read = rng.random_range(0..100) < read_percent;
                let began = Instant::now();
                let ok = if read {
                    client.get(k.as_bytes(), level, node).await.is_ok()
                } else {
                    client
                        .put(k.as_bytes(), Some(&value), None, level, true, node)
                        .await
                        .is_ok()
                };
                let micros = began.elapsed().as_micros().max(1) as u64;
                let h = if read {
                    stats.reads.as_mut()
                } else {
                    stats.updates.as_mut()
                };
                if ok {
                    let _ = h.expect("made above").record(micros);
                } else {
                    stats.errors += 1;
                }
                bar.inc(1);
            }
            stats
        }));
    }
    let mut reads = histogram();
    let mut updates = histogram();
    let mut errors = 0;
    for t in tasks {
        let s = t.await.context("a benchmark task failed")?;
        reads
            .add(s.reads.expect("made above"))
            .expect("same bounds");
        updates
            .add(s.updates.expect("made above"))
            .expect("same bounds");
        errors += s.errors;
    }
    let elapsed = start.elapsed();
    run_bar.finish_and_clear();
    client.close().await;
    report(&args, elapsed, &reads, &updates, errors)
}

/// The share of reads in a cluster workload (none for the disk check).
fn read_percent(workload: Workload) -> Option<u32> {
    match workload {
        Workload::A => Some(50),
        Workload::B => Some(95),
        Workload::C => Some(100),
        Workload::Fsync => None,
    }
}

/// Microseconds as milliseconds.
pub(crate) fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn report(
    args: &BenchArgs,
    elapsed: Duration,
    reads: &Histogram<u64>,
    updates: &Histogram<u64>,
    errors: u64,
) -> anyhow::Result<()> {
    let total = reads.len() + updates.len();
    let ops = total as f64 / elapsed.as_secs_f64();
    let row = |name: &str, h: &Histogram<u64>| {
        serde_json::json!({
            "operation": name,
            "count": h.len(),
            "p50_ms": ms(h.value_at_quantile(0.5)),
            "p99_ms": ms(h.value_at_quantile(0.99)),
            "p999_ms": ms(h.value_at_quantile(0.999)),
        })
    };
    let rows: Vec<_> = [("read", reads), ("update", updates)]
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(n, h)| row(n, h))
        .collect();
    match args.output {
        Output::Json => output::json(&serde_json::json!({
            "workload": format!("{:?}", args.workload).to_lowercase(),
            "records": args.records,
            "operations": total,
            "errors": errors,
            "value_size": args.value_size,
            "key_order": format!("{:?}", args.key_order).to_lowercase(),
            "concurrency": args.concurrency,
            "consistency": args.consistency.to_string(),
            "seconds": elapsed.as_secs_f64(),
            "ops_per_sec": ops,
            "latency": rows,
        }))?,
        Output::Table => {
            println!(
                "workload {:?}: {total} operations in {:.2} s = {:.0} ops/s ({} errors; {} records, {}-byte values, {} in flight, {})",
                args.workload,
                elapsed.as_secs_f64(),
                ops,
                errors,
                args.records,
                args.value_size,
                args.concurrency,
                args.consistency
            );
            let table_rows = rows
                .iter()
                .map(|r| {
                    vec![
                        r["operation"].as_str().unwrap_or_default().to_string(),
                        r["count"].to_string(),
                        format!("{:.2}", r["p50_ms"].as_f64().unwrap_or_default()),
                        format!("{:.2}", r["p99_ms"].as_f64().unwrap_or_default()),
                        format!("{:.2}", r["p999_ms"].as_f64().unwrap_or_default()),
                    ]
                })
                .collect();
            output::table(
                &["operation", "count", "p50 ms", "p99 ms", "p99.9 ms"],
                table_rows,
            )?;
        }
    }
    Ok(())
}
