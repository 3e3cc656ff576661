//! One node's desired state, from files only: its roles' compose files ->
//! desired services (config templates rendered, container specs and config
//! hashes derived, dependency levels set) and the volumes they need. No
//! engine: `supply` finds each service's image on the node afterwards, and
//! `set_privileged` settles the specs once the node's privileged mode is
//! known.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::config_files::RenderedFile;
use super::config_files::{self, TemplateInputs};
use super::labels::ObservedContainer;
use super::plan::{DesiredService, PlanError};
use super::spec::{self, Placement};
use crate::config::compose::{self, ComposeFile, ServiceSpec, Variables};
use crate::config::inventory::{Node, PrivilegedMode};
use crate::config::passwords::Passwords;
use crate::config::{ConfigError, Globals};

/// The compose file a role deploys.
pub fn compose_path(compose_dir: &Path, role: &str) -> PathBuf {
    compose_dir.join(format!("{role}.yml"))
}

/// The compose files of `node`'s roles, read and checked.
pub fn load_files(
    node: &Node,
    compose_dir: &Path,
    variables: &Variables,
) -> Result<Vec<(String, ComposeFile)>, ConfigError> {
    // The node's own address, for `${API_ADDRESS}` (binds, healthchecks):
    // the node decides it, above any variable of the same name.
    let mut variables = variables.clone();
    // The node's own values come first: they are what sets it apart.
    for (name, value) in &node.variables {
        variables.environment.insert(name.clone(), value.clone());
    }
    variables
        .environment
        .insert("API_ADDRESS".to_string(), node.api_address_or_loopback());
    node.roles
        .iter()
        .map(|role| {
            let path = compose_path(compose_dir, role);
            if !path.is_file() {
                return Err(ConfigError::Invalid {
                    path: path.clone(),
                    message: format!(
                        "node {} has role {role}, but there is no compose file for it",
                        node.name
                    ),
                });
            }
            compose::load(&path, &variables).map(|file| (role.clone(), file))
        })
        .collect()
}

/// A node's desired services, by name, with their rendered config files.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub services: BTreeMap<String, DesiredService>,
    pub files: BTreeMap<String, Vec<RenderedFile>>,
    /// Named volumes to create: (engine name, driver).
    pub volumes: Vec<(String, Option<String>)>,
    /// Volumes made outside kolla that must exist: (name, compose file).
    pub external_volumes: Vec<(String, PathBuf)>,
    /// The key of the config hashes (`spec::hash_key` of the passwords).
    pub hash_key: [u8; 32],
}

/// Build the desired state of `node` from its compose files (no engine
/// yet: digests are filled in by `resolve_images`). Services in
/// `profiles` are left out unless one of their profiles is active or names
/// the release deployed. (Passwords given as a map are all strings; see
/// `desired_of` for passwords.yml as read.)
pub fn desired(
    node: &Node,
    files: &[(String, ComposeFile)],
    globals: &Globals,
    passwords: &BTreeMap<String, String>,
    active_profiles: &[String],
) -> Result<Desired, DesiredError> {
    let passwords = Passwords::from(passwords.clone());
    desired_of(node, files, globals, &passwords, active_profiles)
}

/// `desired`, with passwords.yml as read (its entries set aside named to
/// a template that asks for one).
pub fn desired_of(
    node: &Node,
    files: &[(String, ComposeFile)],
    globals: &Globals,
    passwords: &Passwords,
    active_profiles: &[String],
) -> Result<Desired, DesiredError> {
    let mut out = Desired {
        hash_key: spec::hash_key(&passwords.values),
        ..Desired::default()
    };
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    // One for the node, not a copy of the globals and passwords per
    // service: only the role changes from file to file.
    let mut inputs = TemplateInputs {
        globals: crate::templates::globals_context(globals),
        passwords: passwords.clone(),
        node_name: node.name.clone(),
        node_role: String::new(),
        api_address: node.api_address_or_loopback(),
        job: false,
    };
    for (role, file) in files {
        add_volumes(&mut out, file, &globals.container_prefix);
        inputs.node_role.clone_from(role);
        // The release deployed is a profile too, always active: a service
        // that exists in one release only says so with `profiles: [zed]`,
        // as data in its compose file.
        let release = globals.openstack_release.name();
        let active = file.services.iter().filter(|service| {
            service.profiles.is_empty()
                || service
                    .profiles
                    .iter()
                    .any(|p| p == release || active_profiles.contains(p))
        });
        for service in active {
            if let Some(first) = origin.get(&service.name) {
                // Two roles may share a service (Neutron's L2 agent on
                // network and compute nodes): a node with both runs it
                // once, if both files say the same thing.
                let same = out
                    .services
                    .get(&service.name)
                    .is_some_and(|earlier| same_service(&earlier.service, service));
                if same {
                    continue;
                }
                return Err(DesiredError::Plan(PlanError::Duplicate {
                    service: service.name.clone(),
                    first: first.clone(),
                    second: role.clone(),
                }));
            }
            origin.insert(service.name.clone(), role.clone());
            let (mut wanted, rendered) = wanted_service(node, role, service, &inputs)?;
            derive_spec(&mut wanted, &rendered, globals, &out.hash_key);
            out.files.insert(service.name.clone(), rendered);
            out.services.insert(service.name.clone(), wanted);
        }
    }
    set_levels(&mut out);
    Ok(out)
}

/// Whether two roles' files define a service alike (wherever it sits in
/// each file).
fn same_service(a: &ServiceSpec, b: &ServiceSpec) -> bool {
    ServiceSpec {
        line: 0,
        ..a.clone()
    } == ServiceSpec {
        line: 0,
        ..b.clone()
    }
}

/// The file's top-level volumes, by the names the engine knows them under.
fn add_volumes(out: &mut Desired, file: &ComposeFile, prefix: &str) {
    for volume in file.volumes.values() {
        let name = if volume.literal {
            volume.name.clone()
        } else {
            format!("{prefix}{}", volume.name)
        };
        if volume.external {
            out.external_volumes.push((name, file.path.clone()));
        } else {
            out.volumes.push((name, volume.driver.clone()));
        }
    }
}

/// Rendered config files: path in the container and content.
type RenderedFiles = Vec<RenderedFile>;

/// The service with its bootstrap job's files rendered, and the service's
/// own rendered files (its spec is derived from them after).
fn wanted_service(
    node: &Node,
    role: &str,
    service: &compose::ServiceSpec,
    inputs: &TemplateInputs,
) -> Result<(DesiredService, RenderedFiles), DesiredError> {
    let rendered = config_files::render(service, inputs)?;
    let job_files = match service.kolla.bootstrap {
        Some(_) => {
            let job = TemplateInputs {
                job: true,
                ..inputs.clone()
            };
            config_files::render(service, &job)?
        }
        None => Vec::new(),
    };
    let wanted = DesiredService {
        service: service.clone(),
        spec: Default::default(),
        config_hash: String::new(),
        config_parts: Default::default(),
        digest: None,
        node_role: role.to_string(),
        privileged: node.privileged,
        job_files,
        image_volumes: Vec::new(),
        level: 0,
        release: None,
    };
    Ok((wanted, rendered))
}

/// Levels order stops (dependents first); a cycle is reported by the
/// plan, so it leaves every level at 0 here.
fn set_levels(out: &mut Desired) {
    let specs: Vec<&compose::ServiceSpec> = out.services.values().map(|d| &d.service).collect();
    if let Ok(levels) = super::plan::levels(&specs) {
        for (level, names) in levels.iter().enumerate() {
            for name in names {
                if let Some(wanted) = out.services.get_mut(name) {
                    wanted.level = level;
                }
            }
        }
    }
}

/// The container spec and config hash `wanted` gets under privileged
/// `mode`, from its service, where it is placed and its rendered files.
fn derived(
    wanted: &DesiredService,
    mode: PrivilegedMode,
    rendered: &[RenderedFile],
    globals: &Globals,
    hash_key: &[u8],
) -> (spec::ContainerSpec, String) {
    let placement = Placement {
        prefix: &globals.container_prefix,
        project: &globals.project,
        node_role: &wanted.node_role,
        privileged: mode,
    };
    let container = spec::container_spec(&wanted.service, &placement);
    let hash = spec::config_hash(
        hash_key,
        spec::HashInputs {
            spec: &container,
            files: rendered,
            job_files: &wanted.job_files,
            bootstrap: wanted.service.kolla.bootstrap.as_deref(),
        },
    );
    (container, hash)
}

/// The rendered config files of `service` (none for one without).
fn rendered<'a>(
    files: &'a BTreeMap<String, Vec<RenderedFile>>,
    service: &str,
) -> &'a [RenderedFile] {
    files.get(service).map(Vec::as_slice).unwrap_or_default()
}

/// Fill in `wanted`'s spec and config hash for its own privileged mode.
fn derive_spec(
    wanted: &mut DesiredService,
    rendered: &[RenderedFile],
    globals: &Globals,
    hash_key: &[u8],
) {
    (wanted.spec, wanted.config_hash) =
        derived(wanted, wanted.privileged, rendered, globals, hash_key);
    wanted.config_parts = spec::config_parts(
        hash_key,
        spec::HashInputs {
            spec: &wanted.spec,
            files: rendered,
            job_files: &wanted.job_files,
            bootstrap: wanted.service.kolla.bootstrap.as_deref(),
        },
    );
}

impl Desired {
    /// Whether any service asks for `privileged: true`.
    pub fn needs_privileged(&self) -> bool {
        self.services.values().any(|d| d.service.privileged)
    }

    /// The mode every privileged service's live container was made under,
    /// when they all agree with one (a service without a live container
    /// leaves it open).
    pub fn settled_by(
        &self,
        observed: &[ObservedContainer],
        globals: &Globals,
    ) -> Option<PrivilegedMode> {
        // (service, config hash) of every live container, looked up once
        // per privileged service rather than searched for.
        let live: HashSet<(&str, &str)> = observed
            .iter()
            .filter(|c| c.role == super::labels::Role::Live)
            .map(|c| (c.service.as_str(), c.config_hash.as_str()))
            .collect();
        [PrivilegedMode::Native, PrivilegedMode::Explicit]
            .into_iter()
            .find(|mode| {
                self.services
                    .values()
                    .filter(|d| d.service.privileged)
                    .all(|d| {
                        let (_, hash) = derived(
                            d,
                            *mode,
                            rendered(&self.files, &d.service.name),
                            globals,
                            &self.hash_key,
                        );
                        live.contains(&(d.service.name.as_str(), hash.as_str()))
                    })
            })
    }

    /// Apply `mode` to the privileged services (their specs and config
    /// hashes change with it); for a node whose `auto` mode has been
    /// settled against its engine.
    pub fn set_privileged(&mut self, mode: PrivilegedMode, globals: &Globals) {
        for wanted in self.services.values_mut() {
            wanted.privileged = mode;
            if wanted.service.privileged {
                derive_spec(
                    wanted,
                    rendered(&self.files, &wanted.service.name),
                    globals,
                    &self.hash_key,
                );
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::release::Release;

    fn desired_for(mode: PrivilegedMode) -> Desired {
        let text = "services:\n  libvirt:\n    image: x/libvirt\n    privileged: true\n  plain:\n    image: x/plain\n";
        let file = compose::parse(
            text,
            Path::new("compose/compute.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        let node = Node {
            name: "c1".into(),
            docker: None,
            tls: None,
            roles: vec!["compute".into()],
            privileged: mode,
            api_address: None,
            variables: BTreeMap::new(),
        };
        desired(
            &node,
            &[("compute".into(), file)],
            &Globals::default(),
            &BTreeMap::new(),
            &[],
        )
        .unwrap()
    }

    fn file(role: &str, text: &str) -> (String, ComposeFile) {
        let path = PathBuf::from(format!("compose/{role}.yml"));
        let file = compose::parse(text, &path, &Variables::default(), &BTreeMap::new()).unwrap();
        (role.to_string(), file)
    }

    #[test]
    fn a_service_two_roles_define_alike_runs_once_and_differing_ones_are_refused() {
        let agent = "  agent:\n    image: x/agent\n    privileged: true\n";
        let controller = file(
            "controller",
            &format!("services:\n  api:\n    image: x/api\n{agent}"),
        );
        let compute = file(
            "compute",
            &format!("services:\n{agent}  libvirt:\n    image: x/libvirt\n"),
        );
        let mut node = desired_node();
        node.roles = vec!["controller".into(), "compute".into()];
        let both = desired(
            &node,
            &[controller.clone(), compute],
            &Globals::default(),
            &BTreeMap::new(),
            &[],
        )
        .unwrap();
        assert_eq!(
            both.services.keys().collect::<Vec<_>>(),
            ["agent", "api", "libvirt"]
        );
        assert_eq!(both.services["agent"].node_role, "controller");

        let other = file("compute", "services:\n  agent:\n    image: x/other-agent\n");
        let err = desired(
            &node,
            &[controller, other],
            &Globals::default(),
            &BTreeMap::new(),
            &[],
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("agent")
                && message.contains("controller")
                && message.contains("compute"),
            "{message}"
        );
    }

    #[test]
    fn the_shipped_roles_share_the_l2_agent_on_an_all_in_one() {
        let compose_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose");
        let passwords: BTreeMap<String, String> = crate::config::passwords::TEMPLATE
            .lines()
            .filter_map(|line| line.strip_suffix(':'))
            .map(|name| (name.to_string(), "secret".to_string()))
            .collect();
        let switch = [
            "openvswitch-db",
            "openvswitch-vswitchd",
            "neutron-openvswitch-agent",
        ];
        for release in [Release::Zed, Release::Epoxy] {
            let mut globals = Globals::default();
            globals.set_release(release);
            let variables = Variables {
                environment: BTreeMap::new(),
                globals: globals.compose_variables(),
            };
            let mut node = desired_node();
            node.roles = vec!["controller".into(), "compute".into()];
            let files = load_files(&node, &compose_dir, &variables).unwrap();
            let both = desired(&node, &files, &globals, &passwords, &[]).unwrap();
            for service in ["neutron-server", "neutron-dhcp-agent", "nova-compute"]
                .iter()
                .chain(&switch)
            {
                assert!(both.services.contains_key(*service), "{release}: {service}");
            }
            node.roles = vec!["compute".into()];
            let files = load_files(&node, &compose_dir, &variables).unwrap();
            let compute = desired(&node, &files, &globals, &passwords, &[]).unwrap();
            for service in switch {
                assert_eq!(
                    compute.services[service].config_hash, both.services[service].config_hash,
                    "{release}: the compute role's {service} is the controller role's"
                );
            }
        }
    }

    fn desired_node() -> Node {
        Node {
            name: "c1".into(),
            docker: None,
            tls: None,
            roles: vec!["compute".into()],
            privileged: PrivilegedMode::Native,
            api_address: None,
            variables: BTreeMap::new(),
        }
    }

    #[test]
    fn a_nodes_variables_win_over_the_environment_for_its_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("compute.yml"),
            "services:\n  agent:\n    image: x/agent\n    environment:\n      IFACE: ${NEUTRON_EXTERNAL_INTERFACE:-}\n      ADDR: ${API_ADDRESS}\n",
        )
        .unwrap();
        let mut variables = Variables::default();
        variables
            .environment
            .insert("NEUTRON_EXTERNAL_INTERFACE".into(), "eth9".into());
        let iface_of = |node: &Node| {
            let files = load_files(node, dir.path(), &variables).unwrap();
            let agent = files[0].1.service("agent").unwrap().clone();
            (
                agent.environment["IFACE"].clone(),
                agent.environment["ADDR"].clone(),
            )
        };
        let mut own = desired_node();
        own.api_address = Some("10.0.0.12".into());
        own.variables
            .insert("NEUTRON_EXTERNAL_INTERFACE".into(), "ens3".into());
        assert_eq!(
            iface_of(&own),
            ("ens3".to_string(), "10.0.0.12".to_string())
        );
        assert_eq!(
            iface_of(&desired_node()),
            ("eth9".to_string(), "127.0.0.1".to_string())
        );
    }

    #[test]
    fn settling_auto_gives_what_the_mode_itself_gives() {
        for mode in [PrivilegedMode::Native, PrivilegedMode::Explicit] {
            let mut settled = desired_for(PrivilegedMode::Auto);
            settled.set_privileged(mode, &Globals::default());
            let direct = desired_for(mode);
            for (name, wanted) in &direct.services {
                let got = &settled.services[name];
                assert_eq!(got.spec, wanted.spec, "{name} under {mode:?}");
                assert_eq!(got.config_hash, wanted.config_hash, "{name} under {mode:?}");
                assert_eq!(got.privileged, mode);
            }
        }
        let native = desired_for(PrivilegedMode::Native);
        let explicit = desired_for(PrivilegedMode::Explicit);
        assert_ne!(
            native.services["libvirt"].config_hash, explicit.services["libvirt"].config_hash,
            "a change of mode must replace the privileged container"
        );
        assert_eq!(
            native.services["plain"].config_hash,
            explicit.services["plain"].config_hash
        );
        assert!(native.needs_privileged());
    }

    fn live(wanted: &DesiredService) -> ObservedContainer {
        ObservedContainer {
            config_hash: wanted.config_hash.clone(),
            ..ObservedContainer::running(&wanted.service.name, super::super::labels::Role::Live)
        }
    }

    #[test]
    fn live_containers_settle_auto_without_a_probe() {
        let globals = Globals::default();
        let auto = desired_for(PrivilegedMode::Auto);
        assert_eq!(auto.settled_by(&[], &globals), None, "nothing deployed yet");
        for mode in [PrivilegedMode::Native, PrivilegedMode::Explicit] {
            let made = desired_for(mode);
            let observed: Vec<_> = made.services.values().map(live).collect();
            assert_eq!(auto.settled_by(&observed, &globals), Some(mode));
        }
        // A config change to the privileged service leaves it to the probe.
        let mut changed = desired_for(PrivilegedMode::Explicit);
        if let Some(libvirt) = changed.services.get_mut("libvirt") {
            libvirt.config_hash = "something else".into();
        }
        let observed: Vec<_> = changed.services.values().map(live).collect();
        assert_eq!(auto.settled_by(&observed, &globals), None);
    }
}
