//! `kolla build`: render the image tree with globals and the command
//! line's overrides, select images, and build them parents first (or only
//! list, show dependencies, or render into a folder).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::Outcome;
use crate::cli::BuildArgs;
use crate::engine::Engine;
use crate::images::build::{self, BuildOptions};
use crate::images::catalog;
use crate::images::package_cache::PackageCache;
use crate::images::render::{self, Override};
use crate::progress::Progress;
use crate::settings::Settings;

pub async fn build(settings: &Settings, args: BuildArgs) -> anyhow::Result<Outcome> {
    let globals = settings.build_globals(&args)?;
    let overrides = args
        .template_override
        .iter()
        .map(|p| Override::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = load_tree(&args.images_dir, &globals)?;
    let tree = render::render_tree(sources, &globals, &overrides)?;

    let patterns = selected_patterns(&args, &globals)?;
    let selection = build::select(&tree, &patterns, args.skip_parents)?;
    say_not_in_release(&tree, &globals, &patterns);

    if args.list_images {
        for name in &selection.build {
            outln!("{name}");
        }
        return Ok(Outcome::Success);
    }
    if args.list_dependencies {
        out!("{}", build::dependency_tree_text(&tree, &selection.build));
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

    let engine = Engine::connect(&settings.environment.local_endpoint).await?;
    let mut options = build_options(settings, &args, &globals)?;
    let cache =
        match args.no_package_cache || !settings.environment.local_endpoint.is_this_machine() {
            true => None,
            false => Some(PackageCache::start().await.context(
                "cannot start the build's package cache (--no-package-cache goes without)",
            )?),
        };
    options.http_proxy = cache.as_ref().map(PackageCache::proxy_url);
    let (colour, verbosity) = (settings.colour, settings.verbosity);
    let progress = Arc::new(Progress::for_stderr("build", colour, verbosity));
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
    out!("{}", summary.human());
    if let Some(cache) = &cache {
        eprintln!("{}", cache.stats().human());
    }
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

/// The image patterns asked for: those given, and those of `--profile`.
fn selected_patterns(
    args: &BuildArgs,
    globals: &crate::config::Globals,
) -> anyhow::Result<Vec<String>> {
    let mut patterns = args.patterns.clone();
    if let Some(profile) = &args.profile {
        patterns.extend(build::profile_patterns(globals, profile)?);
    }
    Ok(patterns)
}

/// Name the images of the tree the release does not build, when the
/// whole tree is asked for (`patterns` empty).
fn say_not_in_release(tree: &render::Tree, globals: &crate::config::Globals, patterns: &[String]) {
    if patterns.is_empty() && !tree.not_in_release.is_empty() {
        eprintln!(
            "not in release {}: {} (their templates render nothing for it)",
            globals.openstack_release,
            tree.not_in_release
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The image tree in `dir`, each image with a reference the engine takes
/// (each part of it may be valid and the whole too long).
fn load_tree(
    dir: &Path,
    globals: &crate::config::Globals,
) -> anyhow::Result<Vec<catalog::ImageSource>> {
    let sources = catalog::load_tree(dir)?;
    for source in &sources {
        let reference = globals.image_ref(&source.name);
        if let Err(e) = crate::config::reference::parse(&reference) {
            return Err(crate::config::ConfigError::Invalid {
                path: source.template_path.clone(),
                message: format!(
                    "image {} would be {reference:?}, which {e} (shorten the registry, namespace or image name)",
                    source.name
                ),
            }
            .into());
        }
    }
    Ok(sources)
}

/// The flags as the builder's options; with `--push`, the registry's
/// login from the operator's Docker config (one registry for every image
/// of the build: one lookup).
fn build_options(
    settings: &Settings,
    args: &BuildArgs,
    globals: &crate::config::Globals,
) -> anyhow::Result<BuildOptions> {
    let push_auth = match args.push {
        true => settings
            .credentials()?
            .for_image(&globals.image_ref("base"))?,
        false => None,
    };
    Ok(BuildOptions {
        threads: usize::from(args.threads),
        retries: args.retries,
        push: args.push,
        push_auth,
        no_cache: args.no_cache,
        timeout: std::time::Duration::from_secs(args.build_timeout),
        logs_dir: args.logs_dir.clone(),
        http_proxy: None,
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
