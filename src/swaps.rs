//! The verbs that swap one service at a time: `upgrade` (to a new image or
//! config, through the same replace path as deploy), `rollback` (to a kept
//! container), `unlock` (a stale lock) and `history`. Nodes go one at a
//! time unless `--parallel`; a failing node stops the run before the next.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use futures_util::future::join_all;

use crate::cli::{HistoryArgs, OutputFormat, RecoverArgs, RollbackArgs, ServiceArgs, UpgradeArgs};
use crate::config::Inventory;
use crate::config::inventory::Node;
use crate::deploy::apply::NodeRun;
use crate::deploy::history::{self, Record};
use crate::deploy::labels::{ObservedContainer, Role};
use crate::deploy::lock::Takeover;
use crate::deploy::upgrade::{self, SwapOptions, TagChange};
use crate::deploy::{current_user, lock, node, now_secs, recover as recovery};
use crate::nodes::{self, Context, Target, apply_options, connect, node_run, say};
use crate::run::Outcome;

fn live_of<'a>(observed: &'a [ObservedContainer], service: &str) -> Option<&'a ObservedContainer> {
    observed
        .iter()
        .find(|c| c.service == service && c.role == Role::Live)
}

pub async fn upgrade(cx: &Context, args: UpgradeArgs) -> anyhow::Result<Outcome> {
    let mut globals = cx.globals.clone();
    if let Some(tag) = &args.tag {
        globals.tag = tag.clone();
        globals.validate(std::path::Path::new("--tag"))?;
    }
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    let targets = nodes::resolve(&inventory, &globals, &cx.config_dir, &args.nodes)?;
    // Every named service must exist on some selected node.
    for service in &args.services {
        if !targets
            .iter()
            .any(|t| t.desired.services.contains_key(service))
        {
            bail!(crate::config::ConfigError::Invalid {
                path: args.nodes.compose_dir.clone(),
                message: format!("service {service} is in no compose file of the selected nodes"),
            });
        }
    }
    // A data container holds data, not code: it is never swapped. And a
    // --tag the file does not use would upgrade nothing.
    for target in &targets {
        for service in &args.services {
            if let (Some(wanted), Some(tag)) = (target.desired.services.get(service), &args.tag)
                && !crate::engine::split_tag(&wanted.service.image)
                    .1
                    .contains(tag.as_str())
            {
                bail!(crate::config::ConfigError::Invalid {
                    path: args.nodes.compose_dir.clone(),
                    message: format!(
                        "service {service}: its image is {}, whose tag comes from the compose file, not from --tag {tag}; write ${{TAG}} in the file, or change the tag there",
                        wanted.service.image
                    ),
                });
            }
            if let Some(wanted) = target.desired.services.get(service)
                && wanted.service.kolla.data
            {
                bail!(crate::config::ConfigError::Invalid {
                    path: args.nodes.compose_dir.clone(),
                    message: format!(
                        "service {service} is a data container: it is never upgraded (its volumes stay as they are; upgrade the services that use them)"
                    ),
                });
            }
        }
    }
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| {
            args.services
                .iter()
                .any(|s| t.desired.services.contains_key(s))
        })
        .collect();
    let options = apply_options(&args.gate);
    for batch in targets.chunks(usize::from(args.parallel)) {
        let results = join_all(
            batch
                .iter()
                .map(|t| upgrade_node(cx, &globals, t, &args, &options)),
        )
        .await;
        let mut failures = Vec::new();
        for (name, result) in results {
            match result {
                Ok(summary) => println!("node {name}: {summary}"),
                Err(e) => {
                    eprintln!("error: {}", crate::run::describe_error(&e));
                    println!("node {name}: FAILED");
                    failures.push(e);
                }
            }
        }
        if !failures.is_empty() {
            return Ok(Outcome::of_failures(&failures));
        }
    }
    Ok(Outcome::Success)
}

async fn upgrade_node(
    cx: &Context,
    globals: &crate::config::Globals,
    target: &Target<'_>,
    args: &UpgradeArgs,
    options: &crate::deploy::apply::ApplyOptions,
) -> (String, anyhow::Result<String>) {
    let name = target.node.name.clone();
    let result = async {
        let engine = connect(target.node).await?;
        let mut desired = target.desired.clone();
        desired.services.retain(|s, _| args.services.contains(s));
        // Pull first: the old containers keep serving meanwhile.
        node::resolve_images(&engine, &name, &mut desired, true).await?;
        let mut observed = node::observe(&engine, globals)
            .await
            .with_context(|| format!("node {name}"))?;
        let run = node_run(&engine, &name, cx, options);
        if recover_first(&run, &observed, Some(&args.services), false).await? {
            observed = node::observe(&engine, globals).await.with_context(|| format!("node {name}"))?;
        }
        nodes::settle_privileged(&engine, target.node, &mut desired, &observed, globals).await?;
        let mut done = Vec::new();
        for service in &args.services {
            let Some(wanted) = desired.services.get(service) else { continue };
            let Some(live) = live_of(&observed, service) else {
                bail!("node {name}: service {service} is not deployed here; `kolla deploy` creates it");
            };
            match upgrade::compare_tags(&live.image, &wanted.service.image) {
                TagChange::Lower if !args.allow_downgrade => bail!(
                    "node {name}: service {service}: {} is a lower version than the running {}; pass --allow-downgrade to go back",
                    wanted.service.image,
                    live.image
                ),
                TagChange::NotComparable => say(format!(
                    "{name}: {service}: note: {} or {} is not a semantic version; not compared",
                    live.image, wanted.service.image
                )),
                _ => {}
            }
            if wanted.digest.as_deref() == Some(live.digest.as_str()) && wanted.config_hash == live.config_hash {
                done.push(format!("{service} already at generation {} (same image and config)", live.generation));
                continue;
            }
            let files = desired.files.get(service).map(Vec::as_slice).unwrap_or_default();
            match run.replace(wanted, &observed, files, "upgrade").await? {
                Some(dark) => done.push(format!("{service} upgraded, dark window {:.3}s", dark.as_secs_f64())),
                None => done.push(format!("{service} already upgraded by another run")),
            }
        }
        Ok(done.join("; "))
    }
    .await;
    (name, result)
}

pub async fn rollback(cx: &Context, args: RollbackArgs) -> anyhow::Result<Outcome> {
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    let selected = inventory.select(&args.nodes.node)?;
    let options = apply_options(&args.gate);
    let mut any = false;
    for node in selected {
        let engine = connect(node).await?;
        let mut observed = node::observe(&engine, &cx.globals)
            .await
            .with_context(|| format!("node {}", node.name))?;
        if let Some(data) = observed
            .iter()
            .find(|c| c.data && c.role == Role::Live && args.services.contains(&c.service))
        {
            bail!(crate::config::ConfigError::Invalid {
                path: inventory.origin.clone(),
                message: format!(
                    "node {}: service {} is a data container: it is never rolled back (its volumes stay as they are)",
                    node.name, data.service
                ),
            });
        }
        let run = node_run(&engine, &node.name, cx, &options);
        match recover_first(&run, &observed, Some(&args.services), false).await {
            Ok(true) => {
                observed = node::observe(&engine, &cx.globals)
                    .await
                    .with_context(|| format!("node {}", node.name))?;
            }
            Ok(false) => {}
            Err(e) => {
                eprintln!("error: {}", crate::run::describe_error(&e));
                println!("node {}: FAILED", node.name);
                return Ok(Outcome::Failed);
            }
        }
        for service in &args.services {
            let Some(live) = live_of(&observed, service) else {
                continue;
            };
            any = true;
            match rollback_service(&run, node, service, live, &observed, &args).await {
                Ok(line) => println!("node {}: {line}", node.name),
                Err(e) => {
                    eprintln!("error: {}", crate::run::describe_error(&e));
                    println!("node {}: FAILED", node.name);
                    return Ok(Outcome::of_failures([&e]));
                }
            }
        }
    }
    if !any {
        bail!(crate::config::ConfigError::Invalid {
            path: inventory.origin.clone(),
            message: format!(
                "none of {} runs on the selected nodes",
                args.services.join(", ")
            ),
        });
    }
    Ok(Outcome::Success)
}

async fn rollback_service(
    run: &NodeRun<'_>,
    node: &Node,
    service: &str,
    live: &ObservedContainer,
    observed: &[ObservedContainer],
    args: &RollbackArgs,
) -> anyhow::Result<String> {
    let kept = crate::deploy::apply::kept_of(observed, service);
    let newest_kept = kept.iter().map(|c| c.generation).max();
    let Some(newest) = newest_kept else {
        bail!(
            "node {}: service {service}: nothing to roll back to (no kept container; generation {} is the only one)",
            node.name,
            live.generation
        );
    };
    let target = match args.to {
        Some(n) => kept.iter().find(|c| c.generation == n).ok_or_else(|| {
            let mut available: Vec<String> =
                kept.iter().map(|c| c.generation.to_string()).collect();
            available.sort();
            anyhow::anyhow!(
                "node {}: service {service}: no kept generation {n} (kept: {})",
                node.name,
                available.join(", ")
            )
        })?,
        None => kept
            .iter()
            .find(|c| c.generation == newest)
            .ok_or_else(|| anyhow::anyhow!("kept generation vanished"))?,
    };
    // The live container being older than a kept one means the last swap
    // was itself a rollback.
    if live.generation < newest && !args.force {
        bail!(
            "node {}: service {service}: generation {} is live and {newest} is kept: the last change was a rollback; pass --force to roll back again",
            node.name,
            live.generation
        );
    }
    let held = run
        .lock(
            service,
            &live.image,
            "rollback",
            &format!("generation {}", target.generation),
            Some(live.generation),
            Takeover::Never,
        )
        .await?;
    // Gate and grace come from the containers themselves: a rollback reads
    // no compose file.
    let options = SwapOptions {
        grace: None,
        start_first: false,
    };
    let result = upgrade::rollback(run, service, live, target, &kept, &options).await;
    run.record(&Record {
        time: now_secs(),
        node: node.name.clone(),
        service: service.to_string(),
        action: "rollback".into(),
        from_generation: live.generation,
        to_generation: target.generation,
        image: target.image.clone(),
        digest: target.digest.clone(),
        user: current_user(),
        result: match &result {
            Ok(_) => "ok".into(),
            Err(e) => format!(
                "{}: {}",
                if e.needs_recovery() {
                    "needs recovery"
                } else {
                    "swapped back"
                },
                e.to_string().lines().next().unwrap_or_default()
            ),
        },
        dark_window_secs: result.as_ref().ok().map(|d| d.as_secs_f64()),
    });
    let released = run.unlock(held).await;
    let dark = result?;
    released?;
    Ok(format!(
        "{service} rolled back from generation {} to {}, dark window {:.3}s",
        live.generation,
        target.generation,
        dark.as_secs_f64()
    ))
}

pub async fn unlock(cx: &Context, args: ServiceArgs) -> anyhow::Result<Outcome> {
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    for node in inventory.select(&args.nodes.node)? {
        let engine = connect(node).await?;
        let cleared = lock::clear(
            &engine,
            &cx.globals.container_prefix,
            &cx.globals.project,
            &args.service,
        )
        .await
        .with_context(|| format!("node {}", node.name))?;
        println!(
            "node {}: {}",
            node.name,
            match cleared {
                Some(holder) =>
                    format!("lock of {} cleared (it was held by {holder})", args.service),
                None => format!("{} was not locked", args.service),
            }
        );
    }
    Ok(Outcome::Success)
}

pub async fn history(cx: &Context, args: HistoryArgs) -> anyhow::Result<Outcome> {
    let (records, bad) = history::read(&cx.state_dir, Some(&args.service))
        .with_context(|| format!("{}: cannot read", history::path(&cx.state_dir).display()))?;
    for line in &bad {
        eprintln!("warning: {line}: skipped");
    }
    // What runs now, from the labels of the selected nodes.
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    let mut now: BTreeMap<String, Vec<ObservedContainer>> = BTreeMap::new();
    for node in inventory.select(&args.nodes.node)? {
        let engine = connect(node).await?;
        let observed = node::observe(&engine, &cx.globals)
            .await
            .with_context(|| format!("node {}", node.name))?;
        now.insert(
            node.name.clone(),
            observed
                .into_iter()
                .filter(|c| c.service == args.service)
                .collect(),
        );
    }
    match args.output {
        OutputFormat::Json => {
            let current: BTreeMap<&String, Vec<serde_json::Value>> = now
                .iter()
                .map(|(n, cs)| {
                    let rows = cs
                        .iter()
                        .map(|c| serde_json::json!({"container": c.name, "generation": c.generation, "image": c.image, "digest": c.digest, "state": c.state.as_str()}))
                        .collect();
                    (n, rows)
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"service": args.service, "history": records, "containers": current})
                )?
            );
        }
        OutputFormat::Human => {
            println!(
                "{:<20} {:<10} {:<9} {:>4} -> {:<4} {:<10} {:<8} {:<8} IMAGE",
                "TIME (UTC s)", "NODE", "ACTION", "FROM", "TO", "RESULT", "DARK", "USER"
            );
            for r in &records {
                println!(
                    "{:<20} {:<10} {:<9} {:>4} -> {:<4} {:<10} {:<8} {:<8} {}",
                    r.time,
                    r.node,
                    r.action,
                    r.from_generation,
                    r.to_generation,
                    r.result.split(':').next().unwrap_or_default(),
                    r.dark_window_secs
                        .map(|d| format!("{d:.3}s"))
                        .unwrap_or_else(|| "-".into()),
                    r.user,
                    r.image
                );
            }
            for (node, containers) in &now {
                for c in containers {
                    println!(
                        "now: {node} {} generation {} {} ({})",
                        c.name,
                        c.generation,
                        c.image,
                        c.state.as_str()
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// Recover the leftovers of interrupted swaps of `only` (all services when
/// None) before working on them; says what it did. Returns whether anything
/// changed (the caller then looks at the node again).
pub(crate) async fn recover_first(
    run: &NodeRun<'_>,
    observed: &[ObservedContainer],
    only: Option<&[String]>,
    force: bool,
) -> anyhow::Result<bool> {
    let mut changed = false;
    for service in recovery::services_needing_recovery(observed, run.options.retain) {
        if only.is_some_and(|only| !only.contains(&service)) {
            continue;
        }
        let done = recovery::recover_service(run, &service, observed, force).await?;
        for step in &done {
            say(format!("{}: {service}: recovery: {step}", run.node));
        }
        changed |= !done.is_empty();
    }
    Ok(changed)
}

pub async fn recover(cx: &Context, args: RecoverArgs) -> anyhow::Result<Outcome> {
    let inventory = Inventory::load(args.nodes.inventory.as_deref())?;
    let options = apply_options(&args.gate);
    let mut failed = false;
    for node in inventory.select(&args.nodes.node)? {
        let engine = connect(node).await?;
        let observed = node::observe(&engine, &cx.globals)
            .await
            .with_context(|| format!("node {}", node.name))?;
        let run = node_run(&engine, &node.name, cx, &options);
        let only = (!args.services.is_empty()).then_some(args.services.as_slice());
        match recover_first(&run, &observed, only, args.force).await {
            Ok(true) => println!("node {}: recovered", node.name),
            Ok(false) => println!("node {}: nothing to recover", node.name),
            Err(e) => {
                eprintln!("error: {}", crate::run::describe_error(&e));
                println!("node {}: FAILED", node.name);
                failed = true;
            }
        }
    }
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}
