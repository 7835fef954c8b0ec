//! `kvctl layout`: the cluster layout as a node holds it: the committed version, the versions
//! live (two while a change moves data), and each member with its address, datacenter, rack,
//! tokens and state.

use std::path::Path;

use kvctl::client::Client;
use kvctl::model::layout::{Layout, NodeState, Transition};
use kvctl::wire::proto::ErrorKind;
use serde_json::json;

use crate::cli::{LayoutArgs, Output};
use crate::output;

pub async fn run(home: &Path, args: LayoutArgs) -> anyhow::Result<()> {
    let client = Client::from_home(home)?;
    let asked = client.layouts(args.node).await;
    client.close().await;
    let (addr, live, synced) = match asked {
        Ok(reply) => reply,
        Err(e) if e.kind() == Some(ErrorKind::Unsupported) => anyhow::bail!(
            "the node asked runs an earlier release, without a versioned layout: upgrade it"
        ),
        Err(e) => return Err(e.into()),
    };
    let live: Vec<Layout> = live
        .into_iter()
        .map(Layout::try_from)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("the node at {addr} sent a bad layout: {e}"))?;
    let Some(current) = live.last() else {
        anyhow::bail!("the node at {addr} holds no layout");
    };
    let transition = (live.len() == 2).then(|| Transition::new(&live[0], &live[1]));
    let state = |id: &str| -> NodeState {
        transition
            .as_ref()
            .and_then(|t| t.state_of(id))
            .unwrap_or(NodeState::Normal)
    };
    let mut ids: Vec<&String> = live.iter().flat_map(|l| l.members.keys()).collect();
    ids.sort();
    ids.dedup();
    let member = |id: &str| {
        live.iter()
            .rev()
            .find_map(|l| l.members.get(id))
            .expect("a member of a live version")
    };
    match args.output {
        Output::Json => output::json(&json!({
            "version": current.version,
            "live_versions": live.iter().map(|l| l.version).collect::<Vec<_>>(),
            "replication": current.replication,
            "nodes": ids.iter().map(|id| {
                let m = member(id);
                json!({
                    "id": id,
                    "addr": m.addr.to_string(),
                    "dc": m.dc,
                    "rack": m.rack,
                    "tokens": m.tokens.len(),
                    "state": state(id).to_string(),
                })
            }).collect::<Vec<_>>(),
            "removed": current.removed.iter().map(|(id, at)| json!({"id": id, "version": at})).collect::<Vec<_>>(),
            "synced": synced.iter().map(|(id, v)| json!({"id": id, "version": v})).collect::<Vec<_>>(),
        }))?,
        Output::Table => {
            let versions: Vec<String> = live.iter().map(|l| l.version.to_string()).collect();
            output::text(&format!(
                "layout version {} (live: {}), replication {}, as {addr} holds it",
                current.version,
                versions.join(", "),
                current.replication
            ))?;
            output::table(
                &["node", "address", "dc", "rack", "tokens", "state"],
                ids.iter()
                    .map(|id| {
                        let m = member(id);
                        vec![
                            id.to_string(),
                            m.addr.to_string(),
                            m.dc.clone(),
                            m.rack.clone(),
                            m.tokens.len().to_string(),
                            state(id).to_string(),
                        ]
                    })
                    .collect(),
            )?;
            if !current.removed.is_empty() {
                let removed: Vec<String> = current
                    .removed
                    .iter()
                    .map(|(id, at)| format!("{id} (at version {at})"))
                    .collect();
                output::text(&format!("removed: {}", removed.join(", ")))?;
            }
        }
    }
    Ok(())
}
