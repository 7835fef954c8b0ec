//! `kvctl ring`: tokens and ownership per node, and a key's place on the ring.

use std::path::Path;

use kvctl::client::home;
use kvctl::client::Client;
use kvctl_shell::view::RingView;

use crate::cli::{Output, RingArgs};
use crate::output;

pub async fn run(home_dir: &Path, args: RingArgs) -> anyhow::Result<()> {
    let client = Client::from_home(home_dir)?;
    let status = client.status(args.node).await;
    client.close().await;
    let (_, members) = status?;
    let replication = home::read(home_dir).map(|c| c.replication).unwrap_or(3);
    let ring = RingView::new(&members, replication);
    match (&args.key, args.output) {
        (Some(key), Output::Json) => output::json(&ring.key_json(key))?,
        (Some(key), Output::Table) => output::text(&ring.key_text(key))?,
        (None, Output::Json) => output::json(&ring.json())?,
        (None, Output::Table) => output::text(&ring.text())?,
    }
    Ok(())
}
