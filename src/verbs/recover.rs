//! `kolla recover` (finish or undo swaps a crash interrupted, so exactly
//! one container of each service runs: the node pipeline's recover
//! intent) and `kolla unlock` (clear a stale lock). Deploy, upgrade and
//! rollback recover the services they touch first, in the same pipeline.
//! With `--output json`, what was done for each service of each node.

use serde::Serialize;

use super::json::{self, Ended};
use super::targets::{self, apply_options, connect, node_at};
use super::{Fanout, Outcome, over_nodes};
use crate::cli::{OutputFormat, RecoverArgs, ServiceArgs};
use crate::credentials::Store;
use crate::deploy::desired::Desired;
use crate::deploy::lock;
use crate::deploy::pipeline::{self, Intent, RecoveryRecord, RunLog};
use crate::settings::Settings;

pub async fn recover(settings: &Settings, args: RecoverArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let options = apply_options(&args.gate, settings);
    let json = args.output == OutputFormat::Json;
    let fanout = Fanout {
        report_on_stderr: json,
        ..Fanout::all(settings.forks)
    };
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    // Recovery pulls nothing: no credentials are read.
    let credentials = Store::default();
    let (log, ended) = (RunLog::default(), Ended::<()>::default());
    let (args, options, credentials, log_ref, ended_ref) =
        (&args, &options, &credentials, &log, &ended);
    let intent = &Intent::Recover {
        services: (!args.services.is_empty()).then_some(args.services.as_slice()),
        force: args.force,
    };
    let outcome = over_nodes(nodes, fanout, |node| async move {
        let report = async {
            let engine = asked.connect(settings, node).await?;
            let at = node_at(&engine, node, settings, (options, credentials));
            pipeline::run(&at, Desired::default(), intent, log_ref).await
        };
        ended_ref.note(&node.name, report.await, ())
    })
    .await;
    if json {
        json::print(&ended.entries(names, |node, ()| NodeRecovery {
            services: log.recoveries_of(node),
        }))?;
    }
    Ok(outcome)
}

/// A node's part of `recover --output json`: each service with leftovers
/// and what recovery did for it.
#[derive(Debug, Serialize)]
struct NodeRecovery {
    services: Vec<RecoveryRecord>,
}

pub async fn unlock(settings: &Settings, args: ServiceArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let args = &args;
    Ok(over_nodes(nodes, Fanout::ONE_BY_ONE, |node| async move {
        let engine = connect(settings, node).await?;
        let globals = &settings.globals;
        let cleared = lock::clear(
            &engine,
            &globals.container_prefix,
            &globals.project,
            &args.service,
        )
        .await
        .map_err(|e| anyhow::Error::from(e).context(format!("node {}", node.name)))?;
        Ok(vec![match cleared {
            Some(holder) => format!("lock of {} cleared (it was held by {holder})", args.service),
            None => format!("{} was not locked", args.service),
        }])
    })
    .await)
}
