//! Planning a deploy: desired services (from the node's compose files) +
//! observed containers (one list call) -> ordered actions. A pure function,
//! tested against literal observed states without Docker.
//!
//! Actions come in dependency levels: a service's level is one more than
//! the highest level among what it depends on (depends_on, volumes_from,
//! network_mode service:). Levels are how a plan reads and where cycles are
//! caught; apply runs each action as soon as its own dependencies are done
//! (see `dependencies`). Every action carries its cause, as a phrase.

use std::collections::{BTreeMap, BTreeSet};

use super::labels::{ObservedContainer, Role, State};
use super::spec::ContainerSpec;
use crate::config::compose::ServiceSpec;
use crate::config::inventory::PrivilegedMode;

/// A service as it should be on the node.
#[derive(Debug, Clone)]
pub struct DesiredService {
    pub service: ServiceSpec,
    pub spec: ContainerSpec,
    pub config_hash: String,
    /// Id of the service's image on the node, None when it is not there.
    pub digest: Option<String>,
    /// The node role whose compose file defines it.
    pub node_role: String,
    pub privileged: PrivilegedMode,
    /// The config files of its bootstrap job (rendered with `kolla_job`),
    /// empty without one.
    pub job_files: Vec<(String, Vec<u8>)>,
    /// The paths its image declares as volumes (`VOLUME`), once the image
    /// is known on the node.
    pub image_volumes: Vec<String>,
    /// Its dependency level on the node (0: depends on nothing).
    pub level: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Create a data container (never started).
    CreateData,
    /// Create and start the service.
    Create,
    /// Swap the live container for a new one.
    Replace,
    /// Start the existing container, which matches but is not running.
    Start,
    /// Nothing to do.
    Keep,
    /// Remove a container no compose file of the node names any more.
    RemoveOrphan,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::CreateData => "create-data",
            ActionKind::Create => "create",
            ActionKind::Replace => "replace",
            ActionKind::Start => "start",
            ActionKind::Keep => "keep",
            ActionKind::RemoveOrphan => "remove",
        }
    }

    pub fn changes_something(self) -> bool {
        !matches!(self, ActionKind::Keep)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    /// The service (or, for orphans, the container name).
    pub service: String,
    pub cause: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actions by dependency level, services sorted by name in a level.
    pub levels: Vec<Vec<Action>>,
    /// Containers of services no longer desired: removed with
    /// `--remove-orphans`, else kept and reported.
    pub orphans: Vec<Action>,
}

impl Plan {
    /// Actions that change the node.
    pub fn changes(&self) -> usize {
        self.levels
            .iter()
            .flatten()
            .chain(&self.orphans)
            .filter(|a| a.kind.changes_something())
            .count()
    }

    /// The plan as text: what `deploy --dry-run` prints, and what the
    /// tests compare against.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (level, actions) in self.levels.iter().enumerate() {
            out.push_str(&format!("level {level}:\n"));
            for action in actions {
                out.push_str(&format!(
                    "  {:<12} {:<24} ({})\n",
                    action.kind.as_str(),
                    action.service,
                    action.cause
                ));
            }
        }
        if !self.orphans.is_empty() {
            out.push_str("orphans:\n");
            for action in &self.orphans {
                out.push_str(&format!(
                    "  {:<12} {:<24} ({})\n",
                    action.kind.as_str(),
                    action.service,
                    action.cause
                ));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub remove_orphans: bool,
    /// Kept generations per service (recovery prunes beyond it).
    pub retain: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("services depend on each other in a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("service {service} depends on {dependency}, which this node does not deploy")]
    MissingDependency { service: String, dependency: String },
    #[error(
        "service {service} is defined twice for this node (roles {first} and {second}); service names must be unique per node"
    )]
    Duplicate {
        service: String,
        first: String,
        second: String,
    },
}

/// What a service needs up before it starts.
pub fn dependencies(service: &ServiceSpec) -> BTreeSet<String> {
    let mut deps: BTreeSet<String> = service.depends_on.keys().cloned().collect();
    deps.extend(
        service
            .volumes_from
            .iter()
            .map(|v| v.split(':').next().unwrap_or(v).to_string()),
    );
    if let Some(other) = service
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("service:"))
    {
        deps.insert(other.to_string());
    }
    deps
}

/// Dependency levels of `services` (names sorted within a level), or the
/// cycle that prevents them.
pub fn levels(services: &[&ServiceSpec]) -> Result<Vec<Vec<String>>, PlanError> {
    let by_name: BTreeMap<&str, &ServiceSpec> =
        services.iter().map(|s| (s.name.as_str(), *s)).collect();
    let mut level_of: BTreeMap<String, usize> = BTreeMap::new();
    fn visit(
        name: &str,
        by_name: &BTreeMap<&str, &ServiceSpec>,
        level_of: &mut BTreeMap<String, usize>,
        stack: &mut Vec<String>,
    ) -> Result<usize, PlanError> {
        if let Some(level) = level_of.get(name) {
            return Ok(*level);
        }
        if let Some(start) = stack.iter().position(|n| n == name) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(name.to_string());
            return Err(PlanError::Cycle(cycle));
        }
        let service = by_name[name];
        stack.push(name.to_string());
        let mut level = 0;
        for dependency in dependencies(service) {
            if !by_name.contains_key(dependency.as_str()) {
                return Err(PlanError::MissingDependency {
                    service: name.to_string(),
                    dependency,
                });
            }
            level = level.max(visit(&dependency, by_name, level_of, stack)? + 1);
        }
        stack.pop();
        level_of.insert(name.to_string(), level);
        Ok(level)
    }
    for name in by_name.keys() {
        visit(name, &by_name, &mut level_of, &mut Vec::new())?;
    }
    let depth = level_of.values().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for (name, level) in level_of {
        out[level].push(name);
    }
    Ok(out)
}

/// Decide what to do with each desired service and each observed container.
pub fn plan(
    desired: &[DesiredService],
    observed: &[ObservedContainer],
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let services: Vec<&ServiceSpec> = desired.iter().map(|d| &d.service).collect();
    let by_name: BTreeMap<&str, &DesiredService> = desired
        .iter()
        .map(|d| (d.service.name.as_str(), d))
        .collect();
    let live: BTreeMap<&str, &ObservedContainer> = observed
        .iter()
        .filter(|c| c.role == Role::Live)
        .map(|c| (c.service.as_str(), c))
        .collect();

    // One-shot jobs: services others wait on to complete. Exited 0 is
    // their finished state, not something to restart.
    let jobs: BTreeSet<&str> = services
        .iter()
        .flat_map(|s| s.depends_on.iter())
        .filter(|(_, condition)| {
            **condition == crate::config::compose::Condition::CompletedSuccessfully
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let mut plan = Plan::default();
    for level in levels(&services)? {
        let mut actions = Vec::new();
        for name in level {
            let wanted = by_name[name.as_str()];
            let action = |kind, cause: &str| Action {
                kind,
                service: name.clone(),
                cause: cause.to_string(),
            };
            let current = live.get(name.as_str());
            let step = match current {
                None if wanted.service.kolla.data => action(ActionKind::CreateData, "not created"),
                None => action(ActionKind::Create, "not created"),
                // Data containers hold volumes: never recreated, whatever changed.
                Some(c) if c.data || wanted.service.kolla.data => {
                    if c.config_hash != wanted.config_hash {
                        action(
                            ActionKind::Keep,
                            "data container: definition changed, kept as is (its volumes hold data)",
                        )
                    } else {
                        action(ActionKind::Keep, "data container")
                    }
                }
                Some(c) if wanted.digest.as_deref().is_some_and(|d| d != c.digest) => {
                    action(ActionKind::Replace, "image changed")
                }
                Some(c) if c.config_hash != wanted.config_hash => {
                    action(ActionKind::Replace, "config changed")
                }
                Some(c)
                    if jobs.contains(name.as_str())
                        && c.state == State::Exited
                        && c.exit_code == Some(0) =>
                {
                    action(ActionKind::Keep, "job completed")
                }
                Some(c) if c.state != State::Running && c.state != State::Restarting => action(
                    ActionKind::Start,
                    &format!("{}, not running", c.state.as_str()),
                ),
                Some(_) => action(ActionKind::Keep, "up to date"),
            };
            actions.push(step);
        }
        plan.levels.push(actions);
    }
    let orphan_names: BTreeSet<&str> = observed
        .iter()
        .filter(|c| !by_name.contains_key(c.service.as_str()) && c.role == Role::Live)
        .map(|c| c.service.as_str())
        .collect();
    for service in orphan_names {
        plan.orphans.push(Action {
            kind: if options.remove_orphans {
                ActionKind::RemoveOrphan
            } else {
                ActionKind::Keep
            },
            service: service.to_string(),
            cause: if options.remove_orphans {
                "in no compose file of this node".to_string()
            } else {
                "in no compose file of this node; --remove-orphans removes it".to_string()
            },
        });
    }
    Ok(plan)
}

/// How a service is swapped.
#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// Graceful stop timeout of the old container (seconds).
    pub grace: Option<i64>,
    pub start_first: bool,
}

/// Above every generation the service ever had on the node, kept ones
/// included, so names never collide.
pub fn next_generation(observed: &[ObservedContainer], service: &str) -> u64 {
    observed
        .iter()
        .filter(|c| c.service == service)
        .map(|c| match c.role {
            Role::Kept(g) => g.max(c.generation),
            _ => c.generation,
        })
        .max()
        .unwrap_or(0)
        + 1
}

/// The replaced containers kept for `service`.
pub fn kept_of(observed: &[ObservedContainer], service: &str) -> Vec<ObservedContainer> {
    observed
        .iter()
        .filter(|c| c.service == service && matches!(c.role, Role::Kept(_)))
        .cloned()
        .collect()
}

/// How `wanted` is swapped: its grace period, update order, healthcheck.
pub fn swap_options(wanted: &DesiredService) -> SwapOptions {
    SwapOptions {
        grace: wanted
            .service
            .stop_grace_period
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        start_first: wanted.service.kolla.update_order
            == crate::config::compose::UpdateOrder::StartFirst,
    }
}

/// Which kept container a rollback swaps in for `live`: generation `to`,
/// else the newest kept one. Refused when nothing is kept, when `to` is
/// not kept, and when the last change was itself a rollback (the live
/// generation is older than a kept one) unless `force`.
pub fn rollback_target<'a>(
    live: &ObservedContainer,
    kept: &'a [ObservedContainer],
    to: Option<u64>,
    force: bool,
) -> Result<&'a ObservedContainer, String> {
    let Some(newest) = kept.iter().max_by_key(|c| c.generation) else {
        return Err(format!(
            "nothing to roll back to (no kept container; generation {} is the only one)",
            live.generation
        ));
    };
    let target = match to {
        None => newest,
        Some(n) => kept.iter().find(|c| c.generation == n).ok_or_else(|| {
            let mut available: Vec<u64> = kept.iter().map(|c| c.generation).collect();
            available.sort_unstable();
            let available: Vec<String> = available.iter().map(u64::to_string).collect();
            format!("no kept generation {n} (kept: {})", available.join(", "))
        })?,
    };
    if live.generation < newest.generation && !force {
        return Err(format!(
            "generation {} is live and {} is kept: the last change was a rollback; pass --force to roll back again",
            live.generation, newest.generation
        ));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compose::{Variables, parse};
    use std::path::Path;

    const FILE: &str = r#"
services:
  data:
    image: d
    volumes: [/var/lib/x]
    x-kolla: {data: true}
  db:
    image: db
    volumes_from: [data]
    healthcheck: {test: [CMD, "true"]}
  cache:
    image: cache
  api:
    image: api
    depends_on: {db: {condition: service_healthy}, cache: {condition: service_started}}
  worker:
    image: worker
    depends_on: [api]
"#;

    fn parse_text(text: &str) -> crate::config::compose::ComposeFile {
        parse(
            text,
            Path::new("c.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap()
    }

    /// Desired services of compose `text`, hashes and digests named after
    /// each service (as `running` observes them).
    fn desired_from(text: &str) -> Vec<DesiredService> {
        let file = parse_text(text);
        file.services
            .into_iter()
            .map(|service| DesiredService {
                config_hash: format!("hash-{}", service.name),
                digest: Some(format!("sha256:{}", service.name)),
                spec: ContainerSpec::default(),
                node_role: "controller".into(),
                privileged: PrivilegedMode::Native,
                job_files: Vec::new(),
                image_volumes: Vec::new(),
                level: 0,
                service,
            })
            .collect()
    }

    fn desired() -> Vec<DesiredService> {
        desired_from(FILE)
    }

    fn running(service: &str) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{service}"),
            name: service.to_string(),
            service: service.to_string(),
            role: Role::Live,
            node_role: "controller".into(),
            image: service.into(),
            digest: format!("sha256:{service}"),
            config_hash: format!("hash-{service}"),
            generation: 1,
            data: service == "data",
            exit_code: None,
            restart: "no".into(),
            level: 0,
            state: if service == "data" {
                State::Created
            } else {
                State::Running
            },
            health: None,
            volumes: Vec::new(),
        }
    }

    #[test]
    fn fresh_node_creates_everything_in_dependency_levels() {
        let plan = plan(&desired(), &[], &PlanOptions::default()).unwrap();
        assert_eq!(
            plan.text(),
            "level 0:
  create       cache                    (not created)
  create-data  data                     (not created)
level 1:
  create       db                       (not created)
level 2:
  create       api                      (not created)
level 3:
  create       worker                   (not created)
"
        );
        assert_eq!(plan.changes(), 5);
    }

    #[test]
    fn converged_node_changes_nothing() {
        let observed: Vec<_> = ["data", "db", "cache", "api", "worker"]
            .into_iter()
            .map(running)
            .collect();
        let plan = plan(&desired(), &observed, &PlanOptions::default()).unwrap();
        assert_eq!(plan.changes(), 0, "{}", plan.text());
    }

    #[test]
    fn each_difference_has_its_action_and_cause() {
        let mut observed: Vec<_> = ["data", "db", "cache", "api", "worker"]
            .into_iter()
            .map(running)
            .collect();
        observed[0].config_hash = "old".into(); // data: never replaced
        observed[1].digest = "sha256:older".into(); // db: rebuilt image
        observed[2].state = State::Exited; // cache: stopped
        observed[3].config_hash = "old".into(); // api: config changed
        let mut orphan = running("legacy");
        orphan.generation = 4;
        observed.push(orphan);
        // Kept and candidate containers of desired services are not orphans.
        let mut kept = running("api");
        kept.role = Role::Kept(1);
        observed.push(kept);
        let plan = plan(&desired(), &observed, &PlanOptions::default()).unwrap();
        assert_eq!(
            plan.text(),
            "level 0:
  start        cache                    (exited, not running)
  keep         data                     (data container: definition changed, kept as is (its volumes hold data))
level 1:
  replace      db                       (image changed)
level 2:
  replace      api                      (config changed)
level 3:
  keep         worker                   (up to date)
orphans:
  keep         legacy                   (in no compose file of this node; --remove-orphans removes it)
"
        );
        assert_eq!(plan.changes(), 3);
        let removing = super::plan(
            &desired(),
            &observed,
            &PlanOptions {
                remove_orphans: true,
                retain: 2,
            },
        )
        .unwrap();
        assert_eq!(removing.orphans[0].kind, ActionKind::RemoveOrphan);
        assert_eq!(removing.changes(), 4);
    }

    #[test]
    fn a_completed_job_stays_exited_but_a_failed_one_restarts() {
        let text = "services:\n  job:\n    image: j\n  app:\n    image: a\n    depends_on: {job: {condition: service_completed_successfully}}\n";
        let wanted = desired_from(text);
        let mut job = running("job");
        job.state = State::Exited;
        job.exit_code = Some(0);
        let observed = vec![job.clone(), running("app")];
        assert_eq!(
            plan(&wanted, &observed, &PlanOptions::default())
                .unwrap()
                .changes(),
            0
        );
        job.exit_code = Some(1);
        let observed = vec![job, running("app")];
        let p = plan(&wanted, &observed, &PlanOptions::default()).unwrap();
        assert_eq!(p.levels[0][0].kind, ActionKind::Start, "{}", p.text());
    }

    #[test]
    fn an_image_missing_on_the_node_does_not_count_as_changed() {
        let observed: Vec<_> = ["data", "db", "cache", "api", "worker"]
            .into_iter()
            .map(running)
            .collect();
        let mut wanted = desired();
        wanted[1].digest = None;
        assert_eq!(
            plan(&wanted, &observed, &PlanOptions::default())
                .unwrap()
                .changes(),
            0
        );
    }

    #[test]
    fn cycles_and_missing_dependencies_are_errors() {
        let text = "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [c]\n  c:\n    image: z\n    depends_on: [a]\n";
        let file = parse_text(text);
        let services: Vec<&ServiceSpec> = file.services.iter().collect();
        assert_eq!(
            levels(&services).unwrap_err().to_string(),
            "services depend on each other in a cycle: a -> b -> c -> a"
        );
        let only_a: Vec<&ServiceSpec> = file.services.iter().take(1).collect();
        assert_eq!(
            levels(&only_a).unwrap_err(),
            PlanError::MissingDependency {
                service: "a".into(),
                dependency: "b".into()
            }
        );
    }
}
