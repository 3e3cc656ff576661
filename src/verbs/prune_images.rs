//! `kolla prune-images`: on each selected node, remove kolla's own images
//! that nothing needs (`deploy::unused_images` decides which) and say what
//! went and the bytes freed. It holds the lock of every service on the
//! node while it looks and removes, so no swap pulls an image (not yet in
//! a container) between the look and the removal; a lock another run
//! holds fails the node (exit 4), or is waited for with `--lock-wait`. A
//! stale lock is never taken over: recovery needs what it records.
//! `--dry-run` says what would go and takes no lock.

use std::collections::{BTreeMap, HashMap};

use super::targets::{self, Target};
use super::{Fanout, NodeReport, Outcome, over_nodes};
use crate::cli::PruneImagesArgs;
use crate::deploy::context::{ApplyOptions, NodeRun};
use crate::deploy::error::DeployError;
use crate::deploy::labels::{ObservedContainer, Role, State};
use crate::deploy::lock::{Holder, LockError, Takeover};
use crate::deploy::session::{Intent, Session};
use crate::deploy::unused_images::{Ours, Unused, estimate_from_layers, unused_images};
use crate::engine::{Engine, EngineError};
use crate::settings::Settings;

/// The locks' reason, as a run waiting for one of them is told.
const ACTION: &str = "prune-images";

pub async fn prune_images(settings: &Settings, args: PruneImagesArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let selected = targets::resolve(&inventory, settings, &args.nodes)?;
    let options = ApplyOptions {
        lock_wait: args.lock.lock_wait,
        ..ApplyOptions::default()
    };
    let asked = &targets::ask_engines(settings, selected.iter().map(|t| t.node)).await;
    let (options, dry_run) = (&options, args.dry_run);
    Ok(
        over_nodes(selected, Fanout::all(settings.forks), |target| async move {
            let engine = asked.connect(settings, target.node).await?;
            let run = targets::node_run(&engine, &target.node.name, settings, options);
            prune_node(&run, settings, &ours(&target, settings), dry_run).await
        })
        .await,
    )
}

/// What makes an image of `target` kolla's, and which stay regardless.
fn ours(target: &Target<'_>, settings: &Settings) -> Ours {
    let globals = &settings.globals;
    let references = target.desired.services.values();
    Ours::of(
        references.map(|s| s.service.image.as_str()),
        &globals.image_prefix(),
        &globals.tag,
    )
}

/// One node: a dry run looks and says; a run takes every service's lock,
/// looks again under them, removes, and releases them whatever happened.
async fn prune_node(
    run: &NodeRun<'_>,
    settings: &Settings,
    ours: &Ours,
    dry_run: bool,
) -> NodeReport {
    if dry_run {
        let unused = unused_on(run.engine, ours)
            .await
            .map_err(|e| run.engine_error(e))?;
        return Ok(report(&unused, "would remove", "would be freed"));
    }
    let observed = targets::observe(settings, run.engine, run.node).await?;
    let sessions = lock_every_service(run, &observed).await?;
    let removed = remove_unused(run, ours).await;
    let released = release(sessions).await;
    let lines = removed?;
    released?;
    Ok(lines)
}

/// The images of the node that nothing needs, looked at now, with the
/// bytes each frees (estimated from the images' layers where the engine
/// does not count shared bytes: an inspect per image, older engines only).
async fn unused_on(engine: &Engine, ours: &Ours) -> Result<Vec<Unused>, EngineError> {
    let in_use = engine.image_ids_in_use().await?;
    let images = engine.list_images().await?;
    let mut unused = unused_images(&images, &in_use, ours);
    if unused.iter().any(|i| !i.exact) {
        let mut layers = HashMap::new();
        for image in &images {
            if let Some(info) = engine.image(&image.id).await? {
                layers.insert(image.id.clone(), info.layers);
            }
        }
        estimate_from_layers(&mut unused, &images, &layers);
    }
    Ok(unused)
}

/// Take the lock of every service with a container on the node, in name
/// order (two prunes meet in the same order), each made from an image one
/// of the service's containers uses (the live one's first). A lock held
/// by another run releases the ones taken and fails the node.
async fn lock_every_service<'r, 'a>(
    run: &'r NodeRun<'a>,
    observed: &[ObservedContainer],
) -> Result<Vec<Session<'r, 'a>>, DeployError> {
    let fallback = observed.iter().find(|c| !c.digest.is_empty());
    let mut services: BTreeMap<&str, Option<&ObservedContainer>> = BTreeMap::new();
    for c in observed {
        let entry = services.entry(c.service.as_str()).or_insert(None);
        let better = c.role == Role::Live || entry.is_none();
        if !c.digest.is_empty() && better {
            *entry = Some(c);
        }
    }
    let mut sessions = Vec::new();
    for (service, made_from) in services {
        let Some(image) = made_from.or(fallback).map(|c| c.digest.as_str()) else {
            // Only other runs' locks on the node (no image to make ours
            // from): one is creating the first containers.
            let _ = release(sessions).await;
            return Err(held(run, observed, service).await);
        };
        let live = observed
            .iter()
            .find(|c| c.service == service && c.role == Role::Live);
        let intent = Intent {
            service,
            image,
            image_volumes: None,
            action: ACTION,
            target: "images no container uses".to_string(),
            from: live.map(|c| c.generation),
            from_running: live.is_some_and(|c| c.state == State::Running),
            restore_db: None,
            takeover: Takeover::Never,
        };
        match Session::open(run, intent).await {
            Ok(session) => sessions.push(session),
            Err(e) => {
                let _ = release(sessions).await;
                return Err(e);
            }
        }
    }
    Ok(sessions)
}

/// The lock of `service` another run holds, as a lock that is refused
/// says it (at once: with no image on the node to make a lock from, there
/// is nothing to try again with).
async fn held(run: &NodeRun<'_>, observed: &[ObservedContainer], service: &str) -> DeployError {
    let lock = observed
        .iter()
        .find(|c| c.service == service && c.role == Role::Lock);
    let details = match lock {
        Some(lock) => run.engine.inspect(&lock.id).await,
        None => Ok(None),
    };
    let holder = match details {
        Ok(details) => details.map(|d| Holder::from_labels(&d)).unwrap_or_default(),
        Err(e) => return run.engine_error(e),
    };
    DeployError::Lock {
        node: run.node.to_string(),
        source: LockError::Held {
            service: service.to_string(),
            holder: Box::new(holder),
            waited: None,
        },
    }
}

/// Release `sessions` (no history record: nothing was swapped); the first
/// failure, once every one was tried.
async fn release(sessions: Vec<Session<'_, '_>>) -> Result<(), DeployError> {
    let mut first = Ok(());
    for session in sessions.into_iter().rev() {
        let released = session.close(None, Ok(()), |_: &()| None).await;
        if first.is_ok() {
            first = released;
        }
    }
    first
}

/// Remove each unused image by its tags (the engine deletes an image with
/// its last tag; never forced, so an image a container took up meanwhile
/// stays and is said to), then the lines to report.
async fn remove_unused(run: &NodeRun<'_>, ours: &Ours) -> Result<Vec<String>, DeployError> {
    let unused = unused_on(run.engine, ours)
        .await
        .map_err(|e| run.engine_error(e))?;
    let mut removed = Vec::new();
    let mut lines = Vec::new();
    for image in unused {
        match remove_tags(run.engine, &image).await {
            Ok(()) => removed.push(image),
            Err(EngineError::Conflict { message, .. }) => {
                lines.push(format!("kept {}: {message}", image.tags.join(", ")))
            }
            Err(e) => return Err(run.engine_error(e)),
        }
    }
    lines.extend(report(&removed, "removed", "freed"));
    Ok(lines)
}

async fn remove_tags(engine: &Engine, image: &Unused) -> Result<(), EngineError> {
    for tag in &image.tags {
        engine.remove_image(tag, false).await?;
    }
    Ok(())
}

/// A line per image (`verb` it), then the count and the bytes (`freed`).
fn report(images: &[Unused], verb: &str, freed: &str) -> Vec<String> {
    if images.is_empty() {
        return vec!["no unused kolla image".to_string()];
    }
    let mut lines: Vec<String> = images
        .iter()
        .map(|i| {
            let id = i.id.trim_start_matches("sha256:");
            let id = id.get(..12).unwrap_or(id);
            format!(
                "{verb} {} ({id}, {})",
                i.tags.join(", "),
                size_text(i.bytes)
            )
        })
        .collect();
    let bytes: u64 = images.iter().map(|i| i.bytes).sum();
    let bound = match images.iter().all(|i| i.exact) {
        true => "",
        // Engines before API 1.42 do not count the layers images share:
        // the figure is estimated from the layers (`estimate_from_layers`).
        false => "at most ",
    };
    lines.push(format!(
        "{} image{}, {bound}{} ({bytes} bytes) {freed}",
        images.len(),
        if images.len() == 1 { "" } else { "s" },
        size_text(bytes)
    ));
    lines
}

/// Bytes as the operator reads them: `812 B`, `3.4 MiB`, `1.2 GiB`.
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unused(tag: &str, bytes: u64, exact: bool) -> Unused {
        Unused {
            id: "sha256:0123456789abcdef".into(),
            tags: vec![tag.into()],
            bytes,
            exact,
        }
    }

    #[test]
    fn the_report_names_each_image_and_the_bytes_freed() {
        let lines = report(
            &[unused("k/a:1", 2048, true), unused("k/b:1", 1024, true)],
            "removed",
            "freed",
        );
        assert_eq!(
            lines,
            [
                "removed k/a:1 (0123456789ab, 2.0 KiB)",
                "removed k/b:1 (0123456789ab, 1.0 KiB)",
                "2 images, 3.0 KiB (3072 bytes) freed",
            ]
        );
        let lines = report(
            &[unused("k/a:1", 5, false)],
            "would remove",
            "would be freed",
        );
        assert_eq!(lines[1], "1 image, at most 5 B (5 bytes) would be freed");
        assert_eq!(report(&[], "removed", "freed"), ["no unused kolla image"]);
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size_text(1023), "1023 B");
        assert_eq!(size_text(3 << 20), "3.0 MiB");
        assert_eq!(size_text(5 << 40), "5.0 TiB");
        assert_eq!(size_text(u64::MAX), "16777216.0 TiB");
    }
}
