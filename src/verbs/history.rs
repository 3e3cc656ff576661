//! `kolla history`: the swaps of a service from the history log, and what
//! runs now on the selected nodes and the restore points kept there, from
//! the containers' labels.

use std::collections::BTreeMap;

use anyhow::Context as _;

use super::Outcome;
use super::targets;
use crate::cli::{HistoryArgs, OutputFormat};
use crate::deploy::history;
use crate::deploy::labels::ObservedContainer;
use crate::deploy::restore_point::{self, RestorePoint};
use crate::settings::Settings;

pub async fn history(settings: &Settings, args: HistoryArgs) -> anyhow::Result<Outcome> {
    let (records, bad) =
        history::read(&settings.state_dir, Some(&args.service)).with_context(|| {
            format!(
                "{}: cannot read",
                history::path(&settings.state_dir).display()
            )
        })?;
    for line in &bad {
        eprintln!("warning: {line}: skipped");
    }
    // What runs now, from the labels of the selected nodes.
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let found = super::each_node(nodes.iter(), settings.forks, |node| async move {
        let engine = asked.connect(settings, node).await?;
        let observed = targets::observe(settings, &engine, &node.name).await?;
        let points = restore_point::list(&engine, &settings.globals.project)
            .await
            .map_err(|e| anyhow::anyhow!("node {}: {e}", node.name))?;
        anyhow::Ok((node.name.clone(), observed, points))
    })
    .await;
    // The log is local and always shown; a node that does not answer is
    // named, and the others' containers are still shown.
    let mut now: BTreeMap<String, Vec<ObservedContainer>> = BTreeMap::new();
    let mut kept_points: BTreeMap<String, Vec<RestorePoint>> = BTreeMap::new();
    let mut failures = Vec::new();
    for result in found {
        match result {
            Ok((node, observed, points)) => {
                let service = observed
                    .into_iter()
                    .filter(|c| c.service == args.service)
                    .collect();
                now.insert(node.clone(), service);
                kept_points.insert(
                    node,
                    points
                        .into_iter()
                        .filter(|p| p.service == args.service)
                        .collect(),
                );
            }
            Err(error) => {
                eprintln!("error: {}", super::describe_error(&error));
                failures.push(error);
            }
        }
    }
    print_history(&args, &records, &now, &kept_points)?;
    Ok(Outcome::of_failures(&failures))
}

/// The log's records of the service, then what runs now on each node.
fn print_history(
    args: &HistoryArgs,
    records: &[history::Record],
    now: &BTreeMap<String, Vec<ObservedContainer>>,
    points: &BTreeMap<String, Vec<RestorePoint>>,
) -> anyhow::Result<()> {
    match args.output {
        OutputFormat::Json => {
            let current: BTreeMap<&String, Vec<serde_json::Value>> = now
                .iter()
                .map(|(n, cs)| {
                    let rows = cs
                        .iter()
                        .map(|c| serde_json::json!({"container": c.name, "generation": c.generation, "image": c.image, "digest": c.digest, "state": c.state.as_str()}))
                        .collect();
                    (n, rows)
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"service": args.service, "history": records, "containers": current, "restore_points": restore_points_json(points)})
                )?
            );
        }
        OutputFormat::Human => {
            println!(
                "{:<20} {:<10} {:<9} {:>4} -> {:<4} {:<10} {:<8} {:<8} IMAGE",
                "TIME (UTC s)", "NODE", "ACTION", "FROM", "TO", "RESULT", "DARK", "USER"
            );
            for r in records {
                println!(
                    "{:<20} {:<10} {:<9} {:>4} -> {:<4} {:<10} {:<8} {:<8} {}",
                    r.time,
                    r.node,
                    r.action,
                    r.from_generation,
                    r.to_generation,
                    r.result.split(':').next().unwrap_or_default(),
                    r.dark_window_secs
                        .map(|d| format!("{d:.3}s"))
                        .unwrap_or_else(|| "-".into()),
                    r.user,
                    r.image
                );
            }
            for (node, containers) in now {
                for c in containers {
                    println!(
                        "now: {node} {} generation {} {} ({})",
                        c.name,
                        c.generation,
                        c.image,
                        c.state.as_str()
                    );
                }
            }
            for (node, kept) in points {
                for p in kept {
                    println!(
                        "restore point: {node} {} generation {} ({} bytes, taken {} UTC s, loads into {})",
                        p.name, p.generation, p.bytes, p.taken, p.db_service
                    );
                }
            }
        }
    }
    Ok(())
}

fn restore_points_json(
    points: &BTreeMap<String, Vec<RestorePoint>>,
) -> BTreeMap<&String, Vec<serde_json::Value>> {
    points
        .iter()
        .map(|(node, kept)| {
            let rows = kept
                .iter()
                .map(|p| serde_json::json!({"container": p.name, "generation": p.generation, "bytes": p.bytes, "taken": p.taken, "database_service": p.db_service}))
                .collect();
            (node, rows)
        })
        .collect()
}
