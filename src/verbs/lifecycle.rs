//! `kolla stop`, `kolla start`, `kolla restart` and `kolla destroy`: the
//! deployment's containers (or the live containers of the services named)
//! stopped gracefully, dependents first; started again, or restarted one
//! node at a time, dependencies first and each gated, through the node
//! pipeline's start intent (which takes each service's lock); destroy
//! runs the services' cleanup jobs (`deploy::cleanup`) once they are
//! stopped, then removes them, and data containers and volumes only with
//! `--purge-data --yes-i-really-mean-it`; a destroy that reaches containers on more than
//! one node is confirmed the same way (without it nothing is removed and
//! what would have gone is listed).

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::targets::{self, connect, node_at, start_options};
use super::{Fanout, Outcome, named, over_nodes};
use crate::cli::{DestroyArgs, RestartArgs, StartArgs, StopArgs};
use crate::config::inventory::Node;
use crate::config::inventory::PrivilegedMode;
use crate::credentials::Store;
use crate::deploy::cleanup;
use crate::deploy::desired::Desired;
use crate::deploy::guests;
use crate::deploy::labels::{self, ObservedContainer, Role, State};
use crate::deploy::pipeline::{self, Intent, RunLog};
use crate::deploy::restore_point;
use crate::engine::{Engine, EngineError};
use crate::progress::say;
use crate::settings::Settings;

pub async fn stop(settings: &Settings, args: StopArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    named::refuse_unknown_on(settings, &nodes, &args.nodes, &args.services).await?;
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let only = &args.services;
    Ok(
        over_nodes(nodes, Fanout::all(settings.forks), |node| async move {
            let engine = asked.connect(settings, node).await?;
            let mut observed = targets::observe(settings, &engine, &node.name).await?;
            // Named services: their live containers alone (a swap's other
            // containers are the swap's).
            if !only.is_empty() {
                observed.retain(|c| c.role == Role::Live && only.contains(&c.service));
            }
            let stopped = stop_in_order(&engine, &node.name, &observed).await?;
            Ok(vec![format!("{stopped} containers stopped")])
        })
        .await,
    )
}

pub async fn start(settings: &Settings, args: StartArgs) -> anyhow::Result<Outcome> {
    start_or_restart(settings, args, None).await
}

pub async fn restart(settings: &Settings, args: RestartArgs) -> anyhow::Result<Outcome> {
    let stop_guests = args.stop_guests;
    start_or_restart(settings, args.start, Some(stop_guests)).await
}

/// `kolla start` (`restart` None), or `kolla restart` (Some: whether to
/// stop guests that would stop with their container): every selected node
/// at once for a start; one node after another for a restart, stopping
/// at the first that fails, so a bad restart reaches one node only.
async fn start_or_restart(
    settings: &Settings,
    args: StartArgs,
    restart: Option<bool>,
) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    named::refuse_unknown_on(settings, &nodes, &args.nodes, &args.services).await?;
    let options = crate::deploy::context::ApplyOptions {
        stop_guests: restart.unwrap_or(false),
        ..start_options(&args.health, &args.lock, settings)
    };
    let fanout = match restart {
        Some(_) => Fanout::ONE_BY_ONE,
        None => Fanout::all(settings.forks),
    };
    // Nothing is pulled: no credentials are read.
    let credentials = Store::default();
    let (options, credentials) = (&options, &credentials);
    let intent = &Intent::Start {
        services: (!args.services.is_empty()).then_some(args.services.as_slice()),
        restart: restart.is_some(),
    };
    Ok(over_nodes(nodes, fanout, |node| async move {
        let engine = connect(settings, node).await?;
        let at = node_at(&engine, node, settings, (options, credentials));
        // From what the node runs: the compose files are not read.
        pipeline::run(&at, Desired::default(), intent, &RunLog::default()).await
    })
    .await)
}

/// Stop the running containers of `observed` gracefully, each with the
/// signal and grace period it was created with, dependents first (highest
/// dependency level first, a level's containers in parallel). How many
/// it stopped.
async fn stop_in_order(
    engine: &Engine,
    node: &str,
    observed: &[ObservedContainer],
) -> Result<usize, EngineError> {
    let running: Vec<&ObservedContainer> = observed
        .iter()
        .filter(|c| matches!(c.state, State::Running | State::Restarting | State::Paused))
        .collect();
    let mut levels: Vec<usize> = running.iter().map(|c| c.level).collect();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();
    for level in levels {
        let stops = running
            .iter()
            .filter(|c| c.level == level)
            .map(|c| async move {
                say(format!("{node}: stopping {}", c.name));
                // None: the signal and grace period the container was created with.
                engine.stop_container(&c.id, None).await
            });
        for result in join_all(stops).await {
            result?;
        }
    }
    Ok(running.len())
}

/// Guests outlive their service's container (x-kolla.guests): shut them
/// down cleanly through the service that manages them, so that nothing is
/// left running outside a container. A live container `kolla stop` left
/// stopped (its guests still run) is started for it, and stopped again.
async fn stop_guests(
    engine: &Engine,
    node: &str,
    observed: &[ObservedContainer],
) -> anyhow::Result<()> {
    let live = observed
        .iter()
        .filter(|c| c.role == labels::Role::Live && c.guests.is_some());
    for c in live {
        let Some(program) = &c.guests else { continue };
        let was_running = c.state == State::Running;
        if !was_running {
            engine.start_container(&c.id).await?;
        }
        say(format!("{node}: stopping the guests of {}", c.name));
        guests::stop(engine, &c.id, program)
            .await
            .map_err(|e| anyhow::anyhow!("node {node}: {}: its guests: {e}", c.name))?;
        if !was_running {
            engine.stop_container(&c.id, None).await?;
        }
    }
    Ok(())
}

/// A destroy that needs `--yes-i-really-mean-it` and did not get it:
/// nothing was removed (what would have gone is printed before).
#[derive(Debug, thiserror::Error)]
#[error(
    "destroy {why}: nothing was removed (what would have gone is listed above); add --yes-i-really-mean-it to go ahead"
)]
pub struct Unconfirmed {
    why: String,
}

pub async fn destroy(settings: &Settings, args: DestroyArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let purge = args.purge_data;
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    // A one-node destroy without data is undone by a deploy; one that
    // reaches several nodes (an inventory or --node mistaken) or removes
    // data is not, so it is confirmed first, from what the nodes hold.
    if !args.yes_i_really_mean_it && (purge || nodes.len() > 1) {
        refuse_unconfirmed(settings, &nodes, purge, asked).await?;
    }
    // The compose files say which services clean up after themselves; a
    // destroy still goes on where they cannot be read (it needs only the
    // containers), saying what was skipped.
    let desired: BTreeMap<String, Desired> =
        match targets::resolve(&inventory, settings, &args.nodes) {
            Ok(targets) => targets
                .into_iter()
                .map(|t| (t.node.name.clone(), t.desired))
                .collect(),
            Err(e) => {
                say(format!(
                    "note: the compose files cannot be read ({}); no cleanup job runs",
                    super::describe_error(&e)
                ));
                BTreeMap::new()
            }
        };
    let desired = &desired;
    Ok(
        over_nodes(nodes, Fanout::all(settings.forks), |node| async move {
            destroy_node(settings, node, (purge, desired.get(&node.name)), asked)
                .await
                .map_err(|e| e.context("destroy").into())
        })
        .await,
    )
}

/// What a destroy of `nodes` would remove, printed node by node; an
/// `Unconfirmed` error when that needs confirming (data, or containers
/// on more than one node). A node that cannot be reached counts as one
/// with containers: what it holds is not known.
async fn refuse_unconfirmed(
    settings: &Settings,
    nodes: &[&Node],
    purge: bool,
    asked: &targets::Asked,
) -> anyhow::Result<()> {
    let found = super::each_node(nodes.iter().copied(), settings.forks, |node| async move {
        would_go(settings, node, purge, asked).await
    })
    .await;
    let mut nodes_touched = 0;
    let mut data = false;
    let mut lines = Vec::new();
    for (node, found) in nodes.iter().zip(found) {
        match found {
            Ok((names, has_data)) => {
                if !names.is_empty() {
                    nodes_touched += 1;
                    lines.push(format!(
                        "node {}: would remove {}",
                        node.name,
                        names.join(", ")
                    ));
                }
                data |= has_data;
            }
            Err(e) => {
                nodes_touched += 1;
                lines.push(format!(
                    "node {}: not reached ({}), would be destroyed too",
                    node.name,
                    super::describe_error(&e)
                ));
            }
        }
    }
    let why = if purge && data {
        "--purge-data removes data for good".to_string()
    } else if nodes_touched > 1 {
        format!("would remove containers on {nodes_touched} nodes")
    } else {
        return Ok(());
    };
    for line in lines {
        eprintln!("{line}");
    }
    Err(Unconfirmed { why }.into())
}

/// The names of what a destroy would remove on `node` (containers, and
/// with `purge` restore points and volumes), and whether any of it is data.
async fn would_go(
    settings: &Settings,
    node: &Node,
    purge: bool,
    asked: &targets::Asked,
) -> anyhow::Result<(Vec<String>, bool)> {
    let engine = asked.connect(settings, node).await?;
    let observed = targets::observe(settings, &engine, &node.name).await?;
    let mut names: Vec<String> = observed
        .iter()
        .filter(|c| purge || !c.data)
        .map(|c| c.name.clone())
        .collect();
    let mut data = purge && observed.iter().any(|c| c.data);
    if purge {
        let (points, partial) = restore_point::scan(&engine, &settings.globals.project).await?;
        let project = format!("{}={}", labels::PROJECT, settings.globals.project);
        let volumes = engine.volume_names(&project).await?;
        data |= !points.is_empty() || !partial.is_empty() || !volumes.is_empty();
        names.extend(
            points
                .iter()
                .chain(&partial)
                .map(|p| format!("restore point {}", p.name)),
        );
        names.extend(volumes.into_iter().map(|v| format!("volume {v}")));
    }
    Ok((names, data))
}

async fn destroy_node(
    settings: &Settings,
    node: &Node,
    (purge, desired): (bool, Option<&Desired>),
    asked: &targets::Asked,
) -> anyhow::Result<Vec<String>> {
    let engine = asked.connect(settings, node).await?;
    let observed = targets::observe(settings, &engine, &node.name).await?;
    stop_guests(&engine, &node.name, &observed).await?;
    // Graceful first: a service killed mid-write is how data is lost.
    stop_in_order(&engine, &node.name, &observed).await?;
    let mut cleaned = Vec::new();
    if let Some(desired) = desired {
        let mut desired = desired.clone();
        // Each job is privileged as its service's containers were made.
        if node.privileged == PrivilegedMode::Auto {
            let mode = desired
                .settled_by(&observed, &settings.globals)
                .unwrap_or(PrivilegedMode::Explicit);
            desired.set_privileged(mode, &settings.globals);
        }
        let at = cleanup::Node {
            engine: &engine,
            name: &node.name,
            prefix: &settings.globals.container_prefix,
            project: &settings.globals.project,
        };
        cleaned = cleanup::run_cleanups(&at, &desired, &observed, say).await;
    }
    let mut removed = 0;
    for c in observed.iter().filter(|c| purge || !c.data) {
        say(format!("{}: removing {}", node.name, c.name));
        // Anonymous volumes go with their container only when purging.
        engine.remove_container(&c.id, purge).await?;
        removed += 1;
    }
    let (points, partial) = restore_point::scan(&engine, &settings.globals.project).await?;
    if purge {
        for point in points.iter().chain(&partial) {
            say(format!(
                "{}: removing restore point {}",
                node.name, point.name
            ));
            engine.remove_container(&point.id, true).await?;
            removed += 1;
        }
    }
    let mut lines = vec![format!("{removed} containers removed")];
    lines.extend(cleaned);
    if !purge && !points.is_empty() {
        lines.push(format!(
            "{} restore points kept (--purge-data --yes-i-really-mean-it removes them)",
            points.len()
        ));
    }
    if purge {
        let project = format!("{}={}", labels::PROJECT, settings.globals.project);
        for volume in engine.volume_names(&project).await? {
            say(format!("{}: removing volume {volume}", node.name));
            engine.remove_volume(&volume).await?;
        }
    } else if observed.iter().any(|c| c.data) {
        lines.push(
            "data containers and volumes kept (--purge-data --yes-i-really-mean-it removes them)"
                .into(),
        );
    }
    Ok(lines)
}
