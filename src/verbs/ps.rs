//! `kolla ps`: the deployment's containers on each selected node, what
//! role each plays in a swap, its state and health, as a table or JSON.

use serde::Serialize;

use super::Outcome;
use super::targets;
use crate::cli::{OutputFormat, PsArgs};
use crate::deploy::labels::Role;
use crate::settings::Settings;

/// One row of `kolla ps`.
#[derive(Debug, Serialize)]
pub struct PsRow {
    pub node: String,
    pub service: String,
    pub container: String,
    pub kind: String,
    pub state: String,
    pub health: Option<String>,
    pub image: String,
    pub generation: u64,
}

fn kind_of(role: Role, data: bool) -> String {
    match role {
        Role::Live if data => "data".into(),
        Role::Live => "live".into(),
        Role::Candidate => "candidate".into(),
        Role::Kept(_) => "kept".into(),
        Role::Lock => "lock".into(),
        Role::Bootstrap => "bootstrap".into(),
        Role::Check => "check".into(),
        Role::Helper => "helper".into(),
    }
}

pub async fn ps(settings: &Settings, args: PsArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let lists = super::each_node(nodes.iter(), settings.forks, |node| async move {
        let engine = asked.connect(settings, node).await?;
        let observed = targets::observe(settings, &engine, &node.name).await?;
        anyhow::Ok((node.name.clone(), observed))
    })
    .await;
    let mut rows = Vec::new();
    // A node that does not answer is reported; the others are still shown.
    let mut failures = Vec::new();
    for list in lists {
        let (node, observed) = match list {
            Ok(found) => found,
            Err(error) => {
                eprintln!("error: {}", super::describe_error(&error));
                failures.push(error);
                continue;
            }
        };
        for c in observed {
            rows.push(PsRow {
                node: node.clone(),
                service: c.service.clone(),
                container: c.name.clone(),
                kind: kind_of(c.role, c.data),
                state: c.state.as_str().to_string(),
                health: c.health.map(|h| h.as_str().to_string()),
                image: c.image.clone(),
                generation: c.generation,
            });
        }
    }
    rows.sort_by(|a, b| {
        (&a.node, &a.service, &a.container).cmp(&(&b.node, &b.service, &b.container))
    });
    match args.output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Human => {
            outln!(
                "{:<12} {:<24} {:<32} {:<9} {:<10} {:<10} {:>4}  IMAGE",
                "NODE",
                "SERVICE",
                "CONTAINER",
                "KIND",
                "STATE",
                "HEALTH",
                "GEN"
            );
            for r in &rows {
                outln!(
                    "{:<12} {:<24} {:<32} {:<9} {:<10} {:<10} {:>4}  {}",
                    r.node,
                    r.service,
                    r.container,
                    r.kind,
                    r.state,
                    r.health.as_deref().unwrap_or("-"),
                    r.generation,
                    r.image
                );
            }
        }
    }
    Ok(Outcome::of_failures(&failures))
}
