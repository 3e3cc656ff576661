//! Looking at a node: the deployment's containers from one list call, and
//! the images its services want (pulled when missing), so the plan works
//! from what is really there.

use std::collections::BTreeMap;

use super::desired::Desired;
use super::error::DeployError;
use super::labels::ObservedContainer;
use crate::config::Globals;
use crate::credentials::Store;
use crate::engine::{Endpoint, Engine, EngineError};

/// How a node gets an image it lacks.
#[derive(Clone, Copy)]
pub enum Supply<'a> {
    /// It does not: the image is reported missing.
    Nothing,
    /// The node's engine pulls it (from the registry its name says); when
    /// that fails, it is copied from `copy_from`, the operator's engine
    /// where `kolla build` left it, if given.
    Pull {
        copy_from: &'a CopySource,
        /// The operator's registry credentials, sent with each pull.
        credentials: &'a Store,
    },
}

/// The operator's engine, where `kolla build` leaves images, to copy from
/// when a node cannot pull: connected only when a copy is needed.
pub struct CopySource {
    endpoint: Option<Endpoint>,
    engine: tokio::sync::OnceCell<Option<Engine>>,
}

impl CopySource {
    /// Copies from the engine at `endpoint`; None: no copies.
    pub fn new(endpoint: Option<Endpoint>) -> CopySource {
        CopySource {
            endpoint,
            engine: tokio::sync::OnceCell::new(),
        }
    }

    /// The engine, once connected (None when there is none or it does not
    /// answer: then the pull's error stands).
    async fn engine(&self) -> Option<&Engine> {
        self.engine
            .get_or_init(|| async {
                match &self.endpoint {
                    Some(endpoint) => Engine::connect(endpoint).await.ok(),
                    None => None,
                }
            })
            .await
            .as_ref()
    }
}

/// Find each service's image on the node (supplied as `supply` says when
/// it is missing) and record its id. A missing image is an error naming
/// the service and what to do.
pub async fn resolve_images(
    engine: &Engine,
    node: &str,
    desired: &mut Desired,
    supply: Supply<'_>,
) -> Result<(), DeployError> {
    resolve_images_or_list(engine, node, desired, supply, false)
        .await
        .map(|_| ())
}

/// Put `image` on the node: a pull, else a copy from the operator's
/// engine; the pull's error when neither works.
pub async fn supply_image(
    engine: &Engine,
    image: &str,
    copy_from: &CopySource,
    credentials: &Store,
) -> Result<(), String> {
    let auth = credentials.for_image(image).map_err(|e| e.to_string())?;
    let pulled = match engine.pull(image, auth.as_ref()).await {
        Ok(()) => return Ok(()),
        Err(e) => e.to_string(),
    };
    let Some(source) = copy_from.engine().await else {
        return Err(pulled);
    };
    match source.image(image).await {
        Ok(Some(_)) => source.copy_image_to(image, engine).await.map_err(|e| {
            format!(
                "{pulled}; and the copy from {} failed: {e}",
                source.endpoint()
            )
        }),
        Ok(None) => Err(format!(
            "{pulled}; and {} (where kolla build puts images) does not have it either",
            source.endpoint()
        )),
        Err(e) => Err(format!("{pulled}; and {}: {e}", source.endpoint())),
    }
}

/// The images of `desired` not on the node, for a dry run: the others are
/// resolved as `resolve_images` does, these are left without a digest.
pub async fn missing_images(
    engine: &Engine,
    node: &str,
    desired: &mut Desired,
) -> Result<Vec<String>, DeployError> {
    resolve_images_or_list(engine, node, desired, Supply::Nothing, true).await
}

async fn resolve_images_or_list(
    engine: &Engine,
    node: &str,
    desired: &mut Desired,
    supply: Supply<'_>,
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
        if let (
            None,
            Supply::Pull {
                copy_from,
                credentials,
            },
        ) = (&found, supply)
        {
            if let Err(e) = supply_image(engine, &image, copy_from, credentials).await {
                return Err(DeployError::ImageMissing {
                    node: node.into(),
                    service: wanted.service.name.clone(),
                    image,
                    pull_error: Some(e),
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
        .filter_map(|c| ObservedContainer::from_listing(prefix, c))
        .collect())
}
