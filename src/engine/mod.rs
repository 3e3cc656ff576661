//! The one place that talks to a Docker engine (through bollard). Everything
//! else in kolla speaks in plain types: `ImageInfo`, `BuildRequest`, `RunOutput`.
//!
//! Engine errors are mapped once, here, into `EngineError`, so callers can
//! tell "not found" from "conflict" from "unreachable" without matching
//! message text.

//!
//! Files: `containers` (create, start, stop, rename, inspect, list, logs),
//! `images` (inspect, build, pull, push), `wait` (health gates and
//! following logs, on the event stream), `volumes`, `body` (our specs as
//! the engine's request bodies, pure), `ssh` (the forward to an
//! `ssh://` node's engine); this file connects and maps errors.

mod body;
mod containers;
mod exec;
mod images;
pub mod ssh;
mod volumes;
mod wait;

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;

use crate::container::is_loopback_url;
pub use body::{SYSTEMPATHS_UNCONFINED, create_body};
pub use containers::{ContainerDetails, RunOutput};
pub use exec::ExecOutput;
pub use images::{BuildRequest, ImageInfo, RegistryAuth, split_tag};
pub use wait::{WaitGoal, WaitOutcome};

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
    #[error(
        "cannot reach the Docker engine at {endpoint} over ssh: {message}\n  hint: `ssh` to the node must work without a prompt (key or agent) and its host key must be in known_hosts (ssh-keyscan, checked)"
    )]
    Ssh { endpoint: String, message: String },
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

/// Where an engine listens: `unix:///path`, `tcp://host:port` (with TLS
/// unless the host is loopback), or `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub url: String,
    pub tls: Option<TlsFiles>,
    /// The ssh client configuration for `ssh://` (None: the user's own).
    pub ssh_config: Option<PathBuf>,
}

impl Endpoint {
    /// Whether the engine runs on this machine (its socket is a local
    /// file), so that the host's loopback is the engine's too.
    pub fn is_this_machine(&self) -> bool {
        self.url.starts_with("unix://")
    }

    /// An endpoint with no TLS and the user's own ssh configuration.
    pub fn plain(url: impl Into<String>) -> Endpoint {
        Endpoint {
            url: url.into(),
            tls: None,
            ssh_config: None,
        }
    }
}

/// A connection to one Docker engine. Cheap to clone: clones share the
/// underlying HTTP connection pool (and, for ssh, the one forward, which
/// ends with the last clone).
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
    /// Held, never read: the forward lives as long as the connection.
    _tunnel: Option<std::sync::Arc<ssh::Tunnel>>,
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
        let mut tunnel = None;
        let docker = if url.starts_with("ssh://") {
            let (forward, socket) = ssh::open(&url, endpoint.ssh_config.as_deref()).await?;
            tunnel = Some(std::sync::Arc::new(forward));
            let socket = socket.to_string_lossy().into_owned();
            Docker::connect_with_unix(&socket, REQUEST_TIMEOUT_SECS, version)
        } else if let Some(path) = url.strip_prefix("unix://") {
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
        // The version request is the check that the engine answers.
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable(BollardError::RequestTimeoutError))?
            .map_err(unreachable)?;
        let endpoint = url;
        Ok(Engine {
            docker,
            endpoint,
            _tunnel: tunnel,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
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
}
