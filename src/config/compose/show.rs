//! Resolved services as an operator reads them back (`kolla config`): the
//! compose keys kolla understood, after interpolation, anchors, merge keys
//! and profiles, in the Compose Spec's own spelling, as YAML or JSON.
//! Every text passes through a mask the caller gives (the passwords, in
//! every form they could take) and values under environment names that
//! say they hold a secret are hidden whole: a value pasted into a compose
//! file or an environment variable is as secret as passwords.yml's.
//! Serialising lives here because only `config` knows the YAML crate; what
//! to select and how to mask is the verb's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::model::{Condition, Healthcheck, Mount, Port, ServiceSpec, UpdateOrder};

/// What a masked value reads as.
pub const HIDDEN: &str = "<hidden>";

/// Parts of environment names that say the value is a secret.
const SECRET_NAMES: &[&str] = &["PASSWORD", "PASSWD", "SECRET", "TOKEN", "PRIVATE_KEY"];

/// One node's resolved services, and the node they are for.
#[derive(Debug, Serialize)]
pub struct NodeServices {
    pub node: String,
    pub roles: Vec<String>,
    pub services: BTreeMap<String, Value>,
}

impl NodeServices {
    /// `services` (already selected), as the document shows them.
    pub fn new<'a>(
        node: &str,
        roles: &[String],
        services: impl IntoIterator<Item = (&'a ServiceSpec, Vec<String>)>,
    ) -> NodeServices {
        NodeServices {
            node: node.to_string(),
            roles: roles.to_vec(),
            services: services
                .into_iter()
                .map(|(spec, files)| (spec.name.clone(), service(spec, &files)))
                .collect(),
        }
    }
}

/// `nodes` as YAML: one document per node, each opened by a comment that
/// names the node (and also carrying its name as a key, for tools).
pub fn to_yaml(nodes: &[NodeServices], mask: &dyn Fn(&str) -> String) -> Result<String, String> {
    let mut out = String::new();
    for node in nodes {
        let value = masked(node, mask)?;
        let text = serde_saphyr::to_string(&value).map_err(|e| e.to_string())?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&format!(
            "# node {} (roles: {})\n",
            mask(&node.node),
            mask(&node.roles.join(", "))
        ));
        out.push_str(&text);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// `nodes` as one JSON array, a node per element.
pub fn to_json(nodes: &[NodeServices], mask: &dyn Fn(&str) -> String) -> Result<String, String> {
    let values = nodes
        .iter()
        .map(|node| masked(node, mask))
        .collect::<Result<Vec<_>, _>>()?;
    serde_json::to_string_pretty(&values).map_err(|e| e.to_string())
}

/// `node` as a value tree with every text value masked. Keys are not:
/// they are kolla's own words and the names of services, variables and
/// labels, and the mask hides any run of a few of a password's letters,
/// so a password holding `config` would hide the key `config`.
fn masked(node: &NodeServices, mask: &dyn Fn(&str) -> String) -> Result<Value, String> {
    let value = serde_json::to_value(node).map_err(|e| e.to_string())?;
    Ok(mask_value(value, mask))
}

fn mask_value(value: Value, mask: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(mask(&text)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| mask_value(v, mask)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, mask_value(v, mask)))
                .collect(),
        ),
        other => other,
    }
}

/// Whether an environment variable's name says it holds a secret.
fn secret_name(name: &str) -> bool {
    let upper = name.to_uppercase();
    SECRET_NAMES.iter().any(|part| upper.contains(part))
}

/// A duration as compose writes one (`1m30s`, `500ms`).
fn duration(d: Duration) -> String {
    let (secs, millis) = (d.as_secs(), d.subsec_millis());
    let mut out = String::new();
    if secs >= 3600 {
        out.push_str(&format!("{}h", secs / 3600));
    }
    if secs % 3600 >= 60 {
        out.push_str(&format!("{}m", secs % 3600 / 60));
    }
    if secs % 60 > 0 || (out.is_empty() && millis == 0) {
        out.push_str(&format!("{}s", secs % 60));
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

fn mount(m: &Mount) -> String {
    match m {
        Mount::Volume {
            source,
            target,
            read_only,
            ..
        } => {
            let mut text = match source {
                Some(source) => format!("{source}:{target}"),
                None => target.clone(),
            };
            if *read_only {
                text.push_str(":ro");
            }
            text
        }
        Mount::Bind {
            source,
            target,
            read_only,
            propagation,
        } => {
            let mut options: Vec<&str> = Vec::new();
            if *read_only {
                options.push("ro");
            }
            options.extend(propagation.as_deref());
            let mut text = format!("{}:{target}", source.display());
            if !options.is_empty() {
                text.push(':');
                text.push_str(&options.join(","));
            }
            text
        }
    }
}

fn condition(c: Condition) -> &'static str {
    match c {
        Condition::Started => "service_started",
        Condition::Healthy => "service_healthy",
        Condition::CompletedSuccessfully => "service_completed_successfully",
    }
}

/// Insert `value` under `key` unless it is empty (null, false, an empty
/// list or map): the document shows what is set, as a compose file would.
fn put(map: &mut serde_json::Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    };
    if !empty {
        map.insert(key.to_string(), value);
    }
}

/// One service in the Compose Spec's spelling, `files` being the
/// destinations of its rendered config files (their contents are never
/// shown: they hold the passwords).
fn service(s: &ServiceSpec, files: &[String]) -> Value {
    use serde_json::json;
    let mut m = serde_json::Map::new();
    put(&mut m, "image", json!(s.image));
    put(&mut m, "command", json!(s.command));
    put(&mut m, "entrypoint", json!(s.entrypoint));
    let environment: BTreeMap<&String, &str> = s
        .environment
        .iter()
        .map(|(k, v)| (k, if secret_name(k) { HIDDEN } else { v.as_str() }))
        .collect();
    put(&mut m, "environment", json!(environment));
    put(&mut m, "network_mode", json!(s.network_mode));
    put(&mut m, "pid", json!(s.pid));
    put(&mut m, "ipc", json!(s.ipc));
    put(&mut m, "privileged", json!(s.privileged));
    put(&mut m, "cap_add", json!(s.cap_add));
    put(&mut m, "cap_drop", json!(s.cap_drop));
    put(&mut m, "security_opt", json!(s.security_opt));
    put(&mut m, "user", json!(s.user));
    let volumes: Vec<String> = s.volumes.iter().map(mount).collect();
    put(&mut m, "volumes", json!(volumes));
    put(&mut m, "volumes_from", json!(s.volumes_from));
    let depends: BTreeMap<&String, Value> = s
        .depends_on
        .iter()
        .map(|(k, c)| (k, json!({"condition": condition(*c)})))
        .collect();
    put(&mut m, "depends_on", json!(depends));
    if let Some(h) = &s.healthcheck {
        put(&mut m, "healthcheck", healthcheck(h));
    }
    put(&mut m, "restart", json!(s.restart));
    put(&mut m, "init", json!(s.init));
    let ulimits: BTreeMap<&String, Value> = s
        .ulimits
        .iter()
        .map(|(k, u)| (k, json!({"soft": u.soft, "hard": u.hard})))
        .collect();
    put(&mut m, "ulimits", json!(ulimits));
    put(&mut m, "tmpfs", json!(s.tmpfs));
    put(&mut m, "extra_hosts", json!(s.extra_hosts));
    put(&mut m, "sysctls", json!(s.sysctls));
    put(&mut m, "labels", json!(s.labels));
    let ports: Vec<String> = s.ports.iter().map(port).collect();
    put(&mut m, "ports", json!(ports));
    put(&mut m, "profiles", json!(s.profiles));
    put(
        &mut m,
        "stop_grace_period",
        json!(s.stop_grace_period.map(duration)),
    );
    put(&mut m, "stop_signal", json!(s.stop_signal));
    put(&mut m, "x-kolla", kolla(s, files));
    Value::Object(m)
}

fn healthcheck(h: &Healthcheck) -> Value {
    use serde_json::json;
    let mut check = serde_json::Map::new();
    put(&mut check, "test", json!(h.test));
    put(&mut check, "interval", json!(h.interval.map(duration)));
    put(&mut check, "timeout", json!(h.timeout.map(duration)));
    put(&mut check, "retries", json!(h.retries));
    put(
        &mut check,
        "start_period",
        json!(h.start_period.map(duration)),
    );
    put(&mut check, "disable", json!(h.disable));
    Value::Object(check)
}

/// A port in the short syntax: `[HOST_IP:][PUBLISHED:]TARGET/PROTOCOL`.
fn port(p: &Port) -> String {
    let mut text = String::new();
    if let Some(ip) = &p.host_ip {
        text.push_str(&format!("{ip}:"));
    }
    if let Some(published) = p.published {
        text.push_str(&format!("{published}:"));
    }
    format!("{text}{}/{}", p.target, p.protocol)
}

fn kolla(s: &ServiceSpec, files: &[String]) -> Value {
    use serde_json::json;
    let k = &s.kolla;
    let mut m = serde_json::Map::new();
    put(&mut m, "data", json!(k.data));
    if let Some(config) = &k.config {
        put(
            &mut m,
            "config",
            json!({"src": config.src.display().to_string(), "dest": config.dest, "files": files}),
        );
    }
    put(&mut m, "bootstrap", json!(k.bootstrap));
    if let Some(check) = &k.upgrade_check {
        put(
            &mut m,
            "upgrade_check",
            json!({"command": check.command, "warning_exit_codes": check.warning_exit_codes}),
        );
    }
    if let Some(point) = &k.restore_point {
        put(
            &mut m,
            "restore_point",
            json!({"service": point.service, "dump": point.dump, "restore": point.restore}),
        );
    }
    if k.update_order == UpdateOrder::StartFirst {
        put(&mut m, "update_order", json!("start-first"));
    }
    put(&mut m, "host_ports", json!(k.host_ports));
    put(&mut m, "host_sysctls", json!(k.host_sysctls));
    put(&mut m, "host_shared_mounts", json!(k.host_shared_mounts));
    put(&mut m, "guests", json!(k.guests));
    put(&mut m, "upgrade_after", json!(k.upgrade_after));
    put(&mut m, "post_upgrade", json!(k.post_upgrade));
    put(&mut m, "one_way", json!(k.one_way));
    put(&mut m, "cleanup", json!(k.cleanup));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_compose_writes_them() {
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn every_text_is_masked_and_secret_names_hidden_whole() {
        let text = "services:\n  web:\n    image: busybox:1\n    environment:\n      DB_PASSWORD: plain-in-the-file\n      GREETING: hi s3cr3t-value there\n";
        let file = super::super::parse(
            text,
            std::path::Path::new("controller.yml"),
            &super::super::Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        let spec = &file.services[0];
        let nodes = [NodeServices::new(
            "n1",
            &["controller".to_string()],
            [(spec, vec!["/etc/web/web.conf".to_string()])],
        )];
        let mask = |text: &str| text.replace("s3cr3t-value", HIDDEN);
        let yaml = to_yaml(&nodes, &mask).unwrap();
        assert!(
            yaml.starts_with("# node n1 (roles: controller)\n"),
            "{yaml}"
        );
        assert!(yaml.contains("busybox:1"), "{yaml}");
        assert!(
            !yaml.contains("s3cr3t") && !yaml.contains("plain-in-the-file"),
            "{yaml}"
        );
        let json = to_json(&nodes, &mask).unwrap();
        let parsed: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[0]["node"], "n1");
        assert_eq!(
            parsed[0]["services"]["web"]["environment"]["GREETING"],
            "hi <hidden> there"
        );
    }
}
