//! Running a plan on one node: each service's action starts as soon as the
//! actions of the services it depends on have finished (so a slow service
//! holds up only what needs it, not its whole dependency level), as many in
//! parallel as are ready. Creating a service renders and uploads its config
//! before it starts and runs its bootstrap job first; replacing one is the
//! swap of `upgrade`, the same code path `kolla upgrade` uses. A service
//! that others need healthy (or that has a healthcheck) must pass it before
//! they start; one that fails shows its last log lines, and nothing new
//! starts after a failure (what is under way finishes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sha2::Digest as _;

use super::history::{self, Record};
use super::labels::{self, ObservedContainer, Role, State};
use super::lock::{self, Lock, LockError, LockRequest, Takeover};
use super::owned::{self, NotOurs, OwnedError};
use super::plan::{self, Action, ActionKind, DesiredService, Plan};
use super::spec::{self, ContainerSpec, Placement};
use super::upgrade::{self, SwapOptions};
use super::{config_files, current_user, now_secs};
use crate::config::compose::Condition;
use crate::engine::{Engine, EngineError, WaitGoal, WaitOutcome};

/// How long to wait, and how much to show, when things go wrong.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Longest wait for a healthcheck to pass (or a job to finish).
    pub health_timeout: Duration,
    /// How long a service without a healthcheck must stay up after a swap.
    pub monitor_window: Duration,
    /// Kept containers per service after a swap.
    pub retain: usize,
    /// Log lines shown for a failing container.
    pub log_lines: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            health_timeout: Duration::from_secs(300),
            monitor_window: Duration::from_secs(2),
            retain: 2,
            log_lines: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("node {node}: {source}")]
    Engine {
        node: String,
        #[source]
        source: EngineError,
    },
    #[error(
        "node {node}: service {service}: the bootstrap job exited {code}; its last lines:\n{logs}"
    )]
    Bootstrap {
        node: String,
        service: String,
        code: i64,
        logs: String,
    },
    #[error("node {node}: service {service}: {what}; its last lines:\n{logs}")]
    Unhealthy {
        node: String,
        service: String,
        what: String,
        logs: String,
    },
    #[error("node {node}: {source}")]
    Lock {
        node: String,
        #[source]
        source: LockError,
    },
    #[error(
        "node {node}: service {service}: image {image} is not on the node{}\n  hint: build it (kolla build) or push it to the registry, then `kolla pull`",
        .pull_error.as_deref().map(|e| format!(" and could not be pulled: {e}")).unwrap_or_default()
    )]
    ImageMissing {
        node: String,
        service: String,
        image: String,
        pull_error: Option<String>,
    },
    #[error("node {node}: service {service}: cannot render its config: {message}")]
    Config {
        node: String,
        service: String,
        message: String,
    },
    #[error("node {node}: {source}")]
    NotOurs {
        node: String,
        #[source]
        source: Box<NotOurs>,
    },
    #[error(
        "node {node}: service {service}: {failure}\n  and swapping back failed too: {stuck}\n  hint: run `kolla recover` to bring the last good generation back"
    )]
    NeedsRecovery {
        node: String,
        service: String,
        failure: String,
        stuck: String,
    },
    /// The swap helper swapped back after this failure (its message names
    /// the node and service already).
    #[error("{message}")]
    SwappedBack {
        node: String,
        service: String,
        message: String,
    },
    /// The swap helper failed and could not swap back either (its message
    /// says so, with the way out).
    #[error("{message}")]
    HelperNeedsRecovery {
        node: String,
        service: String,
        message: String,
    },
    #[error(
        "node {node}: service {service}: {name}, left by an earlier run, is still running after {waited}s\n  hint: kolla never kills a running bootstrap job (it may be migrating a schema) or swap helper (it is finishing a swap); run `kolla recover` again once it has finished"
    )]
    JobStillRunning {
        node: String,
        service: String,
        name: String,
        waited: u64,
    },
}

impl DeployError {
    /// Whether the run left work that `kolla recover` must finish.
    pub fn needs_recovery(&self) -> bool {
        matches!(
            self,
            DeployError::NeedsRecovery { .. } | DeployError::HelperNeedsRecovery { .. }
        )
    }
}

/// Above every generation the service ever had on the node, kept ones
/// included, so names never collide.
pub fn next_generation(observed: &[ObservedContainer], service: &str) -> u64 {
    observed
        .iter()
        .filter(|c| c.service == service)
        .map(|c| match c.role {
            Role::Kept(g) => g.max(c.generation),
            _ => c.generation,
        })
        .max()
        .unwrap_or(0)
        + 1
}

/// The replaced containers kept for `service`.
pub fn kept_of(observed: &[ObservedContainer], service: &str) -> Vec<ObservedContainer> {
    observed
        .iter()
        .filter(|c| c.service == service && matches!(c.role, Role::Kept(_)))
        .cloned()
        .collect()
}

/// How `wanted` is swapped: its grace period, update order, healthcheck.
pub fn swap_options(wanted: &DesiredService) -> SwapOptions {
    SwapOptions {
        grace: wanted
            .service
            .stop_grace_period
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        start_first: wanted.service.kolla.update_order
            == crate::config::compose::UpdateOrder::StartFirst,
    }
}

/// Everything a node's deploy works with.
pub struct NodeRun<'a> {
    pub engine: &'a Engine,
    pub node: &'a str,
    pub placement_prefix: &'a str,
    pub project: &'a str,
    pub options: &'a ApplyOptions,
    /// One line per step, for the operator.
    pub say: &'a (dyn Fn(String) + Sync),
    /// Where the history log lives (None: not recorded).
    pub state_dir: Option<&'a std::path::Path>,
    /// Run swaps' critical sections in a helper container on the node.
    pub use_helper: bool,
}

/// What one applied action did.
#[derive(Debug, Clone)]
pub struct Done {
    pub service: String,
    pub kind: ActionKind,
    pub dark_window: Option<Duration>,
}

impl NodeRun<'_> {
    pub(super) fn engine_error(&self, source: EngineError) -> DeployError {
        DeployError::Engine {
            node: self.node.to_string(),
            source,
        }
    }

    pub(super) fn owned_error(&self, error: OwnedError) -> DeployError {
        match error {
            OwnedError::NotOurs(source) => DeployError::NotOurs {
                node: self.node.to_string(),
                source: Box::new(source),
            },
            OwnedError::Engine(e) => self.engine_error(e),
        }
    }

    fn lock_error(&self, error: LockError) -> DeployError {
        match error {
            LockError::NotOurs(source) => DeployError::NotOurs {
                node: self.node.to_string(),
                source,
            },
            source => DeployError::Lock {
                node: self.node.to_string(),
                source,
            },
        }
    }

    /// Take `service`'s lock, its container made from `image` (an image
    /// on the node), for `reason` (the lock says whether it took over the
    /// lock of a holder that is gone).
    pub async fn lock(
        &self,
        service: &str,
        image: &str,
        reason: &str,
        target: &str,
        from: Option<u64>,
        takeover: Takeover,
    ) -> Result<Lock, DeployError> {
        let image_volumes = self
            .engine
            .image(image)
            .await
            .map_err(|e| self.engine_error(e))?
            .map(|info| info.volumes)
            .unwrap_or_default();
        let request = LockRequest {
            prefix: self.placement_prefix,
            project: self.project,
            service,
            image,
            image_volumes: &image_volumes,
            reason,
            target,
            from,
        };
        lock::acquire(self.engine, &request, takeover)
            .await
            .map_err(|e| self.lock_error(e))
    }

    /// Release a lock this run holds; a failure is reported, since the
    /// work under it is done either way.
    pub async fn unlock(&self, lock: Lock) -> Result<(), DeployError> {
        lock::release(self.engine, lock)
            .await
            .map_err(|e| self.engine_error(e))
    }

    /// Create the container `spec` describes and upload its config; a
    /// failed upload removes it again, so a container never exists under
    /// kolla's labels without its config. Returns its id.
    pub(super) async fn create_configured(
        &self,
        spec: &ContainerSpec,
        files: &[(String, Vec<u8>)],
    ) -> Result<String, DeployError> {
        let id = self
            .engine
            .create_container(spec)
            .await
            .map_err(|e| self.engine_error(e))?;
        if let Err(e) = self.upload(&id, files).await {
            let _ = self.engine.remove_container(&id, false).await;
            return Err(e);
        }
        Ok(id)
    }

    async fn logs(&self, container: &str) -> String {
        match self
            .engine
            .logs_tail(container, self.options.log_lines)
            .await
        {
            Ok(text) if text.trim().is_empty() => "  (no output)".to_string(),
            Ok(text) => text
                .lines()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("  (logs unavailable: {e})"),
        }
    }

    /// Run the plan's levels in order; a failure stops before the next level.
    pub async fn apply(
        &self,
        plan: &Plan,
        desired: &BTreeMap<String, DesiredService>,
        observed: &[ObservedContainer],
        config_files: &BTreeMap<String, Vec<(String, Vec<u8>)>>,
    ) -> Result<Vec<Done>, Vec<DeployError>> {
        let mut done = Vec::new();
        let (mut waiting, unchanged): (Vec<&Action>, Vec<&Action>) = plan
            .levels
            .iter()
            .flatten()
            .partition(|a| a.kind.changes_something());
        let mut finished: BTreeSet<&str> = unchanged.iter().map(|a| a.service.as_str()).collect();
        let mut running = FuturesUnordered::new();
        let mut errors = Vec::new();
        loop {
            if errors.is_empty() {
                let (ready, still): (Vec<&Action>, Vec<&Action>) =
                    waiting.into_iter().partition(|a| {
                        plan::dependencies(&desired[&a.service].service)
                            .iter()
                            .all(|d| finished.contains(d.as_str()))
                    });
                waiting = still;
                for action in ready {
                    running.push(async move {
                        let result = self
                            .run_action(
                                action.kind,
                                &desired[&action.service],
                                desired,
                                observed,
                                config_files,
                            )
                            .await;
                        (action.service.as_str(), result)
                    });
                }
            }
            match running.next().await {
                Some((service, Ok(d))) => {
                    finished.insert(service);
                    done.push(d);
                }
                Some((_, Err(e))) => errors.push(e),
                None => break,
            }
        }
        // Plans are checked for cycles and missing services, so nothing is
        // left waiting unless something failed.
        debug_assert!(waiting.is_empty() || !errors.is_empty());
        if !errors.is_empty() {
            return Err(errors);
        }
        for orphan in &plan.orphans {
            if orphan.kind == ActionKind::RemoveOrphan {
                for container in observed
                    .iter()
                    .filter(|c| c.service == orphan.service && c.role != Role::Lock)
                {
                    (self.say)(format!(
                        "{}: removing {} (orphan)",
                        self.node, container.name
                    ));
                    self.engine
                        .remove_container(&container.id, false)
                        .await
                        .map_err(|e| vec![self.engine_error(e)])?;
                }
                done.push(Done {
                    service: orphan.service.clone(),
                    kind: ActionKind::RemoveOrphan,
                    dark_window: None,
                });
            }
        }
        Ok(done)
    }

    /// The spec of `service`'s container under `name`, with its labels.
    fn spec_for(&self, wanted: &DesiredService, name: String, generation: u64) -> ContainerSpec {
        let mut spec = wanted.spec.clone();
        spec.name = name;
        let placement = Placement {
            prefix: self.placement_prefix,
            project: self.project,
            node_role: wanted.node_role.as_str(),
            privileged: wanted.privileged,
        };
        spec.labels = spec::labels_for(
            &wanted.service,
            &placement,
            wanted.digest.as_deref().unwrap_or_default(),
            &wanted.config_hash,
            generation,
        );
        spec.labels
            .insert(labels::LEVEL.to_string(), wanted.level.to_string());
        spec
    }

    async fn run_action(
        &self,
        kind: ActionKind,
        wanted: &DesiredService,
        desired: &BTreeMap<String, DesiredService>,
        observed: &[ObservedContainer],
        config_files: &BTreeMap<String, Vec<(String, Vec<u8>)>>,
    ) -> Result<Done, DeployError> {
        let service = wanted.service.name.clone();
        let live_name = labels::container_name(self.placement_prefix, &service, Role::Live);
        let files = config_files
            .get(&service)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut dark_window = None;
        match kind {
            ActionKind::CreateData => {
                (self.say)(format!("{}: {service}: creating data container", self.node));
                let mut spec = self.spec_for(wanted, live_name, 1);
                self.carry_volumes(wanted, &mut spec, None).await?;
                self.engine
                    .create_container(&spec)
                    .await
                    .map_err(|e| self.engine_error(e))?;
            }
            ActionKind::Create => {
                self.create(wanted, files, desired).await?;
            }
            ActionKind::Start => {
                (self.say)(format!("{}: {service}: starting", self.node));
                self.engine
                    .start_container(&live_name)
                    .await
                    .map_err(|e| self.engine_error(e))?;
                self.gate_after_start(wanted, &live_name, desired).await?;
            }
            ActionKind::Replace => {
                dark_window = self.replace(wanted, observed, files, "deploy").await?;
            }
            ActionKind::Keep | ActionKind::RemoveOrphan => {}
        }
        Ok(Done {
            service,
            kind,
            dark_window,
        })
    }

    /// Replace `wanted`'s live container by a new one made from its desired
    /// spec, under the service's lock: bootstrap, candidate, swap. The path
    /// deploy and upgrade share. What it works from is looked at again once
    /// the lock is held, since another run may have swapped the service
    /// meanwhile; if that run already made it what `wanted` asks, nothing is
    /// done (None). Returns the dark window.
    pub async fn replace(
        &self,
        wanted: &DesiredService,
        observed: &[ObservedContainer],
        files: &[(String, Vec<u8>)],
        action: &str,
    ) -> Result<Option<Duration>, DeployError> {
        let service = wanted.service.name.clone();
        let live_of = |observed: &[ObservedContainer]| {
            observed
                .iter()
                .find(|c| c.service == service && c.role == Role::Live)
                .cloned()
                .ok_or_else(|| {
                    self.engine_error(EngineError::NotFound {
                        what: format!("the live container of {service}"),
                    })
                })
        };
        let seen = live_of(observed)?;
        let held = self
            .lock(
                &service,
                &wanted.service.image,
                action,
                &wanted.service.image,
                Some(seen.generation),
                Takeover::Never,
            )
            .await?;
        super::fault::point("locked");
        // (from, to) once known, and whether the swap itself began: what
        // the history records of this attempt.
        let mut attempt: Option<(u64, u64)> = None;
        let mut swapping = false;
        let result = async {
            let observed =
                super::node::observe_project(self.engine, self.project, self.placement_prefix)
                    .await
                    .map_err(|e| self.engine_error(e))?;
            let live = live_of(&observed)?;
            if wanted.digest.as_deref() == Some(live.digest.as_str())
                && wanted.config_hash == live.config_hash
            {
                return Ok(None);
            }
            let generation = next_generation(&observed, &service);
            attempt = Some((live.generation, generation));
            // Before the job runs: the names the swap needs are free (or
            // hold only what it may replace).
            let candidate_name =
                labels::container_name(self.placement_prefix, &service, Role::Candidate);
            let kept_name = labels::container_name(
                self.placement_prefix,
                &service,
                Role::Kept(live.generation),
            );
            owned::find(self.engine, &candidate_name, self.project, &service)
                .await
                .map_err(|e| self.owned_error(e))?;
            owned::must_be_free(self.engine, &kept_name, self.project, &service)
                .await
                .map_err(|e| self.owned_error(e))?;
            self.bootstrap(wanted, Some(&live.id)).await?;
            super::fault::point("bootstrapped");
            let mut candidate = self.spec_for(wanted, candidate_name, generation);
            self.carry_volumes(wanted, &mut candidate, Some(&live.id))
                .await?;
            let kept = kept_of(&observed, &service);
            swapping = true;
            upgrade::swap(
                self,
                &service,
                &live,
                &kept,
                candidate,
                files,
                &swap_options(wanted),
            )
            .await
            .map(Some)
        }
        .await;
        if let Some((from, to)) = attempt {
            let first_line =
                |e: &DeployError| e.to_string().lines().next().unwrap_or_default().to_string();
            self.record(&Record {
                time: now_secs(),
                node: self.node.to_string(),
                service: service.clone(),
                action: action.to_string(),
                from_generation: from,
                to_generation: to,
                image: wanted.service.image.clone(),
                digest: wanted.digest.clone().unwrap_or_default(),
                user: current_user(),
                result: match &result {
                    Ok(_) => "ok".to_string(),
                    Err(e) if e.needs_recovery() => format!("needs recovery: {}", first_line(e)),
                    Err(e) if swapping => format!("swapped back: {}", first_line(e)),
                    Err(e) => format!("failed: {}", first_line(e)),
                },
                dark_window_secs: result
                    .as_ref()
                    .ok()
                    .copied()
                    .flatten()
                    .map(|d| d.as_secs_f64()),
            });
        }
        let released = self.unlock(held).await;
        let dark = result?;
        released?;
        Ok(dark)
    }

    /// A service's first container: under its lock, the bootstrap job,
    /// then the container created under the candidate name with its config
    /// and renamed live only once complete, so a crash at any point leaves
    /// no live container without its config. Then start and gate.
    async fn create(
        &self,
        wanted: &DesiredService,
        files: &[(String, Vec<u8>)],
        desired: &BTreeMap<String, DesiredService>,
    ) -> Result<(), DeployError> {
        let service = wanted.service.name.as_str();
        let live_name = labels::container_name(self.placement_prefix, service, Role::Live);
        let held = self
            .lock(
                service,
                &wanted.service.image,
                "deploy",
                &format!("generation 1 ({})", wanted.service.image),
                None,
                Takeover::Never,
            )
            .await?;
        super::fault::point("create-locked");
        let result = async {
            owned::must_be_free(self.engine, &live_name, self.project, service)
                .await
                .map_err(|e| self.owned_error(e))?;
            self.bootstrap(wanted, None).await?;
            (self.say)(format!("{}: {service}: creating", self.node));
            let candidate_name =
                labels::container_name(self.placement_prefix, service, Role::Candidate);
            owned::remove(self.engine, &candidate_name, self.project, service)
                .await
                .map_err(|e| self.owned_error(e))?;
            let mut spec = self.spec_for(wanted, candidate_name, 1);
            self.carry_volumes(wanted, &mut spec, None).await?;
            let id = self.create_configured(&spec, files).await?;
            super::fault::point("create-configured");
            if let Err(e) = self.engine.rename_container(&id, &live_name).await {
                let _ = self.engine.remove_container(&id, false).await;
                return Err(self.engine_error(e));
            }
            super::fault::point("create-renamed");
            self.engine
                .start_container(&id)
                .await
                .map_err(|e| self.engine_error(e))
        }
        .await;
        let released = self.unlock(held).await;
        result?;
        released?;
        self.gate_after_start(wanted, &live_name, desired).await
    }

    /// Append to the history log; a log that cannot be written is reported,
    /// never a reason to fail a swap that happened.
    pub fn record(&self, record: &Record) {
        if let Some(dir) = self.state_dir
            && let Err(e) = history::append(dir, record)
        {
            (self.say)(format!(
                "warning: cannot write {}: {e}",
                history::path(dir).display()
            ));
        }
    }

    /// Upload rendered config files into a created container.
    pub(super) async fn upload(
        &self,
        container: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<(), DeployError> {
        if files.is_empty() {
            return Ok(());
        }
        let tar = config_files::tar(files).map_err(|e| DeployError::Config {
            node: self.node.to_string(),
            service: container.to_string(),
            message: e.to_string(),
        })?;
        self.engine
            .upload(container, "/", Bytes::from(tar))
            .await
            .map_err(|e| self.engine_error(e))
    }

    /// The one-shot bootstrap job, if the service has one: same image,
    /// volumes and config as the service, its own command; must exit 0.
    /// `live` is the container it will replace, if any: the job mounts the
    /// same volumes.
    pub(super) async fn bootstrap(
        &self,
        wanted: &DesiredService,
        live: Option<&str>,
    ) -> Result<(), DeployError> {
        let Some(command) = &wanted.service.kolla.bootstrap else {
            return Ok(());
        };
        let service = &wanted.service.name;
        let name = labels::container_name(self.placement_prefix, service, Role::Bootstrap);
        (self.say)(format!(
            "{}: {service}: running bootstrap job {}",
            self.node,
            command.join(" ")
        ));
        let mut spec = self.spec_for(wanted, name.clone(), 0);
        spec.command = Some(command.clone());
        spec.restart_policy = Some("no".into());
        spec.healthcheck = None;
        self.carry_volumes(wanted, &mut spec, live).await?;
        self.settle_job(service, &name).await?;
        let id = self
            .engine
            .create_container(&spec)
            .await
            .map_err(|e| self.engine_error(e))?;
        let outcome = async {
            self.upload(&id, &wanted.job_files).await?;
            self.engine
                .start_container(&id)
                .await
                .map_err(|e| self.engine_error(e))?;
            super::fault::point("bootstrap-started");
            self.engine
                .wait_for(&id, WaitGoal::Exited, self.options.health_timeout)
                .await
                .map_err(|e| self.engine_error(e))
        }
        .await;
        // Still running after the timeout: kolla never kills a job (it may
        // be migrating a schema); the next run waits for it.
        let still_running = matches!(&outcome, Ok(o) if !matches!(o, WaitOutcome::Exited(_)));
        let result = match outcome {
            Ok(WaitOutcome::Exited(0)) => Ok(()),
            Ok(WaitOutcome::Exited(code)) => Err(DeployError::Bootstrap {
                node: self.node.to_string(),
                service: service.clone(),
                code,
                logs: self.logs(&name).await,
            }),
            Ok(_) => Err(DeployError::Bootstrap {
                node: self.node.to_string(),
                service: service.clone(),
                code: -1,
                logs: format!(
                    "(still running after {}s)\n{}",
                    self.options.health_timeout.as_secs(),
                    self.logs(&name).await
                ),
            }),
            Err(e) => Err(e),
        };
        if still_running {
            return result;
        }
        self.engine
            .remove_container(&id, false)
            .await
            .map_err(|e| self.engine_error(e))?;
        result
    }

    /// Make every anonymous volume of `spec` (its compose `volumes:` without
    /// a name, and its image's `VOLUME`s) explicit, so no container kolla
    /// creates ever gets a fresh anonymous volume: the volume that `from`
    /// (the container being replaced) has at that path, or else one kolla
    /// names `<prefix><service>-<hash of the path>` and labels with the
    /// deployment and service (so `destroy --purge-data` finds it). Paths
    /// already mounted otherwise (binds, named volumes, tmpfs, the volumes
    /// of `volumes_from`) are left as they are.
    pub(super) async fn carry_volumes(
        &self,
        wanted: &DesiredService,
        spec: &mut ContainerSpec,
        from: Option<&str>,
    ) -> Result<(), DeployError> {
        let err = |e| self.engine_error(e);
        let normal = |p: &str| {
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() {
                "/".to_string()
            } else {
                trimmed.to_string()
            }
        };
        let mut covered: BTreeSet<String> = spec
            .binds
            .iter()
            .filter_map(|b| b.split(':').nth(1))
            .chain(spec.tmpfs.keys().map(String::as_str))
            .map(normal)
            .collect();
        for source in &spec.volumes_from {
            let name = source.split(':').next().unwrap_or(source);
            if let Some(data) = self.engine.inspect(name).await.map_err(err)? {
                covered.extend(data.mount_points.iter().map(|p| normal(p)));
            }
        }
        let carried: BTreeMap<String, String> = match from {
            Some(from) => self
                .engine
                .inspect(from)
                .await
                .map_err(err)?
                .map(|c| {
                    c.volumes
                        .into_iter()
                        .map(|(name, path)| (normal(&path), name))
                        .collect()
                })
                .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let paths: BTreeSet<String> = spec
            .anonymous_volumes
            .iter()
            .chain(&wanted.image_volumes)
            .map(|p| normal(p))
            .filter(|p| !covered.contains(p))
            .collect();
        let service = &wanted.service.name;
        for path in paths {
            let name = match carried.get(&path) {
                Some(name) => name.clone(),
                None => {
                    let digest = sha2::Sha256::digest(path.as_bytes());
                    let name = format!(
                        "{}{service}-{}",
                        self.placement_prefix,
                        &hex::encode(digest)[..12]
                    );
                    let labels = HashMap::from([
                        (labels::PROJECT.to_string(), self.project.to_string()),
                        (labels::SERVICE.to_string(), service.clone()),
                        (labels::VOLUME_PATH.to_string(), path.clone()),
                    ]);
                    self.engine
                        .create_volume(&name, None, labels)
                        .await
                        .map_err(err)?;
                    name
                }
            };
            spec.binds.push(format!("{name}:{path}"));
        }
        spec.anonymous_volumes.clear();
        Ok(())
    }

    /// A bootstrap job left by an earlier run (its holder is gone: callers
    /// hold the lock): wait for it to end if it still runs, never kill it,
    /// then remove it. Something not ours under that name is an error.
    pub(super) async fn settle_job(&self, service: &str, name: &str) -> Result<(), DeployError> {
        let Some(job) = owned::find(self.engine, name, self.project, service)
            .await
            .map_err(|e| self.owned_error(e))?
        else {
            return Ok(());
        };
        if job.running {
            (self.say)(format!(
                "{}: {service}: waiting for the bootstrap job {name} an earlier run left running",
                self.node
            ));
            let outcome = self
                .engine
                .wait_for(&job.id, WaitGoal::Exited, self.options.health_timeout)
                .await
                .map_err(|e| self.engine_error(e))?;
            if !matches!(outcome, WaitOutcome::Exited(_)) {
                return Err(DeployError::JobStillRunning {
                    node: self.node.to_string(),
                    service: service.to_string(),
                    name: name.to_string(),
                    waited: self.options.health_timeout.as_secs(),
                });
            }
        }
        self.engine
            .remove_container(&job.id, false)
            .await
            .map_err(|e| self.engine_error(e))
    }

    /// After a fresh start: wait for what the service's dependents (or its
    /// own healthcheck) need.
    async fn gate_after_start(
        &self,
        wanted: &DesiredService,
        container: &str,
        desired: &BTreeMap<String, DesiredService>,
    ) -> Result<(), DeployError> {
        let service = &wanted.service.name;
        let needed: Vec<Condition> = desired
            .values()
            .filter_map(|d| d.service.depends_on.get(service).copied())
            .collect();
        let has_healthcheck = wanted
            .spec
            .healthcheck
            .as_ref()
            .is_some_and(|h| h.test.first().map(String::as_str) != Some("NONE"));
        if needed.contains(&Condition::CompletedSuccessfully) {
            let outcome = self
                .engine
                .wait_for(container, WaitGoal::Exited, self.options.health_timeout)
                .await
                .map_err(|e| self.engine_error(e))?;
            return match outcome {
                WaitOutcome::Exited(0) => Ok(()),
                other => Err(self
                    .unhealthy(
                        service,
                        container,
                        format!("did not complete successfully ({other:?})"),
                    )
                    .await),
            };
        }
        if has_healthcheck || needed.contains(&Condition::Healthy) {
            self.gate(service, container).await?;
        }
        Ok(())
    }

    /// The health gate: healthy (with a healthcheck), or still running
    /// after the monitor window (without).
    pub(super) async fn gate(&self, service: &str, container: &str) -> Result<(), DeployError> {
        let started = Instant::now();
        let outcome = self
            .engine
            .wait_for(
                container,
                WaitGoal::Up {
                    window: self.options.monitor_window,
                },
                self.options.health_timeout,
            )
            .await
            .map_err(|e| self.engine_error(e))?;
        match outcome {
            WaitOutcome::Healthy | WaitOutcome::StillRunning => {
                (self.say)(format!(
                    "{}: {service}: {} after {:.1}s",
                    self.node,
                    if outcome == WaitOutcome::Healthy {
                        "healthy"
                    } else {
                        "running"
                    },
                    started.elapsed().as_secs_f64()
                ));
                Ok(())
            }
            WaitOutcome::Unhealthy => Err(self
                .unhealthy(service, container, "its healthcheck failed".into())
                .await),
            WaitOutcome::Exited(code) => Err(self
                .unhealthy(service, container, format!("exited with code {code}"))
                .await),
            WaitOutcome::TimedOut => Err(self
                .unhealthy(
                    service,
                    container,
                    format!(
                        "not healthy after {}s",
                        self.options.health_timeout.as_secs()
                    ),
                )
                .await),
        }
    }

    pub(super) async fn unhealthy(
        &self,
        service: &str,
        container: &str,
        what: String,
    ) -> DeployError {
        DeployError::Unhealthy {
            node: self.node.to_string(),
            service: service.to_string(),
            what,
            logs: self.logs(container).await,
        }
    }

    /// After a deploy: every desired, non-data service must be running (or,
    /// for one-shot services others wait on, have exited 0).
    pub async fn verify(
        &self,
        desired: &BTreeMap<String, DesiredService>,
        observed: &[ObservedContainer],
    ) -> Result<(), Vec<DeployError>> {
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
        for wanted in desired.values().filter(|d| !d.service.kolla.data) {
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
                errors.push(
                    self.unhealthy(
                        name,
                        &container.name,
                        format!("is {}, not running{hint}", container.state.as_str()),
                    )
                    .await,
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
