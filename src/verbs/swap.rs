//! `kolla upgrade` (swap services to a new image or config, through the
//! same replace path as deploy) and `kolla rollback` (swap a kept container
//! back in: no pull, no build). Nodes go one at a time unless
//! `--parallel`; a failing node stops the run before the next. Each node
//! goes through the node pipeline (`deploy::pipeline`); the swaps it
//! records are printed at the end with `--output json`.

use anyhow::bail;

use super::targets::{self, Target, apply_options, connect, node_at, resolve};
use super::{Fanout, Outcome, over_nodes};
use crate::cli::{OutputFormat, RollbackArgs, UpgradeArgs};
use crate::config::ConfigError;
use crate::credentials::Store;
use crate::deploy::desired::Desired;
use crate::deploy::pipeline::{self, Intent, RunLog};
use crate::deploy::plan::BackTo;
use crate::settings::Settings;

pub async fn upgrade(settings: &Settings, args: UpgradeArgs) -> anyhow::Result<Outcome> {
    if args.dry_run && !args.all {
        // Never an upgrade for an operator who asked to change nothing.
        bail!(ConfigError::Invalid {
            path: args.nodes.compose_dir.clone(),
            message: "--dry-run prints the plan of `upgrade --all`: give --all (a named service's upgrade has no dry run yet; `kolla deploy --dry-run` shows what a deploy would swap)".into(),
        });
    }
    let settings = &settings.with_release_and_tag(args.release, args.tag.as_deref())?;
    let inventory = targets::load_nodes(&args.nodes)?;
    let targets = resolve(&inventory, settings, &args.nodes)?;
    if args.all {
        let log = RunLog::default();
        let outcome = super::all_services::upgrade_all(settings, &args, targets, &log).await?;
        print_records(&log, args.output == OutputFormat::Json)?;
        return Ok(outcome);
    }
    check_upgrade(&targets, &args)?;
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| {
            args.services
                .iter()
                .any(|s| t.desired.services.contains_key(s))
        })
        .collect();
    let options = apply_options(&args.gate, settings);
    let json = args.output == OutputFormat::Json;
    let fanout = Fanout {
        batch: usize::from(args.parallel),
        stop_after_failure: true,
        report_on_stderr: json,
    };
    let log = RunLog::default();
    let credentials = settings.credentials()?;
    let (args, options, log_ref, credentials) = (&args, &options, &log, &credentials);
    let intent = &Intent::Upgrade {
        services: &args.services,
        allow_downgrade: args.allow_downgrade,
    };
    // Every node's images first, all nodes at once: the old containers
    // keep serving meanwhile, the rolling swaps that follow wait for no
    // copy, and an image that cannot reach some node fails the upgrade
    // before any node is swapped.
    let supplied = over_nodes(
        targets.iter().collect(),
        Fanout {
            report_on_stderr: json,
            ..Fanout::all(settings.forks)
        },
        |target| async move {
            let engine = connect(settings, target.node).await?;
            let at = node_at(&engine, target.node, settings, (options, credentials));
            pipeline::supply(&at, target.desired.clone(), Some(&args.services)).await
        },
    )
    .await;
    if supplied != Outcome::Success {
        print_records(&log, json)?;
        return Ok(supplied);
    }
    let outcome = over_nodes(targets, fanout, |target| async move {
        let engine = connect(settings, target.node).await?;
        let at = node_at(&engine, target.node, settings, (options, credentials));
        pipeline::run(&at, target.desired, intent, log_ref).await
    })
    .await;
    print_records(&log, json)?;
    Ok(outcome)
}

/// The swaps of every node, as one JSON list, with `--output json`.
fn print_records(log: &RunLog, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(&log.records())?);
    }
    Ok(())
}

/// Refusals before anything is touched: every named service exists on
/// some selected node; a data container holds data, not code, and is
/// never swapped; a --tag the file does not use would upgrade nothing.
fn check_upgrade(targets: &[Target], args: &UpgradeArgs) -> Result<(), ConfigError> {
    let refuse = |message: String| ConfigError::Invalid {
        path: args.nodes.compose_dir.clone(),
        message,
    };
    for service in &args.services {
        if !targets
            .iter()
            .any(|t| t.desired.services.contains_key(service))
        {
            return Err(refuse(format!(
                "service {service} is in no compose file of the selected nodes"
            )));
        }
    }
    for wanted in targets.iter().flat_map(|t| {
        args.services
            .iter()
            .filter_map(|s| t.desired.services.get(s))
    }) {
        let service = &wanted.service.name;
        if let Some(tag) = &args.tag
            && !crate::engine::split_tag(&wanted.service.image)
                .1
                .contains(tag.as_str())
        {
            return Err(refuse(format!(
                "service {service}: its image is {}, whose tag comes from the compose file, not from --tag {tag}; write ${{TAG}} in the file, or change the tag there",
                wanted.service.image
            )));
        }
        if wanted.service.kolla.data {
            return Err(refuse(format!(
                "service {service} is a data container: it is never upgraded (its volumes stay as they are; upgrade the services that use them)"
            )));
        }
    }
    Ok(())
}

/// Where `--release` or `--tag` sends a rollback, if either is given.
fn back_to(args: &RollbackArgs) -> Option<BackTo> {
    match (&args.release, &args.tag) {
        (Some(release), _) => Some(BackTo::Release(release.name().to_string())),
        (None, Some(tag)) => Some(BackTo::Tag(tag.clone())),
        (None, None) => None,
    }
}

pub async fn rollback(settings: &Settings, args: RollbackArgs) -> anyhow::Result<Outcome> {
    let back_to = back_to(&args);
    if args.all {
        let Some(back_to) = back_to else {
            bail!(ConfigError::Invalid {
                path: args.nodes.compose_dir.clone(),
                message: "rollback --all needs where to: --release (e.g. --release zed) or --tag, the release or tag every service goes back to".into(),
            });
        };
        let inventory = targets::load_nodes(&args.nodes)?;
        let targets = resolve(&inventory, settings, &args.nodes)?;
        let log = RunLog::default();
        let outcome =
            super::all_services::rollback_all(settings, &args, &back_to, targets, &log).await?;
        print_records(&log, args.output == OutputFormat::Json)?;
        return Ok(outcome);
    }
    let inventory = targets::load_nodes(&args.nodes)?;
    let selected = inventory.select(&args.nodes.node)?;
    let options = apply_options(&args.gate, settings);
    let json = args.output == OutputFormat::Json;
    let fanout = Fanout {
        batch: usize::from(args.parallel),
        stop_after_failure: true,
        report_on_stderr: json,
    };
    let log = RunLog::default();
    // A rollback pulls nothing: no credentials are read.
    let credentials = Store::default();
    let (args, options, log_ref, credentials) = (&args, &options, &log, &credentials);
    let intent = &Intent::Rollback {
        services: &args.services,
        to: args.to,
        back_to: back_to.as_ref(),
        force: args.force,
        restore_db: args.restore_db,
    };
    let outcome = over_nodes(selected, fanout, |node| async move {
        let engine = connect(settings, node).await?;
        let at = node_at(&engine, node, settings, (options, credentials));
        // A rollback swaps kept containers: the compose files are not read.
        pipeline::run(&at, Desired::default(), intent, log_ref).await
    })
    .await;
    print_records(&log, json)?;
    if outcome == Outcome::Success && !log.found_any() {
        bail!(ConfigError::Invalid {
            path: inventory.origin.clone(),
            message: format!(
                "none of {} runs on the selected nodes",
                args.services.join(", ")
            ),
        });
    }
    Ok(outcome)
}
