//! What a container is to kolla: `ContainerSpec` and its parts, plain data
//! the engine turns into a create request and the deployer derives from a
//! compose service. It sits apart from both, so the engine depends on
//! neither the deployer nor the config (the engine is a leaf). Also the
//! reading of engine URLs both sides need (loopback or not, `ssh://`), and
//! of an image reference's tag.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortBinding {
    pub host_ip: Option<String>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval_ns: Option<i64>,
    pub timeout_ns: Option<i64>,
    pub retries: Option<i64>,
    pub start_period_ns: Option<i64>,
}

/// The security option that leaves /proc and /sys unmasked and writable
/// (with the caps to use them), as the docker CLI and compose write it.
pub const SYSTEMPATHS_UNCONFINED: &str = "systempaths=unconfined";

/// A container to create, in kolla's terms. Serialized (minus name and
/// labels) it is the input of the config hash, so every field that changes
/// the container changes the hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerSpec {
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value`, sorted by key.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub network_mode: Option<String>,
    pub pid_mode: Option<String>,
    pub ipc_mode: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub device_cgroup_rules: Vec<String>,
    /// `source:target[:ro]` for host paths and named volumes.
    pub binds: Vec<String>,
    /// Targets of anonymous volumes.
    pub anonymous_volumes: Vec<String>,
    /// Container names.
    pub volumes_from: Vec<String>,
    /// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub restart_policy: Option<String>,
    pub init: Option<bool>,
    pub ulimits: Vec<(String, i64, i64)>,
    pub tmpfs: BTreeMap<String, String>,
    pub ports: Vec<PortBinding>,
    pub healthcheck: Option<HealthSpec>,
    pub stop_timeout_secs: Option<i64>,
    pub stop_signal: Option<String>,
    pub extra_hosts: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
}

/// Split `name:tag` at the tag's colon (not a registry port's); no tag
/// is `latest`.
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

/// Whether a `tcp://host:port` URL names a loopback address, the only kind
/// kolla reaches without TLS.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The engine socket on an `ssh://` node, unless the URL names another
/// path.
const SSH_REMOTE_SOCKET: &str = "/var/run/docker.sock";

/// What a malformed `ssh://` URL is told.
pub const SSH_URL_EXPECTED: &str = "expected ssh://[user@]host[:port][/path/to/docker.sock]";

/// What an `ssh://` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub socket: String,
}

/// Parse `ssh://[user@]host[:port][/socket/path]`.
pub fn parse_ssh_url(url: &str) -> Option<SshTarget> {
    let rest = url.strip_prefix("ssh://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user.to_string()), host),
        None => (None, authority),
    };
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (host.to_string(), port)
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host.to_string(), Some(port.parse().ok()?)),
            None => (host_port.to_string(), None),
        },
    };
    let valid = |s: &str| !s.is_empty() && !s.starts_with('-') && !s.contains(char::is_whitespace);
    if !valid(&host) || user.as_deref().is_some_and(|u| !valid(u)) {
        return None;
    }
    let socket = if path.is_empty() || path == "/" {
        SSH_REMOTE_SOCKET.to_string()
    } else {
        path.to_string()
    };
    Some(SshTarget {
        user,
        host,
        port,
        socket,
    })
}

/// A container's lifecycle state, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Other(String),
}

impl State {
    pub fn parse(state: &str) -> State {
        match state {
            "created" => State::Created,
            "running" => State::Running,
            "restarting" => State::Restarting,
            "paused" => State::Paused,
            "exited" => State::Exited,
            "dead" => State::Dead,
            other => State::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Paused => "paused",
            State::Exited => "exited",
            State::Dead => "dead",
            State::Other(s) => s,
        }
    }
}

/// A container's health, when it has a healthcheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A container as one list call shows it, in kolla's terms (the engine
/// reads Docker's status text into typed values).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedContainer {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    pub labels: std::collections::HashMap<String, String>,
    pub state: State,
    pub health: Option<Health>,
    /// For an exited container, its exit code.
    pub exit_code: Option<i64>,
    pub image: String,
    /// The named volumes it mounts: (volume name, path inside).
    pub volumes: Vec<(String, String)>,
    /// Every path something is mounted at (volumes and binds).
    pub mount_points: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

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
}
