//! Image supply: the image each service wants found on its node (pulled,
//! or copied from the operator's engine, when missing) and its id
//! recorded, so the plan works from what is really there; an image that
//! forges kolla's own labels is refused.

use std::collections::BTreeMap;

use super::desired::Desired;
use super::error::DeployError;
use crate::credentials::Store;
use crate::engine::{Endpoint, Engine, ImageInfo};

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

/// Put `images` on the node: each is pulled, and those no pull brings are
/// copied from the operator's engine, all in one stream. What is still
/// missing, each with the pull's error and why the copy did not help.
pub async fn supply_images(
    engine: &Engine,
    images: &[String],
    copy_from: &CopySource,
    credentials: &Store,
) -> BTreeMap<String, String> {
    let mut failed = BTreeMap::new();
    // A broken credentials store is the operator's to fix: never hidden
    // behind a copy that happens to work.
    let mut unreadable = BTreeMap::new();
    for image in images {
        match credentials.for_image(image) {
            Err(e) => {
                unreadable.insert(image.clone(), e.to_string());
            }
            Ok(auth) => {
                if let Err(e) = engine.pull(image, auth.as_ref()).await {
                    failed.insert(image.clone(), e.to_string());
                }
            }
        }
    }
    if !failed.is_empty() {
        copy_missing(engine, copy_from, &mut failed).await;
    }
    failed.append(&mut unreadable);
    failed
}

/// Copy what no pull brought (`failed`: image -> the pull's error) from
/// the operator's engine; what stays missing keeps its error, told why.
async fn copy_missing(
    engine: &Engine,
    copy_from: &CopySource,
    failed: &mut BTreeMap<String, String>,
) {
    let Some(source) = copy_from.engine().await else {
        return;
    };
    let mut copyable = Vec::new();
    for (image, why) in failed.iter_mut() {
        match source.image(image).await {
            Ok(Some(_)) => copyable.push(image.clone()),
            Ok(None) => {
                *why = format!(
                    "{why}; and {} (where kolla build puts images) does not have it either",
                    source.endpoint()
                )
            }
            Err(e) => *why = format!("{why}; and {}: {e}", source.endpoint()),
        }
    }
    if copyable.is_empty() {
        return;
    }
    let references: Vec<&str> = copyable.iter().map(String::as_str).collect();
    let to = engine.endpoint().to_string();
    crate::progress::say(format!(
        "copying {} from {} to {to} (no registry gave them)",
        references.join(", "),
        source.endpoint(),
    ));
    let started = std::time::Instant::now();
    let far = to.clone();
    let told =
        move |sent: u64| crate::progress::say(format!("copying to {far}: {} MiB sent", sent >> 20));
    match source.copy_images_to(&references, engine, told).await {
        Ok(sent) => {
            crate::progress::say(format!(
                "copied {} MiB to {to} in {:.1}s",
                sent >> 20,
                started.elapsed().as_secs_f64()
            ));
            for image in &copyable {
                failed.remove(image);
            }
        }
        Err(e) => {
            for image in &copyable {
                if let Some(why) = failed.get_mut(image) {
                    *why = format!("{why}; and the copy from {} failed: {e}", source.endpoint());
                }
            }
        }
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
    let inspect = |image: String| async move {
        engine.image(&image).await.map_err(|e| DeployError::Engine {
            node: node.into(),
            source: e,
        })
    };
    let mut found: BTreeMap<String, Option<ImageInfo>> = BTreeMap::new();
    for wanted in desired.services.values() {
        let image = &wanted.service.image;
        if !found.contains_key(image) {
            found.insert(image.clone(), inspect(image.clone()).await?);
        }
    }
    if let Supply::Pull {
        copy_from,
        credentials,
    } = supply
    {
        let absent: Vec<String> = found
            .iter()
            .filter(|(_, info)| info.is_none())
            .map(|(image, _)| image.clone())
            .collect();
        if !absent.is_empty() {
            let mut failed = supply_images(engine, &absent, copy_from, credentials).await;
            for wanted in desired.services.values() {
                if let Some(why) = failed.remove(&wanted.service.image) {
                    return Err(DeployError::ImageMissing {
                        node: node.into(),
                        service: wanted.service.name.clone(),
                        image: wanted.service.image.clone(),
                        pull_error: Some(why),
                    });
                }
            }
            for image in absent {
                let info = inspect(image.clone()).await?;
                found.insert(image, info);
            }
        }
    }
    let mut missing = Vec::new();
    for wanted in desired.services.values_mut() {
        let image = &wanted.service.image;
        match found.get(image).and_then(Option::as_ref) {
            Some(info) => {
                refuse_forged_labels(node, &wanted.service.name, image, info)?;
                wanted.digest = Some(info.id.clone());
                wanted.image_volumes = info.volumes.clone();
                wanted.release = info.labels.get(super::labels::RELEASE).cloned();
            }
            None if list_missing => {
                if !missing.contains(image) {
                    missing.push(image.clone());
                }
            }
            None => {
                return Err(DeployError::ImageMissing {
                    node: node.into(),
                    service: wanted.service.name.clone(),
                    image: image.clone(),
                    pull_error: None,
                });
            }
        }
    }
    Ok(missing)
}

/// The `kolla.` labels an image carries that are not `kolla build`'s own,
/// sorted. The engine copies an image's labels onto every container made
/// from it, so such an image would make its containers pass for data
/// containers, a live generation or a lock.
pub fn forged_by_image(image_labels: &std::collections::HashMap<String, String>) -> Vec<String> {
    let mut forged: Vec<String> = image_labels
        .keys()
        .filter(|key| {
            key.starts_with(crate::config::compose::RESERVED_LABEL_PREFIX)
                && !crate::images::build::IMAGE_LABELS.contains(&key.as_str())
        })
        .cloned()
        .collect();
    forged.sort();
    forged
}

/// An image that carries labels of kolla's own is refused for `service`.
fn refuse_forged_labels(
    node: &str,
    service: &str,
    image: &str,
    info: &ImageInfo,
) -> Result<(), DeployError> {
    let forged = forged_by_image(&info.labels);
    if forged.is_empty() {
        return Ok(());
    }
    Err(DeployError::ImageForgesLabels {
        node: node.into(),
        service: service.into(),
        image: image.into(),
        labels: forged,
    })
}
