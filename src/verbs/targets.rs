//! The nodes a verb works on, resolved from files before any engine is
//! touched: the inventory's selected nodes, each with its desired state
//! from its roles' compose files (profiles applied, dependency levels
//! checked), and the waves a deploy takes them in. Also what every node
//! verb does first: connect to the node's engine (after asking every
//! node's engine at once whether it answers, when there are more nodes
//! than `--forks`), make the node's `NodeAt` for the node pipeline, and
//! observe its containers for the verbs that only look.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;

use crate::cli::{GateArgs, HealthArgs, LockWaitArgs, NodeArgs};
use crate::config::compose::{self, Variables};
use crate::config::inventory::Node;
use crate::config::{ConfigError, Inventory, passwords};
use crate::credentials::Store;
use crate::deploy::context::{ApplyOptions, NodeRun};
use crate::deploy::desired::{self, Desired, DesiredError};
use crate::deploy::labels::ObservedContainer;
use crate::deploy::node_order::{self, RoleAfter};
use crate::deploy::observe;
use crate::deploy::pipeline::NodeAt;
use crate::deploy::plan;
use crate::deploy::supply::CopySource;
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

/// How long swaps, gates and lock waits take, and how many kept
/// generations stay: from the command line, `--retain` over globals.yml's
/// `retain`.
pub fn apply_options(gate: &GateArgs, settings: &Settings) -> ApplyOptions {
    ApplyOptions {
        retain: gate.retain.unwrap_or(settings.globals.retain),
        max_dark: gate.max_dark,
        stop_guests: gate.stop_guests,
        ..start_options(&gate.health, &gate.lock, settings)
    }
}

/// How long gates and lock waits take, for the verbs that start
/// containers without swapping them (`start`, `restart`). The recovery
/// they run first prunes kept generations to globals.yml's `retain`.
pub fn start_options(
    health: &HealthArgs,
    lock: &LockWaitArgs,
    settings: &Settings,
) -> ApplyOptions {
    ApplyOptions {
        health_timeout: Duration::from_secs(health.health_timeout),
        monitor_window: health.monitor_window,
        lock_wait: lock.lock_wait,
        retain: settings.globals.retain,
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

/// `node` as the node pipeline works on it (`deploy::pipeline`), over
/// `engine`.
pub fn node_at<'a>(
    engine: &'a Engine,
    node: &'a Node,
    settings: &'a Settings,
    (options, credentials): (&'a ApplyOptions, &'a Store),
) -> NodeAt<'a> {
    NodeAt {
        run: node_run(engine, &node.name, settings, options),
        node,
        globals: &settings.globals,
        copy_from: image_source(settings, node),
        credentials,
    }
}

/// The engine of `node`, with the run's deadlines.
pub async fn connect(settings: &Settings, node: &Node) -> anyhow::Result<Engine> {
    Engine::connect_within(&settings.endpoint(node), settings.deadlines)
        .await
        .with_context(|| format!("node {}", node.name))
}

/// Engines asked at once whether they answer: sockets and memory stay
/// small, and 1,000 silent engines take two deadlines.
const ASKED_AT_ONCE: usize = 512;

/// The nodes whose engine did not answer when every engine was asked at
/// once, with why; each is handed out once, as the node's `connect`.
#[derive(Default)]
pub struct Asked {
    failed: Mutex<HashMap<String, anyhow::Error>>,
}

impl Asked {
    /// The engine of `node`: what asking it found if it failed then, else
    /// a connection.
    pub async fn connect(&self, settings: &Settings, node: &Node) -> anyhow::Result<Engine> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&node.name);
        match failed {
            Some(error) => Err(error),
            None => connect(settings, node).await,
        }
    }
}

/// Ask the engine of each of `nodes` whether it answers, all at once (up
/// to `ASKED_AT_ONCE`), when there are more of them than `--forks` takes
/// at once. A node whose engine does not answer then fails as soon as its
/// turn comes instead of holding a fork for a whole deadline: 1,000 silent
/// engines at 16 forks would be 63 deadlines one after another. Nodes
/// reached over ssh are not asked (each would start an ssh of its own;
/// ssh's own timeouts bound them), and the answers are not kept (healthy
/// nodes are connected again, for the little that costs, so that no more
/// than `--forks` connections stay open).
pub async fn ask_engines<'a>(
    settings: &Settings,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> Asked {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let asked = Asked::default();
    if nodes.len() <= settings.forks {
        return asked;
    }
    let failed: Vec<(String, anyhow::Error)> =
        futures_util::stream::iter(nodes.iter().copied().filter(|n| !over_ssh(settings, n)))
            .map(|node| async move {
                let answer = connect(settings, node).await;
                answer.err().map(|e| (node.name.clone(), e))
            })
            .buffer_unordered(ASKED_AT_ONCE)
            .filter_map(|failed| async move { failed })
            .collect()
            .await;
    if !failed.is_empty() {
        say(format!(
            "{} of {} nodes' engines did not answer or could not be reached (each is named with its error)",
            failed.len(),
            nodes.len()
        ));
    }
    *asked.failed.lock().unwrap_or_else(|e| e.into_inner()) = failed.into_iter().collect();
    asked
}

fn over_ssh(settings: &Settings, node: &Node) -> bool {
    settings.endpoint(node).url.starts_with("ssh://")
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

/// The inventory `args` names, its selected nodes' TLS files checked (a
/// missing one is bad input, found before any engine is reached).
pub fn load_nodes(args: &NodeArgs) -> anyhow::Result<Inventory> {
    let inventory = Inventory::load(args.inventory.as_deref())?;
    inventory.check_tls_files(&inventory.select(&args.node)?)?;
    Ok(inventory)
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
    let passwords = passwords::read(&settings.config_dir.join(passwords::PASSWORDS_FILE))?;
    let dotenv = compose::dotenv_in(&args.compose_dir)?;
    let profiles = settings.profiles(&args.profiles, &dotenv);
    refuse_release_profiles(&profiles, &args.compose_dir)?;
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
        let desired = desired::desired_of(node, &files, globals, &passwords, &profiles)?;
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

/// A release's profile follows the release deployed: activated by hand it
/// would start one release's services in another's cloud (Zed's Linux
/// bridge agent beside Epoxy's Open vSwitch).
fn refuse_release_profiles(
    profiles: &[String],
    compose_dir: &std::path::Path,
) -> Result<(), ConfigError> {
    let release = profiles.iter().find_map(|p| {
        crate::config::release::Release::ALL
            .into_iter()
            .find(|r| r.name() == p.as_str())
    });
    match release {
        None => Ok(()),
        Some(release) => Err(ConfigError::Invalid {
            path: compose_dir.to_path_buf(),
            message: format!(
                "{release} is a release, not a profile to activate: its services come with \
                 `--release {release}` (or `openstack_release: {release}` in globals.yml)"
            ),
        }),
    }
}
