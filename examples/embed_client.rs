//! Embedding the client: connect to a cluster, write a key, read it back.
//!
//! Run against a local cluster (`kvctl cluster up --detach`):
//!
//! ```sh
//! cargo run --example embed_client            # the cluster in ~/.kvctl, or $KVCTL_HOME
//! cargo run --example embed_client -- DIR     # the cluster whose home is DIR
//! ```
//!
//! For a cluster elsewhere, build the client from its certificates and seed nodes instead:
//! `ClientBuilder::new(Identity::new(&own, &ca_pem)?, vec!["10.0.0.1:7701".parse()?])`.

use std::time::Duration;

use kvctl::client::home;
use kvctl::client::Client;
use kvctl::wire::proto::Consistency;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from);
    let home = home::resolve(dir.as_deref())?;
    // The builder holds the settings; these are the defaults but for the timeout.
    let client = Client::builder_from_home(&home)?
        .request_timeout(Duration::from_secs(3))
        .attempts_max(3)
        .build()?;

    let level = Consistency::Quorum;
    let context = client
        .put(b"greeting", Some(b"hello"), None, level, false, None)
        .await?;
    println!("wrote greeting (context {} bytes)", context.len());

    let read = client.get(b"greeting", level, None).await?;
    for value in &read.values {
        println!("greeting = {}", String::from_utf8_lossy(value));
    }
    if let Some(topology) = client.topology().await {
        let replicas = topology
            .ring()
            .preference_list(b"greeting", topology.replication());
        println!("replicas of greeting: {}", replicas.join(", "));
    }
    client.close().await;
    Ok(())
}
