//! The executor: runs a plan's actions on one node and decides nothing.
//! Each service's action starts as soon as the actions of the services it
//! depends on have finished (a slow service holds up only what needs it),
//! as many in parallel as are ready; nothing new starts after a failure
//! (what is under way finishes). Creating a service runs its bootstrap job
//! and uploads its config before it starts; replacing one is the swap that
//! `kolla upgrade` runs too, and rolling back swaps a kept container in;
//! `kolla start` and `restart` start (or stop and start) a live container
//! as their plan's turn, rechecked under the lock, says. Every change to a
//! service runs in a `Session` (lock -> work -> record -> release).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::config_files::RenderedFile;
use super::context::NodeRun;
use super::critical::{Gated, Incoming, SwapTask};
use super::error::DeployError;
use super::fault::{self, FaultPoint};
use super::guests;
use super::labels::{self, ObservedContainer, Role, State};
use super::lifecycle::{Decision, Turn};
use super::lock::Takeover;
use super::owned;
use super::plan::{Action, ActionKind, DesiredService, Plan, Recheck, SwapOptions};
use super::restore_point::RestorePoints;
use super::session::{Attempt, Intent, Session};
use super::spec::ContainerSpec;
use super::steps::StepRunner;
use super::volumes::VolumeMount;
use crate::config::compose::Condition;
use crate::engine::EngineError;
use crate::progress::{Finished, Tone};

/// What one applied action did.
#[derive(Debug, Clone)]
pub struct Done {
    pub service: String,
    pub kind: ActionKind,
    pub dark_window: Option<Duration>,
}

/// What applying a plan came to: the actions that ran to their end, and
/// every failure with the service whose action met it (None: one of the
/// plan's volumes). Actions a failure kept from starting are in neither.
#[derive(Debug, Default)]
pub struct Applied {
    pub done: Vec<Done>,
    pub failed: Vec<(Option<String>, DeployError)>,
}

const FAILED: Finished = Finished {
    word: "failed",
    tone: Tone::Bad,
};

/// How the display shows a service whose action succeeded.
fn finished_as(kind: ActionKind) -> Finished {
    let word = match kind {
        ActionKind::CreateData | ActionKind::Create => "created",
        ActionKind::Replace => "replaced",
        ActionKind::Start => "started",
        ActionKind::Keep => "up to date",
        ActionKind::RemoveOrphan => "removed",
    };
    Finished {
        word,
        tone: Tone::Good,
    }
}

fn dark_text(done: &Done) -> String {
    done.dark_window
        .map(|dark| format!("dark {:.3}s", dark.as_secs_f64()))
        .unwrap_or_default()
}

/// For each action, the changing actions it waits for: its dependencies
/// that change, and through each that does not, what that one waits for
/// (glance-api needs keystone, which is unchanged, which needs mariadb,
/// which is being swapped: glance's restore point and bootstrap need
/// mariadb up). Bounded by the number of changing actions per service, so
/// a deploy that changes nothing stays linear. `plan.levels` is in
/// dependency order.
fn changing_dependencies(plan: &Plan) -> HashMap<&str, BTreeSet<&str>> {
    let mut blockers: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let changes: HashMap<&str, bool> = plan
        .levels
        .iter()
        .flatten()
        .map(|a| (a.service.as_str(), a.kind.changes_something()))
        .collect();
    for action in plan.levels.iter().flatten() {
        let mut mine = BTreeSet::new();
        for dependency in &action.after {
            match changes.get(dependency.as_str()) {
                Some(true) => {
                    mine.insert(dependency.as_str());
                }
                Some(false) => {
                    if let Some(theirs) = blockers.get(dependency.as_str()) {
                        mine.extend(theirs.iter().copied());
                    }
                }
                None => {}
            }
        }
        blockers.insert(action.service.as_str(), mine);
    }
    blockers
}

/// Runs a plan's actions, swaps and rollbacks on one node, over its
/// `NodeRun`; decides nothing.
#[derive(Clone, Copy)]
pub struct Executor<'r> {
    run: &'r NodeRun<'r>,
    runner: StepRunner<'r>,
    points: RestorePoints<'r>,
}

impl<'r> Executor<'r> {
    pub fn of(run: &'r NodeRun<'r>) -> Self {
        Executor {
            run,
            runner: StepRunner::of(run),
            points: RestorePoints::of(run),
        }
    }
}

impl Executor<'_> {
    /// Run the plan: the named volumes it creates, then every service's
    /// action as soon as its dependencies are done, then the orphans.
    pub async fn apply(
        &self,
        plan: &Plan,
        desired: &BTreeMap<String, DesiredService>,
        observed: &[ObservedContainer],
        config_files: &BTreeMap<String, Vec<RenderedFile>>,
    ) -> Applied {
        let mut applied = Applied::default();
        for volume in plan.volumes.iter().filter(|v| v.create) {
            let labels =
                HashMap::from([(labels::PROJECT.to_string(), self.run.project.to_string())]);
            if let Err(e) = self
                .run
                .engine
                .create_volume(&volume.name, volume.driver.as_deref(), labels)
                .await
            {
                applied.failed.push((None, self.run.engine_error(e)));
                return applied;
            }
        }
        self.run_actions(plan, desired, observed, config_files, &mut applied)
            .await;
        if !applied.failed.is_empty() {
            return applied;
        }
        for orphan in plan
            .orphans
            .iter()
            .filter(|o| o.kind == ActionKind::RemoveOrphan)
        {
            for container in observed
                .iter()
                .filter(|c| c.service == orphan.service && c.role != Role::Lock)
            {
                self.run.steps.note(format!(
                    "{}: removing {} (orphan)",
                    self.run.node, container.name
                ));
                if let Err(e) = self.run.engine.remove_container(&container.id, false).await {
                    let error = self.run.engine_error(e);
                    applied.failed.push((Some(orphan.service.clone()), error));
                    return applied;
                }
            }
            applied.done.push(Done {
                service: orphan.service.clone(),
                kind: ActionKind::RemoveOrphan,
                dark_window: None,
            });
        }
        applied
    }

    /// The services' actions, each as soon as the actions of what it
    /// depends on are done; nothing new starts after a failure.
    async fn run_actions(
        &self,
        plan: &Plan,
        desired: &BTreeMap<String, DesiredService>,
        observed: &[ObservedContainer],
        config_files: &BTreeMap<String, Vec<RenderedFile>>,
        applied: &mut Applied,
    ) {
        let blockers = changing_dependencies(plan);
        let mut waiting: Vec<&Action> = plan
            .levels
            .iter()
            .flatten()
            .filter(|a| a.kind.changes_something())
            .collect();
        let mut finished: BTreeSet<&str> = BTreeSet::new();
        let mut running = FuturesUnordered::new();
        loop {
            if applied.failed.is_empty() {
                let (ready, still): (Vec<&Action>, Vec<&Action>) =
                    waiting.into_iter().partition(|a| {
                        blockers
                            .get(a.service.as_str())
                            .is_none_or(|b| b.iter().all(|d| finished.contains(d)))
                    });
                waiting = still;
                for action in &waiting {
                    self.run.steps.pending(
                        self.run.node,
                        &action.service,
                        "waiting for its dependencies",
                    );
                }
                for action in ready {
                    let wanted = &desired[&action.service];
                    let files = config_files
                        .get(&action.service)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    running.push(async move {
                        let result = self.run_action(action, wanted, observed, files).await;
                        (action.service.as_str(), result)
                    });
                }
            }
            match running.next().await {
                Some((service, Ok(d))) => {
                    self.run.steps.done(
                        self.run.node,
                        service,
                        finished_as(d.kind),
                        &dark_text(&d),
                    );
                    finished.insert(service);
                    applied.done.push(d);
                }
                Some((service, Err(e))) => {
                    self.run
                        .steps
                        .done(self.run.node, service, FAILED, &e.to_string());
                    applied.failed.push((Some(service.to_string()), e));
                }
                None => break,
            }
        }
        // Plans are checked for cycles and missing services, so nothing is
        // left waiting unless something failed.
        debug_assert!(waiting.is_empty() || !applied.failed.is_empty());
    }

    async fn run_action(
        &self,
        action: &Action,
        wanted: &DesiredService,
        observed: &[ObservedContainer],
        files: &[RenderedFile],
    ) -> Result<Done, DeployError> {
        let service = wanted.service.name.clone();
        let live_name = labels::container_name(self.run.placement_prefix, &service, Role::Live);
        let mut dark_window = None;
        match action.kind {
            ActionKind::CreateData => {
                self.run
                    .steps
                    .status(self.run.node, &service, "creating data container");
                let mut spec = self.runner.spec_for(wanted, live_name, 1);
                self.runner
                    .mount_volumes(wanted, &mut spec, &action.volumes)
                    .await?;
                self.run
                    .engine
                    .create_container(&spec)
                    .await
                    .map_err(|e| self.run.engine_error(e))?;
            }
            ActionKind::Create => self.create(wanted, files, action).await?,
            ActionKind::Start => {
                // A node that rebooted lost what lives in its tmpfs (shared
                // mounts under /run) and its sysctls: prepare it again.
                self.runner.prepare_node(wanted).await?;
                self.run.steps.status(self.run.node, &service, "starting");
                self.run
                    .engine
                    .start_container(&live_name)
                    .await
                    .map_err(|e| self.run.engine_error(e))?;
                self.runner
                    .pass_gate(action.gate, &service, &live_name)
                    .await?;
            }
            ActionKind::Replace => {
                dark_window = self
                    .replace(action, wanted, observed, files, "deploy")
                    .await?;
            }
            ActionKind::Keep | ActionKind::RemoveOrphan => {}
        }
        Ok(Done {
            service,
            kind: action.kind,
            dark_window,
        })
    }

    /// After a deploy: every desired, non-data service (of `only`, when
    /// a deploy named them) must be running (or, for one-shot services
    /// others wait on, have exited 0); each that is not, with its error.
    pub async fn verify(
        &self,
        desired: &BTreeMap<String, DesiredService>,
        observed: &[ObservedContainer],
        only: Option<&[String]>,
    ) -> Result<(), Vec<(String, DeployError)>> {
        let completed: Vec<&str> = desired
            .values()
            .flat_map(|d| d.service.depends_on.iter())
            .filter(|(_, c)| **c == Condition::CompletedSuccessfully)
            .map(|(s, _)| s.as_str())
            .collect();
        let by_service: HashMap<&str, &ObservedContainer> = observed
            .iter()
            .filter(|c| c.role == Role::Live)
            .map(|c| (c.service.as_str(), c))
            .collect();
        let mut errors = Vec::new();
        let checked = desired.values().filter(|d| {
            !d.service.kolla.data && only.is_none_or(|only| only.contains(&d.service.name))
        });
        for wanted in checked {
            let name = wanted.service.name.as_str();
            let Some(container) = by_service.get(name) else {
                continue;
            };
            let ok = container.state == State::Running
                || (completed.contains(&name) && container.state == State::Exited);
            if !ok {
                let used_for_volumes = desired.values().any(|d| {
                    d.service
                        .volumes_from
                        .iter()
                        .any(|v| v.split(':').next() == Some(name))
                });
                let hint = if used_for_volumes && container.state == State::Exited {
                    "; other services use its volumes (volumes_from): if it is a data container, mark it `x-kolla: {data: true}` (created, never started)"
                } else {
                    ""
                };
                errors.push((
                    name.to_string(),
                    self.runner
                        .unhealthy(
                            name,
                            &container.name,
                            format!("is {}, not running{hint}", container.state.as_str()),
                        )
                        .await,
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Replace `wanted`'s live container by a new one made from its desired
    /// spec, as `action` planned, in a session: bootstrap, candidate, swap.
    /// The path deploy and upgrade share. Once the lock is held the action
    /// is checked again against the node (`Action::recheck`), since another
    /// run may have swapped the service meanwhile; if that run already made
    /// it what `wanted` asks, nothing is done (None). Returns the dark
    /// window.
    pub async fn replace(
        &self,
        action: &Action,
        wanted: &DesiredService,
        observed: &[ObservedContainer],
        files: &[RenderedFile],
        verb: &str,
    ) -> Result<Option<Duration>, DeployError> {
        let service = wanted.service.name.as_str();
        let seen = self.live_of(observed, service)?;
        let session = Session::open(
            self.run,
            Intent {
                service,
                image: &wanted.service.image,
                image_volumes: Some(&wanted.image_volumes),
                action: verb,
                target: wanted.service.image.clone(),
                from: Some(seen.generation),
                from_running: seen.state == State::Running,
                restore_db: None,
                takeover: Takeover::Never,
            },
        )
        .await?;
        fault::point(FaultPoint::Locked);
        let mut attempt = None;
        let result = self
            .replace_locked(action, wanted, files, &mut attempt)
            .await;
        let swapped = session.close(attempt, result, |dark| *dark).await?;
        // The swap happened: pruning is housekeeping, never its failure.
        if swapped.is_some() && wanted.service.kolla.restore_point.is_some() {
            match self.generations_of(service).await {
                Ok(generations) => {
                    self.points
                        .prune_restore_points(service, &generations)
                        .await
                }
                Err(e) => self.run.steps.note(format!(
                    "{}: warning: restore points of {service} not pruned: {e}",
                    self.run.node
                )),
            }
        }
        Ok(swapped)
    }

    /// The generations `service` has on the node now (live and kept).
    pub(super) async fn generations_of(&self, service: &str) -> Result<Vec<u64>, DeployError> {
        Ok(self
            .observe()
            .await?
            .iter()
            .filter(|c| c.service == service && matches!(c.role, Role::Live | Role::Kept(_)))
            .map(|c| c.generation)
            .collect())
    }

    /// The replace once its lock is held; fills `attempt` as soon as the
    /// generations are known, for the history.
    async fn replace_locked(
        &self,
        action: &Action,
        wanted: &DesiredService,
        files: &[RenderedFile],
        attempt: &mut Option<Attempt>,
    ) -> Result<Option<Duration>, DeployError> {
        let service = wanted.service.name.as_str();
        let observed = self.observe().await?;
        let swap = match action.recheck(wanted, &observed, self.run.placement_prefix) {
            Recheck::Swap(swap) => swap,
            Recheck::Current => return Ok(None),
            Recheck::Gone => {
                return Err(self.run.engine_error(EngineError::NotFound {
                    what: format!("the live container of {service}"),
                }));
            }
        };
        let live = &swap.live;
        let mut record = Attempt {
            from: live.generation,
            to: swap.generation,
            from_image: live.image.clone(),
            image: wanted.service.image.clone(),
            digest: wanted.digest.clone().unwrap_or_default(),
            releases: (live.release.clone(), wanted.release.clone()),
            swapping: false,
        };
        *attempt = Some(record.clone());
        // Before the job runs: the names the swap needs are free (or hold
        // only what it may replace).
        let candidate_name =
            labels::container_name(self.run.placement_prefix, service, Role::Candidate);
        let kept_name = labels::container_name(
            self.run.placement_prefix,
            service,
            Role::Kept(live.generation),
        );
        owned::find(self.run.engine, &candidate_name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?;
        owned::must_be_free(self.run.engine, &kept_name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?;
        // Before anything runs: a swap that would take guests down is not
        // started at all.
        self.refuse_if_guests_would_stop(live).await?;
        // The new image's own judgement of the live cloud, before anything
        // of it changes.
        self.runner.upgrade_check(wanted, &swap.volumes).await?;
        // The dump must succeed before the job migrates anything: without
        // it, the upgrade does not start.
        if let (Some(spec), Some(_)) = (
            &wanted.service.kolla.restore_point,
            &wanted.service.kolla.bootstrap,
        ) {
            self.points
                .take_restore_point(service, spec, live.generation, &wanted.service.image)
                .await?;
        }
        self.runner.prepare_node(wanted).await?;
        self.runner.bootstrap(wanted, &swap.volumes).await?;
        fault::point(FaultPoint::Bootstrapped);
        let mut candidate = self
            .runner
            .spec_for(wanted, candidate_name, swap.generation);
        self.runner
            .mount_volumes(wanted, &mut candidate, &swap.volumes)
            .await?;
        record.swapping = true;
        *attempt = Some(record);
        self.swap_candidate(live, &swap.kept, candidate, files, &swap.options)
            .await
            .map(Some)
    }

    /// The deployment's containers on the node now.
    async fn observe(&self) -> Result<Vec<ObservedContainer>, DeployError> {
        super::observe::observe_project(
            self.run.engine,
            self.run.project,
            self.run.placement_prefix,
        )
        .await
        .map_err(|e| self.run.engine_error(e))
    }

    /// `wanted`'s post-upgrade step under its lock, the service running
    /// `wanted` as `live` (the plan found it current); the job mounts
    /// `volumes`. Ok(false) when it has no step.
    pub async fn post_upgrade(
        &self,
        wanted: &DesiredService,
        live: &ObservedContainer,
        volumes: &[VolumeMount],
    ) -> Result<bool, DeployError> {
        if wanted.service.kolla.post_upgrade.is_none() {
            return Ok(false);
        }
        let session = Session::open(
            self.run,
            Intent {
                service: &wanted.service.name,
                image: &wanted.service.image,
                image_volumes: Some(&wanted.image_volumes),
                action: "post-upgrade",
                target: format!("generation {} ({})", live.generation, wanted.service.image),
                from: Some(live.generation),
                from_running: live.state == State::Running,
                restore_db: None,
                takeover: Takeover::Never,
            },
        )
        .await?;
        let result = self.runner.post_upgrade(wanted, volumes).await;
        session.close(None, result, |_| None).await
    }

    fn live_of(
        &self,
        observed: &[ObservedContainer],
        service: &str,
    ) -> Result<ObservedContainer, DeployError> {
        observed
            .iter()
            .find(|c| c.service == service && c.role == Role::Live)
            .cloned()
            .ok_or_else(|| {
                self.run.engine_error(EngineError::NotFound {
                    what: format!("the live container of {service}"),
                })
            })
    }

    /// A service's first container, in a session: the bootstrap job, then
    /// the container created under the candidate name with its config and
    /// renamed live only once complete, so a crash at any point leaves no
    /// live container without its config. Then start and gate.
    async fn create(
        &self,
        wanted: &DesiredService,
        files: &[RenderedFile],
        action: &Action,
    ) -> Result<(), DeployError> {
        let service = wanted.service.name.as_str();
        let live_name = labels::container_name(self.run.placement_prefix, service, Role::Live);
        let session = Session::open(
            self.run,
            Intent {
                service,
                image: &wanted.service.image,
                image_volumes: Some(&wanted.image_volumes),
                action: "deploy",
                target: format!("generation 1 ({})", wanted.service.image),
                from: None,
                from_running: false,
                restore_db: None,
                takeover: Takeover::Never,
            },
        )
        .await?;
        fault::point(FaultPoint::CreateLocked);
        let result = self
            .create_locked(wanted, files, &action.volumes, &live_name)
            .await;
        session.close(None, result, |_| None).await?;
        self.runner
            .pass_gate(action.gate, service, &live_name)
            .await
    }

    async fn create_locked(
        &self,
        wanted: &DesiredService,
        files: &[RenderedFile],
        volumes: &[VolumeMount],
        live_name: &str,
    ) -> Result<(), DeployError> {
        let service = wanted.service.name.as_str();
        owned::must_be_free(self.run.engine, live_name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?;
        self.runner.prepare_node(wanted).await?;
        self.runner.bootstrap(wanted, volumes).await?;
        self.run.steps.status(self.run.node, service, "creating");
        let candidate_name =
            labels::container_name(self.run.placement_prefix, service, Role::Candidate);
        owned::remove(self.run.engine, &candidate_name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?;
        let mut spec = self.runner.spec_for(wanted, candidate_name, 1);
        self.runner
            .mount_volumes(wanted, &mut spec, volumes)
            .await?;
        let id = self.runner.create_configured(&spec, files).await?;
        fault::point(FaultPoint::CreateConfigured);
        if let Err(e) = self.run.engine.rename_container(&id, live_name).await {
            let _ = self.run.engine.remove_container(&id, false).await;
            return Err(self.run.engine_error(e));
        }
        fault::point(FaultPoint::CreateRenamed);
        self.run
            .engine
            .start_container(&id)
            .await
            .map_err(|e| self.run.engine_error(e))
    }

    /// Create `candidate` (named `<svc>.kolla-new`) with its config and swap
    /// it in for `live`. Returns the dark window: from the old container's
    /// stop to the new one's first passing gate (zero when that came first,
    /// as start-first makes it).
    async fn swap_candidate(
        &self,
        live: &ObservedContainer,
        kept: &[ObservedContainer],
        candidate: ContainerSpec,
        files: &[RenderedFile],
        options: &SwapOptions,
    ) -> Result<Duration, DeployError> {
        let service = live.service.as_str();
        // A candidate left by an interrupted swap is stale: start afresh.
        owned::remove(self.run.engine, &candidate.name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?;
        let id = self.runner.create_configured(&candidate, files).await?;
        fault::point(FaultPoint::CandidateCreated);
        let gated = if options.start_first {
            match self.start_beside(service, &id, options.grace).await {
                Ok(gated) => Some(gated),
                Err(e) => {
                    let _ = self.run.engine.remove_container(&id, false).await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let incoming = Incoming {
            id,
            generation: candidate
                .labels
                .get(labels::GENERATION)
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
            restart: None,
            gated,
            back_to: None,
        };
        let task = SwapTask::new(live, kept, incoming, options.grace);
        self.perform_keeping_guests(live, task).await
    }

    /// Start `id` beside the live container and gate it on its own health;
    /// when it answered (the swap measures its dark window from it). If it
    /// fails, it stops as the old one would (its signal, its grace): it
    /// shared the port, so what it accepted is answered.
    async fn start_beside(
        &self,
        service: &str,
        id: &str,
        grace: Option<i64>,
    ) -> Result<Gated, DeployError> {
        self.run.steps.status(
            self.run.node,
            service,
            "starting the new container beside the old one",
        );
        let started = match self.run.engine.start_container(id).await {
            Ok(()) => self
                .runner
                .gate(service, id)
                .await
                .map(|()| Gated(Instant::now())),
            Err(e) => Err(self.run.engine_error(e)),
        };
        if started.is_err() {
            let _ = self.run.engine.stop_container(id, grace).await;
        }
        started
    }

    /// Roll `service` back from `live` to the kept container `target`, in
    /// a session, and record it. Gate and grace come from the containers
    /// themselves: a rollback reads no compose file. It starts the kept
    /// container beside the live one only when both were made for a
    /// start-first service (their `kolla.update-order` label): otherwise
    /// they would fight over the same ports. With `restore_db`, the
    /// database goes back to `target`'s restore point first.
    pub async fn rollback(
        &self,
        live: &ObservedContainer,
        target: &ObservedContainer,
        kept: &[ObservedContainer],
        restore_db: bool,
    ) -> Result<Duration, DeployError> {
        let session = Session::open(
            self.run,
            Intent {
                service: &live.service,
                image: &live.image,
                image_volumes: None,
                action: "rollback",
                target: format!("generation {}", target.generation),
                from: Some(live.generation),
                from_running: live.state == State::Running,
                restore_db: restore_db.then_some(target.generation),
                takeover: Takeover::Never,
            },
        )
        .await?;
        let result = match self.still_as_seen(&session, live, target).await {
            Err(e) => Err(e),
            Ok(()) => {
                self.roll_back_in_session(live, target, kept, restore_db)
                    .await
            }
        };
        let attempt = Attempt {
            from: live.generation,
            to: target.generation,
            from_image: live.image.clone(),
            image: target.image.clone(),
            digest: target.digest.clone(),
            releases: (live.release.clone(), target.release.clone()),
            swapping: true,
        };
        session.close(Some(attempt), result, |d| Some(*d)).await
    }

    /// The rollback once its lock is held, as its flags and the
    /// containers' update order say.
    async fn roll_back_in_session(
        &self,
        live: &ObservedContainer,
        target: &ObservedContainer,
        kept: &[ObservedContainer],
        restore_db: bool,
    ) -> Result<Duration, DeployError> {
        self.refuse_if_guests_would_stop(live).await?;
        if restore_db {
            self.restore_then_roll_back(live, target, kept).await
        } else if live.start_first && target.start_first {
            self.roll_back_start_first(live, target, kept).await
        } else {
            self.rollback_locked(live, target, kept).await
        }
    }

    /// A rollback is decided from the node as seen before its lock: if
    /// the session waited for another run's lock (`--lock-wait`), that run
    /// may have swapped the service since, so `live` must still be live
    /// and `target` still kept, else nothing is done.
    async fn still_as_seen(
        &self,
        session: &Session<'_, '_>,
        live: &ObservedContainer,
        target: &ObservedContainer,
    ) -> Result<(), DeployError> {
        let Some(holder) = session.waited_for() else {
            return Ok(());
        };
        let now = self.observe().await?;
        let role_of = |id: &str| now.iter().find(|c| c.id == id).map(|c| c.role);
        if role_of(&live.id) == Some(Role::Live) && role_of(&target.id) == Some(target.role) {
            return Ok(());
        }
        Err(DeployError::Refused {
            node: self.run.node.to_string(),
            message: format!(
                "service {}: changed while this run waited for the lock of {holder}: nothing was done; run the rollback again to decide from what runs now",
                live.service
            ),
        })
    }

    /// `rollback --restore-db`: the database back to `target`'s restore
    /// point with `live` stopped, then the swap. The dark window reported
    /// runs from that stop, restore included.
    pub(super) async fn restore_then_roll_back(
        &self,
        live: &ObservedContainer,
        target: &ObservedContainer,
        kept: &[ObservedContainer],
    ) -> Result<Duration, DeployError> {
        let restoring = self
            .points
            .restore_database(&live.service, &live.id, target.generation)
            .await?;
        let swap = self.rollback_locked(live, target, kept).await?;
        Ok(restoring + swap)
    }

    /// A rollback of a service that can run twice: the kept generation
    /// starts beside the live one and passes its own gate before the live
    /// one stops, so no client sees a gap. If it fails, it stops again and
    /// the live one never stopped.
    async fn roll_back_start_first(
        &self,
        live: &ObservedContainer,
        target: &ObservedContainer,
        kept: &[ObservedContainer],
    ) -> Result<Duration, DeployError> {
        let gated = self.start_beside(&live.service, &target.id, None).await?;
        fault::point(FaultPoint::RollbackStartedBeside);
        self.swap_back_in(live, target, kept, Some(gated)).await
    }

    /// Swap the kept container `target` back in for `live` (a rollback, or
    /// recovery falling back to the previous generation); the caller holds
    /// the lock.
    pub(super) async fn rollback_locked(
        &self,
        live: &ObservedContainer,
        target: &ObservedContainer,
        kept: &[ObservedContainer],
    ) -> Result<Duration, DeployError> {
        self.swap_back_in(live, target, kept, None).await
    }

    /// The swap of the kept container `target` in for `live`; `gated`: it
    /// already runs, and answered its gate then.
    async fn swap_back_in(
        &self,
        live: &ObservedContainer,
        target: &ObservedContainer,
        kept: &[ObservedContainer],
        gated: Option<Gated>,
    ) -> Result<Duration, DeployError> {
        let incoming = Incoming {
            id: target.id.clone(),
            generation: target.generation,
            restart: Some(target.restart.clone()),
            gated,
            back_to: Some(target.name.clone()),
        };
        let task = SwapTask::new(live, kept, incoming, None);
        self.perform_keeping_guests(live, task).await
    }

    /// Start or restart a service's live container as `turn` planned, in a
    /// session. `planned` is its live container when the plan was made
    /// (the lock is made from its image). Once the lock is held the turn is
    /// decided again from the node (`Turn::recheck`); what it comes to is
    /// returned, with the dark window of a restart: from its stop to its
    /// first passing gate. A restart sees to the service's guests first,
    /// as a swap does.
    pub async fn start_live(
        &self,
        turn: &Turn,
        planned: &ObservedContainer,
    ) -> Result<(Decision, Option<Duration>), DeployError> {
        let service = turn.service.as_str();
        let image = if planned.digest.is_empty() {
            &planned.image
        } else {
            &planned.digest
        };
        let session = Session::open(
            self.run,
            Intent {
                service,
                image,
                image_volumes: None,
                action: if turn.restart { "restart" } else { "start" },
                target: format!("generation {}", planned.generation),
                from: Some(planned.generation),
                from_running: planned.state == State::Running,
                restore_db: None,
                takeover: Takeover::Never,
            },
        )
        .await?;
        let result = self.start_live_locked(turn).await;
        session.close(None, result, |_| None).await
    }

    async fn start_live_locked(
        &self,
        turn: &Turn,
    ) -> Result<(Decision, Option<Duration>), DeployError> {
        let service = turn.service.as_str();
        let observed = self.observe().await?;
        let Some((live, decision)) = turn.recheck(&observed) else {
            return Err(self.run.engine_error(EngineError::NotFound {
                what: format!("the live container of {service}"),
            }));
        };
        let engine = self.run.engine;
        let dark_since = match decision {
            Decision::Leave(_) => return Ok((decision, None)),
            Decision::Start => None,
            Decision::Restart => {
                self.stop_guests_for_restart(live).await?;
                self.run.steps.status(self.run.node, service, "stopping");
                let since = Instant::now();
                // None: the signal and grace period it was created with.
                engine
                    .stop_container(&live.id, None)
                    .await
                    .map_err(|e| self.run.engine_error(e))?;
                Some(since)
            }
        };
        self.run.steps.status(self.run.node, service, "starting");
        engine
            .start_container(&live.id)
            .await
            .map_err(|e| self.run.engine_error(e))?;
        // Dark until it passes: the eager pace of a swap's dark gate.
        self.runner.gate_dark(service, &live.name).await?;
        Ok((decision, dark_since.map(|since| since.elapsed())))
    }

    /// Before a restart stops `live`: a guest (`x-kolla.guests`) that
    /// would stop with it is refused, unless `--stop-guests`, which shuts
    /// them down cleanly first.
    async fn stop_guests_for_restart(&self, live: &ObservedContainer) -> Result<(), DeployError> {
        let Some(program) = &live.guests else {
            return Ok(());
        };
        let listed = self.guests_of_live(live, program).await?;
        let stopping = listed
            .as_deref()
            .map(guests::would_stop)
            .unwrap_or_default();
        if stopping.is_empty() {
            return Ok(());
        }
        let service = live.service.as_str();
        self.run.steps.event(
            self.run.node,
            service,
            &format!(
                "stopping guests (--stop-guests): {}",
                guests::named(&stopping)
            ),
        );
        guests::stop(self.run.engine, &live.id, program)
            .await
            .map_err(|message| DeployError::Guests {
                node: self.run.node.to_string(),
                service: service.to_string(),
                message,
            })
    }

    /// Refuse to touch `live` while a guest of it (`x-kolla.guests`) would
    /// stop with it, unless `--stop-guests` says to stop them (the swap
    /// does, as late as it can). Asked again right before the swap: guests
    /// may start while a bootstrap job runs.
    async fn refuse_if_guests_would_stop(
        &self,
        live: &ObservedContainer,
    ) -> Result<(), DeployError> {
        match (&live.guests, self.run.options.stop_guests) {
            (Some(program), false) => self.guests_of_live(live, program).await.map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The guests of the running live container `live` (none when it is
    /// not running), refused when one would stop with it and
    /// `--stop-guests` was not given.
    async fn guests_of_live(
        &self,
        live: &ObservedContainer,
        program: &str,
    ) -> Result<Option<Vec<guests::Guest>>, DeployError> {
        if live.state != State::Running {
            return Ok(None);
        }
        let listed = guests::list(self.run.engine, &live.id, program)
            .await
            .map_err(|message| DeployError::Guests {
                node: self.run.node.to_string(),
                service: live.service.clone(),
                message,
            })?;
        let stopping = guests::would_stop(&listed);
        if !stopping.is_empty() && !self.run.options.stop_guests {
            return Err(DeployError::GuestsWouldStop {
                node: self.run.node.to_string(),
                service: live.service.clone(),
                guests: guests::named(&stopping),
            });
        }
        Ok(Some(listed))
    }

    /// The swap of `task`, for a service with guests (`x-kolla.guests`):
    /// refused while a guest would stop with the live container (unless
    /// `--stop-guests`: then they are shut down first), and the guests
    /// listed again in the new container afterwards, each kept only if
    /// the same process still runs it.
    async fn perform_keeping_guests(
        &self,
        live: &ObservedContainer,
        task: SwapTask,
    ) -> Result<Duration, DeployError> {
        let service = live.service.as_str();
        let Some(program) = live.guests.clone() else {
            return super::helper::perform(self.run, task).await;
        };
        // A live container that is not running has no guests to ask about:
        // what still runs is listed after the swap.
        let before = self.guests_of_live(live, &program).await?;
        let stopping = before
            .as_deref()
            .map(guests::would_stop)
            .unwrap_or_default();
        if !stopping.is_empty() {
            self.run.steps.event(
                self.run.node,
                service,
                &format!(
                    "stopping guests (--stop-guests): {}",
                    guests::named(&stopping)
                ),
            );
            guests::stop(self.run.engine, &live.id, &program)
                .await
                .map_err(|message| DeployError::Guests {
                    node: self.run.node.to_string(),
                    service: service.to_string(),
                    message,
                })?;
        }
        let incoming = task.incoming.id.clone();
        let dark = super::helper::perform(self.run, task).await?;
        let after = guests::list(self.run.engine, &incoming, &program).await;
        let said = match (&before, after) {
            (Some(before), Ok(after)) if !before.is_empty() => {
                guests::compare(before, &after).summary()
            }
            (_, Ok(after)) => format!("guests running after the swap: {}", after.len()),
            (_, Err(e)) => format!("could not list the guests after the swap: {e}"),
        };
        self.run.steps.event(self.run.node, service, &said);
        Ok(dark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::plan::Gate;

    fn action(service: &str, kind: ActionKind, after: &[&str]) -> Action {
        Action {
            kind,
            service: service.into(),
            cause: String::new(),
            generation: None,
            from: None,
            gate: Gate::Nothing,
            start_first: false,
            volumes: Vec::new(),
            after: after.iter().map(|a| a.to_string()).collect(),
            image: None,
        }
    }

    #[test]
    fn a_swap_waits_for_a_changing_dependency_behind_an_unchanged_one() {
        let plan = Plan {
            levels: vec![
                vec![
                    action("mariadb", ActionKind::Replace, &[]),
                    action("memcached", ActionKind::Keep, &[]),
                ],
                vec![action(
                    "keystone",
                    ActionKind::Keep,
                    &["mariadb", "memcached"],
                )],
                vec![action("glance-api", ActionKind::Replace, &["keystone"])],
                vec![action(
                    "nova-api",
                    ActionKind::Replace,
                    &["glance-api", "memcached"],
                )],
            ],
            ..Plan::default()
        };
        let blockers = changing_dependencies(&plan);
        let of = |s: &str| blockers[s].iter().copied().collect::<Vec<_>>();
        assert_eq!(of("glance-api"), ["mariadb"]);
        assert_eq!(of("keystone"), ["mariadb"]);
        // Through a changing dependency, only that one: it waited already.
        assert_eq!(of("nova-api"), ["glance-api"]);
        assert!(of("mariadb").is_empty() && of("memcached").is_empty());
    }
}
