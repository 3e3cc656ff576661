//! What container a service becomes: `ServiceSpec` (from a compose file) ->
//! `ContainerSpec` (everything the engine needs to create it), and the
//! config hash that tells whether a running container still matches. Pure.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::config_files::RenderedFile;
use super::labels;
use crate::config::compose::{Healthcheck, Mount, Port, ServiceSpec};
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

pub use crate::container::{ContainerSpec, HealthSpec, PortBinding};

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
        ports: service.ports.iter().map(port_binding).collect(),
        healthcheck: service.healthcheck.as_ref().map(health_spec),
        stop_timeout_secs: service
            .stop_grace_period
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        stop_signal: service.stop_signal.clone(),
        extra_hosts: service.extra_hosts.clone(),
        sysctls: service.sysctls.clone(),
        ..ContainerSpec::default()
    };
    add_mounts(&mut spec, &service.volumes, prefix);
    // Data containers are never started, but the engine will not create a
    // container without a command; the image may have none.
    if service.kolla.data && spec.command.is_none() {
        spec.command = Some(vec!["true".to_string()]);
    }
    if service.privileged && placement.privileged == PrivilegedMode::Explicit {
        spell_out_privileges(&mut spec);
    }
    spec
}

/// Named volumes and host paths as binds (named ones under the
/// deployment's prefix unless the file names them literally); anonymous
/// paths are listed for the plan to give volumes of their own.
fn add_mounts(spec: &mut ContainerSpec, mounts: &[Mount], prefix: &str) {
    for mount in mounts {
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
                literal,
            } => {
                let name = if *literal {
                    volume.clone()
                } else {
                    format!("{prefix}{volume}")
                };
                spec.binds.push(bind(&name, target, *read_only, None));
            }
            Mount::Bind {
                source,
                target,
                read_only,
                propagation,
            } => {
                let source = source.display().to_string();
                spec.binds
                    .push(bind(&source, target, *read_only, propagation.as_deref()));
            }
        }
    }
}

fn port_binding(port: &Port) -> PortBinding {
    PortBinding {
        host_ip: port.host_ip.clone(),
        host_port: port.published,
        container_port: port.target,
        protocol: port.protocol.clone(),
    }
}

fn health_spec(check: &Healthcheck) -> HealthSpec {
    HealthSpec {
        test: if check.disable {
            vec!["NONE".to_string()]
        } else {
            check.test.clone()
        },
        interval_ns: nanos(check.interval),
        timeout_ns: nanos(check.timeout),
        retries: check.retries.map(i64::from),
        start_period_ns: nanos(check.start_period),
    }
}

/// `privileged: true` as its parts, for engines that refuse the flag:
/// every capability, no AppArmor or seccomp profile, every device, and
/// /proc and /sys neither masked nor read-only (an agent setting a sysctl
/// inside a network namespace it made writes /proc/sys).
fn spell_out_privileges(spec: &mut ContainerSpec) {
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
    for opt in [
        "apparmor=unconfined",
        "seccomp=unconfined",
        crate::container::SYSTEMPATHS_UNCONFINED,
    ] {
        if !spec.security_opt.iter().any(|o| o == opt) {
            spec.security_opt.push(opt.to_string());
        }
    }
    spec.device_cgroup_rules.push("a *:* rwm".to_string());
}

/// The engine's `source:target[:options]` form of a mount.
fn bind(source: &str, target: &str, read_only: bool, propagation: Option<&str>) -> String {
    let options: Vec<&str> = read_only
        .then_some("ro")
        .into_iter()
        .chain(propagation)
        .collect();
    if options.is_empty() {
        format!("{source}:{target}")
    } else {
        format!("{source}:{target}:{}", options.join(","))
    }
}

/// The key of a deployment's config hashes: a digest of every secret in
/// passwords.yml. The rendered files hold those secrets, so a plain hash
/// of them would let anyone who can `docker inspect` test guesses at a
/// password; keyed with all of them, it tells nothing without all of them.
/// Same passwords, same key: any operator's run agrees on every hash.
pub fn hash_key(passwords: &BTreeMap<String, String>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"kolla-config-hash-key-v1\0");
    for (name, value) in passwords {
        for part in [name, value] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hasher.finalize().into()
}

/// What a config hash covers besides its key.
#[derive(Debug, Clone, Copy)]
pub struct HashInputs<'a> {
    pub spec: &'a ContainerSpec,
    /// Rendered config files (path, bytes), sorted.
    pub files: &'a [RenderedFile],
    /// Its bootstrap job's files.
    pub job_files: &'a [RenderedFile],
    pub bootstrap: Option<&'a [String]>,
}

/// The config hash: an HMAC-SHA-256 under `key` (see `hash_key`) of the
/// container spec, the rendered config files, the bootstrap job's files and
/// command. Anything else (depends_on, profiles, the file's layout) does not
/// change the container.
pub fn config_hash(key: &[u8], inputs: HashInputs<'_>) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    let mut part = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_le_bytes());
        mac.update(bytes);
    };
    // Serializing plain data (strings, vectors, B-tree maps) cannot fail.
    part(b"kolla-config-hash-v2");
    part(&serde_json::to_vec(inputs.spec).unwrap_or_default());
    for (kind, files) in [("files", inputs.files), ("job", inputs.job_files)] {
        part(kind.as_bytes());
        for file in files {
            part(file.path.as_bytes());
            part(&file.bytes);
        }
    }
    if let Some(command) = inputs.bootstrap {
        part(b"bootstrap");
        for arg in command {
            part(arg.as_bytes());
        }
    }
    hex::encode(mac.finalize().into_bytes())
}

/// What each part a config hash covers hashes to, under the same key:
/// one entry per field of the container spec (named as a compose file
/// names it; each environment variable its own), per rendered file and
/// per bootstrap file, and the bootstrap command. Kept on the container
/// (`kolla.config-parts`), so a later plan can say which of them changed
/// ("config changed: environment DEBUG, file /etc/glance/glance-api.conf")
/// without keeping a secret or its plain hash on the node.
pub fn config_parts(key: &[u8], inputs: HashInputs<'_>) -> BTreeMap<String, String> {
    let mut parts = BTreeMap::new();
    let mut add = |name: String, bytes: &[u8]| {
        let hash = part_hash(key, &name, bytes);
        parts.insert(name, hash);
    };
    // The key's own mark: a changed password changes every part's hash.
    add(PASSWORDS_PART.to_string(), b"");
    // Plain data (strings, vectors, B-tree maps): serializing cannot fail.
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(inputs.spec) {
        for (field, value) in fields {
            match (field.as_str(), value) {
                ("env", serde_json::Value::Array(entries)) => {
                    for entry in entries {
                        let entry = entry.as_str().unwrap_or_default();
                        let name = entry.split_once('=').map_or(entry, |(name, _)| name);
                        add(format!("environment {name}"), entry.as_bytes());
                    }
                }
                (field, value) => add(compose_key(field).to_string(), value.to_string().as_bytes()),
            }
        }
    }
    for file in inputs.files {
        add(format!("file {}", file.path), &file.bytes);
    }
    for file in inputs.job_files {
        add(format!("bootstrap file {}", file.path), &file.bytes);
    }
    if let Some(command) = inputs.bootstrap {
        add("bootstrap command".into(), command.join("\0").as_bytes());
    }
    parts
}

/// The part that stands for the key (every password): when it differs,
/// the other parts cannot be compared, and passwords.yml is what changed.
const PASSWORDS_PART: &str = "passwords.yml";

/// A spec field's name in a compose file, where it has one.
fn compose_key(field: &str) -> &str {
    match field {
        "binds" | "anonymous_volumes" => "volumes",
        "restart_policy" => "restart",
        "stop_timeout_secs" => "stop_grace_period",
        "ipc_mode" => "ipc",
        "pid_mode" => "pid",
        other => other,
    }
}

/// One part's keyed hash, short: it only tells parts apart.
fn part_hash(key: &[u8], name: &str, bytes: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in [b"kolla-config-part-v1".as_slice(), name.as_bytes(), bytes] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// The parts that differ between a live container's and the wanted ones:
/// changed, added or gone, each named once, in order.
pub fn changed_parts(
    live: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<String> {
    if live.get(PASSWORDS_PART) != wanted.get(PASSWORDS_PART) {
        return vec![PASSWORDS_PART.to_string()];
    }
    let mut names: Vec<String> = live
        .iter()
        .filter(|(name, hash)| wanted.get(*name) != Some(hash))
        .map(|(name, _)| name.clone())
        .chain(
            wanted
                .keys()
                .filter(|name| !live.contains_key(*name))
                .cloned(),
        )
        .collect();
    names.sort();
    names.dedup();
    names
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
    if service.kolla.update_order == crate::config::compose::UpdateOrder::StartFirst {
        all.insert(labels::UPDATE_ORDER.into(), "start-first".into());
    }
    if let Some(program) = &service.kolla.guests {
        all.insert(labels::GUESTS.into(), program.clone());
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
            "    network_mode: service:data\n    volumes: [logs:/var/log, /etc/hosts:/etc/hosts:ro, /scratch, /run/netns:/run/netns:shared, \"/a:/a:ro,rslave\"]\n",
        );
        let spec = container_spec(&s, &placement(PrivilegedMode::Native));
        assert_eq!(spec.name, "t1-web");
        assert_eq!(spec.volumes_from, vec!["t1-data"]);
        assert_eq!(spec.network_mode.as_deref(), Some("container:t1-data"));
        assert_eq!(
            spec.binds,
            vec![
                "t1-logs:/var/log",
                "/etc/hosts:/etc/hosts:ro",
                "/run/netns:/run/netns:shared",
                "/a:/a:ro,rslave"
            ]
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
            vec![
                "apparmor=unconfined",
                "seccomp=unconfined",
                "systempaths=unconfined"
            ]
        );
        assert_eq!(explicit.device_cgroup_rules, vec!["a *:* rwm"]);
        // A service that is not privileged is untouched on such a node.
        let plain = container_spec(&service(""), &placement(PrivilegedMode::Explicit));
        assert!(plain.cap_add.is_empty() && plain.device_cgroup_rules.is_empty());
    }

    #[test]
    fn config_parts_name_what_changed_and_nothing_else() {
        let p = placement(PrivilegedMode::Native);
        let key = hash_key(&BTreeMap::from([("db".to_string(), "s3cret".to_string())]));
        let parts = |service_text: &str, files: &[RenderedFile], bootstrap: Option<&[String]>| {
            config_parts(
                &key,
                HashInputs {
                    spec: &container_spec(&service(service_text), &p),
                    files,
                    job_files: &[],
                    bootstrap,
                },
            )
        };
        let conf = |text: &str| [RenderedFile::new("/etc/x/x.conf", text.as_bytes().to_vec())];
        let base = parts("    environment: {A: '1', B: '2'}\n", &conf("a"), None);
        assert_eq!(
            changed_parts(
                &base,
                &parts("    environment: {A: '1', B: '2'}\n", &conf("a"), None)
            ),
            Vec::<String>::new()
        );
        // One variable, one file, one spec key (named as compose names
        // it), an added variable and the bootstrap: each named alone.
        // (compose text, rendered files, bootstrap command, parts named)
        type Case<'a> = (
            &'a str,
            &'a [RenderedFile],
            Option<&'a [String]>,
            &'a [&'a str],
        );
        let cases: [Case; 6] = [
            (
                "    environment: {A: '1', B: '3'}\n",
                &conf("a"),
                None,
                &["environment B"],
            ),
            (
                "    environment: {A: '1', B: '2'}\n",
                &conf("b"),
                None,
                &["file /etc/x/x.conf"],
            ),
            (
                "    environment: {A: '1', B: '2'}\n    restart: always\n",
                &conf("a"),
                None,
                &["restart"],
            ),
            (
                "    environment: {A: '1', B: '2', C: '4'}\n",
                &conf("a"),
                None,
                &["environment C"],
            ),
            (
                "    environment: {A: '1', B: '2'}\n",
                &conf("a"),
                Some(&["db-sync".to_string()]),
                &["bootstrap command"],
            ),
            // A file gone is named too.
            (
                "    environment: {A: '1', B: '2'}\n",
                &[],
                None,
                &["file /etc/x/x.conf"],
            ),
        ];
        for (text, files, bootstrap, named) in cases {
            assert_eq!(
                changed_parts(&base, &parts(text, files, bootstrap)),
                named,
                "{text}"
            );
        }
    }

    #[test]
    fn config_parts_are_keyed_and_a_changed_password_is_said_as_such() {
        let p = placement(PrivilegedMode::Native);
        let parts_under = |key: &[u8]| {
            config_parts(
                key,
                HashInputs {
                    spec: &container_spec(&service("    environment: {A: '1', B: '2'}\n"), &p),
                    files: &[RenderedFile::new("/etc/x/x.conf", b"a".to_vec())],
                    job_files: &[],
                    bootstrap: None,
                },
            )
        };
        let base = parts_under(&hash_key(&BTreeMap::from([(
            "db".to_string(),
            "s3cret".to_string(),
        )])));
        let other = parts_under(&hash_key(&BTreeMap::new()));
        // The label tells nothing without every password (the same file
        // under another key hashes otherwise), and holds no value.
        assert_ne!(base["file /etc/x/x.conf"], other["file /etc/x/x.conf"]);
        // A changed password is said as such, not as every part.
        assert_eq!(changed_parts(&base, &other), ["passwords.yml"]);
        let label = serde_json::to_string(&base).expect("json");
        assert!(
            !label.contains("s3cret") && !label.contains("A=1"),
            "{label}"
        );
    }

    #[test]
    fn config_hash_follows_what_changes_the_container() {
        let p = placement(PrivilegedMode::Native);
        let key = hash_key(&BTreeMap::new());
        let hash = |spec: &ContainerSpec,
                    files: &[RenderedFile],
                    job: &[RenderedFile],
                    bootstrap: Option<&[String]>| {
            config_hash(
                &key,
                HashInputs {
                    spec,
                    files,
                    job_files: job,
                    bootstrap,
                },
            )
        };
        let base = container_spec(&service(""), &p);
        let h = hash(&base, &[], &[], None);
        assert_eq!(h, hash(&container_spec(&service(""), &p), &[], &[], None));
        // depends_on does not change the container...
        let with_dep = container_spec(&service("    depends_on: [data]\n"), &p);
        assert_eq!(h, hash(&with_dep, &[], &[], None));
        // ...an environment variable, a config file or the bootstrap does.
        let with_env = container_spec(&service("    environment: {A: '1'}\n"), &p);
        assert_ne!(h, hash(&with_env, &[], &[], None));
        let x = [RenderedFile::new("a.conf", b"x".to_vec())];
        let y = [RenderedFile::new("a.conf", b"y".to_vec())];
        assert_ne!(h, hash(&base, &x, &[], None));
        assert_ne!(hash(&base, &x, &[], None), hash(&base, &y, &[], None));
        // A file of the job is not the same as one of the container.
        assert_ne!(hash(&base, &x, &[], None), hash(&base, &[], &x, None));
        assert_ne!(h, hash(&base, &[], &[], Some(&["db-sync".to_string()])));
        // So does the node's privileged mode for a privileged service.
        let s = service("    privileged: true\n");
        assert_ne!(
            hash(
                &container_spec(&s, &placement(PrivilegedMode::Native)),
                &[],
                &[],
                None
            ),
            hash(
                &container_spec(&s, &placement(PrivilegedMode::Explicit)),
                &[],
                &[],
                None
            )
        );
    }

    #[test]
    fn config_hashes_are_keyed_by_every_password() {
        let spec = container_spec(&service(""), &placement(PrivilegedMode::Native));
        let files = [RenderedFile::new("a.conf", b"password = hunter2".to_vec())];
        let inputs = HashInputs {
            spec: &spec,
            files: &files,
            job_files: &[],
            bootstrap: None,
        };
        let one = BTreeMap::from([("a".to_string(), "hunter2".to_string())]);
        let mut two = one.clone();
        two.insert("b".to_string(), "other".to_string());
        let keyed = config_hash(&hash_key(&one), inputs);
        assert_eq!(keyed, config_hash(&hash_key(&one.clone()), inputs));
        assert_ne!(keyed, config_hash(&hash_key(&two), inputs));
        assert_ne!(keyed, config_hash(&hash_key(&BTreeMap::new()), inputs));
        // Not the plain hash of what it covers.
        let plain = hex::encode(Sha256::digest(b"password = hunter2"));
        assert_ne!(keyed, plain);
        assert_eq!(keyed.len(), 64);
    }

    #[test]
    fn kolla_labels_win_over_user_labels() {
        // The compose reader refuses such labels; a spec made another way
        // still cannot forge kolla's own.
        let mut s = service("    labels: {team: infra}\n");
        s.labels.insert(labels::SERVICE.into(), "fake".into());
        let labels = labels_for(&s, &placement(PrivilegedMode::Native), "sha256:1", "h", 4);
        assert_eq!(labels[labels::SERVICE], "web");
        assert_eq!(labels["team"], "infra");
        assert_eq!(labels[labels::GENERATION], "4");
        assert!(!labels.contains_key(labels::DATA));
    }
}
