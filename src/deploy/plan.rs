//! Planning a deploy: desired services (from the node's compose files) +
//! observed containers (one list call) -> ordered actions. A pure function,
//! tested against literal observed states without Docker.
//!
//! Actions come in dependency levels: a service's level is one more than
//! the highest level among what it depends on (depends_on, volumes_from,
//! network_mode service:). Levels are how a plan reads and where cycles are
//! caught; apply runs each action as soon as its own dependencies are done
//! (see `dependencies`). Every action carries its cause, as a phrase.
//!
//! A deploy of named services (`kolla deploy nova-api`) plans those alone:
//! what they depend on is left as it is, so it must be up already (as its
//! condition says), or the plan is refused naming it. Levels are still
//! those of every desired service, so cycles are caught the same.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::labels::{Health, ObservedContainer, Role, State};
use super::recovery::plan::{LockedFrom, Step, recovery_plan, services_needing_recovery};
pub use super::service::DesiredService;
use super::volumes::{VolumeInputs, VolumeMount, anonymous_volumes};
use crate::config::compose::{Condition, ServiceSpec};
use crate::graph;

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

/// What the executor waits for after starting a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gate {
    /// Nothing: dependents may start at once.
    #[default]
    Nothing,
    /// Healthy (with a healthcheck) or still running after the monitor
    /// window (without).
    Up,
    /// Exited 0 (a one-shot job others wait for).
    Completed,
}

impl Gate {
    fn as_str(self) -> &'static str {
        match self {
            Gate::Nothing => "no gate",
            Gate::Up => "gate: up",
            Gate::Completed => "gate: completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    /// The service (or, for orphans, the container name).
    pub service: String,
    pub cause: String,
    /// The generation the new container gets (create, replace).
    pub generation: Option<u64>,
    /// The generation it replaces (replace).
    pub from: Option<u64>,
    /// What the start is gated on.
    pub gate: Gate,
    /// Replace: the candidate starts and passes its gate before the old
    /// container stops.
    pub start_first: bool,
    /// The volume of every anonymous path of the new container.
    pub volumes: Vec<VolumeMount>,
    /// The services whose actions must be done before this one starts.
    pub after: BTreeSet<String>,
    /// Replace because the image changed: the live container's image and
    /// the wanted one (what `deploy --dry-run --output json` shows).
    pub image: Option<ImageChange>,
}

/// An image as the plan knows it: the reference a compose file or a
/// container's label names, and its id where the node has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageRef {
    pub reference: String,
    pub id: Option<String>,
}

/// The image a replace moves a service from, and the one it moves it to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageChange {
    pub from: ImageRef,
    pub to: ImageRef,
}

impl ImageChange {
    /// From `live`'s image to `wanted`'s (an id the node lacks is None).
    fn of(wanted: &DesiredService, live: &ObservedContainer) -> ImageChange {
        let id = |digest: &str| (!digest.is_empty()).then(|| digest.to_string());
        ImageChange {
            from: ImageRef {
                reference: live.image.clone(),
                id: id(&live.digest),
            },
            to: ImageRef {
                reference: wanted.service.image.clone(),
                id: wanted.digest.as_deref().and_then(id),
            },
        }
    }
}

impl Action {
    fn new(kind: ActionKind, service: &str, cause: String) -> Action {
        Action {
            kind,
            service: service.to_string(),
            cause,
            generation: None,
            from: None,
            gate: Gate::Nothing,
            start_first: false,
            volumes: Vec::new(),
            after: BTreeSet::new(),
            image: None,
        }
    }

    /// A replace, decided again from `observed_now`, the node as it is once
    /// the service's lock is held: another run may have swapped the service
    /// since the plan was made. The executor runs what this says and
    /// decides nothing itself.
    pub fn recheck(
        &self,
        wanted: &DesiredService,
        observed_now: &[ObservedContainer],
        prefix: &str,
    ) -> Recheck {
        let name = wanted.service.name.as_str();
        let Some(live) = observed_now
            .iter()
            .find(|c| c.service == name && c.role == Role::Live)
        else {
            return Recheck::Gone;
        };
        if is_current(wanted, live) {
            return Recheck::Current;
        }
        let no_volumes = BTreeSet::new();
        let lookups = Lookups::new(&[], observed_now, &no_volumes, prefix);
        let now = service_action(wanted, &lookups);
        match now.generation.filter(|_| now.kind == ActionKind::Replace) {
            Some(generation) => Recheck::Swap(Box::new(SwapPlan {
                live: live.clone(),
                generation,
                volumes: now.volumes,
                kept: kept_of(observed_now, name),
                options: SwapOptions {
                    start_first: now.start_first,
                    ..swap_options(wanted)
                },
            })),
            // Nothing to swap: the node shows what is wanted.
            None => Recheck::Current,
        }
    }

    /// The action as `deploy --dry-run` shows it: one line, then its
    /// details indented under it.
    fn text(&self) -> String {
        let mut out = format!(
            "  {:<12} {:<24} ({})\n",
            self.kind.as_str(),
            self.service,
            self.cause
        );
        let details = match (self.from, self.generation) {
            (Some(from), Some(to)) => Some(format!(
                "generation {from} -> {to}, {}, {}",
                if self.start_first {
                    "start-first"
                } else {
                    "stop-first"
                },
                self.gate.as_str()
            )),
            (None, Some(to)) => Some(format!("generation {to}, {}", self.gate.as_str())),
            _ if self.gate != Gate::Nothing => Some(self.gate.as_str().to_string()),
            _ => None,
        };
        for line in details
            .into_iter()
            .chain(self.volumes.iter().map(|v| v.to_string()))
        {
            out.push_str(&format!("{:15}{line}\n", ""));
        }
        out
    }
}

/// A replace as decided from the node as it is: the live container it
/// replaces, the generation it makes, the new container's anonymous
/// volumes, the kept containers, and how it swaps.
#[derive(Debug, Clone)]
pub struct SwapPlan {
    pub live: ObservedContainer,
    pub generation: u64,
    pub volumes: Vec<VolumeMount>,
    pub kept: Vec<ObservedContainer>,
    pub options: SwapOptions,
}

/// What a replace comes to once its lock is held (`Action::recheck`).
#[derive(Debug, Clone)]
pub enum Recheck {
    /// Swap as this says.
    Swap(Box<SwapPlan>),
    /// The node already runs what is wanted: nothing to do.
    Current,
    /// The service has no live container to replace any more.
    Gone,
}

/// A named volume of the compose files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeAction {
    pub name: String,
    pub driver: Option<String>,
    /// Not on the node yet.
    pub create: bool,
}

/// What recovery does for one service before the plan's actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub service: String,
    pub cause: String,
    pub steps: Vec<Step>,
}

/// The named volumes the compose files ask for, and those on the node.
#[derive(Debug, Clone, Default)]
pub struct Volumes {
    /// (engine name, driver).
    pub named: Vec<(String, Option<String>)>,
    /// Every volume on the node now.
    pub existing: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Leftovers of crashed runs, settled first.
    pub recovery: Vec<Recovery>,
    /// Named volumes of the compose files.
    pub volumes: Vec<VolumeAction>,
    /// Actions by dependency level, services sorted by name in a level.
    pub levels: Vec<Vec<Action>>,
    /// Containers of services no longer desired: removed with
    /// `--remove-orphans`, else kept and reported.
    pub orphans: Vec<Action>,
}

impl Plan {
    /// Actions that change the node.
    pub fn changes(&self) -> usize {
        let actions = self
            .levels
            .iter()
            .flatten()
            .chain(&self.orphans)
            .filter(|a| a.kind.changes_something())
            .count();
        let recovery: usize = self.recovery.iter().map(|r| r.steps.len()).sum();
        actions + recovery + self.volumes.iter().filter(|v| v.create).count()
    }

    /// The plan as text: what `deploy --dry-run` prints, and what the
    /// tests compare against.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if !self.recovery.is_empty() {
            out.push_str("recover:\n");
            for r in &self.recovery {
                out.push_str(&format!(
                    "  {:<12} {:<24} ({})\n",
                    "recover", r.service, r.cause
                ));
                for step in &r.steps {
                    out.push_str(&format!("{:15}{step}\n", ""));
                }
            }
        }
        if !self.volumes.is_empty() {
            out.push_str("volumes:\n");
            for v in &self.volumes {
                let (kind, cause) = if v.create {
                    ("create", "named in a compose file, not on the node")
                } else {
                    ("keep", "on the node")
                };
                out.push_str(&format!("  {kind:<12} {:<24} ({cause})\n", v.name));
            }
        }
        for (level, actions) in self.levels.iter().enumerate() {
            out.push_str(&format!("level {level}:\n"));
            for action in actions {
                out.push_str(&action.text());
            }
        }
        if !self.orphans.is_empty() {
            out.push_str("orphans:\n");
            for action in &self.orphans {
                out.push_str(&action.text());
            }
        }
        out
    }
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub remove_orphans: bool,
    /// Plan only these services (a deploy of named services); None: every
    /// desired service, and the orphans.
    pub only: Option<BTreeSet<String>>,
    /// Kept generations per service (recovery prunes beyond it).
    pub retain: usize,
    /// The deployment's container prefix (kolla's volume names use it).
    pub prefix: String,
    pub volumes: Volumes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("services depend on each other in a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("service {service} depends on {dependency}, which this node does not deploy")]
    MissingDependency { service: String, dependency: String },
    #[error(
        "service {service} depends on {dependency}, which this deploy leaves as it is, and {dependency} {why}\n  hint: name it too (`kolla deploy {dependency} {service}`){}",
        if .why.contains("not deployed") { "" } else { ", or start it (`kolla start`)" }
    )]
    DependencyNotUp {
        service: String,
        dependency: String,
        /// As the node shows it: "is exited, not running".
        why: String,
    },
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
    service.needs().into_iter().map(str::to_string).collect()
}

/// Dependency levels of `services` (names sorted within a level), or the
/// cycle that prevents them. Names are tried in sorted order, and so are
/// each service's dependencies: the first missing dependency, or the
/// first cycle, met that way is the one reported, the same every run.
pub fn levels(services: &[&ServiceSpec]) -> Result<Vec<Vec<String>>, PlanError> {
    let by_name: BTreeMap<&str, &ServiceSpec> =
        services.iter().map(|s| (s.name.as_str(), *s)).collect();
    // Services by number, in name order (what `graph` works on).
    let names: Vec<&str> = by_name.keys().copied().collect();
    let mut needs = Vec::with_capacity(names.len());
    for (name, service) in &by_name {
        let mut mine = Vec::new();
        for dependency in service.needs() {
            match names.binary_search(&dependency) {
                Ok(index) => mine.push(index),
                Err(_) => {
                    return Err(PlanError::MissingDependency {
                        service: name.to_string(),
                        dependency: dependency.to_string(),
                    });
                }
            }
        }
        needs.push(mine);
    }
    let level_of = graph::levels(&needs).map_err(|cycle| {
        PlanError::Cycle(cycle.into_iter().map(|i| names[i].to_string()).collect())
    })?;
    let depth = level_of.iter().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for (name, level) in names.into_iter().zip(level_of) {
        out[level].push(name.to_string());
    }
    Ok(out)
}

/// What others wait for of a service, through their `depends_on`.
#[derive(Debug, Clone, Copy, Default)]
struct Awaited {
    /// Exited 0: a one-shot job.
    completed: bool,
    healthy: bool,
}

/// What planning a service looks up, indexed once for the whole plan, so
/// each service costs lookups rather than scans of every container and
/// service (a plan of N services is not N times N).
pub struct Lookups<'a> {
    /// Each service's live container (the first observed).
    live: HashMap<&'a str, &'a ObservedContainer>,
    /// The generation after the highest each service ever had.
    next_generation: HashMap<&'a str, u64>,
    /// What the desired services wait for of each other.
    awaited: HashMap<&'a str, Awaited>,
    volumes: VolumeInputs<'a>,
}

impl<'a> Lookups<'a> {
    /// The node's desired services, its containers, kolla's volumes on it
    /// and the container prefix.
    pub fn new(
        desired: &[&'a DesiredService],
        observed: &'a [ObservedContainer],
        existing: &'a BTreeSet<String>,
        prefix: &'a str,
    ) -> Lookups<'a> {
        let mut live = HashMap::new();
        let mut highest: HashMap<&str, u64> = HashMap::new();
        for c in observed {
            if c.role == Role::Live {
                live.entry(c.service.as_str()).or_insert(c);
            }
            let generation = match c.role {
                Role::Kept(g) => g.max(c.generation),
                _ => c.generation,
            };
            let seen = highest.entry(c.service.as_str()).or_insert(0);
            *seen = (*seen).max(generation);
        }
        let mut awaited: HashMap<&str, Awaited> = HashMap::new();
        for (dependency, condition) in desired.iter().flat_map(|d| &d.service.depends_on) {
            let entry = awaited.entry(dependency.as_str()).or_default();
            entry.completed |= *condition == Condition::CompletedSuccessfully;
            entry.healthy |= *condition == Condition::Healthy;
        }
        Lookups {
            live,
            next_generation: highest.into_iter().map(|(s, g)| (s, g + 1)).collect(),
            awaited,
            volumes: VolumeInputs::new(observed, desired.iter().copied(), existing, prefix),
        }
    }

    fn awaited(&self, service: &str) -> Awaited {
        self.awaited.get(service).copied().unwrap_or_default()
    }
}

/// Decide what to do with each desired service and each observed container.
pub fn plan(
    desired: &[DesiredService],
    observed: &[ObservedContainer],
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    // One per name (the last, should a name come twice).
    let by_name: BTreeMap<&str, &DesiredService> = desired
        .iter()
        .map(|d| (d.service.name.as_str(), d))
        .collect();
    let unique: Vec<&DesiredService> = by_name.values().copied().collect();
    let services: Vec<&ServiceSpec> = unique.iter().map(|d| &d.service).collect();
    let lookups = Lookups::new(
        &unique,
        observed,
        &options.volumes.existing,
        &options.prefix,
    );
    let planned = |name: &str| options.only.as_ref().is_none_or(|only| only.contains(name));
    let mut plan = Plan {
        recovery: recoveries(observed, options.retain),
        volumes: named_volumes(&options.volumes),
        ..Plan::default()
    };
    plan.recovery.retain(|r| planned(&r.service));
    for level in levels(&services)? {
        let actions: Vec<Action> = level
            .iter()
            .filter(|name| planned(name))
            .filter_map(|name| by_name.get(name.as_str()))
            .map(|wanted| service_action(wanted, &lookups))
            .collect();
        // A deploy of named services shows only the levels it has.
        if !actions.is_empty() || options.only.is_none() {
            plan.levels.push(actions);
        }
    }
    if let Some(only) = &options.only {
        let named: Vec<&DesiredService> = by_name
            .iter()
            .filter(|(name, _)| only.contains(**name))
            .map(|(_, d)| *d)
            .collect();
        refuse_dependencies_not_up(&named, only, &lookups)?;
        // Only the volumes those services mount; orphans are the whole
        // node's business.
        plan.volumes
            .retain(|v| named.iter().any(|d| mounts(d, &v.name)));
    } else {
        plan.orphans = orphans(observed, &by_name, options.remove_orphans);
    }
    Ok(plan)
}

/// Whether `wanted` mounts the named volume `volume` (a bind of it).
fn mounts(wanted: &DesiredService, volume: &str) -> bool {
    wanted
        .spec
        .binds
        .iter()
        .any(|bind| bind.split(':').next() == Some(volume))
}

/// A deploy of `named` services alone: each of what they need that is not
/// named must be up on the node as its need says (the first that is not,
/// in name order, is refused), since nothing starts or waits for it.
fn refuse_dependencies_not_up(
    named: &[&DesiredService],
    only: &BTreeSet<String>,
    lookups: &Lookups,
) -> Result<(), PlanError> {
    for wanted in named {
        let service = &wanted.service;
        for dependency in service.needs() {
            if only.contains(dependency) {
                continue;
            }
            let need = match service.depends_on.get(dependency) {
                Some(condition) => Need::Condition(*condition),
                None if service
                    .network_mode
                    .as_deref()
                    .and_then(|m| m.strip_prefix("service:"))
                    == Some(dependency) =>
                {
                    Need::Condition(Condition::Started)
                }
                None => Need::Exists,
            };
            if let Some(why) = not_up(lookups.live.get(dependency).copied(), need) {
                return Err(PlanError::DependencyNotUp {
                    service: service.name.clone(),
                    dependency: dependency.to_string(),
                    why,
                });
            }
        }
    }
    Ok(())
}

/// What a service needs of a dependency a deploy leaves as it is.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// As its `depends_on` condition (or `network_mode: service:`, which
    /// joins a running container) says.
    Condition(Condition),
    /// Only that it exists (`volumes_from`: its volumes, running or not).
    Exists,
}

/// Why `live`, a dependency's live container (if any), does not meet
/// `need`; None when it does. A health check still `starting` counts as
/// up: the engine's first check comes an interval after a start that
/// kolla's own gate already passed, and the service named is gated
/// anyway.
fn not_up(live: Option<&ObservedContainer>, need: Need) -> Option<String> {
    let Some(live) = live else {
        return Some("is not deployed on this node".to_string());
    };
    let state = live.state.as_str();
    match need {
        _ if live.data => None,
        Need::Exists => None,
        Need::Condition(Condition::CompletedSuccessfully) => match (&live.state, live.exit_code) {
            (State::Exited, Some(0)) => None,
            (State::Exited, Some(code)) => Some(format!("exited with code {code}")),
            _ => Some(format!("has not completed (it is {state})")),
        },
        Need::Condition(condition) => match (&live.state, live.health) {
            (State::Running, Some(Health::Unhealthy)) if condition == Condition::Healthy => {
                Some("is unhealthy".to_string())
            }
            (State::Running, _) => None,
            _ => Some(format!("is {state}, not running")),
        },
    }
}

/// One service's action, from its live container (if any).
pub fn service_action(wanted: &DesiredService, lookups: &Lookups) -> Action {
    let name = &wanted.service.name;
    let live = lookups.live.get(name.as_str()).copied();
    let awaited = lookups.awaited(name);
    let (kind, cause) = decide(wanted, live, awaited);
    let mut action = Action::new(kind, name, cause);
    action.after = dependencies(&wanted.service);
    match kind {
        ActionKind::Create | ActionKind::CreateData => {
            action.generation = Some(1);
            action.volumes = anonymous_volumes(wanted, None, &lookups.volumes);
        }
        ActionKind::Replace => {
            action.from = live.map(|c| c.generation);
            action.generation = Some(
                lookups
                    .next_generation
                    .get(name.as_str())
                    .copied()
                    .unwrap_or(1),
            );
            action.volumes = anonymous_volumes(wanted, live, &lookups.volumes);
            action.start_first = swap_options(wanted).start_first;
            action.image = live
                .filter(|live| image_changed(wanted, live))
                .map(|live| ImageChange::of(wanted, live));
        }
        _ => {}
    }
    action.gate = match kind {
        ActionKind::Create | ActionKind::Start => gate_after_start(wanted, awaited),
        ActionKind::Replace => Gate::Up,
        _ => Gate::Nothing,
    };
    action
}

/// Whether `live` already runs what `wanted` asks: the same image (when
/// the wanted image's id is known) and the same config. The one place
/// "already up to date" is decided: the plan, the executor's look under
/// the lock and an upgrade's skip all ask it.
pub fn is_current(wanted: &DesiredService, live: &ObservedContainer) -> bool {
    !image_changed(wanted, live) && live.config_hash == wanted.config_hash
}

fn image_changed(wanted: &DesiredService, live: &ObservedContainer) -> bool {
    wanted
        .digest
        .as_deref()
        .is_some_and(|digest| digest != live.digest)
}

/// What a service's live container (if any) calls for, and why.
fn decide(
    wanted: &DesiredService,
    live: Option<&ObservedContainer>,
    awaited: Awaited,
) -> (ActionKind, String) {
    // One-shot jobs: services others wait on to complete. Exited 0 is
    // their finished state, not something to restart.
    let job = awaited.completed;
    let (kind, cause) = match live {
        None if wanted.service.kolla.data => (ActionKind::CreateData, "not created"),
        None => (ActionKind::Create, "not created"),
        // Data containers hold volumes: never recreated, whatever changed.
        Some(c) if c.data || wanted.service.kolla.data => {
            if c.config_hash != wanted.config_hash {
                (
                    ActionKind::Keep,
                    "data container: definition changed, kept as is (its volumes hold data)",
                )
            } else {
                (ActionKind::Keep, "data container")
            }
        }
        Some(c) if image_changed(wanted, c) => (ActionKind::Replace, "image changed"),
        Some(c) if c.config_hash != wanted.config_hash => {
            return (ActionKind::Replace, config_changed(wanted, c));
        }
        Some(c) if job && c.state == State::Exited && c.exit_code == Some(0) => {
            (ActionKind::Keep, "job completed")
        }
        Some(c) if c.state != State::Running && c.state != State::Restarting => {
            return (
                ActionKind::Start,
                format!("{}, not running", c.state.as_str()),
            );
        }
        Some(_) => (ActionKind::Keep, "up to date"),
    };
    (kind, cause.to_string())
}

/// "config changed", naming the parts that did where the live container
/// says what its parts were.
fn config_changed(wanted: &DesiredService, live: &ObservedContainer) -> String {
    let changed = live
        .config_parts
        .as_ref()
        .map(|parts| crate::deploy::spec::changed_parts(parts, &wanted.config_parts))
        .unwrap_or_default();
    if changed.is_empty() {
        "config changed".to_string()
    } else {
        format!("config changed: {}", changed.join(", "))
    }
}

/// What a fresh start of `wanted` must reach before its dependents start:
/// exit 0 if one waits for it to complete; up if one waits for it to be
/// healthy or it has a healthcheck of its own; else nothing.
fn gate_after_start(wanted: &DesiredService, awaited: Awaited) -> Gate {
    let has_healthcheck = wanted
        .spec
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.test.first().map(String::as_str) != Some("NONE"));
    if awaited.completed {
        Gate::Completed
    } else if has_healthcheck || awaited.healthy {
        Gate::Up
    } else {
        Gate::Nothing
    }
}

/// Containers of services no compose file of the node names.
fn orphans(
    observed: &[ObservedContainer],
    desired: &BTreeMap<&str, &DesiredService>,
    remove: bool,
) -> Vec<Action> {
    let names: BTreeSet<&str> = observed
        .iter()
        .filter(|c| !desired.contains_key(c.service.as_str()) && c.role == Role::Live)
        .map(|c| c.service.as_str())
        .collect();
    names
        .into_iter()
        .map(|service| {
            if remove {
                Action::new(
                    ActionKind::RemoveOrphan,
                    service,
                    "in no compose file of this node".into(),
                )
            } else {
                Action::new(
                    ActionKind::Keep,
                    service,
                    "in no compose file of this node; --remove-orphans removes it".into(),
                )
            }
        })
        .collect()
}

/// The named volumes of the compose files: created unless on the node.
fn named_volumes(volumes: &Volumes) -> Vec<VolumeAction> {
    volumes
        .named
        .iter()
        .map(|(name, driver)| VolumeAction {
            name: name.clone(),
            driver: driver.clone(),
            create: !volumes.existing.contains(name),
        })
        .collect()
}

/// The recovery of every service a crash left work for.
fn recoveries(observed: &[ObservedContainer], retain: usize) -> Vec<Recovery> {
    let mut by_service: HashMap<&str, Vec<&ObservedContainer>> = HashMap::new();
    for c in observed {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    services_needing_recovery(observed, retain)
        .into_iter()
        .map(|service| {
            let mine = by_service
                .get(service.as_str())
                .cloned()
                .unwrap_or_default();
            let lock = mine.iter().copied().find(|c| c.role == Role::Lock);
            let cause = if lock.is_some() {
                "a run holding its lock did not finish"
            } else {
                "left by an interrupted run"
            };
            let mine: Vec<&ObservedContainer> =
                mine.into_iter().filter(|c| c.role != Role::Lock).collect();
            Recovery {
                steps: recovery_plan(
                    &mine,
                    lock.is_some(),
                    lock.and_then(|l| {
                        l.lock_from.map(|generation| LockedFrom {
                            generation,
                            running: l.lock_from_running,
                            restore_db: l.lock_restore_db,
                        })
                    }),
                    retain,
                ),
                service,
                cause: cause.to_string(),
            }
        })
        .collect()
}

/// How a service is swapped.
#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// Graceful stop timeout of the old container (seconds).
    pub grace: Option<i64>,
    pub start_first: bool,
}

/// The action an upgrade of `wanted` takes on the node as `observed`
/// shows it (a replace, unless the node already runs what is wanted).
pub fn upgrade_action(
    wanted: &DesiredService,
    observed: &[ObservedContainer],
    prefix: &str,
) -> Action {
    let no_volumes = BTreeSet::new();
    service_action(wanted, &Lookups::new(&[], observed, &no_volumes, prefix))
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

/// What a rollback returns a service to when it names where, not which
/// generation: an OpenStack release (the image's `openstack_release`) or
/// an image tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackTo {
    Release(String),
    Tag(String),
}

impl BackTo {
    fn matches(&self, container: &ObservedContainer) -> bool {
        match self {
            BackTo::Release(release) => container.release.as_deref() == Some(release.as_str()),
            BackTo::Tag(tag) => crate::container::split_tag(&container.image).1 == tag.as_str(),
        }
    }
}

impl std::fmt::Display for BackTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackTo::Release(release) => write!(f, "release {release}"),
            BackTo::Tag(tag) => write!(f, "tag {tag}"),
        }
    }
}

/// The kept container a rollback `back_to` swaps in for `live`: the
/// newest kept one that matches; None when `live` matches already (done,
/// or never upgraded: a rerun goes on from there). Refused when no kept
/// container matches.
pub fn rollback_target_back_to<'a>(
    live: &ObservedContainer,
    kept: &'a [ObservedContainer],
    back_to: &BackTo,
) -> Result<Option<&'a ObservedContainer>, String> {
    if back_to.matches(live) {
        return Ok(None);
    }
    kept.iter()
        .filter(|c| back_to.matches(c))
        .max_by_key(|c| c.generation)
        .map(Some)
        .ok_or_else(|| {
            let mut others: Vec<&ObservedContainer> = kept.iter().collect();
            others.sort_by_key(|c| c.generation);
            let others: Vec<String> = others
                .iter()
                .map(|c| format!("{} ({})", c.generation, c.image))
                .collect();
            format!(
                "no kept generation has {back_to} (live: {} ({}); kept: {})",
                live.generation,
                live.image,
                if others.is_empty() {
                    "none".to_string()
                } else {
                    others.join(", ")
                }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compose::{Variables, parse};
    use crate::config::inventory::PrivilegedMode;
    use crate::deploy::spec::ContainerSpec;
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
        // Under a prefix, so that one-letter services make valid names.
        let variables = Variables {
            globals: BTreeMap::from([("CONTAINER_PREFIX".to_string(), "t-".to_string())]),
            ..Variables::default()
        };
        parse(text, Path::new("c.yml"), &variables, &BTreeMap::new()).unwrap()
    }

    /// Desired services of compose `text`, hashes and digests named after
    /// each service (as `running` observes them).
    fn desired_from(text: &str) -> Vec<DesiredService> {
        let file = parse_text(text);
        file.services
            .into_iter()
            .map(|service| DesiredService {
                config_hash: format!("hash-{}", service.name),
                config_parts: Default::default(),
                digest: Some(format!("sha256:{}", service.name)),
                spec: ContainerSpec::default(),
                node_role: "controller".into(),
                privileged: PrivilegedMode::Native,
                job_files: Vec::new(),
                image_volumes: Vec::new(),
                level: 0,
                release: None,
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
            config_parts: None,
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
            mount_points: Vec::new(),
            lock_from: None,
            lock_from_running: false,
            lock_restore_db: None,
            start_first: false,
            guests: None,
            release: None,
        }
    }

    #[test]
    fn fresh_node_creates_everything_in_dependency_levels() {
        let plan = plan(&desired(), &[], &PlanOptions::default()).unwrap();
        assert_eq!(
            plan.text(),
            "level 0:
  create       cache                    (not created)
               generation 1, no gate
  create-data  data                     (not created)
               generation 1, no gate
level 1:
  create       db                       (not created)
               generation 1, gate: up
level 2:
  create       api                      (not created)
               generation 1, no gate
level 3:
  create       worker                   (not created)
               generation 1, no gate
"
        );
        assert_eq!(plan.changes(), 5);
    }

    /// What a recheck comes to, as one line a golden test compares.
    fn recheck_text(recheck: &Recheck) -> String {
        match recheck {
            Recheck::Swap(swap) => format!(
                "swap generation {} -> {} ({}), kept {:?}",
                swap.live.generation,
                swap.generation,
                if swap.options.start_first {
                    "start-first"
                } else {
                    "stop-first"
                },
                swap.kept.iter().map(|k| k.generation).collect::<Vec<_>>()
            ),
            Recheck::Current => "current".to_string(),
            Recheck::Gone => "gone".to_string(),
        }
    }

    #[test]
    fn a_replace_rechecked_under_the_lock_follows_the_node_as_it_is_now() {
        let wanted = desired()
            .into_iter()
            .find(|d| d.service.name == "api")
            .unwrap();
        let changed = DesiredService {
            digest: Some("sha256:api-2".into()),
            ..wanted.clone()
        };
        let live = running("api");
        let action = upgrade_action(&changed, std::slice::from_ref(&live), "t-");
        assert_eq!(action.kind, ActionKind::Replace);
        assert_eq!((action.from, action.generation), (Some(1), Some(2)));
        // Nothing happened meanwhile: the planned swap still holds.
        let still = action.recheck(&changed, std::slice::from_ref(&live), "t-");
        assert_eq!(
            recheck_text(&still),
            "swap generation 1 -> 2 (stop-first), kept []"
        );
        // Another run swapped to generation 2, the old one kept, but with
        // another image: this run swaps again, to 3.
        let kept = ObservedContainer {
            role: Role::Kept(1),
            ..running("api")
        };
        let other = ObservedContainer {
            generation: 2,
            digest: "sha256:someone-else".into(),
            ..running("api")
        };
        let now = [kept.clone(), other];
        assert_eq!(
            recheck_text(&action.recheck(&changed, &now, "t-")),
            "swap generation 2 -> 3 (stop-first), kept [1]"
        );
        // Another run made it what this one wants: nothing to do.
        let done = ObservedContainer {
            generation: 2,
            digest: "sha256:api-2".into(),
            ..running("api")
        };
        let now = [kept, done.clone()];
        assert!(is_current(&changed, &done));
        assert_eq!(
            recheck_text(&action.recheck(&changed, &now, "t-")),
            "current"
        );
        // The live container went away (removed by hand): an error upstream.
        assert_eq!(recheck_text(&action.recheck(&changed, &[], "t-")), "gone");
        // Stopped, not changed: a start, not a swap; a recheck finds
        // nothing to swap.
        let stopped = ObservedContainer {
            state: State::Exited,
            ..running("api")
        };
        assert_eq!(
            recheck_text(&action.recheck(&wanted, &[stopped], "t-")),
            "current"
        );
    }

    #[test]
    fn the_current_image_is_judged_by_its_id_only_when_the_id_is_known() {
        let wanted = desired()
            .into_iter()
            .find(|d| d.service.name == "api")
            .unwrap();
        let live = running("api");
        assert!(is_current(&wanted, &live));
        let unknown = DesiredService {
            digest: None,
            ..wanted.clone()
        };
        assert!(is_current(&unknown, &live), "a dry run's missing image");
        let reconfigured = DesiredService {
            config_hash: "hash-other".into(),
            ..wanted
        };
        assert!(!is_current(&reconfigured, &live));
    }

    #[test]
    fn each_action_names_what_it_waits_for() {
        let plan = plan(&desired(), &[], &PlanOptions::default()).unwrap();
        let after: BTreeMap<&str, Vec<&str>> = plan
            .levels
            .iter()
            .flatten()
            .map(|a| {
                (
                    a.service.as_str(),
                    a.after.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(after["api"], ["cache", "db"]);
        assert_eq!(after["db"], ["data"]);
        assert_eq!(after["worker"], ["api"]);
        assert!(after["cache"].is_empty());
    }

    /// A live, running container for each service of `FILE`.
    fn all_running() -> Vec<ObservedContainer> {
        ["data", "db", "cache", "api", "worker"]
            .into_iter()
            .map(running)
            .collect()
    }

    #[test]
    fn converged_node_changes_nothing() {
        let observed = all_running();
        let plan = plan(&desired(), &observed, &PlanOptions::default()).unwrap();
        assert_eq!(plan.changes(), 0, "{}", plan.text());
    }

    #[test]
    fn each_difference_has_its_action_and_cause() {
        let mut observed = all_running();
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
        kept.state = State::Exited;
        observed.push(kept);
        let options = PlanOptions {
            retain: 2,
            ..PlanOptions::default()
        };
        let plan = plan(&desired(), &observed, &options).unwrap();
        assert_eq!(
            plan.text(),
            "recover:
  recover      cache                    (left by an interrupted run)
               restore the restart policy no
               start generation 1
               gate generation 1
level 0:
  start        cache                    (exited, not running)
  keep         data                     (data container: definition changed, kept as is (its volumes hold data))
level 1:
  replace      db                       (image changed)
               generation 1 -> 2, stop-first, gate: up
level 2:
  replace      api                      (config changed)
               generation 1 -> 2, stop-first, gate: up
level 3:
  keep         worker                   (up to date)
orphans:
  keep         legacy                   (in no compose file of this node; --remove-orphans removes it)
"
        );
        // 3 actions and the 3 recovery steps of the stopped cache.
        assert_eq!(plan.changes(), 6);
        let removing = super::plan(
            &desired(),
            &observed,
            &PlanOptions {
                remove_orphans: true,
                retain: 2,
                ..PlanOptions::default()
            },
        )
        .unwrap();
        assert_eq!(removing.orphans[0].kind, ActionKind::RemoveOrphan);
        assert_eq!(removing.changes(), 7);
    }

    #[test]
    fn a_config_change_names_its_parts_where_the_live_container_kept_them() {
        let parts = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut wanted = desired();
        let api = wanted.iter_mut().find(|d| d.service.name == "api").unwrap();
        api.config_parts = parts(&[
            ("passwords.yml", "k"),
            ("environment A", "2"),
            ("file /a", "f"),
        ]);
        let mut observed = all_running();
        observed[3].config_hash = "old".into();
        observed[3].config_parts = Some(parts(&[
            ("passwords.yml", "k"),
            ("environment A", "1"),
            ("file /a", "f"),
        ]));
        let cause = |observed: &[ObservedContainer]| {
            let plan = plan(&wanted, observed, &PlanOptions::default()).unwrap();
            plan.levels
                .iter()
                .flatten()
                .find(|a| a.service == "api")
                .unwrap()
                .cause
                .clone()
        };
        assert_eq!(cause(&observed), "config changed: environment A");
        // Made before kolla kept parts: the cause as it was.
        observed[3].config_parts = None;
        assert_eq!(cause(&observed), "config changed");
    }

    #[test]
    fn a_replace_for_a_new_image_names_both_images_and_one_for_config_none() {
        let mut observed = all_running();
        observed[1].digest = "sha256:older".into(); // db: rebuilt image
        observed[3].config_hash = "old".into(); // api: config changed
        let plan = plan(&desired(), &observed, &PlanOptions::default()).unwrap();
        let image_of = |service: &str| {
            plan.levels
                .iter()
                .flatten()
                .find(|a| a.service == service)
                .map(|a| a.image.clone())
        };
        assert_eq!(
            image_of("db"),
            Some(Some(ImageChange {
                from: ImageRef {
                    reference: "db".into(),
                    id: Some("sha256:older".into()),
                },
                to: ImageRef {
                    reference: "db".into(),
                    id: Some("sha256:db".into()),
                },
            }))
        );
        assert_eq!(image_of("api"), Some(None));
        assert_eq!(image_of("worker"), Some(None));
    }

    fn only(names: &[&str]) -> PlanOptions {
        PlanOptions {
            only: Some(names.iter().map(|n| n.to_string()).collect()),
            ..PlanOptions::default()
        }
    }

    #[test]
    fn a_deploy_of_named_services_plans_them_alone() {
        let mut observed = all_running();
        observed[1].config_hash = "old".into(); // db: would be replaced
        observed[3].config_hash = "old".into(); // api: replaced
        observed[4].config_hash = "old".into(); // worker: would be replaced
        let mut orphan = running("legacy");
        orphan.generation = 4;
        observed.push(orphan);
        let plan = plan(&desired(), &observed, &only(&["api"])).unwrap();
        assert_eq!(
            plan.text(),
            "level 0:
  replace      api                      (config changed)
               generation 1 -> 2, stop-first, gate: up
"
        );
        assert_eq!(plan.changes(), 1);
        // Two of them, each at its own level; what neither names stays.
        let plan = super::plan(&desired(), &observed, &only(&["worker", "db"])).unwrap();
        let named: Vec<&str> = plan
            .levels
            .iter()
            .flatten()
            .map(|a| a.service.as_str())
            .collect();
        assert_eq!(named, ["db", "worker"]);
        assert_eq!(plan.levels.len(), 2, "{}", plan.text());
    }

    #[test]
    fn what_a_named_service_needs_must_be_up_as_its_condition_says() {
        let all: Vec<_> = ["data", "db", "cache", "api", "worker"]
            .into_iter()
            .map(running)
            .collect();
        let refused = |observed: &[ObservedContainer], names: &[&str]| {
            super::plan(&desired(), observed, &only(names))
                .map(|p| p.text())
                .unwrap_err()
                .to_string()
        };
        // api needs db healthy and cache started: both run.
        assert!(super::plan(&desired(), &all, &only(&["api"])).is_ok());
        let mut stopped = all.clone();
        stopped[1].state = State::Exited;
        assert_eq!(
            refused(&stopped, &["api"]),
            "service api depends on db, which this deploy leaves as it is, and db is exited, not running\n  hint: name it too (`kolla deploy db api`), or start it (`kolla start`)"
        );
        // Named too: then it is planned (started), not required.
        assert!(super::plan(&desired(), &stopped, &only(&["api", "db"])).is_ok());
        let mut sick = all.clone();
        sick[1].health = Some(Health::Unhealthy);
        assert!(refused(&sick, &["api"]).contains("and db is unhealthy"));
        // A check still starting counts as up (kolla's own gate passed).
        sick[1].health = Some(Health::Starting);
        assert!(super::plan(&desired(), &sick, &only(&["api"])).is_ok());
        // Started is enough for cache; an unhealthy one still runs.
        let mut cache = all.clone();
        cache[2].health = Some(Health::Unhealthy);
        assert!(super::plan(&desired(), &cache, &only(&["api"])).is_ok());
        // Not deployed: nothing to start; deploy it too.
        let without_api: Vec<_> = all.iter().filter(|c| c.service != "api").cloned().collect();
        let text = refused(&without_api, &["worker"]);
        assert!(
            text.contains("and api is not deployed on this node\n  hint: name it too (`kolla deploy api worker`)")
                && !text.contains("kolla start"),
            "{text}"
        );
        // volumes_from: the data container only has to exist.
        assert!(super::plan(&desired(), &all, &only(&["db"])).is_ok());
        let without_data: Vec<_> = all
            .iter()
            .filter(|c| c.service != "data")
            .cloned()
            .collect();
        assert!(refused(&without_data, &["db"]).contains("db depends on data"));
    }

    #[test]
    fn a_named_service_after_a_one_shot_needs_it_completed() {
        let text = "services:\n  job:\n    image: j\n  app:\n    image: a\n    depends_on: {job: {condition: service_completed_successfully}}\n  net:\n    image: n\n    network_mode: service:app\n";
        let wanted = desired_from(text);
        let mut job = running("job");
        job.state = State::Exited;
        job.exit_code = Some(0);
        let observed = vec![job.clone(), running("app")];
        let options = only(&["app"]);
        assert!(plan(&wanted, &observed, &options).is_ok());
        job.exit_code = Some(3);
        let err = plan(&wanted, &[job.clone(), running("app")], &options).unwrap_err();
        assert!(
            err.to_string().contains("and job exited with code 3"),
            "{err}"
        );
        job.state = State::Running;
        let err = plan(&wanted, &[job, running("app")], &options).unwrap_err();
        assert!(
            err.to_string()
                .contains("job has not completed (it is running)"),
            "{err}"
        );
        // network_mode service: joins a running container.
        let mut app = running("app");
        app.state = State::Exited;
        let err = plan(&wanted, &[app], &only(&["net"])).unwrap_err();
        assert!(err.to_string().contains("net depends on app"), "{err}");
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
        let observed = all_running();
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
        // The compose reader refuses a cycle within a file; the plan still
        // names one it is given.
        let text = "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [c]\n  c:\n    image: z\n";
        let mut file = parse_text(text);
        let a_dependency = file.services[0]
            .depends_on
            .values()
            .next()
            .copied()
            .unwrap();
        file.services[2].depends_on.insert("a".into(), a_dependency);
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

    /// How each service of a chain needs the next.
    #[derive(Clone, Copy)]
    enum Link {
        DependsOn,
        VolumesFrom,
        NetworkOf,
    }

    fn chain_name(i: usize) -> String {
        format!("s{i:05}")
    }

    /// `n` services, each needing the next by name: the first in name
    /// order is the deepest, the worst order for a walk. Each holds
    /// /data; through volumes_from the next one's covers it.
    fn chain(n: usize, link: Link) -> Vec<DesiredService> {
        let template = desired_from("services:\n  x:\n    image: i\n").remove(0);
        (0..n)
            .map(|i| {
                let name = chain_name(i);
                let mut d = template.clone();
                d.service.name = name.clone();
                d.config_hash = format!("hash-{name}");
                d.digest = Some(format!("sha256:{name}"));
                d.spec.name = name.clone();
                d.spec.anonymous_volumes = vec!["/data".into()];
                if i + 1 < n {
                    let next = chain_name(i + 1);
                    match link {
                        Link::DependsOn => {
                            d.service.depends_on.insert(next, Condition::Started);
                        }
                        Link::VolumesFrom => {
                            d.service.volumes_from = vec![next.clone()];
                            d.spec.volumes_from = vec![next];
                        }
                        Link::NetworkOf => {
                            d.service.network_mode = Some(format!("service:{next}"));
                        }
                    }
                }
                d
            })
            .collect()
    }

    #[test]
    fn chains_of_twenty_thousand_services_plan_in_dependency_order() {
        let n = 20_000;
        for link in [Link::DependsOn, Link::VolumesFrom, Link::NetworkOf] {
            let wanted = chain(n, link);
            let fresh = plan(&wanted, &[], &PlanOptions::default()).unwrap();
            assert_eq!(fresh.levels.len(), n);
            for (level, actions) in fresh.levels.iter().enumerate() {
                let names: Vec<&str> = actions.iter().map(|a| a.service.as_str()).collect();
                assert_eq!(names, [chain_name(n - 1 - level)], "level {level}");
            }
            // Only the end of a volumes_from chain gets a volume of its own.
            let with_volume = fresh.levels.iter().flatten();
            let with_volume = with_volume.filter(|a| !a.volumes.is_empty()).count();
            match link {
                Link::VolumesFrom => assert_eq!(with_volume, 1),
                _ => assert_eq!(with_volume, n),
            }
            let observed: Vec<_> = wanted.iter().map(|d| running(&d.service.name)).collect();
            let converged = plan(&wanted, &observed, &PlanOptions::default()).unwrap();
            assert_eq!(converged.changes(), 0);
            assert_eq!(converged.levels.len(), n);
        }
    }

    #[test]
    fn a_cycle_at_the_end_of_a_long_chain_is_named() {
        let mut wanted = chain(5_000, Link::DependsOn);
        let last = chain_name(4_999);
        wanted[4_999]
            .service
            .depends_on
            .insert(chain_name(4_998), Condition::Started);
        let services: Vec<&ServiceSpec> = wanted.iter().map(|d| &d.service).collect();
        let Err(PlanError::Cycle(cycle)) = levels(&services) else {
            panic!("a cycle is an error");
        };
        assert_eq!(cycle, [chain_name(4_998), last.clone(), chain_name(4_998)]);
        // The walk tries names in order, so the same cycle every time.
        let again = levels(&services).unwrap_err();
        assert_eq!(again, PlanError::Cycle(cycle));
    }

    #[test]
    fn volumes_are_planned_with_their_causes() {
        let mut wanted = desired_from("services:\n  db:\n    image: db\n");
        wanted[0].spec.name = "db".into();
        wanted[0].spec.anonymous_volumes = vec!["/var/lib/db/".into()];
        wanted[0].image_volumes = vec!["/var/log/db".into()];
        wanted[0].config_hash = "new".into();
        let mut live = running("db");
        live.generation = 4;
        live.volumes = vec![("old-db-volume".into(), "/var/lib/db".into())];
        let options = PlanOptions {
            retain: 2,
            prefix: "k_".into(),
            volumes: Volumes {
                named: vec![("k_shared".into(), None), ("k_logs".into(), None)],
                existing: BTreeSet::from(["k_logs".to_string()]),
            },
            ..PlanOptions::default()
        };
        let text = plan(&wanted, std::slice::from_ref(&live), &options)
            .unwrap()
            .text();
        let log_volume = crate::deploy::volumes::volume_name("k_", "db", "/var/log/db");
        assert_eq!(
            text,
            format!(
                "volumes:
  create       k_shared                 (named in a compose file, not on the node)
  keep         k_logs                   (on the node)
level 0:
  replace      db                       (config changed)
               generation 4 -> 5, stop-first, gate: up
               volume old-db-volume at /var/lib/db: carried from generation 4
               volume {log_volume} at /var/log/db: created
"
            )
        );
        // A first deploy: every anonymous path gets kolla's own volume.
        let fresh = plan(&wanted, &[], &options).unwrap().text();
        let db_volume = crate::deploy::volumes::volume_name("k_", "db", "/var/lib/db");
        assert!(
            fresh.contains(&format!("volume {db_volume} at /var/lib/db: created")),
            "{fresh}"
        );
    }

    #[test]
    fn a_rollback_back_to_a_release_or_tag_picks_the_newest_match_or_nothing() {
        let container = |generation: u64, image: &str, release: Option<&str>, role: Role| {
            let mut c = ObservedContainer::running("glance-api", role);
            c.generation = generation;
            c.image = image.to_string();
            c.release = release.map(str::to_string);
            c
        };
        let live = container(4, "ns/glance-api:epoxy", Some("epoxy"), Role::Live);
        let kept = vec![
            container(1, "ns/glance-api:zed", Some("zed"), Role::Kept(1)),
            container(2, "ns/glance-api:zed", Some("zed"), Role::Kept(2)),
            container(3, "ns/glance-api:epoxy", Some("epoxy"), Role::Kept(3)),
        ];
        let zed = BackTo::Release("zed".into());
        let target = rollback_target_back_to(&live, &kept, &zed).unwrap();
        assert_eq!(target.map(|c| c.generation), Some(2));
        let by_tag = rollback_target_back_to(&live, &kept, &BackTo::Tag("zed".into())).unwrap();
        assert_eq!(by_tag.map(|c| c.generation), Some(2));
        // Already there: nothing to do.
        let back = container(2, "ns/glance-api:zed", Some("zed"), Role::Live);
        assert_eq!(rollback_target_back_to(&back, &kept, &zed).unwrap(), None);
        // No kept generation of that release: refused, naming what is kept.
        let err =
            rollback_target_back_to(&live, &kept, &BackTo::Release("yoga".into())).unwrap_err();
        assert!(err.contains("no kept generation has release yoga"), "{err}");
        assert!(
            err.contains("1 (ns/glance-api:zed), 2 (ns/glance-api:zed)"),
            "{err}"
        );
        let err = rollback_target_back_to(&live, &[], &zed).unwrap_err();
        assert!(err.contains("kept: none"), "{err}");
        // An image without the label matches no release.
        let unlabelled = vec![container(1, "ns/glance-api:zed", None, Role::Kept(1))];
        assert!(rollback_target_back_to(&live, &unlabelled, &zed).is_err());
    }
}
