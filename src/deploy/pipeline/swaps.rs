//! The upgrade and rollback intents once the node is ready: each named
//! service swapped in turn (to its desired image and config, or back to a
//! kept generation), its live line ended with the result, and a record of
//! each swap for `--output json`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::report::{RunLog, SwapRecord};
use super::{NodeAt, NodeErrors};
use crate::deploy::context::NodeRun;
use crate::deploy::desired::Desired;
use crate::deploy::error::DeployError;
use crate::deploy::execute::Executor;
use crate::deploy::labels::{ObservedContainer, Role};
use crate::deploy::plan::{self, BackTo, DesiredService};
use crate::deploy::restore_point::RestorePoints;
use crate::deploy::tags::{self, TagChange};
use crate::progress::{Finished, Tone};

fn live_of<'a>(observed: &'a [ObservedContainer], service: &str) -> Option<&'a ObservedContainer> {
    observed
        .iter()
        .find(|c| c.service == service && c.role == Role::Live)
}

/// Swap each of `services` the node runs to what `desired` holds: one line
/// for the node.
pub(super) async fn upgrade(
    at: &NodeAt<'_>,
    desired: &Desired,
    observed: &[ObservedContainer],
    (services, allow_downgrade): (&[String], bool),
    log: &RunLog,
) -> anyhow::Result<String> {
    let (run, name) = (&at.run, at.run.node);
    let mut done = Vec::new();
    for service in services {
        let Some(wanted) = desired.services.get(service) else {
            continue;
        };
        let Some(live) = live_of(observed, service) else {
            anyhow::bail!(
                "node {name}: service {service} is not deployed here; `kolla deploy` creates it"
            );
        };
        check_tags(run, live, wanted, allow_downgrade)?;
        let mut record = SwapRecord {
            node: name.to_string(),
            service: service.clone(),
            action: "upgrade",
            result: "unchanged",
            from_generation: live.generation,
            to_generation: None,
            dark_window_secs: None,
            error: None,
        };
        if plan::is_current(wanted, live) {
            log.records.push(record);
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
        let action = plan::upgrade_action(wanted, observed, run.placement_prefix);
        let replaced = Executor::of(run)
            .replace(&action, wanted, observed, files, "upgrade")
            .await;
        show_result(run, service, "upgraded", replaced.as_ref().copied());
        record.to_generation = Some(plan::next_generation(observed, service));
        log.records
            .push(finish_record(record, replaced.as_ref().copied()));
        done.push(match replaced? {
            Some(dark) => format!("{service} upgraded, dark window {:.3}s", dark.as_secs_f64()),
            None => format!("{service} already upgraded by another run"),
        });
    }
    Ok(done.join("; "))
}

/// The post-upgrade step of each of `services` the node runs at its
/// desired image and config, in turn: a line each.
pub(super) async fn post_upgrade(
    at: &NodeAt<'_>,
    desired: &Desired,
    observed: &[ObservedContainer],
    services: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for service in services {
        let Some(wanted) = desired.services.get(service) else {
            continue;
        };
        let Some(live) = live_of(observed, service).filter(|live| plan::is_current(wanted, live))
        else {
            if wanted.service.kolla.post_upgrade.is_some() {
                lines.push(format!(
                    "{service}: not at its new image and config: its post-upgrade step waits for its upgrade"
                ));
            }
            continue;
        };
        let volumes = plan::upgrade_action(wanted, observed, at.run.placement_prefix).volumes;
        if Executor::of(&at.run)
            .post_upgrade(wanted, live, &volumes)
            .await?
        {
            at.run
                .steps
                .event(at.run.node, service, "post-upgrade step done");
            lines.push(format!("{service}: post-upgrade step done"));
        }
    }
    Ok(lines)
}

/// Swap each of `services` the node runs back to a kept generation
/// (`to`, else the newest kept): a line each.
/// Which generation a rollback swaps in, and how.
pub(super) struct RollbackTo<'a> {
    pub(super) to: Option<u64>,
    pub(super) back_to: Option<&'a BackTo>,
    pub(super) force: bool,
    pub(super) restore_db: bool,
}

pub(super) async fn rollback(
    at: &NodeAt<'_>,
    observed: &[ObservedContainer],
    services: &[String],
    how: RollbackTo<'_>,
    log: &RunLog,
) -> Result<Vec<String>, NodeErrors> {
    let (run, name) = (&at.run, at.run.node);
    let restore_db = how.restore_db;
    let mut lines = Vec::new();
    for service in services {
        let Some(live) = live_of(observed, service) else {
            continue;
        };
        log.found.store(true, Ordering::Relaxed);
        let kept = plan::kept_of(observed, service);
        let refused = |e: String| anyhow::anyhow!("node {name}: service {service}: {e}");
        let target = match how.back_to {
            Some(back_to) => match plan::rollback_target_back_to(live, &kept, back_to) {
                Ok(Some(target)) => target,
                Ok(None) => {
                    lines.push(format!(
                        "{service} already at {back_to} (generation {})",
                        live.generation
                    ));
                    continue;
                }
                Err(e) => return Err(refused(e).into()),
            },
            None => plan::rollback_target(live, &kept, how.to, how.force).map_err(refused)?,
        };
        // A rollback by release or tag (`rollback --all`) restores the
        // databases of the services that have a restore point for their
        // target and swaps the rest as they are; a rollback to a
        // generation with `--restore-db` still needs its restore point.
        let restore_db = restore_db
            && (how.back_to.is_none()
                || RestorePoints::of(run)
                    .restore_point(service, target.generation)
                    .await?
                    .is_some());
        if !restore_db {
            warn_if_migrated(run, live, target).await?;
        }
        let rolled_back = Executor::of(run)
            .rollback(live, target, &kept, restore_db)
            .await;
        let result = rolled_back.as_ref().map(|d| Some(*d));
        show_result(run, service, "rolled back", result);
        let record = SwapRecord {
            node: name.to_string(),
            service: service.clone(),
            action: "rollback",
            result: "unchanged",
            from_generation: live.generation,
            to_generation: Some(target.generation),
            dark_window_secs: None,
            error: None,
        };
        log.records.push(finish_record(record, result));
        let dark = rolled_back?;
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
    if let Some(point) = RestorePoints::of(run)
        .restore_point(service, target.generation)
        .await?
    {
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
    run: &NodeRun<'_>,
    live: &ObservedContainer,
    wanted: &DesiredService,
    allow_downgrade: bool,
) -> anyhow::Result<()> {
    let (name, service) = (run.node, &live.service);
    match tags::compare_tags(&live.image, &wanted.service.image) {
        TagChange::Lower if !allow_downgrade => anyhow::bail!(
            "node {name}: service {service}: {} is a lower version than the running {}; pass --allow-downgrade to go back",
            wanted.service.image,
            live.image
        ),
        TagChange::NotComparable => run.steps.note(format!(
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
    result: Result<Option<Duration>, &DeployError>,
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
    result: Result<Option<Duration>, &DeployError>,
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
