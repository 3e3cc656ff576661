//! The verbs: resolve what the user typed into settings, then call the
//! modules that do the work. Errors come back typed so `main` can map them
//! to exit codes: bad input is 2, a failed run is 1.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::{BuildArgs, Cli, Command};
use crate::config::{ConfigError, Globals, globals};
use crate::engine::{Endpoint, Engine, EngineError};
use crate::images::build::{self, BuildOptions};
use crate::images::render::{self, Override};
use crate::images::{ImagesError, catalog};
use crate::progress::Progress;
use crate::{nodes, swaps};

/// How a verb ended, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The work ran and some of it failed (details already printed).
    Failed,
    /// The operator interrupted the run (Ctrl-C).
    Interrupted,
    /// A failure left work that `kolla recover` must finish.
    NeedsRecovery,
}

impl Outcome {
    /// How a run with these failures ended: it needs recovery if any of
    /// them left work behind.
    pub fn of_failures<'a>(errors: impl IntoIterator<Item = &'a anyhow::Error>) -> Outcome {
        let left_work = |e: &anyhow::Error| {
            e.chain().any(|c| {
                c.downcast_ref::<crate::deploy::apply::DeployError>()
                    .is_some_and(|d| d.needs_recovery())
            })
        };
        let mut outcome = Outcome::Success;
        for error in errors {
            outcome = Outcome::Failed;
            if left_work(error) {
                return Outcome::NeedsRecovery;
            }
        }
        outcome
    }
}

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NEEDS_RECOVERY: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

/// Whether an error is the operator's input (exit 2) rather than a failure
/// of the work (exit 1).
pub fn is_usage_error(error: &anyhow::Error) -> bool {
    nodes::is_usage_error(error)
        || error.chain().any(|e| {
            e.is::<ConfigError>()
                || e.is::<ImagesError>()
                || matches!(
                    e.downcast_ref::<EngineError>(),
                    Some(EngineError::Insecure { .. })
                )
        })
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

pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    nodes::started();
    // The helper container has no config: its task is all it needs.
    if let Command::SwapHelper = cli.command {
        crate::deploy::helper::serve().await?;
        return Ok(Outcome::Success);
    }
    let (config_dir, required) = match &cli.config_dir {
        Some(dir) => (dir.clone(), true),
        None => (globals::default_config_dir(), false),
    };
    let globals = Globals::load(&config_dir, required)?;
    let cx = || -> Result<nodes::Context, ConfigError> {
        Ok(nodes::Context {
            globals: resolve_node_globals(globals.clone(), &config_dir)?,
            config_dir: config_dir.clone(),
            state_dir: cli.state_dir.clone(),
        })
    };
    match cli.command {
        Command::Build(args) => build(globals.clone(), &config_dir, args).await,
        Command::Deploy(args) => nodes::deploy(&cx()?, args).await,
        Command::Ps(args) => nodes::ps(&cx()?, args).await,
        Command::Pull(args) => nodes::pull(&cx()?, args).await,
        Command::Stop(args) => nodes::stop(&cx()?, args).await,
        Command::Destroy(args) => nodes::destroy(&cx()?, args).await,
        Command::Prechecks(args) => nodes::prechecks(&cx()?, args).await,
        Command::Genpwd(args) => nodes::genpwd(&cx()?, args),
        Command::Upgrade(args) => swaps::upgrade(&cx()?, args).await,
        Command::Rollback(args) => swaps::rollback(&cx()?, args).await,
        Command::Unlock(args) => swaps::unlock(&cx()?, args).await,
        Command::History(args) => swaps::history(&cx()?, args).await,
        Command::Recover(args) => swaps::recover(&cx()?, args).await,
        Command::SwapHelper => Ok(Outcome::Success),
    }
}

/// Globals as the node verbs use them (validated; no overrides).
fn resolve_node_globals(globals: Globals, config_dir: &Path) -> Result<Globals, ConfigError> {
    globals.validate(&config_dir.join(globals::GLOBALS_FILE))?;
    Ok(globals)
}

/// Apply the command line's overrides to globals.yml and validate the result.
fn resolve_globals(
    mut globals: Globals,
    config_dir: &Path,
    args: &BuildArgs,
) -> Result<Globals, ConfigError> {
    if let Some(tag) = &args.tag {
        globals.tag = tag.clone();
    }
    if let Some(namespace) = &args.namespace {
        globals.namespace = namespace.clone();
    }
    if let Some(registry) = &args.registry {
        globals.registry = Some(registry.clone());
    }
    if let Some(base) = &args.base_image {
        globals.base_image = base.clone();
    }
    let origin = config_dir.join(globals::GLOBALS_FILE);
    globals.validate(&origin)?;
    if args.push && globals.registry.is_none() {
        return Err(ConfigError::Invalid {
            path: origin,
            message: "--push needs a registry: set `registry` in globals.yml or pass --registry"
                .into(),
        });
    }
    Ok(globals)
}

async fn build(globals: Globals, config_dir: &Path, args: BuildArgs) -> anyhow::Result<Outcome> {
    let globals = resolve_globals(globals, config_dir, &args)?;
    let overrides = args
        .template_override
        .iter()
        .map(|p| Override::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = catalog::load_tree(&args.images_dir)?;
    let tree = render::render_tree(sources, &globals, &overrides)?;

    let mut patterns = args.patterns.clone();
    if let Some(profile) = &args.profile {
        patterns.extend(build::profile_patterns(&globals, profile)?);
    }
    let selection = build::select(&tree, &patterns, args.skip_parents)?;

    if args.list_images {
        for name in &selection.build {
            println!("{name}");
        }
        return Ok(Outcome::Success);
    }
    if args.list_dependencies {
        print!("{}", build::dependency_tree_text(&tree, &selection.build));
        return Ok(Outcome::Success);
    }
    if let Some(dir) = &args.render_only {
        write_rendered(&tree, &selection.build, dir)?;
        eprintln!(
            "rendered {} images into {}",
            selection.build.len(),
            dir.display()
        );
        return Ok(Outcome::Success);
    }

    let engine = Engine::connect(&Endpoint::from_env()).await?;
    let options = BuildOptions {
        threads: usize::from(args.threads),
        retries: args.retries,
        push: args.push,
        no_cache: args.no_cache,
        timeout: std::time::Duration::from_secs(args.build_timeout),
        logs_dir: args.logs_dir.clone(),
    };
    let progress = Arc::new(Progress::for_stderr());
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler: never report an interruption.
            std::future::pending::<()>().await;
        }
    };
    let summary = build::build_images(
        &engine,
        &tree,
        &globals,
        &selection,
        &options,
        progress,
        interrupted,
    )
    .await?;
    print!("{}", summary.human());
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("{}: cannot write the summary", path.display()))?;
    }
    Ok(if summary.cancelled {
        Outcome::Interrupted
    } else if summary.success() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// `--render-only`: each image's rendered Dockerfile and context files under
/// `dir/<image>/`, exactly what the builder would receive.
fn write_rendered(tree: &render::Tree, names: &[String], dir: &Path) -> anyhow::Result<()> {
    for name in names {
        let image = &tree.images[name];
        let target = dir.join(name);
        let write = |path: &Path, data: &[u8], mode: u32| -> anyhow::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create", parent.display()))?;
            }
            std::fs::write(path, data)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("{}: cannot set its mode", path.display()))
        };
        write(
            &target.join("Dockerfile"),
            image.dockerfile.as_bytes(),
            0o644,
        )?;
        for file in &image.files {
            write(&target.join(&file.path), &file.data, file.mode)?;
        }
    }
    Ok(())
}
