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
use super::spec::ContainerSpec;

#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// Graceful stop timeout of the old container (seconds).
    pub grace: Option<i64>,
    pub start_first: bool,
}

/// Create `candidate` (named `<svc>.kolla-new`) with its config and swap it
/// in for `live`. Returns the dark window (zero for start-first).
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
    engine
        .remove_container(&candidate_name, false)
        .await
        .map_err(err)?;
    engine.create_container(&candidate).await.map_err(err)?;
    if let Err(e) = run.upload(&candidate_name, files).await {
        let _ = engine.remove_container(&candidate_name, false).await;
        return Err(e);
    }
    super::fault::point("candidate-created");
    if options.start_first {
        (run.say)(format!(
            "{}: {service}: starting the new container beside the old one",
            run.node
        ));
        engine.start_container(&candidate_name).await.map_err(err)?;
        if let Err(e) = run.gate(service, &candidate_name).await {
            let _ = engine.remove_container(&candidate_name, false).await;
            return Err(e);
        }
    }
    let incoming = Incoming {
        name: candidate_name,
        generation: candidate
            .labels
            .get(labels::GENERATION)
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
        restart: None,
        started: options.start_first,
        back_to: None,
    };
    swap_in(run, service, live, kept, incoming, options).await
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
        name: target.name.clone(),
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
    swap_in(run, service, live, kept, incoming, &options).await
}

/// The container coming in.
struct Incoming {
    name: String,
    generation: u64,
    /// Restart policy to give it once live (a kept container has `no`).
    restart: Option<String>,
    /// Already running and gated (start-first).
    started: bool,
    /// Where it goes back to if it fails: its kept name, or None to be
    /// removed (a fresh candidate).
    back_to: Option<String>,
}

async fn swap_in(
    run: &NodeRun<'_>,
    service: &str,
    live: &ObservedContainer,
    kept: &[ObservedContainer],
    incoming: Incoming,
    options: &SwapOptions,
) -> Result<Duration, DeployError> {
    let engine = run.engine;
    let err = |e| run.engine_error(e);
    let live_name = live.name.clone();
    let kept_name =
        labels::container_name(run.placement_prefix, service, Role::Kept(live.generation));
    let old_policy = engine
        .container_details(&live_name)
        .await
        .map_err(err)?
        .map(|(_, policy)| policy)
        .unwrap_or_else(|| live.restart.clone());
    (run.say)(format!(
        "{}: {service}: swapping generation {} for {}",
        run.node, live.generation, incoming.generation
    ));
    // An engine restart must never revive the old container beside the new.
    engine
        .set_restart_policy(&live_name, "no")
        .await
        .map_err(err)?;
    super::fault::point("restart-policy-no");
    let stopping = Instant::now();
    engine
        .stop_container(&live_name, options.grace)
        .await
        .map_err(err)?;
    super::fault::point("old-stopped");
    engine
        .rename_container(&live_name, &kept_name)
        .await
        .map_err(err)?;
    super::fault::point("old-renamed");
    engine
        .rename_container(&incoming.name, &live_name)
        .await
        .map_err(err)?;
    super::fault::point("new-renamed");
    let mut outcome = Ok(());
    if !incoming.started {
        outcome = engine.start_container(&live_name).await.map_err(err);
    }
    let dark = if incoming.started {
        Duration::ZERO
    } else {
        stopping.elapsed()
    };
    if let Some(policy) = &incoming.restart
        && outcome.is_ok()
    {
        outcome = engine
            .set_restart_policy(&live_name, policy)
            .await
            .map_err(err);
    }
    super::fault::point("new-started");
    if outcome.is_ok() && !incoming.started {
        outcome = run.gate(service, &live_name).await;
    }
    super::fault::point("gated");
    match outcome {
        Ok(()) => {
            (run.say)(format!(
                "{}: {service}: dark window {:.3}s",
                run.node,
                dark.as_secs_f64()
            ));
            prune(run, service, live, kept, incoming.back_to.as_deref()).await?;
            Ok(dark)
        }
        Err(failure) => {
            (run.say)(format!(
                "{}: {service}: generation {} failed; swapping back to generation {}",
                run.node, incoming.generation, live.generation
            ));
            match &incoming.back_to {
                Some(back) => {
                    engine
                        .stop_container(&live_name, options.grace)
                        .await
                        .map_err(err)?;
                    engine
                        .set_restart_policy(&live_name, "no")
                        .await
                        .map_err(err)?;
                    engine
                        .rename_container(&live_name, back)
                        .await
                        .map_err(err)?;
                }
                None => engine
                    .remove_container(&live_name, false)
                    .await
                    .map_err(err)?,
            }
            engine
                .rename_container(&kept_name, &live_name)
                .await
                .map_err(err)?;
            engine
                .set_restart_policy(&live_name, &old_policy)
                .await
                .map_err(err)?;
            engine.start_container(&live_name).await.map_err(err)?;
            // Return only once the old generation serves again.
            if let Err(again) = run.gate(service, &live_name).await {
                (run.say)(format!(
                    "{}: {service}: warning: generation {} is back but not healthy either: {}",
                    run.node,
                    live.generation,
                    again.to_string().lines().next().unwrap_or_default()
                ));
            }
            Err(failure)
        }
    }
}

/// Keep the newest `retain` replaced containers of `service`, remove older
/// ones (their images stay while any container uses them). `swapped_in`
/// is a kept container that just went live: no longer kept.
async fn prune(
    run: &NodeRun<'_>,
    service: &str,
    replaced: &ObservedContainer,
    kept: &[ObservedContainer],
    swapped_in: Option<&str>,
) -> Result<(), DeployError> {
    let mut generations: Vec<(u64, String)> = kept
        .iter()
        .filter(|c| Some(c.name.as_str()) != swapped_in)
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
