//! What a container is to kolla: `ContainerSpec` and its parts, plain data
//! the engine turns into a create request and the deployer derives from a
//! compose service. It sits apart from both, so the engine depends on
//! neither the deployer nor the config (the engine is a leaf).

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
