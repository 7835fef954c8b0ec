//! A small workload: tasks writing and reading a few hundred keys for a few seconds, reporting
//! operations per second and the errors seen (with the client's retries on).
//!
//! ```sh
//! cargo run --release --example workload [-- DIR [SECONDS]]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvctl::client::home;
use kvctl::client::Client;
use kvctl::wire::proto::Consistency;

const KEYS: u64 = 300;
const TASKS: u64 = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(std::path::PathBuf::from);
    let seconds: u64 = args.next().map_or(Ok(3), |s| s.parse())?;
    let home = home::resolve(dir.as_deref())?;
    let client = Arc::new(Client::builder_from_home(&home)?.attempts_max(3).build()?);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (client, done, errors) = (client.clone(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while Instant::now() < until {
                let key = format!("workload:{}", i % KEYS);
                let ok = if i % 2 == 0 {
                    let value = format!("value {i}");
                    // Last-write-wins: a workload that overwrites without reading first.
                    let level = Consistency::Quorum;
                    let put = client.put(
                        key.as_bytes(),
                        Some(value.as_bytes()),
                        None,
                        level,
                        true,
                        None,
                    );
                    put.await.is_ok()
                } else {
                    let get = client.get(key.as_bytes(), Consistency::Quorum, None);
                    get.await.is_ok()
                };
                let counter = if ok { &done } else { &errors };
                counter.fetch_add(1, Ordering::Relaxed);
                i += TASKS;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let ops = done.load(Ordering::Relaxed);
    println!(
        "{ops} operations in {seconds} s ({:.0} ops/s), {} errors",
        ops as f64 / seconds as f64,
        errors.load(Ordering::Relaxed)
    );
    client.close().await;
    Ok(())
}
