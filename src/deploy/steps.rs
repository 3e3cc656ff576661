//! The building blocks every change to a service is made of, on one node:
//! a container created with its config uploaded, its labels, the volumes
//! the plan gave it, the one-shot bootstrap job, the node settings a
//! host-network service needs, and the health gate. The executor and the
//! swap compose them; none of them decides what to do.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::config_files;
use super::config_files::RenderedFile;
use super::context::NodeRun;
use super::error::DeployError;
use super::fault::{self, FaultPoint};
use super::labels::{self, Role};
use super::node_prep;
use super::owned;
use super::plan::{DesiredService, Gate};
use super::spec::{self, ContainerSpec, Placement};
use super::volumes::{VolumeMount, VolumeSource};
use crate::engine::{WaitGoal, WaitOutcome};

/// The building blocks of one node's changes, over its `NodeRun`.
#[derive(Clone, Copy)]
pub struct StepRunner<'r> {
    run: &'r NodeRun<'r>,
}

impl<'r> StepRunner<'r> {
    pub fn of(run: &'r NodeRun<'r>) -> Self {
        StepRunner { run }
    }
}

impl StepRunner<'_> {
    /// Create the container `spec` describes and upload its config; a
    /// failed upload removes it again, so a container never exists under
    /// kolla's labels without its config. Returns its id.
    pub(super) async fn create_configured(
        &self,
        spec: &ContainerSpec,
        files: &[RenderedFile],
    ) -> Result<String, DeployError> {
        let id = self
            .run
            .engine
            .create_container(spec)
            .await
            .map_err(|e| self.run.engine_error(e))?;
        if let Err(e) = self.upload(&id, files).await {
            let _ = self.run.engine.remove_container(&id, false).await;
            return Err(e);
        }
        Ok(id)
    }

    async fn logs(&self, container: &str) -> String {
        match self
            .run
            .engine
            .logs_tail(container, self.run.options.log_lines)
            .await
        {
            Ok(text) => quoted(&text),
            Err(e) => format!("  (logs unavailable: {e})"),
        }
    }

    /// The spec of `service`'s container under `name`, with its labels.
    pub(super) fn spec_for(
        &self,
        wanted: &DesiredService,
        name: String,
        generation: u64,
    ) -> ContainerSpec {
        let mut spec = wanted.spec.clone();
        spec.name = name;
        let placement = Placement {
            prefix: self.run.placement_prefix,
            project: self.run.project,
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
        if let Ok(parts) = serde_json::to_string(&wanted.config_parts) {
            spec.labels.insert(labels::CONFIG_PARTS.to_string(), parts);
        }
        spec
    }

    /// Upload rendered config files into a created container.
    pub(super) async fn upload(
        &self,
        container: &str,
        files: &[RenderedFile],
    ) -> Result<(), DeployError> {
        if files.is_empty() {
            return Ok(());
        }
        let tar = config_files::tar(files).map_err(|e| DeployError::Config {
            node: self.run.node.to_string(),
            service: container.to_string(),
            message: e.to_string(),
        })?;
        self.run
            .engine
            .upload(container, "/", Bytes::from(tar))
            .await
            .map_err(|e| self.run.engine_error(e))
    }

    /// The one-shot bootstrap job, if the service has one: same image,
    /// volumes and config as the service, its own command; must exit 0.
    /// It mounts the volumes the new container will (`volumes`).
    pub(super) async fn bootstrap(
        &self,
        wanted: &DesiredService,
        volumes: &[VolumeMount],
    ) -> Result<(), DeployError> {
        let Some(command) = &wanted.service.kolla.bootstrap else {
            return Ok(());
        };
        let step = format!("running bootstrap job {}", command.join(" "));
        let end = self
            .run_job(wanted, volumes, command, &step, Job::Bootstrap)
            .await?;
        match end.code {
            Some(0) => Ok(()),
            code => Err(DeployError::Bootstrap {
                node: self.run.node.to_string(),
                service: wanted.service.name.clone(),
                code: code.unwrap_or(-1),
                logs: end.logs,
            }),
        }
    }

    /// The new image's upgrade check, if the service has one: a job like
    /// the bootstrap (same image, volumes and config), run before anything
    /// of a running service changes. A warning exit code shows the check's
    /// output and goes on; any other failure stops the swap untouched.
    pub(super) async fn upgrade_check(
        &self,
        wanted: &DesiredService,
        volumes: &[VolumeMount],
    ) -> Result<(), DeployError> {
        let Some(check) = &wanted.service.kolla.upgrade_check else {
            return Ok(());
        };
        let service = &wanted.service.name;
        let step = format!("running upgrade check {}", check.command.join(" "));
        let end = self
            .run_job(wanted, volumes, &check.command, &step, Job::UpgradeCheck)
            .await?;
        match end.code {
            Some(0) => {
                self.run
                    .steps
                    .event(self.run.node, service, "upgrade check passed");
                Ok(())
            }
            Some(code) if check.warning_exit_codes.contains(&code) => {
                let said = format!("upgrade check warns (exit {code}), going on:\n{}", end.logs);
                self.run.steps.event(self.run.node, service, &said);
                Ok(())
            }
            Some(code) => Err(DeployError::UpgradeCheck {
                node: self.run.node.to_string(),
                service: service.clone(),
                code,
                logs: end.logs,
            }),
            None => Err(DeployError::UpgradeCheckHung {
                node: self.run.node.to_string(),
                service: service.clone(),
                waited: self.run.options.health_timeout.as_secs(),
                logs: end.logs,
            }),
        }
    }

    /// The service's post-upgrade step, if it has one: a job like the
    /// bootstrap (its image, volumes and job config) that must exit 0.
    /// Ok(false) when it has none.
    pub(super) async fn post_upgrade(
        &self,
        wanted: &DesiredService,
        volumes: &[VolumeMount],
    ) -> Result<bool, DeployError> {
        let Some(command) = &wanted.service.kolla.post_upgrade else {
            return Ok(false);
        };
        let step = format!("running post-upgrade step {}", command.join(" "));
        let end = self
            .run_job(wanted, volumes, command, &step, Job::PostUpgrade)
            .await?;
        match end.code {
            Some(0) => Ok(true),
            code => Err(DeployError::PostUpgrade {
                node: self.run.node.to_string(),
                service: wanted.service.name.clone(),
                code: code.unwrap_or(-1),
                logs: end.logs,
            }),
        }
    }

    /// Run `command` as the service's one-shot job (its image, volumes and
    /// job config) to its end; the job's last lines come back unless it
    /// exited 0. A job still running after the health timeout is left
    /// running (kolla never kills a job: it may be migrating a schema; the
    /// next run waits for it) and ends as code None. `started`: the fault
    /// point the crash-safety tests freeze at once the job runs.
    async fn run_job(
        &self,
        wanted: &DesiredService,
        volumes: &[VolumeMount],
        command: &[String],
        step: &str,
        job: Job,
    ) -> Result<JobEnd, DeployError> {
        let service = &wanted.service.name;
        let name = labels::container_name(self.run.placement_prefix, service, job.role());
        self.run.steps.status(self.run.node, service, step);
        let mut spec = self.spec_for(wanted, name.clone(), 0);
        spec.command = Some(command.to_vec());
        spec.restart_policy = Some("no".into());
        spec.healthcheck = None;
        self.mount_volumes(wanted, &mut spec, volumes).await?;
        match job {
            Job::Bootstrap | Job::PostUpgrade => drop(self.settle_job(service, &name).await?),
            Job::UpgradeCheck => self.remove_check(service, &name).await?,
        }
        let id = self
            .run
            .engine
            .create_container(&spec)
            .await
            .map_err(|e| self.run.engine_error(e))?;
        let outcome = async {
            self.upload(&id, &wanted.job_files).await?;
            self.run
                .engine
                .start_container(&id)
                .await
                .map_err(|e| self.run.engine_error(e))?;
            if let Some(point) = job.started() {
                fault::point(point);
            }
            self.run
                .engine
                .wait_for(&id, WaitGoal::Exited, self.run.options.health_timeout)
                .await
                .map_err(|e| self.run.engine_error(e))
        }
        .await;
        let code = match outcome {
            Ok(WaitOutcome::Exited(code)) => Some(code),
            Ok(_) => None,
            Err(e) => {
                // The wait ended in an engine error: the job goes unless it
                // still runs (never killed; the next run waits for it), and
                // the first error is the one said.
                let _ = self.run.engine.remove_container(&id, false).await;
                return Err(e);
            }
        };
        let logs = self.job_said(service, &name, step, code).await;
        // A bootstrap job that runs on may be migrating a schema: it is
        // never killed (the next run waits for it). A check only reads.
        if code.is_some() || job == Job::UpgradeCheck {
            self.run
                .engine
                .remove_container(&id, code.is_none())
                .await
                .map_err(|e| self.run.engine_error(e))?;
        }
        Ok(JobEnd { code, logs })
    }

    /// What a job's end quotes: its last lines unless it exited 0 (then
    /// only `-v` shows them, as a detail).
    async fn job_said(&self, service: &str, name: &str, step: &str, code: Option<i64>) -> String {
        match code {
            Some(0) => {
                if self.run.steps.verbose() {
                    let said = self.logs(name).await;
                    let what = format!("{step}: exited 0; its last lines:\n{said}");
                    self.run.steps.detail(self.run.node, service, &what);
                }
                String::new()
            }
            Some(_) => self.logs(name).await,
            None => format!(
                "(still running after {}s)\n{}",
                self.run.options.health_timeout.as_secs(),
                self.logs(name).await
            ),
        }
    }

    /// Mount the volumes the plan gave `spec`'s anonymous paths
    /// (`volumes::anonymous_volumes`), creating kolla's own ones first
    /// (labelled with the deployment, service and path; an existing one is
    /// kept as it is), so no container ever gets a fresh anonymous volume.
    pub(super) async fn mount_volumes(
        &self,
        wanted: &DesiredService,
        spec: &mut ContainerSpec,
        volumes: &[VolumeMount],
    ) -> Result<(), DeployError> {
        for volume in volumes {
            if !matches!(volume.source, VolumeSource::Carried { .. }) {
                let labels = HashMap::from([
                    (labels::PROJECT.to_string(), self.run.project.to_string()),
                    (labels::SERVICE.to_string(), wanted.service.name.clone()),
                    (labels::VOLUME_PATH.to_string(), volume.path.clone()),
                ]);
                self.run
                    .engine
                    .create_volume(&volume.name, None, labels)
                    .await
                    .map_err(|e| self.run.engine_error(e))?;
            }
            spec.binds.push(format!("{}:{}", volume.name, volume.path));
        }
        spec.anonymous_volumes.clear();
        Ok(())
    }

    /// A bootstrap job left by an earlier run (its holder is gone: callers
    /// hold the lock): wait for it to end if it still runs, never kill it,
    /// then remove it. Something not ours under that name is an error.
    pub(super) async fn settle_job(&self, service: &str, name: &str) -> Result<bool, DeployError> {
        let Some(job) = owned::find(self.run.engine, name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?
        else {
            return Ok(false);
        };
        if job.running {
            let step = format!("waiting for the bootstrap job {name} an earlier run left running");
            self.run.steps.status(self.run.node, service, &step);
            let outcome = self
                .run
                .engine
                .wait_for(&job.id, WaitGoal::Exited, self.run.options.health_timeout)
                .await
                .map_err(|e| self.run.engine_error(e))?;
            if !matches!(outcome, WaitOutcome::Exited(_)) {
                return Err(DeployError::JobStillRunning {
                    node: self.run.node.to_string(),
                    service: service.to_string(),
                    name: name.to_string(),
                    waited: self.run.options.health_timeout.as_secs(),
                });
            }
        }
        self.run
            .engine
            .remove_container(&job.id, false)
            .await
            .map(|()| true)
            .map_err(|e| self.run.engine_error(e))
    }

    /// Remove an upgrade check an earlier run left (killed if it still
    /// runs: it only reads).
    pub(super) async fn remove_check(&self, service: &str, name: &str) -> Result<(), DeployError> {
        let Some(check) = owned::find(self.run.engine, name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?
        else {
            return Ok(());
        };
        self.run
            .engine
            .remove_container(&check.id, true)
            .await
            .map_err(|e| self.run.engine_error(e))
    }

    /// Prepare the node for `wanted`, before its bootstrap job or any of
    /// its containers is created: its `x-kolla.host_sysctls` and
    /// `x-kolla.host_shared_mounts`.
    pub(super) async fn prepare_node(&self, wanted: &DesiredService) -> Result<(), DeployError> {
        self.apply_host_sysctls(wanted).await?;
        self.apply_host_shared_mounts(wanted).await
    }

    /// Write the node settings `wanted` needs (`x-kolla.host_sysctls`):
    /// settings of the host's network namespace belong to the node (the
    /// engine refuses `net.*` sysctls for a host-network container).
    async fn apply_host_sysctls(&self, wanted: &DesiredService) -> Result<(), DeployError> {
        let settings = &wanted.service.kolla.host_sysctls;
        if settings.is_empty() {
            return Ok(());
        }
        let spec = node_prep::sysctl_job(&self.job_owner(wanted), settings);
        let listed = settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.run_node_job(wanted, &spec, &format!("set {listed}"))
            .await?;
        self.run.steps.event(
            self.run.node,
            &wanted.service.name,
            &format!("node settings {listed}"),
        );
        Ok(())
    }

    /// Make `wanted`'s `x-kolla.host_shared_mounts` shared mounts of the
    /// node, so that its binds with shared propagation can be created.
    async fn apply_host_shared_mounts(&self, wanted: &DesiredService) -> Result<(), DeployError> {
        let paths = &wanted.service.kolla.host_shared_mounts;
        if paths.is_empty() {
            return Ok(());
        }
        // One at a time from this run: two services of one level (the DHCP
        // and L3 agents) binding /run/netns together stacked two mounts,
        // and the engine refused the lower, private one. The script itself
        // undoes a stack another run left.
        static SHARED_MOUNTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = SHARED_MOUNTS.lock().await;
        let spec = node_prep::shared_mounts_job(&self.job_owner(wanted), paths);
        self.run_node_job(
            wanted,
            &spec,
            &format!("make {} shared mounts", paths.join(" ")),
        )
        .await
    }

    fn job_owner<'a>(&'a self, wanted: &'a DesiredService) -> node_prep::JobOwner<'a> {
        node_prep::JobOwner {
            prefix: self.run.placement_prefix,
            project: self.run.project,
            service: &wanted.service.name,
            image: wanted.digest.as_deref().unwrap_or(&wanted.service.image),
        }
    }

    /// Run a node job to its end; a failure is a `NodeSetting` error saying
    /// what `doing` was and what the job printed.
    async fn run_node_job(
        &self,
        wanted: &DesiredService,
        spec: &ContainerSpec,
        doing: &str,
    ) -> Result<(), DeployError> {
        let ran = self
            .run
            .engine
            .run_spec_to_completion(spec, self.run.options.health_timeout)
            .await
            .map_err(|e| self.run.engine_error(e))?;
        if ran.exit_code != 0 {
            return Err(DeployError::NodeSetting {
                node: self.run.node.to_string(),
                service: wanted.service.name.clone(),
                message: format!("cannot {doing}: {}", ran.output.trim()),
            });
        }
        Ok(())
    }

    /// After a fresh start: wait for what the plan's gate says.
    pub(super) async fn pass_gate(
        &self,
        gate: Gate,
        service: &str,
        container: &str,
    ) -> Result<(), DeployError> {
        match gate {
            Gate::Nothing => Ok(()),
            Gate::Up => self.gate(service, container).await,
            Gate::Completed => {
                let outcome = self
                    .run
                    .engine
                    .wait_for(container, WaitGoal::Exited, self.run.options.health_timeout)
                    .await
                    .map_err(|e| self.run.engine_error(e))?;
                match outcome {
                    WaitOutcome::Exited(0) => Ok(()),
                    other => Err(self
                        .unhealthy(
                            service,
                            container,
                            format!("did not complete successfully ({other:?})"),
                        )
                        .await),
                }
            }
        }
    }

    /// The health gate: healthy (with a healthcheck), or still running
    /// after the monitor window (without).
    pub(super) async fn gate(&self, service: &str, container: &str) -> Result<(), DeployError> {
        let limit = self.run.options.health_timeout;
        self.wait_gate(service, container, limit, None, false).await
    }

    /// The gate of a container coming back while its service is dark (an
    /// old generation swapped back): its check runs at the eager pace.
    pub(super) async fn gate_dark(
        &self,
        service: &str,
        container: &str,
    ) -> Result<(), DeployError> {
        let limit = self.run.options.health_timeout;
        self.wait_gate(service, container, limit, None, true).await
    }

    /// The gate of a stop-first swap's new container, the service dark
    /// meanwhile, with its own time limit; `budget` names the limit in the
    /// error when it is the operator's dark-window budget.
    pub(super) async fn gate_within(
        &self,
        service: &str,
        container: &str,
        limit: Duration,
        budget: Option<Duration>,
    ) -> Result<(), DeployError> {
        self.wait_gate(service, container, limit, budget, true)
            .await
    }

    async fn wait_gate(
        &self,
        service: &str,
        container: &str,
        limit: Duration,
        budget: Option<Duration>,
        dark: bool,
    ) -> Result<(), DeployError> {
        let started = Instant::now();
        self.run
            .steps
            .pending(self.run.node, service, "started, waiting for its gate");
        let outcome = self
            .run
            .engine
            .wait_for(
                container,
                WaitGoal::Up {
                    window: self.run.options.monitor_window,
                    dark,
                },
                limit,
            )
            .await
            .map_err(|e| self.run.engine_error(e))?;
        match outcome {
            WaitOutcome::Healthy | WaitOutcome::StillRunning => {
                let state = if outcome == WaitOutcome::Healthy {
                    "healthy"
                } else {
                    "running"
                };
                let step = format!("{state} after {:.1}s", started.elapsed().as_secs_f64());
                self.run.steps.status(self.run.node, service, &step);
                Ok(())
            }
            WaitOutcome::Unhealthy => Err(self
                .unhealthy(service, container, "its healthcheck failed".into())
                .await),
            WaitOutcome::Exited(code) => Err(self
                .unhealthy(service, container, format!("exited with code {code}"))
                .await),
            WaitOutcome::TimedOut => {
                let what = match budget {
                    Some(budget) => format!(
                        "not healthy within --max-dark {:.1}s of the old generation's stop",
                        budget.as_secs_f64()
                    ),
                    None => format!("not healthy after {}s", limit.as_secs()),
                };
                Err(self.unhealthy(service, container, what).await)
            }
        }
    }

    pub(super) async fn unhealthy(
        &self,
        service: &str,
        container: &str,
        what: String,
    ) -> DeployError {
        DeployError::Unhealthy {
            node: self.run.node.to_string(),
            service: service.to_string(),
            what,
            logs: self.logs(container).await,
        }
    }
}

/// Which one-shot job a service runs from its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// `x-kolla.bootstrap`: migrations and registrations; never killed.
    Bootstrap,
    /// `x-kolla.upgrade_check`: reads the live cloud; killed at its limit.
    UpgradeCheck,
    /// `x-kolla.post_upgrade`: data migrations after a whole upgrade;
    /// never killed, and in the bootstrap job's name (one of them runs).
    PostUpgrade,
}

impl Job {
    fn role(self) -> Role {
        match self {
            Job::Bootstrap | Job::PostUpgrade => Role::Bootstrap,
            Job::UpgradeCheck => Role::Check,
        }
    }

    /// Where a fault-injection build may stop once the job started.
    fn started(self) -> Option<FaultPoint> {
        match self {
            Job::Bootstrap => Some(FaultPoint::BootstrapStarted),
            Job::UpgradeCheck | Job::PostUpgrade => None,
        }
    }
}

/// How a one-shot job ended: its exit code (None: still running when the
/// wait ended) and, unless it exited 0, its last lines.
struct JobEnd {
    code: Option<i64>,
    logs: String,
}

/// A container's last lines as kolla quotes them under an error.
pub(super) fn quoted(text: &str) -> String {
    if text.trim().is_empty() {
        return "  (no output)".to_string();
    }
    text.lines()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
