//! `kolla recover` (finish or undo swaps a crash interrupted, so exactly
//! one container of each service runs) and `kolla unlock` (clear a stale
//! lock). Deploy, upgrade and rollback recover the services they touch
//! first, through `recover_first`.

use super::targets::{self, apply_options, connect, node_run};
use super::{Fanout, Outcome, over_nodes};
use crate::cli::{RecoverArgs, ServiceArgs};
use crate::deploy::context::NodeRun;
use crate::deploy::labels::ObservedContainer;
use crate::deploy::{lock, recovery};
use crate::progress::say;
use crate::settings::Settings;

/// Recover the leftovers of interrupted swaps of `only` (all services when
/// None) before working on them; says what it did. Returns whether anything
/// changed (the caller then looks at the node again).
pub async fn recover_first(
    run: &NodeRun<'_>,
    observed: &[ObservedContainer],
    only: Option<&[String]>,
    force: bool,
) -> anyhow::Result<bool> {
    let mut changed = false;
    for service in recovery::plan::services_needing_recovery(observed, run.options.retain) {
        if only.is_some_and(|only| !only.contains(&service)) {
            continue;
        }
        let done = recovery::run::recover_service(run, &service, observed, force).await?;
        for step in &done {
            say(format!("{}: {service}: recovery: {step}", run.node));
        }
        changed |= !done.is_empty();
    }
    Ok(changed)
}

pub async fn recover(settings: &Settings, args: RecoverArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let options = apply_options(&args.gate);
    let fanout = Fanout::all(settings.forks);
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let (args, options) = (&args, &options);
    Ok(over_nodes(nodes, fanout, |node| async move {
        let one = |e: anyhow::Error| vec![e];
        let engine = asked.connect(settings, node).await.map_err(one)?;
        let observed = targets::observe(settings, &engine, &node.name)
            .await
            .map_err(one)?;
        let run = node_run(&engine, &node.name, settings, options);
        let only = (!args.services.is_empty()).then_some(args.services.as_slice());
        let changed = recover_first(&run, &observed, only, args.force)
            .await
            .map_err(one)?;
        Ok(vec![
            if changed {
                "recovered"
            } else {
                "nothing to recover"
            }
            .to_string(),
        ])
    })
    .await)
}

pub async fn unlock(settings: &Settings, args: ServiceArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let args = &args;
    Ok(over_nodes(nodes, Fanout::ONE_BY_ONE, |node| async move {
        let one = |e: anyhow::Error| vec![e];
        let engine = connect(settings, node).await.map_err(one)?;
        let globals = &settings.globals;
        let cleared = lock::clear(
            &engine,
            &globals.container_prefix,
            &globals.project,
            &args.service,
        )
        .await
        .map_err(|e| vec![anyhow::Error::from(e).context(format!("node {}", node.name))])?;
        Ok(vec![match cleared {
            Some(holder) => format!("lock of {} cleared (it was held by {holder})", args.service),
            None => format!("{} was not locked", args.service),
        }])
    })
    .await)
}
