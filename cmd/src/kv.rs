//! `kvctl get|put|delete`.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use kvctl::client::Client;

/// A client for one command's requests. It does not fetch the topology to route by: for one
/// request, asking a node for it costs a round trip (and often a second connection) where
/// token-aware routing would save at most a hop; any node coordinates any key.
fn one_shot_client(home: &Path) -> anyhow::Result<Client> {
    Ok(Client::builder_from_home(home)?
        .token_aware(false)
        .build()?)
}

use crate::cli::{DeleteArgs, GetArgs, Output, PutArgs};
use crate::output;

/// A value as text when it is UTF-8, else with invalid bytes replaced (JSON has no bytes).
fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Returns false when a human-readable get found nothing (JSON says so in `found`).
pub async fn get(home: &Path, args: GetArgs) -> anyhow::Result<bool> {
    let client = one_shot_client(home)?;
    let r = client
        .get(
            args.key.as_bytes(),
            args.request.consistency,
            args.request.node,
        )
        .await;
    client.close().await;
    let r = r?;
    match args.request.output {
        Output::Json => output::json(&serde_json::json!({
            "key": args.key,
            "found": r.found,
            "values": r.values.iter().map(|v| text(v)).collect::<Vec<_>>(),
            "siblings": r.values.len(),
            "context": r.context,
        }))?,
        Output::Table => {
            if !r.found {
                eprintln!("key '{}' not found", args.key);
                return Ok(false);
            }
            let mut out = io::stdout().lock();
            if r.values.len() == 1 {
                out.write_all(&r.values[0])?;
                writeln!(out)?;
            } else {
                for (i, v) in r.values.iter().enumerate() {
                    write!(out, "sibling {}: ", i + 1)?;
                    out.write_all(v)?;
                    writeln!(out)?;
                }
                eprintln!(
                    "{} concurrent values; resolve with: kvctl put '{}' VALUE --context {}",
                    r.values.len(),
                    args.key,
                    r.context
                );
            }
        }
    }
    Ok(true)
}

pub async fn put(home: &Path, args: PutArgs) -> anyhow::Result<()> {
    let value = if args.value == "-" {
        let mut buf = Vec::new();
        io::stdin()
            .read_to_end(&mut buf)
            .context("reading the value from standard input")?;
        buf
    } else {
        args.value.into_bytes()
    };
    let client = one_shot_client(home)?;
    let context = client
        .put(
            args.key.as_bytes(),
            Some(&value),
            args.context.as_deref(),
            args.request.consistency,
            args.lww,
            args.request.node,
        )
        .await;
    client.close().await;
    let context = context?;
    match args.request.output {
        Output::Json => output::json(
            &serde_json::json!({ "key": args.key, "written": true, "context": context }),
        )?,
        Output::Table => println!("OK"),
    }
    Ok(())
}

pub async fn delete(home: &Path, args: DeleteArgs) -> anyhow::Result<()> {
    if args.key.is_empty() {
        bail!("the key is empty");
    }
    let client = one_shot_client(home)?;
    let deleted = delete_with(&client, &args).await;
    client.close().await;
    let context = deleted?;
    match args.request.output {
        Output::Json => output::json(
            &serde_json::json!({ "key": args.key, "deleted": true, "context": context }),
        )?,
        Output::Table => println!("OK"),
    }
    Ok(())
}

/// Writes the tombstone; returns its context.
async fn delete_with(client: &Client, args: &DeleteArgs) -> anyhow::Result<String> {
    // Without --context, delete what a read at the same level sees (every sibling), as a
    // person typing `kvctl delete KEY` means.
    let context = match args.context.clone() {
        Some(c) => c,
        None => {
            client
                .get(
                    args.key.as_bytes(),
                    args.request.consistency,
                    args.request.node,
                )
                .await?
                .context
        }
    };
    let context = client
        .put(
            args.key.as_bytes(),
            None,
            Some(&context),
            args.request.consistency,
            false,
            args.request.node,
        )
        .await?;
    Ok(context)
}
