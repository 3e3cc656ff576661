//! The label schema and container names: the only persistent state of a
//! deployment. Every container kolla creates carries these labels (fixed at
//! creation) and a name that says its place in a swap, so anyone with the
//! inventory can see the truth on the node itself.

use std::collections::HashMap;

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
/// 1, 2, 3, ... per service, bumped on every swap.
pub const GENERATION: &str = "kolla.generation";
/// "true" on data containers, which are never started or replaced.
pub const DATA: &str = "kolla.data";
/// The restart policy the service asks for: a container swapped out gets
/// `no`, and this label gives the original back when it is swapped in again.
pub const RESTART: &str = "kolla.restart";

/// The service's dependency level on its node: `stop` and `destroy` stop
/// higher levels (dependents) first.
pub const LEVEL: &str = "kolla.level";

/// On a volume kolla made for a service's anonymous or image-declared
/// path: that path.
pub const VOLUME_PATH: &str = "kolla.volume-path";

/// Name suffixes of the containers of a swap.
pub const CANDIDATE_SUFFIX: &str = ".kolla-new";
pub const KEPT_INFIX: &str = ".kolla-gen-";
pub const LOCK_SUFFIX: &str = ".kolla-lock";
pub const BOOTSTRAP_SUFFIX: &str = ".kolla-bootstrap";
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
        Role::Helper => format!("{prefix}{service}{HELPER_SUFFIX}"),
    }
}

/// A container's lifecycle state, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Other(String),
}

impl State {
    pub fn parse(state: &str) -> State {
        match state {
            "created" => State::Created,
            "running" => State::Running,
            "restarting" => State::Restarting,
            "paused" => State::Paused,
            "exited" => State::Exited,
            "dead" => State::Dead,
            other => State::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Paused => "paused",
            State::Exited => "exited",
            State::Dead => "dead",
            State::Other(s) => s,
        }
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
    pub generation: u64,
    pub data: bool,
    pub state: State,
    /// `healthy`, `unhealthy`, `starting`, or None without a healthcheck.
    pub health: Option<String>,
    /// For an exited container, its exit code.
    pub exit_code: Option<i64>,
    /// The restart policy it was created with (`kolla.restart`).
    pub restart: String,
    /// Its dependency level (`kolla.level`; 0 for containers without).
    pub level: usize,
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
            generation: 1,
            data: false,
            state: State::Running,
            health: None,
            exit_code: None,
            restart: "no".into(),
            level: 0,
        }
    }
}

impl ObservedContainer {
    /// Read a listed container: its name (without the engine's leading
    /// `/`), labels, state and status text. None when it is not a kolla
    /// container of this deployment.
    pub fn from_listing(
        prefix: &str,
        id: &str,
        name: &str,
        labels: &HashMap<String, String>,
        state: &str,
        status: &str,
    ) -> Option<ObservedContainer> {
        let (service, role) = parse_name(prefix, name)?;
        let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
        if labels.get(SERVICE).map(String::as_str) != Some(service) {
            return None;
        }
        let health = if status.contains("(healthy)") {
            Some("healthy".to_string())
        } else if status.contains("(unhealthy)") {
            Some("unhealthy".to_string())
        } else if status.contains("(health: starting)") {
            Some("starting".to_string())
        } else {
            None
        };
        // "Exited (0) 5 seconds ago"
        let exit_code = status
            .strip_prefix("Exited (")
            .and_then(|rest| rest.split(')').next())
            .and_then(|code| code.parse().ok());
        Some(ObservedContainer {
            exit_code,
            restart: labels
                .get(RESTART)
                .cloned()
                .unwrap_or_else(|| "no".to_string()),
            id: id.to_string(),
            name: name.trim_start_matches('/').to_string(),
            service: service.to_string(),
            role,
            node_role: label(ROLE),
            image: label(IMAGE),
            digest: label(DIGEST),
            config_hash: label(CONFIG_HASH),
            generation: label(GENERATION).parse().unwrap_or(0),
            data: label(DATA) == "true",
            level: label(LEVEL).parse().unwrap_or(0),
            state: State::parse(state),
            health,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in [
            Role::Live,
            Role::Candidate,
            Role::Kept(7),
            Role::Lock,
            Role::Bootstrap,
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
        let c = ObservedContainer::from_listing(
            "",
            "id1",
            "/web.kolla-gen-2",
            &labels,
            "exited",
            "Exited (0) 1 minute ago",
        )
        .unwrap();
        assert_eq!(c.role, Role::Kept(2));
        assert_eq!(c.generation, 3);
        assert_eq!(c.state, State::Exited);
        assert_eq!(c.health, None);
        assert_eq!(c.exit_code, Some(0));
        let c = ObservedContainer::from_listing(
            "",
            "id2",
            "/web",
            &labels,
            "running",
            "Up 3 seconds (health: starting)",
        )
        .unwrap();
        assert_eq!(c.health.as_deref(), Some("starting"));
        // A name that disagrees with the service label is not ours.
        assert!(
            ObservedContainer::from_listing("", "id3", "/other", &labels, "running", "Up")
                .is_none()
        );
    }
}
