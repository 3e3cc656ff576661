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
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, LogsOptionsBuilder,
    PushImageOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;

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
            if !crate::config::is_loopback_url(&url) {
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
                labels: inspect.config.and_then(|c| c.labels).unwrap_or_default(),
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
        let filters = HashMap::from([(key, vec![value])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| EngineError::from_api("list containers", e))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
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

/// Split `name:tag` at the tag's colon (not a registry port's).
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;
    use crate::config::is_loopback_url;

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
