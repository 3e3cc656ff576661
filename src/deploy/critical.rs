//! The swap: replace a service's live container with another one,
//! atomically from the operator's point of view, keeping the one replaced
//! for rollback. An upgrade (and a deploy of a changed service) swaps in a
//! freshly created candidate, `<svc>.kolla-new`; a rollback swaps in a kept
//! container, `<svc>.kolla-gen-N`: no pull, no build, one start.
//!
//! Stop-first (the default; the only order for a host-network server that
//! cannot share its port): everything is prepared before the old container
//! stops, so the dark window is only stop + rename + rename + start.
//! Start-first: a new candidate starts and passes its own gate before the
//! old one stops (on the host's network, its server must bind with
//! SO_REUSEPORT and its health check must reach it alone); no dark window.
//! Either way the dark window is measured, not assumed: from the moment the
//! old container's stop is sent to the moment the new one answered its
//! gate, zero only when that answer came first.
//! Whatever comes in and fails its gate goes back where it came from, and
//! the old container gets its name, restart policy and running state back.

use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::context::NodeRun;
use super::error::DeployError;
use super::fault::{self, FaultPoint};
use super::labels::{self, ObservedContainer, Role, beyond_retain};
use super::owned;
use super::steps::StepRunner;

/// The container coming in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incoming {
    pub id: String,
    pub generation: u64,
    /// Restart policy to give it once live (a kept container has `no`).
    pub restart: Option<String>,
    /// Already running, and when it answered its gate (start-first); None:
    /// the swap starts and gates it.
    pub gated: Option<Gated>,
    /// Where it goes back to if it fails: its kept name, or None to be
    /// removed (a fresh candidate).
    pub back_to: Option<String>,
}

/// The moment a container answered its gate. An `Instant` means nothing in
/// another process (the helper reads the task), so it travels as its age
/// when written and is read back as "now minus that age": the time in
/// transit makes it look later than it was, so a dark window measured from
/// it can come out longer than the true one, never shorter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gated(pub Instant);

impl Serialize for Gated {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let age = u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX);
        serializer.serialize_u64(age)
    }
}

impl<'de> Deserialize<'de> for Gated {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let age = Duration::from_micros(u64::deserialize(deserializer)?);
        let now = Instant::now();
        // Older than this clock can say: as late as possible, still before
        // anything the reader does.
        Ok(Gated(now.checked_sub(age).unwrap_or(now)))
    }
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

impl SwapTask {
    /// The swap of `incoming` in for `live`; `kept` are the service's kept
    /// containers (the incoming one left out), for pruning.
    pub fn new(
        live: &ObservedContainer,
        kept: &[ObservedContainer],
        incoming: Incoming,
        grace: Option<i64>,
    ) -> SwapTask {
        SwapTask {
            service: live.service.clone(),
            live_id: live.id.clone(),
            live_generation: live.generation,
            kept: kept
                .iter()
                .filter(|c| c.id != incoming.id)
                .map(|c| (c.generation, c.id.clone()))
                .collect(),
            incoming,
            grace,
        }
    }
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
    let live_name = labels::container_name(run.placement_prefix, service, Role::Live);
    let kept_name = labels::container_name(
        run.placement_prefix,
        service,
        Role::Kept(task.live_generation),
    );
    let outgoing = outgoing(run, task, &kept_name).await?;
    let step = format!(
        "swapping generation {} for {}",
        task.live_generation, incoming.generation
    );
    run.steps.status(run.node, service, &step);
    // An engine restart must never revive the old container beside the new.
    run.engine
        .set_restart_policy(&outgoing.id, "no")
        .await
        .map_err(|e| run.engine_error(e))?;
    fault::point(FaultPoint::RestartPolicyNo);
    let stopping = Instant::now();
    let outcome = exchange(run, task, &outgoing, &kept_name, &live_name, stopping).await;
    fault::point(FaultPoint::Gated);
    let gated = match outcome {
        Ok(gated) => gated,
        Err(failure) => {
            return Err(undo(run, task, &outgoing, &live_name, failure).await);
        }
    };
    // What a client saw: nothing served from the old generation's stop to
    // the new one's first passing gate; nothing unserved when the new one
    // answered before the old one stopped accepting (start-first).
    let dark = gated.saturating_duration_since(stopping);
    let how = if gated > stopping {
        "stop to healthy"
    } else {
        "healthy before the stop"
    };
    let event = format!("dark window {:.3}s ({how})", dark.as_secs_f64());
    run.steps.event(run.node, service, &event);
    let mut candidates = task.kept.clone();
    candidates.push((outgoing.generation, outgoing.id.clone()));
    prune(run, service, candidates).await?;
    Ok(dark)
}

/// A failed exchange: swap back, and say what failed (and what is stuck
/// when even the swap back failed).
async fn undo(
    run: &NodeRun<'_>,
    task: &SwapTask,
    outgoing: &Outgoing,
    live_name: &str,
    failure: DeployError,
) -> DeployError {
    let service = task.service.as_str();
    let incoming = &task.incoming;
    let event = format!(
        "generation {} failed; swapping back to generation {}",
        incoming.generation, outgoing.generation
    );
    run.steps.event(run.node, service, &event);
    match swap_back(run, service, outgoing, incoming, live_name, task.grace).await {
        Ok(()) => failure,
        Err(stuck) => DeployError::NeedsRecovery {
            node: run.node.to_string(),
            service: service.to_string(),
            failure: failure.to_string(),
            stuck: stuck.to_string(),
        },
    }
}

/// Before anything stops: the old container is still the one observed,
/// and the name it will be kept under is free.
async fn outgoing(
    run: &NodeRun<'_>,
    task: &SwapTask,
    kept_name: &str,
) -> Result<Outgoing, DeployError> {
    let service = task.service.as_str();
    let Some(old) = run
        .engine
        .inspect(&task.live_id)
        .await
        .map_err(|e| run.engine_error(e))?
    else {
        return Err(run.engine_error(crate::engine::EngineError::NotFound {
            what: format!(
                "the live container of {service} (id {})",
                owned::short_id(&task.live_id)
            ),
        }));
    };
    owned::must_be_free(run.engine, kept_name, run.project, service)
        .await
        .map_err(|e| run.owned_error(e))?;
    Ok(Outgoing {
        id: old.id,
        generation: task.live_generation,
        policy: old.restart_policy,
    })
}

/// Stop the old, rename both, start and gate the new: the part that every
/// failure swaps back from. Returns when the new one answered its gate
/// (before the swap, for one that came in already gated).
async fn exchange(
    run: &NodeRun<'_>,
    task: &SwapTask,
    outgoing: &Outgoing,
    kept_name: &str,
    live_name: &str,
    stopping: Instant,
) -> Result<Instant, DeployError> {
    let engine = run.engine;
    let err = |e| run.engine_error(e);
    let incoming = &task.incoming;
    engine
        .stop_container(&outgoing.id, task.grace)
        .await
        .map_err(err)?;
    fault::point(FaultPoint::OldStopped);
    engine
        .rename_container(&outgoing.id, kept_name)
        .await
        .map_err(err)?;
    fault::point(FaultPoint::OldRenamed);
    engine
        .rename_container(&incoming.id, live_name)
        .await
        .map_err(err)?;
    fault::point(FaultPoint::NewRenamed);
    if incoming.gated.is_none() {
        engine.start_container(&incoming.id).await.map_err(err)?;
    }
    if let Some(policy) = &incoming.restart {
        engine
            .set_restart_policy(&incoming.id, policy)
            .await
            .map_err(err)?;
    }
    fault::point(FaultPoint::NewStarted);
    if let Some(Gated(at)) = incoming.gated {
        return Ok(at);
    }
    // With a dark-window budget, the gate gets what is left of it.
    let (limit, budget) = match run.options.max_dark {
        Some(budget) => (
            budget
                .saturating_sub(stopping.elapsed())
                .min(run.options.health_timeout),
            Some(budget),
        ),
        None => (run.options.health_timeout, None),
    };
    StepRunner::of(run)
        .gate_within(&task.service, &incoming.id, limit, budget)
        .await?;
    Ok(Instant::now())
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
    fault::point(FaultPoint::SwappingBack);
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
    if let Err(again) = StepRunner::of(run).gate_dark(service, &outgoing.id).await {
        let event = format!(
            "warning: generation {} is back but not healthy either: {}",
            outgoing.generation,
            again.to_string().lines().next().unwrap_or_default()
        );
        run.steps.event(run.node, service, &event);
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
        let step = format!(
            "removing kept generation {generation} (beyond retain {})",
            run.options.retain
        );
        run.steps.status(run.node, service, &step);
        run.engine
            .remove_container(&id, false)
            .await
            .map_err(|e| run.engine_error(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gate moment crosses to the helper as an age: read back, it is
    /// no earlier than it was (a dark window measured from it is never
    /// shorter than the true one) and it stays before the reader's now.
    #[test]
    fn a_gate_moment_read_back_is_never_earlier_than_it_was() {
        let Some(answered) = Instant::now().checked_sub(Duration::from_secs(5)) else {
            return; // a clock that started less than 5 s ago
        };
        let text = serde_json::to_string(&Gated(answered)).expect("serialize");
        let Gated(read) = serde_json::from_str(&text).expect("deserialize");
        assert!(read >= answered);
        assert!(read <= Instant::now());
        assert!(read.duration_since(answered) < Duration::from_secs(1));
    }
}
