//! `kvctl ring`: tokens and ownership per node, and a key's place on the ring.

use std::path::Path;

use kvctl::client::Client;
use kvctl::home;
use kvctl::ring::{token_of, Ring};

use crate::cli::{Output, RingArgs};
use crate::output;

pub async fn run(home_dir: &Path, args: RingArgs) -> anyhow::Result<()> {
    let client = Client::from_home(home_dir)?;
    let status = client.status(args.node).await;
    client.close().await;
    let (_, members) = status?;
    let ring = Ring::new(
        members
            .iter()
            .map(|m| (m.member.id.clone(), m.member.tokens.clone())),
    );
    let replication = home::read(home_dir).map(|c| c.replication).unwrap_or(3);
    if let Some(key) = &args.key {
        let token = token_of(key.as_bytes());
        let pref = ring.preference_list(key.as_bytes(), replication);
        match args.output {
            Output::Json => output::json(&serde_json::json!({
                "key": key,
                "token": format!("{token:032x}"),
                "preference_list": pref,
            }))?,
            Output::Table => {
                println!("key        {key}");
                println!("token      {token:032x}");
                println!(
                    "replicas   {} (N = {replication}, first is the owner)",
                    pref.join(", ")
                );
            }
        }
        return Ok(());
    }
    let ownership = ring.ownership();
    let balance = ring.balance();
    match args.output {
        Output::Json => output::json(&serde_json::json!({
            "nodes": ring.nodes().iter().map(|n| serde_json::json!({
                "id": n,
                "tokens": ring.tokens_of(n).len(),
                "ownership": ownership.get(n).copied().unwrap_or(0.0),
            })).collect::<Vec<_>>(),
            "balance": balance,
        }))?,
        Output::Table => {
            let rows = ring
                .nodes()
                .iter()
                .map(|n| {
                    vec![
                        n.clone(),
                        ring.tokens_of(n).len().to_string(),
                        output::percent(ownership.get(n).copied().unwrap_or(0.0)),
                    ]
                })
                .collect();
            output::table(&["node", "tokens", "ownership"], rows)?;
            println!("balance: largest ownership is {:.3} x the mean", balance);
        }
    }
    Ok(())
}
