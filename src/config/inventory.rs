//! The inventory: which nodes exist, how to reach each one's Docker engine,
//! which roles it has (a role `R` means the node runs `compose/R.yml`), and
//! its own values for the compose files' variables.
//! `inventory/all-in-one.yml` (this machine, roles controller + compute) is
//! built in and used when no `--inventory` is given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The all-in-one inventory, used when the operator names none.
pub const ALL_IN_ONE: &str = include_str!("../../inventory/all-in-one.yml");

/// How a node's engine applies `privileged: true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivilegedMode {
    /// The engine's own `--privileged`.
    #[default]
    Native,
    /// Every capability the engine can grant, AppArmor and seccomp
    /// unconfined, and access to every device: for engines that refuse
    /// `--privileged` because they cannot grant all capabilities.
    Explicit,
    /// Native where the engine starts privileged containers, explicit where
    /// it refuses: settled by a probe container when a deploy needs it.
    Auto,
}

/// Client certificate files, resolved against the inventory's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// `unix:///...` or `tcp://host:port`; None means the environment's
    /// engine (DOCKER_HOST, or the local socket).
    pub docker: Option<String>,
    pub tls: Option<TlsPaths>,
    pub roles: Vec<String>,
    pub privileged: PrivilegedMode,
    /// The address the node's services bind and advertise (`api_address`
    /// in templates); None: loopback, for an all-in-one node.
    pub api_address: Option<String>,
    /// `variables`: this node's values for `${VAR}` in compose files (its
    /// provider interface, say), above the environment, `.env` and
    /// globals.
    pub variables: BTreeMap<String, String>,
}

impl Node {
    /// `api_address`, or loopback for a node without one (an all-in-one).
    pub fn api_address_or_loopback(&self) -> String {
        self.api_address
            .clone()
            .unwrap_or_else(|| "127.0.0.1".to_string())
    }

    /// The host part of a `tcp://` or `ssh://` endpoint, if it has one.
    pub fn endpoint_host(&self) -> Option<String> {
        let url = self.docker.as_deref()?;
        let rest = url
            .strip_prefix("tcp://")
            .or_else(|| url.strip_prefix("ssh://"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host_port.split(':').next().unwrap_or(host_port),
        };
        (!host.is_empty()).then(|| host.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Where it was read from ("<built-in all-in-one>" for the default).
    pub origin: PathBuf,
    /// Sorted by name.
    pub nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: String,
    cert: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    docker: Option<String>,
    tls: Option<RawTls>,
    roles: Vec<String>,
    #[serde(default)]
    privileged: PrivilegedMode,
    api_address: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, VariableValue>,
}

/// A node variable's value as YAML holds it: text, or a number or boolean
/// read as its text (`MTU: 1450`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VariableValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl VariableValue {
    fn into_text(self) -> String {
        match self {
            VariableValue::Text(text) => text,
            VariableValue::Integer(n) => n.to_string(),
            VariableValue::Float(x) => x.to_string(),
            VariableValue::Boolean(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    nodes: BTreeMap<String, RawNode>,
}

impl Inventory {
    /// The inventory at `path`, or the built-in all-in-one.
    pub fn load(path: Option<&Path>) -> Result<Inventory, ConfigError> {
        match path {
            None => Inventory::parse(ALL_IN_ONE, Path::new("<built-in all-in-one inventory>")),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Inventory::parse(&text, path)
            }
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Inventory, ConfigError> {
        let raw: RawInventory = serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml {
            path: path.to_path_buf(),
            message: crate::config::yaml::error_text(&e, text),
        })?;
        let invalid = |node: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("node {node}: {message}"),
        };
        if raw.nodes.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "no nodes".into(),
            });
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let nodes = raw
            .nodes
            .into_iter()
            .map(|(name, node)| resolve_node(name, node, dir).map_err(|(n, m)| invalid(&n, m)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inventory {
            origin: path.to_path_buf(),
            nodes,
        })
    }

    /// Every TLS file of `nodes` is there: a missing one is found before any
    /// engine is reached, and named with its node and key. Not checked when
    /// the inventory is read: `kolla certs` reads it to make them.
    pub fn check_tls_files(&self, nodes: &[&Node]) -> Result<(), ConfigError> {
        let mut missing = Vec::new();
        for node in nodes {
            let Some(tls) = &node.tls else { continue };
            for (key, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                if !path.is_file() {
                    missing.push(ConfigError::Invalid {
                        path: self.origin.clone(),
                        message: format!(
                            "node {}: tls.{key}: {} does not exist (`kolla certs -i {}` makes the certificates)",
                            node.name,
                            path.display(),
                            self.origin.display()
                        ),
                    });
                }
            }
        }
        match missing.len() {
            0 => Ok(()),
            1 => Err(missing.remove(0)),
            _ => Err(ConfigError::Several(missing)),
        }
    }

    /// Nodes whose name or one of whose roles is in `selectors` (every node
    /// when there are none). A selector matching nothing is an error that
    /// lists what exists.
    pub fn select(&self, selectors: &[String]) -> Result<Vec<&Node>, ConfigError> {
        if selectors.is_empty() {
            return Ok(self.nodes.iter().collect());
        }
        for selector in selectors {
            let known = self
                .nodes
                .iter()
                .any(|n| &n.name == selector || n.roles.contains(selector));
            if !known {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                let mut roles: Vec<&str> = self
                    .nodes
                    .iter()
                    .flat_map(|n| n.roles.iter().map(String::as_str))
                    .collect();
                roles.sort();
                roles.dedup();
                return Err(ConfigError::Invalid {
                    path: self.origin.clone(),
                    message: format!(
                        "no node or role named {selector:?}; nodes: {}; roles: {}",
                        names.join(", "),
                        roles.join(", ")
                    ),
                });
            }
        }
        Ok(self
            .nodes
            .iter()
            .filter(|n| {
                selectors
                    .iter()
                    .any(|s| &n.name == s || n.roles.contains(s))
            })
            .collect())
    }
}

/// One node checked, with its certificate paths resolved against `dir`;
/// an error is the node's name and what is wrong with it.
fn resolve_node(name: String, node: RawNode, dir: &Path) -> Result<Node, (String, String)> {
    let check = || -> Result<(), String> {
        if !super::globals::is_valid_path_component(&name) {
            return Err("a node name may use lowercase letters, digits, '.', '_', '-'".into());
        }
        if node.roles.is_empty() {
            return Err("no roles (a role R deploys compose/R.yml)".into());
        }
        if let Some(role) = node
            .roles
            .iter()
            .find(|r| !super::globals::is_valid_path_component(r))
        {
            return Err(format!("role {role:?} is not a valid file name"));
        }
        if let Some(address) = &node.api_address
            && address.parse::<std::net::IpAddr>().is_err()
        {
            return Err(format!(
                "api_address {address:?} is not an IP address (services bind it)"
            ));
        }
        check_variables(&node.variables)?;
        check_endpoint(node.docker.as_deref(), node.tls.is_some())
    };
    if let Err(message) = check() {
        return Err((name, message));
    }
    Ok(Node {
        name,
        docker: node.docker,
        tls: node.tls.map(|t| TlsPaths {
            ca: dir.join(t.ca),
            cert: dir.join(t.cert),
            key: dir.join(t.key),
        }),
        roles: node.roles,
        privileged: node.privileged,
        api_address: node.api_address,
        variables: node
            .variables
            .into_iter()
            .map(|(name, value)| (name, value.into_text()))
            .collect(),
    })
}

/// Node variables are plain names (as `${NAME}` reads them) with one-line
/// values; `API_ADDRESS` is `api_address`'s.
fn check_variables(variables: &BTreeMap<String, VariableValue>) -> Result<(), String> {
    for (name, value) in variables {
        let plain = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(format!(
                "variables: {name:?} is not a variable name (letters, digits and _, not starting with a digit)"
            ));
        }
        if name == "API_ADDRESS" {
            return Err(
                "variables: API_ADDRESS comes from the node's api_address; set that".into(),
            );
        }
        if let VariableValue::Text(text) = value
            && text.chars().any(char::is_control)
        {
            return Err(format!(
                "variables: {name}: a value may not hold a line break or control character"
            ));
        }
    }
    Ok(())
}

/// The endpoint's scheme is one kolla speaks, and TCP to another host is
/// protected by TLS.
fn check_endpoint(docker: Option<&str>, tls: bool) -> Result<(), String> {
    let Some(url) = docker else {
        return match tls {
            true => Err("tls without a docker: tcp:// endpoint".into()),
            false => Ok(()),
        };
    };
    if url.starts_with("ssh://") {
        if crate::container::parse_ssh_url(url).is_none() {
            return Err(format!(
                "docker {url:?}: {}",
                crate::container::SSH_URL_EXPECTED
            ));
        }
        return match tls {
            true => Err(format!(
                "{url}: tls is for tcp:// endpoints (ssh protects the connection itself)"
            )),
            false => Ok(()),
        };
    }
    if !(url.starts_with("unix://") || url.starts_with("tcp://")) {
        return Err(format!(
            "docker {url:?}: expected unix:///path, tcp://host:port or ssh://[user@]host[:port]"
        ));
    }
    if url.starts_with("tcp://") && !tls && !crate::config::is_loopback_url(url) {
        return Err(format!(
            "{url} is plain TCP to a remote engine; add tls: {{ca, cert, key}} (only loopback may go without TLS)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, ConfigError> {
        Inventory::parse(text, Path::new("inventory/test.yml"))
    }

    #[test]
    fn built_in_all_in_one_is_the_local_engine_with_both_roles() {
        let inventory = Inventory::load(None).unwrap();
        assert_eq!(inventory.nodes.len(), 1);
        let node = &inventory.nodes[0];
        assert_eq!(node.docker, None);
        assert_eq!(node.roles, vec!["controller", "compute"]);
        assert_eq!(node.privileged, PrivilegedMode::Auto);
    }

    #[test]
    fn shipped_multinode_example_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/inventory/multinode.yml"
        ))
        .unwrap();
        let inventory = Inventory::parse(&text, Path::new("inventory/multinode.yml")).unwrap();
        let compute2 = inventory
            .nodes
            .iter()
            .find(|n| n.name == "compute2")
            .unwrap();
        assert_eq!(compute2.privileged, PrivilegedMode::Explicit);
        let compute1 = inventory
            .nodes
            .iter()
            .find(|n| n.name == "compute1")
            .unwrap();
        assert_eq!(compute1.variables["NEUTRON_EXTERNAL_INTERFACE"], "ens4");
        assert_eq!(
            compute2.tls.as_ref().unwrap().ca,
            Path::new("inventory/certs/ca.pem")
        );
    }

    #[test]
    fn a_nodes_variables_are_text_and_bad_ones_name_the_node() {
        let inventory = parse(
            "nodes:\n  c1:\n    roles: [compute]\n    variables: {NEUTRON_EXTERNAL_INTERFACE: ens3, MTU: 1450, DEBUG: true}\n  c2:\n    roles: [compute]\n",
        )
        .unwrap();
        let c1 = &inventory.nodes[0].variables;
        assert_eq!(c1["NEUTRON_EXTERNAL_INTERFACE"], "ens3");
        assert_eq!(c1["MTU"], "1450");
        assert_eq!(c1["DEBUG"], "true");
        assert!(inventory.nodes[1].variables.is_empty());
        for (variables, want) in [
            ("{1IFACE: x}", "is not a variable name"),
            ("{\"IF-ACE\": x}", "is not a variable name"),
            ("{\"\": x}", "is not a variable name"),
            ("{API_ADDRESS: 10.0.0.1}", "api_address"),
            ("{IFACE: \"eth0\\nrm -rf /\"}", "line break"),
        ] {
            let text = format!("nodes:\n  c9:\n    roles: [compute]\n    variables: {variables}\n");
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.contains("inventory/test.yml: node c9: variables"),
                "{variables}: {err}"
            );
            assert!(err.contains(want), "{variables}: {err}");
        }
    }

    #[test]
    fn plain_tcp_to_a_remote_node_is_refused() {
        let err = parse("nodes:\n  c1: {docker: \"tcp://10.0.0.11:2375\", roles: [compute]}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("inventory/test.yml: node c1: tcp://10.0.0.11:2375 is plain TCP"),
            "{err}"
        );
        assert!(
            parse("nodes:\n  c1: {docker: \"tcp://127.0.0.1:2375\", roles: [compute]}\n").is_ok()
        );
        // ssh protects itself; TLS files beside it are a mistake.
        let node = parse("nodes:\n  c1: {docker: \"ssh://me@host:2222\", roles: [compute]}\n")
            .expect("ssh endpoint");
        assert_eq!(node.nodes[0].endpoint_host().as_deref(), Some("host"));
        let err = parse("nodes:\n  c1: {docker: \"ssh://me@host\", tls: {ca: a, cert: b, key: c}, roles: [compute]}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node c1: ssh://me@host: tls is for tcp://"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_ssh_url_names_the_node_and_its_docker_key() {
        for url in [
            "ssh://host:port",
            "ssh://",
            "ssh://-oProxyCommand=x",
            "ssh://a b",
        ] {
            let text = format!("nodes:\n  c1: {{docker: \"{url}\", roles: [compute]}}\n");
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "inventory/test.yml: node c1: docker {url:?}: expected ssh://"
                )),
                "{url}: {err}"
            );
        }
        assert!(parse("nodes:\n  c1: {docker: \"ssh://ops@[fd00::5]:22\", roles: [x]}\n").is_ok());
    }

    #[test]
    fn missing_tls_files_name_the_node_and_key_and_present_ones_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.yml");
        let text = "nodes:\n  c1: {docker: \"tcp://10.0.0.11:2376\", tls: {ca: ca.pem, cert: cert.pem, key: key.pem}, roles: [x]}\n  c2: {roles: [x]}\n";
        let inventory = Inventory::parse(text, &path).unwrap();
        let nodes: Vec<&Node> = inventory.nodes.iter().collect();
        let err = inventory.check_tls_files(&nodes).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        for (line, key) in lines.iter().zip(["ca", "cert", "key"]) {
            assert!(
                line.starts_with(&format!("{}: node c1: tls.{key}: ", path.display())),
                "{line}"
            );
            assert!(line.contains("does not exist (`kolla certs -i"), "{line}");
        }
        for file in ["ca.pem", "cert.pem"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
        }
        let err = inventory.check_tls_files(&nodes).unwrap_err().to_string();
        assert!(
            err.contains("node c1: tls.key: ") && !err.contains("tls.ca"),
            "{err}"
        );
        std::fs::write(dir.path().join("key.pem"), "x").unwrap();
        assert!(inventory.check_tls_files(&nodes).is_ok());
    }

    #[test]
    fn bad_inventories_name_file_and_node() {
        let err = parse("nodes:\n  c1:\n    roles: [compute]\n    rolez: [x]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inventory/test.yml: line 4"), "{err}");
        assert!(
            parse("nodes:\n  c1: {roles: []}\n")
                .unwrap_err()
                .to_string()
                .contains("node c1: no roles")
        );
        assert!(
            parse("nodes: {}\n")
                .unwrap_err()
                .to_string()
                .contains("no nodes")
        );
        assert!(parse("nodes:\n  c1: {roles: [x], privileged: sometimes}\n").is_err());
    }

    #[test]
    fn select_by_name_or_role() {
        let inventory = parse(
            "nodes:\n  ctl: {roles: [controller]}\n  c1: {roles: [compute]}\n  c2: {roles: [compute]}\n",
        )
        .unwrap();
        let names = |selectors: &[&str]| -> Vec<String> {
            let selectors: Vec<String> = selectors.iter().map(|s| s.to_string()).collect();
            inventory
                .select(&selectors)
                .unwrap()
                .iter()
                .map(|n| n.name.clone())
                .collect()
        };
        assert_eq!(names(&[]), vec!["c1", "c2", "ctl"]);
        assert_eq!(names(&["compute"]), vec!["c1", "c2"]);
        assert_eq!(names(&["ctl", "c2"]), vec!["c2", "ctl"]);
        let err = inventory
            .select(&["storage".to_string()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "inventory/test.yml: no node or role named \"storage\"; nodes: c1, c2, ctl; roles: compute, controller"
        );
    }
}
