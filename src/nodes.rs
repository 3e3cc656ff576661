//! The verbs that act on nodes: deploy, ps, pull, stop, destroy,
//! prechecks, genpwd. Each resolves the inventory and compose files first,
//! so bad input fails before any engine is touched, then works on the
//! selected nodes in parallel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::future::join_all;
use serde::Serialize;

use crate::cli::{DeployArgs, DestroyArgs, GateArgs, GenpwdArgs, NodeArgs, OutputFormat, PsArgs};
use crate::config::compose::Variables;
use crate::config::inventory::{Node, PrivilegedMode};
use crate::config::{Globals, Inventory, passwords};
use crate::deploy::apply::{ApplyOptions, DeployError, NodeRun};
use crate::deploy::labels::{self, Role, State};
use crate::deploy::node::{self, Desired, DesiredError};
use crate::deploy::plan::{self, PlanOptions};
use crate::engine::{Endpoint, Engine, TlsFiles};
use crate::run::Outcome;

pub(crate) fn apply_options(gate: &GateArgs) -> ApplyOptions {
    ApplyOptions {
        health_timeout: Duration::from_secs(gate.health_timeout),
        monitor_window: Duration::from_secs_f64(gate.monitor_window.max(0.0)),
        retain: gate.retain,
        ..ApplyOptions::default()
    }
}

/// A node with everything its verbs need, resolved from files.
pub(crate) struct Target<'a> {
    pub node: &'a Node,
    pub desired: Desired,
}

/// The deployer's handle on one node for the verbs: its engine, the
/// deployment's names, how to wait, where the history goes.
pub(crate) fn node_run<'a>(
    engine: &'a Engine,
    node: &'a str,
    cx: &'a Context,
    options: &'a ApplyOptions,
) -> NodeRun<'a> {
    NodeRun {
        engine,
        node,
        placement_prefix: &cx.globals.container_prefix,
        project: &cx.globals.project,
        options,
        say: &say,
        state_dir: Some(&cx.state_dir),
        use_helper: cx.globals.swap_helper,
    }
}

/// What every node verb starts from: validated globals and the folders.
pub struct Context {
    pub globals: Globals,
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
}

/// The engine endpoint of a node.
fn endpoint(node: &Node) -> Endpoint {
    match &node.docker {
        None => Endpoint::from_env(),
        Some(url) => Endpoint {
            url: url.clone(),
            tls: node.tls.as_ref().map(|t| TlsFiles {
                ca: t.ca.clone(),
                cert: t.cert.clone(),
                key: t.key.clone(),
            }),
        },
    }
}

pub(crate) async fn connect(node: &Node) -> anyhow::Result<Engine> {
    Engine::connect(&endpoint(node))
        .await
        .with_context(|| format!("node {}", node.name))
}

/// Inventory, selected nodes, and each node's desired state, from files.
pub(crate) fn resolve<'a>(
    inventory: &'a Inventory,
    globals: &Globals,
    config_dir: &Path,
    args: &NodeArgs,
) -> anyhow::Result<Vec<Target<'a>>> {
    let nodes = inventory.select(&args.node)?;
    let variables = Variables {
        environment: std::env::vars().collect(),
        globals: globals.compose_variables(),
    };
    let passwords = passwords::load(&config_dir.join(passwords::PASSWORDS_FILE))?;
    // Profiles: --profile, else COMPOSE_PROFILES from the environment or
    // the compose folder's .env, as compose does.
    let mut profiles = args.profiles.clone();
    if profiles.is_empty() {
        let dotenv = crate::config::compose::dotenv_in(&args.compose_dir)?;
        if let Some(list) = variables
            .environment
            .get("COMPOSE_PROFILES")
            .or_else(|| dotenv.get("COMPOSE_PROFILES"))
        {
            profiles.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
        }
    }
    let mut loaded = Vec::new();
    for node in nodes {
        loaded.push((node, node::load_files(node, &args.compose_dir, &variables)?));
    }
    let known: std::collections::BTreeSet<&String> = loaded
        .iter()
        .flat_map(|(_, files)| files.iter())
        .flat_map(|(_, file)| file.services.iter())
        .flat_map(|s| s.profiles.iter())
        .collect();
    if let Some(unknown) = profiles.iter().find(|p| !known.contains(p)) {
        let known: Vec<&str> = known.iter().map(|p| p.as_str()).collect();
        return Err(crate::config::ConfigError::Invalid {
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
        let desired = node::desired(node, &files, globals, &passwords, &profiles)?;
        // Levels are checked here too, so a cycle is reported before any
        // engine is touched.
        let services: Vec<_> = desired.services.values().map(|d| &d.service).collect();
        plan::levels(&services).map_err(DesiredError::from)?;
        targets.push(Target { node, desired });
    }
    Ok(targets)
}

/// Settle the node's `privileged: auto` (see `node::settle_privileged`) and
/// say what a probe found.
pub(crate) async fn settle_privileged(
    engine: &Engine,
    node: &Node,
    desired: &mut Desired,
    observed: &[crate::deploy::labels::ObservedContainer],
    globals: &Globals,
) -> anyhow::Result<()> {
    if let Some(mode) = node::settle_privileged(engine, node, desired, observed, globals).await? {
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

/// One step for the operator, on stderr, with the seconds since the
/// command started, so every step shows its time in a terminal and in CI.
/// Several typed errors as the verbs report them.
fn all_errors<E: Into<anyhow::Error>>(errors: Vec<E>) -> Vec<anyhow::Error> {
    errors.into_iter().map(Into::into).collect()
}

pub(crate) fn say(line: String) {
    eprintln!("[{:>7.3}s] {line}", started().elapsed().as_secs_f64());
}

/// When the command started (the first call fixes it; `run` calls it first).
pub fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

pub async fn deploy(cx: &Context, args: DeployArgs) -> anyhow::Result<Outcome> {
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    let targets = resolve(&inventory, &cx.globals, &cx.config_dir, &args.nodes)?;
    let options = apply_options(&args.gate);
    let runs = targets
        .into_iter()
        .map(|target| deploy_node(target, cx, &options, &args));
    let mut failures = Vec::new();
    for (name, result) in join_all(runs).await {
        match result {
            Ok(summary) => println!("node {name}: {summary}"),
            Err(errors) => {
                for error in &errors {
                    eprintln!("error: {}", crate::run::describe_error(error));
                }
                println!("node {name}: FAILED");
                failures.extend(errors);
            }
        }
    }
    Ok(Outcome::of_failures(&failures))
}

async fn deploy_node(
    mut target: Target<'_>,
    cx: &Context,
    options: &ApplyOptions,
    args: &DeployArgs,
) -> (String, Result<String, Vec<anyhow::Error>>) {
    let name = target.node.name.clone();
    let globals = &cx.globals;
    let result = async {
        let engine = connect(target.node).await.map_err(|e| vec![e])?;
        // A dry run pulls nothing: it says what a deploy would pull.
        let missing = if args.dry_run {
            node::missing_images(&engine, &name, &mut target.desired)
                .await
                .map_err(|e| vec![e.into()])?
        } else {
            node::resolve_images(&engine, &name, &mut target.desired, true)
                .await
                .map_err(|e| vec![e.into()])?;
            Vec::new()
        };
        for image in &missing {
            println!("node {name}: pull {image} (not on the node yet)");
        }
        let run = node_run(&engine, &name, cx, options);
        let observe = || async {
            node::observe(&engine, globals)
                .await
                .map_err(|e| vec![anyhow::Error::from(e).context(format!("node {name}"))])
        };
        // A volume made outside kolla must be there: never an empty
        // substitute under its name.
        for (volume, file) in &target.desired.external_volumes {
            let exists = engine
                .volume_exists(volume)
                .await
                .map_err(|e| vec![anyhow::Error::from(e).context(format!("node {name}"))])?;
            if !exists {
                return Err(vec![anyhow::Error::from(crate::config::ConfigError::Invalid {
                    path: file.clone(),
                    message: format!(
                        "volume {volume} is external (made outside kolla) and does not exist on node {name}; create it there first (docker volume create {volume})"
                    ),
                })]);
            }
        }
        let mut observed = observe().await?;
        // Leftovers of an interrupted swap are settled before planning.
        if !args.dry_run
            && crate::swaps::recover_first(&run, &observed, None, false)
                .await
                .map_err(|e| vec![e])?
        {
            observed = observe().await?;
        }
        settle_privileged(
            &engine,
            target.node,
            &mut target.desired,
            &observed,
            globals,
        )
        .await
        .map_err(|e| vec![e])?;
        let services: Vec<_> = target.desired.services.values().cloned().collect();
        let plan = plan::plan(
            &services,
            &observed,
            &PlanOptions {
                remove_orphans: args.remove_orphans,
            },
        )
        .map_err(|e| vec![anyhow::Error::from(e).context(format!("node {name}"))])?;
        print!("node {name}:\n{}", plan.text());
        if args.dry_run {
            return Ok(format!(
                "{} changes planned (dry run: nothing changed)",
                plan.changes()
            ));
        }
        if plan.changes() == 0 {
            return Ok("up to date, nothing changed".to_string());
        }
        for (volume, driver) in &target.desired.volumes {
            let labels = std::collections::HashMap::from([(
                labels::PROJECT.to_string(),
                globals.project.clone(),
            )]);
            engine
                .create_volume(volume, driver.as_deref(), labels)
                .await
                .map_err(|e| vec![anyhow::Error::from(e).context(format!("node {name}"))])?;
        }
        let done = run
            .apply(
                &plan,
                &target.desired.services,
                &observed,
                &target.desired.files,
            )
            .await
            .map_err(all_errors)?;
        let after = node::observe(&engine, globals)
            .await
            .map_err(|e| vec![anyhow::Error::from(e)])?;
        run.verify(&target.desired.services, &after)
            .await
            .map_err(all_errors)?;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &done {
            *counts.entry(d.kind.as_str()).or_default() += 1;
        }
        let described: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        Ok(format!(
            "{} ({} unchanged)",
            described.join(", "),
            target.desired.services.len().saturating_sub(done.len())
        ))
    }
    .await;
    (name, result)
}

/// One row of `kolla ps`.
#[derive(Debug, Serialize)]
pub struct PsRow {
    pub node: String,
    pub service: String,
    pub container: String,
    pub kind: String,
    pub state: String,
    pub health: Option<String>,
    pub image: String,
    pub generation: u64,
}

fn kind_of(role: Role, data: bool) -> String {
    match role {
        Role::Live if data => "data".into(),
        Role::Live => "live".into(),
        Role::Candidate => "candidate".into(),
        Role::Kept(_) => "kept".into(),
        Role::Lock => "lock".into(),
        Role::Bootstrap => "bootstrap".into(),
        Role::Helper => "helper".into(),
    }
}

pub async fn ps(cx: &Context, args: PsArgs) -> anyhow::Result<Outcome> {
    let globals = &cx.globals;
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    let nodes = inventory.select(&args.nodes.node)?;
    let lists = join_all(nodes.iter().map(|node| async move {
        let engine = connect(node).await?;
        let observed = node::observe(&engine, globals)
            .await
            .with_context(|| format!("node {}", node.name))?;
        anyhow::Ok((node.name.clone(), observed))
    }))
    .await;
    let mut rows = Vec::new();
    for list in lists {
        let (node, observed) = list?;
        for c in observed {
            rows.push(PsRow {
                node: node.clone(),
                service: c.service.clone(),
                container: c.name.clone(),
                kind: kind_of(c.role, c.data),
                state: c.state.as_str().to_string(),
                health: c.health.clone(),
                image: c.image.clone(),
                generation: c.generation,
            });
        }
    }
    rows.sort_by(|a, b| {
        (&a.node, &a.service, &a.container).cmp(&(&b.node, &b.service, &b.container))
    });
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Human => {
            println!(
                "{:<12} {:<24} {:<32} {:<9} {:<10} {:<10} {:>4}  IMAGE",
                "NODE", "SERVICE", "CONTAINER", "KIND", "STATE", "HEALTH", "GEN"
            );
            for r in &rows {
                println!(
                    "{:<12} {:<24} {:<32} {:<9} {:<10} {:<10} {:>4}  {}",
                    r.node,
                    r.service,
                    r.container,
                    r.kind,
                    r.state,
                    r.health.as_deref().unwrap_or("-"),
                    r.generation,
                    r.image
                );
            }
        }
    }
    Ok(Outcome::Success)
}

pub async fn pull(cx: &Context, args: NodeArgs) -> anyhow::Result<Outcome> {
    let (globals, config_dir) = (&cx.globals, cx.config_dir.as_path());
    let inventory = Inventory::load(args.inventory.as_deref())?;
    let targets = resolve(&inventory, globals, config_dir, &args)?;
    let results = join_all(targets.iter().map(|target| async move {
        let engine = connect(target.node).await?;
        let mut images: Vec<&str> = target
            .desired
            .services
            .values()
            .map(|d| d.service.image.as_str())
            .collect();
        images.sort();
        images.dedup();
        for image in images {
            say(format!("{}: pulling {image}", target.node.name));
            engine
                .pull(image)
                .await
                .with_context(|| format!("node {}: pull {image}", target.node.name))?;
        }
        anyhow::Ok(())
    }))
    .await;
    finish(results)
}

pub async fn stop(cx: &Context, args: NodeArgs) -> anyhow::Result<Outcome> {
    let globals = &cx.globals;
    let inventory = Inventory::load(args.inventory.as_deref())?;
    let nodes = inventory.select(&args.node)?;
    let results = join_all(nodes.iter().map(|node| async move {
        let engine = connect(node).await?;
        let observed = node::observe(&engine, globals).await?;
        stop_in_order(&engine, &node.name, &observed)
            .await
            .with_context(|| format!("node {}", node.name))
    }))
    .await;
    finish(results)
}

/// Stop the running containers of `observed` gracefully, each with the
/// signal and grace period it was created with, dependents first (highest
/// dependency level first, a level's containers in parallel).
async fn stop_in_order(
    engine: &Engine,
    node: &str,
    observed: &[labels::ObservedContainer],
) -> Result<(), crate::engine::EngineError> {
    let running: Vec<&labels::ObservedContainer> = observed
        .iter()
        .filter(|c| matches!(c.state, State::Running | State::Restarting | State::Paused))
        .collect();
    let mut levels: Vec<usize> = running.iter().map(|c| c.level).collect();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();
    for level in levels {
        let stops = running
            .iter()
            .filter(|c| c.level == level)
            .map(|c| async move {
                say(format!("{node}: stopping {}", c.name));
                // None: the signal and grace period the container was created with.
                engine.stop_container(&c.id, None).await
            });
        for result in join_all(stops).await {
            result?;
        }
    }
    Ok(())
}

pub(crate) fn finish(results: Vec<anyhow::Result<()>>) -> anyhow::Result<Outcome> {
    let mut failed = false;
    for result in results {
        if let Err(e) = result {
            eprintln!("error: {}", crate::run::describe_error(&e));
            failed = true;
        }
    }
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

pub async fn destroy(cx: &Context, args: DestroyArgs) -> anyhow::Result<Outcome> {
    let globals = &cx.globals;
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    let nodes = inventory.select(&args.nodes.node)?;
    let purge = args.purge_data && args.yes_i_really_mean_it;
    let results = join_all(nodes.iter().map(|node| async move {
        let engine = connect(node).await?;
        let observed = node::observe(&engine, globals).await?;
        // Graceful first: a service killed mid-write is how data is lost.
        stop_in_order(&engine, &node.name, &observed).await?;
        for c in observed.iter().filter(|c| purge || !c.data) {
            say(format!("{}: removing {}", node.name, c.name));
            // Anonymous volumes go with their container only when purging.
            engine.remove_container(&c.id, purge).await?;
        }
        if purge {
            for volume in engine.volume_names(&format!("{}={}", labels::PROJECT, globals.project)).await? {
                say(format!("{}: removing volume {volume}", node.name));
                engine.remove_volume(&volume).await?;
            }
        } else if observed.iter().any(|c| c.data) {
            say(format!("{}: data containers and volumes kept (--purge-data --yes-i-really-mean-it removes them)", node.name));
        }
        anyhow::Ok(())
    }))
    .await;
    finish(
        results
            .into_iter()
            .map(|r| r.map_err(|e: anyhow::Error| e.context("destroy")))
            .collect(),
    )
}

pub async fn prechecks(cx: &Context, args: NodeArgs) -> anyhow::Result<Outcome> {
    let (globals, config_dir) = (&cx.globals, cx.config_dir.as_path());
    let inventory = Inventory::load(args.inventory.as_deref())?;
    let targets = resolve(&inventory, globals, config_dir, &args)?;
    let results = join_all(targets.iter().map(|target| precheck_node(target, globals))).await;
    let mut failed = false;
    for (name, lines) in results {
        for (ok, line) in lines {
            println!("{name}: {} {line}", if ok { "ok  " } else { "FAIL" });
            failed |= !ok;
        }
    }
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

async fn precheck_node(target: &Target<'_>, globals: &Globals) -> (String, Vec<(bool, String)>) {
    let node = target.node;
    let mut lines = Vec::new();
    let engine = match connect(node).await {
        Ok(engine) => engine,
        Err(e) => {
            lines.push((false, format!("engine: {e:#}")));
            return (node.name.clone(), lines);
        }
    };
    match engine.server_version().await {
        Ok((version, api)) => lines.push((
            true,
            format!("engine {version} (API {api}) at {}", engine.endpoint()),
        )),
        Err(e) => lines.push((false, format!("engine version: {e}"))),
    }
    // Each image once, however many services run it; the privileged probe
    // prefers a privileged service's own image.
    let mut images: Vec<(&str, bool)> = Vec::new();
    for wanted in target.desired.services.values() {
        let image = wanted.service.image.as_str();
        match images.iter_mut().find(|(i, _)| *i == image) {
            Some(entry) => entry.1 |= wanted.service.privileged,
            None => images.push((image, wanted.service.privileged)),
        }
    }
    images.sort_by_key(|(image, privileged)| (!privileged, *image));
    let mut present = None;
    for (image, _) in images {
        match engine.image(image).await {
            Ok(Some(_)) => {
                present.get_or_insert_with(|| image.to_string());
                lines.push((true, format!("image {image} present")));
            }
            Ok(None) => lines.push((
                false,
                format!("image {image} missing (kolla build, or push it and kolla pull)"),
            )),
            Err(e) => lines.push((false, format!("image {image}: {e}"))),
        }
    }
    lines.extend(check_host_ports(target, &engine, globals).await);
    lines.push(check_disk(target, &engine).await);
    if target.desired.needs_privileged() && node.privileged != PrivilegedMode::Explicit {
        lines.push(
            check_privileged(node, &engine, &globals.container_prefix, present.as_deref()).await,
        );
    }
    (node.name.clone(), lines)
}

/// Ports host-network services will listen on must be free, unless the
/// service's own container already holds them. Only an engine on this
/// machine can be checked from here.
async fn check_host_ports(
    target: &Target<'_>,
    engine: &Engine,
    globals: &Globals,
) -> Vec<(bool, String)> {
    let wanted: Vec<(&str, u16)> = target
        .desired
        .services
        .values()
        .flat_map(|d| {
            d.service
                .kolla
                .host_ports
                .iter()
                .map(move |p| (d.service.name.as_str(), *p))
        })
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let local = target
        .node
        .docker
        .as_deref()
        .is_none_or(|url| url.starts_with("unix://"));
    if !local {
        return vec![(
            true,
            format!(
                "host ports of {} services not checked: the engine is remote",
                wanted.len()
            ),
        )];
    }
    let running: Vec<String> = match node::observe(engine, globals).await {
        Ok(observed) => observed
            .into_iter()
            .filter(|c| c.role == Role::Live && c.state == State::Running)
            .map(|c| c.service)
            .collect(),
        Err(e) => return vec![(false, format!("cannot list containers: {e}"))],
    };
    wanted
        .into_iter()
        .filter(|(service, _)| !running.iter().any(|r| r == service))
        .map(
            |(service, port)| match std::net::TcpListener::bind(("0.0.0.0", port)) {
                Ok(_) => (true, format!("port {port} free for {service}")),
                Err(e) => (
                    false,
                    format!("port {port} that {service} needs is taken ({e})"),
                ),
            },
        )
        .collect()
}

/// Free space under the engine's root folder, for images and volumes; only
/// an engine on this machine can be measured from here.
const MIN_FREE_BYTES: u64 = 5 << 30;

async fn check_disk(target: &Target<'_>, engine: &Engine) -> (bool, String) {
    let local = target
        .node
        .docker
        .as_deref()
        .is_none_or(|url| url.starts_with("unix://"));
    let root = match engine.root_dir().await {
        Ok(root) => root,
        Err(e) => return (false, format!("engine info: {e}")),
    };
    if !local {
        return (
            true,
            format!("disk space under {root} not checked: the engine is remote"),
        );
    }
    match nix::sys::statvfs::statvfs(root.as_str()) {
        Ok(stat) => {
            let free = stat.blocks_available().saturating_mul(stat.fragment_size());
            let gib = free as f64 / f64::from(1u32 << 30);
            if free >= MIN_FREE_BYTES {
                (true, format!("{gib:.1} GiB free under {root}"))
            } else {
                (
                    false,
                    format!(
                        "only {gib:.1} GiB free under {root}; images and volumes need at least {} GiB",
                        MIN_FREE_BYTES >> 30
                    ),
                )
            }
        }
        Err(e) => (
            false,
            format!("cannot measure free space under {root}: {e}"),
        ),
    }
}

/// Whether the engine starts privileged containers, and what the node's
/// `privileged` setting makes of the answer.
async fn check_privileged(
    node: &Node,
    engine: &Engine,
    prefix: &str,
    image: Option<&str>,
) -> (bool, String) {
    let Some(image) = image else {
        return (
            false,
            "privileged: no image on the node to probe with".into(),
        );
    };
    match (
        node::probe_privileged(engine, prefix, image).await,
        node.privileged,
    ) {
        (Ok(()), _) => (true, "privileged containers start".into()),
        (Err(e @ node::ProbeError::Engine(_)), _) => {
            (false, format!("privileged probe container: {e}"))
        }
        (Err(e), PrivilegedMode::Auto) => (
            true,
            format!(
                "this engine refuses privileged containers ({e}); `privileged: auto` gives them explicit privileges"
            ),
        ),
        (Err(e), _) => (
            false,
            format!(
                "this engine refuses privileged containers ({e}); set `privileged: explicit` (or `auto`) on node {} in the inventory",
                node.name
            ),
        ),
    }
}

pub fn genpwd(cx: &Context, args: GenpwdArgs) -> anyhow::Result<Outcome> {
    let config_dir = cx.config_dir.as_path();
    let path = args
        .passwords
        .unwrap_or_else(|| config_dir.join(passwords::PASSWORDS_FILE));
    let generated = passwords::generate(&path, passwords::TEMPLATE)?;
    println!(
        "{}: {} passwords generated, the others kept",
        path.display(),
        generated.len()
    );
    Ok(Outcome::Success)
}

/// Deploy errors that are the operator's input rather than a failure.
pub fn is_usage_error(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| e.is::<DesiredError>() || e.is::<crate::deploy::plan::PlanError>())
        || error.chain().any(|e| {
            matches!(
                e.downcast_ref::<DeployError>(),
                Some(DeployError::Config { .. })
            )
        })
}
