//! The one place that talks to a Docker engine (through bollard). Everything
//! else in kolla speaks in plain types: `ImageInfo`, `BuildRequest`, `RunOutput`.
//!
//! Engine errors are mapped once, here, into `EngineError`, so callers can
//! tell "not found" from "conflict" from "unreachable" without matching
//! message text.

//!
//! Files: `containers` (create, start, stop, rename, inspect, list, logs),
//! `exec` (commands in running containers, collected or attached; files
//! in and out), `images` (inspect, build, pull, push), `wait` (health gates and
//! following logs, on the event stream), `volumes`, `body` (our specs as
//! the engine's request bodies, pure), `ssh` (the forward to an
//! `ssh://` node's engine), `deadline` (how long each request may take);
//! this file connects and maps errors.

mod body;
mod containers;
mod deadline;
mod exec;
mod images;
pub mod ssh;
mod volumes;
mod wait;

use std::path::PathBuf;

use bollard::Docker;
use bollard::errors::Error as BollardError;

use crate::container::is_loopback_url;
pub use body::{SYSTEMPATHS_UNCONFINED, create_body};
pub use containers::{ContainerDetails, LogRequest, Printed, PrintedStream, RunOutput};
pub use deadline::{DEFAULT_ANSWER, Deadlines};
pub use exec::{AttachedExec, ExecOutput, ExecRequest};
pub use images::{BuildRequest, ImageInfo, ListedImage, RegistryAuth, split_tag};
pub use wait::{WaitGoal, WaitOutcome};

/// bollard's own timeout, on response headers only: a backstop, far above
/// any deadline of `deadline`, which times every request by what it is (a
/// stop's answer comes after its grace period, a load's after its body).
const REQUEST_TIMEOUT_SECS: u64 = 24 * 60 * 60;

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
    /// A request past its deadline (see `deadline`): the engine, or
    /// whatever listens at its address, took the request and said nothing.
    #[error(
        "the engine at {endpoint} did not answer `{what}` within {after}\n  hint: a hung engine, or something else listening at its address; `--engine-timeout` sets how long version, list and inspect may take"
    )]
    Unresponsive {
        endpoint: String,
        what: String,
        after: String,
    },
    /// An endpoint kolla cannot use as written (a malformed `ssh://` URL,
    /// TLS files that are not there): the operator's input, found before
    /// anything is asked of the engine.
    #[error("engine {endpoint}: {message}")]
    BadEndpoint { endpoint: String, message: String },
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

impl EngineError {
    /// Whether the engine stopped answering in the middle of a request
    /// (the connection or its stream broke), rather than answered.
    pub fn is_lost(&self) -> bool {
        matches!(self, EngineError::Lost { .. })
    }
}

/// Each of a TLS endpoint's files is there, or a `BadEndpoint` naming the
/// one that is not (rather than the TLS library's "No such file").
fn check_tls_files(url: &str, tls: &TlsFiles) -> Result<(), EngineError> {
    for (key, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
        if !path.is_file() {
            return Err(EngineError::BadEndpoint {
                endpoint: url.to_string(),
                message: format!(
                    "TLS {key} file {} does not exist (`kolla certs` makes them)",
                    path.display()
                ),
            });
        }
    }
    Ok(())
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
    deadlines: Deadlines,
    /// Held, never read: the forward lives as long as the connection.
    _tunnel: Option<std::sync::Arc<ssh::Tunnel>>,
}

impl Engine {
    /// Connect to `endpoint` with the default deadlines.
    pub async fn connect(endpoint: &Endpoint) -> Result<Engine, EngineError> {
        Engine::connect_within(endpoint, Deadlines::default()).await
    }

    /// Connect to `endpoint`, agree on an API version and check the engine
    /// answers (within `deadlines.answer`), so an unreachable engine is one
    /// clear error up front; every later request gets `deadlines` too.
    pub async fn connect_within(
        endpoint: &Endpoint,
        deadlines: Deadlines,
    ) -> Result<Engine, EngineError> {
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
            check_tls_files(&url, tls)?;
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
        let limit = deadlines.answer;
        let docker = tokio::time::timeout(limit, docker.negotiate_version())
            .await
            .map_err(|_| EngineError::Unresponsive {
                endpoint: url.clone(),
                what: "version".into(),
                after: deadline::seconds(limit),
            })?
            .map_err(unreachable)?;
        let endpoint = url;
        Ok(Engine {
            docker,
            endpoint,
            deadlines,
            _tunnel: tunnel,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where the engine keeps images, containers and volumes.
    pub async fn root_dir(&self) -> Result<String, EngineError> {
        let info = self.work("info", self.docker.info()).await?;
        Ok(info
            .docker_root_dir
            .unwrap_or_else(|| "/var/lib/docker".into()))
    }

    /// The engine's version and API version, for prechecks.
    pub async fn server_version(&self) -> Result<(String, String), EngineError> {
        let version = self.answer("version", self.docker.version()).await?;
        Ok((
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tls_files_and_malformed_ssh_urls_are_bad_endpoints_found_before_any_request() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let endpoint = Endpoint {
            url: "tcp://127.0.0.1:9".into(),
            tls: Some(TlsFiles {
                ca: "/nonexistent/ca.pem".into(),
                cert: "/nonexistent/cert.pem".into(),
                key: "/nonexistent/key.pem".into(),
            }),
            ssh_config: None,
        };
        let err = runtime.block_on(Engine::connect(&endpoint)).unwrap_err();
        assert!(matches!(err, EngineError::BadEndpoint { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("TLS ca file /nonexistent/ca.pem does not exist"),
            "{err}"
        );
        let err = runtime
            .block_on(Engine::connect(&Endpoint::plain("ssh://host:port")))
            .unwrap_err();
        assert!(matches!(err, EngineError::BadEndpoint { .. }), "{err}");
    }

    #[test]
    fn a_stream_cut_short_is_told_from_an_engine_that_answered() {
        let cut = std::io::Error::other("bytes remaining on stream");
        let lost = EngineError::from_api("build x", BollardError::IOError { err: cut });
        assert!(lost.is_lost(), "{lost}");
        let refused = EngineError::from_api(
            "build x",
            BollardError::DockerStreamError {
                error: "exit code: 3".into(),
            },
        );
        assert!(!refused.is_lost(), "{refused}");
        let conflict = EngineError::from_api(
            "build x",
            BollardError::DockerResponseServerError {
                status_code: 409,
                message: "in use".into(),
            },
        );
        assert!(!conflict.is_lost(), "{conflict}");
    }
}
