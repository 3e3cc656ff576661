//! Raw compose shapes -> the typed model: interpolation of every string,
//! checks of every value, and errors that name the file, the line of the
//! key and the service. One function per key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::model::*;
use super::raw::*;
use crate::config::ConfigError;
use crate::config::interpolate::interpolate;

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
        parse_duration(&value).map(Some).ok_or_else(|| {
            self.error(
                line,
                service,
                format!("{field}: {value:?} is not a duration like 30s, 1m30s or 500ms"),
            )
        })
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
        let err = |message: String| self.error(line, name, message);
        if !crate::config::globals::is_valid_path_component(name)
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

    pub(super) fn mount(
        &self,
        line: u64,
        service: &str,
        raw: RawMount,
    ) -> Result<Mount, ConfigError> {
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
