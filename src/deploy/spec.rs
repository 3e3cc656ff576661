//! What container a service becomes: `ServiceSpec` (from a compose file) ->
//! `ContainerSpec` (everything the engine needs to create it), and the
//! config hash that tells whether a running container still matches. Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::labels;
use crate::config::compose::{Mount, ServiceSpec};
use crate::config::inventory::PrivilegedMode;

/// Every capability an engine that refuses `--privileged` (it lacks
/// CAP_SYS_RESOURCE) can still grant; with AppArmor and seccomp unconfined
/// and access to all devices it stands in for `privileged: true`.
pub const EXPLICIT_PRIVILEGED_CAPS: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

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
}

/// Where a service is deployed: what the spec needs beyond the service.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    /// Prefix of every container and volume name of the deployment.
    pub prefix: &'a str,
    pub project: &'a str,
    pub node_role: &'a str,
    pub privileged: PrivilegedMode,
}

fn nanos(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The container `service` becomes on a node (without the kolla labels,
/// which depend on the plan: see `labels_for`).
pub fn container_spec(service: &ServiceSpec, placement: &Placement) -> ContainerSpec {
    let prefix = placement.prefix;
    let mut spec = ContainerSpec {
        name: labels::container_name(prefix, &service.name, labels::Role::Live),
        image: service.image.clone(),
        command: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        env: service
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        user: service.user.clone(),
        network_mode: service.network_mode.as_ref().map(|mode| {
            match mode.strip_prefix("service:") {
                Some(other) => format!("container:{prefix}{other}"),
                None => mode.clone(),
            }
        }),
        pid_mode: service.pid.clone(),
        ipc_mode: service.ipc.clone(),
        privileged: service.privileged,
        cap_add: service.cap_add.clone(),
        cap_drop: service.cap_drop.clone(),
        security_opt: service.security_opt.clone(),
        volumes_from: service
            .volumes_from
            .iter()
            .map(|v| format!("{prefix}{v}"))
            .collect(),
        restart_policy: service.restart.clone(),
        init: service.init,
        ulimits: service
            .ulimits
            .iter()
            .map(|(k, u)| (k.clone(), u.soft, u.hard))
            .collect(),
        tmpfs: service
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, options)) => (path.to_string(), options.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect(),
        ports: service
            .ports
            .iter()
            .map(|p| PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: p.published,
                container_port: p.target,
                protocol: p.protocol.clone(),
            })
            .collect(),
        healthcheck: service.healthcheck.as_ref().map(|h| HealthSpec {
            test: if h.disable {
                vec!["NONE".to_string()]
            } else {
                h.test.clone()
            },
            interval_ns: nanos(h.interval),
            timeout_ns: nanos(h.timeout),
            retries: h.retries.map(i64::from),
            start_period_ns: nanos(h.start_period),
        }),
        stop_timeout_secs: service
            .stop_grace_period
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        ..ContainerSpec::default()
    };
    for mount in &service.volumes {
        match mount {
            Mount::Volume {
                source: None,
                target,
                ..
            } => spec.anonymous_volumes.push(target.clone()),
            Mount::Volume {
                source: Some(volume),
                target,
                read_only,
            } => {
                spec.binds
                    .push(bind(&format!("{prefix}{volume}"), target, *read_only));
            }
            Mount::Bind {
                source,
                target,
                read_only,
            } => {
                spec.binds
                    .push(bind(&source.display().to_string(), target, *read_only));
            }
        }
    }
    // Data containers are never started, but the engine will not create a
    // container without a command; the image may have none.
    if service.kolla.data && spec.command.is_none() {
        spec.command = Some(vec!["true".to_string()]);
    }
    if service.privileged && placement.privileged == PrivilegedMode::Explicit {
        spec.privileged = false;
        for cap in EXPLICIT_PRIVILEGED_CAPS {
            if !spec
                .cap_add
                .iter()
                .any(|c| c.trim_start_matches("CAP_") == *cap)
            {
                spec.cap_add.push(cap.to_string());
            }
        }
        for opt in ["apparmor=unconfined", "seccomp=unconfined"] {
            if !spec.security_opt.iter().any(|o| o == opt) {
                spec.security_opt.push(opt.to_string());
            }
        }
        spec.device_cgroup_rules.push("a *:* rwm".to_string());
    }
    spec
}

fn bind(source: &str, target: &str, read_only: bool) -> String {
    if read_only {
        format!("{source}:{target}:ro")
    } else {
        format!("{source}:{target}")
    }
}

/// The config hash: the container spec, the rendered config files (path and
/// bytes, sorted) and the bootstrap command. Anything else (depends_on,
/// profiles, the file's layout) does not change the container.
pub fn config_hash(
    spec: &ContainerSpec,
    config_files: &[(String, Vec<u8>)],
    bootstrap: Option<&[String]>,
) -> String {
    let mut hasher = Sha256::new();
    // Serializing plain data (strings, vectors, B-tree maps) cannot fail.
    let json = serde_json::to_vec(spec).unwrap_or_default();
    hasher.update(b"kolla-config-hash-v1\0");
    hasher.update((json.len() as u64).to_le_bytes());
    hasher.update(&json);
    for (path, data) in config_files {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(data);
    }
    if let Some(command) = bootstrap {
        for arg in command {
            hasher.update((arg.len() as u64).to_le_bytes());
            hasher.update(arg.as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

/// The kolla labels of a container: who it belongs to and what it was
/// made from. User labels come first so they cannot overwrite ours.
pub fn labels_for(
    service: &ServiceSpec,
    placement: &Placement,
    digest: &str,
    config_hash: &str,
    generation: u64,
) -> BTreeMap<String, String> {
    let mut all = service.labels.clone();
    all.insert(labels::PROJECT.into(), placement.project.into());
    all.insert(labels::SERVICE.into(), service.name.clone());
    all.insert(labels::ROLE.into(), placement.node_role.into());
    all.insert(labels::IMAGE.into(), service.image.clone());
    all.insert(labels::DIGEST.into(), digest.into());
    all.insert(labels::CONFIG_HASH.into(), config_hash.into());
    all.insert(labels::GENERATION.into(), generation.to_string());
    all.insert(
        labels::RESTART.into(),
        service.restart.clone().unwrap_or_else(|| "no".into()),
    );
    if service.kolla.data {
        all.insert(labels::DATA.into(), "true".into());
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compose::{Variables, parse};
    use std::path::Path;

    fn service(extra: &str) -> ServiceSpec {
        let text = format!(
            "services:\n  data:\n    image: d\n    volumes: [/var/lib/x]\n  web:\n    image: busybox:1\n    volumes_from: [data]\n{extra}volumes:\n  logs:\n"
        );
        let file = parse(
            &text,
            Path::new("c.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        file.service("web").unwrap().clone()
    }

    fn placement(privileged: PrivilegedMode) -> Placement<'static> {
        Placement {
            prefix: "t1-",
            project: "kolla",
            node_role: "controller",
            privileged,
        }
    }

    #[test]
    fn names_volumes_and_references_get_the_prefix() {
        let s = service(
            "    network_mode: service:data\n    volumes: [logs:/var/log, /etc/hosts:/etc/hosts:ro, /scratch]\n",
        );
        let spec = container_spec(&s, &placement(PrivilegedMode::Native));
        assert_eq!(spec.name, "t1-web");
        assert_eq!(spec.volumes_from, vec!["t1-data"]);
        assert_eq!(spec.network_mode.as_deref(), Some("container:t1-data"));
        assert_eq!(
            spec.binds,
            vec!["t1-logs:/var/log", "/etc/hosts:/etc/hosts:ro"]
        );
        assert_eq!(spec.anonymous_volumes, vec!["/scratch"]);
    }

    #[test]
    fn explicit_privileged_mode_spells_out_the_privileges() {
        let s = service("    privileged: true\n    cap_add: [NET_ADMIN]\n");
        let native = container_spec(&s, &placement(PrivilegedMode::Native));
        assert!(native.privileged);
        assert_eq!(native.cap_add, vec!["NET_ADMIN"]);
        let explicit = container_spec(&s, &placement(PrivilegedMode::Explicit));
        assert!(!explicit.privileged);
        assert_eq!(explicit.cap_add.len(), EXPLICIT_PRIVILEGED_CAPS.len());
        assert!(!explicit.cap_add.iter().any(|c| c == "SYS_RESOURCE"));
        assert_eq!(
            explicit.security_opt,
            vec!["apparmor=unconfined", "seccomp=unconfined"]
        );
        assert_eq!(explicit.device_cgroup_rules, vec!["a *:* rwm"]);
        // A service that is not privileged is untouched on such a node.
        let plain = container_spec(&service(""), &placement(PrivilegedMode::Explicit));
        assert!(plain.cap_add.is_empty() && plain.device_cgroup_rules.is_empty());
    }

    #[test]
    fn config_hash_follows_what_changes_the_container() {
        let p = placement(PrivilegedMode::Native);
        let base = container_spec(&service(""), &p);
        let h = config_hash(&base, &[], None);
        assert_eq!(h, config_hash(&container_spec(&service(""), &p), &[], None));
        // depends_on does not change the container...
        let with_dep = container_spec(&service("    depends_on: [data]\n"), &p);
        assert_eq!(h, config_hash(&with_dep, &[], None));
        // ...an environment variable, a config file or the bootstrap does.
        let with_env = container_spec(&service("    environment: {A: '1'}\n"), &p);
        assert_ne!(h, config_hash(&with_env, &[], None));
        assert_ne!(
            h,
            config_hash(&base, &[("a.conf".into(), b"x".to_vec())], None)
        );
        assert_ne!(
            config_hash(&base, &[("a.conf".into(), b"x".to_vec())], None),
            config_hash(&base, &[("a.conf".into(), b"y".to_vec())], None)
        );
        assert_ne!(h, config_hash(&base, &[], Some(&["db-sync".to_string()])));
        // So does the node's privileged mode for a privileged service.
        let s = service("    privileged: true\n");
        assert_ne!(
            config_hash(
                &container_spec(&s, &placement(PrivilegedMode::Native)),
                &[],
                None
            ),
            config_hash(
                &container_spec(&s, &placement(PrivilegedMode::Explicit)),
                &[],
                None
            )
        );
    }

    #[test]
    fn kolla_labels_win_over_user_labels() {
        let s = service("    labels: {kolla.service: fake, team: infra}\n");
        let labels = labels_for(&s, &placement(PrivilegedMode::Native), "sha256:1", "h", 4);
        assert_eq!(labels[labels::SERVICE], "web");
        assert_eq!(labels["team"], "infra");
        assert_eq!(labels[labels::GENERATION], "4");
        assert!(!labels.contains_key(labels::DATA));
    }
}
