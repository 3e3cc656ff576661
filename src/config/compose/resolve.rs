//! Raw compose shapes -> the typed model: interpolation of every string,
//! checks of every value, and errors that name the file, the line of the
//! key and the service. One function per key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::dotenv::parse_dotenv;
use super::model::*;
use super::raw::*;
use crate::config::ConfigError;
pub use crate::config::duration::parse_duration;
use crate::config::interpolate::interpolate;

/// The bind propagations the engine knows.
const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// The 1-based line where `key:` starts a line at the top level, or 1.
pub(super) fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(&format!("{key}:")) || l.starts_with(&format!("\"{key}\":")))
        .map_or(1, |i| i + 1)
}

pub(super) struct Resolver<'a> {
    pub(super) path: &'a Path,
    /// The file's text, to find the line of the key an error is about.
    pub(super) text: &'a str,
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// The line of `key` (`healthcheck.retries`: `retries` inside
/// `healthcheck`) in the block that starts at line `from` (1-based), if the
/// block itself writes it (a key merged in from an anchor is not there).
pub(super) fn line_of_key_in_block(text: &str, from: u64, key: &str) -> Option<u64> {
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
    pub(super) fn error(
        &self,
        line: u64,
        service: &str,
        message: impl std::fmt::Display,
    ) -> ConfigError {
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

    pub(super) fn text(
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
    pub(super) fn extra_hosts(
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
    pub(super) fn flex<T: FromText>(
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

    pub(super) fn texts(
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
    pub(super) fn argv(
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

    pub(super) fn duration(
        &self,
        line: u64,
        service: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let value = self.text(line, service, field, &value)?;
        parse_duration(&value)
            .map(Some)
            .map_err(|e| self.error(line, service, format!("{field}: {value:?} {e}")))
    }

    pub(super) fn key_values(
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

    pub(super) fn service(
        &self,
        name: &str,
        raw: Spanned<RawService>,
    ) -> Result<ServiceSpec, ConfigError> {
        let line = raw.defined.line();
        let raw = raw.value;
        check_service_name(name).map_err(|message| self.error(line, name, message))?;
        // Checked in this order, so a service's first error is the same
        // from run to run.
        let image = self.image(line, name, raw.image)?;
        let environment = self.environment(line, name, raw.env_file, raw.environment)?;
        let network_mode = self.network_mode(line, name, raw.network_mode, raw.net)?;
        let volumes = self.volumes(name, raw.volumes)?;
        let volumes_from = self.volumes_from(name, raw.volumes_from)?;
        let depends_on = self.depends_on(name, raw.depends_on)?;
        let healthcheck = self.healthcheck(line, name, raw.healthcheck)?;
        let restart = self.restart(line, name, raw.restart)?;
        let tmpfs = self.one_or_many(line, name, "tmpfs", raw.tmpfs)?;
        let ports = self.ports(line, name, raw.ports, network_mode.as_deref())?;
        let kolla = self.kolla(line, name, raw.kolla)?;
        self.host_settings_need_host_network(line, name, &kolla, network_mode.as_deref())?;
        let own_name = self.own_name(line, name, raw.container_name.or(raw.name))?;
        let labels = self.labels(line, name, raw.labels)?;
        let optional = |key: &str, value: Option<String>| {
            value.map(|v| self.text(line, name, key, &v)).transpose()
        };
        Ok(ServiceSpec {
            name: own_name,
            line,
            image,
            command: self.argv(line, name, "command", raw.command)?,
            entrypoint: self.argv(line, name, "entrypoint", raw.entrypoint)?,
            environment,
            network_mode,
            pid: optional("pid", raw.pid)?,
            ipc: optional("ipc", raw.ipc)?,
            privileged: self
                .flex(line, name, "privileged", raw.privileged)?
                .unwrap_or(false),
            cap_add: self.texts(line, name, "cap_add", &raw.cap_add)?,
            cap_drop: self.texts(line, name, "cap_drop", &raw.cap_drop)?,
            security_opt: self.texts(line, name, "security_opt", &raw.security_opt)?,
            user: optional("user", raw.user)?,
            volumes,
            volumes_from,
            depends_on,
            healthcheck,
            restart,
            init: self.flex(line, name, "init", raw.init)?,
            ulimits: ulimits(raw.ulimits),
            tmpfs,
            labels,
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
            stop_signal: optional("stop_signal", raw.stop_signal)?,
            kolla,
        })
    }

    fn image(&self, line: u64, name: &str, image: Option<String>) -> Result<String, ConfigError> {
        let image = match image {
            Some(image) => self.text(line, name, "image", &image)?,
            None => return Err(self.error(line, name, "no image")),
        };
        if image.trim().is_empty() {
            return Err(self.error(line, name, "image is empty (is its variable set?)"));
        }
        Ok(image)
    }

    /// A string or a list of strings, interpolated.
    fn one_or_many(
        &self,
        line: u64,
        name: &str,
        key: &str,
        value: Option<StringOrList>,
    ) -> Result<Vec<String>, ConfigError> {
        match value {
            None => Ok(Vec::new()),
            Some(StringOrList::One(one)) => Ok(vec![self.text(line, name, key, &one)?]),
            Some(StringOrList::Many(list)) => self.texts(line, name, key, &list),
        }
    }

    /// `x-kolla.host_ports` and `host_sysctls` are the host network's.
    fn host_settings_need_host_network(
        &self,
        line: u64,
        name: &str,
        kolla: &KollaSettings,
        network_mode: Option<&str>,
    ) -> Result<(), ConfigError> {
        if network_mode == Some("host") {
            return Ok(());
        }
        if !kolla.host_ports.is_empty() {
            return Err(self.error(
                line,
                name,
                "x-kolla.host_ports is for network_mode: host (use ports otherwise)",
            ));
        }
        if !kolla.host_sysctls.is_empty() {
            return Err(self.error(
                line,
                name,
                "x-kolla.host_sysctls is for network_mode: host (use sysctls otherwise)",
            ));
        }
        Ok(())
    }

    /// `labels`, none of them kolla's own.
    fn labels(
        &self,
        line: u64,
        name: &str,
        labels: Option<Environment>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let labels = self.key_values(line, name, "labels", labels)?;
        if let Some(key) = labels
            .keys()
            .find(|key| key.starts_with(RESERVED_LABEL_PREFIX))
        {
            return Err(self.error(
                line,
                name,
                format!(
                    "labels: {key:?}: labels starting with {RESERVED_LABEL_PREFIX:?} are kolla's own (they say which containers are data, which generation is live, what may run twice); use another prefix"
                ),
            ));
        }
        Ok(labels)
    }

    /// `env_file` entries first (in order), then `environment`, which wins.
    fn environment(
        &self,
        line: u64,
        name: &str,
        env_file: Option<StringOrList>,
        environment: Option<Environment>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut merged = BTreeMap::new();
        for file in self.one_or_many(line, name, "env_file", env_file)? {
            let file = self.inside_folder(line, name, "env_file", &file)?;
            let text = std::fs::read_to_string(&file).map_err(|e| {
                self.error(line, name, format!("env_file: {}: {e}", file.display()))
            })?;
            merged.extend(parse_dotenv(&text, &file)?);
        }
        merged.extend(self.key_values(line, name, "environment", environment)?);
        Ok(merged)
    }

    /// `network_mode`, or `net`, its Kolla v1 name.
    fn network_mode(
        &self,
        line: u64,
        name: &str,
        network_mode: Option<String>,
        net: Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let mode = match (network_mode, net) {
            (Some(_), Some(_)) => {
                return Err(self.error(
                    line,
                    name,
                    "both network_mode and net (its legacy name) are set",
                ));
            }
            (mode, net) => mode
                .or(net)
                .map(|m| self.text(line, name, "network_mode", &m))
                .transpose()?,
        };
        if let Some(mode) = &mode
            && !matches!(mode.as_str(), "host" | "bridge" | "none")
            && !mode.starts_with("container:")
            && !mode.starts_with("service:")
        {
            return Err(self.error(line, name, format!(
                "network_mode {mode:?}: kolla supports host, bridge, none, service:NAME and container:NAME"
            )));
        }
        Ok(mode)
    }

    fn volumes(
        &self,
        name: &str,
        volumes: Vec<Spanned<RawMount>>,
    ) -> Result<Vec<Mount>, ConfigError> {
        volumes
            .into_iter()
            .map(|mount| self.mount(mount.referenced.line(), name, mount.value))
            .collect()
    }

    /// The services named, without the `service:` of the long form.
    fn volumes_from(
        &self,
        name: &str,
        entries: Vec<Spanned<String>>,
    ) -> Result<Vec<String>, ConfigError> {
        entries
            .into_iter()
            .map(|entry| {
                let value =
                    self.text(entry.referenced.line(), name, "volumes_from", &entry.value)?;
                Ok(value.trim_start_matches("service:").to_string())
            })
            .collect()
    }

    fn depends_on(
        &self,
        name: &str,
        depends: Option<Spanned<DependsOn>>,
    ) -> Result<BTreeMap<String, Condition>, ConfigError> {
        let Some(depends) = depends else {
            return Ok(BTreeMap::new());
        };
        let line = depends.referenced.line();
        let map = match depends.value {
            DependsOn::List(list) => {
                return Ok(list.into_iter().map(|d| (d, Condition::Started)).collect());
            }
            DependsOn::Map(map) => map,
        };
        let mut depends_on = BTreeMap::new();
        for (dependency, long) in map {
            let err = |message: String| {
                self.error(line, name, format!("depends_on {dependency}: {message}"))
            };
            let condition = match long.condition.as_deref() {
                None | Some("service_started") => Condition::Started,
                Some("service_healthy") => Condition::Healthy,
                Some("service_completed_successfully") => Condition::CompletedSuccessfully,
                Some(other) => {
                    return Err(err(format!(
                        "unknown condition {other:?} (service_started, service_healthy, service_completed_successfully)"
                    )));
                }
            };
            // Accepted at their defaults only: kolla always waits for a
            // dependency and never restarts dependents.
            if long.required == Some(false) {
                return Err(err(
                    "required: false is not supported (every dependency must be deployed)".into(),
                ));
            }
            if long.restart == Some(true) {
                return Err(err(
                    "restart: true is not supported (kolla never restarts dependents)".into(),
                ));
            }
            depends_on.insert(dependency, condition);
        }
        Ok(depends_on)
    }

    fn healthcheck(
        &self,
        line: u64,
        name: &str,
        raw: Option<RawHealthcheck>,
    ) -> Result<Option<Healthcheck>, ConfigError> {
        let Some(h) = raw else {
            return Ok(None);
        };
        let test = match h.test {
            None => Vec::new(),
            Some(StringOrList::One(shell)) => vec![
                "CMD-SHELL".to_string(),
                self.text(line, name, "healthcheck.test", &shell)?,
            ],
            Some(StringOrList::Many(list)) => self.texts(line, name, "healthcheck.test", &list)?,
        };
        let known_form = matches!(
            test.first().map(String::as_str),
            Some("CMD" | "CMD-SHELL" | "NONE")
        );
        if !h.disable && !known_form {
            return Err(self.error(
                line,
                name,
                "healthcheck.test must start with CMD, CMD-SHELL or NONE",
            ));
        }
        let duration = |key: &str, value| self.duration(line, name, key, value);
        Ok(Some(Healthcheck {
            test,
            interval: duration("healthcheck.interval", h.interval)?,
            timeout: duration("healthcheck.timeout", h.timeout)?,
            retries: self.flex(line, name, "healthcheck.retries", h.retries)?,
            start_period: duration("healthcheck.start_period", h.start_period)?,
            disable: h.disable,
        }))
    }

    fn restart(
        &self,
        line: u64,
        name: &str,
        restart: Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(policy) = restart else {
            return Ok(None);
        };
        let policy = self.text(line, name, "restart", &policy)?;
        let valid = matches!(
            policy.as_str(),
            "no" | "always" | "unless-stopped" | "on-failure"
        ) || policy
            .strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !valid {
            return Err(self.error(
                line,
                name,
                format!(
                    "restart {policy:?}: expected no, always, unless-stopped or on-failure[:N]"
                ),
            ));
        }
        Ok(Some(policy))
    }

    fn ports(
        &self,
        line: u64,
        name: &str,
        raw: Vec<Spanned<RawPort>>,
        network_mode: Option<&str>,
    ) -> Result<Vec<Port>, ConfigError> {
        let ports = raw
            .into_iter()
            .map(|port| self.port(port.referenced.line(), name, port.value))
            .collect::<Result<Vec<_>, _>>()?;
        if network_mode == Some("host") && !ports.is_empty() {
            return Err(self.error(
                line,
                name,
                "ports have no effect with network_mode: host (the service binds the host's ports itself)",
            ));
        }
        Ok(ports)
    }

    /// A container name of its own (`container_name`, v1 `name`) is the
    /// service's name from here on: its containers and the names of a swap
    /// derive from it (references to the key are rewritten after).
    fn own_name(
        &self,
        line: u64,
        name: &str,
        container_name: Option<String>,
    ) -> Result<String, ConfigError> {
        let Some(own) = container_name else {
            return Ok(name.to_string());
        };
        let own = self.text(line, name, "container_name", &own)?;
        if own == name {
            return Ok(own);
        }
        check_container_name(&own)
            .map_err(|message| self.error(line, name, format!("container_name {message}")))?;
        Ok(own)
    }

    pub(super) fn mount(
        &self,
        line: u64,
        service: &str,
        raw: RawMount,
    ) -> Result<Mount, ConfigError> {
        match raw {
            RawMount::Short(text) => self.short_mount(line, service, &text),
            RawMount::Long(long) => self.long_mount(line, service, long),
        }
    }

    /// `[SOURCE:]TARGET[:MODE]`: a source that looks like a path is a bind.
    fn short_mount(&self, line: u64, service: &str, text: &str) -> Result<Mount, ConfigError> {
        let err = |message: String| self.error(line, service, format!("volumes: {message}"));
        let text = self.text(line, service, "volumes", text)?;
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, *target, None),
            [source, target] => (Some(*source), *target, None),
            [source, target, mode] => (Some(*source), *target, Some(*mode)),
            _ => return Err(err(format!("{text:?} is not SOURCE:TARGET[:MODE]"))),
        };
        let mut read_only = false;
        let mut propagation = None;
        for option in mode
            .map(|m| m.split(',').collect::<Vec<_>>())
            .unwrap_or_default()
        {
            match option {
                "rw" | "z" | "Z" => {}
                "ro" => read_only = true,
                p if PROPAGATIONS.contains(&p) => propagation = Some(p.to_string()),
                other => {
                    return Err(err(format!(
                        "mode {other:?}: expected ro, rw, z, Z or a propagation ({})",
                        PROPAGATIONS.join(", ")
                    )));
                }
            }
        }
        if !target.starts_with('/') {
            return Err(err(format!("target {target:?} must be an absolute path")));
        }
        let target = target.to_string();
        Ok(match source {
            Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') => {
                Mount::Bind {
                    source: self.bind_source(s),
                    target,
                    read_only,
                    propagation,
                }
            }
            source if propagation.is_some() => {
                return Err(err(format!(
                    "{text:?}: a propagation applies to bind mounts, not to volume {source:?}"
                )));
            }
            source => Mount::Volume {
                source: source.map(str::to_string),
                target,
                read_only,
                literal: false,
            },
        })
    }

    /// `type: volume` or `type: bind` with `source`, `target`, `read_only`.
    fn long_mount(&self, line: u64, service: &str, long: MountLong) -> Result<Mount, ConfigError> {
        let target = self.text(line, service, "volumes.target", &long.target)?;
        let source = long
            .source
            .map(|s| self.text(line, service, "volumes.source", &s))
            .transpose()?;
        let read_only = self
            .flex(line, service, "volumes.read_only", long.read_only)?
            .unwrap_or(false);
        let propagation = long.bind.and_then(|bind| bind.propagation);
        if let Some(p) = &propagation
            && (long.kind != "bind" || !PROPAGATIONS.contains(&p.as_str()))
        {
            return Err(self.error(
                line,
                service,
                format!(
                    "volumes: bind.propagation {p:?}: a bind mount's propagation is one of {}",
                    PROPAGATIONS.join(", ")
                ),
            ));
        }
        match (long.kind.as_str(), source) {
            ("volume", source) => Ok(Mount::Volume {
                source,
                target,
                read_only,
                literal: false,
            }),
            ("bind", Some(source)) => Ok(Mount::Bind {
                source: self.bind_source(&source),
                target,
                read_only,
                propagation,
            }),
            ("bind", None) => {
                Err(self.error(line, service, "volumes: a bind mount needs a source"))
            }
            (other, _) => Err(self.error(
                line,
                service,
                format!("volumes: type {other:?}: kolla supports volume and bind"),
            )),
        }
    }

    pub(super) fn bind_source(&self, source: &str) -> PathBuf {
        let path = PathBuf::from(source);
        if path.is_absolute() {
            path
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(path)
        }
    }

    pub(super) fn port(&self, line: u64, service: &str, raw: RawPort) -> Result<Port, ConfigError> {
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

    pub(super) fn kolla(
        &self,
        line: u64,
        service: &str,
        raw: RawKolla,
    ) -> Result<KollaSettings, ConfigError> {
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
        let config = raw
            .config
            .map(|c| self.config_templates(line, service, c))
            .transpose()?;
        let bootstrap = self.job(line, service, "x-kolla.bootstrap.command", raw.bootstrap)?;
        let upgrade_check = self.upgrade_check(line, service, raw.upgrade_check)?;
        let cleanup = self.job(line, service, "x-kolla.cleanup.command", raw.cleanup)?;
        let jobs = [&bootstrap, &cleanup].into_iter().flatten().count();
        if raw.data && (jobs > 0 || config.is_some() || upgrade_check.is_some()) {
            return Err(self.error(
                line,
                service,
                "a data container (x-kolla.data) never runs, so it takes no config, bootstrap, upgrade_check or cleanup",
            ));
        }
        let restore_point = raw
            .restore_point
            .map(|r| self.restore_point(line, service, r, bootstrap.is_some()))
            .transpose()?;
        let host_ports = raw
            .host_ports
            .iter()
            .map(|port| {
                let text = self.text(line, service, "x-kolla.host_ports", port)?;
                text.parse::<u16>().map_err(|_| {
                    self.error(
                        line,
                        service,
                        format!("x-kolla.host_ports: {text:?} is not a port number"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let host_sysctls = self.host_sysctls(line, service, raw.host_sysctls)?;
        let host_shared_mounts = self.host_shared_mounts(line, service, raw.host_shared_mounts)?;
        let guests = self.guests(line, service, raw.guests)?;
        let (upgrade_after, post_upgrade) = self.upgrade_steps(
            line,
            service,
            (raw.upgrade_after, raw.post_upgrade, raw.one_way),
            raw.data,
        )?;
        Ok(KollaSettings {
            cleanup,
            one_way: raw.one_way,
            post_upgrade,
            upgrade_after,
            guests,
            host_sysctls,
            host_shared_mounts,
            data: raw.data,
            config,
            bootstrap,
            upgrade_check,
            restore_point,
            update_order,
            host_ports,
        })
    }

    /// A one-shot job's command (`x-kolla.bootstrap`, `post_upgrade`,
    /// `cleanup`): never empty, which would run the image's own command
    /// (the service itself) as the job.
    fn job(
        &self,
        line: u64,
        service: &str,
        field: &str,
        raw: Option<RawBootstrap>,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        match self.argv(line, service, field, Some(raw.command))? {
            Some(command) if !command.is_empty() => Ok(Some(command)),
            _ => Err(self.error(
                line,
                service,
                format!("{field}: empty; give the job's command"),
            )),
        }
    }

    /// `x-kolla.guests`: one program's name.
    fn guests(
        &self,
        line: u64,
        service: &str,
        raw: Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let guests = raw
            .map(|program| self.text(line, service, "x-kolla.guests", &program))
            .transpose()?;
        if let Some(program) = &guests
            && (program.is_empty() || program.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(self.error(
                line,
                service,
                format!("x-kolla.guests: {program:?} must name one program (no spaces)"),
            ));
        }
        Ok(guests)
    }

    /// `x-kolla.upgrade_after`, `x-kolla.post_upgrade` and
    /// `x-kolla.one_way`, which a data container (never upgraded) takes
    /// none of.
    fn upgrade_steps(
        &self,
        line: u64,
        service: &str,
        (after, post, one_way): (Vec<String>, Option<RawBootstrap>, bool),
        data: bool,
    ) -> Result<(Vec<String>, Option<Vec<String>>), ConfigError> {
        let upgrade_after = self.upgrade_after(line, service, after)?;
        let post_upgrade = self.job(line, service, "x-kolla.post_upgrade.command", post)?;
        if data && (!upgrade_after.is_empty() || post_upgrade.is_some() || one_way) {
            return Err(self.error(
                line,
                service,
                "a data container (x-kolla.data) is never upgraded, so it takes no upgrade_after, post_upgrade or one_way",
            ));
        }
        Ok((upgrade_after, post_upgrade))
    }

    /// `x-kolla.host_sysctls`: network settings only (`net.*`), with plain
    /// values: they end up written on the node as root.
    fn host_sysctls(
        &self,
        line: u64,
        service: &str,
        raw: Option<Environment>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let host_sysctls = self.key_values(line, service, "x-kolla.host_sysctls", raw)?;
        for (key, value) in &host_sysctls {
            let key_ok = key.starts_with("net.")
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
                && !key.contains("..");
            let value_ok = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c));
            if !key_ok || !value_ok {
                return Err(self.error(
                    line,
                    service,
                    format!(
                        "x-kolla.host_sysctls: {key:?}: {value:?}: a network setting (net.*, lowercase letters, digits, _ and .) and a plain value"
                    ),
                ));
            }
        }
        Ok(host_sysctls)
    }

    /// Each of `raw` interpolated, or the first that `check` refuses
    /// (its reason), as an error naming `key`.
    fn checked_texts(
        &self,
        (line, service, key): (u64, &str, &str),
        raw: Vec<String>,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Vec<String>, ConfigError> {
        raw.iter()
            .map(|raw| {
                let text = self.text(line, service, key, raw)?;
                check(&text)
                    .map(|()| text)
                    .map_err(|why| self.error(line, service, format!("{key}: {why}")))
            })
            .collect()
    }

    /// `x-kolla.upgrade_after`: service names, not the service itself.
    fn upgrade_after(
        &self,
        line: u64,
        service: &str,
        raw: Vec<String>,
    ) -> Result<Vec<String>, ConfigError> {
        self.checked_texts((line, service, "x-kolla.upgrade_after"), raw, |name| {
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if name == service {
                Err("names the service itself".to_string())
            } else if plain {
                Ok(())
            } else {
                Err(format!("{name:?} is not a service name"))
            }
        })
    }

    /// `x-kolla.host_shared_mounts`: plain absolute folders (they reach a
    /// root shell on the node as arguments), never `/` itself.
    fn host_shared_mounts(
        &self,
        line: u64,
        service: &str,
        raw: Vec<String>,
    ) -> Result<Vec<String>, ConfigError> {
        self.checked_texts((line, service, "x-kolla.host_shared_mounts"), raw, |path| {
            let plain = path.len() > 1
                && path.starts_with('/')
                && !path.ends_with('/')
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
                && !path.split('/').any(|part| part == "." || part == "..");
            if plain {
                Ok(())
            } else {
                Err(format!(
                    "{path:?}: an absolute folder of the node other than / (letters, digits, /, ., _ and -)"
                ))
            }
        })
    }

    /// `x-kolla.upgrade_check`: its command, and the exit codes that only
    /// warn (never 0, which passes).
    fn upgrade_check(
        &self,
        line: u64,
        service: &str,
        raw: Option<RawUpgradeCheck>,
    ) -> Result<Option<UpgradeCheck>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        if raw.warning_exit_codes.contains(&0) {
            return Err(self.error(
                line,
                service,
                "x-kolla.upgrade_check.warning_exit_codes: 0 is a pass, not a warning",
            ));
        }
        let command = self.argv(
            line,
            service,
            "x-kolla.upgrade_check.command",
            Some(raw.command),
        )?;
        Ok(command.map(|command| UpgradeCheck {
            command,
            warning_exit_codes: raw.warning_exit_codes,
        }))
    }

    /// `x-kolla.restore_point`: MariaDB's commands for `databases`, or the
    /// service's own `dump` and `restore`.
    fn restore_point(
        &self,
        line: u64,
        service: &str,
        raw: RawRestorePoint,
        has_bootstrap: bool,
    ) -> Result<RestorePointSpec, ConfigError> {
        let fail = |message: &str| Err(self.error(line, service, message.to_string()));
        if !has_bootstrap {
            return fail(
                "x-kolla.restore_point is taken before the bootstrap job, and this service has no x-kolla.bootstrap",
            );
        }
        let db_service = match raw.service {
            Some(name) => self.text(line, service, "x-kolla.restore_point.service", &name)?,
            None => "mariadb".to_string(),
        };
        let databases = self.texts(
            line,
            service,
            "x-kolla.restore_point.databases",
            &raw.databases,
        )?;
        let dump = self.argv(line, service, "x-kolla.restore_point.dump", raw.dump)?;
        let restore = self.argv(line, service, "x-kolla.restore_point.restore", raw.restore)?;
        match (dump, restore) {
            (None, None) if databases.is_empty() => fail(
                "x-kolla.restore_point: name the databases to dump (databases: [...]), or give dump and restore commands",
            ),
            (None, None) => Ok(RestorePointSpec::mariadb(db_service, &databases)),
            (Some(dump), Some(restore)) if databases.is_empty() => Ok(RestorePointSpec {
                service: db_service,
                dump,
                restore,
            }),
            (Some(_), Some(_)) => fail(
                "x-kolla.restore_point: databases is for MariaDB's own commands; with dump and restore, leave it out",
            ),
            _ => fail("x-kolla.restore_point: give both dump and restore, or neither"),
        }
    }

    /// `x-kolla.config`: a template folder inside the compose file's
    /// folder (also once symlinks are followed) and an absolute target.
    fn config_templates(
        &self,
        line: u64,
        service: &str,
        raw: RawConfigTemplates,
    ) -> Result<ConfigTemplates, ConfigError> {
        let src = self.text(line, service, "x-kolla.config.src", &raw.src)?;
        let dest = self.text(line, service, "x-kolla.config.dest", &raw.dest)?;
        if !dest.starts_with('/') || dest.split('/').any(|part| part == "..") {
            return Err(self.error(
                line,
                service,
                format!("x-kolla.config.dest {dest:?} must be an absolute path without '..'"),
            ));
        }
        self.inside_folder(line, service, "x-kolla.config.src", &src)?;
        Ok(ConfigTemplates {
            src: self.bind_source(&src),
            dest,
        })
    }

    /// `path`, given as `key`, names a file inside the compose file's
    /// folder, also once symlinks are followed: a compose file may read
    /// only what sits beside it, never the operator's other files (an
    /// admin-openrc.sh, a key). Returns it joined to that folder.
    fn inside_folder(
        &self,
        line: u64,
        service: &str,
        key: &str,
        path: &str,
    ) -> Result<PathBuf, ConfigError> {
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let inside = Path::new(path).is_relative()
            && Path::new(path)
                .components()
                .try_fold(0usize, |depth, part| match part {
                    std::path::Component::ParentDir => depth.checked_sub(1),
                    std::path::Component::Normal(_) => Some(depth + 1),
                    _ => Some(depth),
                })
                .is_some();
        // And where it leads, if it exists (a symlink may lead out).
        let joined = folder.join(path);
        let lands_inside = match (folder.canonicalize(), joined.canonicalize()) {
            (Ok(root), Ok(target)) => target.starts_with(root),
            _ => true,
        };
        if !inside || !lands_inside {
            return Err(self.error(
                line,
                service,
                format!(
                    "{key}: {path:?} must stay inside the compose file's folder {}",
                    folder.display()
                ),
            ));
        }
        Ok(joined)
    }
}

/// The prefix of the labels kolla puts on containers and reads back as its
/// state: a compose file may not set them.
pub const RESERVED_LABEL_PREFIX: &str = "kolla.";

/// A service's name is a path component and a container name.
fn check_service_name(name: &str) -> Result<(), String> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !crate::config::globals::is_valid_path_component(name) && !plain {
        return Err("a service name may use only letters, digits, '_', '.', '-'".into());
    }
    if let Some(reserved) = reserved_suffix(name) {
        return Err(format!(
            "a service name may not end in {reserved:?}: kolla names the containers of a swap that way"
        ));
    }
    Ok(())
}

/// A `container_name` the engine accepts and kolla's own names leave free.
fn check_container_name(own: &str) -> Result<(), String> {
    let plain = own
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if own.is_empty() || !plain {
        return Err(format!(
            "{own:?}: a container name may use only letters, digits, '_', '.', '-'"
        ));
    }
    if let Some(reserved) = reserved_suffix(own) {
        return Err(format!(
            "{own:?} may not end in {reserved:?}: kolla names the containers of a swap that way"
        ));
    }
    Ok(())
}

fn ulimits(raw: BTreeMap<String, RawUlimit>) -> BTreeMap<String, Ulimit> {
    raw.into_iter()
        .map(|(key, value)| {
            let limit = match value {
                RawUlimit::Single(n) => Ulimit { soft: n, hard: n },
                RawUlimit::Pair { soft, hard } => Ulimit { soft, hard },
            };
            (key, limit)
        })
        .collect()
}

/// References between services: volumes_from, depends_on and
/// `network_mode: service:X` must name services of the file, and named
/// volumes must be declared at the top level (as compose requires).
pub(super) fn check_references(file: &ComposeFile) -> Result<(), ConfigError> {
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
    check_cycles(file)
}

/// Services that wait for each other (depends_on, volumes_from,
/// `network_mode: service:`) could never start: the first cycle met in name
/// order, at the line of the service it starts from. Every reference names
/// a service of the file by now.
fn check_cycles(file: &ComposeFile) -> Result<(), ConfigError> {
    let mut services: Vec<&ServiceSpec> = file.services.iter().collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let index = |name: &str| {
        services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
    };
    let needs: Vec<Vec<usize>> = services
        .iter()
        .map(|service| service.needs().into_iter().filter_map(index).collect())
        .collect();
    match crate::graph::levels(&needs) {
        Ok(_) => Ok(()),
        Err(cycle) => {
            let first = services[cycle[0]];
            let path: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
            let lines: Vec<String> = cycle[..cycle.len() - 1]
                .iter()
                .map(|&i| format!("{} at line {}", services[i].name, services[i].line))
                .collect();
            Err(ConfigError::Invalid {
                path: file.path.clone(),
                message: format!(
                    "line {}: service {}: services wait for each other in a cycle, so none could start: {} ({})",
                    first.line,
                    first.name,
                    path.join(" -> "),
                    lines.join(", ")
                ),
            })
        }
    }
}
