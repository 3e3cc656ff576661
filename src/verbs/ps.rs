//! `kolla ps`: the deployment's containers on each selected node, what
//! role each plays in a swap, its state and health, as a table or JSON.

use serde::Serialize;

use super::Outcome;
use super::table::table;
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
            for line in ps_table(&rows) {
                outln!("{line}");
            }
        }
    }
    Ok(Outcome::of_failures(&failures))
}

/// The human table: every column as wide as its longest cell, so
/// `neutron-openvswitch-agent` and registry-qualified images stay aligned.
fn ps_table(rows: &[PsRow]) -> Vec<String> {
    const HEADER: [&str; 8] = [
        "NODE",
        "SERVICE",
        "CONTAINER",
        "KIND",
        "STATE",
        "HEALTH",
        "GEN",
        "IMAGE",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.node.clone(),
                r.service.clone(),
                r.container.clone(),
                r.kind.clone(),
                r.state.clone(),
                r.health.clone().unwrap_or_else(|| "-".into()),
                r.generation.to_string(),
                r.image.clone(),
            ]
        })
        .collect();
    table(&HEADER, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(service: &str, container: &str, image: &str) -> PsRow {
        PsRow {
            node: "controller-1".into(),
            service: service.into(),
            container: container.into(),
            kind: "live".into(),
            state: "running".into(),
            health: Some("healthy".into()),
            image: image.into(),
            generation: 12,
        }
    }

    #[test]
    fn long_names_widen_their_columns_and_the_rest_stays_aligned() {
        let rows = [
            row(
                "neutron-openvswitch-agent",
                "kolla-neutron-openvswitch-agent",
                "registry.example.com:5000/kolla/neutron-openvswitch-agent:2025.1-epoxy",
            ),
            PsRow {
                health: None,
                generation: 3,
                ..row("glance-api", "kolla-glance-api", "kolla/glance-api:epoxy")
            },
        ];
        assert_eq!(
            ps_table(&rows),
            [
                "NODE          SERVICE                    CONTAINER                        KIND  STATE    HEALTH   GEN  IMAGE",
                "controller-1  neutron-openvswitch-agent  kolla-neutron-openvswitch-agent  live  running  healthy  12   registry.example.com:5000/kolla/neutron-openvswitch-agent:2025.1-epoxy",
                "controller-1  glance-api                 kolla-glance-api                 live  running  -        3    kolla/glance-api:epoxy",
            ]
        );
    }
}
