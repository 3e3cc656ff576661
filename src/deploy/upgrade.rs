//! The swap: replace a service's live container with a new one, atomically
//! from the operator's point of view, keeping the old one for rollback.
//! (Rollback, recovery after a crash, and the `upgrade` verb build on this.)
//!
//! Stop-first (the default; required with host networking, where ports
//! collide): the candidate is created and configured first, so the dark
//! window is only stop + rename + rename + start. Start-first: the
//! candidate starts and passes its gate before the old one stops.
//! A candidate that fails its gate is removed and the old container gets its
//! name, restart policy and running state back.

use std::time::{Duration, Instant};

use super::apply::{DeployError, NodeRun};
use super::labels::{self, ObservedContainer, Role};
use super::spec::ContainerSpec;

#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// Graceful stop timeout of the old container (seconds).
    pub grace: Option<i64>,
    pub start_first: bool,
    pub has_healthcheck: bool,
}

/// Swap `live` for a container made from `candidate` (named
/// `<svc>.kolla-new`). Returns the dark window: from the old container
/// stopping to the new one started (zero for start-first).
pub async fn swap(
    run: &NodeRun<'_>,
    service: &str,
    live: &ObservedContainer,
    kept: &[ObservedContainer],
    candidate: ContainerSpec,
    files: &[(String, Vec<u8>)],
    options: &SwapOptions,
) -> Result<Duration, DeployError> {
    let engine = run.engine;
    let err = |e| DeployError::Engine {
        node: run.node.to_string(),
        source: e,
    };
    let candidate_name = candidate.name.clone();
    let live_name = live.name.clone();
    let kept_name =
        labels::container_name(run.placement_prefix, service, Role::Kept(live.generation));

    // A candidate left by an interrupted swap is stale: start afresh.
    engine
        .remove_container(&candidate_name, false)
        .await
        .map_err(err)?;
    engine.create_container(&candidate).await.map_err(err)?;
    if let Err(e) = run.upload(&candidate_name, files).await {
        let _ = engine.remove_container(&candidate_name, false).await;
        return Err(e);
    }
    let old_policy = engine
        .container_details(&live_name)
        .await
        .map_err(err)?
        .map(|(_, policy)| policy)
        .unwrap_or_else(|| "no".into());

    if options.start_first {
        (run.say)(format!(
            "{}: {service}: starting the new container beside the old one",
            run.node
        ));
        engine.start_container(&candidate_name).await.map_err(err)?;
        if let Err(e) = run
            .gate(service, &candidate_name, options.has_healthcheck)
            .await
        {
            let _ = engine.remove_container(&candidate_name, false).await;
            return Err(e);
        }
        engine
            .set_restart_policy(&live_name, "no")
            .await
            .map_err(err)?;
        engine
            .stop_container(&live_name, options.grace)
            .await
            .map_err(err)?;
        engine
            .rename_container(&live_name, &kept_name)
            .await
            .map_err(err)?;
        engine
            .rename_container(&candidate_name, &live_name)
            .await
            .map_err(err)?;
        prune(run, service, live, kept).await?;
        return Ok(Duration::ZERO);
    }

    (run.say)(format!(
        "{}: {service}: swapping generation {} for {}",
        run.node,
        live.generation,
        candidate
            .labels
            .get(labels::GENERATION)
            .cloned()
            .unwrap_or_default()
    ));
    // An engine restart must never revive the old container beside the new.
    engine
        .set_restart_policy(&live_name, "no")
        .await
        .map_err(err)?;
    let stopping = Instant::now();
    engine
        .stop_container(&live_name, options.grace)
        .await
        .map_err(err)?;
    engine
        .rename_container(&live_name, &kept_name)
        .await
        .map_err(err)?;
    engine
        .rename_container(&candidate_name, &live_name)
        .await
        .map_err(err)?;
    let started = engine.start_container(&live_name).await;
    let dark = stopping.elapsed();
    let gate = match started {
        Ok(()) => run.gate(service, &live_name, options.has_healthcheck).await,
        Err(e) => Err(err(e)),
    };
    match gate {
        Ok(()) => {
            (run.say)(format!(
                "{}: {service}: dark window {:.3}s",
                run.node,
                dark.as_secs_f64()
            ));
            prune(run, service, live, kept).await?;
            Ok(dark)
        }
        Err(failure) => {
            (run.say)(format!(
                "{}: {service}: new container failed; swapping back to generation {}",
                run.node, live.generation
            ));
            engine
                .remove_container(&live_name, false)
                .await
                .map_err(err)?;
            engine
                .rename_container(&kept_name, &live_name)
                .await
                .map_err(err)?;
            engine
                .set_restart_policy(&live_name, &old_policy)
                .await
                .map_err(err)?;
            engine.start_container(&live_name).await.map_err(err)?;
            Err(failure)
        }
    }
}

/// Keep the newest `retain` replaced containers of `service`, remove older
/// ones (their images stay while any container uses them).
async fn prune(
    run: &NodeRun<'_>,
    service: &str,
    replaced: &ObservedContainer,
    kept: &[ObservedContainer],
) -> Result<(), DeployError> {
    let mut generations: Vec<(u64, String)> = kept
        .iter()
        .filter_map(|c| match c.role {
            Role::Kept(g) => Some((g, c.name.clone())),
            _ => None,
        })
        .collect();
    generations.push((
        replaced.generation,
        labels::container_name(
            run.placement_prefix,
            service,
            Role::Kept(replaced.generation),
        ),
    ));
    generations.sort_by_key(|g| std::cmp::Reverse(g.0));
    generations.dedup_by(|a, b| a.0 == b.0);
    for (_, name) in generations.into_iter().skip(run.options.retain) {
        (run.say)(format!(
            "{}: {service}: removing {name} (beyond retain {})",
            run.node, run.options.retain
        ));
        run.engine
            .remove_container(&name, false)
            .await
            .map_err(|e| DeployError::Engine {
                node: run.node.to_string(),
                source: e,
            })?;
    }
    Ok(())
}
