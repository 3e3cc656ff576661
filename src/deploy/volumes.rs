//! Which volume each anonymous path of a service gets (its compose
//! `volumes:` without a name, and its image's `VOLUME`s). No container
//! kolla creates ever gets a fresh anonymous volume: a replacement (and its
//! bootstrap job) mounts the volume the live container has at that path, so
//! data carries over from generation to generation; a path the live
//! container has no volume at gets one kolla names `<prefix><service>-<hash
//! of the path>`, labelled with the deployment, service and path (so
//! `destroy --purge-data` finds it). Paths already mounted otherwise
//! (binds, named volumes, tmpfs, what `volumes_from` shares) are left as
//! they are. Pure: the plan shows these, the executor mounts them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use sha2::{Digest, Sha256};

use super::labels::{ObservedContainer, Role};
use super::service::DesiredService;

/// Where a path's volume comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// The live container (this generation) mounts it there now.
    Carried { generation: u64 },
    /// Kolla's volume for the path is on the node already.
    Existing,
    /// Kolla's volume for the path is created.
    New,
}

/// One anonymous path of a service and the volume it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub name: String,
    pub path: String,
    pub source: VolumeSource,
}

impl fmt::Display for VolumeMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match &self.source {
            VolumeSource::Carried { generation } => {
                format!("carried from generation {generation}")
            }
            VolumeSource::Existing => "on the node".to_string(),
            VolumeSource::New => "created".to_string(),
        };
        write!(f, "volume {} at {}: {how}", self.name, self.path)
    }
}

/// What the volumes of a service are decided from, indexed once for a
/// whole plan (a lookup per `volumes_from` source, not a scan of every
/// container and service).
pub struct VolumeInputs<'a> {
    /// The live containers on the node, by container name: what a
    /// `volumes_from` source already mounts.
    live: HashMap<&'a str, &'a ObservedContainer>,
    /// The node's desired services by container name: what a
    /// `volumes_from` source not yet created will mount.
    desired: HashMap<&'a str, &'a DesiredService>,
    /// Kolla's volumes already on the node.
    existing: &'a BTreeSet<String>,
    /// The deployment's container prefix.
    prefix: &'a str,
}

impl<'a> VolumeInputs<'a> {
    /// The deployment's containers on the node (`observed`), its desired
    /// services, kolla's volumes on it and the container prefix.
    pub fn new(
        observed: &'a [ObservedContainer],
        desired: impl IntoIterator<Item = &'a DesiredService>,
        existing: &'a BTreeSet<String>,
        prefix: &'a str,
    ) -> VolumeInputs<'a> {
        let mut live = HashMap::new();
        for c in observed.iter().filter(|c| c.role == Role::Live) {
            // The first of a name, as a scan would find it.
            live.entry(c.name.as_str()).or_insert(c);
        }
        let mut by_name = HashMap::new();
        for d in desired {
            by_name.entry(d.spec.name.as_str()).or_insert(d);
        }
        VolumeInputs {
            live,
            desired: by_name,
            existing,
            prefix,
        }
    }
}

/// `/data/` and `/data` are one path.
fn normal(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The name kolla gives the volume of `service`'s `path`.
pub fn volume_name(prefix: &str, service: &str, path: &str) -> String {
    let digest = Sha256::digest(normal(path).as_bytes());
    format!("{prefix}{service}-{}", &hex::encode(digest)[..12])
}

/// Paths a desired service mounts one way or another (for `volumes_from`
/// of a source not created yet).
fn paths_of(source: &DesiredService) -> impl Iterator<Item = String> + '_ {
    let spec = &source.spec;
    spec.binds
        .iter()
        .filter_map(|b| b.split(':').nth(1))
        .chain(spec.tmpfs.keys().map(String::as_str))
        .chain(spec.anonymous_volumes.iter().map(String::as_str))
        .chain(source.image_volumes.iter().map(String::as_str))
        .map(normal)
}

/// Paths already mounted otherwise for `wanted`.
fn covered(wanted: &DesiredService, inputs: &VolumeInputs) -> BTreeSet<String> {
    let spec = &wanted.spec;
    let mut covered: BTreeSet<String> = spec
        .binds
        .iter()
        .filter_map(|b| b.split(':').nth(1))
        .chain(spec.tmpfs.keys().map(String::as_str))
        .map(normal)
        .collect();
    for source in &spec.volumes_from {
        let name = source.split(':').next().unwrap_or(source);
        match (inputs.live.get(name), inputs.desired.get(name)) {
            (Some(live), _) => covered.extend(live.mount_points.iter().map(|p| normal(p))),
            (None, Some(source)) => covered.extend(paths_of(source)),
            (None, None) => {}
        }
    }
    covered
}

/// The volume of every anonymous path of `wanted`, when it replaces `live`
/// (None: a first container).
pub fn anonymous_volumes(
    wanted: &DesiredService,
    live: Option<&ObservedContainer>,
    inputs: &VolumeInputs,
) -> Vec<VolumeMount> {
    let covered = covered(wanted, inputs);
    let carried: BTreeMap<String, &str> = live
        .map(|c| {
            c.volumes
                .iter()
                .map(|(name, path)| (normal(path), name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let paths: BTreeSet<String> = wanted
        .spec
        .anonymous_volumes
        .iter()
        .chain(&wanted.image_volumes)
        .map(|p| normal(p))
        .filter(|p| !covered.contains(p))
        .collect();
    let service = &wanted.service.name;
    paths
        .into_iter()
        .map(|path| match (carried.get(&path), live) {
            (Some(name), Some(live)) => VolumeMount {
                name: name.to_string(),
                path,
                source: VolumeSource::Carried {
                    generation: live.generation,
                },
            },
            _ => {
                let name = volume_name(inputs.prefix, service, &path);
                let source = if inputs.existing.contains(&name) {
                    VolumeSource::Existing
                } else {
                    VolumeSource::New
                };
                VolumeMount { name, path, source }
            }
        })
        .collect()
}
