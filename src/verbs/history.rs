//! `kolla history`: the swaps of a service from the history log, and what
//! runs now on the selected nodes and the restore points kept there, from
//! the containers' labels. A service that no compose file of the selected
//! nodes, no record of the log and no container names is refused (exit
//! 2), with the services that are known.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;

use super::Outcome;
use super::targets;
use crate::cli::{HistoryArgs, NodeArgs, OutputFormat};
use crate::config::ConfigError;
use crate::config::compose::Variables;
use crate::config::inventory::Node;
use crate::deploy::labels::ObservedContainer;
use crate::deploy::restore_point::{self, RestorePoint};
use crate::deploy::{desired, history};
use crate::settings::Settings;

pub async fn history(settings: &Settings, args: HistoryArgs) -> anyhow::Result<Outcome> {
    let log = history::read(&settings.state_dir).with_context(|| {
        format!(
            "{}: cannot read",
            history::path(&settings.state_dir).display()
        )
    })?;
    if let Some(skipped) = log.skipped() {
        eprintln!("warning: {skipped}");
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
    let mut on_nodes: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    for result in found {
        match result {
            Ok((node, observed, points)) => {
                on_nodes.extend(observed.iter().map(|c| c.service.clone()));
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
    // Every node answered and none of them, nor the log, knows the
    // service: most likely a typing error, said as one.
    if failures.is_empty()
        && !on_nodes.contains(&args.service)
        && log.of(&args.service).next().is_none()
    {
        let mut known = compose_services(settings, &nodes, &args.nodes);
        if !known.contains(&args.service) {
            known.extend(log.services().into_iter().map(str::to_string));
            known.extend(on_nodes);
            return Err(unknown_service(&args, &known).into());
        }
    }
    let records: Vec<&history::Record> = log.of(&args.service).collect();
    print_history(&args, &records, &now, &kept_points)?;
    Ok(Outcome::of_failures(&failures))
}

/// The services the compose files of the selected nodes define. A file
/// that does not read leaves its services out: `history` shows the log and
/// the containers, and must work while a compose file is being mended.
fn compose_services(settings: &Settings, nodes: &[&Node], args: &NodeArgs) -> BTreeSet<String> {
    let variables = Variables {
        environment: settings.environment.variables.clone(),
        globals: settings.globals.compose_variables(),
    };
    nodes
        .iter()
        .filter_map(|node| desired::load_files(node, &args.compose_dir, &variables).ok())
        .flatten()
        .flat_map(|(_, file)| file.services.into_iter().map(|s| s.name))
        .collect()
}

/// A service that no compose file, log record or container names.
fn unknown_service(args: &HistoryArgs, known: &BTreeSet<String>) -> ConfigError {
    const SHOWN: usize = 40;
    let mut names: Vec<&str> = known.iter().take(SHOWN).map(String::as_str).collect();
    let more = known.len().saturating_sub(SHOWN);
    let more = format!("and {more} more");
    if known.len() > SHOWN {
        names.push(&more);
    }
    ConfigError::Invalid {
        path: args.nodes.compose_dir.clone(),
        message: format!(
            "service {:?} is in no compose file of the selected nodes, no record of the history log and no container of those nodes; the services known: {}",
            args.service,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    }
}

/// A record's releases: `zed->epoxy`, one alone when the other is not
/// known, `-` when neither is.
fn releases(record: &history::Record) -> String {
    match (&record.from_release, &record.to_release) {
        (Some(from), Some(to)) if from == to => to.clone(),
        (Some(from), Some(to)) => format!("{from}->{to}"),
        (Some(one), None) | (None, Some(one)) => one.clone(),
        (None, None) => "-".to_string(),
    }
}

/// The log's records of the service, then what runs now on each node.
fn print_history(
    args: &HistoryArgs,
    records: &[&history::Record],
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
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"service": args.service, "history": records, "containers": current, "restore_points": restore_points_json(points)})
                )?
            );
        }
        OutputFormat::Human => {
            outln!(
                "{:<20} {:<10} {:<9} {:>4} -> {:<4} {:<10} {:<8} {:<8} {:<14} IMAGE",
                "TIME (UTC s)",
                "NODE",
                "ACTION",
                "FROM",
                "TO",
                "RESULT",
                "DARK",
                "USER",
                "RELEASE"
            );
            for r in records {
                outln!(
                    "{:<20} {:<10} {:<9} {:>4} -> {:<4} {:<10} {:<8} {:<8} {:<14} {}",
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
                    releases(r),
                    r.image
                );
            }
            print_now(now);
            for (node, kept) in points {
                for p in kept {
                    outln!(
                        "restore point: {node} {} generation {} ({} bytes, taken {} UTC s, loads into {})",
                        p.name,
                        p.generation,
                        p.bytes,
                        p.taken,
                        p.db_service
                    );
                }
            }
        }
    }
    Ok(())
}

/// The service's containers now, a line each.
fn print_now(now: &BTreeMap<String, Vec<ObservedContainer>>) {
    for (node, containers) in now {
        for c in containers {
            outln!(
                "now: {node} {} generation {} {} ({})",
                c.name,
                c.generation,
                c.image,
                c.state.as_str()
            );
        }
    }
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
