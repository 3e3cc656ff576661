//! The verbs: `run` resolves what the user typed into `Settings` once and
//! dispatches to one file per verb family. Every verb ends in a typed
//! `Outcome` that `main` maps to an exit code, and every verb that works on
//! several nodes goes through `over_nodes`, which runs the work, reports
//! each node the same way and turns the failures into the outcome.
//!
//! Files: `build` (images), `targets` (inventory + compose files -> the
//! nodes to work on), `named` (service names on the command line, checked
//! first), `deploy` (deploy, pull), `lifecycle` (stop, start, restart,
//! destroy), `ps`, `prechecks`, `genpwd`, `post_deploy` (the admin's
//! client files), `swap` (upgrade, rollback), `recover` (recover, unlock),
//! `history`, `prune_images` (kolla's images nothing uses), `json` (what
//! `--output json` of the node-by-node verbs shares), `config` (the
//! resolved compose files, masked), `logs`, `exec` (with `live`, which finds a service's live
//! containers or refuses its name, `suggest` and `terminal`), `completions`
//! (completions and manpage, from `cli`'s definitions). Deploy, upgrade,
//! rollback, recover, start and restart hand each node to the
//! node pipeline (`deploy::pipeline::run`): verbs resolve, connect and
//! report; they do not sequence what happens on a node.

mod all_services;
mod build;
mod certs;
mod completions;
mod config;
mod deploy;
mod exec;
mod genpwd;
mod history;
mod json;
mod lifecycle;
mod live;
mod logs;
mod named;
mod post_deploy;
mod prechecks;
mod prune_images;
mod ps;
mod recover;
mod suggest;
mod swap;
mod table;
mod targets;
mod terminal;

use std::future::Future;

use futures_util::StreamExt;
use futures_util::future::join_all;

use crate::cli::{Cli, Command};
use crate::config::ConfigError;
use crate::deploy::error::DeployError;
use crate::deploy::fault::{self, FaultPoint};
use crate::deploy::lock::LockError;
use crate::engine::EngineError;
use crate::images::ImagesError;
use crate::settings::{Environment, Settings};

/// How a verb ended, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The work ran and some of it failed (details already printed);
    /// whatever changed was swapped back.
    Failed,
    /// What failed was the operator's input (details already printed).
    BadInput,
    /// A service's lock is held by another run: nothing was changed.
    Locked,
    /// A failure left work that `kolla recover` must finish.
    NeedsRecovery,
    /// The operator interrupted the run (Ctrl-C).
    Interrupted,
    /// The command `kolla exec` ran ended with this exit code, which is
    /// kolla's own.
    Exited(u8),
}

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NEEDS_RECOVERY: u8 = 3;
    pub const LOCKED: u8 = 4;
    pub const INTERRUPTED: u8 = 130;
}

impl Outcome {
    /// How a run with these failures ended: the gravest kind wins (work
    /// left for `kolla recover`, then a lock held by someone else, then a
    /// plain failure); bad input only when every failure was bad input.
    pub fn of_failures<'a>(errors: impl IntoIterator<Item = &'a anyhow::Error>) -> Outcome {
        let errors: Vec<&anyhow::Error> = errors.into_iter().collect();
        if errors.is_empty() {
            Outcome::Success
        } else if errors.iter().any(|e| needs_recovery(e)) {
            Outcome::NeedsRecovery
        } else if errors.iter().any(|e| is_locked(e)) {
            Outcome::Locked
        } else if errors.iter().all(|e| is_usage_error(e)) {
            Outcome::BadInput
        } else {
            Outcome::Failed
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => exit::OK,
            Outcome::Failed => exit::FAILED,
            Outcome::BadInput => exit::USAGE,
            Outcome::Locked => exit::LOCKED,
            Outcome::NeedsRecovery => exit::NEEDS_RECOVERY,
            Outcome::Interrupted => exit::INTERRUPTED,
            Outcome::Exited(code) => code,
        }
    }
}

fn deploy_errors(error: &anyhow::Error) -> impl Iterator<Item = &DeployError> {
    error
        .chain()
        .filter_map(|c| c.downcast_ref::<DeployError>())
}

fn needs_recovery(error: &anyhow::Error) -> bool {
    deploy_errors(error).any(DeployError::needs_recovery)
}

fn is_locked(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|c| matches!(c.downcast_ref::<LockError>(), Some(LockError::Held { .. })))
}

/// Whether an error is the operator's input (exit 2) rather than a failure
/// of the work (exit 1).
pub fn is_usage_error(error: &anyhow::Error) -> bool {
    deploy_errors(error).any(DeployError::is_bad_input)
        || error.chain().any(|e| {
            e.is::<ConfigError>()
                || e.is::<ImagesError>()
                || e.is::<crate::deploy::desired::DesiredError>()
                || e.is::<crate::deploy::plan::PlanError>()
                || e.is::<completions::UnknownVerb>()
                || e.is::<named::UnknownService>()
                || e.is::<lifecycle::Unconfirmed>()
                || e.downcast_ref::<live::LiveError>()
                    .is_some_and(live::LiveError::is_bad_input)
                || matches!(
                    e.downcast_ref::<EngineError>(),
                    Some(EngineError::Insecure { .. } | EngineError::BadEndpoint { .. })
                )
                || matches!(
                    e.downcast_ref::<crate::credentials::CredentialsError>(),
                    Some(crate::credentials::CredentialsError::Config { .. })
                )
        })
}

/// The exit code of an error that ended a verb before its outcome.
pub fn exit_code_of(error: &anyhow::Error) -> u8 {
    match Outcome::of_failures([error]) {
        Outcome::Success => exit::FAILED,
        outcome => outcome.exit_code(),
    }
}

/// An error and its causes on one line each joined by `: `, leaving out a
/// cause whose text an outer message already includes (most of ours embed
/// their source, so the plain chain would say everything twice).
pub fn describe_error(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What one node's work came to: lines for the operator, or its errors
/// (the node pipeline's result, and that of every other node verb).
pub type NodeReport = crate::deploy::pipeline::NodeResult;

/// How `over_nodes` goes through the nodes.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    /// Nodes worked on at once.
    pub batch: usize,
    /// Stop after a batch in which a node failed (swaps: never carry a
    /// bad change to the next node).
    pub stop_after_failure: bool,
    /// The per-node report on stderr (stdout then holds a JSON document).
    pub report_on_stderr: bool,
}

impl Fanout {
    /// Every node to its end, `forks` at a time.
    pub fn all(forks: usize) -> Fanout {
        Fanout {
            batch: forks.max(1),
            stop_after_failure: false,
            report_on_stderr: false,
        }
    }
    /// One node after another, stopping at the first that fails.
    pub const ONE_BY_ONE: Fanout = Fanout {
        batch: 1,
        stop_after_failure: true,
        report_on_stderr: false,
    };
}

/// Run `work` on each of `nodes` as `fanout` says, and report every node
/// alike: its lines as `node N: line` on stdout, or its errors on stderr
/// and `node N: FAILED`; nodes a failure kept from starting are named too.
/// The outcome is that of all the failures.
pub async fn over_nodes<T, W, F>(nodes: Vec<T>, fanout: Fanout, work: W) -> Outcome
where
    T: NodeName,
    W: Fn(T) -> F,
    F: Future<Output = NodeReport>,
{
    let mut failures = Vec::new();
    if !fanout.stop_after_failure {
        every_node(nodes, fanout, &work, &mut failures).await;
        return Outcome::of_failures(&failures);
    }
    let mut pending = nodes.into_iter().peekable();
    while pending.peek().is_some() {
        let batch: Vec<T> = pending.by_ref().take(fanout.batch.max(1)).collect();
        let names: Vec<String> = batch.iter().map(|n| n.node_name().to_string()).collect();
        let reports = join_all(batch.into_iter().map(&work)).await;
        let before = failures.len();
        for (name, report) in names.iter().zip(reports) {
            report_node(name, report, fanout, &mut failures);
        }
        if failures.len() > before {
            break;
        }
    }
    for node in pending {
        let line = format!(
            "node {}: not started (a node before it failed; rerun to continue)",
            node.node_name()
        );
        report_line(&line, fanout);
    }
    Outcome::of_failures(&failures)
}

/// `work` on every node to its end, `fanout.batch` at a time (a sliding
/// window: a slow node holds up no other); reports keep the nodes' order.
async fn every_node<T, W, F>(
    nodes: Vec<T>,
    fanout: Fanout,
    work: &W,
    failures: &mut Vec<anyhow::Error>,
) where
    T: NodeName,
    W: Fn(T) -> F,
    F: Future<Output = NodeReport>,
{
    let names: Vec<String> = nodes.iter().map(|n| n.node_name().to_string()).collect();
    let reports: Vec<NodeReport> = each_node(nodes, fanout.batch, work).await;
    for (name, report) in names.iter().zip(reports) {
        report_node(name, report, fanout, failures);
    }
}

/// `work` on every node, wave after wave (`waves`: indexes into `nodes`,
/// as `node_order` gives them): a wave starts once every node of the one
/// before succeeded; after a failure, later waves' nodes are named, not
/// started.
pub async fn over_nodes_in_waves<T, W, F>(
    nodes: Vec<T>,
    waves: &[Vec<usize>],
    fanout: Fanout,
    work: W,
) -> Outcome
where
    T: NodeName,
    W: Fn(T) -> F,
    F: Future<Output = NodeReport>,
{
    let mut slots: Vec<Option<T>> = nodes.into_iter().map(Some).collect();
    let mut failures = Vec::new();
    for (number, wave) in waves.iter().enumerate() {
        let batch: Vec<T> = wave
            .iter()
            .filter_map(|&i| slots.get_mut(i)?.take())
            .collect();
        if !failures.is_empty() {
            for node in batch {
                let line = format!(
                    "node {}: not started (its roles come after those of a node that failed; rerun to continue)",
                    node.node_name()
                );
                report_line(&line, fanout);
            }
            continue;
        }
        if waves.len() > 1 {
            let names: Vec<&str> = batch.iter().map(|n| n.node_name()).collect();
            crate::progress::say(format!(
                "wave {} of {}: {}",
                number + 1,
                waves.len(),
                names.join(", ")
            ));
        }
        every_node(batch, fanout, &work, &mut failures).await;
        if number + 1 < waves.len() {
            fault::point(FaultPoint::WaveDone);
        }
    }
    Outcome::of_failures(&failures)
}

/// `work` on every node, `forks` at a time, results in the nodes' order
/// (for verbs that print a table of all nodes rather than a report each).
pub async fn each_node<T, W, F, R>(nodes: T, forks: usize, work: W) -> Vec<R>
where
    T: IntoIterator,
    W: FnMut(T::Item) -> F,
    F: Future<Output = R>,
{
    futures_util::stream::iter(nodes.into_iter().map(work))
        .buffered(forks.max(1))
        .collect()
        .await
}

fn report_node(name: &str, report: NodeReport, fanout: Fanout, failures: &mut Vec<anyhow::Error>) {
    match report {
        Ok(lines) => {
            for line in lines {
                report_line(&format!("node {name}: {line}"), fanout);
            }
        }
        Err(crate::deploy::pipeline::NodeErrors(errors)) => {
            for error in &errors {
                eprintln!("error: {}", describe_error(error));
            }
            report_line(&format!("node {name}: FAILED"), fanout);
            failures.extend(errors);
        }
    }
}

fn report_line(line: &str, fanout: Fanout) {
    if fanout.report_on_stderr {
        eprintln!("{line}");
    } else {
        outln!("{line}");
    }
}

/// What `over_nodes` calls a node in its report.
pub trait NodeName {
    fn node_name(&self) -> &str;
}

impl NodeName for &crate::config::inventory::Node {
    fn node_name(&self) -> &str {
        &self.name
    }
}

/// The whole of the `kolla` binary once the command line is parsed: the
/// verb on a tokio runtime, its outcome or error as an exit code. Here and
/// not in `main.rs` because a release build instantiates the async verbs
/// where they are first polled: from the binary, every one of them was
/// compiled a second time (74 s of a 381 s cold build on two cores).
pub fn main(cli: Cli) -> std::process::ExitCode {
    use std::process::ExitCode;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(error) => {
            eprintln!("error: {}", describe_error(&error));
            ExitCode::from(exit_code_of(&error))
        }
    }
}

/// Resolve the settings and run the verb.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    crate::progress::started();
    // The helper container has no config: its task is all it needs; nor
    // do the completions and the man page, which must work while
    // globals.yml is being mended.
    match &cli.command {
        Command::SwapHelper(args) => {
            crate::deploy::helper::serve(&args.task).await?;
            return Ok(Outcome::Success);
        }
        Command::Completions(args) => return completions::completions(args),
        Command::Manpage(args) => return completions::manpage(args),
        _ => {}
    }
    let settings = Settings::resolve(&cli, Environment::read())?;
    crate::progress::init_steps(settings.colour, settings.verbosity);
    let s = &settings;
    let outcome = match cli.command {
        Command::Build(args) => build::build(s, args).await,
        Command::Deploy(args) => deploy::deploy(s, args).await,
        Command::Pull(args) => deploy::pull(s, args).await,
        Command::Ps(args) => ps::ps(s, args).await,
        Command::Stop(args) => lifecycle::stop(s, args).await,
        Command::Start(args) => lifecycle::start(s, args).await,
        Command::Restart(args) => lifecycle::restart(s, args).await,
        Command::Destroy(args) => lifecycle::destroy(s, args).await,
        Command::Prechecks(args) => prechecks::prechecks(s, args).await,
        Command::Config(args) => config::config(s, args),
        Command::Genpwd(args) => genpwd::genpwd(s, args),
        Command::PostDeploy(args) => post_deploy::post_deploy(s, args),
        Command::Certs(args) => certs::certs(s, args),
        Command::Upgrade(args) => swap::upgrade(s, args).await,
        Command::Rollback(args) => swap::rollback(s, args).await,
        Command::Unlock(args) => recover::unlock(s, args).await,
        Command::Recover(args) => recover::recover(s, args).await,
        Command::History(args) => history::history(s, args).await,
        Command::PruneImages(args) => prune_images::prune_images(s, args).await,
        Command::Logs(args) => logs::logs(s, args).await,
        Command::Exec(args) => exec::exec(s, args).await,
        Command::SwapHelper(_) | Command::Completions(_) | Command::Manpage(_) => {
            Ok(Outcome::Success)
        }
    };
    crate::progress::steps().end();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gravest_failure_decides_the_outcome() {
        let plain = anyhow::anyhow!("boom");
        let bad_input: anyhow::Error = ConfigError::MissingDir("x".into()).into();
        let locked: anyhow::Error = LockError::Held {
            service: "web".into(),
            holder: Box::default(),
            waited: None,
        }
        .into();
        let stuck: anyhow::Error = DeployError::NeedsRecovery {
            node: "n".into(),
            service: "web".into(),
            failure: "f".into(),
            stuck: "s".into(),
        }
        .into();
        assert_eq!(Outcome::of_failures([]), Outcome::Success);
        assert_eq!(Outcome::of_failures([&plain]), Outcome::Failed);
        assert_eq!(Outcome::of_failures([&bad_input]), Outcome::BadInput);
        assert_eq!(Outcome::of_failures([&bad_input, &plain]), Outcome::Failed);
        assert_eq!(Outcome::of_failures([&plain, &locked]), Outcome::Locked);
        assert_eq!(
            Outcome::of_failures([&locked, &stuck, &plain]),
            Outcome::NeedsRecovery
        );
        let codes: Vec<u8> = [
            Outcome::Success,
            Outcome::Failed,
            Outcome::BadInput,
            Outcome::NeedsRecovery,
            Outcome::Locked,
            Outcome::Interrupted,
        ]
        .iter()
        .map(|o| o.exit_code())
        .collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 130]);
    }

    #[test]
    fn an_endpoint_written_wrong_is_bad_input_and_a_silent_engine_a_failure() {
        let bad: anyhow::Error = EngineError::BadEndpoint {
            endpoint: "ssh://host:port".into(),
            message: "expected ssh://[user@]host[:port]".into(),
        }
        .into();
        let silent: anyhow::Error = EngineError::Unresponsive {
            endpoint: "tcp://127.0.0.1:2375".into(),
            what: "list containers".into(),
            after: "5s".into(),
        }
        .into();
        assert_eq!(exit_code_of(&bad.context("node n1")), exit::USAGE);
        assert_eq!(exit_code_of(&silent.context("node n7")), exit::FAILED);
    }

    #[test]
    fn a_repeated_cause_is_said_once() {
        let error = anyhow::Error::from(ConfigError::MissingDir("/x".into()))
            .context("config directory /x does not exist (pass --config-dir or create it)")
            .context("node a");
        assert_eq!(
            describe_error(&error),
            "node a: config directory /x does not exist (pass --config-dir or create it)"
        );
    }
}
