//! Recovery: bring a service back to exactly one live container running
//! the generation the last completed change left, from what the node shows
//! (names, labels, states) and the lock of the run that died. This file is
//! the pure half: `recovery_plan` (one service's containers -> steps,
//! golden-tested), which `deploy --dry-run` shows too; `run.rs` runs
//! the steps in a session. Every step is idempotent, so recovery can
//! itself crash and be run again.
//!
//! The rules, in order:
//! - a bootstrap job left behind is waited for (never killed), then removed;
//! - no live container: the generation that was live when the dead run
//!   took its lock gets the name back (else the newest kept one);
//! - a candidate that never went live is removed: its config may be
//!   incomplete, and the next deploy or upgrade makes it afresh;
//! - the live container gets its own restart policy back, is started if it
//!   is not running (the last deploy wanted it running; a one-shot that
//!   completed stays as it is) and must pass its gate; if it fails, the
//!   newest kept generation is swapped back in;
//! - except after a `rollback --restore-db` cut short: a stopped live
//!   generation other than the one being restored stays stopped (the
//!   database may be half restored); `run.rs` then finishes the
//!   restore and the rollback;
//! - kept generations beyond `--retain` are removed.

use std::collections::BTreeMap;
use std::fmt;

use crate::deploy::labels::{ObservedContainer, Role, State, beyond_retain};

/// One step of a recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Wait for a bootstrap job left behind to end, then remove it.
    SettleJob { name: String },
    /// Remove an upgrade check left behind, killed if it runs (it only
    /// reads the cloud; the next upgrade runs it again).
    RemoveCheck { name: String },
    /// Give a kept container the live name back.
    Restore { id: String, from: String },
    /// Remove a candidate that never went live.
    RemoveCandidate { id: String, name: String },
    /// Stop a kept generation that runs (a start-first rollback cut short
    /// started it beside the live one): one generation serves.
    StopKept { id: String, name: String },
    /// Give the live container the restart policy it was created with.
    RestorePolicy { policy: String },
    /// Start the live container.
    Start { generation: u64 },
    /// Gate the live container; swap the newest kept one back if it fails.
    Gate {
        generation: u64,
        fallback: Option<u64>,
    },
    /// Remove a kept generation beyond `retain`.
    Prune { id: String, generation: u64 },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::SettleJob { name } => write!(f, "settle the bootstrap job {name}"),
            Step::RemoveCheck { name } => write!(f, "remove the upgrade check {name}"),
            Step::Restore { from, .. } => write!(f, "rename {from} back to the live name"),
            Step::RemoveCandidate { name, .. } => write!(f, "remove the candidate {name}"),
            Step::StopKept { name, .. } => write!(f, "stop the kept generation {name}"),
            Step::RestorePolicy { policy } => write!(f, "restore the restart policy {policy}"),
            Step::Start { generation } => write!(f, "start generation {generation}"),
            Step::Gate {
                generation,
                fallback: Some(back),
            } => write!(
                f,
                "gate generation {generation} (generation {back} if it fails)"
            ),
            Step::Gate { generation, .. } => write!(f, "gate generation {generation}"),
            Step::Prune { generation, .. } => write!(f, "remove kept generation {generation}"),
        }
    }
}

/// A one-shot service that ran and completed: left as it is.
fn completed_job(c: &ObservedContainer) -> bool {
    c.state == State::Exited && c.exit_code == Some(0) && c.restart == "no"
}

/// A live container that has nothing left to do: running (or being
/// restarted by the engine), a data container (never started), or a
/// one-shot that completed.
fn settled(c: &ObservedContainer) -> bool {
    c.data
        || matches!(c.state, State::Running | State::Restarting | State::Paused)
        || completed_job(c)
}

/// What a dead run's lock says of the service when the run began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedFrom {
    /// The generation that was live.
    pub generation: u64,
    /// Whether it was running: a swap cut short after stopping it leaves it
    /// exited (with code 0 if it stops cleanly), and it must run again.
    pub running: bool,
    /// The run was a `rollback --restore-db` to this generation: the
    /// database may be half restored, so no other generation is started
    /// (recovery finishes the rollback instead).
    pub restore_db: Option<u64>,
}

/// The recovery of one service, from its containers (any order, its lock
/// left out). `interrupted`: a run died holding the service's lock, so the
/// live container is checked (policy, gate) even if it looks settled;
/// `from` is what that run's lock says of the live generation.
pub fn recovery_plan(
    mine: &[&ObservedContainer],
    interrupted: bool,
    locked_from: Option<LockedFrom>,
    retain: usize,
) -> Vec<Step> {
    let from = locked_from.map(|f| f.generation);
    let mut steps = Vec::new();
    for job in mine.iter().filter(|c| c.role == Role::Bootstrap) {
        steps.push(Step::SettleJob {
            name: job.name.clone(),
        });
    }
    for check in mine.iter().filter(|c| c.role == Role::Check) {
        steps.push(Step::RemoveCheck {
            name: check.name.clone(),
        });
    }
    let mut kept: Vec<&ObservedContainer> = mine
        .iter()
        .copied()
        .filter(|c| matches!(c.role, Role::Kept(_)))
        .collect();
    kept.sort_by_key(|c| std::cmp::Reverse(c.generation));
    let live = mine.iter().copied().find(|c| c.role == Role::Live);
    let (live, restored) = match live {
        Some(live) => (Some(live), false),
        None => {
            let back = kept
                .iter()
                .position(|c| Some(c.generation) == from)
                .or((!kept.is_empty()).then_some(0))
                .map(|i| kept.remove(i));
            if let Some(back) = back {
                steps.push(Step::Restore {
                    id: back.id.clone(),
                    from: back.name.clone(),
                });
            }
            (back, back.is_some())
        }
    };
    for running in kept
        .iter()
        .filter(|c| matches!(c.state, State::Running | State::Restarting | State::Paused))
    {
        steps.push(Step::StopKept {
            id: running.id.clone(),
            name: running.name.clone(),
        });
    }
    for candidate in mine.iter().filter(|c| c.role == Role::Candidate) {
        steps.push(Step::RemoveCandidate {
            id: candidate.id.clone(),
            name: candidate.name.clone(),
        });
    }
    let leftovers = !steps.is_empty() || interrupted;
    if let Some(live) = live
        && (leftovers || !settled(live))
    {
        settle_live(
            &mut steps,
            live,
            restored,
            locked_from,
            kept.first().copied(),
        );
    }
    let kept_ids = kept.iter().map(|c| (c.generation, c.id.clone())).collect();
    for (generation, id) in beyond_retain(kept_ids, retain) {
        steps.push(Step::Prune { id, generation });
    }
    steps
}

/// The live container's own policy back, started unless it is running (or
/// a one-shot that completed), then its gate with the newest kept
/// generation to fall back to.
fn settle_live(
    steps: &mut Vec<Step>,
    live: &ObservedContainer,
    restored: bool,
    locked_from: Option<LockedFrom>,
    newest_kept: Option<&ObservedContainer>,
) {
    steps.push(Step::RestorePolicy {
        policy: live.restart.clone(),
    });
    // A container restored from kept was stopped by the swap.
    let running = !restored
        && matches!(
            live.state,
            State::Running | State::Restarting | State::Paused
        );
    // Exited 0 with policy `no` is a one-shot that completed, unless the
    // dead run found it running: then the swap stopped it.
    let stopped_by_swap = locked_from.is_some_and(|f| f.running && f.generation == live.generation);
    let completed = !restored && completed_job(live) && !stopped_by_swap;
    let on_restored_db = locked_from
        .and_then(|f| f.restore_db)
        .is_some_and(|generation| generation != live.generation);
    if on_restored_db && !running {
        return;
    }
    if !running && !completed && !live.data {
        steps.push(Step::Start {
            generation: live.generation,
        });
    }
    if !live.data && !completed {
        steps.push(Step::Gate {
            generation: live.generation,
            fallback: newest_kept.map(|k| k.generation),
        });
    }
}

/// Whether `service` has anything for recovery to do.
pub fn needs_recovery(observed: &[ObservedContainer], service: &str, retain: usize) -> bool {
    let mine: Vec<&ObservedContainer> = observed.iter().filter(|c| c.service == service).collect();
    has_work(&mine, retain)
}

/// Whether a service's containers (`mine`) leave recovery work.
fn has_work(mine: &[&ObservedContainer], retain: usize) -> bool {
    mine.iter()
        .any(|c| matches!(c.role, Role::Lock | Role::Helper))
        || !recovery_plan(mine, false, None, retain).is_empty()
}

/// Services with something to recover, sorted. The containers are grouped
/// by service once: a node of N services is not N scans of its containers.
pub fn services_needing_recovery(observed: &[ObservedContainer], retain: usize) -> Vec<String> {
    let mut by_service: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
    for c in observed {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    by_service
        .into_iter()
        .filter(|(_, mine)| has_work(mine, retain))
        .map(|(service, _)| service.to_string())
        .collect()
}

/// Services with leftovers of an interrupted run, sorted: as
/// `services_needing_recovery`, but a live container that is merely
/// stopped is none (`kolla stop` leaves it so; `kolla start` and `kolla
/// restart` start it as their own work, and say so, rather than have
/// recovery start it first).
pub fn services_with_leftovers(observed: &[ObservedContainer], retain: usize) -> Vec<String> {
    let mut by_service: BTreeMap<&str, Vec<ObservedContainer>> = BTreeMap::new();
    for c in observed {
        let mut seen = c.clone();
        if c.role == Role::Live && !c.data {
            seen.state = State::Running;
        }
        by_service.entry(c.service.as_str()).or_default().push(seen);
    }
    by_service
        .into_iter()
        .filter(|(_, mine)| has_work(&mine.iter().collect::<Vec<_>>(), retain))
        .map(|(service, _)| service.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, role: Role, generation: u64) -> ObservedContainer {
        let mut c = ObservedContainer::running(service, role);
        c.generation = generation;
        c.restart = "unless-stopped".into();
        if role != Role::Live {
            c.state = State::Exited;
        }
        c
    }

    #[test]
    fn a_stopped_live_container_is_work_for_recovery_but_no_leftover() {
        let mut stopped = container("web", Role::Live, 1);
        stopped.state = State::Exited;
        stopped.exit_code = Some(143);
        let mut lock = container("api", Role::Lock, 0);
        lock.state = State::Created;
        let observed = vec![stopped, container("api", Role::Live, 1), lock];
        assert_eq!(services_needing_recovery(&observed, 2), ["api", "web"]);
        assert_eq!(services_with_leftovers(&observed, 2), ["api"]);
    }

    #[test]
    fn an_upgrade_check_left_behind_is_removed_and_a_bootstrap_job_waited_for() {
        let live = container("api", Role::Live, 1);
        let mut check = container("api", Role::Check, 0);
        check.state = State::Running;
        let job = container("api", Role::Bootstrap, 0);
        let steps = recovery_plan(&[&live, &check, &job], false, None, 2);
        assert_eq!(
            steps[..2],
            [
                Step::SettleJob {
                    name: job.name.clone()
                },
                Step::RemoveCheck {
                    name: check.name.clone()
                }
            ]
        );
        assert!(needs_recovery(&[live.clone(), check], "api", 2));
        assert!(!needs_recovery(&[live], "api", 2));
    }

    #[test]
    fn a_kept_generation_left_running_beside_the_live_one_is_stopped() {
        let live = container("api", Role::Live, 2);
        let mut beside = container("api", Role::Kept(1), 1);
        beside.state = State::Running;
        let mut stopped = container("api", Role::Kept(0), 0);
        stopped.state = State::Exited;
        let steps = recovery_plan(&[&live, &beside, &stopped], true, None, 2);
        let stops: Vec<&Step> = steps
            .iter()
            .filter(|s| matches!(s, Step::StopKept { .. }))
            .collect();
        assert_eq!(
            stops,
            vec![&Step::StopKept {
                id: beside.id.clone(),
                name: beside.name.clone()
            }]
        );
        // The live one stays as it is: no start, no swap back.
        assert!(!steps.iter().any(|s| matches!(s, Step::Restore { .. })));
        // Cut short after the live one was renamed away: it comes back,
        // and the kept one running beside it stops.
        let mut renamed = container("api", Role::Kept(2), 2);
        renamed.state = State::Exited;
        let steps = recovery_plan(
            &[&renamed, &beside],
            true,
            Some(LockedFrom {
                generation: 2,
                running: true,
                restore_db: None,
            }),
            2,
        );
        assert!(steps.contains(&Step::Restore {
            id: renamed.id.clone(),
            from: renamed.name.clone()
        }));
        assert!(steps.contains(&Step::StopKept {
            id: beside.id.clone(),
            name: beside.name.clone()
        }));
    }

    #[test]
    fn a_server_the_swap_stopped_is_started_even_if_it_exited_cleanly() {
        // Exited 0 with policy `no`: a completed one-shot, or a server that
        // stops cleanly on SIGTERM, stopped by a swap cut short after it.
        let mut live = container("api", Role::Live, 1);
        live.restart = "no".into();
        live.state = State::Exited;
        live.exit_code = Some(0);
        let candidate = container("api", Role::Candidate, 2);
        let mine = [&live, &candidate];
        let was_running = LockedFrom {
            generation: 1,
            running: true,
            restore_db: None,
        };
        let steps = recovery_plan(&mine, true, Some(was_running), 2);
        assert!(steps.contains(&Step::Start { generation: 1 }), "{steps:?}");
        let was_done = LockedFrom {
            generation: 1,
            running: false,
            restore_db: None,
        };
        let steps = recovery_plan(&mine, true, Some(was_done), 2);
        assert!(!steps.contains(&Step::Start { generation: 1 }), "{steps:?}");
    }

    #[test]
    fn a_restore_cut_short_never_starts_the_newer_generation_on_the_database() {
        // `rollback --restore-db` from 2 to 1 died after stopping 2: the
        // database may be half restored.
        let mut live = container("api", Role::Live, 2);
        live.state = State::Exited;
        let kept = container("api", Role::Kept(1), 1);
        let restoring = LockedFrom {
            generation: 2,
            running: true,
            restore_db: Some(1),
        };
        let steps = recovery_plan(&[&live, &kept], true, Some(restoring), 2);
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, Step::Start { .. } | Step::Gate { .. })),
            "{steps:?}"
        );
        // Died mid-swap with no live name: 2 gets it back, still stopped.
        let mut renamed = container("api", Role::Kept(2), 2);
        renamed.state = State::Exited;
        let steps = recovery_plan(&[&renamed, &kept], true, Some(restoring), 2);
        assert!(steps.contains(&Step::Restore {
            id: renamed.id.clone(),
            from: renamed.name.clone()
        }));
        assert!(!steps.contains(&Step::Start { generation: 2 }), "{steps:?}");
        // Died after the swap: generation 1, restored for, is started.
        let mut swapped = container("api", Role::Live, 1);
        swapped.state = State::Created;
        let old = container("api", Role::Kept(2), 2);
        let steps = recovery_plan(&[&swapped, &old], true, Some(restoring), 2);
        assert!(steps.contains(&Step::Start { generation: 1 }), "{steps:?}");
    }

    fn plan_text(containers: &[ObservedContainer], from: Option<u64>, retain: usize) -> String {
        let mine: Vec<&ObservedContainer> = containers.iter().collect();
        let from = from.map(|generation| LockedFrom {
            generation,
            running: false,
            restore_db: None,
        });
        recovery_plan(&mine, from.is_some(), from, retain)
            .iter()
            .map(|s| format!("{s}\n"))
            .collect()
    }

    #[test]
    fn a_healthy_service_needs_nothing() {
        let clean = vec![
            container("a", Role::Live, 2),
            container("a", Role::Kept(1), 1),
        ];
        assert_eq!(plan_text(&clean, None, 2), "");
        assert!(services_needing_recovery(&clean, 2).is_empty());
    }

    #[test]
    fn a_swap_that_died_after_the_stop_restores_the_generation_it_replaced() {
        // A rollback of a rollback died between its renames: generation 1
        // was live, 2 was coming back in.
        let observed = vec![
            container("a", Role::Kept(2), 2),
            container("a", Role::Kept(1), 1),
            container("a", Role::Lock, 0),
        ];
        assert_eq!(
            plan_text(&observed, Some(1), 2),
            "rename a.kolla-gen-1 back to the live name\n\
             restore the restart policy unless-stopped\n\
             start generation 1\n\
             gate generation 1 (generation 2 if it fails)\n"
        );
        // Without the lock's word, the newest kept one.
        assert!(plan_text(&observed, None, 2).starts_with("rename a.kolla-gen-2 back"));
    }

    #[test]
    fn a_candidate_is_removed_whether_or_not_a_live_container_exists() {
        let first_deploy = vec![container("a", Role::Candidate, 1)];
        assert_eq!(
            plan_text(&first_deploy, None, 2),
            "remove the candidate a.kolla-new\n"
        );
        let mid_swap = vec![
            container("a", Role::Live, 1),
            container("a", Role::Candidate, 2),
        ];
        assert_eq!(
            plan_text(&mid_swap, None, 2),
            "remove the candidate a.kolla-new\n\
             restore the restart policy unless-stopped\n\
             gate generation 1\n"
        );
    }

    #[test]
    fn a_stopped_live_container_is_started_and_a_completed_job_is_left() {
        let mut stopped = container("a", Role::Live, 3);
        stopped.state = State::Exited;
        stopped.exit_code = Some(137);
        assert_eq!(
            plan_text(&[stopped.clone()], None, 2),
            "restore the restart policy unless-stopped\nstart generation 3\ngate generation 3\n"
        );
        let mut job = stopped.clone();
        job.exit_code = Some(0);
        job.restart = "no".into();
        assert_eq!(plan_text(&[job], None, 2), "");
        let mut data = stopped;
        data.data = true;
        data.state = State::Created;
        assert_eq!(plan_text(&[data], None, 2), "");
    }

    #[test]
    fn after_a_run_died_a_live_container_that_looks_fine_is_still_gated() {
        let mut looping = container("a", Role::Live, 2);
        looping.state = State::Restarting;
        let observed = vec![looping, container("a", Role::Kept(1), 1)];
        // Nobody died: a restarting service is the engine's business.
        assert_eq!(plan_text(&observed, None, 2), "");
        // A run died holding the lock (mid swap-back): check it.
        assert_eq!(
            plan_text(&observed, Some(1), 2),
            "restore the restart policy unless-stopped\n\
             gate generation 2 (generation 1 if it fails)\n"
        );
    }

    #[test]
    fn jobs_are_settled_first_and_kept_generations_pruned_to_retain() {
        let observed = vec![
            container("a", Role::Bootstrap, 0),
            container("a", Role::Live, 9),
            container("a", Role::Kept(8), 8),
            container("a", Role::Kept(7), 7),
            container("a", Role::Kept(6), 6),
            container("a", Role::Kept(5), 5),
        ];
        assert_eq!(
            plan_text(&observed, None, 2),
            "settle the bootstrap job a.kolla-bootstrap\n\
             restore the restart policy unless-stopped\n\
             gate generation 9 (generation 8 if it fails)\n\
             remove kept generation 6\n\
             remove kept generation 5\n"
        );
        let services = services_needing_recovery(&observed, 2);
        assert_eq!(services, vec!["a"]);
        // Kept beyond retain alone is reason enough.
        assert_eq!(services_needing_recovery(&observed[1..], 2), vec!["a"]);
        assert!(services_needing_recovery(&observed[1..], 4).is_empty());
    }
}
