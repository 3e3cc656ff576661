//! The typed services of a compose file, as the rest of kolla sees them:
//! every value interpolated, checked and in one form (a long or short
//! syntax in the file is one type here). Plain data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How a dependency must be before its dependent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

/// A volume mounted into a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mount {
    /// A named volume (`source` Some) or an anonymous one (None). Once
    /// the file is loaded, `source` is the volume's own name (its `name:`,
    /// else its key), and `literal` says the engine knows it by exactly
    /// that name (`name:` or `external: true`), with no deployment prefix.
    Volume {
        source: Option<String>,
        target: String,
        read_only: bool,
        literal: bool,
    },
    /// A host path. `propagation` (`shared`, `rslave`, ...) lets mounts
    /// made under it on either side reach the other.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
        propagation: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub host_ip: Option<String>,
    pub published: Option<u16>,
    pub target: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]`, or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
    pub disable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

/// Whether the old container stops before the new one starts (the default)
/// or after the new one is healthy (for a host-network server, only if it
/// binds its port with SO_REUSEPORT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

/// Config templates rendered with globals and passwords and uploaded into
/// the container before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigTemplates {
    /// Folder (or file) of Tera templates, resolved against the compose
    /// file's folder.
    pub src: PathBuf,
    /// Where the rendered files land in the container.
    pub dest: String,
}

/// A restore point taken before the service's bootstrap job (schema
/// migrations): commands run in the live container of the database
/// service on the same node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RestorePointSpec {
    /// The service whose live container runs both commands (`mariadb`).
    pub service: String,
    /// Writes a consistent dump to stdout.
    pub dump: Vec<String>,
    /// Loads the dump from the file named by `$KOLLA_RESTORE_POINT`.
    pub restore: Vec<String>,
}

/// The MariaDB socket inside the shipped mariadb image; root connects
/// through it by unix-socket authentication, so no password is involved.
const MARIADB_SOCKET: &str = "--socket=/run/mysqld/mysqld.sock";

impl RestorePointSpec {
    /// MariaDB's commands for `databases`: a dump in one transaction that
    /// drops each database before recreating it, so a restore also removes
    /// what a migration added (tables, columns).
    pub fn mariadb(service: String, databases: &[String]) -> RestorePointSpec {
        let mut dump: Vec<String> = [
            "mariadb-dump",
            MARIADB_SOCKET,
            "--single-transaction",
            "--routines",
            "--add-drop-database",
            "--databases",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        dump.extend(databases.iter().cloned());
        RestorePointSpec {
            service,
            dump,
            restore: vec![
                "sh".into(),
                "-c".into(),
                format!("exec mariadb {MARIADB_SOCKET} < \"$KOLLA_RESTORE_POINT\""),
            ],
        }
    }
}

/// `x-kolla.upgrade_check`: a one-shot job of the new image, with the
/// service's volumes and config, that must exit 0 (or one of
/// `warning_exit_codes`, whose output is shown and the swap goes on: 1 for
/// the `*-status upgrade check` commands of oslo.upgradecheck, where 1 is
/// a warning, 2 a failure and 255 an error).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpgradeCheck {
    pub command: Vec<String>,
    pub warning_exit_codes: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KollaSettings {
    /// A data container: created, never started, never recreated or removed
    /// (except by `destroy --purge-data`).
    pub data: bool,
    pub config: Option<ConfigTemplates>,
    /// A one-shot job (e.g. `glance-manage db_sync`) run before the service
    /// starts, once per image and config change; it must exit 0.
    pub bootstrap: Option<Vec<String>>,
    /// The new image's own readiness check against the live cloud (e.g.
    /// `nova-status upgrade check`), run before a running service is
    /// swapped, ahead of its restore point and bootstrap job: a failure
    /// stops the swap with the check's output, nothing touched.
    pub upgrade_check: Option<UpgradeCheck>,
    /// Dump the service's databases before its bootstrap job replaces a
    /// running generation (`rollback --restore-db` loads it back).
    pub restore_point: Option<RestorePointSpec>,
    pub update_order: UpdateOrder,
    /// Ports a host-network service listens on: `kolla prechecks` checks
    /// they are free before the first deploy.
    pub host_ports: Vec<u16>,
    /// Kernel settings of the node's network namespace a host-network
    /// service needs (e.g. `net.ipv4.tcp_migrate_req: 1`, so a start-first
    /// swap hands the old generation's queued connections to the new one);
    /// set on the node before the service is created or swapped.
    pub host_sysctls: BTreeMap<String, String>,
    /// Folders of the node made shared mounts (created if missing) before
    /// the service is created or swapped, so that it can bind them with
    /// shared propagation: e.g. `/run/netns`, where Neutron's agents keep
    /// network namespaces that outlive their containers and that every
    /// agent and the node see.
    pub host_shared_mounts: Vec<String>,
    /// A program in the image that knows the service's guests (processes
    /// it runs that should outlive its container, as libvirt's QEMUs do):
    /// `PROGRAM list` prints `NAME PID kept|in-container` lines, `PROGRAM
    /// stop` stops them. Kolla refuses to replace the container while a
    /// guest would die with it (unless told to stop them), reports the
    /// guests kept by a swap, and stops them before `destroy`.
    pub guests: Option<String>,
    /// Services `kolla upgrade --all` upgrades before this one, beside what
    /// it needs to start (upstream's order: e.g. Glance after Keystone).
    /// Names no selected node runs are left out.
    pub upgrade_after: Vec<String>,
    /// A one-shot job of the service's image that `kolla upgrade --all`
    /// runs once every stage is done (e.g. `nova-manage db
    /// online_data_migrations`, Keystone's `db_sync --contract`); must
    /// exit 0. Never killed, like a bootstrap job.
    pub post_upgrade: Option<Vec<String>>,
    /// Its upgrade changes its data so that its older image cannot read it
    /// (MariaDB's system tables after mariadb-upgrade): `kolla rollback
    /// --all` leaves it on its newer image, saying so.
    pub one_way: bool,
    /// A one-shot job of the service's image that `kolla destroy` runs on
    /// each node where the service ran, once every container there is
    /// stopped and before any is removed: it removes what the service made
    /// on the node outside its containers (Neutron's network namespaces,
    /// the switch's devices). Its failure is reported; the destroy goes on.
    pub cleanup: Option<Vec<String>>,
}

/// One service, resolved: interpolated, defaults applied, references checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    /// Line of the service in its file, for errors found later.
    pub line: u64,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub network_mode: Option<String>,
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub user: Option<String>,
    pub volumes: Vec<Mount>,
    pub volumes_from: Vec<String>,
    pub depends_on: BTreeMap<String, Condition>,
    pub healthcheck: Option<Healthcheck>,
    pub restart: Option<String>,
    pub init: Option<bool>,
    pub ulimits: BTreeMap<String, Ulimit>,
    pub tmpfs: Vec<String>,
    /// `host:address` lines added to /etc/hosts.
    pub extra_hosts: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<Port>,
    pub profiles: Vec<String>,
    pub stop_grace_period: Option<Duration>,
    /// The signal that asks it to stop (`SIGTERM` when None).
    pub stop_signal: Option<String>,
    pub kolla: KollaSettings,
}

impl ServiceSpec {
    /// The services it waits for before it starts (depends_on,
    /// volumes_from, `network_mode: service:`), sorted, each once.
    pub fn needs(&self) -> Vec<&str> {
        let mut needs: Vec<&str> = self.depends_on.keys().map(String::as_str).collect();
        needs.extend(
            self.volumes_from
                .iter()
                .map(|v| v.split(':').next().unwrap_or(v)),
        );
        needs.extend(
            self.network_mode
                .as_deref()
                .and_then(|m| m.strip_prefix("service:")),
        );
        needs.sort_unstable();
        needs.dedup();
        needs
    }
}

/// A compose file, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeFile {
    pub path: PathBuf,
    /// Sorted by name.
    pub services: Vec<ServiceSpec>,
    /// Top-level named volumes, by the key services use.
    pub volumes: BTreeMap<String, VolumeSpec>,
    /// `x-kolla.after`: roles whose nodes `kolla deploy` finishes (every
    /// service healthy) before it starts on this role's nodes, each with
    /// its line.
    pub after: Vec<(String, usize)>,
}

/// A top-level named volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Its name (`name:`, else the key).
    pub name: String,
    /// The engine knows it by exactly `name` (`name:` or `external:` set);
    /// otherwise kolla names it, with the deployment's prefix.
    pub literal: bool,
    /// Made outside kolla: never created or removed by it, and it must
    /// exist before a deploy.
    pub external: bool,
    pub driver: Option<String>,
}

impl ComposeFile {
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// The part of `name` that kolla's own container names use (a lock,
/// candidate, bootstrap job or kept generation), if it ends in one.
pub fn reserved_suffix(name: &str) -> Option<&str> {
    for suffix in [
        ".kolla-lock",
        ".kolla-new",
        ".kolla-bootstrap",
        ".kolla-swap",
    ] {
        if name.ends_with(suffix) {
            return Some(suffix);
        }
    }
    let (_, generation) = name.rsplit_once(".kolla-gen-")?;
    (!generation.is_empty() && generation.bytes().all(|b| b.is_ascii_digit()))
        .then(|| &name[name.len() - generation.len() - ".kolla-gen-".len()..])
}
