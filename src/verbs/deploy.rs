//! `kolla deploy` (converge each selected node to its compose files) and
//! `kolla pull` (fetch every image they use). Files are resolved first, so
//! bad input fails before any engine is touched; then each node, in its
//! wave, goes through the node pipeline (`deploy::pipeline`).

use super::targets::{self, Target, apply_options, node_at, resolve};
use super::{Fanout, NodeReport, Outcome, over_nodes, over_nodes_in_waves};
use crate::cli::{DeployArgs, NodeArgs};
use crate::credentials::Store;
use crate::deploy::pipeline::{self, Intent, SwapLog};
use crate::deploy::supply;
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

async fn deploy_node(
    target: Target<'_>,
    settings: &Settings,
    args: &DeployArgs,
    credentials: &Store,
    asked: &targets::Asked,
) -> NodeReport {
    let engine = asked
        .connect(settings, target.node)
        .await
        .map_err(|e| vec![e])?;
    let options = apply_options(&args.gate);
    let at = node_at(&engine, target.node, settings, (&options, credentials));
    let intent = Intent::Deploy {
        remove_orphans: args.remove_orphans,
        dry_run: args.dry_run,
    };
    pipeline::run(&at, target.desired, &intent, &SwapLog::default()).await
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
