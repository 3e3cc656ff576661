//! The one place that talks to a Docker engine (through bollard). Everything
//! else in kolla speaks in plain types: `ImageInfo`, `BuildRequest`, `RunOutput`.
//!
//! Engine errors are mapped once, here, into `EngineError`, so callers can
//! tell "not found" from "conflict" from "unreachable" without matching
//! message text.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerUpdateBody, HealthConfig, HostConfig,
    PortBinding as ApiPortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    LogsOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RemoveVolumeOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::container::{ContainerSpec, is_loopback_url};

/// Seconds before a request without an answer is abandoned. Only response
/// headers are covered (bollard does not time stream bodies), so this must
/// stay above the longest graceful stop the engine may take to answer.
const REQUEST_TIMEOUT_SECS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine at {endpoint}: {source}\n  hint: is dockerd running, and is DOCKER_HOST (or the node's `docker` endpoint) right?"
    )]
    Unreachable {
        endpoint: String,
        #[source]
        source: BollardError,
    },
    #[error(
        "refusing plain {endpoint}: only a loopback engine may be reached without TLS\n  hint: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem)"
    )]
    Insecure { endpoint: String },
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{what}: conflict: {message}")]
    Conflict { what: String, message: String },
    #[error("{message}")]
    BuildFailed { message: String },
    #[error("{what}: {message}")]
    StreamFailed { what: String, message: String },
    /// The engine stopped answering in the middle of a request.
    #[error(
        "{what}: the Docker engine stopped answering ({source})\n  hint: once it answers again, `kolla recover` settles whatever this run left half done"
    )]
    Lost {
        what: String,
        #[source]
        source: BollardError,
    },
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: BollardError,
    },
}

impl EngineError {
    fn from_api(what: impl Into<String>, source: BollardError) -> EngineError {
        let what = what.into();
        match source {
            BollardError::DockerResponseServerError {
                status_code: 404, ..
            } => EngineError::NotFound { what },
            BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            } => EngineError::Conflict { what, message },
            BollardError::DockerStreamError { error } => EngineError::StreamFailed {
                what,
                message: error,
            },
            source @ (BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_)) => EngineError::Lost { what, source },
            source => EngineError::Api { what, source },
        }
    }
}

/// Client certificate files for a TLS endpoint; the CA verifies the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where an engine listens: `unix:///path`, or `tcp://host:port` (with TLS
/// unless the host is loopback).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub url: String,
    pub tls: Option<TlsFiles>,
}

impl Endpoint {
    /// The endpoint the docker CLI would use: DOCKER_HOST (default the
    /// local socket), with TLS when DOCKER_TLS_VERIFY is set, from the
    /// certificates in DOCKER_CERT_PATH (default ~/.docker).
    pub fn from_env() -> Endpoint {
        let url = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
        let tls = verify.then(|| {
            let dir = std::env::var_os("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
                .unwrap_or_else(|| PathBuf::from(".docker"));
            TlsFiles {
                ca: dir.join("ca.pem"),
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
            }
        });
        Endpoint { url, tls }
    }
}

/// What kolla needs to know about an image on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub repo_digests: Vec<String>,
    /// The paths its `VOLUME` instructions declare.
    pub volumes: Vec<String>,
}

/// One image build: the tar of the context (with `Dockerfile` at its root)
/// and the tag to give the result.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub tag: String,
    pub context_tar: Bytes,
    /// Build every step afresh instead of reusing the builder's cache.
    pub no_cache: bool,
}

/// What a one-shot container printed and how it exited.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub exit_code: i64,
    pub output: String,
}

/// A connection to one Docker engine. Cheap to clone: clones share the
/// underlying HTTP connection pool.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
}

impl Engine {
    /// Connect to `endpoint`, agree on an API version and check the engine
    /// answers, so an unreachable engine is one clear error up front.
    pub async fn connect(endpoint: &Endpoint) -> Result<Engine, EngineError> {
        let url = endpoint.url.clone();
        let unreachable = |source| EngineError::Unreachable {
            endpoint: url.clone(),
            source,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = url.strip_prefix("unix://") {
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, version)
        } else if let Some(tls) = &endpoint.tls {
            Docker::connect_with_ssl(
                &url,
                &tls.key,
                &tls.cert,
                &tls.ca,
                REQUEST_TIMEOUT_SECS,
                version,
            )
        } else if url.starts_with("tcp://") || url.starts_with("http://") {
            if !is_loopback_url(&url) {
                return Err(EngineError::Insecure { endpoint: url });
            }
            Docker::connect_with_http(&url, REQUEST_TIMEOUT_SECS, version)
        } else {
            Docker::connect_with_unix(&url, REQUEST_TIMEOUT_SECS, version)
        }
        .map_err(unreachable)?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable(BollardError::RequestTimeoutError))?
            .map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        let endpoint = url;
        Ok(Engine { docker, endpoint })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The image `reference` (name:tag, name@digest or id), or None.
    pub async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(inspect) => Ok(Some(ImageInfo {
                id: inspect.id.unwrap_or_default(),
                labels: inspect
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default(),
                volumes: inspect.config.and_then(|c| c.volumes).unwrap_or_default(),
                repo_digests: inspect.repo_digests.unwrap_or_default(),
            })),
            Err(e) => match EngineError::from_api(format!("image {reference}"), e) {
                EngineError::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Build an image with the engine's builder. Each line the builder
    /// prints goes to `on_line`; the first error the builder reports fails
    /// the build. Returns the new image's id.
    pub async fn build(
        &self,
        request: BuildRequest,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, EngineError> {
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&request.tag)
            .nocache(request.no_cache)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(request.context_tar)));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(EngineError::BuildFailed {
                            message: detail.message.unwrap_or_else(|| "build failed".into()),
                        });
                    }
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            on_line(line);
                        }
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(EngineError::BuildFailed { message: error });
                }
                Err(e) => return Err(EngineError::from_api(format!("build {}", request.tag), e)),
            }
        }
        match self.image(&request.tag).await? {
            Some(info) => Ok(info.id),
            None => Err(EngineError::BuildFailed {
                message: format!("the builder finished but {} does not exist", request.tag),
            }),
        }
    }

    /// Push `reference` (which must name its registry) and return the
    /// manifest digest the registry reported.
    pub async fn push(
        &self,
        reference: &str,
        mut on_line: impl FnMut(&str),
    ) -> Result<Option<String>, EngineError> {
        let (name, tag) = split_tag(reference);
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = self.docker.push_image(name, Some(options), None);
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::from_api(format!("push {reference}"), e))?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::StreamFailed {
                    what: format!("push {reference}"),
                    message: detail.message.unwrap_or_else(|| "push failed".into()),
                });
            }
            if let Some(status) = info.status.as_deref() {
                if let Some(found) = status
                    .split_whitespace()
                    .find(|w| w.starts_with("sha256:"))
                    .filter(|_| status.contains("digest:"))
                {
                    digest = Some(found.to_string());
                }
                on_line(status);
            }
        }
        Ok(digest)
    }

    /// Pull `reference` (name:tag or name@digest).
    pub async fn pull(&self, reference: &str) -> Result<(), EngineError> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::from_api(format!("pull {reference}"), e))?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::StreamFailed {
                    what: format!("pull {reference}"),
                    message: detail.message.unwrap_or_else(|| "pull failed".into()),
                });
            }
        }
        Ok(())
    }

    /// Remove an image reference (untags; deletes the image once no tag or
    /// container holds it). A missing image is not an error. Without
    /// `force`, an image still tagged elsewhere or used by a container is a
    /// `Conflict` and stays.
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<(), EngineError> {
        let options = RemoveImageOptionsBuilder::default().force(force).build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match EngineError::from_api(format!("image {reference}"), e) {
                EngineError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Tags (`name:tag`) of every image whose reference matches `pattern`
    /// (Docker's `reference` filter, e.g. `kolla/*`).
    pub async fn image_tags_matching(&self, pattern: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("reference", vec![pattern])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| EngineError::from_api("list images", e))?;
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .collect())
    }

    /// Ids of containers (running or not) matching one engine filter, e.g.
    /// `("label", "kolla.service")` or `("ancestor", "kolla/base:zed")`.
    pub async fn container_ids(&self, key: &str, value: &str) -> Result<Vec<String>, EngineError> {
        let containers = self.containers_matching(key, value).await?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
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
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| EngineError::from_api("list containers", e))
    }

    /// Run `cmd` in a fresh container of `image` until it exits, collect its
    /// output, and remove the container. `labels` mark it as kolla's.
    pub async fn run_to_completion(
        &self,
        name: &str,
        image: &str,
        cmd: &[&str],
        labels: HashMap<String, String>,
    ) -> Result<RunOutput, EngineError> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            labels: Some(labels),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let what = format!("container {name}");
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| EngineError::from_api(&what, e))?;
        let result = self.start_wait_logs(name).await;
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        let removed = self.docker.remove_container(name, Some(remove)).await;
        let output = result?;
        removed.map_err(|e| EngineError::from_api(&what, e))?;
        Ok(output)
    }

    async fn start_wait_logs(&self, name: &str) -> Result<RunOutput, EngineError> {
        let what = format!("container {name}");
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| EngineError::from_api(&what, e))?;
        let mut exit_code = 0;
        let mut wait = self.docker.wait_container(name, None);
        while let Some(item) = wait.next().await {
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
        let mut logs = self.docker.logs(name, Some(options));
        let mut output = String::new();
        while let Some(item) = logs.next().await {
            let chunk = item.map_err(|e| EngineError::from_api(&what, e))?;
            output.push_str(&chunk.to_string());
        }
        Ok(RunOutput { exit_code, output })
    }
}

/// A container as one list call shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerListing {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    pub labels: HashMap<String, String>,
    /// `created`, `running`, `exited`, ...
    pub state: String,
    /// The engine's status text, which carries the health: `Up 3s (healthy)`.
    pub status: String,
    pub image: String,
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

/// What a wait for a container ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    Healthy,
    /// Running, and still running when the window closed (no healthcheck).
    StillRunning,
    Unhealthy,
    /// Exited with this code.
    Exited(i64),
    TimedOut,
}

/// What to wait for after a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitGoal {
    /// Healthy (if the container has a healthcheck) or still running once
    /// `window` has passed (if not).
    Up { window: Duration },
    /// Exited (for one-shot jobs).
    Exited,
}

/// The engine's create request for `spec`. Pure, so the mapping is tested
/// without an engine.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let restart_policy = spec.restart_policy.as_deref().map(restart_policy);
    let port_bindings = (!spec.ports.is_empty()).then(|| {
        let mut map: HashMap<String, Option<Vec<ApiPortBinding>>> = HashMap::new();
        for port in &spec.ports {
            map.entry(format!("{}/{}", port.container_port, port.protocol))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(ApiPortBinding {
                    host_ip: port.host_ip.clone(),
                    host_port: port.host_port.map(|p| p.to_string()),
                });
        }
        map
    });
    let exposed: Vec<String> = spec
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.container_port, p.protocol))
        .collect();
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: non_empty(&spec.env),
        user: spec.user.clone(),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        volumes: non_empty(&spec.anonymous_volumes),
        exposed_ports: non_empty(&exposed),
        stop_timeout: spec.stop_timeout_secs,
        stop_signal: spec.stop_signal.clone(),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval_ns,
            timeout: h.timeout_ns,
            retries: h.retries,
            start_period: h.start_period_ns,
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            binds: non_empty(&spec.binds),
            volumes_from: non_empty(&spec.volumes_from),
            network_mode: spec.network_mode.clone(),
            pid_mode: spec.pid_mode.clone(),
            ipc_mode: spec.ipc_mode.clone(),
            privileged: Some(spec.privileged),
            cap_add: non_empty(&spec.cap_add),
            cap_drop: non_empty(&spec.cap_drop),
            security_opt: non_empty(&spec.security_opt),
            device_cgroup_rules: non_empty(&spec.device_cgroup_rules),
            restart_policy,
            init: spec.init,
            ulimits: (!spec.ulimits.is_empty()).then(|| {
                spec.ulimits
                    .iter()
                    .map(|(name, soft, hard)| ResourcesUlimits {
                        name: Some(name.clone()),
                        soft: Some(*soft),
                        hard: Some(*hard),
                    })
                    .collect()
            }),
            tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone().into_iter().collect()),
            extra_hosts: non_empty(&spec.extra_hosts),
            sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.clone().into_iter().collect()),
            port_bindings,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]` as the engine's type.
fn restart_policy(policy: &str) -> RestartPolicy {
    let (name, retries) = match policy.split_once(':') {
        Some((name, n)) => (name, n.parse().ok()),
        None => (policy, None),
    };
    let name = match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::NO,
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

impl Engine {
    /// Every container (running or not) carrying `label` (`key=value`):
    /// one call, however many containers there are.
    pub async fn list_containers(&self, label: &str) -> Result<Vec<ContainerListing>, EngineError> {
        let containers = self.containers_matching("label", label).await?;
        Ok(containers
            .into_iter()
            .map(|c| ContainerListing {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: c.labels.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                image: c.image.unwrap_or_default(),
            })
            .collect())
    }

    /// Create (not start) the container `spec` describes; returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let response = self
            .docker
            .create_container(Some(options), create_body(spec))
            .await
            .map_err(|e| EngineError::from_api(format!("create container {}", spec.name), e))?;
        Ok(response.id)
    }

    pub async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| EngineError::from_api(format!("start container {name}"), e))
    }

    /// Stop gracefully, killing after `grace` (the engine's default when
    /// None). Stopping a stopped container is not an error.
    pub async fn stop_container(&self, name: &str, grace: Option<i64>) -> Result<(), EngineError> {
        let mut options = StopContainerOptionsBuilder::default();
        if let Some(secs) = grace {
            options = options.t(i32::try_from(secs).unwrap_or(i32::MAX));
        }
        match self
            .docker
            .stop_container(name, Some(options.build()))
            .await
        {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::from_api(format!("stop container {name}"), e)),
        }
    }

    /// Remove a container (force: even if running). Its anonymous volumes
    /// go too only with `volumes`. A missing container is not an error.
    pub async fn remove_container(&self, name: &str, volumes: bool) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(volumes)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_api(format!("remove container {name}"), e) {
                EngineError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }

    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        self.docker
            .rename_container(name, options)
            .await
            .map_err(|e| EngineError::from_api(format!("rename container {name} to {new_name}"), e))
    }

    pub async fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), EngineError> {
        let body = ContainerUpdateBody {
            restart_policy: Some(restart_policy(policy)),
            ..Default::default()
        };
        self.docker
            .update_container(name, body)
            .await
            .map_err(|e| EngineError::from_api(format!("update container {name}"), e))
    }

    /// Unpack `tar` into folder `dest` of a (created or running) container.
    pub async fn upload(&self, name: &str, dest: &str, tar: Bytes) -> Result<(), EngineError> {
        let options = UploadToContainerOptionsBuilder::default()
            .path(dest)
            .build();
        self.docker
            .upload_to_container(name, Some(options), bollard::body_full(tar))
            .await
            .map_err(|e| EngineError::from_api(format!("upload config into {name}:{dest}"), e))
    }

    /// The last `lines` lines a container printed (stdout and stderr).
    pub async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, EngineError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut logs = self.docker.logs(name, Some(options));
        let mut output = String::new();
        while let Some(item) = logs.next().await {
            let chunk = item.map_err(|e| EngineError::from_api(format!("logs of {name}"), e))?;
            output.push_str(&chunk.to_string());
        }
        Ok(output)
    }

    /// Every line a container prints (stdout and stderr), as it prints it,
    /// until it exits; `on_line` gets each with whether it came on stdout.
    pub async fn follow_logs(
        &self,
        name: &str,
        mut on_line: impl FnMut(&str, bool),
    ) -> Result<(), EngineError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .build();
        let mut logs = self.docker.logs(name, Some(options));
        let mut pending = [String::new(), String::new()];
        while let Some(item) = logs.next().await {
            let chunk = item.map_err(|e| EngineError::from_api(format!("logs of {name}"), e))?;
            let stdout = matches!(chunk, bollard::container::LogOutput::StdOut { .. });
            let buffer = &mut pending[usize::from(stdout)];
            buffer.push_str(&chunk.to_string());
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                on_line(line.trim_end_matches('\n'), stdout);
            }
        }
        for (i, rest) in pending.iter().enumerate() {
            if !rest.is_empty() {
                on_line(rest, i == 1);
            }
        }
        Ok(())
    }

    /// State, health and exit code of one container.
    async fn container_status(
        &self,
        name: &str,
    ) -> Result<(String, Option<String>, i64, bool), EngineError> {
        let inspect = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(|e| EngineError::from_api(format!("container {name}"), e))?;
        let has_healthcheck = inspect
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| t.first().map(String::as_str) != Some("NONE"));
        let state = inspect.state.unwrap_or_default();
        Ok((
            state.status.map(|s| s.to_string()).unwrap_or_default(),
            state.health.and_then(|h| h.status).map(|s| s.to_string()),
            state.exit_code.unwrap_or(0),
            has_healthcheck,
        ))
    }

    /// Wait for a started container to reach `goal`, following the
    /// engine's event stream (health_status, die) rather than polling; give
    /// up after `timeout`.
    pub async fn wait_for(
        &self,
        name: &str,
        goal: WaitGoal,
        timeout: Duration,
    ) -> Result<WaitOutcome, EngineError> {
        let filters = HashMap::from([("container", vec![name]), ("type", vec!["container"])]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        // Subscribe first, then look: nothing can happen unseen between.
        let mut events = self.docker.events(Some(options));
        let deadline = tokio::time::Instant::now() + timeout;
        let (state, health, exit_code, has_healthcheck) = self.container_status(name).await?;
        let up_window = match goal {
            WaitGoal::Up { window } => Some(window),
            WaitGoal::Exited => None,
        };
        // A container the engine is restarting has already exited once: a
        // crash loop is a failure, whatever its healthcheck says.
        if state == "exited" || state == "dead" || state == "restarting" {
            return Ok(WaitOutcome::Exited(exit_code));
        }
        if up_window.is_some() && has_healthcheck {
            match health.as_deref() {
                Some("healthy") => return Ok(WaitOutcome::Healthy),
                Some("unhealthy") => return Ok(WaitOutcome::Unhealthy),
                _ => {}
            }
        }
        // Without a healthcheck "up" means still running when the window
        // closes; with one, the window does not apply.
        let window_end = match up_window {
            Some(window) if !has_healthcheck => Some(tokio::time::Instant::now() + window),
            _ => None,
        };
        loop {
            let until = window_end.map_or(deadline, |w| w.min(deadline));
            let next = tokio::time::timeout_at(until, events.next()).await;
            let event = match next {
                Err(_) if window_end.is_some_and(|w| w <= deadline) => {
                    let (state, _, exit_code, _) = self.container_status(name).await?;
                    return Ok(if state == "running" {
                        WaitOutcome::StillRunning
                    } else {
                        WaitOutcome::Exited(exit_code)
                    });
                }
                Err(_) => return Ok(WaitOutcome::TimedOut),
                Ok(None) => return Ok(WaitOutcome::TimedOut),
                Ok(Some(Err(e))) => {
                    return Err(EngineError::from_api(format!("events of {name}"), e));
                }
                Ok(Some(Ok(event))) => event,
            };
            let action = event.action.unwrap_or_default();
            if action == "die" {
                let code = event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|a| a.get("exitCode").and_then(|c| c.parse().ok()))
                    .unwrap_or(-1);
                return Ok(WaitOutcome::Exited(code));
            }
            if up_window.is_some() && has_healthcheck {
                match action.as_str() {
                    "health_status: healthy" => return Ok(WaitOutcome::Healthy),
                    "health_status: unhealthy" => return Ok(WaitOutcome::Unhealthy),
                    _ => {}
                }
            }
        }
    }

    /// One container as the engine sees it now (by name or id), or None if
    /// it is gone.
    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerDetails>, EngineError> {
        match self.docker.inspect_container(name, None).await {
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

    /// Create a named volume (labelled); an existing one is kept as is.
    pub async fn create_volume(
        &self,
        name: &str,
        driver: Option<&str>,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: driver.map(str::to_string),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| EngineError::from_api(format!("create volume {name}"), e))
    }

    /// Whether a volume named `name` exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) => match EngineError::from_api(format!("volume {name}"), e) {
                EngineError::NotFound { .. } => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Names of the volumes carrying `label` (`key=value`).
    pub async fn volume_names(&self, label: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let response = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| EngineError::from_api("list volumes", e))?;
        Ok(response
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Where the engine keeps images, containers and volumes.
    pub async fn root_dir(&self) -> Result<String, EngineError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| EngineError::from_api("info", e))?;
        Ok(info
            .docker_root_dir
            .unwrap_or_else(|| "/var/lib/docker".into()))
    }

    /// The engine's version and API version, for prechecks.
    pub async fn server_version(&self) -> Result<(String, String), EngineError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| EngineError::from_api("version", e))?;
        Ok((
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default(),
        ))
    }

    /// Remove a named volume; a missing one is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_api(format!("remove volume {name}"), e) {
                EngineError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }
}

/// Split `name:tag` at the tag's colon (not a registry port's).
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::{create_body, split_tag};
    use crate::container::{ContainerSpec, HealthSpec, PortBinding, is_loopback_url};

    #[test]
    fn create_body_maps_every_field() {
        let spec = ContainerSpec {
            name: "web".into(),
            labels: [("kolla.service".to_string(), "web".to_string())].into(),
            image: "busybox:1".into(),
            command: Some(vec!["httpd".into(), "-f".into()]),
            env: vec!["A=1".into()],
            network_mode: Some("host".into()),
            privileged: true,
            binds: vec!["/etc/hosts:/etc/hosts:ro".into()],
            anonymous_volumes: vec!["/data".into()],
            volumes_from: vec!["webdata".into()],
            restart_policy: Some("on-failure:3".into()),
            ulimits: vec![("nofile".into(), 1024, 2048)],
            ports: vec![PortBinding {
                host_ip: None,
                host_port: Some(8080),
                container_port: 80,
                protocol: "tcp".into(),
            }],
            healthcheck: Some(HealthSpec {
                test: vec!["CMD".into(), "true".into()],
                interval_ns: Some(1_000_000_000),
                timeout_ns: None,
                retries: Some(3),
                start_period_ns: None,
            }),
            stop_timeout_secs: Some(30),
            ..ContainerSpec::default()
        };
        let body = create_body(&spec);
        assert_eq!(body.image.as_deref(), Some("busybox:1"));
        assert_eq!(body.cmd, Some(vec!["httpd".to_string(), "-f".to_string()]));
        assert_eq!(body.volumes, Some(vec!["/data".to_string()]));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
        assert_eq!(body.stop_timeout, Some(30));
        assert_eq!(body.labels.unwrap()["kolla.service"], "web");
        assert_eq!(body.healthcheck.unwrap().retries, Some(3));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.privileged, Some(true));
        assert_eq!(host.volumes_from, Some(vec!["webdata".to_string()]));
        assert_eq!(
            host.binds,
            Some(vec!["/etc/hosts:/etc/hosts:ro".to_string()])
        );
        let policy = host.restart_policy.unwrap();
        assert_eq!(
            policy.name,
            Some(bollard::models::RestartPolicyNameEnum::ON_FAILURE)
        );
        assert_eq!(policy.maximum_retry_count, Some(3));
        let ports = host.port_bindings.unwrap();
        assert_eq!(
            ports["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert_eq!(host.ulimits.unwrap()[0].hard, Some(2048));
        assert_eq!(host.cap_add, None);
    }

    #[test]
    fn only_loopback_counts_as_loopback() {
        for url in [
            "tcp://127.0.0.1:2375",
            "tcp://localhost:2375",
            "tcp://[::1]:2375",
            "tcp://127.3.4.5",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "tcp://10.0.0.11:2376",
            "tcp://node1:2375",
            "tcp://[2001:db8::1]:2375",
            "tcp://127.0.0.1.example:1",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn split_tag_ignores_registry_port() {
        assert_eq!(
            split_tag("127.0.0.1:4000/kolla/x:zed"),
            ("127.0.0.1:4000/kolla/x", "zed")
        );
        assert_eq!(
            split_tag("127.0.0.1:4000/kolla/x"),
            ("127.0.0.1:4000/kolla/x", "latest")
        );
        assert_eq!(split_tag("kolla/x:1.0"), ("kolla/x", "1.0"));
    }
}
