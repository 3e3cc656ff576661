//! The deploy intent once the node is ready: its volumes looked at, the
//! pure plan made and shown, then (unless a dry run, or nothing changes)
//! executed and checked, summed up in one line. A deploy of named services
//! plans, runs and checks those alone.

use std::collections::BTreeMap;

use super::report::DeployRecord;
use super::{NodeAt, NodeErrors, RunLog};
use crate::config::ConfigError;
use crate::deploy::desired::Desired;
use crate::deploy::execute::Executor;
use crate::deploy::labels::{self, ObservedContainer};
use crate::deploy::plan::{self, Plan, PlanOptions, Volumes};
use crate::engine::EngineError;

/// A volume made outside kolla must be there: never an empty substitute
/// under its name.
pub(super) async fn check_external_volumes(
    at: &NodeAt<'_>,
    desired: &Desired,
) -> Result<(), NodeErrors> {
    let node = at.run.node;
    for (volume, file) in &desired.external_volumes {
        let exists = at
            .run
            .engine
            .volume_exists(volume)
            .await
            .map_err(|e| on_node(e, node))?;
        if !exists {
            return Err(NodeErrors::from(ConfigError::Invalid {
                path: file.clone(),
                message: format!(
                    "volume {volume} is external (made outside kolla) and does not exist on node {node}; create it there first (docker volume create {volume})"
                ),
            }));
        }
    }
    Ok(())
}

/// How a deploy converges a node (the deploy intent's settings).
pub(super) struct How<'a> {
    pub(super) remove_orphans: bool,
    pub(super) dry_run: bool,
    /// Only these services; None: every one.
    pub(super) only: Option<&'a [String]>,
    /// Say the plan on stderr, not stdout.
    pub(super) plan_on_stderr: bool,
}

/// Plan the node, say the plan, and unless `dry_run` (or nothing is to
/// change) execute and check it: the lines to report. The plan and each
/// action's result are recorded in `log`, whatever the outcome.
pub(super) async fn converge(
    at: &NodeAt<'_>,
    desired: &Desired,
    observed: &[ObservedContainer],
    how: How<'_>,
    log: &RunLog,
) -> Result<Vec<String>, NodeErrors> {
    let name = at.run.node;
    let services: Vec<_> = desired.services.values().cloned().collect();
    let existing = existing_volumes(at, desired)
        .await
        .map_err(|e| on_node(e, name))?;
    let options = PlanOptions {
        remove_orphans: how.remove_orphans,
        only: how.only.map(|only| only.iter().cloned().collect()),
        retain: at.run.options.retain,
        prefix: at.globals.container_prefix.clone(),
        volumes: Volumes {
            named: desired.volumes.clone(),
            existing: existing.into_iter().collect(),
        },
    };
    let plan = plan::plan(&services, observed, &options).map_err(|e| on_node(e, name))?;
    let text = format!("node {name}:\n{}", plan.text());
    if how.plan_on_stderr {
        eprint!("{text}");
    } else {
        out!("{text}");
    }
    let mut record = DeployRecord::of(&plan, how.dry_run);
    let result = execute(at, desired, observed, (&plan, how), &mut record).await;
    log.deployed(name, record);
    result
}

/// The plan carried out (unless a dry run, or nothing is to change),
/// each result written into `record`: the line to report.
async fn execute(
    at: &NodeAt<'_>,
    desired: &Desired,
    observed: &[ObservedContainer],
    (plan, how): (&Plan, How<'_>),
    record: &mut DeployRecord,
) -> Result<Vec<String>, NodeErrors> {
    if how.dry_run {
        return Ok(vec![format!(
            "{} changes planned (dry run: nothing changed)",
            plan.changes()
        )]);
    }
    if plan.changes() == 0 {
        return Ok(vec!["up to date, nothing changed".to_string()]);
    }
    let executor = Executor::of(&at.run);
    let applied = executor
        .apply(plan, &desired.services, observed, &desired.files)
        .await;
    record.applied(&applied);
    if !applied.failed.is_empty() {
        return Err(NodeErrors::many(applied.failed.into_iter().map(|(_, e)| e)));
    }
    let after = super::observe_node(at).await?;
    if let Err(failed) = executor.verify(&desired.services, &after, how.only).await {
        for (service, error) in &failed {
            record.failed(service, error.to_string());
        }
        return Err(NodeErrors::many(failed.into_iter().map(|(_, e)| e)));
    }
    let done = applied.done;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &done {
        *counts.entry(d.kind.as_str()).or_default() += 1;
    }
    let described: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    Ok(vec![format!(
        "{} ({} unchanged)",
        described.join(", "),
        how.only
            .map_or(desired.services.len(), <[String]>::len)
            .saturating_sub(done.len())
    )])
}

/// One error, said of the node.
fn on_node(error: impl Into<anyhow::Error>, node: &str) -> NodeErrors {
    NodeErrors::from(error.into().context(format!("node {node}")))
}

/// The deployment's volumes on the node, and those of the same names made
/// outside kolla: the plan keeps those rather than claim to create them.
async fn existing_volumes(at: &NodeAt<'_>, desired: &Desired) -> Result<Vec<String>, EngineError> {
    let engine = at.run.engine;
    let project = format!("{}={}", labels::PROJECT, at.globals.project);
    let mut existing = engine.volume_names(&project).await?;
    for (volume, _) in &desired.volumes {
        if !existing.contains(volume) && engine.volume_exists(volume).await? {
            existing.push(volume.clone());
        }
    }
    Ok(existing)
}
