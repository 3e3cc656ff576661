//! The nodes a verb works on, resolved from files before any engine is
//! touched: the inventory's selected nodes, each with its desired state
//! from its roles' compose files (profiles applied, dependency levels
//! checked). Also the two things every node verb does first: connect to
//! the node's engine, and make the node's `NodeRun`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::{GateArgs, NodeArgs};
use crate::config::compose::{self, Variables};
use crate::config::inventory::{Node, PrivilegedMode};
use crate::config::{ConfigError, Inventory, passwords};
use crate::deploy::context::{ApplyOptions, NodeRun};
use crate::deploy::desired::{self, Desired, DesiredError};
use crate::deploy::labels::ObservedContainer;
use crate::deploy::node_order::{self, RoleAfter};
use crate::deploy::observe::{self, CopySource};
use crate::deploy::{plan, privileged};
use crate::engine::Engine;
use crate::progress::say;
use crate::settings::Settings;

/// A node with everything its verbs need, resolved from files.
pub struct Target<'a> {
    pub node: &'a Node,
    pub desired: Desired,
    /// Its roles' `x-kolla.after`, by role.
    pub roles_after: BTreeMap<String, RoleAfter>,
}

impl super::NodeName for Target<'_> {
    fn node_name(&self) -> &str {
        &self.node.name
    }
}

impl super::NodeName for &Target<'_> {
    fn node_name(&self) -> &str {
        &self.node.name
    }
}

/// How long swaps and gates wait, from the command line.
pub fn apply_options(gate: &GateArgs) -> ApplyOptions {
    ApplyOptions {
        health_timeout: Duration::from_secs(gate.health_timeout),
        monitor_window: gate.monitor_window,
        retain: gate.retain,
        max_dark: gate.max_dark,
        ..ApplyOptions::default()
    }
}

/// The deployer's handle on one node.
pub fn node_run<'a>(
    engine: &'a Engine,
    node: &'a str,
    settings: &'a Settings,
    options: &'a ApplyOptions,
) -> NodeRun<'a> {
    NodeRun {
        engine,
        node,
        placement_prefix: &settings.globals.container_prefix,
        project: &settings.globals.project,
        options,
        steps: crate::progress::steps(),
        state_dir: Some(&settings.state_dir),
        use_helper: settings.globals.swap_helper,
        user: &settings.environment.user,
    }
}

/// The engine of `node`.
pub async fn connect(settings: &Settings, node: &Node) -> anyhow::Result<Engine> {
    Engine::connect(&settings.endpoint(node))
        .await
        .with_context(|| format!("node {}", node.name))
}

/// Where a node gets images it cannot pull: the operator's own engine
/// (where `kolla build` leaves them), unless that is the node's engine.
/// Nothing connects to it until a copy is needed.
pub fn image_source(settings: &Settings, node: &Node) -> CopySource {
    let local = &settings.environment.local_endpoint;
    CopySource::new((settings.endpoint(node) != *local).then(|| local.clone()))
}

/// The deployment's containers on `node` now.
pub async fn observe(
    settings: &Settings,
    engine: &Engine,
    node: &str,
) -> anyhow::Result<Vec<ObservedContainer>> {
    observe::observe(engine, &settings.globals)
        .await
        .with_context(|| format!("node {node}"))
}

/// The selected nodes of the inventory `args` names.
pub fn load_nodes(args: &NodeArgs) -> anyhow::Result<Inventory> {
    Ok(Inventory::load(args.inventory.as_deref())?)
}

/// Selected nodes and each node's desired state, from files.
pub fn resolve<'a>(
    inventory: &'a Inventory,
    settings: &Settings,
    args: &NodeArgs,
) -> anyhow::Result<Vec<Target<'a>>> {
    let nodes = inventory.select(&args.node)?;
    let globals = &settings.globals;
    let variables = Variables {
        environment: settings.environment.variables.clone(),
        globals: globals.compose_variables(),
    };
    let passwords = passwords::load(&settings.config_dir.join(passwords::PASSWORDS_FILE))?;
    let dotenv = compose::dotenv_in(&args.compose_dir)?;
    let profiles = settings.profiles(&args.profiles, &dotenv);
    let mut loaded = Vec::new();
    for node in nodes {
        loaded.push((
            node,
            desired::load_files(node, &args.compose_dir, &variables)?,
        ));
    }
    let known: BTreeSet<&String> = loaded
        .iter()
        .flat_map(|(_, files)| files.iter())
        .flat_map(|(_, file)| file.services.iter())
        .flat_map(|s| s.profiles.iter())
        .collect();
    if let Some(unknown) = profiles.iter().find(|p| !known.contains(p)) {
        let known: Vec<&str> = known.iter().map(|p| p.as_str()).collect();
        return Err(ConfigError::Invalid {
            path: args.compose_dir.clone(),
            message: format!(
                "no service of the selected nodes has the profile {unknown:?}; the profiles there: {}",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        }
        .into());
    }
    let mut targets = Vec::new();
    for (node, files) in loaded {
        let desired = desired::desired(node, &files, globals, &passwords, &profiles)?;
        let roles_after = files
            .iter()
            .map(|(role, file)| {
                let after = RoleAfter {
                    file: file.path.clone(),
                    after: file.after.clone(),
                };
                (role.clone(), after)
            })
            .collect();
        // Levels are checked here too, so a cycle is reported before any
        // engine is touched.
        let services: Vec<_> = desired.services.values().map(|d| &d.service).collect();
        plan::levels(&services).map_err(DesiredError::from)?;
        targets.push(Target {
            node,
            desired,
            roles_after,
        });
    }
    Ok(targets)
}

/// The waves `kolla deploy` takes `targets` in (indexes; see
/// `node_order`): roles that come after others wait for those roles'
/// nodes.
pub fn deploy_waves(
    targets: &[Target],
    compose_dir: &Path,
) -> Result<Vec<Vec<usize>>, ConfigError> {
    let mut roles = BTreeMap::new();
    for target in targets {
        for (role, after) in &target.roles_after {
            roles.entry(role.clone()).or_insert_with(|| after.clone());
        }
    }
    let nodes: Vec<&[String]> = targets.iter().map(|t| t.node.roles.as_slice()).collect();
    let has_file = |role: &str| desired::compose_path(compose_dir, role).is_file();
    node_order::waves(&nodes, &roles, &has_file)
}

/// Settle the node's `privileged: auto` and say what a probe found.
pub async fn settle_privileged(
    engine: &Engine,
    node: &Node,
    desired: &mut Desired,
    observed: &[ObservedContainer],
    settings: &Settings,
) -> anyhow::Result<()> {
    let settled =
        privileged::settle_privileged(engine, node, desired, observed, &settings.globals).await?;
    if let Some(mode) = settled {
        let how = match mode {
            PrivilegedMode::Explicit => {
                "the engine refuses --privileged: privileged services get every capability it grants, AppArmor and seccomp unconfined and all devices"
            }
            _ => "the engine starts privileged containers",
        };
        say(format!("node {}: privileged: auto: {how}", node.name));
    }
    Ok(())
}
