//! One node's deploy from files to a converged engine: its roles' compose
//! files -> desired services (config rendered, images on the node), its
//! engine -> observed containers (one list call), then the plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::apply::DeployError;
use super::config_files::{self, TemplateInputs};
use super::labels::ObservedContainer;
use super::plan::{DesiredService, PlanError};
use super::spec::{self, Placement};
use crate::config::compose::{self, ComposeFile, Variables};
use crate::config::inventory::{Node, PrivilegedMode};
use crate::config::{ConfigError, Globals};
use crate::engine::{Engine, EngineError};

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
            compose::load(&path, variables).map(|file| (role.clone(), file))
        })
        .collect()
}

/// A node's desired services, by name, with their rendered config files.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub services: BTreeMap<String, DesiredService>,
    pub files: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    /// Named volumes to create: (engine name, driver).
    pub volumes: Vec<(String, Option<String>)>,
    /// Volumes made outside kolla that must exist: (name, compose file).
    pub external_volumes: Vec<(String, PathBuf)>,
    /// The key of the config hashes (`spec::hash_key` of the passwords).
    pub hash_key: [u8; 32],
}

/// Build the desired state of `node` from its compose files (no engine
/// yet: digests are filled in by `resolve_images`). Services in
/// `profiles` are left out unless one of their profiles is active.
pub fn desired(
    node: &Node,
    files: &[(String, ComposeFile)],
    globals: &Globals,
    passwords: &BTreeMap<String, String>,
    active_profiles: &[String],
) -> Result<Desired, DesiredError> {
    let mut out = Desired {
        hash_key: spec::hash_key(passwords),
        ..Desired::default()
    };
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let template_globals = crate::images::render::template_context(globals);
    for (role, file) in files {
        for volume in file.volumes.values() {
            let name = if volume.literal {
                volume.name.clone()
            } else {
                format!("{}{}", globals.container_prefix, volume.name)
            };
            if volume.external {
                out.external_volumes.push((name, file.path.clone()));
            } else {
                out.volumes.push((name, volume.driver.clone()));
            }
        }
        for service in &file.services {
            if !service.profiles.is_empty()
                && !service.profiles.iter().any(|p| active_profiles.contains(p))
            {
                continue;
            }
            if let Some(first) = origin.insert(service.name.clone(), role.clone()) {
                return Err(DesiredError::Plan(PlanError::Duplicate {
                    service: service.name.clone(),
                    first,
                    second: role.clone(),
                }));
            }
            let mut inputs = TemplateInputs {
                globals: template_globals.clone(),
                passwords: passwords.clone(),
                node_name: node.name.clone(),
                node_role: role.clone(),
                job: false,
            };
            let rendered = config_files::render(service, &inputs)?;
            inputs.job = true;
            let job_files = match service.kolla.bootstrap {
                Some(_) => config_files::render(service, &inputs)?,
                None => Vec::new(),
            };
            let mut wanted = DesiredService {
                service: service.clone(),
                spec: Default::default(),
                config_hash: String::new(),
                digest: None,
                node_role: role.clone(),
                privileged: node.privileged,
                job_files,
                image_volumes: Vec::new(),
                level: 0,
            };
            derive_spec(&mut wanted, &rendered, globals, &out.hash_key);
            out.files.insert(service.name.clone(), rendered);
            out.services.insert(service.name.clone(), wanted);
        }
    }
    // Levels order stops (dependents first); a cycle is reported by the
    // plan, so it leaves every level at 0 here.
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
    Ok(out)
}

/// The container spec and config hash `wanted` gets under privileged
/// `mode`, from its service, where it is placed and its rendered files.
fn derived(
    wanted: &DesiredService,
    mode: PrivilegedMode,
    rendered: &[(String, Vec<u8>)],
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
    files: &'a BTreeMap<String, Vec<(String, Vec<u8>)>>,
    service: &str,
) -> &'a [(String, Vec<u8>)] {
    files.get(service).map(Vec::as_slice).unwrap_or_default()
}

/// Fill in `wanted`'s spec and config hash for its own privileged mode.
fn derive_spec(
    wanted: &mut DesiredService,
    rendered: &[(String, Vec<u8>)],
    globals: &Globals,
    hash_key: &[u8],
) {
    (wanted.spec, wanted.config_hash) =
        derived(wanted, wanted.privileged, rendered, globals, hash_key);
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
                        observed.iter().any(|c| {
                            c.role == super::labels::Role::Live
                                && c.service == d.service.name
                                && c.config_hash == hash
                        })
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

/// Settle a node's `privileged: auto` against its engine. When the live
/// privileged containers were all made under one mode (their config hashes
/// say which), that mode stands: a deploy with nothing to do starts no
/// probe. Otherwise start a throwaway privileged container from a
/// privileged service's image; an engine that refuses gets the explicit
/// form. Returns the mode a probe found, when one ran.
pub async fn settle_privileged(
    engine: &Engine,
    node: &Node,
    desired: &mut Desired,
    observed: &[ObservedContainer],
    globals: &Globals,
) -> Result<Option<PrivilegedMode>, DeployError> {
    if node.privileged != PrivilegedMode::Auto || !desired.needs_privileged() {
        return Ok(None);
    }
    if let Some(mode) = desired.settled_by(observed, globals) {
        desired.set_privileged(mode, globals);
        return Ok(None);
    }
    let Some(image) = desired
        .services
        .values()
        .find(|d| d.service.privileged)
        .map(|d| d.digest.clone().unwrap_or_else(|| d.service.image.clone()))
    else {
        return Ok(None);
    };
    let outcome = probe_privileged(engine, &globals.container_prefix, &image).await;
    let mode = match outcome {
        Ok(()) => PrivilegedMode::Native,
        Err(ProbeError::Refused(_)) => PrivilegedMode::Explicit,
        Err(ProbeError::Engine(source)) => {
            return Err(DeployError::Engine {
                node: node.name.clone(),
                source,
            });
        }
    };
    desired.set_privileged(mode, globals);
    Ok(Some(mode))
}

/// Why a privileged probe container did not start.
#[derive(Debug)]
pub enum ProbeError {
    /// The engine created it but refused to start it privileged.
    Refused(EngineError),
    /// The engine failed before that (unreachable, no such image, ...).
    Engine(EngineError),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Refused(e) | ProbeError::Engine(e) => e.fmt(f),
        }
    }
}

/// Start a privileged container running `true` from `image` (named with
/// the deployment's `prefix` and this process) and remove it again,
/// whatever happened.
pub async fn probe_privileged(
    engine: &Engine,
    prefix: &str,
    image: &str,
) -> Result<(), ProbeError> {
    let name = format!("{prefix}kolla-probe-privileged-{}", std::process::id());
    let spec = spec::ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        entrypoint: Some(vec![]),
        command: Some(vec!["true".into()]),
        // As root: an engine that cannot grant every capability may still
        // start a privileged container whose user gets none of them.
        user: Some("0".into()),
        privileged: true,
        labels: BTreeMap::from([("kolla.probe".to_string(), "privileged".to_string())]),
        ..Default::default()
    };
    let outcome = async {
        engine
            .remove_container(&name, false)
            .await
            .map_err(ProbeError::Engine)?;
        engine
            .create_container(&spec)
            .await
            .map_err(ProbeError::Engine)?;
        engine
            .start_container(&name)
            .await
            .map_err(ProbeError::Refused)
    }
    .await;
    let removed = engine.remove_container(&name, true).await;
    outcome?;
    removed.map_err(ProbeError::Engine)
}

#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// Find each service's image on the node (pulling it when `pull` and it is
/// missing) and record its id. A missing image is an error naming the
/// service and what to do.
pub async fn resolve_images(
    engine: &Engine,
    node: &str,
    desired: &mut Desired,
    pull: bool,
) -> Result<(), DeployError> {
    resolve_images_or_list(engine, node, desired, pull, false)
        .await
        .map(|_| ())
}

/// The images of `desired` not on the node, for a dry run: the others are
/// resolved as `resolve_images` does, these are left without a digest.
pub async fn missing_images(
    engine: &Engine,
    node: &str,
    desired: &mut Desired,
) -> Result<Vec<String>, DeployError> {
    resolve_images_or_list(engine, node, desired, false, true).await
}

async fn resolve_images_or_list(
    engine: &Engine,
    node: &str,
    desired: &mut Desired,
    pull: bool,
    list_missing: bool,
) -> Result<Vec<String>, DeployError> {
    let mut missing = Vec::new();
    let inspect = |image: String| async move {
        engine.image(&image).await.map_err(|e| DeployError::Engine {
            node: node.into(),
            source: e,
        })
    };
    let mut ids: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for wanted in desired.services.values_mut() {
        let image = wanted.service.image.clone();
        if let Some((id, volumes)) = ids.get(&image) {
            wanted.digest = Some(id.clone());
            wanted.image_volumes = volumes.clone();
            continue;
        }
        let mut found = inspect(image.clone()).await?;
        if found.is_none() && pull {
            if let Err(e) = engine.pull(&image).await {
                return Err(DeployError::ImageMissing {
                    node: node.into(),
                    service: wanted.service.name.clone(),
                    image,
                    pull_error: Some(e.to_string()),
                });
            }
            found = inspect(image.clone()).await?;
        }
        let Some(found) = found else {
            if list_missing {
                if !missing.contains(&image) {
                    missing.push(image);
                }
                continue;
            }
            return Err(DeployError::ImageMissing {
                node: node.into(),
                service: wanted.service.name.clone(),
                image,
                pull_error: None,
            });
        };
        ids.insert(image, (found.id.clone(), found.volumes.clone()));
        wanted.digest = Some(found.id);
        wanted.image_volumes = found.volumes;
    }
    Ok(missing)
}

/// The deployment's containers on a node, from one list call.
pub async fn observe(
    engine: &Engine,
    globals: &Globals,
) -> Result<Vec<ObservedContainer>, EngineError> {
    observe_project(engine, &globals.project, &globals.container_prefix).await
}

/// The containers of deployment `project` (names under `prefix`).
pub async fn observe_project(
    engine: &Engine,
    project: &str,
    prefix: &str,
) -> Result<Vec<ObservedContainer>, EngineError> {
    let listing = engine
        .list_containers(&format!("{}={project}", super::labels::PROJECT))
        .await?;
    Ok(listing
        .iter()
        .filter_map(|c| {
            ObservedContainer::from_listing(prefix, &c.id, &c.name, &c.labels, &c.state, &c.status)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
