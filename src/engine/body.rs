//! Our container specs as the engine's create and update request bodies.
//! Pure, so the mapping is tested without an engine.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, PortBinding as ApiPortBinding, ResourcesUlimits,
    RestartPolicy, RestartPolicyNameEnum,
};

use crate::container::ContainerSpec;

/// The engine's port bindings of `spec` (None without ports).
fn port_bindings(spec: &ContainerSpec) -> Option<HashMap<String, Option<Vec<ApiPortBinding>>>> {
    (!spec.ports.is_empty()).then(|| {
        let mut map: HashMap<String, Option<Vec<ApiPortBinding>>> = HashMap::new();
        for port in &spec.ports {
            map.entry(format!("{}/{}", port.container_port, port.protocol))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(ApiPortBinding {
                    host_ip: port.host_ip.clone(),
                    host_port: port.host_port.map(|p| p.to_string()),
                });
        }
        map
    })
}

pub use crate::container::SYSTEMPATHS_UNCONFINED;

/// The engine's create request for `spec`. Pure, so the mapping is tested
/// without an engine.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let restart_policy = spec.restart_policy.as_deref().map(restart_policy);
    let port_bindings = port_bindings(spec);
    let exposed: Vec<String> = spec
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.container_port, p.protocol))
        .collect();
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    // `systempaths=unconfined` is the docker CLI's spelling of "no masked
    // or read-only /proc paths"; the API wants the two lists, empty.
    let (unconfined_paths, security_opt): (Vec<String>, Vec<String>) = spec
        .security_opt
        .iter()
        .cloned()
        .partition(|o| o == SYSTEMPATHS_UNCONFINED);
    let system_paths = (!unconfined_paths.is_empty()).then(Vec::new);
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: non_empty(&spec.env),
        user: spec.user.clone(),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        volumes: non_empty(&spec.anonymous_volumes),
        exposed_ports: non_empty(&exposed),
        stop_timeout: spec.stop_timeout_secs,
        stop_signal: spec.stop_signal.clone(),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval_ns,
            timeout: h.timeout_ns,
            retries: h.retries,
            start_period: h.start_period_ns,
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            binds: non_empty(&spec.binds),
            volumes_from: non_empty(&spec.volumes_from),
            network_mode: spec.network_mode.clone(),
            pid_mode: spec.pid_mode.clone(),
            ipc_mode: spec.ipc_mode.clone(),
            privileged: Some(spec.privileged),
            cap_add: non_empty(&spec.cap_add),
            cap_drop: non_empty(&spec.cap_drop),
            security_opt: non_empty(&security_opt),
            masked_paths: system_paths.clone(),
            readonly_paths: system_paths,
            device_cgroup_rules: non_empty(&spec.device_cgroup_rules),
            restart_policy,
            init: spec.init,
            ulimits: (!spec.ulimits.is_empty()).then(|| {
                spec.ulimits
                    .iter()
                    .map(|(name, soft, hard)| ResourcesUlimits {
                        name: Some(name.clone()),
                        soft: Some(*soft),
                        hard: Some(*hard),
                    })
                    .collect()
            }),
            tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone().into_iter().collect()),
            extra_hosts: non_empty(&spec.extra_hosts),
            sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.clone().into_iter().collect()),
            port_bindings,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]` as the engine's type.
pub(super) fn restart_policy(policy: &str) -> RestartPolicy {
    let (name, retries) = match policy.split_once(':') {
        Some((name, n)) => (name, n.parse().ok()),
        None => (policy, None),
    };
    let name = match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::NO,
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

#[cfg(test)]
mod tests {
    use super::{SYSTEMPATHS_UNCONFINED, create_body};
    use crate::container::{ContainerSpec, HealthSpec, PortBinding};

    #[test]
    fn systempaths_unconfined_becomes_empty_path_lists() {
        let spec = ContainerSpec {
            security_opt: vec![SYSTEMPATHS_UNCONFINED.into(), "apparmor=unconfined".into()],
            ..ContainerSpec::default()
        };
        let host = create_body(&spec).host_config.unwrap();
        assert_eq!(
            host.security_opt,
            Some(vec!["apparmor=unconfined".to_string()])
        );
        assert_eq!(host.masked_paths, Some(Vec::new()));
        assert_eq!(host.readonly_paths, Some(Vec::new()));
        // Without it, the engine's defaults stay.
        let host = create_body(&ContainerSpec::default()).host_config.unwrap();
        assert_eq!(host.masked_paths, None);
        assert_eq!(host.readonly_paths, None);
    }

    #[test]
    fn create_body_maps_every_field() {
        let spec = ContainerSpec {
            name: "web".into(),
            labels: [("kolla.service".to_string(), "web".to_string())].into(),
            image: "busybox:1".into(),
            command: Some(vec!["httpd".into(), "-f".into()]),
            env: vec!["A=1".into()],
            network_mode: Some("host".into()),
            privileged: true,
            binds: vec!["/etc/hosts:/etc/hosts:ro".into()],
            anonymous_volumes: vec!["/data".into()],
            volumes_from: vec!["webdata".into()],
            restart_policy: Some("on-failure:3".into()),
            ulimits: vec![("nofile".into(), 1024, 2048)],
            ports: vec![PortBinding {
                host_ip: None,
                host_port: Some(8080),
                container_port: 80,
                protocol: "tcp".into(),
            }],
            healthcheck: Some(HealthSpec {
                test: vec!["CMD".into(), "true".into()],
                interval_ns: Some(1_000_000_000),
                timeout_ns: None,
                retries: Some(3),
                start_period_ns: None,
            }),
            stop_timeout_secs: Some(30),
            ..ContainerSpec::default()
        };
        let body = create_body(&spec);
        assert_eq!(body.image.as_deref(), Some("busybox:1"));
        assert_eq!(body.cmd, Some(vec!["httpd".to_string(), "-f".to_string()]));
        assert_eq!(body.volumes, Some(vec!["/data".to_string()]));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
        assert_eq!(body.stop_timeout, Some(30));
        assert_eq!(body.labels.unwrap()["kolla.service"], "web");
        assert_eq!(body.healthcheck.unwrap().retries, Some(3));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.privileged, Some(true));
        assert_eq!(host.volumes_from, Some(vec!["webdata".to_string()]));
        assert_eq!(
            host.binds,
            Some(vec!["/etc/hosts:/etc/hosts:ro".to_string()])
        );
        let policy = host.restart_policy.unwrap();
        assert_eq!(
            policy.name,
            Some(bollard::models::RestartPolicyNameEnum::ON_FAILURE)
        );
        assert_eq!(policy.maximum_retry_count, Some(3));
        let ports = host.port_bindings.unwrap();
        assert_eq!(
            ports["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert_eq!(host.ulimits.unwrap()[0].hard, Some(2048));
        assert_eq!(host.cap_add, None);
    }
}
