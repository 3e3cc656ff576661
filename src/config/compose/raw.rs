//! What the YAML of a compose file holds, as serde reads it: the shapes
//! the Compose Spec allows (short and long syntaxes, numbers or strings),
//! before interpolation and checks. Unknown keys are refused here, with
//! their line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

// ---------------------------------------------------------------------------
// What the YAML holds, before interpolation and checks.

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug)]
pub(super) enum Environment {
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
pub(super) enum Scalar {
    Text(String),
    Unsigned(u64),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl Scalar {
    pub(super) fn into_text(self) -> String {
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
pub(super) struct DependsLong {
    pub(super) condition: Option<String>,
    #[serde(default)]
    pub(super) required: Option<bool>,
    #[serde(default)]
    pub(super) restart: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, DependsLong>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MountLong {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) source: Option<String>,
    pub(super) target: String,
    #[serde(default)]
    pub(super) read_only: Option<Spanned<Flex<bool>>>,
    #[serde(default)]
    pub(super) bind: Option<BindOptions>,
}

/// A long-form bind mount's `bind:` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BindOptions {
    pub(super) propagation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawMount {
    Short(String),
    Long(MountLong),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PortLong {
    pub(super) target: u16,
    pub(super) published: Option<String>,
    pub(super) host_ip: Option<String>,
    pub(super) protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPort {
    Short(String),
    Long(PortLong),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealthcheck {
    pub(super) test: Option<StringOrList>,
    pub(super) interval: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) retries: Option<Spanned<Flex<u32>>>,
    pub(super) start_period: Option<String>,
    #[serde(default)]
    pub(super) disable: bool,
}

/// A number or boolean written as itself or as text to interpolate
/// (`retries: $RETRIES`, `read_only: ${RO:-false}`), as compose allows.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Flex<T> {
    Value(T),
    Text(String),
}

/// What `Flex` text may become once interpolated.
pub(super) trait FromText: Sized {
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
pub(super) enum RawUlimit {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfigTemplates {
    pub(super) src: String,
    pub(super) dest: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBootstrap {
    pub(super) command: StringOrList,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpgradeCheck {
    pub(super) command: StringOrList,
    #[serde(default)]
    pub(super) warning_exit_codes: Vec<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRestorePoint {
    pub(super) service: Option<String>,
    #[serde(default)]
    pub(super) databases: Vec<String>,
    pub(super) dump: Option<StringOrList>,
    pub(super) restore: Option<StringOrList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKolla {
    #[serde(default)]
    pub(super) data: bool,
    pub(super) config: Option<RawConfigTemplates>,
    pub(super) bootstrap: Option<RawBootstrap>,
    pub(super) upgrade_check: Option<RawUpgradeCheck>,
    pub(super) restore_point: Option<RawRestorePoint>,
    pub(super) update_order: Option<String>,
    #[serde(default)]
    pub(super) host_ports: Vec<String>,
    pub(super) host_sysctls: Option<Environment>,
    #[serde(default)]
    pub(super) host_shared_mounts: Vec<String>,
    pub(super) guests: Option<String>,
    #[serde(default)]
    pub(super) upgrade_after: Vec<String>,
    pub(super) post_upgrade: Option<RawBootstrap>,
    #[serde(default)]
    pub(super) one_way: bool,
    pub(super) cleanup: Option<RawBootstrap>,
}

/// The service keys kolla supports. `net` and `name` are the legacy v1
/// spellings of `network_mode` and `container_name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) image: Option<String>,
    pub(super) command: Option<StringOrList>,
    pub(super) entrypoint: Option<StringOrList>,
    pub(super) environment: Option<Environment>,
    pub(super) env_file: Option<StringOrList>,
    pub(super) network_mode: Option<String>,
    pub(super) net: Option<String>,
    pub(super) container_name: Option<String>,
    pub(super) name: Option<String>,
    pub(super) pid: Option<String>,
    pub(super) ipc: Option<String>,
    #[serde(default)]
    pub(super) privileged: Option<Spanned<Flex<bool>>>,
    #[serde(default)]
    pub(super) cap_add: Vec<String>,
    #[serde(default)]
    pub(super) cap_drop: Vec<String>,
    #[serde(default)]
    pub(super) security_opt: Vec<String>,
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) volumes: Vec<Spanned<RawMount>>,
    #[serde(default)]
    pub(super) volumes_from: Vec<Spanned<String>>,
    pub(super) depends_on: Option<Spanned<DependsOn>>,
    pub(super) healthcheck: Option<RawHealthcheck>,
    pub(super) restart: Option<String>,
    pub(super) init: Option<Spanned<Flex<bool>>>,
    #[serde(default)]
    pub(super) ulimits: BTreeMap<String, RawUlimit>,
    pub(super) tmpfs: Option<StringOrList>,
    pub(super) labels: Option<Environment>,
    pub(super) extra_hosts: Option<Environment>,
    pub(super) sysctls: Option<Environment>,
    #[serde(default)]
    pub(super) ports: Vec<Spanned<RawPort>>,
    #[serde(default)]
    pub(super) profiles: Vec<String>,
    pub(super) stop_grace_period: Option<String>,
    pub(super) stop_signal: Option<String>,
    #[serde(rename = "x-kolla", default)]
    pub(super) kolla: RawKolla,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVolume {
    pub(super) driver: Option<String>,
    #[serde(default)]
    pub(super) external: bool,
    pub(super) name: Option<String>,
}

/// Top-level keys of a Compose Spec file. `x-*` keys hold anchors and are
/// otherwise ignored (checked separately, as serde cannot mix a key pattern
/// with deny_unknown_fields).
#[derive(Debug, Deserialize)]
pub(super) struct RawFile {
    pub(super) services: BTreeMap<String, Spanned<RawService>>,
    #[serde(default)]
    pub(super) volumes: BTreeMap<String, Option<RawVolume>>,
    #[serde(rename = "x-kolla", default)]
    pub(super) kolla: RawFileKolla,
}

/// The file's own `x-kolla`: how its role's nodes relate to others'.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileKolla {
    /// Roles whose nodes are deployed before this role's.
    #[serde(default)]
    pub(super) after: Vec<Spanned<String>>,
}

pub(super) const TOP_LEVEL_KEYS: &[&str] = &["version", "name", "services", "volumes"];
