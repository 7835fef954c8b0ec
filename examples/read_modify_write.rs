//! A read-modify-write with causal contexts: several tasks increment one counter at once.
//!
//! Each task reads the counter (every sibling and the context), resolves the siblings (here:
//! the largest count wins), and writes the count plus one back with the context, so the write
//! supersedes exactly what it read. Increments made at the same moment come back as siblings
//! at the next read and are resolved then: nothing is overwritten unseen. (A counter that
//! must not lose concurrent increments would keep one count per writer and add them up.)
//!
//! ```sh
//! cargo run --example read_modify_write [-- DIR]
//! ```

use std::sync::Arc;

use kvctl::client::home;
use kvctl::client::{Client, ClientError, GetResult};
use kvctl::wire::proto::Consistency;

const KEY: &[u8] = b"example:counter";
const TASKS: u64 = 4;
const INCREMENTS: u64 = 25;
const LEVEL: Consistency = Consistency::Quorum;

/// The counter's value after a read: siblings are resolved by taking the largest.
fn current(read: &GetResult) -> u64 {
    read.values
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Reads the counter and writes `change(count)` back with the read's context; returns how
/// many siblings the read resolved.
async fn read_modify_write(
    client: &Client,
    change: impl Fn(u64) -> u64,
) -> Result<usize, ClientError> {
    let read = client.get(KEY, LEVEL, None).await?;
    let context = read.found.then_some(read.context.as_str());
    let next = change(current(&read)).to_string();
    client
        .put(KEY, Some(next.as_bytes()), context, LEVEL, false, None)
        .await?;
    Ok(read.values.len().saturating_sub(1))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from);
    let home = home::resolve(dir.as_deref())?;
    let client = Arc::new(Client::from_home(&home)?);

    // Start from 0, replacing whatever an earlier run left.
    read_modify_write(&client, |_| 0).await?;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut resolved = 0;
            for _ in 0..INCREMENTS {
                resolved += read_modify_write(&client, |n| n + 1).await?;
            }
            Ok::<_, ClientError>(resolved)
        }));
    }
    let mut resolved = 0;
    for task in tasks {
        resolved += task.await??;
    }
    // One more write with the context of a read resolves what the last writes left.
    resolved += read_modify_write(&client, |n| n).await?;

    let read = client.get(KEY, LEVEL, None).await?;
    println!(
        "{} increments by {TASKS} tasks; siblings resolved on the way: {resolved}",
        TASKS * INCREMENTS
    );
    println!(
        "counter = {} ({} value left)",
        current(&read),
        read.values.len()
    );
    client.close().await;
    Ok(())
}
