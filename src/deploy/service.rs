//! `DesiredService`: one service as it should be on a node, from its
//! compose file, its rendered config and its image. Plain data that the
//! plan, the volume rules and the executor share.

use super::config_files::RenderedFile;
use super::spec::ContainerSpec;
use crate::config::compose::ServiceSpec;
use crate::config::inventory::PrivilegedMode;

/// A service as it should be on the node.
#[derive(Debug, Clone)]
pub struct DesiredService {
    pub service: ServiceSpec,
    pub spec: ContainerSpec,
    pub config_hash: String,
    /// What each part of its config hashes to (`spec::config_parts`).
    pub config_parts: std::collections::BTreeMap<String, String>,
    /// Id of the service's image on the node, None when it is not there.
    pub digest: Option<String>,
    /// The node role whose compose file defines it.
    pub node_role: String,
    pub privileged: PrivilegedMode,
    /// The config files of its bootstrap job (rendered with `kolla_job`),
    /// empty without one.
    pub job_files: Vec<RenderedFile>,
    /// The paths its image declares as volumes (`VOLUME`), once the image
    /// is known on the node.
    pub image_volumes: Vec<String>,
    /// Its dependency level on the node (0: depends on nothing).
    pub level: usize,
    /// The OpenStack release of its image (`openstack_release`), once the
    /// image is known on the node.
    pub release: Option<String>,
}
