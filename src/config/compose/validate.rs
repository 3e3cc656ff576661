//! A resolved file against the engine's own rules (see `config::names`
//! and `config::reference`): every container and volume name kolla will
//! compose from it under the deployment's prefix, every image reference,
//! stop signal and healthcheck duration. Run as the file is read, so a
//! value the engine would refuse fails with the file and line before any
//! engine is reached; every such error of the file at once.

use super::model::{ComposeFile, Healthcheck, ServiceSpec};
use super::resolve::{line_of_key, line_of_key_in_block};
use crate::config::{ConfigError, names, reference};

/// Each problem of `file` under `prefix`, as an error naming its line.
pub(super) fn problems(file: &ComposeFile, text: &str, prefix: &str) -> Vec<ConfigError> {
    let mut messages = Vec::new();
    for service in &file.services {
        for (key, message) in service_problems(service, prefix) {
            let line = key
                .and_then(|key| line_of_key_in_block(text, service.line, key))
                .unwrap_or(service.line);
            messages.push(format!("line {line}: service {}: {message}", service.name));
        }
    }
    let volumes_line = line_of_key(text, "volumes") as u64;
    for (key, volume) in &file.volumes {
        let local = volume.driver.as_deref().is_none_or(|d| d == "local");
        let name = if volume.literal {
            volume.name.clone()
        } else {
            format!("{prefix}{}", volume.name)
        };
        if let (true, Err(message)) = (local, names::check_volume_name(&name)) {
            let line = line_of_key_in_block(text, volumes_line, &format!("volumes.{key}.name"))
                .or_else(|| line_of_key_in_block(text, volumes_line, &format!("volumes.{key}")))
                .unwrap_or(volumes_line);
            let whose = if volume.literal {
                String::new()
            } else {
                format!(" (container_prefix {prefix:?} + key)")
            };
            messages.push(format!("line {line}: volumes: {key}: {message}{whose}"));
        }
    }
    messages
        .into_iter()
        .map(|message| ConfigError::Invalid {
            path: file.path.clone(),
            message,
        })
        .collect()
}

/// What the engine would refuse of `service`: (the key, if the service's
/// block writes one, and the message).
fn service_problems(service: &ServiceSpec, prefix: &str) -> Vec<(Option<&'static str>, String)> {
    let mut problems = Vec::new();
    if let Err(message) = names::check_service_names(prefix, &service.name) {
        problems.push((
            None,
            format!(
                "{message}: kolla names its containers container_prefix ({prefix:?}) + service name + its own suffixes"
            ),
        ));
    }
    if let Err(e) = reference::parse(&service.image) {
        problems.push((Some("image"), format!("image: {:?} {e}", service.image)));
    }
    if let Some(signal) = &service.stop_signal
        && let Err(message) = names::check_signal(signal)
    {
        problems.push((Some("stop_signal"), format!("stop_signal: {message}")));
    }
    if let Some(other) = service
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("container:"))
        && let Err(message) = names::check_container_name(other)
    {
        problems.push((Some("network_mode"), format!("network_mode: {message}")));
    }
    if let Some(check) = &service.healthcheck {
        problems.extend(health_problems(check));
    }
    problems
}

fn health_problems(check: &Healthcheck) -> Vec<(Option<&'static str>, String)> {
    [
        ("healthcheck.interval", check.interval),
        ("healthcheck.timeout", check.timeout),
        ("healthcheck.start_period", check.start_period),
    ]
    .into_iter()
    .filter_map(|(key, value)| {
        let message = names::check_health_duration(value?).err()?;
        Some((Some(key), format!("{key}: {message}")))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::super::{Variables, parse};

    /// Errors of `text` read under `prefix`, one line each ("" if none).
    fn errors(text: &str, prefix: &str) -> String {
        let variables = Variables {
            globals: BTreeMap::from([("CONTAINER_PREFIX".to_string(), prefix.to_string())]),
            ..Variables::default()
        };
        match parse(text, Path::new("c.yml"), &variables, &BTreeMap::new()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_are_composed_with_the_prefix() {
        let one = "services:\n  a:\n    image: x\n";
        let err = errors(one, "");
        assert!(
            err.starts_with("c.yml: line 3: service a: container name \"a\""),
            "{err}"
        );
        assert_eq!(errors(one, "p-"), "");
        for name in ["\"..\"", "\"-x\"", "\".x\""] {
            let err = errors(&format!("services:\n  {name}:\n    image: x\n"), "");
            assert!(
                err.contains("is not one the engine accepts"),
                "{name}: {err}"
            );
        }
        let err = errors("services:\n  web:\n    image: x\n", "-");
        assert!(err.contains("container name \"-web\""), "{err}");
        assert!(err.contains("container_prefix (\"-\")"), "{err}");
    }

    #[test]
    fn volume_names_are_the_engines() {
        let text = "services:\n  web:\n    image: x\n    volumes: [v:/v]\nvolumes:\n  v:\n    name: \"../../etc\"\n";
        let err = errors(text, "p-");
        assert!(
            err.starts_with("c.yml: line 7: volumes: v: volume name \"../../etc\""),
            "{err}"
        );
        // A key kolla prefixes: one letter alone is too short.
        let keyed = "services:\n  web:\n    image: x\n    volumes: [v:/v]\nvolumes:\n  v: {}\n";
        let err = errors(keyed, "");
        assert!(err.starts_with("c.yml: line 6: volumes: v:"), "{err}");
        assert_eq!(errors(keyed, "p-"), "");
        // Another driver has rules of its own.
        let plugin = "services:\n  web:\n    image: x\n    volumes: [v:/v]\nvolumes:\n  v: {driver: nfs-plugin, name: \"a:b\"}\n";
        assert_eq!(errors(plugin, "p-"), "");
    }

    #[test]
    fn images_signals_and_healthchecks_name_their_lines() {
        let text = "services:\n  web:\n    image: \"atk/web:1 --privileged\"\n    stop_signal: SIGBOGUS\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 1us\n      timeout: 0s\n      start_period: 1ms\n    network_mode: \"container:-x\"\n";
        let err = errors(text, "p-");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(
            lines[0].starts_with("c.yml: line 3: service web: image: \"atk/web:1 --privileged\""),
            "{err}"
        );
        assert!(
            lines[1].starts_with("c.yml: line 4: service web: stop_signal: \"SIGBOGUS\""),
            "{err}"
        );
        assert!(
            lines[2].starts_with("c.yml: line 10: service web: network_mode:"),
            "{err}"
        );
        assert!(
            lines[3].starts_with("c.yml: line 7: service web: healthcheck.interval:"),
            "{err}"
        );
        let fine = "services:\n  web:\n    image: r.io:5000/kolla/web:zed\n    stop_signal: SIGRTMIN+3\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 1ms\n";
        assert_eq!(errors(fine, "p-"), "");
    }

    #[test]
    fn durations_past_any_clock_are_errors_not_panics() {
        for value in [
            "99999999999999999999h",
            "5000000000000000h5000000000000000h",
            "2147483648s",
        ] {
            let text = format!("services:\n  web:\n    image: x\n    stop_grace_period: {value}\n");
            let err = errors(&text, "p-");
            assert!(
                err.starts_with("c.yml: line 4: service web: stop_grace_period:")
                    && err.contains("longer than the engine accepts"),
                "{value}: {err}"
            );
            let text = format!(
                "services:\n  web:\n    image: x\n    healthcheck:\n      test: [CMD, \"true\"]\n      start_period: {value}\n"
            );
            let err = errors(&text, "p-");
            assert!(
                err.starts_with("c.yml: line 6: service web: healthcheck.start_period:"),
                "{value}: {err}"
            );
        }
    }
}
