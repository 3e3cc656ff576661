//! `kolla upgrade` (swap services to a new image or config, through the
//! same replace path as deploy) and `kolla rollback` (swap a kept container
//! back in: no pull, no build). Nodes go one at a time unless
//! `--parallel`; a failing node stops the run before the next.

use anyhow::bail;
use serde::Serialize;

use super::recover::recover_first;
use super::targets::{self, Target, apply_options, connect, node_run, resolve};
use super::{Fanout, NodeReport, Outcome, over_nodes};
use crate::cli::{OutputFormat, RollbackArgs, UpgradeArgs};
use crate::config::ConfigError;
use crate::config::inventory::Node;
use crate::credentials::Store;
use crate::deploy::context::{ApplyOptions, NodeRun};
use crate::deploy::error::DeployError;
use crate::deploy::labels::{ObservedContainer, Role};
use crate::deploy::plan::{self, DesiredService};
use crate::deploy::supply::{self, Supply};
use crate::deploy::tags::{self, TagChange};
use crate::progress::{Finished, Tone, say};
use crate::settings::Settings;

fn live_of<'a>(observed: &'a [ObservedContainer], service: &str) -> Option<&'a ObservedContainer> {
    observed
        .iter()
        .find(|c| c.service == service && c.role == Role::Live)
}

pub async fn upgrade(settings: &Settings, args: UpgradeArgs) -> anyhow::Result<Outcome> {
    let settings = &settings.with_tag(args.tag.as_deref())?;
    let inventory = targets::load_nodes(&args.nodes)?;
    let targets = resolve(&inventory, settings, &args.nodes)?;
    check_upgrade(&targets, &args)?;
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| {
            args.services
                .iter()
                .any(|s| t.desired.services.contains_key(s))
        })
        .collect();
    let options = apply_options(&args.gate);
    let json = args.output == OutputFormat::Json;
    let fanout = Fanout {
        batch: usize::from(args.parallel),
        stop_after_failure: true,
        report_on_stderr: json,
    };
    let records = Records::default();
    let credentials = settings.credentials()?;
    let (args, options, records_ref) = (&args, &options, &records);
    let credentials = &credentials;
    let outcome = over_nodes(targets, fanout, |target| async move {
        upgrade_node(settings, target, args, options, (records_ref, credentials))
            .await
            .map_err(|e| vec![e])
    })
    .await;
    records.print(json)?;
    Ok(outcome)
}

/// One service's swap, as `--output json` reports it.
#[derive(Debug, Clone, Serialize)]
struct SwapRecord {
    node: String,
    service: String,
    action: &'static str,
    /// `swapped`, `unchanged` (already there) or `failed`.
    result: &'static str,
    from_generation: u64,
    to_generation: Option<u64>,
    /// From the old generation's stop to the new one's first passing
    /// health check: what a client saw.
    dark_window_secs: Option<f64>,
    error: Option<String>,
}

/// The records of every node, in the order the swaps ended.
#[derive(Default)]
struct Records(std::sync::Mutex<Vec<SwapRecord>>);

impl Records {
    fn push(&self, record: SwapRecord) {
        if let Ok(mut records) = self.0.lock() {
            records.push(record);
        }
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json && let Ok(records) = self.0.lock() {
            outln!("{}", serde_json::to_string_pretty(&*records)?);
        }
        Ok(())
    }
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

async fn upgrade_node(
    settings: &Settings,
    target: Target<'_>,
    args: &UpgradeArgs,
    options: &ApplyOptions,
    (records, credentials): (&Records, &Store),
) -> anyhow::Result<Vec<String>> {
    let name = target.node.name.clone();
    let engine = connect(settings, target.node).await?;
    let mut desired = target.desired;
    desired.services.retain(|s, _| args.services.contains(s));
    // Pull first: the old containers keep serving meanwhile.
    let source = targets::image_source(settings, target.node);
    let supply = Supply::Pull {
        copy_from: &source,
        credentials,
    };
    supply::resolve_images(&engine, &name, &mut desired, supply).await?;
    let mut observed = targets::observe(settings, &engine, &name).await?;
    let run = node_run(&engine, &name, settings, options);
    if recover_first(&run, &observed, Some(&args.services), false).await? {
        observed = targets::observe(settings, &engine, &name).await?;
    }
    targets::settle_privileged(
        &engine,
        target.node,
        &mut desired,
        &observed,
        (settings, false),
    )
    .await?;
    let mut done = Vec::new();
    for service in &args.services {
        let Some(wanted) = desired.services.get(service) else {
            continue;
        };
        let Some(live) = live_of(&observed, service) else {
            bail!("node {name}: service {service} is not deployed here; `kolla deploy` creates it");
        };
        check_tags(&name, service, live, wanted, args.allow_downgrade)?;
        let mut record = SwapRecord {
            node: name.clone(),
            service: service.clone(),
            action: "upgrade",
            result: "unchanged",
            from_generation: live.generation,
            to_generation: None,
            dark_window_secs: None,
            error: None,
        };
        if wanted.digest.as_deref() == Some(live.digest.as_str())
            && wanted.config_hash == live.config_hash
        {
            records.push(record);
            done.push(format!(
                "{service} already at generation {} (same image and config)",
                live.generation
            ));
            continue;
        }
        let files = desired
            .files
            .get(service)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let replaced = run.replace(wanted, &observed, files, "upgrade").await;
        show_result(&run, service, "upgraded", replaced.as_ref().copied());
        record.to_generation = Some(plan::next_generation(&observed, service));
        records.push(finish_record(record, replaced.as_ref().copied()));
        done.push(match replaced? {
            Some(dark) => format!("{service} upgraded, dark window {:.3}s", dark.as_secs_f64()),
            None => format!("{service} already upgraded by another run"),
        });
    }
    Ok(vec![done.join("; ")])
}

pub async fn rollback(settings: &Settings, args: RollbackArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let selected = inventory.select(&args.nodes.node)?;
    let options = apply_options(&args.gate);
    let found = std::sync::atomic::AtomicBool::new(false);
    let json = args.output == OutputFormat::Json;
    let fanout = Fanout {
        batch: usize::from(args.parallel),
        stop_after_failure: true,
        report_on_stderr: json,
    };
    let records = Records::default();
    let (args, options, found_ref, records_ref) = (&args, &options, &found, &records);
    let outcome = over_nodes(selected, fanout, |node| async move {
        rollback_node(settings, node, args, options, (found_ref, records_ref)).await
    })
    .await;
    records.print(json)?;
    if outcome == Outcome::Success && !found.load(std::sync::atomic::Ordering::Relaxed) {
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

async fn rollback_node(
    settings: &Settings,
    node: &Node,
    args: &RollbackArgs,
    options: &ApplyOptions,
    (found, records): (&std::sync::atomic::AtomicBool, &Records),
) -> NodeReport {
    let one = |e: anyhow::Error| vec![e];
    let engine = connect(settings, node).await.map_err(one)?;
    let mut observed = targets::observe(settings, &engine, &node.name)
        .await
        .map_err(one)?;
    if let Some(data) = observed
        .iter()
        .find(|c| c.data && c.role == Role::Live && args.services.contains(&c.service))
    {
        return Err(vec![anyhow::Error::from(ConfigError::Invalid {
            path: args.nodes.compose_dir.clone(),
            message: format!(
                "node {}: service {} is a data container: it is never rolled back (its volumes stay as they are)",
                node.name, data.service
            ),
        })]);
    }
    let run = node_run(&engine, &node.name, settings, options);
    if recover_first(&run, &observed, Some(&args.services), false)
        .await
        .map_err(one)?
    {
        observed = targets::observe(settings, &engine, &node.name)
            .await
            .map_err(one)?;
    }
    let mut lines = Vec::new();
    for service in &args.services {
        let Some(live) = live_of(&observed, service) else {
            continue;
        };
        found.store(true, std::sync::atomic::Ordering::Relaxed);
        let kept = plan::kept_of(&observed, service);
        let target = plan::rollback_target(live, &kept, args.to, args.force).map_err(|e| {
            vec![anyhow::anyhow!(
                "node {}: service {service}: {e}",
                node.name
            )]
        })?;
        if !args.restore_db {
            warn_if_migrated(&run, live, target)
                .await
                .map_err(|e| vec![e.into()])?;
        }
        let rolled_back = run.rollback(live, target, &kept, args.restore_db).await;
        let result = rolled_back.as_ref().map(|d| Some(*d));
        show_result(&run, service, "rolled back", result);
        let record = SwapRecord {
            node: node.name.clone(),
            service: service.clone(),
            action: "rollback",
            result: "unchanged",
            from_generation: live.generation,
            to_generation: Some(target.generation),
            dark_window_secs: None,
            error: None,
        };
        records.push(finish_record(record, result));
        let dark = rolled_back.map_err(|e| vec![e.into()])?;
        lines.push(format!(
            "{service} rolled back from generation {} to {}, dark window {:.3}s",
            live.generation,
            target.generation,
            dark.as_secs_f64()
        ));
    }
    Ok(lines)
}

/// A rollback without `--restore-db` to a generation that has a restore
/// point crosses a migration: say the schema may be newer than its code.
async fn warn_if_migrated(
    run: &NodeRun<'_>,
    live: &ObservedContainer,
    target: &ObservedContainer,
) -> Result<(), DeployError> {
    let service = live.service.as_str();
    if let Some(point) = run.restore_point(service, target.generation).await? {
        run.steps.event(
            run.node,
            service,
            &format!(
                "warning: generation {} ran its bootstrap job (schema migrations) after restore point {} was taken: the database schema may be newer than generation {}'s code; `--restore-db` loads that restore point (writes made since are lost)",
                live.generation, point.name, target.generation
            ),
        );
    }
    Ok(())
}

/// A lower version needs `--allow-downgrade`; tags that are not versions
/// are said and allowed.
fn check_tags(
    name: &str,
    service: &str,
    live: &ObservedContainer,
    wanted: &DesiredService,
    allow_downgrade: bool,
) -> anyhow::Result<()> {
    match tags::compare_tags(&live.image, &wanted.service.image) {
        TagChange::Lower if !allow_downgrade => bail!(
            "node {name}: service {service}: {} is a lower version than the running {}; pass --allow-downgrade to go back",
            wanted.service.image,
            live.image
        ),
        TagChange::NotComparable => say(format!(
            "{name}: {service}: note: {} or {} is not a semantic version; not compared",
            live.image, wanted.service.image
        )),
        _ => {}
    }
    Ok(())
}

/// The record completed from the swap's result.
fn finish_record(
    mut record: SwapRecord,
    result: Result<Option<std::time::Duration>, &DeployError>,
) -> SwapRecord {
    match result {
        Ok(Some(dark)) => {
            record.result = "swapped";
            record.dark_window_secs = Some(dark.as_secs_f64());
        }
        Ok(None) => record.to_generation = None,
        Err(e) => {
            record.result = "failed";
            record.error = Some(e.to_string());
        }
    }
    record
}

/// A swapped service's result on the display: its live line ends.
fn show_result(
    run: &NodeRun<'_>,
    service: &str,
    word: &'static str,
    result: Result<Option<std::time::Duration>, &DeployError>,
) {
    let (finished, detail) = match result {
        Ok(Some(dark)) => (
            Finished {
                word,
                tone: Tone::Good,
            },
            format!("dark {:.3}s", dark.as_secs_f64()),
        ),
        Ok(None) => (
            Finished {
                word: "up to date",
                tone: Tone::Good,
            },
            String::new(),
        ),
        Err(e) => (
            Finished {
                word: "failed",
                tone: Tone::Bad,
            },
            e.to_string(),
        ),
    };
    run.steps.done(run.node, service, finished, &detail);
}
