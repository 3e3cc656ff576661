//! Running a recovery: take the service's lock in a session (taking over
//! only a lock whose holder is proven gone, or any with `--force`), let a
//! swap helper left behind finish, look at the node again under the lock,
//! plan (`plan::recovery_plan`, pure) and run the steps; after a
//! `rollback --restore-db` cut short, finish it.

use super::plan::{LockedFrom, Step, recovery_plan};
use crate::container::State;
use crate::deploy::context::NodeRun;
use crate::deploy::error::DeployError;
use crate::deploy::execute::Executor;
use crate::deploy::labels::{self, ObservedContainer, Role};
use crate::deploy::lock::{Holder, Takeover, Wait};
use crate::deploy::restore_point::RestorePoints;
use crate::deploy::session::{Intent, Session, say_waiting};
use crate::deploy::steps::StepRunner;

/// Recover `service`: take its lock (over a gone holder's, or any with
/// `force`), look again, run the plan; returns what was done, a phrase a
/// step.
pub async fn recover_service(
    run: &NodeRun<'_>,
    service: &str,
    observed: &[ObservedContainer],
    force: bool,
) -> Result<Vec<String>, DeployError> {
    let mut done = Vec::new();
    // The lock container is made from an image the service already has.
    let Some(image) = observed
        .iter()
        .filter(|c| c.service == service && !matches!(c.role, Role::Lock | Role::Helper))
        .map(|c| {
            if c.digest.is_empty() {
                c.image.clone()
            } else {
                c.digest.clone()
            }
        })
        .next()
    else {
        // Only a lock is left: nothing to restore, only the lock to clear.
        return clear_lone_lock(run, service, force).await;
    };
    let session = Session::open(
        run,
        Intent {
            service,
            image: &image,
            image_volumes: None,
            action: "recover",
            target: "the last good generation".into(),
            from: None,
            from_running: false,
            restore_db: None,
            takeover: if force {
                Takeover::Force
            } else {
                Takeover::IfHolderGone
            },
        },
    )
    .await?;
    let from = session.took_over().and_then(|h| {
        h.from.map(|generation| LockedFrom {
            generation,
            running: h.from_running,
            restore_db: h.restore_db,
        })
    });
    // A lock whose holder this run waited for (`--lock-wait`) was released
    // by that holder, its work finished: not an interrupted run's.
    let interrupted = session.took_over().is_some()
        || (session.waited_for().is_none()
            && observed
                .iter()
                .any(|c| c.service == service && c.role == Role::Lock));
    if let Some(holder) = session.took_over() {
        done.push(format!("took over the lock of {holder}"));
    } else if let Some(holder) = session.waited_for() {
        // Said as done: the caller looks at the node again, as it changed.
        done.push(format!("waited for the lock of {holder}"));
    }
    let result = recover_locked(run, service, &session, (interrupted, from), &mut done).await;
    session.close(None, result, |_| None).await?;
    Ok(done)
}

/// The recovery once the lock is held: a helper left by the dead run
/// finishes its swap first (it is never killed); what it leaves is what
/// recovery plans from. The helper is looked up again here, not in the
/// listing taken before the lock: a run killed while its create request
/// was in flight leaves a helper the engine registers only later (never
/// started, so it did nothing, but it must not be left behind).
async fn recover_locked(
    run: &NodeRun<'_>,
    service: &str,
    session: &Session<'_, '_>,
    (interrupted, from): (bool, Option<LockedFrom>),
    done: &mut Vec<String>,
) -> Result<(), DeployError> {
    let helper = labels::container_name(run.placement_prefix, service, Role::Helper);
    if StepRunner::of(run).settle_job(service, &helper).await? {
        done.push(format!("let the swap helper {helper} finish"));
    }
    let now =
        crate::deploy::observe::observe_project(run.engine, run.project, run.placement_prefix)
            .await
            .map_err(|e| run.engine_error(e))?;
    let mine: Vec<&ObservedContainer> = now
        .iter()
        .filter(|c| c.service == service && c.name != session.lock_name())
        .collect();
    let steps = recovery_plan(&mine, interrupted, from, run.options.retain);
    run_steps(run, service, &mine, &steps, done).await?;
    if let Some(generation) = from.and_then(|f| f.restore_db) {
        finish_restore(run, service, generation, done).await?;
    }
    // Restore points follow the generations kept; a dump the dead run was
    // writing goes.
    let generations = Executor::of(run).generations_of(service).await?;
    RestorePoints::of(run)
        .prune_restore_points(service, &generations)
        .await;
    Ok(())
}

/// A `rollback --restore-db` to `generation` that died after stopping the
/// live generation: the database may be half restored, so the plan left
/// that generation stopped. The dead run's work is done again from the
/// start (a restore point loads whole, whatever the database holds), as
/// the operator asked: the database back to `generation`'s restore point,
/// then `generation` swapped in. If that fails, the service stays stopped
/// and the error says what to do.
async fn finish_restore(
    run: &NodeRun<'_>,
    service: &str,
    generation: u64,
    done: &mut Vec<String>,
) -> Result<(), DeployError> {
    let now =
        crate::deploy::observe::observe_project(run.engine, run.project, run.placement_prefix)
            .await
            .map_err(|e| run.engine_error(e))?;
    let kept = crate::deploy::plan::kept_of(&now, service);
    let live = now
        .iter()
        .find(|c| c.service == service && c.role == Role::Live);
    let Some(live) = live.filter(|l| l.generation != generation && l.state != State::Running)
    else {
        return Ok(());
    };
    let Some(target) = kept.iter().find(|c| c.generation == generation) else {
        return Err(RestorePoints::of(run).restore_point_error(
            service,
            format!(
                "a `rollback --restore-db` to generation {generation} was cut short, and generation {generation} is no longer kept\n  {service} stays stopped: generation {} must not run on a database that may be half restored\n  hint: restore the database by hand, then `kolla deploy` starts generation {}",
                live.generation, live.generation
            ),
        ));
    };
    Executor::of(run)
        .restore_then_roll_back(live, target, &kept)
        .await?;
    done.push(format!(
        "finished the interrupted `rollback --restore-db`: database restored, generation {generation} live"
    ));
    Ok(())
}

/// A service whose only container is a lock: clear it if its holder is
/// gone (or forced); else wait for its holder as `--lock-wait` allows (a
/// first create holds the lock before its container exists).
async fn clear_lone_lock(
    run: &NodeRun<'_>,
    service: &str,
    force: bool,
) -> Result<Vec<String>, DeployError> {
    let name = labels::container_name(run.placement_prefix, service, Role::Lock);
    let mut wait = Wait::up_to(run.options.lock_wait);
    loop {
        let Some(details) = crate::deploy::owned::find(run.engine, &name, run.project, service)
            .await
            .map_err(|e| run.owned_error(e))?
        else {
            return Ok(wait
                .waited_for()
                .map(|holder| vec![format!("waited for the lock of {holder}")])
                .unwrap_or_default());
        };
        let holder = Holder::from_labels(&details);
        if force || holder.is_gone() {
            run.engine
                .remove_container(&details.id, false)
                .await
                .map_err(|e| run.engine_error(e))?;
            return Ok(vec![format!("cleared the lock of {holder}")]);
        }
        wait.again(service.to_string(), holder, |h| {
            say_waiting(run, service, h)
        })
        .await
        .map_err(|source| DeployError::Lock {
            node: run.node.to_string(),
            source,
        })?;
    }
}

async fn run_steps(
    run: &NodeRun<'_>,
    service: &str,
    mine: &[&ObservedContainer],
    steps: &[Step],
    done: &mut Vec<String>,
) -> Result<(), DeployError> {
    let engine = run.engine;
    let err = |e| run.engine_error(e);
    let live_name = labels::container_name(run.placement_prefix, service, Role::Live);
    for step in steps {
        match step {
            Step::SettleJob { name } => {
                StepRunner::of(run).settle_job(service, name).await?;
                done.push(format!("removed the bootstrap job {name}"));
            }
            Step::RemoveCheck { name } => {
                StepRunner::of(run).remove_check(service, name).await?;
                done.push(format!("removed the upgrade check {name}"));
            }
            Step::Restore { id, from } => {
                engine.rename_container(id, &live_name).await.map_err(err)?;
                done.push(format!("renamed {from} back to {live_name}"));
            }
            Step::StopKept { id, name } => {
                engine.stop_container(id, None).await.map_err(err)?;
                done.push(format!(
                    "stopped {name}, which ran beside the live container"
                ));
            }
            Step::RemoveCandidate { id, name } => {
                engine.remove_container(id, false).await.map_err(err)?;
                done.push(format!("removed the candidate {name}"));
            }
            Step::RestorePolicy { policy } => {
                let current = engine.inspect(&live_name).await.map_err(err)?;
                if current.is_some_and(|c| c.restart_policy != *policy) {
                    engine
                        .set_restart_policy(&live_name, policy)
                        .await
                        .map_err(err)?;
                    done.push(format!(
                        "restored the restart policy {policy} of {live_name}"
                    ));
                }
            }
            Step::Start { generation } => {
                engine.start_container(&live_name).await.map_err(err)?;
                done.push(format!("started {live_name} (generation {generation})"));
            }
            Step::Gate {
                generation,
                fallback,
            } => {
                if gate_or_fall_back(run, service, mine, (*generation, *fallback), done).await? {
                    // The swap back pruned as a rollback does.
                    return Ok(());
                }
            }
            Step::Prune { id, generation } => {
                engine.remove_container(id, false).await.map_err(err)?;
                done.push(format!(
                    "removed kept generation {generation} (beyond retain {})",
                    run.options.retain
                ));
            }
        }
    }
    Ok(())
}

/// Gate the live generation; if it fails, swap the kept `fallback`
/// generation back in. Returns whether it swapped back.
async fn gate_or_fall_back(
    run: &NodeRun<'_>,
    service: &str,
    mine: &[&ObservedContainer],
    (generation, fallback): (u64, Option<u64>),
    done: &mut Vec<String>,
) -> Result<bool, DeployError> {
    let live_name = labels::container_name(run.placement_prefix, service, Role::Live);
    let Err(failure) = StepRunner::of(run).gate(service, &live_name).await else {
        return Ok(false);
    };
    let previous = fallback.and_then(|g| {
        mine.iter()
            .find(|c| matches!(c.role, Role::Kept(_)) && c.generation == g)
    });
    let Some(previous) = previous else {
        return Err(failure);
    };
    let current = run
        .engine
        .inspect(&live_name)
        .await
        .map_err(|e| run.engine_error(e))?
        .ok_or(failure)?;
    let Some(live) = mine
        .iter()
        .find(|c| c.id == current.id)
        .map(|c| ObservedContainer {
            name: live_name.clone(),
            role: Role::Live,
            ..(*c).clone()
        })
    else {
        return Ok(false);
    };
    let kept: Vec<ObservedContainer> = mine
        .iter()
        .filter(|c| matches!(c.role, Role::Kept(_)) && c.id != live.id)
        .map(|c| (*c).clone())
        .collect();
    Executor::of(run)
        .rollback_locked(&live, previous, &kept)
        .await?;
    done.push(format!(
        "generation {generation} failed its health gate; swapped back to generation {}",
        previous.generation
    ));
    Ok(true)
}
