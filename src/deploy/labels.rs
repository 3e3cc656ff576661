//! The label schema and container names: the only persistent state of a
//! deployment. Every container kolla creates carries these labels (fixed at
//! creation) and a name that says its place in a swap, so anyone with the
//! inventory can see the truth on the node itself.

pub use crate::container::{Health, ListedContainer, State};

/// The deployment a container belongs to (several can share an engine).
pub const PROJECT: &str = "kolla.project";
pub const SERVICE: &str = "kolla.service";
pub const ROLE: &str = "kolla.role";
/// The image reference the container was created from.
pub const IMAGE: &str = "kolla.image";
/// The id of that image when the container was created.
pub const DIGEST: &str = "kolla.digest";
/// Hash of the service definition and its rendered config.
pub const CONFIG_HASH: &str = "kolla.config-hash";
/// What each part of the config hash hashes to (`spec::config_parts`), as
/// JSON: how a plan names what changed.
pub const CONFIG_PARTS: &str = "kolla.config-parts";
/// 1, 2, 3, ... per service, bumped on every swap.
pub const GENERATION: &str = "kolla.generation";
/// "true" on data containers, which are never started or replaced.
pub const DATA: &str = "kolla.data";
/// The restart policy the service asks for: a container swapped out gets
/// `no`, and this label gives the original back when it is swapped in again.
pub const RESTART: &str = "kolla.restart";

/// `start-first` on a container of a service that can run twice (its
/// `update_order`): a rollback to it starts it beside the live one too.
pub const UPDATE_ORDER: &str = "kolla.update-order";

/// The program of the image that lists and stops the service's guests
/// (`x-kolla.guests`).
pub const GUESTS: &str = "kolla.guests";
/// The OpenStack release an image of kolla's tree was built for (an image
/// label, which its containers carry too).
pub const RELEASE: &str = "openstack_release";

/// The service's dependency level on its node: `stop` and `destroy` stop
/// higher levels (dependents) first.
pub const LEVEL: &str = "kolla.level";

/// On a volume kolla made for a service's anonymous or image-declared
/// path: that path.
pub const VOLUME_PATH: &str = "kolla.volume-path";

/// On a lock container: who holds it, since when, why, and for what.
pub const LOCK_OWNER: &str = "kolla.lock-owner";
pub const LOCK_HOST: &str = "kolla.lock-host";
pub const LOCK_BOOT: &str = "kolla.lock-boot";
pub const LOCK_PID: &str = "kolla.lock-pid";
pub const LOCK_PID_START: &str = "kolla.lock-pid-start";
pub const LOCK_SINCE: &str = "kolla.lock-since";
pub const LOCK_REASON: &str = "kolla.lock-reason";
pub const LOCK_TARGET: &str = "kolla.lock-target";
/// The generation that was live when the lock was taken: what recovery
/// restores if a swap under this lock died with no live container.
pub const LOCK_FROM: &str = "kolla.lock-from";
/// Whether that generation was running then (`true`/`false`): a swap cut
/// short after stopping it must start it again, even if it exited 0.
pub const LOCK_FROM_RUNNING: &str = "kolla.lock-from-running";
/// On the lock of a `rollback --restore-db`: the generation whose restore
/// point is being loaded. A run that dies under it leaves a database that
/// may be half restored, which the newer generation must never run on.
pub const LOCK_RESTORE_DB: &str = "kolla.lock-restore-db";

/// Name suffixes of the containers of a swap.
pub const CANDIDATE_SUFFIX: &str = ".kolla-new";
pub const KEPT_INFIX: &str = ".kolla-gen-";
pub const LOCK_SUFFIX: &str = ".kolla-lock";
pub const BOOTSTRAP_SUFFIX: &str = ".kolla-bootstrap";
pub const CHECK_SUFFIX: &str = ".kolla-check";
pub const HELPER_SUFFIX: &str = ".kolla-swap";

/// What a container's name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `<svc>`: the container that serves.
    Live,
    /// `<svc>.kolla-new`: created for a swap, not yet live.
    Candidate,
    /// `<svc>.kolla-gen-N`: replaced, kept for rollback.
    Kept(u64),
    /// `<svc>.kolla-lock`: never started; held during a swap.
    Lock,
    /// `<svc>.kolla-bootstrap`: a one-shot job.
    Bootstrap,
    /// `<svc>.kolla-check`: the new image's upgrade check, a one-shot job
    /// that only reads (killed at its limit, unlike a bootstrap job).
    Check,
    /// `<svc>.kolla-swap`: the helper running a swap's critical section.
    Helper,
}

/// Split a container name into its service and role. `prefix` is the
/// deployment's container prefix; names without it are not ours.
pub fn parse_name<'a>(prefix: &str, name: &'a str) -> Option<(&'a str, Role)> {
    let name = name
        .strip_prefix('/')
        .unwrap_or(name)
        .strip_prefix(prefix)?;
    if let Some(service) = name.strip_suffix(CANDIDATE_SUFFIX) {
        return Some((service, Role::Candidate));
    }
    if let Some(service) = name.strip_suffix(LOCK_SUFFIX) {
        return Some((service, Role::Lock));
    }
    if let Some(service) = name.strip_suffix(BOOTSTRAP_SUFFIX) {
        return Some((service, Role::Bootstrap));
    }
    if let Some(service) = name.strip_suffix(CHECK_SUFFIX) {
        return Some((service, Role::Check));
    }
    if let Some(service) = name.strip_suffix(HELPER_SUFFIX) {
        return Some((service, Role::Helper));
    }
    if let Some((service, generation)) = name.rsplit_once(KEPT_INFIX)
        && let Ok(generation) = generation.parse()
    {
        return Some((service, Role::Kept(generation)));
    }
    Some((name, Role::Live))
}

/// The container name of `service` in `role`.
pub fn container_name(prefix: &str, service: &str, role: Role) -> String {
    match role {
        Role::Live => format!("{prefix}{service}"),
        Role::Candidate => format!("{prefix}{service}{CANDIDATE_SUFFIX}"),
        Role::Kept(generation) => format!("{prefix}{service}{KEPT_INFIX}{generation}"),
        Role::Lock => format!("{prefix}{service}{LOCK_SUFFIX}"),
        Role::Bootstrap => format!("{prefix}{service}{BOOTSTRAP_SUFFIX}"),
        Role::Check => format!("{prefix}{service}{CHECK_SUFFIX}"),
        Role::Helper => format!("{prefix}{service}{HELPER_SUFFIX}"),
    }
}

/// A kolla container on a node, from one list call.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub role: Role,
    pub node_role: String,
    pub image: String,
    pub digest: String,
    pub config_hash: String,
    /// Its config's parts (`kolla.config-parts`); None on a container made
    /// before kolla kept them.
    pub config_parts: Option<std::collections::BTreeMap<String, String>>,
    pub generation: u64,
    pub data: bool,
    pub state: State,
    /// None without a healthcheck.
    pub health: Option<Health>,
    /// For an exited container, its exit code.
    pub exit_code: Option<i64>,
    /// The restart policy it was created with (`kolla.restart`).
    pub restart: String,
    /// Its dependency level (`kolla.level`; 0 for containers without).
    pub level: usize,
    /// The named volumes it mounts: (volume name, path inside).
    pub volumes: Vec<(String, String)>,
    /// Every path something is mounted at (volumes and binds).
    pub mount_points: Vec<String>,
    /// On a lock: the generation that was live when it was taken.
    pub lock_from: Option<u64>,
    /// A lock's: whether that generation was running when it was taken.
    pub lock_from_running: bool,
    /// A lock's: the generation a `rollback --restore-db` restores.
    pub lock_restore_db: Option<u64>,
    /// Made for a service that updates start-first (`kolla.update-order`).
    pub start_first: bool,
    /// The program that lists and stops its guests (`kolla.guests`).
    pub guests: Option<String>,
    /// The OpenStack release of its image (`openstack_release`), if any.
    pub release: Option<String>,
}

#[cfg(test)]
impl ObservedContainer {
    /// A running container of `service` in `role`, as tests observe one.
    pub fn running(service: &str, role: Role) -> ObservedContainer {
        ObservedContainer {
            id: format!("{service}-{role:?}"),
            name: container_name("", service, role),
            service: service.into(),
            role,
            node_role: "controller".into(),
            image: "i".into(),
            digest: "d".into(),
            config_hash: "h".into(),
            config_parts: None,
            generation: 1,
            data: false,
            state: State::Running,
            health: None,
            exit_code: None,
            restart: "no".into(),
            level: 0,
            volumes: Vec::new(),
            mount_points: Vec::new(),
            lock_from: None,
            lock_from_running: false,
            lock_restore_db: None,
            start_first: false,
            guests: None,
            release: None,
        }
    }
}

impl ObservedContainer {
    /// Read a listed container: its name, labels, state and health.
    /// None when it is not a kolla container of this deployment.
    pub fn from_listing(prefix: &str, listed: &ListedContainer) -> Option<ObservedContainer> {
        let labels = &listed.labels;
        let (service, role) = parse_name(prefix, &listed.name)?;
        let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
        if labels.get(SERVICE).map(String::as_str) != Some(service) {
            return None;
        }
        Some(ObservedContainer {
            exit_code: listed.exit_code,
            restart: labels
                .get(RESTART)
                .cloned()
                .unwrap_or_else(|| "no".to_string()),
            id: listed.id.clone(),
            name: listed.name.clone(),
            service: service.to_string(),
            role,
            node_role: label(ROLE),
            image: label(IMAGE),
            digest: label(DIGEST),
            config_hash: label(CONFIG_HASH),
            config_parts: labels
                .get(CONFIG_PARTS)
                .and_then(|parts| serde_json::from_str(parts).ok()),
            generation: label(GENERATION).parse().unwrap_or(0),
            data: label(DATA) == "true",
            level: label(LEVEL).parse().unwrap_or(0),
            state: listed.state.clone(),
            health: listed.health,
            volumes: listed.volumes.clone(),
            mount_points: listed.mount_points.clone(),
            lock_from: labels.get(LOCK_FROM).and_then(|g| g.parse().ok()),
            lock_from_running: labels.get(LOCK_FROM_RUNNING).is_some_and(|v| v == "true"),
            lock_restore_db: labels.get(LOCK_RESTORE_DB).and_then(|g| g.parse().ok()),
            start_first: labels.get(UPDATE_ORDER).is_some_and(|v| v == "start-first"),
            guests: labels.get(GUESTS).cloned(),
            release: labels.get(RELEASE).cloned(),
        })
    }
}

/// Of kept containers (generation, id), those beyond the newest `retain`:
/// the ones to remove. Pure; swaps and recovery prune by it.
pub fn beyond_retain(mut kept: Vec<(u64, String)>, retain: usize) -> Vec<(u64, String)> {
    kept.sort_by_key(|k| std::cmp::Reverse(k.0));
    kept.dedup_by(|a, b| a.1 == b.1);
    kept.into_iter().skip(retain).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_round_trip() {
        for role in [
            Role::Live,
            Role::Candidate,
            Role::Kept(7),
            Role::Lock,
            Role::Bootstrap,
            Role::Check,
            Role::Helper,
        ] {
            let name = container_name("t1-", "glance-api", role);
            assert_eq!(
                parse_name("t1-", &name),
                Some(("glance-api", role)),
                "{name}"
            );
            assert_eq!(
                parse_name("t1-", &format!("/{name}")),
                Some(("glance-api", role))
            );
        }
        assert_eq!(parse_name("t1-", "glance-api"), None);
        assert_eq!(
            parse_name("", "x.kolla-gen-abc"),
            Some(("x.kolla-gen-abc", Role::Live))
        );
    }

    #[test]
    fn listing_reads_labels_state_and_health() {
        let labels = HashMap::from([
            (SERVICE.to_string(), "web".to_string()),
            (GENERATION.to_string(), "3".to_string()),
            (CONFIG_HASH.to_string(), "abc".to_string()),
        ]);
        let listed =
            |name: &str, state: State, health: Option<Health>, exit_code| ListedContainer {
                id: format!("id-{name}"),
                name: name.to_string(),
                labels: labels.clone(),
                state,
                health,
                exit_code,
                image: "i".into(),
                volumes: vec![("v".into(), "/data".into())],
                mount_points: vec!["/data".into()],
            };
        let c = ObservedContainer::from_listing(
            "",
            &listed("web.kolla-gen-2", State::Exited, None, Some(0)),
        )
        .unwrap();
        assert_eq!(c.role, Role::Kept(2));
        assert_eq!(c.generation, 3);
        assert_eq!(c.state, State::Exited);
        assert_eq!(c.health, None);
        assert_eq!(c.exit_code, Some(0));
        assert_eq!(c.volumes, vec![("v".to_string(), "/data".to_string())]);
        let c = ObservedContainer::from_listing(
            "",
            &listed("web", State::Running, Some(Health::Starting), None),
        )
        .unwrap();
        assert_eq!(c.health, Some(Health::Starting));
        // A name that disagrees with the service label is not ours.
        assert!(
            ObservedContainer::from_listing("", &listed("other", State::Running, None, None))
                .is_none()
        );
    }
}
