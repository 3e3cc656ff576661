//! `kolla deploy` (converge each selected node to its compose files) and
//! `kolla pull` (fetch every image they use). Files are resolved first, so
//! bad input fails before any engine is touched; then each node: images,
//! observation, recovery of a crash's leftovers, plan, execution, check.

use std::collections::BTreeMap;

use super::targets::{self, Target, apply_options, node_run, resolve};
use super::{Fanout, NodeReport, Outcome, over_nodes, over_nodes_in_waves};
use crate::cli::{DeployArgs, NodeArgs};
use crate::config::ConfigError;
use crate::credentials::Store;
use crate::deploy::context::NodeRun;
use crate::deploy::labels::{self, ObservedContainer};
use crate::deploy::plan::{self, Plan, PlanOptions, Volumes};
use crate::deploy::supply::{self, Supply};
use crate::engine::Engine;
use crate::progress::say;
use crate::settings::Settings;

pub async fn deploy(settings: &Settings, args: DeployArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let targets = resolve(&inventory, settings, &args.nodes)?;
    // Read once for every node; a dry run pulls nothing.
    let credentials = match args.dry_run {
        true => Store::default(),
        false => settings.credentials()?,
    };
    // Roles that come after others (`x-kolla.after`) wait for their nodes.
    let waves = targets::deploy_waves(&targets, &args.nodes.compose_dir)?;
    let asked = targets::ask_engines(settings, targets.iter().map(|t| t.node)).await;
    let (args, credentials, asked) = (&args, &credentials, &asked);
    Ok(
        over_nodes_in_waves(targets, &waves, Fanout::all(settings.forks), |target| {
            deploy_node(target, settings, args, credentials, asked)
        })
        .await,
    )
}

/// One error as a node's report.
fn failed(error: impl Into<anyhow::Error>, node: &str) -> Vec<anyhow::Error> {
    vec![error.into().context(format!("node {node}"))]
}

async fn deploy_node(
    mut target: Target<'_>,
    settings: &Settings,
    args: &DeployArgs,
    credentials: &Store,
    asked: &targets::Asked,
) -> NodeReport {
    let name = target.node.name.clone();
    let engine = asked
        .connect(settings, target.node)
        .await
        .map_err(|e| vec![e])?;
    let missing = supply_images(&engine, &mut target, settings, args.dry_run, credentials).await?;
    let mut lines: Vec<String> = missing
        .iter()
        .map(|image| format!("pull {image} (not on the node yet)"))
        .collect();
    check_external_volumes(&engine, &target, &name).await?;
    let options = apply_options(&args.gate);
    let run = node_run(&engine, &name, settings, &options);
    let mut observed = observe_node(settings, &engine, &name).await?;
    // Leftovers of an interrupted swap are settled before planning.
    if !args.dry_run
        && super::recover::recover_first(&run, &observed, None, false)
            .await
            .map_err(|e| vec![e])?
    {
        observed = observe_node(settings, &engine, &name).await?;
    }
    targets::settle_privileged(
        &engine,
        target.node,
        &mut target.desired,
        &observed,
        (settings, args.dry_run),
    )
    .await
    .map_err(|e| vec![e])?;
    let services: Vec<_> = target.desired.services.values().cloned().collect();
    let existing = existing_volumes(&engine, settings, &target)
        .await
        .map_err(|e| failed(e, &name))?;
    let options = PlanOptions {
        remove_orphans: args.remove_orphans,
        retain: args.gate.retain,
        prefix: settings.globals.container_prefix.clone(),
        volumes: Volumes {
            named: target.desired.volumes.clone(),
            existing: existing.into_iter().collect(),
        },
    };
    let plan = plan::plan(&services, &observed, &options).map_err(|e| failed(e, &name))?;
    out!("node {name}:\n{}", plan.text());
    if args.dry_run {
        lines.push(format!(
            "{} changes planned (dry run: nothing changed)",
            plan.changes()
        ));
        return Ok(lines);
    }
    if plan.changes() == 0 {
        lines.push("up to date, nothing changed".to_string());
        return Ok(lines);
    }
    lines.push(execute(&run, &engine, settings, &target, &plan, &observed).await?);
    Ok(lines)
}

/// The deployment's volumes on the node, and those of the same names made
/// outside kolla: the plan keeps those rather than claim to create them.
async fn existing_volumes(
    engine: &Engine,
    settings: &Settings,
    target: &Target<'_>,
) -> Result<Vec<String>, crate::engine::EngineError> {
    let project = format!("{}={}", labels::PROJECT, settings.globals.project);
    let mut existing = engine.volume_names(&project).await?;
    for (volume, _) in &target.desired.volumes {
        if !existing.contains(volume) && engine.volume_exists(volume).await? {
            existing.push(volume.clone());
        }
    }
    Ok(existing)
}

/// Put the node's images on it (pulled, else copied from this engine) and
/// record their ids; a dry run supplies nothing and lists what is missing.
async fn supply_images(
    engine: &Engine,
    target: &mut Target<'_>,
    settings: &Settings,
    dry_run: bool,
    credentials: &Store,
) -> Result<Vec<String>, Vec<anyhow::Error>> {
    let name = target.node.name.clone();
    if dry_run {
        return supply::missing_images(engine, &name, &mut target.desired)
            .await
            .map_err(|e| vec![e.into()]);
    }
    let source = targets::image_source(settings, target.node);
    let supply = Supply::Pull {
        copy_from: &source,
        credentials,
    };
    supply::resolve_images(engine, &name, &mut target.desired, supply)
        .await
        .map_err(|e| vec![e.into()])?;
    Ok(Vec::new())
}

async fn observe_node(
    settings: &Settings,
    engine: &Engine,
    node: &str,
) -> Result<Vec<ObservedContainer>, Vec<anyhow::Error>> {
    targets::observe(settings, engine, node)
        .await
        .map_err(|e| vec![e])
}

/// A volume made outside kolla must be there: never an empty substitute
/// under its name.
async fn check_external_volumes(
    engine: &Engine,
    target: &Target<'_>,
    node: &str,
) -> Result<(), Vec<anyhow::Error>> {
    for (volume, file) in &target.desired.external_volumes {
        let exists = engine
            .volume_exists(volume)
            .await
            .map_err(|e| failed(e, node))?;
        if !exists {
            return Err(vec![anyhow::Error::from(ConfigError::Invalid {
                path: file.clone(),
                message: format!(
                    "volume {volume} is external (made outside kolla) and does not exist on node {node}; create it there first (docker volume create {volume})"
                ),
            })]);
        }
    }
    Ok(())
}

/// Run the plan: the named volumes, the actions, then check every service
/// runs. The summary of what changed.
async fn execute(
    run: &NodeRun<'_>,
    engine: &Engine,
    settings: &Settings,
    target: &Target<'_>,
    plan: &Plan,
    observed: &[ObservedContainer],
) -> Result<String, Vec<anyhow::Error>> {
    let name = run.node;
    let desired = &target.desired;
    let all = |errors: Vec<crate::deploy::error::DeployError>| -> Vec<anyhow::Error> {
        errors.into_iter().map(anyhow::Error::from).collect()
    };
    let done = run
        .apply(plan, &desired.services, observed, &desired.files)
        .await
        .map_err(all)?;
    let after = observe_node(settings, engine, name).await?;
    run.verify(&desired.services, &after).await.map_err(all)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &done {
        *counts.entry(d.kind.as_str()).or_default() += 1;
    }
    let described: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    Ok(format!(
        "{} ({} unchanged)",
        described.join(", "),
        desired.services.len().saturating_sub(done.len())
    ))
}

pub async fn pull(settings: &Settings, args: NodeArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args)?;
    let targets = resolve(&inventory, settings, &args)?;
    let credentials = &settings.credentials()?;
    let asked = &targets::ask_engines(settings, targets.iter().map(|t| t.node)).await;
    Ok(
        over_nodes(targets, Fanout::all(settings.forks), |target| async move {
            let name = &target.node.name;
            let engine = asked
                .connect(settings, target.node)
                .await
                .map_err(|e| vec![e])?;
            let mut images: Vec<String> = target
                .desired
                .services
                .values()
                .map(|d| d.service.image.clone())
                .collect();
            images.sort();
            images.dedup();
            let source = targets::image_source(settings, target.node);
            say(format!("{name}: pulling {}", images.join(", ")));
            let failed = supply::supply_images(&engine, &images, &source, credentials).await;
            if !failed.is_empty() {
                return Err(failed
                    .into_iter()
                    .map(|(image, why)| anyhow::anyhow!("node {name}: pull {image}: {why}"))
                    .collect());
            }
            Ok(vec![format!("{} images pulled", images.len())])
        })
        .await,
    )
}
