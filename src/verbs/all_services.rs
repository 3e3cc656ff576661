//! `kolla upgrade --all` and `kolla rollback --all`: every service of the
//! selected nodes, stage by stage in the order `deploy::upgrade_order`
//! reads from the compose files (a rollback in the reverse order). An
//! upgrade's images come first on every node (nothing is swapped until
//! every image is on its node); then each stage runs on every node that
//! has its services (`--parallel` at a time) before the next begins. A
//! failure stops the run at its stage and says what is done and what is
//! left; a rerun finds the done services done and goes on from there.
//! `upgrade --all --dry-run` prints the stages and changes nothing.

use std::path::Path;

use super::targets::{Target, apply_options, connect, node_at, observe};
use super::{Fanout, Outcome, over_nodes};
use crate::cli::{RollbackArgs, UpgradeArgs};
use crate::config::ConfigError;
use crate::config::compose::KollaSettings;
use crate::credentials::Store;
use crate::deploy::context::ApplyOptions;
use crate::deploy::labels::{ObservedContainer, Role};
use crate::deploy::pipeline::{self, Intent, RunLog};
use crate::deploy::plan::BackTo;
use crate::deploy::upgrade_order::{self, Step};
use crate::settings::Settings;

/// The stages of upgrading what `targets` run, or the compose files'
/// cycle as an error naming the compose folder.
fn stages_of(targets: &[Target], compose_dir: &Path) -> Result<Vec<Vec<Step>>, ConfigError> {
    let services = targets
        .iter()
        .flat_map(|t| t.desired.services.values().map(|w| &w.service));
    upgrade_order::stages(services).map_err(|cycle| ConfigError::Invalid {
        path: compose_dir.to_path_buf(),
        message: cycle.to_string(),
    })
}

/// The names of a stage's services.
fn names(stage: &[Step]) -> Vec<String> {
    stage.iter().map(|s| s.service.clone()).collect()
}

/// What each stage does to its services.
enum Each<'a> {
    Upgrade {
        allow_downgrade: bool,
    },
    Rollback {
        back_to: &'a BackTo,
        restore_db: bool,
    },
}

impl Each<'_> {
    fn intent<'s>(&'s self, services: &'s [String]) -> Intent<'s> {
        match *self {
            Each::Upgrade { allow_downgrade } => Intent::Upgrade {
                services,
                allow_downgrade,
            },
            Each::Rollback {
                back_to,
                restore_db,
            } => Intent::Rollback {
                services,
                to: None,
                back_to: Some(back_to),
                force: false,
                restore_db,
            },
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Each::Upgrade { .. } => "upgrade --all",
            Each::Rollback { .. } => "rollback --all",
        }
    }

    /// What a stage's progress line says after its services.
    fn said_after(&self) -> String {
        match self {
            Each::Upgrade { .. } => String::new(),
            Each::Rollback { back_to, .. } => format!(" back to {back_to}"),
        }
    }
}

/// What every stage's run on the nodes shares.
struct Run<'r, 'a> {
    settings: &'r Settings,
    targets: &'r [Target<'a>],
    options: &'r ApplyOptions,
    credentials: &'r Store,
    fanout: Fanout,
    log: &'r RunLog,
}

impl Run<'_, '_> {
    /// `intent` on every target that runs one of `services`, `--parallel`
    /// nodes at a time, stopping after a node fails.
    async fn on_nodes_running(&self, services: &[String], intent: &Intent<'_>) -> Outcome {
        let (settings, options, credentials, log) =
            (self.settings, self.options, self.credentials, self.log);
        let running: Vec<&Target> = self
            .targets
            .iter()
            .filter(|t| services.iter().any(|s| t.desired.services.contains_key(s)))
            .collect();
        over_nodes(running, self.fanout, |target| async move {
            let engine = connect(settings, target.node).await?;
            let at = node_at(&engine, target.node, settings, (options, credentials));
            pipeline::run(&at, target.desired.clone(), intent, log).await
        })
        .await
    }

    /// Each stage, one after the other, on every node that runs its
    /// services; stops at a stage that fails, saying what is done and
    /// what is left.
    async fn each_stage(&self, stages: &[Vec<Step>], each: &Each<'_>) -> Outcome {
        for (number, stage) in stages.iter().enumerate() {
            let services = &names(stage);
            crate::progress::say(format!(
                "stage {} of {}: {}{}",
                number + 1,
                stages.len(),
                services.join(", "),
                each.said_after()
            ));
            let outcome = self
                .on_nodes_running(services, &each.intent(services))
                .await;
            if outcome != Outcome::Success {
                say_where_it_stopped(each.verb(), stages, number);
                return outcome;
            }
        }
        Outcome::Success
    }

    /// Every service's image onto every node that runs it, all nodes at
    /// once, before anything is swapped.
    async fn supply(&self, services: &[String]) -> Outcome {
        let (settings, options, credentials) = (self.settings, self.options, self.credentials);
        over_nodes(
            self.targets.iter().collect(),
            Fanout {
                report_on_stderr: self.fanout.report_on_stderr,
                ..Fanout::all(settings.forks)
            },
            |target| async move {
                let engine = connect(settings, target.node).await?;
                let at = node_at(&engine, target.node, settings, (options, credentials));
                pipeline::supply(&at, target.desired.clone(), Some(services)).await
            },
        )
        .await
    }
}

pub async fn upgrade_all(
    settings: &Settings,
    args: &UpgradeArgs,
    targets: Vec<Target<'_>>,
    log: &RunLog,
) -> anyhow::Result<Outcome> {
    let stages = stages_of(&targets, &args.nodes.compose_dir)?;
    let running = observe_all(settings, &targets).await?;
    if args.dry_run {
        print_plan(&targets, &running, &stages);
        return Ok(Outcome::Success);
    }
    refuse_what_upgrade_cannot_do(&targets, &running, args)?;
    let run = Run {
        settings,
        targets: &targets,
        options: &apply_options(&args.gate, settings),
        credentials: &settings.credentials()?,
        fanout: Fanout {
            batch: usize::from(args.parallel),
            stop_after_failure: true,
            report_on_stderr: args.output == crate::cli::OutputFormat::Json,
        },
        log,
    };
    let every: Vec<String> = stages.iter().flat_map(|s| names(s)).collect();
    let supplied = run.supply(&every).await;
    if supplied != Outcome::Success {
        return Ok(supplied);
    }
    let upgrade = Each::Upgrade {
        allow_downgrade: args.allow_downgrade,
    };
    let outcome = run.each_stage(&stages, &upgrade).await;
    if outcome != Outcome::Success {
        return Ok(outcome);
    }
    let steps = &post_steps(&targets, &stages);
    if steps.is_empty() {
        return Ok(Outcome::Success);
    }
    crate::progress::say(format!("post-upgrade steps: {}", steps.join(", ")));
    let outcome = run
        .on_nodes_running(steps, &Intent::PostUpgrade { services: steps })
        .await;
    if outcome != Outcome::Success {
        eprintln!(
            "upgrade --all: every stage is done; a post-upgrade step failed\n  hint: fix what failed, then run the same `kolla upgrade --all` again: the stages are found done and the steps run again"
        );
    }
    Ok(outcome)
}

/// `kolla rollback --all`: the stages of `upgrade --all` in reverse, each
/// service back to the newest kept generation `back_to` names (one that is
/// there already is left as it is), on every node that runs it. A service
/// marked `x-kolla.one_way` stays where it is, said first.
pub async fn rollback_all(
    settings: &Settings,
    args: &RollbackArgs,
    back_to: &BackTo,
    targets: Vec<Target<'_>>,
    log: &RunLog,
) -> anyhow::Result<Outcome> {
    let mut stages = stages_of(&targets, &args.nodes.compose_dir)?;
    stages.reverse();
    let one_way = marked(&targets, &stages, |kolla| kolla.one_way);
    for service in &one_way {
        crate::progress::say(format!(
            "{service}: left on its newer image (x-kolla.one_way: its older image cannot read the data the upgrade changed)"
        ));
    }
    for stage in &mut stages {
        stage.retain(|step| !one_way.contains(&step.service));
    }
    stages.retain(|stage| !stage.is_empty());
    let run = Run {
        settings,
        targets: &targets,
        options: &apply_options(&args.gate, settings),
        // A rollback pulls nothing: no credentials are read.
        credentials: &Store::default(),
        fanout: Fanout {
            batch: usize::from(args.parallel),
            stop_after_failure: true,
            report_on_stderr: args.output == crate::cli::OutputFormat::Json,
        },
        log,
    };
    let rollback = Each::Rollback {
        back_to,
        restore_db: args.restore_db,
    };
    Ok(run.each_stage(&stages, &rollback).await)
}

/// The services with a post-upgrade step (`x-kolla.post_upgrade`), in the
/// order of the stages.
fn post_steps(targets: &[Target], stages: &[Vec<Step>]) -> Vec<String> {
    marked(targets, stages, |kolla| kolla.post_upgrade.is_some())
}

/// The services of `stages` whose x-kolla settings on some target say
/// `mark`, in the order of the stages.
fn marked(
    targets: &[Target],
    stages: &[Vec<Step>],
    mark: impl Fn(&KollaSettings) -> bool,
) -> Vec<String> {
    stages
        .iter()
        .flatten()
        .filter(|step| {
            targets.iter().any(|t| {
                t.desired
                    .services
                    .get(&step.service)
                    .is_some_and(|w| mark(&w.service.kolla))
            })
        })
        .map(|step| step.service.clone())
        .collect()
}

/// After a failure at stage `failed` of `verb`: what is done, what is left.
fn say_where_it_stopped(verb: &str, stages: &[Vec<Step>], failed: usize) {
    let list = |range: &[Vec<Step>]| {
        let all: Vec<String> = range.iter().flat_map(|s| names(s)).collect();
        if all.is_empty() {
            "nothing".to_string()
        } else {
            all.join(", ")
        }
    };
    eprintln!(
        "{verb} stopped at stage {} of {} ({}): done: {}; left: {}\n  hint: fix what failed, then run the same `kolla {verb}` again: what is done is found done",
        failed + 1,
        stages.len(),
        list(&stages[failed..=failed]),
        list(&stages[..failed]),
        list(&stages[failed + 1..])
    );
}

/// What each target runs now, in the order of `targets`.
async fn observe_all(
    settings: &Settings,
    targets: &[Target<'_>],
) -> anyhow::Result<Vec<Vec<ObservedContainer>>> {
    let mut running = Vec::new();
    for target in targets {
        let engine = connect(settings, target.node).await?;
        running.push(observe(settings, &engine, &target.node.name).await?);
    }
    Ok(running)
}

/// Before anything changes: an upgrade swaps what runs; a service the
/// compose files add (a release's new service) or one they no longer have
/// (one it drops) is a change of the cloud's shape that `kolla deploy`
/// makes, not a swap. Refused with each, node by node.
fn refuse_what_upgrade_cannot_do(
    targets: &[Target<'_>],
    running: &[Vec<ObservedContainer>],
    args: &UpgradeArgs,
) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    for (target, observed) in targets.iter().zip(running) {
        let live = |service: &str| {
            observed
                .iter()
                .any(|c| c.service == service && c.role == Role::Live)
        };
        for wanted in target.desired.services.values() {
            if !wanted.service.kolla.data && !live(&wanted.service.name) {
                problems.push(format!(
                    "node {}: {} is not deployed (new in these compose files)",
                    target.node.name, wanted.service.name
                ));
            }
        }
        for gone in observed.iter().filter(|c| {
            c.role == Role::Live && !c.data && !target.desired.services.contains_key(&c.service)
        }) {
            problems.push(format!(
                "node {}: {} runs but is in no compose file of its roles now",
                target.node.name, gone.service
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        path: args.nodes.compose_dir.clone(),
        message: format!(
            "upgrade --all swaps the services that run for the ones the compose files name, and these differ; nothing was changed:\n  {}\n  hint: services the files add or drop change the cloud's shape: that is `kolla deploy`'s work (a switch to another network agent, say, is a migration of its own), not a swap",
            problems.join("\n  ")
        ),
    })
}

/// `--dry-run`: each stage, each service with why it comes there, and
/// for each node that runs it the image it runs and the one it would get.
fn print_plan(targets: &[Target<'_>], running: &[Vec<ObservedContainer>], stages: &[Vec<Step>]) {
    for (number, stage) in stages.iter().enumerate() {
        outln!("stage {} of {}:", number + 1, stages.len());
        for step in stage {
            let why: Vec<String> = step.causes.iter().map(ToString::to_string).collect();
            let why = if why.is_empty() {
                "first: it needs nothing".to_string()
            } else {
                why.join(", ")
            };
            outln!("  {}: {why}", step.service);
            for (target, observed) in targets.iter().zip(running) {
                let Some(wanted) = target.desired.services.get(&step.service) else {
                    continue;
                };
                let live = observed
                    .iter()
                    .find(|c| c.service == step.service && c.role == Role::Live);
                let change = match live {
                    Some(live) if live.image == wanted.service.image => {
                        format!("{} (same image; swapped if its config changed)", live.image)
                    }
                    Some(live) => format!("{} -> {}", live.image, wanted.service.image),
                    None => format!(
                        "not deployed ({}): `kolla deploy` creates it",
                        wanted.service.image
                    ),
                };
                outln!("    node {}: {change}", target.node.name);
            }
        }
    }
    for service in post_steps(targets, stages) {
        let command = targets
            .iter()
            .find_map(|t| {
                t.desired
                    .services
                    .get(&service)?
                    .service
                    .kolla
                    .post_upgrade
                    .clone()
            })
            .unwrap_or_default();
        outln!("then, post-upgrade: {service}: {}", command.join(" "));
    }
}
