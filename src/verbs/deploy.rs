//! `kolla deploy` (converge each selected node to its compose files) and
//! `kolla pull` (fetch every image they use), of every service or of the
//! services named. Files are resolved first, so bad input (a name no file
//! knows among it) fails before any engine is touched; then each node, in
//! its wave, goes through the node pipeline (`deploy::pipeline`). Named
//! services leave the nodes that deploy none of them alone. With
//! `--output json` each node's plan and results (the pipeline's records),
//! or each image's pull, are one document on stdout.

use std::pin::pin;

use futures_util::future::Either;

use serde::Serialize;

use super::json::{self, Ended};
use super::targets::{self, Target, apply_options, node_at, resolve};
use super::{Fanout, NodeReport, Outcome, named, over_nodes, over_nodes_in_waves};
use crate::cli::{DeployArgs, OutputFormat, PullArgs};
use crate::config::inventory::Node;
use crate::credentials::Store;
use crate::deploy::desired::Desired;
use crate::deploy::pipeline::{self, DeployRecord, Intent, NodeErrors, RecoveryRecord, RunLog};
use crate::deploy::supply;
use crate::engine::Engine;
use crate::progress::say;
use crate::settings::Settings;

pub async fn deploy(settings: &Settings, args: DeployArgs) -> anyhow::Result<Outcome> {
    let settings = &settings.with_release_and_tag(args.release, None)?;
    let inventory = targets::load_nodes(&args.nodes)?;
    let targets = only_named(resolve(&inventory, settings, &args.nodes)?, &args.services)?;
    // Read once for every node; a dry run pulls nothing.
    let credentials = match args.dry_run {
        true => Store::default(),
        false => settings.credentials()?,
    };
    // Roles that come after others (`x-kolla.after`) wait for their nodes.
    let waves = targets::deploy_waves(&targets, &args.nodes.compose_dir)?;
    let asked = targets::ask_engines(settings, targets.iter().map(|t| t.node)).await;
    let json = args.output == OutputFormat::Json;
    let names: Vec<String> = targets.iter().map(|t| t.node.name.clone()).collect();
    let (log, ended) = (RunLog::default(), Ended::<()>::default());
    let (args, credentials, asked, log_ref, ended_ref) =
        (&args, &credentials, &asked, &log, &ended);
    let ahead = Ahead::of_later_waves(&targets, &waves, args.dry_run);
    let ahead = &ahead;
    let fanout = Fanout {
        report_on_stderr: json,
        ..Fanout::all(settings.forks)
    };
    let deployed = over_nodes_in_waves(targets, &waves, fanout, |target| async move {
        let name = target.node.name.clone();
        ahead.wait_for(&name).await;
        let report = deploy_node(target, settings, args, (credentials, asked), log_ref).await;
        ended_ref.note(&name, report, ())
    });
    let supplied = ahead.supply(settings, args, credentials, asked);
    // The waves may end first (a wave failed, and later ones are not
    // started): copies still under way are then dropped.
    let outcome = match futures_util::future::select(pin!(deployed), pin!(supplied)).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(((), deployed)) => deployed.await,
    };
    if json {
        json::print(&ended.entries(names, |node, ()| NodeDeploy {
            dry_run: args.dry_run,
            recovered: log.recoveries_of(node),
            deploy: log.deploy_of(node).unwrap_or_default(),
        }))?;
    }
    Ok(outcome)
}

/// A node's part of `deploy --output json`: what recovery did first, then
/// the plan and each action's result (`dry_run`: the plan alone).
#[derive(Debug, Serialize)]
struct NodeDeploy {
    dry_run: bool,
    recovered: Vec<RecoveryRecord>,
    #[serde(flatten)]
    deploy: DeployRecord,
}

/// The images of the nodes in later waves, put on them while the first
/// wave deploys (a fresh cloud's compute nodes get theirs while the
/// controllers start), at most `--forks` at a time besides the waves' own.
/// A node's wave waits for its copy to end; a copy that fails is said and
/// left to the node's own pipeline, which tries again and reports it.
struct Ahead<'a> {
    /// Each later node, its desired state, and a gate its copy opens.
    nodes: Vec<(&'a Node, Desired, tokio::sync::Semaphore)>,
}

impl<'a> Ahead<'a> {
    fn of_later_waves(targets: &[Target<'a>], waves: &[Vec<usize>], dry_run: bool) -> Self {
        let later = waves.iter().skip(1).flatten().filter(|_| !dry_run);
        Ahead {
            nodes: later
                .filter_map(|&i| targets.get(i))
                .map(|t| (t.node, t.desired.clone(), tokio::sync::Semaphore::new(0)))
                .collect(),
        }
    }

    async fn wait_for(&self, node: &str) {
        if let Some((_, _, gate)) = self.nodes.iter().find(|(n, _, _)| n.name == node) {
            // The gate is never closed: an error could only mean it was.
            let _ = gate.acquire().await;
        }
    }

    async fn supply(
        &self,
        settings: &Settings,
        args: &DeployArgs,
        credentials: &Store,
        asked: &targets::Asked,
    ) {
        let options = &apply_options(&args.gate, settings);
        super::each_node(&self.nodes, settings.forks, |(node, desired, gate)| async move {
            let only = named_only(&args.services);
            let copied = async {
                let engine = asked.connect(settings, node).await?;
                let at = node_at(&engine, node, settings, (options, credentials));
                pipeline::supply(&at, desired.clone(), only).await
            };
            if let Err(NodeErrors(errors)) = copied.await {
                for error in errors {
                    say(format!(
                        "{}: images not put on the node ahead of its wave ({error:#}); its wave tries again",
                        node.name
                    ));
                }
            }
            gate.add_permits(1);
        })
        .await;
    }
}

async fn deploy_node(
    target: Target<'_>,
    settings: &Settings,
    args: &DeployArgs,
    (credentials, asked): (&Store, &targets::Asked),
    log: &RunLog,
) -> NodeReport {
    let engine = asked.connect(settings, target.node).await?;
    let options = apply_options(&args.gate, settings);
    let at = node_at(&engine, target.node, settings, (&options, credentials));
    let intent = Intent::Deploy {
        remove_orphans: args.remove_orphans,
        dry_run: args.dry_run,
        only: named_only(&args.services),
        plan_on_stderr: args.output == OutputFormat::Json,
    };
    pipeline::run(&at, target.desired, &intent, log).await
}

/// The services named on the command line, if any (None: every one).
fn named_only(services: &[String]) -> Option<&[String]> {
    (!services.is_empty()).then_some(services)
}

/// `targets` for a verb given `services`: refused if one is a name no
/// selected node deploys; else the nodes that deploy one of them (all of
/// them when none is named).
fn only_named<'a>(
    targets: Vec<Target<'a>>,
    services: &[String],
) -> Result<Vec<Target<'a>>, named::UnknownService> {
    named::refuse_unknown_in(services, &targets)?;
    Ok(targets
        .into_iter()
        .filter(|t| {
            services.is_empty() || services.iter().any(|s| t.desired.services.contains_key(s))
        })
        .collect())
}

pub async fn pull(settings: &Settings, args: PullArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let targets = only_named(resolve(&inventory, settings, &args.nodes)?, &args.services)?;
    let credentials = &settings.credentials()?;
    let asked = &targets::ask_engines(settings, targets.iter().map(|t| t.node)).await;
    let only = named_only(&args.services);
    let json = args.output == OutputFormat::Json;
    let names: Vec<String> = targets.iter().map(|t| t.node.name.clone()).collect();
    let ended = Ended::default();
    let ended_ref = &ended;
    let fanout = Fanout {
        report_on_stderr: json,
        ..Fanout::all(settings.forks)
    };
    let outcome = over_nodes(targets, fanout, |target| async move {
        let mut pulled = Vec::new();
        let report = pull_node(&target, settings, (credentials, asked), only, &mut pulled).await;
        ended_ref.note(&target.node.name, report, pulled)
    })
    .await;
    if json {
        json::print(&ended.entries(names, |_, images| NodePull { images }))?;
    }
    Ok(outcome)
}

/// A node's part of `pull --output json`.
#[derive(Debug, Serialize)]
struct NodePull {
    images: Vec<PulledImage>,
}

/// One image a pull put on a node, or could not.
#[derive(Debug, Serialize)]
struct PulledImage {
    image: String,
    /// `pulled` (new on the node, or changed), `already present` (the
    /// node had it as the registry has it) or `failed`.
    result: &'static str,
    error: Option<String>,
}

/// Pull the images of `target`'s services (of `only`, if given), each
/// one's result written into `pulled`.
async fn pull_node(
    target: &Target<'_>,
    settings: &Settings,
    (credentials, asked): (&Store, &targets::Asked),
    only: Option<&[String]>,
    pulled: &mut Vec<PulledImage>,
) -> NodeReport {
    let name = &target.node.name;
    let engine = asked.connect(settings, target.node).await?;
    let mut images: Vec<String> = target
        .desired
        .services
        .values()
        .filter(|d| only.is_none_or(|only| only.contains(&d.service.name)))
        .map(|d| d.service.image.clone())
        .collect();
    images.sort();
    images.dedup();
    let source = targets::image_source(settings, target.node);
    say(format!("{name}: pulling {}", images.join(", ")));
    let before = image_ids(&engine, &images).await;
    let failed = supply::supply_images(&engine, &images, &source, credentials).await;
    let after = image_ids(&engine, &images).await;
    for ((image, before), after) in images.iter().zip(before).zip(after) {
        let (result, error) = match failed.get(image) {
            Some(why) => ("failed", Some(why.clone())),
            None if before.is_some() && before == after => ("already present", None),
            None => ("pulled", None),
        };
        pulled.push(PulledImage {
            image: image.clone(),
            result,
            error,
        });
    }
    if !failed.is_empty() {
        return Err(NodeErrors::many(failed.into_iter().map(|(image, why)| {
            anyhow::anyhow!("node {name}: pull {image}: {why}")
        })));
    }
    Ok(vec![format!("{} images pulled", images.len())])
}

/// The id of each of `images` on the node (None: not there, or not known).
async fn image_ids(engine: &Engine, images: &[String]) -> Vec<Option<String>> {
    let mut ids = Vec::with_capacity(images.len());
    for image in images {
        ids.push(engine.image(image).await.ok().flatten().map(|info| info.id));
    }
    ids
}
