//! The swap: replace a service's live container with another one,
//! atomically from the operator's point of view, keeping the one replaced
//! for rollback. An upgrade (and a deploy of a changed service) swaps in a
//! freshly created candidate, `<svc>.kolla-new`; a rollback swaps in a kept
//! container, `<svc>.kolla-gen-N`: no pull, no build, one start.
//!
//! Stop-first (the default; required with host networking, where ports
//! collide): everything is prepared before the old container stops, so the
//! dark window is only stop + rename + rename + start. Start-first: a new
//! candidate starts and passes its gate before the old one stops.
//! Whatever comes in and fails its gate goes back where it came from, and
//! the old container gets its name, restart policy and running state back.

use std::time::{Duration, Instant};

use super::apply::{DeployError, NodeRun};
use super::labels::{self, ObservedContainer, Role};
use super::owned;
use super::spec::ContainerSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// Graceful stop timeout of the old container (seconds).
    pub grace: Option<i64>,
    pub start_first: bool,
}

/// Create `candidate` (named `<svc>.kolla-new`) with its config and swap it
/// in for `live`. Returns the dark window: from the old container's stop
/// to the new one's first passing gate (zero for start-first).
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
    let err = |e| run.engine_error(e);
    let candidate_name = candidate.name.clone();
    // A candidate left by an interrupted swap is stale: start afresh.
    owned::remove(engine, &candidate_name, run.project, service)
        .await
        .map_err(|e| run.owned_error(e))?;
    let id = run.create_configured(&candidate, files).await?;
    super::fault::point("candidate-created");
    if options.start_first {
        (run.say)(format!(
            "{}: {service}: starting the new container beside the old one",
            run.node
        ));
        let started = match engine.start_container(&id).await {
            Ok(()) => run.gate(service, &id).await,
            Err(e) => Err(err(e)),
        };
        if let Err(e) = started {
            let _ = engine.remove_container(&id, false).await;
            return Err(e);
        }
    }
    let incoming = Incoming {
        id,
        generation: candidate
            .labels
            .get(labels::GENERATION)
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
        restart: None,
        started: options.start_first,
        back_to: None,
    };
    perform(run, task(service, live, kept, incoming, options)).await
}

fn task(
    service: &str,
    live: &ObservedContainer,
    kept: &[ObservedContainer],
    incoming: Incoming,
    options: &SwapOptions,
) -> SwapTask {
    SwapTask {
        service: service.to_string(),
        live_id: live.id.clone(),
        live_generation: live.generation,
        kept: kept
            .iter()
            .filter(|c| c.id != incoming.id)
            .map(|c| (c.generation, c.id.clone()))
            .collect(),
        incoming,
        grace: options.grace,
    }
}

/// Run the critical section: in the node's helper container when the
/// deployment uses one (and it can start), else here.
async fn perform(run: &NodeRun<'_>, task: SwapTask) -> Result<Duration, DeployError> {
    if run.use_helper {
        match super::helper::run(run, &task).await {
            Ok(outcome) => return outcome,
            // Nothing was touched yet: the critical section runs here.
            Err(unavailable) => (run.say)(format!(
                "{}: {}: note: no swap helper on this node ({unavailable}); kolla runs the swap itself",
                run.node, task.service
            )),
        }
    }
    swap_in(run, &task).await
}

/// Swap the kept container `target` back in for `live` (a rollback).
pub async fn rollback(
    run: &NodeRun<'_>,
    service: &str,
    live: &ObservedContainer,
    target: &ObservedContainer,
    kept: &[ObservedContainer],
    options: &SwapOptions,
) -> Result<Duration, DeployError> {
    let incoming = Incoming {
        id: target.id.clone(),
        generation: target.generation,
        restart: Some(target.restart.clone()),
        started: false,
        back_to: Some(target.name.clone()),
    };
    // A rollback never starts beside the old container: the kept one was
    // made for the same ports.
    let options = SwapOptions {
        start_first: false,
        ..options.clone()
    };
    perform(run, task(service, live, kept, incoming, &options)).await
}

/// The container coming in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incoming {
    pub id: String,
    pub generation: u64,
    /// Restart policy to give it once live (a kept container has `no`).
    pub restart: Option<String>,
    /// Already running and gated (start-first).
    pub started: bool,
    /// Where it goes back to if it fails: its kept name, or None to be
    /// removed (a fresh candidate).
    pub back_to: Option<String>,
}

/// The critical section of one swap, as plain data: what `swap_in` does,
/// on the operator's machine or in the helper container on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapTask {
    pub service: String,
    /// The live container now.
    pub live_id: String,
    pub live_generation: u64,
    /// The kept containers besides the incoming one: (generation, id).
    pub kept: Vec<(u64, String)>,
    pub incoming: Incoming,
    /// Graceful stop timeout of the old container (seconds).
    pub grace: Option<i64>,
}

/// The old live container, as the swap found it.
struct Outgoing {
    id: String,
    generation: u64,
    policy: String,
}

/// The critical section of a swap: stop the old container, rename both,
/// start the new one, gate it, prune; on any failure after the stop, swap
/// back. Every step works by container id.
pub async fn swap_in(run: &NodeRun<'_>, task: &SwapTask) -> Result<Duration, DeployError> {
    let service = task.service.as_str();
    let incoming = &task.incoming;
    let engine = run.engine;
    let err = |e| run.engine_error(e);
    let live_name = labels::container_name(run.placement_prefix, service, Role::Live);
    let kept_name = labels::container_name(
        run.placement_prefix,
        service,
        Role::Kept(task.live_generation),
    );
    // Before anything stops: the old container is still the one observed,
    // and the name it will be kept under is free.
    let Some(old) = engine.inspect(&task.live_id).await.map_err(err)? else {
        return Err(err(crate::engine::EngineError::NotFound {
            what: format!(
                "the live container of {service} (id {})",
                owned::short_id(&task.live_id)
            ),
        }));
    };
    owned::must_be_free(engine, &kept_name, run.project, service)
        .await
        .map_err(|e| run.owned_error(e))?;
    let outgoing = Outgoing {
        id: old.id,
        generation: task.live_generation,
        policy: old.restart_policy,
    };
    (run.say)(format!(
        "{}: {service}: swapping generation {} for {}",
        run.node, task.live_generation, incoming.generation
    ));
    // An engine restart must never revive the old container beside the new.
    engine
        .set_restart_policy(&outgoing.id, "no")
        .await
        .map_err(err)?;
    super::fault::point("restart-policy-no");
    let stopping = Instant::now();
    // From here on, every failure swaps back.
    let outcome: Result<(), DeployError> = async {
        engine
            .stop_container(&outgoing.id, task.grace)
            .await
            .map_err(err)?;
        super::fault::point("old-stopped");
        engine
            .rename_container(&outgoing.id, &kept_name)
            .await
            .map_err(err)?;
        super::fault::point("old-renamed");
        engine
            .rename_container(&incoming.id, &live_name)
            .await
            .map_err(err)?;
        super::fault::point("new-renamed");
        if !incoming.started {
            engine.start_container(&incoming.id).await.map_err(err)?;
        }
        if let Some(policy) = &incoming.restart {
            engine
                .set_restart_policy(&incoming.id, policy)
                .await
                .map_err(err)?;
        }
        super::fault::point("new-started");
        if !incoming.started {
            run.gate(service, &incoming.id).await?;
        }
        Ok(())
    }
    .await;
    super::fault::point("gated");
    match outcome {
        Ok(()) => {
            // What a client saw: nothing served from the stop to the new
            // generation's first passing gate.
            let dark = if incoming.started {
                Duration::ZERO
            } else {
                stopping.elapsed()
            };
            (run.say)(format!(
                "{}: {service}: dark window {:.3}s (stop to healthy)",
                run.node,
                dark.as_secs_f64()
            ));
            let mut candidates = task.kept.clone();
            candidates.push((outgoing.generation, outgoing.id.clone()));
            prune(run, service, candidates).await?;
            Ok(dark)
        }
        Err(failure) => {
            (run.say)(format!(
                "{}: {service}: generation {} failed; swapping back to generation {}",
                run.node, incoming.generation, outgoing.generation
            ));
            if let Err(stuck) =
                swap_back(run, service, &outgoing, incoming, &live_name, task.grace).await
            {
                return Err(DeployError::NeedsRecovery {
                    node: run.node.to_string(),
                    service: service.to_string(),
                    failure: failure.to_string(),
                    stuck: stuck.to_string(),
                });
            }
            Err(failure)
        }
    }
}

/// Undo a swap from wherever it stopped, by container id: the incoming
/// container goes back where it came from (or is removed), the old one
/// gets its name, restart policy and running state back and is gated
/// before this returns.
async fn swap_back(
    run: &NodeRun<'_>,
    service: &str,
    outgoing: &Outgoing,
    incoming: &Incoming,
    live_name: &str,
    grace: Option<i64>,
) -> Result<(), DeployError> {
    let engine = run.engine;
    let err = |e| run.engine_error(e);
    super::fault::point("swapping-back");
    if let Some(now) = engine.inspect(&incoming.id).await.map_err(err)? {
        if now.running {
            engine
                .stop_container(&incoming.id, grace)
                .await
                .map_err(err)?;
        }
        match &incoming.back_to {
            Some(back) => {
                engine
                    .set_restart_policy(&incoming.id, "no")
                    .await
                    .map_err(err)?;
                if now.name != *back {
                    engine
                        .rename_container(&incoming.id, back)
                        .await
                        .map_err(err)?;
                }
            }
            None => engine
                .remove_container(&incoming.id, false)
                .await
                .map_err(err)?,
        }
    }
    let Some(old) = engine.inspect(&outgoing.id).await.map_err(err)? else {
        return Err(err(crate::engine::EngineError::NotFound {
            what: format!(
                "generation {} of {service} (id {})",
                outgoing.generation,
                owned::short_id(&outgoing.id)
            ),
        }));
    };
    if old.name != live_name {
        engine
            .rename_container(&outgoing.id, live_name)
            .await
            .map_err(err)?;
    }
    engine
        .set_restart_policy(&outgoing.id, &outgoing.policy)
        .await
        .map_err(err)?;
    if !old.running {
        engine.start_container(&outgoing.id).await.map_err(err)?;
    }
    // Return only once the old generation serves again.
    if let Err(again) = run.gate(service, &outgoing.id).await {
        (run.say)(format!(
            "{}: {service}: warning: generation {} is back but not healthy either: {}",
            run.node,
            outgoing.generation,
            again.to_string().lines().next().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Keep the newest `retain` of `kept` (generation, id) containers of
/// `service`, remove older ones by id (their images stay while any
/// container uses them).
pub(super) async fn prune(
    run: &NodeRun<'_>,
    service: &str,
    kept: Vec<(u64, String)>,
) -> Result<(), DeployError> {
    for (generation, id) in beyond_retain(kept, run.options.retain) {
        (run.say)(format!(
            "{}: {service}: removing kept generation {generation} (beyond retain {})",
            run.node, run.options.retain
        ));
        run.engine
            .remove_container(&id, false)
            .await
            .map_err(|e| run.engine_error(e))?;
    }
    Ok(())
}

/// Of kept containers (generation, id), those beyond the newest `retain`:
/// the ones to remove. Pure; swaps and recovery prune by it.
pub fn beyond_retain(mut kept: Vec<(u64, String)>, retain: usize) -> Vec<(u64, String)> {
    kept.sort_by_key(|k| std::cmp::Reverse(k.0));
    kept.dedup_by(|a, b| a.1 == b.1);
    kept.into_iter().skip(retain).collect()
}

/// How a new image tag relates to the running one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// Same tag (a rebuilt image shows as a new digest).
    Same,
    Higher,
    Lower,
    /// One of the tags is not a semantic version: not compared.
    NotComparable,
}

fn semver_of(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// Compare the tags of two image references by semantic version.
pub fn compare_tags(running: &str, wanted: &str) -> TagChange {
    let (_, old) = crate::engine::split_tag(running);
    let (_, new) = crate::engine::split_tag(wanted);
    if old == new {
        return TagChange::Same;
    }
    match (semver_of(old), semver_of(new)) {
        (Some(old), Some(new)) if new > old => TagChange::Higher,
        (Some(old), Some(new)) if new < old => TagChange::Lower,
        (Some(_), Some(_)) => TagChange::Same,
        _ => TagChange::NotComparable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_by_semantic_version() {
        assert_eq!(
            compare_tags("r/kolla/a:1.2.3", "r/kolla/a:1.10.0"),
            TagChange::Higher
        );
        assert_eq!(
            compare_tags("kolla/a:2.0.0", "kolla/a:1.9.9"),
            TagChange::Lower
        );
        assert_eq!(
            compare_tags("kolla/a:v2.0.0", "kolla/a:2.0.1"),
            TagChange::Higher
        );
        assert_eq!(
            compare_tags("kolla/a:2.0.0-rc.1", "kolla/a:2.0.0"),
            TagChange::Higher
        );
        assert_eq!(compare_tags("kolla/a:zed", "kolla/a:zed"), TagChange::Same);
        assert_eq!(
            compare_tags("kolla/a:zed", "kolla/a:2023.1"),
            TagChange::NotComparable
        );
        assert_eq!(
            compare_tags("127.0.0.1:4000/a:1.0.0", "127.0.0.1:4000/a:0.9.0"),
            TagChange::Lower
        );
    }
}
