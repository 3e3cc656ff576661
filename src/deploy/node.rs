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
use crate::config::inventory::Node;
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
    let mut out = Desired::default();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let template_globals = crate::images::render::template_context(globals);
    for (role, file) in files {
        for volume in file.volumes.values() {
            if !volume.external {
                out.volumes.push((
                    format!("{}{}", globals.container_prefix, volume.name),
                    volume.driver.clone(),
                ));
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
            let placement = Placement {
                prefix: &globals.container_prefix,
                project: &globals.project,
                node_role: role,
                privileged: node.privileged,
            };
            let inputs = TemplateInputs {
                globals: template_globals.clone(),
                passwords: passwords.clone(),
                node_name: node.name.clone(),
                node_role: role.clone(),
            };
            let rendered = config_files::render(service, &inputs)?;
            let container = spec::container_spec(service, &placement);
            let config_hash =
                spec::config_hash(&container, &rendered, service.kolla.bootstrap.as_deref());
            out.files.insert(service.name.clone(), rendered);
            out.services.insert(
                service.name.clone(),
                DesiredService {
                    service: service.clone(),
                    spec: container,
                    config_hash,
                    digest: None,
                    node_role: role.clone(),
                    privileged: node.privileged,
                },
            );
        }
    }
    Ok(out)
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
    let inspect = |image: String| async move {
        engine.image(&image).await.map_err(|e| DeployError::Engine {
            node: node.into(),
            source: e,
        })
    };
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for wanted in desired.services.values_mut() {
        let image = wanted.service.image.clone();
        if let Some(id) = ids.get(&image) {
            wanted.digest = Some(id.clone());
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
            return Err(DeployError::ImageMissing {
                node: node.into(),
                service: wanted.service.name.clone(),
                image,
                pull_error: None,
            });
        };
        ids.insert(image, found.id.clone());
        wanted.digest = Some(found.id);
    }
    Ok(())
}

/// The deployment's containers on a node, from one list call.
pub async fn observe(
    engine: &Engine,
    globals: &Globals,
) -> Result<Vec<ObservedContainer>, EngineError> {
    let listing = engine
        .list_containers(&format!("{}={}", super::labels::PROJECT, globals.project))
        .await?;
    Ok(listing
        .iter()
        .filter_map(|c| {
            ObservedContainer::from_listing(
                &globals.container_prefix,
                &c.id,
                &c.name,
                &c.labels,
                &c.state,
                &c.status,
            )
        })
        .collect())
}
