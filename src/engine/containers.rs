//! Containers on an engine: list, create, start, stop, remove, rename,
//! restart policy, config upload, logs (collected, or streamed as `kolla
//! logs` shows them), inspect, and one-shot runs.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerSummary, ContainerUpdateBody};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::body::{create_body, restart_policy};
use super::deadline::{DATA_REMOVAL, STREAM_QUIET, seconds};
use super::{Engine, EngineError};

use crate::container::{ContainerSpec, Health, ListedContainer, State};

/// What a one-shot container printed and how it exited.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub exit_code: i64,
    pub output: String,
}

/// A piece of what a container printed, on its standard output or its
/// standard error (a container or command with a TTY has only the one
/// stream, its terminal's: output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Printed {
    Out(Bytes),
    Err(Bytes),
}

/// What a container printed, piece by piece, as the engine sends it; an
/// error ends it.
pub type PrintedStream = Pin<Box<dyn Stream<Item = Result<Printed, EngineError>> + Send>>;

/// Which part of a container's log `logs` streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// Keep the stream open for what the container prints next.
    pub follow: bool,
    /// Only the last this many lines (None: all of them).
    pub tail: Option<u64>,
    /// Only what was printed from this moment on (Unix seconds).
    pub since: Option<i64>,
}

/// One container, inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDetails {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    pub labels: HashMap<String, String>,
    /// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub restart_policy: String,
    pub running: bool,
    /// The volumes it mounts: (volume name, path inside the container).
    pub volumes: Vec<(String, String)>,
    /// Every path something is mounted at (volumes, binds, tmpfs).
    pub mount_points: Vec<String>,
}

impl ContainerDetails {
    /// A never-started container named `name` with `labels`, as a unit
    /// test inspects one.
    pub fn created(name: &str, labels: HashMap<String, String>) -> ContainerDetails {
        ContainerDetails {
            id: format!("{name}-id-0123456789"),
            name: name.to_string(),
            labels,
            restart_policy: "no".into(),
            running: false,
            volumes: Vec::new(),
            mount_points: Vec::new(),
        }
    }
}

impl Engine {
    /// Ids of containers (running or not) matching one engine filter, e.g.
    /// `("label", "kolla.service")` or `("ancestor", "kolla/base:zed")`.
    pub async fn container_ids(&self, key: &str, value: &str) -> Result<Vec<String>, EngineError> {
        let containers = self.containers_matching(key, value).await?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    /// The image ids of every container on the engine, running or not,
    /// whoever made it: an image one of them uses is in use.
    pub async fn image_ids_in_use(&self) -> Result<BTreeSet<String>, EngineError> {
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let containers = self
            .answer(
                "list containers",
                self.docker.list_containers(Some(options)),
            )
            .await?;
        Ok(containers.into_iter().filter_map(|c| c.image_id).collect())
    }

    /// Every container (running or not) matching one engine filter.
    async fn containers_matching(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let filters = HashMap::from([(key, vec![value])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.answer(
            "list containers",
            self.docker.list_containers(Some(options)),
        )
        .await
    }

    /// Run `cmd` in a fresh container of `image` until it exits (at most
    /// `STREAM_QUIET`), collect its output, and remove the container.
    /// `labels` mark it as kolla's.
    pub async fn run_to_completion(
        &self,
        name: &str,
        image: &str,
        cmd: &[&str],
        labels: HashMap<String, String>,
    ) -> Result<RunOutput, EngineError> {
        let spec = ContainerSpec {
            name: name.to_string(),
            image: image.to_string(),
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
            labels: labels.into_iter().collect(),
            ..Default::default()
        };
        self.run_spec_to_completion(&spec, STREAM_QUIET).await
    }

    /// Create `spec`, run it until it exits (a job still running after
    /// `limit` is an error), collect its output, and remove it (whatever
    /// happened).
    pub async fn run_spec_to_completion(
        &self,
        spec: &ContainerSpec,
        limit: Duration,
    ) -> Result<RunOutput, EngineError> {
        self.run_spec_with_files_to_completion(spec, None, limit)
            .await
    }

    /// As `run_spec_to_completion`, with `files` (a tar, unpacked at `/`)
    /// put into the container before it starts.
    pub async fn run_spec_with_files_to_completion(
        &self,
        spec: &ContainerSpec,
        files: Option<Bytes>,
        limit: Duration,
    ) -> Result<RunOutput, EngineError> {
        let name = spec.name.as_str();
        self.create_container(spec).await?;
        let result = match files {
            Some(tar) => match self.upload(name, "/", tar).await {
                Ok(()) => self.start_wait_logs(name, limit).await,
                Err(e) => Err(e),
            },
            None => self.start_wait_logs(name, limit).await,
        };
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        let what = format!("remove container {name}");
        let removed = self
            .work(&what, self.docker.remove_container(name, Some(remove)))
            .await;
        let output = result?;
        removed?;
        Ok(output)
    }

    async fn start_wait_logs(&self, name: &str, limit: Duration) -> Result<RunOutput, EngineError> {
        let what = format!("container {name}");
        self.start_container(name).await?;
        let mut exit_code = 0;
        let mut wait = self.docker.wait_container(name, None);
        // The wait says one thing, when the job exits: its limit is the
        // job's, not the engine's.
        loop {
            let next = tokio::time::timeout(limit, wait.next()).await;
            let item = match next {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    return Err(EngineError::StreamFailed {
                        what,
                        message: format!("still running after {}", seconds(limit)),
                    });
                }
            };
            match item {
                Ok(response) => exit_code = response.status_code,
                Err(BollardError::DockerContainerWaitError { code, .. }) => exit_code = code,
                Err(e) => return Err(EngineError::from_api(&what, e)),
            }
        }
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let output = self.read_logs(name, options).await?;
        Ok(RunOutput { exit_code, output })
    }

    /// A container's logs as `options` ask, collected; the engine may go
    /// `STREAM_QUIET` between two pieces.
    async fn read_logs(
        &self,
        name: &str,
        options: bollard::query_parameters::LogsOptions,
    ) -> Result<String, EngineError> {
        let what = format!("logs of {name}");
        let mut logs = self.docker.logs(name, Some(options));
        let mut output = String::new();
        while let Some(item) = self.next_within(&what, STREAM_QUIET, &mut logs).await? {
            let chunk = item.map_err(|e| EngineError::from_api(&what, e))?;
            output.push_str(&chunk.to_string());
        }
        Ok(output)
    }

    /// The log of container `name` as `request` asks, streamed. A log read
    /// to its end may go `STREAM_QUIET` between two pieces; a followed one
    /// as long as the container stays quiet (the operator ends it).
    pub fn logs(&self, name: &str, request: LogRequest) -> PrintedStream {
        let tail = request
            .tail
            .map_or_else(|| "all".to_string(), |n| n.to_string());
        let mut options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(request.follow)
            .tail(&tail);
        if let Some(since) = request.since {
            // The engine takes an i32: a start past 2038 is as good as
            // the last second it can hold (nothing was printed after it).
            options = options.since(i32::try_from(since.max(0)).unwrap_or(i32::MAX));
        }
        let inner = Box::pin(self.docker.logs(name, Some(options.build())));
        let quiet = (!request.follow).then_some(STREAM_QUIET);
        printed_stream(self.clone(), format!("logs of {name}"), quiet, inner)
    }

    /// Every container (running or not) carrying `label` (`key=value`):
    /// one call, however many containers there are.
    pub async fn list_containers(&self, label: &str) -> Result<Vec<ListedContainer>, EngineError> {
        let containers = self.containers_matching("label", label).await?;
        Ok(containers.into_iter().map(listed).collect())
    }

    /// Create (not start) the container `spec` describes; returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let what = format!("create container {}", spec.name);
        let request = self
            .docker
            .create_container(Some(options), create_body(spec));
        Ok(self.work(&what, request).await?.id)
    }

    pub async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        let what = format!("start container {name}");
        self.work(&what, self.docker.start_container(name, None))
            .await
    }

    /// Stop gracefully, killing after `grace` (the container's own stop
    /// timeout when None). Stopping a stopped container is not an error.
    pub async fn stop_container(&self, name: &str, grace: Option<i64>) -> Result<(), EngineError> {
        let mut options = StopContainerOptionsBuilder::default();
        // The engine answers once the container is down, so the deadline
        // is its grace period and then some.
        let waits = match grace {
            Some(secs) => {
                options = options.t(i32::try_from(secs).unwrap_or(i32::MAX));
                Some(secs)
            }
            None => self.stop_timeout_of(name).await?,
        };
        let what = format!("stop container {name}");
        let limit = self.deadlines.stop(waits);
        let request = self.docker.stop_container(name, Some(options.build()));
        match self.within(&what, limit, request).await? {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::from_api(what, e)),
        }
    }

    /// The grace period a container was created with (None: the engine's).
    async fn stop_timeout_of(&self, name: &str) -> Result<Option<i64>, EngineError> {
        let what = format!("inspect container {name}");
        let inspect = self
            .answer(&what, self.docker.inspect_container(name, None))
            .await?;
        Ok(inspect.config.and_then(|c| c.stop_timeout))
    }

    /// Remove a container (force: even if running). Its anonymous volumes
    /// go too only with `volumes`. A missing container is not an error.
    pub async fn remove_container(&self, name: &str, volumes: bool) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(volumes)
            .build();
        let what = format!("remove container {name}");
        // With its volumes, their files go before the engine answers.
        let limit = match volumes {
            true => DATA_REMOVAL.max(self.deadlines.work()),
            false => self.deadlines.work(),
        };
        let request = self.docker.remove_container(name, Some(options));
        match self.within(&what, limit, request).await? {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_api(what, e) {
                EngineError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }

    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        let what = format!("rename container {name} to {new_name}");
        self.work(&what, self.docker.rename_container(name, options))
            .await
    }

    /// Set `name`'s restart policy. A container whose process has just
    /// exited, before the engine has noted it, makes the engine refuse
    /// ("cannot update a stopped container"); the engine notes the exit
    /// within moments, and a stopped container's policy can be set, so the
    /// update is asked again for up to `EXITING_SETTLES`.
    pub async fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), EngineError> {
        const EXITING_SETTLES: Duration = Duration::from_secs(10);
        let what = format!("update container {name}");
        let since = std::time::Instant::now();
        loop {
            let body = ContainerUpdateBody {
                restart_policy: Some(restart_policy(policy)),
                ..Default::default()
            };
            match self
                .work(&what, self.docker.update_container(name, body))
                .await
            {
                Err(e) if exiting_under_the_engine(&e) && since.elapsed() < EXITING_SETTLES => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                result => return result,
            }
        }
    }

    /// Unpack `tar` into folder `dest` of a (created or running) container.
    /// The engine answers once it has the whole body: its deadline grows
    /// with the size (a second per `UPLOAD_RATE` bytes on top of work).
    pub async fn upload(&self, name: &str, dest: &str, tar: Bytes) -> Result<(), EngineError> {
        const UPLOAD_RATE: u64 = 10 << 20;
        let options = UploadToContainerOptionsBuilder::default()
            .path(dest)
            .build();
        let what = format!("upload config into {name}:{dest}");
        let limit = self
            .deadlines
            .work()
            .saturating_add(Duration::from_secs(tar.len() as u64 / UPLOAD_RATE));
        let request = self
            .docker
            .upload_to_container(name, Some(options), bollard::body_full(tar));
        self.within(&what, limit, request)
            .await?
            .map_err(|e| EngineError::from_api(what, e))
    }

    /// The last `lines` lines a container printed (stdout and stderr).
    pub async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, EngineError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        self.read_logs(name, options).await
    }

    /// One container as the engine sees it now (by name or id), or None if
    /// it is gone.
    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerDetails>, EngineError> {
        let what = format!("inspect container {name}");
        match self
            .within(
                &what,
                self.deadlines.answer,
                self.docker.inspect_container(name, None),
            )
            .await?
        {
            Ok(inspect) => {
                let labels = inspect
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default();
                let restart_policy = inspect
                    .host_config
                    .and_then(|h| h.restart_policy)
                    .map(|p| {
                        let name = p
                            .name
                            .map(|n| n.to_string())
                            .filter(|n| !n.is_empty())
                            .unwrap_or_else(|| "no".into());
                        match p.maximum_retry_count {
                            Some(n) if n > 0 && name == "on-failure" => format!("{name}:{n}"),
                            _ => name,
                        }
                    })
                    .unwrap_or_else(|| "no".into());
                let state = inspect.state.unwrap_or_default();
                let mounts = inspect.mounts.unwrap_or_default();
                let volumes = mounts
                    .iter()
                    .filter(|m| m.typ.as_deref() == Some("volume"))
                    .filter_map(|m| Some((m.name.clone()?, m.destination.clone()?)))
                    .collect();
                let mount_points = mounts
                    .iter()
                    .filter_map(|m| m.destination.clone())
                    .collect();
                Ok(Some(ContainerDetails {
                    volumes,
                    mount_points,
                    id: inspect.id.unwrap_or_default(),
                    name: inspect
                        .name
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    labels,
                    restart_policy,
                    running: state.running.unwrap_or(false),
                }))
            }
            Err(e) => match EngineError::from_api(format!("container {name}"), e) {
                EngineError::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }
}

/// A list call's summary in kolla's terms. Engines before API 1.52 give
/// health and exit code only in the status text (`Up 3s (healthy)`,
/// `Exited (0) 5 seconds ago`), so they are read from it here, once.
fn listed(c: ContainerSummary) -> ListedContainer {
    let status = c.status.unwrap_or_default();
    let mounts = c.mounts.unwrap_or_default();
    ListedContainer {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: c.labels.unwrap_or_default(),
        state: State::parse(&c.state.map(|s| s.to_string()).unwrap_or_default()),
        health: health_in_status(&status),
        exit_code: exit_code_in_status(&status),
        image: c.image.unwrap_or_default(),
        volumes: mounts
            .iter()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .filter_map(|m| Some((m.name.clone()?, m.destination.clone()?)))
            .collect(),
        mount_points: mounts
            .iter()
            .filter_map(|m| m.destination.clone())
            .collect(),
    }
}

/// `inner` (pieces of output as bollard gives them) as kolla's stream:
/// pieces as `Printed`, errors mapped once and ending it, and each piece
/// within `quiet` of the one before when there is a limit.
pub(super) fn printed_stream<S>(
    engine: Engine,
    what: String,
    quiet: Option<Duration>,
    inner: S,
) -> PrintedStream
where
    S: Stream<Item = Result<bollard::container::LogOutput, BollardError>> + Send + Unpin + 'static,
{
    let state = Some((inner, engine, what));
    Box::pin(futures_util::stream::unfold(
        state,
        move |state| async move {
            let (mut inner, engine, what) = state?;
            let next = match quiet {
                Some(quiet) => engine.next_within(&what, quiet, &mut inner).await,
                None => Ok(inner.next().await),
            };
            match next {
                Err(missed) => Some((Err(missed), None)),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(EngineError::from_api(&what, e)), None)),
                Ok(Some(Ok(piece))) => Some((Ok(printed(piece)), Some((inner, engine, what)))),
            }
        },
    ))
}

fn printed(piece: bollard::container::LogOutput) -> Printed {
    use bollard::container::LogOutput;
    match piece {
        LogOutput::StdErr { message } => Printed::Err(message),
        // A TTY's output (`Console`), and the input echoed back, which
        // kolla never asks for, read as output. (The engine's refusal to
        // start an exec's command comes framed as output too, as the
        // docker CLI shows it.)
        LogOutput::StdOut { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => Printed::Out(message),
    }
}

fn health_in_status(status: &str) -> Option<Health> {
    if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

fn exit_code_in_status(status: &str) -> Option<i64> {
    status
        .strip_prefix("Exited (")
        .and_then(|rest| rest.split(')').next())
        .and_then(|code| code.parse().ok())
}

/// The engine's refusal to update a container whose process exited before
/// the engine noted it (its own state still says running).
fn exiting_under_the_engine(error: &EngineError) -> bool {
    error
        .to_string()
        .to_ascii_lowercase()
        .contains("cannot update a stopped container")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_the_engine_has_not_noted_is_told_from_other_refusals() {
        // As the engine answers (Docker 20.10), through kolla's own error.
        let refused = |status_code: u16, message: &str| {
            EngineError::from_api(
                "update container x".to_string(),
                BollardError::DockerResponseServerError {
                    status_code,
                    message: message.into(),
                },
            )
        };
        assert!(exiting_under_the_engine(&refused(
            500,
            "Cannot update container 1f: cannot update a stopped container: unknown"
        )));
        assert!(!exiting_under_the_engine(&refused(
            500,
            "Cannot update container 1f: invalid restart policy"
        )));
        assert!(!exiting_under_the_engine(&refused(
            404,
            "No such container: x"
        )));
    }

    #[test]
    fn the_status_text_gives_health_and_exit_code() {
        assert_eq!(
            health_in_status("Up 3 seconds (healthy)"),
            Some(Health::Healthy)
        );
        assert_eq!(
            health_in_status("Up 3 seconds (unhealthy)"),
            Some(Health::Unhealthy)
        );
        assert_eq!(
            health_in_status("Up 1 second (health: starting)"),
            Some(Health::Starting)
        );
        assert_eq!(health_in_status("Up 2 hours"), None);
        assert_eq!(exit_code_in_status("Exited (137) 5 seconds ago"), Some(137));
        assert_eq!(exit_code_in_status("Up 5 seconds"), None);
        let summary = ContainerSummary {
            id: Some("abc".into()),
            names: Some(vec!["/web".into()]),
            state: Some(bollard::models::ContainerSummaryStateEnum::EXITED),
            status: Some("Exited (0) 1 minute ago".into()),
            mounts: Some(vec![bollard::models::MountPoint {
                name: Some("kolla_web-1".into()),
                destination: Some("/data".into()),
                typ: Some("volume".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let got = listed(summary);
        assert_eq!(got.name, "web");
        assert_eq!(got.state, State::Exited);
        assert_eq!(got.exit_code, Some(0));
        assert_eq!(
            got.volumes,
            vec![("kolla_web-1".to_string(), "/data".to_string())]
        );
    }
}
