//! Compose files -> typed services. A node with role `R` runs
//! `compose/R.yml`; this module reads such a file into `ServiceSpec`s.
//!
//! The format is the Compose Spec (so `docker-compose config` accepts our
//! files and operators already know it), restricted to the keys kolla
//! supports: any other key is an error naming file:line, never silently
//! dropped. Kolla's own settings live under `x-kolla`. YAML anchors and
//! merge keys work; string values are interpolated (`${VAR}`, see
//! `interpolate`) from the environment, a `.env` beside the file, and
//! globals.yml, in that order. The legacy v1 layout of the original Kolla
//! files (services at the top level, `net:`, `name:`) is read too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::ConfigError;
use super::interpolate::interpolate;

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
    /// A host path.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
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

/// Whether the old container stops before the new one starts (the default,
/// required with host networking) or after the new one is healthy.
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

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KollaSettings {
    /// A data container: created, never started, never recreated or removed
    /// (except by `destroy --purge-data`).
    pub data: bool,
    pub config: Option<ConfigTemplates>,
    /// A one-shot job (e.g. `glance-manage db_sync`) run before the service
    /// starts, once per image and config change; it must exit 0.
    pub bootstrap: Option<Vec<String>>,
    pub update_order: UpdateOrder,
    /// Ports a host-network service listens on: `kolla prechecks` checks
    /// they are free before the first deploy.
    pub host_ports: Vec<u16>,
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

/// A compose file, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeFile {
    pub path: PathBuf,
    /// Sorted by name.
    pub services: Vec<ServiceSpec>,
    /// Top-level named volumes, by the key services use.
    pub volumes: BTreeMap<String, VolumeSpec>,
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

// ---------------------------------------------------------------------------
// What the YAML holds, before interpolation and checks.

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug)]
enum Environment {
    Map(BTreeMap<String, Option<Scalar>>),
    List(Vec<String>),
}

// By hand rather than `untagged`: an untagged enum buffers its input, and
// the buffered form loses what a nested scalar was (`PORT: 5000`).
impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Environment;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of names to values, or a list of NAME=value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Environment, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, Option<Scalar>>()? {
                    out.insert(key, value);
                }
                Ok(Environment::Map(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Environment, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Scalar>()? {
                    out.push(item.into_text());
                }
                Ok(Environment::List(out))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A map value compose reads as text, whatever YAML made of it
/// (`PORT: 5000`, `DEBUG: true`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Unsigned(u64),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(text) => text,
            Scalar::Unsigned(n) => n.to_string(),
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Boolean(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DependsLong {
    condition: Option<String>,
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    restart: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, DependsLong>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MountLong {
    #[serde(rename = "type")]
    kind: String,
    source: Option<String>,
    target: String,
    #[serde(default)]
    read_only: Option<Spanned<Flex<bool>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMount {
    Short(String),
    Long(MountLong),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortLong {
    target: u16,
    published: Option<String>,
    host_ip: Option<String>,
    protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPort {
    Short(String),
    Long(PortLong),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthcheck {
    test: Option<StringOrList>,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<Spanned<Flex<u32>>>,
    start_period: Option<String>,
    #[serde(default)]
    disable: bool,
}

/// A number or boolean written as itself or as text to interpolate
/// (`retries: $RETRIES`, `read_only: ${RO:-false}`), as compose allows.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flex<T> {
    Value(T),
    Text(String),
}

/// What `Flex` text may become once interpolated.
trait FromText: Sized {
    fn from_text(text: &str) -> Option<Self>;
    const EXPECTED: &'static str;
}

impl FromText for bool {
    fn from_text(text: &str) -> Option<bool> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        }
    }
    const EXPECTED: &'static str = "true or false";
}

impl FromText for u32 {
    fn from_text(text: &str) -> Option<u32> {
        text.trim().parse().ok()
    }
    const EXPECTED: &'static str = "a whole number";
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawUlimit {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfigTemplates {
    src: String,
    dest: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    command: StringOrList,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKolla {
    #[serde(default)]
    data: bool,
    config: Option<RawConfigTemplates>,
    bootstrap: Option<RawBootstrap>,
    update_order: Option<String>,
    #[serde(default)]
    host_ports: Vec<String>,
}

/// The service keys kolla supports. `net` and `name` are the legacy v1
/// spellings of `network_mode` and `container_name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    image: Option<String>,
    command: Option<StringOrList>,
    entrypoint: Option<StringOrList>,
    environment: Option<Environment>,
    env_file: Option<StringOrList>,
    network_mode: Option<String>,
    net: Option<String>,
    container_name: Option<String>,
    name: Option<String>,
    pid: Option<String>,
    ipc: Option<String>,
    #[serde(default)]
    privileged: Option<Spanned<Flex<bool>>>,
    #[serde(default)]
    cap_add: Vec<String>,
    #[serde(default)]
    cap_drop: Vec<String>,
    #[serde(default)]
    security_opt: Vec<String>,
    user: Option<String>,
    #[serde(default)]
    volumes: Vec<Spanned<RawMount>>,
    #[serde(default)]
    volumes_from: Vec<Spanned<String>>,
    depends_on: Option<Spanned<DependsOn>>,
    healthcheck: Option<RawHealthcheck>,
    restart: Option<String>,
    init: Option<Spanned<Flex<bool>>>,
    #[serde(default)]
    ulimits: BTreeMap<String, RawUlimit>,
    tmpfs: Option<StringOrList>,
    labels: Option<Environment>,
    extra_hosts: Option<Environment>,
    sysctls: Option<Environment>,
    #[serde(default)]
    ports: Vec<Spanned<RawPort>>,
    #[serde(default)]
    profiles: Vec<String>,
    stop_grace_period: Option<String>,
    stop_signal: Option<String>,
    #[serde(rename = "x-kolla", default)]
    kolla: RawKolla,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    driver: Option<String>,
    #[serde(default)]
    external: bool,
    name: Option<String>,
}

/// Top-level keys of a Compose Spec file. `x-*` keys hold anchors and are
/// otherwise ignored (checked separately, as serde cannot mix a key pattern
/// with deny_unknown_fields).
#[derive(Debug, Deserialize)]
struct RawFile {
    services: BTreeMap<String, Spanned<RawService>>,
    #[serde(default)]
    volumes: BTreeMap<String, Option<RawVolume>>,
}

const TOP_LEVEL_KEYS: &[&str] = &["version", "name", "services", "volumes"];

// ---------------------------------------------------------------------------

/// Variables for interpolation, in priority order: the process environment
/// (as passed in by the caller), the `.env` beside the file, globals.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    pub environment: BTreeMap<String, String>,
    pub globals: BTreeMap<String, String>,
}

/// Read and resolve one compose file.
pub fn load(path: &Path, variables: &Variables) -> Result<ComposeFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dotenv = dotenv_in(path.parent().unwrap_or(Path::new(".")))?;
    parse(&text, path, variables, &dotenv)
}

/// The `.env` file of folder `dir` (none: empty).
pub fn dotenv_in(dir: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let path = dir.join(".env");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_dotenv(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// `.env`: `KEY=value` lines, `#` comments, optional quotes around values.
pub fn parse_dotenv(text: &str, path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut vars = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("line {}: expected KEY=value", index + 1),
            });
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.insert(key.trim().to_string(), value.to_string());
    }
    Ok(vars)
}

/// Services known by a container name of their own: every reference to
/// their key (`volumes_from`, `depends_on`, `network_mode: service:`) now
/// names them by it. Two services may not share a name.
fn rename_references(
    services: &mut [ServiceSpec],
    renamed: &BTreeMap<String, String>,
    path: &Path,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeMap::new();
    for service in services.iter() {
        if let Some(first) = seen.insert(service.name.clone(), service.line) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "line {}: a second service is named {:?} (the first at line {first}); container names must be unique",
                    service.line, service.name
                ),
            });
        }
    }
    if renamed.is_empty() {
        return Ok(());
    }
    let new_name = |old: &str| renamed.get(old).cloned().unwrap_or_else(|| old.to_string());
    for service in services.iter_mut() {
        for source in &mut service.volumes_from {
            let (name, mode) = match source.split_once(':') {
                Some((name, mode)) => (name.to_string(), Some(mode.to_string())),
                None => (source.clone(), None),
            };
            *source = match mode {
                Some(mode) => format!("{}:{mode}", new_name(&name)),
                None => new_name(&name),
            };
        }
        service.depends_on = std::mem::take(&mut service.depends_on)
            .into_iter()
            .map(|(name, condition)| (new_name(&name), condition))
            .collect();
        if let Some(mode) = &service.network_mode
            && let Some(target) = mode.strip_prefix("service:")
        {
            service.network_mode = Some(format!("service:{}", new_name(target)));
        }
    }
    Ok(())
}

/// Kolla's v1 files declare data containers as ordinary services: an
/// image whose command exits at once, that other services use through
/// `volumes_from`. Such a service is a data container (created, never
/// started, never removed without `--purge-data`) when it is used by
/// another through `volumes_from`, holds volumes (declared in the file, or
/// a `-data` image), and shows nothing of a server: no command of its own
/// beyond `true`, no ports, network, restart policy, privileges,
/// environment, healthcheck or config. A running service others share
/// volumes with (a v1 `volumes_from: [nova-libvirt]`) keeps running. The
/// Compose Spec layout says so explicitly instead (`x-kolla: {data:
/// true}`).
fn mark_legacy_data_containers(services: &mut [ServiceSpec]) {
    let used: std::collections::BTreeSet<String> = services
        .iter()
        .flat_map(|s| s.volumes_from.iter())
        .map(|v| v.split(':').next().unwrap_or(v).to_string())
        .collect();
    for service in services.iter_mut() {
        let exits_at_once = match service.command.as_deref() {
            None => true,
            Some([only]) => matches!(only.as_str(), "true" | "/bin/true"),
            Some(_) => false,
        };
        // The image's own name: after the last `/`, before a tag or digest.
        let image_name = service
            .image
            .rsplit('/')
            .next()
            .and_then(|last| last.split([':', '@']).next())
            .unwrap_or_default();
        let holds_volumes = !service.volumes.is_empty() || image_name.ends_with("data");
        let serves = !service.ports.is_empty()
            || service.network_mode.is_some()
            || service.restart.as_deref().is_some_and(|r| r != "no")
            || service.privileged
            || !service.environment.is_empty()
            || service.healthcheck.is_some()
            || service.kolla.config.is_some()
            || service.kolla.bootstrap.is_some();
        if used.contains(&service.name) && holds_volumes && exits_at_once && !serves {
            service.kolla.data = true;
        }
    }
}

/// How compose YAML is read: the parser's resource limits (events, nodes,
/// aliases, depth, bytes), which stop a "billion laughs" file, stay; its
/// alias-per-anchor ratio goes, since real compose files use many aliases
/// of few anchors (one `x-service` anchor merged into every service).
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.enforce_alias_anchor_ratio = false;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// The parser's "budget breached: Nodes { .. }" in words.
fn budget_in_words(message: &str) -> String {
    const LIMITS: &[(&str, &str)] = &[
        ("Events", "too many YAML events (over a million)"),
        ("Aliases", "too many aliases (*name)"),
        ("Anchors", "too many anchors (&name)"),
        ("Depth", "nesting too deep"),
        ("Nodes", "too many values once aliases are expanded"),
        ("ScalarBytes", "too much text once aliases are expanded"),
        ("MergeKeys", "too many merge keys (<<)"),
        ("RecordedAnchorEvents", "anchors that expand to too much"),
        (
            "RecordedAnchorBytes",
            "anchors that expand to too much text",
        ),
    ];
    let Some((before, after)) = message.split_once("budget breached: ") else {
        return message.to_string();
    };
    let variant: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    match LIMITS.iter().find(|(name, _)| *name == variant) {
        Some((_, words)) => format!(
            "{before}the file is too big to read safely: {words} (a limit against YAML bombs); {}",
            after.lines().next().unwrap_or_default()
        ),
        None => message.to_string(),
    }
}

/// Parse compose YAML `text` (of file `path`, for errors and relative paths).
pub fn parse(
    text: &str,
    path: &Path,
    variables: &Variables,
    dotenv: &BTreeMap<String, String>,
) -> Result<ComposeFile, ConfigError> {
    let yaml_error = |e: serde_saphyr::Error| ConfigError::Yaml {
        path: path.to_path_buf(),
        message: budget_in_words(e.to_string().trim_start_matches("error: ")),
    };
    // An empty file would deploy nothing, and with --remove-orphans remove
    // everything: surely not what its author meant.
    let empty = |what: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: format!("{what}: a compose file must define at least one service"),
    };
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Err(empty("the file is empty"));
    }
    // The top level decides the layout: v1 files have services at the top.
    let top: BTreeMap<String, serde::de::IgnoredAny> =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_error)?;
    let legacy = !top.contains_key("services");
    let raw = if !legacy {
        for key in top.keys() {
            if !key.starts_with("x-") && !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::Yaml {
                    path: path.to_path_buf(),
                    message: format!(
                        "line {}: unknown top-level key `{key}`, expected one of {} or an x- extension",
                        line_of_key(text, key),
                        TOP_LEVEL_KEYS.join(", ")
                    ),
                });
            }
        }
        serde_saphyr::from_str_with_options::<RawFile>(text, yaml_options()).map_err(yaml_error)?
    } else {
        let services: BTreeMap<String, Spanned<RawService>> =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_error)?;
        RawFile {
            services,
            volumes: BTreeMap::new(),
        }
    };
    if raw.services.is_empty() {
        return Err(empty("no services"));
    }
    let lookup = |name: &str| {
        variables
            .environment
            .get(name)
            .or_else(|| dotenv.get(name))
            .or_else(|| variables.globals.get(name))
            .cloned()
    };
    let resolver = Resolver {
        path,
        text,
        lookup: &lookup,
    };
    let mut services = Vec::new();
    // Every service's errors in one run, not one per attempt.
    const MOST_ERRORS: usize = 20;
    let mut renamed = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, raw) in raw.services {
        match resolver.service(&name, raw) {
            Ok(service) => {
                if service.name != name {
                    renamed.insert(name, service.name.clone());
                }
                services.push(service);
            }
            Err(e) if errors.len() < MOST_ERRORS => errors.push(e),
            Err(_) => {}
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => return Err(ConfigError::Several(errors)),
    }
    rename_references(&mut services, &renamed, path)?;
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let volumes = raw
        .volumes
        .into_iter()
        .map(|(key, spec)| {
            let spec = spec.unwrap_or(RawVolume {
                driver: None,
                external: false,
                name: None,
            });
            let volume = VolumeSpec {
                literal: spec.name.is_some() || spec.external,
                name: spec.name.unwrap_or_else(|| key.clone()),
                external: spec.external,
                driver: spec.driver,
            };
            (key, volume)
        })
        .collect();
    if legacy {
        mark_legacy_data_containers(&mut services);
    }
    let mut file = ComposeFile {
        path: path.to_path_buf(),
        services,
        volumes,
    };
    check_references(&file)?;
    // Mounts name volumes by key; the container mounts the volume's name.
    for service in &mut file.services {
        for mount in &mut service.volumes {
            if let Mount::Volume {
                source: Some(key),
                literal,
                ..
            } = mount
                && let Some(volume) = file.volumes.get(key.as_str())
            {
                *literal = volume.literal;
                *key = volume.name.clone();
            }
        }
    }
    Ok(file)
}

/// The 1-based line where `key:` starts a line at the top level, or 1.
fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(&format!("{key}:")) || l.starts_with(&format!("\"{key}\":")))
        .map_or(1, |i| i + 1)
}

struct Resolver<'a> {
    path: &'a Path,
    /// The file's text, to find the line of the key an error is about.
    text: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// The line of `key` (`healthcheck.retries`: `retries` inside
/// `healthcheck`) in the block that starts at line `from` (1-based), if the
/// block itself writes it (a key merged in from an anchor is not there).
fn line_of_key_in_block(text: &str, from: u64, key: &str) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let start = usize::try_from(from).ok()?.checked_sub(1)?;
    let block_indent = indent_of(lines.get(start)?);
    let mut parts = key.split('.');
    let mut want = parts.next()?;
    // The first part sits at the block's own indentation; each next part
    // anywhere deeper inside the block of the part before it.
    let mut deeper_than: Option<usize> = None;
    let mut found = None;
    for (i, line) in lines.iter().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let here = indent_of(line);
        let left_block = here < block_indent;
        let left_parent = deeper_than.is_some_and(|parent| here <= parent);
        if left_block || left_parent {
            break;
        }
        let at_level = match deeper_than {
            None => here == block_indent,
            Some(parent) => here > parent,
        };
        let key_here = trimmed.trim_start_matches("- ");
        if at_level
            && (key_here.starts_with(&format!("{want}:"))
                || key_here.starts_with(&format!("\"{want}\":")))
        {
            found = Some(i as u64 + 1);
            match parts.next() {
                Some(next) => {
                    want = next;
                    deeper_than = Some(here);
                }
                None => return found,
            }
        }
    }
    found
}

impl Resolver<'_> {
    /// An error about `service`, at the line of the key the message starts
    /// with (`privileged: ...`) when the service's block writes it, else at
    /// `line`.
    fn error(&self, line: u64, service: &str, message: impl std::fmt::Display) -> ConfigError {
        let message = message.to_string();
        let key: String = message
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
            .collect();
        let line = if !key.is_empty() && message[key.len()..].starts_with(':') {
            line_of_key_in_block(self.text, line, &key).unwrap_or(line)
        } else {
            line
        };
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            message: format!("line {line}: service {service}: {message}"),
        }
    }

    fn text(
        &self,
        line: u64,
        service: &str,
        field: &str,
        value: &str,
    ) -> Result<String, ConfigError> {
        interpolate(value, self.lookup)
            .map_err(|e| self.error(line, service, format!("{field}: {e}")))
    }

    /// `extra_hosts`, as a map (`host: address`) or a list (`host:address`
    /// or `host=address`): `host:address` lines.
    fn extra_hosts(
        &self,
        line: u64,
        service: &str,
        raw: Option<Environment>,
    ) -> Result<Vec<String>, ConfigError> {
        let entries = match raw {
            None => return Ok(Vec::new()),
            Some(Environment::Map(map)) => map
                .into_iter()
                .map(|(host, address)| {
                    let address = match address {
                        Some(Scalar::Text(text)) => {
                            self.text(line, service, "extra_hosts", &text)?
                        }
                        Some(other) => other.into_text(),
                        None => String::new(),
                    };
                    Ok((host, address))
                })
                .collect::<Result<Vec<_>, ConfigError>>()?,
            Some(Environment::List(list)) => list
                .iter()
                .map(|item| {
                    let item = self.text(line, service, "extra_hosts", item)?;
                    // The first `=`, else the first `:` (an IPv6 address
                    // holds colons of its own).
                    let split = item.split_once('=').or_else(|| item.split_once(':'));
                    Ok(split
                        .map(|(h, a)| (h.to_string(), a.to_string()))
                        .unwrap_or((item.clone(), String::new())))
                })
                .collect::<Result<Vec<_>, ConfigError>>()?,
        };
        entries
            .into_iter()
            .map(|(host, address)| {
                if host.is_empty() || address.is_empty() {
                    Err(self.error(
                        line,
                        service,
                        format!("extra_hosts: {host:?} needs an address (host:address)"),
                    ))
                } else {
                    Ok(format!("{host}:{address}"))
                }
            })
            .collect()
    }

    /// A `Flex` value: itself, or its text interpolated and read. Errors
    /// name the value's own line (`line` only when it has none).
    fn flex<T: FromText>(
        &self,
        line: u64,
        service: &str,
        field: &str,
        value: Option<Spanned<Flex<T>>>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let line = match value.referenced.line() {
            0 => line,
            own => own,
        };
        match value.value {
            Flex::Value(v) => Ok(Some(v)),
            Flex::Text(text) => {
                let resolved = self.text(line, service, field, &text)?;
                T::from_text(&resolved).map(Some).ok_or_else(|| {
                    self.error(
                        line,
                        service,
                        format!(
                            "{field}: {resolved:?} (from {text:?}) is not {}",
                            T::EXPECTED
                        ),
                    )
                })
            }
        }
    }

    fn texts(
        &self,
        line: u64,
        service: &str,
        field: &str,
        values: &[String],
    ) -> Result<Vec<String>, ConfigError> {
        values
            .iter()
            .map(|v| self.text(line, service, field, v))
            .collect()
    }

    /// `command:`-style values: a list as is, a string split like a shell.
    fn argv(
        &self,
        line: u64,
        service: &str,
        field: &str,
        value: Option<StringOrList>,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        match value {
            None => Ok(None),
            Some(StringOrList::Many(list)) => self.texts(line, service, field, &list).map(Some),
            Some(StringOrList::One(text)) => {
                let text = self.text(line, service, field, &text)?;
                shell_words::split(&text)
                    .map(Some)
                    .map_err(|e| self.error(line, service, format!("{field}: {e}")))
            }
        }
    }

    fn duration(
        &self,
        line: u64,
        service: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let value = self.text(line, service, field, &value)?;
        parse_duration(&value).map(Some).ok_or_else(|| {
            self.error(
                line,
                service,
                format!("{field}: {value:?} is not a duration like 30s, 1m30s or 500ms"),
            )
        })
    }

    fn key_values(
        &self,
        line: u64,
        service: &str,
        field: &str,
        value: Option<Environment>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        match value {
            None => {}
            Some(Environment::Map(map)) => {
                for (key, value) in map {
                    // `KEY:` with no value takes KEY from the environment.
                    let value = match value {
                        Some(Scalar::Text(v)) => self.text(line, service, field, &v)?,
                        Some(other) => other.into_text(),
                        None => (self.lookup)(&key).unwrap_or_default(),
                    };
                    out.insert(key, value);
                }
            }
            Some(Environment::List(list)) => {
                for item in list {
                    let item = self.text(line, service, field, &item)?;
                    match item.split_once('=') {
                        Some((k, v)) => out.insert(k.to_string(), v.to_string()),
                        None => out.insert(item.clone(), (self.lookup)(&item).unwrap_or_default()),
                    };
                }
            }
        }
        Ok(out)
    }

    fn service(&self, name: &str, raw: Spanned<RawService>) -> Result<ServiceSpec, ConfigError> {
        let line = raw.defined.line();
        let raw = raw.value;
        let err = |message: String| self.error(line, name, message);
        if !super::globals::is_valid_path_component(name)
            && !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(err(
                "a service name may use only letters, digits, '_', '.', '-'".into(),
            ));
        }
        if let Some(reserved) = reserved_suffix(name) {
            return Err(err(format!(
                "a service name may not end in {reserved:?}: kolla names the containers of a swap that way"
            )));
        }
        let image = match raw.image {
            Some(image) => self.text(line, name, "image", &image)?,
            None => return Err(err("no image".into())),
        };
        if image.trim().is_empty() {
            return Err(err("image is empty (is its variable set?)".into()));
        }

        let mut environment = BTreeMap::new();
        if let Some(files) = raw.env_file {
            let files = match files {
                StringOrList::One(f) => vec![f],
                StringOrList::Many(list) => list,
            };
            let dir = self.path.parent().unwrap_or(Path::new("."));
            for file in files {
                let file = dir.join(self.text(line, name, "env_file", &file)?);
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| err(format!("env_file {}: {e}", file.display())))?;
                environment.extend(parse_dotenv(&text, &file)?);
            }
        }
        environment.extend(self.key_values(line, name, "environment", raw.environment)?);

        let network_mode = match (raw.network_mode, raw.net) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "both network_mode and net (its legacy name) are set".into()
                ));
            }
            (mode, net) => mode
                .or(net)
                .map(|m| self.text(line, name, "network_mode", &m))
                .transpose()?,
        };
        if let Some(mode) = &network_mode
            && !matches!(mode.as_str(), "host" | "bridge" | "none")
            && !mode.starts_with("container:")
            && !mode.starts_with("service:")
        {
            return Err(err(format!(
                "network_mode {mode:?}: kolla supports host, bridge, none, service:NAME and container:NAME"
            )));
        }

        let mut volumes = Vec::new();
        for mount in raw.volumes {
            let mount_line = mount.referenced.line();
            volumes.push(self.mount(mount_line, name, mount.value)?);
        }

        let mut volumes_from = Vec::new();
        for entry in raw.volumes_from {
            let value = self.text(entry.referenced.line(), name, "volumes_from", &entry.value)?;
            // `service:name` / `container:name` long forms, `:ro` suffix.
            let value = value.trim_start_matches("service:").to_string();
            volumes_from.push((value, entry.referenced.line()));
        }

        let mut depends_on = BTreeMap::new();
        if let Some(depends) = raw.depends_on {
            let depends_line = depends.referenced.line();
            match depends.value {
                DependsOn::List(list) => {
                    for dependency in list {
                        depends_on.insert(dependency, Condition::Started);
                    }
                }
                DependsOn::Map(map) => {
                    for (dependency, long) in map {
                        let condition = match long.condition.as_deref() {
                            None | Some("service_started") => Condition::Started,
                            Some("service_healthy") => Condition::Healthy,
                            Some("service_completed_successfully") => {
                                Condition::CompletedSuccessfully
                            }
                            Some(other) => {
                                return Err(self.error(depends_line, name, format!(
                                    "depends_on {dependency}: unknown condition {other:?} (service_started, service_healthy, service_completed_successfully)"
                                )));
                            }
                        };
                        // Accepted at their defaults only: kolla always waits
                        // for a dependency and never restarts dependents.
                        if long.required == Some(false) {
                            return Err(self.error(depends_line, name, format!(
                                "depends_on {dependency}: required: false is not supported (every dependency must be deployed)"
                            )));
                        }
                        if long.restart == Some(true) {
                            return Err(self.error(depends_line, name, format!(
                                "depends_on {dependency}: restart: true is not supported (kolla never restarts dependents)"
                            )));
                        }
                        depends_on.insert(dependency, condition);
                    }
                }
            }
        }

        let healthcheck = match raw.healthcheck {
            None => None,
            Some(h) => {
                let test = match h.test {
                    None => Vec::new(),
                    Some(StringOrList::One(shell)) => vec![
                        "CMD-SHELL".to_string(),
                        self.text(line, name, "healthcheck.test", &shell)?,
                    ],
                    Some(StringOrList::Many(list)) => {
                        self.texts(line, name, "healthcheck.test", &list)?
                    }
                };
                if !h.disable
                    && !matches!(
                        test.first().map(String::as_str),
                        Some("CMD" | "CMD-SHELL" | "NONE")
                    )
                {
                    return Err(err(
                        "healthcheck.test must start with CMD, CMD-SHELL or NONE".into(),
                    ));
                }
                Some(Healthcheck {
                    test,
                    interval: self.duration(line, name, "healthcheck.interval", h.interval)?,
                    timeout: self.duration(line, name, "healthcheck.timeout", h.timeout)?,
                    retries: self.flex(line, name, "healthcheck.retries", h.retries)?,
                    start_period: self.duration(
                        line,
                        name,
                        "healthcheck.start_period",
                        h.start_period,
                    )?,
                    disable: h.disable,
                })
            }
        };

        let restart = raw
            .restart
            .map(|r| self.text(line, name, "restart", &r))
            .transpose()?;
        if let Some(policy) = &restart {
            let valid = matches!(
                policy.as_str(),
                "no" | "always" | "unless-stopped" | "on-failure"
            ) || policy
                .strip_prefix("on-failure:")
                .is_some_and(|n| n.parse::<u32>().is_ok());
            if !valid {
                return Err(err(format!(
                    "restart {policy:?}: expected no, always, unless-stopped or on-failure[:N]"
                )));
            }
        }

        let ulimits = raw
            .ulimits
            .into_iter()
            .map(|(key, value)| {
                let limit = match value {
                    RawUlimit::Single(n) => Ulimit { soft: n, hard: n },
                    RawUlimit::Pair { soft, hard } => Ulimit { soft, hard },
                };
                (key, limit)
            })
            .collect();

        let tmpfs = match raw.tmpfs {
            None => Vec::new(),
            Some(StringOrList::One(one)) => vec![self.text(line, name, "tmpfs", &one)?],
            Some(StringOrList::Many(list)) => self.texts(line, name, "tmpfs", &list)?,
        };

        let mut ports = Vec::new();
        for port in raw.ports {
            ports.push(self.port(port.referenced.line(), name, port.value)?);
        }
        if network_mode.as_deref() == Some("host") && !ports.is_empty() {
            return Err(err("ports have no effect with network_mode: host (the service binds the host's ports itself)".into()));
        }

        let kolla = self.kolla(line, name, raw.kolla)?;
        if !kolla.host_ports.is_empty() && network_mode.as_deref() != Some("host") {
            return Err(err(
                "x-kolla.host_ports is for network_mode: host (use ports otherwise)".into(),
            ));
        }
        let container_name = match (raw.container_name, raw.name) {
            (Some(n), _) | (None, Some(n)) => Some(self.text(line, name, "container_name", &n)?),
            (None, None) => None,
        };
        // A container name of its own (`container_name`, v1 `name`) is the
        // service's name from here on: its containers and the names of a
        // swap derive from it (references to the key are rewritten after).
        let own_name = match container_name {
            Some(own) if own != name => {
                if !own
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                    || own.is_empty()
                {
                    return Err(err(format!(
                        "container_name {own:?}: a container name may use only letters, digits, '_', '.', '-'"
                    )));
                }
                if let Some(reserved) = reserved_suffix(&own) {
                    return Err(err(format!(
                        "container_name {own:?} may not end in {reserved:?}: kolla names the containers of a swap that way"
                    )));
                }
                own
            }
            _ => name.to_string(),
        };

        Ok(ServiceSpec {
            name: own_name,
            line,
            image,
            command: self.argv(line, name, "command", raw.command)?,
            entrypoint: self.argv(line, name, "entrypoint", raw.entrypoint)?,
            environment,
            network_mode,
            pid: raw
                .pid
                .map(|v| self.text(line, name, "pid", &v))
                .transpose()?,
            ipc: raw
                .ipc
                .map(|v| self.text(line, name, "ipc", &v))
                .transpose()?,
            privileged: self
                .flex(line, name, "privileged", raw.privileged)?
                .unwrap_or(false),
            cap_add: self.texts(line, name, "cap_add", &raw.cap_add)?,
            cap_drop: self.texts(line, name, "cap_drop", &raw.cap_drop)?,
            security_opt: self.texts(line, name, "security_opt", &raw.security_opt)?,
            user: raw
                .user
                .map(|v| self.text(line, name, "user", &v))
                .transpose()?,
            volumes,
            volumes_from: volumes_from.into_iter().map(|(v, _)| v).collect(),
            depends_on,
            healthcheck,
            restart,
            init: self.flex(line, name, "init", raw.init)?,
            ulimits,
            tmpfs,
            labels: self.key_values(line, name, "labels", raw.labels)?,
            extra_hosts: self.extra_hosts(line, name, raw.extra_hosts)?,
            sysctls: self.key_values(line, name, "sysctls", raw.sysctls)?,
            ports,
            profiles: raw.profiles,
            stop_grace_period: self.duration(
                line,
                name,
                "stop_grace_period",
                raw.stop_grace_period,
            )?,
            stop_signal: raw
                .stop_signal
                .map(|s| self.text(line, name, "stop_signal", &s))
                .transpose()?,
            kolla,
        })
    }

    fn mount(&self, line: u64, service: &str, raw: RawMount) -> Result<Mount, ConfigError> {
        let err = |message: String| self.error(line, service, format!("volumes: {message}"));
        match raw {
            RawMount::Short(text) => {
                let text = self.text(line, service, "volumes", &text)?;
                let parts: Vec<&str> = text.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [target] => (None, *target, None),
                    [source, target] => (Some(*source), *target, None),
                    [source, target, mode] => (Some(*source), *target, Some(*mode)),
                    _ => return Err(err(format!("{text:?} is not SOURCE:TARGET[:MODE]"))),
                };
                let read_only = match mode {
                    None | Some("rw") => false,
                    Some("ro") => true,
                    Some(other)
                        if other
                            .split(',')
                            .all(|m| ["ro", "rw", "z", "Z"].contains(&m)) =>
                    {
                        other.split(',').any(|m| m == "ro")
                    }
                    Some(other) => return Err(err(format!("mode {other:?}: expected ro or rw"))),
                };
                if !target.starts_with('/') {
                    return Err(err(format!("target {target:?} must be an absolute path")));
                }
                Ok(match source {
                    None => Mount::Volume {
                        source: None,
                        target: target.to_string(),
                        read_only,
                        literal: false,
                    },
                    Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') => {
                        Mount::Bind {
                            source: self.bind_source(s),
                            target: target.to_string(),
                            read_only,
                        }
                    }
                    Some(s) => Mount::Volume {
                        source: Some(s.to_string()),
                        target: target.to_string(),
                        read_only,
                        literal: false,
                    },
                })
            }
            RawMount::Long(long) => {
                let target = self.text(line, service, "volumes.target", &long.target)?;
                let source = long
                    .source
                    .map(|s| self.text(line, service, "volumes.source", &s))
                    .transpose()?;
                match long.kind.as_str() {
                    "volume" => Ok(Mount::Volume {
                        source,
                        target,
                        read_only: self
                            .flex(line, service, "volumes.read_only", long.read_only)?
                            .unwrap_or(false),
                        literal: false,
                    }),
                    "bind" => match source {
                        Some(s) => Ok(Mount::Bind {
                            source: self.bind_source(&s),
                            target,
                            read_only: self
                                .flex(line, service, "volumes.read_only", long.read_only)?
                                .unwrap_or(false),
                        }),
                        None => Err(err("a bind mount needs a source".into())),
                    },
                    other => Err(err(format!(
                        "type {other:?}: kolla supports volume and bind"
                    ))),
                }
            }
        }
    }

    fn bind_source(&self, source: &str) -> PathBuf {
        let path = PathBuf::from(source);
        if path.is_absolute() {
            path
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(path)
        }
    }

    fn port(&self, line: u64, service: &str, raw: RawPort) -> Result<Port, ConfigError> {
        let err = |message: String| self.error(line, service, format!("ports: {message}"));
        let number = |text: &str| {
            text.parse::<u16>()
                .map_err(|_| err(format!("{text:?} is not a port number")))
        };
        match raw {
            RawPort::Short(text) => {
                let text = self.text(line, service, "ports", &text)?;
                let (spec, protocol) = match text.split_once('/') {
                    Some((spec, protocol)) => (spec, protocol.to_string()),
                    None => (text.as_str(), "tcp".to_string()),
                };
                let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
                let (host_ip, published, target) = match parts.as_slice() {
                    [target] => (None, None, number(target)?),
                    [target, published] => (None, Some(number(published)?), number(target)?),
                    [target, published, ip] => (
                        Some(ip.to_string()),
                        (!published.is_empty())
                            .then(|| number(published))
                            .transpose()?,
                        number(target)?,
                    ),
                    _ => {
                        return Err(err(format!(
                            "{text:?} is not [[IP:]PUBLISHED:]TARGET[/PROTOCOL]"
                        )));
                    }
                };
                Ok(Port {
                    host_ip,
                    published,
                    target,
                    protocol,
                })
            }
            RawPort::Long(long) => Ok(Port {
                host_ip: long.host_ip,
                published: long.published.map(|p| number(&p)).transpose()?,
                target: long.target,
                protocol: long.protocol.unwrap_or_else(|| "tcp".into()),
            }),
        }
    }

    fn kolla(&self, line: u64, service: &str, raw: RawKolla) -> Result<KollaSettings, ConfigError> {
        let update_order = match raw.update_order.as_deref() {
            None | Some("stop-first") => UpdateOrder::StopFirst,
            Some("start-first") => UpdateOrder::StartFirst,
            Some(other) => {
                return Err(self.error(
                    line,
                    service,
                    format!("x-kolla.update_order {other:?}: expected stop-first or start-first"),
                ));
            }
        };
        let config = match raw.config {
            None => None,
            Some(c) => {
                let src = self.text(line, service, "x-kolla.config.src", &c.src)?;
                let dest = self.text(line, service, "x-kolla.config.dest", &c.dest)?;
                if !dest.starts_with('/') || dest.split('/').any(|part| part == "..") {
                    return Err(self.error(
                        line,
                        service,
                        format!(
                            "x-kolla.config.dest {dest:?} must be an absolute path without '..'"
                        ),
                    ));
                }
                let folder = self.path.parent().unwrap_or(Path::new("."));
                let inside = Path::new(&src).is_relative()
                    && Path::new(&src)
                        .components()
                        .try_fold(0usize, |depth, part| match part {
                            std::path::Component::ParentDir => depth.checked_sub(1),
                            std::path::Component::Normal(_) => Some(depth + 1),
                            _ => Some(depth),
                        })
                        .is_some();
                // And where it leads, if it exists (a symlink may lead out).
                let lands_inside = match (folder.canonicalize(), folder.join(&src).canonicalize()) {
                    (Ok(root), Ok(target)) => target.starts_with(root),
                    _ => true,
                };
                if !inside || !lands_inside {
                    return Err(self.error(
                        line,
                        service,
                        format!(
                            "x-kolla.config.src {src:?} must stay inside the compose file's folder {}",
                            folder.display()
                        ),
                    ));
                }
                Some(ConfigTemplates {
                    src: self.bind_source(&src),
                    dest,
                })
            }
        };
        let bootstrap = match raw.bootstrap {
            None => None,
            Some(b) => self.argv(line, service, "x-kolla.bootstrap.command", Some(b.command))?,
        };
        if raw.data && (bootstrap.is_some() || config.is_some()) {
            return Err(self.error(
                line,
                service,
                "a data container (x-kolla.data) never runs, so it takes no config or bootstrap",
            ));
        }
        let mut host_ports = Vec::new();
        for port in &raw.host_ports {
            let text = self.text(line, service, "x-kolla.host_ports", port)?;
            host_ports.push(text.parse::<u16>().map_err(|_| {
                self.error(
                    line,
                    service,
                    format!("x-kolla.host_ports: {text:?} is not a port number"),
                )
            })?);
        }
        Ok(KollaSettings {
            data: raw.data,
            config,
            bootstrap,
            update_order,
            host_ports,
        })
    }
}

/// References between services: volumes_from, depends_on and
/// `network_mode: service:X` must name services of the file, and named
/// volumes must be declared at the top level (as compose requires).
fn check_references(file: &ComposeFile) -> Result<(), ConfigError> {
    let names: BTreeSet<&str> = file.services.iter().map(|s| s.name.as_str()).collect();
    let error = |service: &ServiceSpec, message: String| ConfigError::Invalid {
        path: file.path.clone(),
        message: format!("line {}: service {}: {message}", service.line, service.name),
    };
    for service in &file.services {
        for source in &service.volumes_from {
            let name = source.split(':').next().unwrap_or(source);
            if !names.contains(name) {
                return Err(error(
                    service,
                    format!("volumes_from names {name:?}, which is not a service in this file"),
                ));
            }
        }
        for dependency in service.depends_on.keys() {
            if !names.contains(dependency.as_str()) {
                return Err(error(
                    service,
                    format!("depends_on names {dependency:?}, which is not a service in this file"),
                ));
            }
            if dependency == &service.name {
                return Err(error(service, "depends on itself".into()));
            }
        }
        if let Some(other) = service
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
            && !names.contains(other)
        {
            return Err(error(
                service,
                format!("network_mode names {other:?}, which is not a service in this file"),
            ));
        }
        for mount in &service.volumes {
            if let Mount::Volume {
                source: Some(volume),
                ..
            } = mount
                && !file.volumes.contains_key(volume)
            {
                return Err(error(
                    service,
                    format!("volume {volume:?} is not declared under the top-level volumes:"),
                ));
            }
        }
    }
    Ok(())
}

/// Compose durations: `1h2m3s`, `1m30s`, `10s`, `1.5s`, `500ms`, `20us`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" => 0.000_001,
            _ => return None,
        };
        total += Duration::from_secs_f64(number * seconds);
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        Variables {
            environment: BTreeMap::from([("TAG".to_string(), "from-env".to_string())]),
            globals: BTreeMap::from([
                ("TAG".to_string(), "zed".to_string()),
                ("IMAGE_PREFIX".to_string(), "kolla/".to_string()),
                ("REGISTRY".to_string(), "127.0.0.1:4000".to_string()),
            ]),
        }
    }

    fn parse_text(text: &str) -> Result<ComposeFile, ConfigError> {
        parse(
            text,
            Path::new("compose/compute.yml"),
            &vars(),
            &BTreeMap::new(),
        )
    }

    const COMPUTE: &str = r#"
x-service: &service
  restart: unless-stopped
  environment:
    KOLLA_CONFIG_STRATEGY: COPY_ALWAYS
services:
  computedata:
    image: ${REGISTRY}/kolla/data:${TAG}
    volumes: [/var/lib/nova, "/var/lib/libvirt"]
    x-kolla: {data: true}
  nova-libvirt:
    <<: *service
    image: ${IMAGE_PREFIX}nova-libvirt:${TAG:-latest}
    network_mode: host
    pid: host
    privileged: true
    volumes_from: [computedata]
    healthcheck:
      test: virsh version
      interval: 1m30s
      retries: 3
  nova-compute:
    <<: *service
    image: ${IMAGE_PREFIX}nova-compute:${TAG}
    network_mode: host
    command: nova-compute --config-file "/etc/nova/nova.conf"
    volumes_from: [computedata]
    volumes:
      - nova_logs:/var/log/kolla/nova
      - /run:/run:ro
    depends_on: {nova-libvirt: {condition: service_healthy}}
    healthcheck: {test: [CMD, healthcheck_port, nova-compute, "5672"]}
    stop_grace_period: 90s
    x-kolla:
      config: {src: nova/, dest: /etc/nova}
      bootstrap: {command: [nova-manage, db, sync]}
volumes:
  nova_logs:
"#;

    #[test]
    fn reads_a_compute_file_with_anchors_and_interpolation() {
        let file = parse_text(COMPUTE).unwrap();
        let names: Vec<&str> = file.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["computedata", "nova-compute", "nova-libvirt"]);
        let data = file.service("computedata").unwrap();
        assert_eq!(data.image, "127.0.0.1:4000/kolla/data:from-env");
        assert!(data.kolla.data);
        assert_eq!(data.volumes.len(), 2);
        let compute = file.service("nova-compute").unwrap();
        assert_eq!(compute.image, "kolla/nova-compute:from-env");
        assert_eq!(compute.restart.as_deref(), Some("unless-stopped"));
        assert_eq!(compute.environment["KOLLA_CONFIG_STRATEGY"], "COPY_ALWAYS");
        assert_eq!(
            compute.command.as_deref().unwrap(),
            ["nova-compute", "--config-file", "/etc/nova/nova.conf"]
        );
        assert_eq!(compute.depends_on["nova-libvirt"], Condition::Healthy);
        assert_eq!(compute.volumes_from, vec!["computedata"]);
        assert_eq!(
            compute.volumes,
            vec![
                Mount::Volume {
                    source: Some("nova_logs".into()),
                    target: "/var/log/kolla/nova".into(),
                    read_only: false,
                    literal: false,
                },
                Mount::Bind {
                    source: "/run".into(),
                    target: "/run".into(),
                    read_only: true
                },
            ]
        );
        assert_eq!(compute.stop_grace_period, Some(Duration::from_secs(90)));
        assert_eq!(
            compute.kolla.bootstrap.as_deref().unwrap(),
            ["nova-manage", "db", "sync"]
        );
        let config = compute.kolla.config.as_ref().unwrap();
        assert_eq!(config.src, Path::new("compose/nova/"));
        assert_eq!(config.dest, "/etc/nova");
        let libvirt = file.service("nova-libvirt").unwrap();
        assert!(libvirt.privileged);
        assert_eq!(libvirt.pid.as_deref(), Some("host"));
        let health = libvirt.healthcheck.as_ref().unwrap();
        assert_eq!(health.test, vec!["CMD-SHELL", "virsh version"]);
        assert_eq!(health.interval, Some(Duration::from_secs(90)));
        assert_eq!(file.volumes["nova_logs"].name, "nova_logs");
    }

    #[test]
    fn names_kolla_gives_its_own_containers_are_refused_as_service_names() {
        for name in [
            "web.kolla-lock",
            "web.kolla-new",
            "web.kolla-bootstrap",
            "web.kolla-gen-3",
        ] {
            let text = format!("services:\n  ok:\n    image: x\n  {name}:\n    image: x\n");
            let err = parse_text(&text).unwrap_err().to_string();
            // The line is the service's first key (its body).
            assert!(
                err.starts_with(&format!(
                    "compose/compute.yml: line 5: service {name}: a service name may not end in"
                )),
                "{err}"
            );
        }
        for fine in ["web.kolla-gen-x", "kolla-new", "web.kolla-gen-"] {
            assert_eq!(reserved_suffix(fine), None, "{fine}");
        }
    }

    #[test]
    fn config_paths_stay_inside_their_folders() {
        let with = |src: &str, dest: &str| {
            parse_text(&format!(
                "services:\n  a:\n    image: x\n    x-kolla:\n      config: {{src: {src:?}, dest: {dest:?}}}\n"
            ))
        };
        assert!(with("a/", "/etc/a").is_ok());
        assert!(with("a/../b/", "/etc/a").is_ok());
        for (src, dest, what) in [
            ("../elsewhere/", "/etc/a", "must stay inside"),
            ("a/../../b", "/etc/a", "must stay inside"),
            ("/etc/", "/etc/a", "must stay inside"),
            ("a/", "etc/a", "absolute path"),
            ("a/", "/etc/../root", "without '..'"),
        ] {
            let err = with(src, dest).unwrap_err().to_string();
            assert!(
                err.starts_with("compose/compute.yml: line 3: service a:"),
                "{err}"
            );
            assert!(err.contains(what), "{src} {dest}: {err}");
        }
        // A symlink that leads out of the folder is refused too.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("compose")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("compose/link")).unwrap();
        let text =
            "services:\n  a:\n    image: x\n    x-kolla: {config: {src: link/, dest: /etc/a}}\n";
        let err = parse(
            text,
            &dir.path().join("compose/c.yml"),
            &vars(),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must stay inside"), "{err}");
    }

    #[test]
    fn named_volumes_mount_the_name_they_are_created_under() {
        let text = "services:\n  a:\n    image: x\n    volumes: [own:/o, named:/n, outside:/e, /anon]\nvolumes:\n  own:\n  named: {name: literal}\n  outside: {external: true}\n";
        let file = parse_text(text).unwrap();
        let mounts: Vec<(Option<&str>, bool)> = file.services[0]
            .volumes
            .iter()
            .map(|m| match m {
                Mount::Volume {
                    source, literal, ..
                } => (source.as_deref(), *literal),
                Mount::Bind { .. } => (None, false),
            })
            .collect();
        assert_eq!(
            mounts,
            vec![
                (Some("own"), false),
                (Some("literal"), true),
                (Some("outside"), true),
                (None, false)
            ]
        );
        assert!(file.volumes["outside"].external);
    }

    #[test]
    fn numbers_and_booleans_may_come_from_variables() {
        let text = "services:\n  a:\n    image: x\n    privileged: ${PRIV:-true}\n    init: $INIT\n    volumes: [{type: volume, source: v, target: /v, read_only: \"${RO:-false}\"}]\n    healthcheck:\n      test: [CMD, \"true\"]\n      retries: $RETRIES\nvolumes:\n  v:\n";
        let variables = Variables {
            environment: BTreeMap::from([
                ("INIT".to_string(), "false".to_string()),
                ("RETRIES".to_string(), "7".to_string()),
            ]),
            globals: BTreeMap::new(),
        };
        let file = parse(text, Path::new("c.yml"), &variables, &BTreeMap::new()).unwrap();
        let a = &file.services[0];
        assert!(a.privileged);
        assert_eq!(a.init, Some(false));
        assert_eq!(a.healthcheck.as_ref().unwrap().retries, Some(7));
        assert!(matches!(
            a.volumes[0],
            Mount::Volume {
                read_only: false,
                ..
            }
        ));
        // A value that is not one, with the line of its own key.
        let bad = text.replace("$RETRIES", "${RETRIES}x");
        let err = parse(&bad, Path::new("c.yml"), &variables, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.yml: line 9: service a: healthcheck.retries: \"7x\""),
            "{err}"
        );
    }

    #[test]
    fn environment_and_label_values_may_be_numbers_booleans_or_null() {
        let text = "services:\n  a:\n    image: x\n    environment: {N: 5, B: true, F: 1.5, E: null, S: text}\n    labels: {n: 1, b: false}\n  b:\n    image: x\n    environment: [N=5, E]\n";
        let file = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
        let a = &file.services[0];
        assert_eq!(a.environment["N"], "5");
        assert_eq!(a.environment["B"], "true");
        assert_eq!(a.environment["F"], "1.5");
        assert_eq!(a.environment["S"], "text");
        assert_eq!(a.labels["n"], "1");
        assert_eq!(a.labels["b"], "false");
    }

    #[test]
    fn every_service_error_of_a_file_is_reported_at_once() {
        let text = "services:\n  a:\n    image: x\n    privileged: maybe\n  b:\n    command: [x]\n  c:\n    image: x\n    restart: sometimes\n  d:\n    image: x\n";
        let err = parse_text(text).unwrap_err().to_string();
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("compose/compute.yml: line"))
            .collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(
            lines[0].starts_with("compose/compute.yml: line 4: service a: privileged"),
            "{err}"
        );
        assert!(lines[1].contains("service b: no image"), "{err}");
        assert!(lines[2].contains("service c:"), "{err}");
    }

    #[test]
    fn extra_hosts_and_sysctls_in_map_and_list_form() {
        let text = "services:\n  a:\n    image: x\n    extra_hosts: {db: 10.0.0.5, v6: \"::1\"}\n    sysctls: {net.core.somaxconn: 1024, net.ipv4.tcp_syncookies: 0}\n  b:\n    image: x\n    extra_hosts: [\"db:10.0.0.5\", \"v6=::1\"]\n    sysctls: [net.core.somaxconn=1024]\n";
        let file = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
        for service in &file.services {
            assert_eq!(
                service.extra_hosts,
                vec!["db:10.0.0.5", "v6:::1"],
                "{}",
                service.name
            );
            assert_eq!(service.sysctls["net.core.somaxconn"], "1024");
        }
        assert_eq!(file.services[0].sysctls["net.ipv4.tcp_syncookies"], "0");
        let err = parse_text("services:\n  a:\n    image: x\n    extra_hosts: [lonely]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("extra_hosts: \"lonely\" needs an address"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_line_of_their_own_key() {
        let text = "x-base: &base\n  restart: sometimes\nservices:\n  a:\n    image: x\n    environment: {privileged: 1}\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: soon\n    privileged: maybe\n  b:\n    <<: *base\n    image: x\n";
        let err = parse_text(text).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines[0].starts_with("compose/compute.yml: line 9: service a: healthcheck.interval"),
            "{err}"
        );
        // A key merged from an anchor: the line of the service using it.
        assert!(
            lines[1].starts_with("compose/compute.yml: line 12: service b: restart"),
            "{err}"
        );
        assert_eq!(line_of_key_in_block(text, 5, "privileged"), Some(10));
        assert_eq!(
            line_of_key_in_block(text, 5, "healthcheck.interval"),
            Some(9)
        );
        assert_eq!(
            line_of_key_in_block(text, 5, "healthcheck.retries"),
            Some(7)
        );
        assert_eq!(line_of_key_in_block(text, 5, "ports"), None);
    }

    #[test]
    fn an_empty_file_or_one_without_services_is_an_error() {
        for text in [
            "",
            "# nothing\n",
            "services: {}\n",
            "version: '3'\nservices: {}\n",
        ] {
            let err = parse_text(text).unwrap_err().to_string();
            assert!(err.starts_with("compose/compute.yml:"), "{text:?}: {err}");
            assert!(err.contains("at least one service"), "{text:?}: {err}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "services:\n  a:\n    image: x\n    privilegd: true\n";
        let err = parse_text(text).unwrap_err().to_string();
        assert!(
            err.starts_with("compose/compute.yml: line 4 column 5: unknown field `privilegd`"),
            "{err}"
        );
        let err = parse_text("services: {}\nnetworks: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2: unknown top-level key `networks`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_and_malformed_yaml_name_the_line() {
        let err = parse_text("services:\n  a:\n    image: x\n    privileged: maybe\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4"), "{err}");
        let err = parse_text("services:\n  a:\n    image: [x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("compose/compute.yml: line"), "{err}");
    }

    #[test]
    fn references_must_name_services_of_the_file() {
        let text =
            "services:\n  a:\n    image: x\n  b:\n    image: y\n    volumes_from: [nodata]\n";
        let err = parse_text(text).unwrap_err().to_string();
        assert_eq!(
            err,
            "compose/compute.yml: line 5: service b: volumes_from names \"nodata\", which is not a service in this file"
        );
        let text = "services:\n  a:\n    image: x\n    depends_on: [ghost]\n";
        assert!(
            parse_text(text)
                .unwrap_err()
                .to_string()
                .contains("depends_on names \"ghost\"")
        );
        let text = "services:\n  a:\n    image: x\n    volumes: [undeclared:/data]\n";
        assert!(
            parse_text(text)
                .unwrap_err()
                .to_string()
                .contains("not declared under the top-level volumes")
        );
    }

    #[test]
    fn required_variable_names_service_and_field() {
        let text = "services:\n  glance-api:\n    image: \"${GLANCE_IMAGE:?set GLANCE_IMAGE}\"\n";
        let err = parse_text(text).unwrap_err().to_string();
        assert_eq!(
            err,
            "compose/compute.yml: line 3: service glance-api: image: required variable GLANCE_IMAGE is not set: set GLANCE_IMAGE"
        );
    }

    #[test]
    fn dotenv_sits_between_environment_and_globals() {
        let dotenv = BTreeMap::from([
            ("TAG".to_string(), "dotenv".to_string()),
            ("IMAGE_PREFIX".to_string(), "mine/".to_string()),
        ]);
        let text = "services:\n  a:\n    image: ${IMAGE_PREFIX}a:${TAG}\n";
        let file = parse(text, Path::new("c.yml"), &vars(), &dotenv).unwrap();
        assert_eq!(file.services[0].image, "mine/a:from-env");
        let parsed = parse_dotenv(
            "# c\nA=1\nexport B=\"two words\"\nC='x'\n",
            Path::new(".env"),
        )
        .unwrap();
        assert_eq!(parsed["A"], "1");
        assert_eq!(parsed["B"], "two words");
        assert_eq!(parsed["C"], "x");
        assert!(parse_dotenv("novalue\n", Path::new(".env")).is_err());
    }

    #[test]
    fn legacy_v1_layout_is_read() {
        let text = "glance-data:\n  image: kolla/data:zed\n  volumes: [/var/lib/glance]\nglance-api:\n  image: kolla/glance-api:zed\n  name: glance-api\n  net: host\n  volumes_from: [glance-data]\n";
        let file = parse_text(text).unwrap();
        let api = file.service("glance-api").unwrap();
        assert_eq!(api.network_mode.as_deref(), Some("host"));
        assert_eq!(api.volumes_from, vec!["glance-data"]);
        // Used only through volumes_from, serving nothing: a data container.
        assert!(file.service("glance-data").unwrap().kolla.data);
        assert!(!api.kolla.data);
        // A server others share volumes with stays a server.
        let shared = "libvirt:\n  image: kolla/nova-libvirt:zed\n  net: host\n  privileged: true\n  restart: always\ncompute:\n  image: kolla/nova-compute:zed\n  volumes_from: [libvirt]\n";
        let file = parse_text(shared).unwrap();
        assert!(!file.service("libvirt").unwrap().kolla.data);
        // A data image with its volumes in the image only is data too.
        let image_only = "novadata:\n  image: kolla/centos-nova-data:zed\ncompute:\n  image: kolla/nova-compute:zed\n  net: host\n  volumes_from: [novadata]\n";
        let file = parse_text(image_only).unwrap();
        assert!(file.service("novadata").unwrap().kolla.data);
        // Not in the Compose Spec layout, which says so itself.
        let spec = format!(
            "services:\n{}",
            text.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        let file = parse_text(&spec).unwrap();
        assert!(!file.service("glance-data").unwrap().kolla.data);
        // Kolla's own v1 files name containers apart from their keys.
        let text = "glancedata:\n  image: kolla/data:zed\n  name: glance_data\n  volumes: [/var/lib/glance]\nglanceapi:\n  image: kolla/glance-api:zed\n  name: glance-api\n  net: host\n  volumes_from: [glancedata]\n";
        let file = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
        let api = file.service("glance-api").unwrap();
        assert_eq!(api.volumes_from, vec!["glance_data"]);
        assert!(file.service("glance_data").unwrap().kolla.data);
        let err = parse_text("a:\n  image: x\n  name: b\nb:\n  image: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a second service is named \"b\""), "{err}");
        let err = parse_text("a:\n  image: x\n  name: a.kolla-new\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("may not end in"), "{err}");
    }

    /// The shape of Kolla's own v1 compute file (2015): three-space
    /// indentation, a data image with its volumes in the image only, two
    /// privileged host services sharing its volumes, `env_file`.
    #[test]
    fn kolla_v1_compute_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("openstack.env"), "ADMIN_USER=admin\n").unwrap();
        let text = "computedata:\n   image: kollaglue/centos-rdo-nova-compute-data\n   name: computedata\n\nlibvirt:\n   image: kollaglue/centos-rdo-nova-libvirt\n   name: libvirt\n   net: host\n   pid: host\n   privileged: true\n   restart: always\n   env_file:\n    - openstack.env\n   volumes:\n    - /run:/run\n    - /lib/modules:/lib/modules:ro\n   volumes_from:\n    - computedata\n\nnovacompute:\n   image: kollaglue/centos-rdo-nova-compute\n   name: nova-compute\n   net: host\n   privileged: true\n   restart: always\n   env_file:\n    - openstack.env\n   volumes_from:\n    - computedata\n";
        let file = parse(
            text,
            &dir.path().join("nova-compute.yml"),
            &vars(),
            &BTreeMap::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = file.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["computedata", "libvirt", "nova-compute"]);
        assert!(file.service("computedata").unwrap().kolla.data);
        let libvirt = file.service("libvirt").unwrap();
        assert!(!libvirt.kolla.data && libvirt.privileged);
        assert_eq!(libvirt.environment["ADMIN_USER"], "admin");
        assert_eq!(
            file.service("nova-compute").unwrap().volumes_from,
            vec!["computedata"]
        );
    }

    /// The idioms of large self-hosted compose files: `x-` anchors merged
    /// with `<< :` (a space before the colon) and `<<: [*a, *b]`, a
    /// healthcheck anchor whose numbers come from variables, conditions
    /// from anchors, an env file.
    #[test]
    fn self_hosted_project_idioms_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env.app"), "APP_ENV=prod\n").unwrap();
        let text = r#"version: '3.4'
x-restart-policy: &restart_policy
  restart: unless-stopped
x-depends_on-healthy: &depends_on-healthy
  condition: service_healthy
x-healthcheck-defaults: &healthcheck_defaults
  interval: "$HEALTHCHECK_INTERVAL"
  timeout: "$HEALTHCHECK_TIMEOUT"
  retries: $HEALTHCHECK_RETRIES
x-app-defaults: &app_defaults
  << : *restart_policy
  image: "example/app:${APP_TAG:-1.4.0}"
  env_file: .env.app
services:
  database:
    << : *restart_policy
    image: postgres:11.7-alpine
    environment:
      POSTGRES_USER: main
      POSTGRES_DB: main
    healthcheck:
      <<: *healthcheck_defaults
      test: [ "CMD", "pg_isready", "-q", "-d", "main", "-U", "main" ]
    volumes:
      - db:/var/lib/postgresql/data
  app:
    <<: [*app_defaults]
    command: /entrypoint-app.sh
    ports:
      - 8080:80
    depends_on:
      database:
        <<: *depends_on-healthy
volumes:
  db:
"#;
        let variables = Variables {
            environment: BTreeMap::from([
                ("HEALTHCHECK_INTERVAL".to_string(), "30s".to_string()),
                ("HEALTHCHECK_TIMEOUT".to_string(), "1m30s".to_string()),
                ("HEALTHCHECK_RETRIES".to_string(), "10".to_string()),
            ]),
            globals: BTreeMap::new(),
        };
        let file = parse(
            text,
            &dir.path().join("docker-compose.yml"),
            &variables,
            &BTreeMap::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let db = file.service("database").unwrap();
        let health = db.healthcheck.as_ref().unwrap();
        assert_eq!(health.retries, Some(10));
        assert_eq!(health.interval, Some(Duration::from_secs(30)));
        assert_eq!(health.timeout, Some(Duration::from_secs(90)));
        assert_eq!(db.restart.as_deref(), Some("unless-stopped"));
        let app = file.service("app").unwrap();
        assert_eq!(app.image, "example/app:1.4.0");
        assert_eq!(app.environment["APP_ENV"], "prod");
        assert_eq!(app.depends_on["database"], Condition::Healthy);
        assert_eq!(app.ports.len(), 1);
    }

    #[test]
    fn short_and_long_syntaxes() {
        let text = r#"
services:
  web:
    image: x
    environment: ["A=1", "B=two=2"]
    ports: ["8080:80", "127.0.0.1:9000:90/udp", {target: 443, published: "8443"}]
    labels: {team: infra}
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    tmpfs: /run
    entrypoint: [/bin/sh, -c]
    restart: on-failure:3
"#;
        let file = parse_text(text).unwrap();
        let web = &file.services[0];
        assert_eq!(web.environment["B"], "two=2");
        assert_eq!(
            web.ports,
            vec![
                Port {
                    host_ip: None,
                    published: Some(8080),
                    target: 80,
                    protocol: "tcp".into()
                },
                Port {
                    host_ip: Some("127.0.0.1".into()),
                    published: Some(9000),
                    target: 90,
                    protocol: "udp".into()
                },
                Port {
                    host_ip: None,
                    published: Some(8443),
                    target: 443,
                    protocol: "tcp".into()
                },
            ]
        );
        assert_eq!(web.labels["team"], "infra");
        assert_eq!(
            web.ulimits["nofile"],
            Ulimit {
                soft: 1024,
                hard: 2048
            }
        );
        assert_eq!(
            web.ulimits["nproc"],
            Ulimit {
                soft: 512,
                hard: 512
            }
        );
        assert_eq!(web.tmpfs, vec!["/run"]);
        assert_eq!(web.entrypoint.as_deref().unwrap(), ["/bin/sh", "-c"]);
    }

    #[test]
    fn bad_values_are_refused() {
        let cases = [
            ("    restart: sometimes\n", "restart \"sometimes\""),
            ("    network_mode: mynet\n", "network_mode \"mynet\""),
            (
                "    network_mode: host\n    ports: [\"80:80\"]\n",
                "ports have no effect",
            ),
            ("    stop_grace_period: soon\n", "not a duration"),
            (
                "    healthcheck: {test: [curl, x]}\n",
                "must start with CMD",
            ),
            (
                "    depends_on: {b: {condition: service_ready}}\n",
                "unknown condition",
            ),
            (
                "    depends_on: {b: {condition: service_started, required: false}}\n",
                "required: false is not supported",
            ),
            (
                "    depends_on: {b: {restart: true}}\n",
                "restart: true is not supported",
            ),
            (
                "    volumes: [\"data:relative\"]\n",
                "must be an absolute path",
            ),
            ("    x-kolla: {update_order: sideways}\n", "update_order"),
            (
                "    x-kolla: {host_ports: [\"80\"]}\n",
                "host_ports is for network_mode: host",
            ),
            (
                "    network_mode: host\n    x-kolla: {host_ports: [http]}\n",
                "\"http\" is not a port number",
            ),
            (
                "    x-kolla: {data: true, bootstrap: {command: x}}\n",
                "data container",
            ),
        ];
        for (extra, want) in cases {
            let text = format!("services:\n  b:\n    image: y\n  a:\n    image: x\n{extra}");
            let err = parse_text(&text).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(want), "{extra:?}: {err}");
            assert!(err.contains("service a"), "{extra:?}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5d"), None);
    }
}

#[cfg(test)]
mod yaml_limits {
    use super::*;

    /// `anchors` anchors, each of `keys` variables, merged by `services`
    /// services each: the shape of real files with one x- anchor per
    /// concern.
    fn many_aliases(anchors: usize, services: usize) -> String {
        let mut text = String::new();
        for a in 0..anchors {
            text.push_str(&format!("x-env{a}: &env{a}\n"));
            for k in 0..8 {
                text.push_str(&format!("  VARIABLE_{a}_{k}: \"value {k}\"\n"));
            }
        }
        text.push_str("services:\n");
        for s in 0..services {
            let merged: Vec<String> = (0..anchors).map(|a| format!("*env{a}")).collect();
            text.push_str(&format!(
                "  s{s}:\n    image: x\n    environment:\n      <<: [{}]\n",
                merged.join(", ")
            ));
        }
        text
    }

    #[test]
    fn many_aliases_of_few_anchors_are_read() {
        let text = many_aliases(10, 15);
        assert_eq!(text.matches('*').count(), 150);
        let file = parse(
            &text,
            Path::new("big.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.services.len(), 15);
        assert_eq!(file.services[0].environment.len(), 80);
    }

    #[test]
    fn a_yaml_bomb_is_refused_in_words() {
        let mut text = String::from(
            "x-a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
        );
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let list = [previous.as_str(); 9].join(", ");
            text.push_str(&format!("x-a{level}: &a{level} [{list}]\n"));
        }
        text.push_str("services:\n  s:\n    image: x\n    command: *a9\n");
        let err = parse(
            &text,
            Path::new("bomb.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("bomb.yml: line"), "{err}");
        assert!(err.contains("too big to read safely"), "{err}");
    }
}
