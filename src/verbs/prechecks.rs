//! `kolla prechecks`: what a deploy needs of each node, checked before
//! one: the engine answers, every image is there, host ports are free,
//! there is disk space, the folders services share mounts through can be
//! made shared, and privileged containers start (or the node's
//! `privileged` setting copes with an engine that refuses them). Each
//! check is named and passes, fails or warns (passes, but says what it
//! could not check); `--output json` prints them node by node.

use serde::Serialize;

use super::Outcome;
use super::json::{self, NodeEntry};
use super::targets::{self, Target, resolve};
use crate::cli::{OutputFormat, PrechecksArgs};
use crate::config::inventory::{Node, PrivilegedMode};
use crate::deploy::labels::{Role, State};
use crate::deploy::{node_prep, privileged};
use crate::engine::Engine;
use crate::settings::Settings;

/// One check of a node.
#[derive(Debug, Serialize)]
struct Check {
    /// What was checked: `engine`, `image`, `host port`, `shared mount`,
    /// `disk` or `privileged`.
    name: &'static str,
    status: Status,
    message: String,
}

/// How a check came out; a warning passes (it is said, never fails the
/// run): something not checked, or a setting that copes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Passed,
    Failed,
    Warning,
}

impl Check {
    fn passed(name: &'static str, message: String) -> Check {
        Check {
            name,
            status: Status::Passed,
            message,
        }
    }

    fn failed(name: &'static str, message: String) -> Check {
        Check {
            status: Status::Failed,
            ..Check::passed(name, message)
        }
    }

    fn warning(name: &'static str, message: String) -> Check {
        Check {
            status: Status::Warning,
            ..Check::passed(name, message)
        }
    }
}

/// A node's part of `prechecks --output json`.
#[derive(Debug, Serialize)]
struct NodeChecks {
    checks: Vec<Check>,
}

pub async fn prechecks(settings: &Settings, args: PrechecksArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let targets = resolve(&inventory, settings, &args.nodes)?;
    let asked = &targets::ask_engines(settings, targets.iter().map(|t| t.node)).await;
    let results = super::each_node(targets.iter(), settings.forks, |target| {
        precheck_node(target, settings, asked)
    })
    .await;
    let failed = results
        .iter()
        .flat_map(|(_, checks)| checks)
        .any(|c| c.status == Status::Failed);
    match args.output {
        OutputFormat::Json => json::print(
            &results
                .into_iter()
                .map(|(node, checks)| NodeEntry {
                    node,
                    result: if checks.iter().any(|c| c.status == Status::Failed) {
                        "failed"
                    } else {
                        "ok"
                    },
                    errors: Vec::new(),
                    report: NodeChecks { checks },
                })
                .collect::<Vec<_>>(),
        )?,
        OutputFormat::Human => {
            for (name, checks) in results {
                for check in checks {
                    let mark = match check.status {
                        Status::Failed => "FAIL",
                        Status::Passed | Status::Warning => "ok  ",
                    };
                    outln!("{name}: {mark} {}", check.message);
                }
            }
        }
    }
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

async fn precheck_node(
    target: &Target<'_>,
    settings: &Settings,
    asked: &targets::Asked,
) -> (String, Vec<Check>) {
    let globals = &settings.globals;
    let node = target.node;
    let mut lines = Vec::new();
    let engine = match asked.connect(settings, node).await {
        Ok(engine) => engine,
        Err(e) => {
            lines.push(Check::failed("engine", format!("engine: {e:#}")));
            return (node.name.clone(), lines);
        }
    };
    match engine.server_version().await {
        Ok((version, api)) => lines.push(Check::passed(
            "engine",
            format!("engine {version} (API {api}) at {}", engine.endpoint()),
        )),
        Err(e) => lines.push(Check::failed("engine", format!("engine version: {e}"))),
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
                lines.push(Check::passed("image", format!("image {image} present")));
            }
            Ok(None) => lines.push(Check::failed(
                "image",
                format!("image {image} missing (kolla build, or push it and kolla pull)"),
            )),
            Err(e) => lines.push(Check::failed("image", format!("image {image}: {e}"))),
        }
    }
    lines.extend(check_host_ports(target, &engine, settings).await);
    lines.extend(check_shared_mounts(target, &engine, settings).await);
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
async fn check_host_ports(target: &Target<'_>, engine: &Engine, settings: &Settings) -> Vec<Check> {
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
        return vec![Check::warning(
            "host port",
            format!(
                "host ports of {} services not checked: the engine is remote",
                wanted.len()
            ),
        )];
    }
    let running: Vec<String> = match targets::observe(settings, engine, &target.node.name).await {
        Ok(observed) => observed
            .into_iter()
            .filter(|c| c.role == Role::Live && c.state == State::Running)
            .map(|c| c.service)
            .collect(),
        Err(e) => {
            return vec![Check::failed(
                "host port",
                format!("cannot list containers: {e}"),
            )];
        }
    };
    wanted
        .into_iter()
        .filter(|(service, _)| !running.iter().any(|r| r == service))
        .map(
            |(service, port)| match std::net::TcpListener::bind(("0.0.0.0", port)) {
                Ok(_) => Check::passed("host port", format!("port {port} free for {service}")),
                Err(e) => Check::failed(
                    "host port",
                    format!("port {port} that {service} needs is taken ({e})"),
                ),
            },
        )
        .collect()
}

/// How long the mounts check may run: it reads one file.
const MOUNTS_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The node folders services bind with shared propagation
/// (`x-kolla.host_shared_mounts`): shared already, or a deploy will make
/// them so. The check runs with the privileges that needs, so a node that
/// refuses them fails here, not halfway through a deploy.
async fn check_shared_mounts(
    target: &Target<'_>,
    engine: &Engine,
    settings: &Settings,
) -> Vec<Check> {
    let mut wanted: Vec<(&str, Vec<&str>)> = Vec::new();
    for d in target.desired.services.values() {
        for path in &d.service.kolla.host_shared_mounts {
            match wanted.iter_mut().find(|(p, _)| p == path) {
                Some((_, services)) => services.push(&d.service.name),
                None => wanted.push((path, vec![&d.service.name])),
            }
        }
    }
    let Some(first) = target
        .desired
        .services
        .values()
        .find(|d| !d.service.kolla.host_shared_mounts.is_empty())
    else {
        return Vec::new();
    };
    let paths: Vec<String> = wanted.iter().map(|(p, _)| p.to_string()).collect();
    let owner = node_prep::JobOwner {
        prefix: &settings.globals.container_prefix,
        project: &settings.globals.project,
        service: &first.service.name,
        image: &first.service.image,
    };
    let spec = node_prep::shared_mounts_check(&owner, &paths);
    let ran = match engine
        .run_spec_to_completion(&spec, MOUNTS_CHECK_LIMIT)
        .await
    {
        Ok(ran) if ran.exit_code == 0 => ran,
        Ok(ran) => {
            return vec![Check::failed(
                "shared mount",
                format!(
                    "cannot look at the node's mounts ({}); make {} shared mounts yourself (mount --bind DIR DIR; mount --make-shared DIR)",
                    ran.output.trim(),
                    paths.join(" ")
                ),
            )];
        }
        Err(e) => {
            return vec![Check::failed(
                "shared mount",
                format!("node mounts check: {e}"),
            )];
        }
    };
    let states = node_prep::parse_mounts_check(&ran.output);
    wanted
        .into_iter()
        .map(|(path, services)| {
            let users = services.join(", ");
            match states.iter().find(|(p, _)| p == path).map(|(_, s)| s) {
                Some(node_prep::MountState::Shared) => Check::passed(
                    "shared mount",
                    format!("{path} is a shared mount (for {users})"),
                ),
                Some(_) => Check::passed(
                    "shared mount",
                    format!("{path} is not a shared mount yet: deploy makes it one (for {users})"),
                ),
                None => Check::failed(
                    "shared mount",
                    format!("{path}: the node's mounts check said nothing"),
                ),
            }
        })
        .collect()
}

/// Free space under the engine's root folder, for images and volumes; only
/// an engine on this machine can be measured from here.
const MIN_FREE_BYTES: u64 = 5 << 30;

async fn check_disk(target: &Target<'_>, engine: &Engine) -> Check {
    let local = target
        .node
        .docker
        .as_deref()
        .is_none_or(|url| url.starts_with("unix://"));
    let root = match engine.root_dir().await {
        Ok(root) => root,
        Err(e) => return Check::failed("disk", format!("engine info: {e}")),
    };
    if !local {
        return Check::warning(
            "disk",
            format!("disk space under {root} not checked: the engine is remote"),
        );
    }
    match nix::sys::statvfs::statvfs(root.as_str()) {
        Ok(stat) => {
            let free = stat.blocks_available().saturating_mul(stat.fragment_size());
            let gib = free as f64 / f64::from(1u32 << 30);
            if free >= MIN_FREE_BYTES {
                Check::passed("disk", format!("{gib:.1} GiB free under {root}"))
            } else {
                Check::failed(
                    "disk",
                    format!(
                        "only {gib:.1} GiB free under {root}; images and volumes need at least {} GiB",
                        MIN_FREE_BYTES >> 30
                    ),
                )
            }
        }
        Err(e) => Check::failed(
            "disk",
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
) -> Check {
    let Some(image) = image else {
        return Check::failed(
            "privileged",
            "privileged: no image on the node to probe with".into(),
        );
    };
    let outcome = privileged::probe_privileged(engine, prefix, image).await;
    privileged_verdict(outcome, node.privileged, &node.name)
}

/// What prechecks make of a privileged probe under the node's `privileged`
/// setting: a pass, a warning (refused, and `auto` copes) or a failure.
/// Pure: each engine the tests meet starts privileged containers or
/// refuses them, never both, so both answers are tested here.
fn privileged_verdict(
    outcome: Result<(), privileged::ProbeError>,
    mode: PrivilegedMode,
    node: &str,
) -> Check {
    const NAME: &str = "privileged";
    match (outcome, mode) {
        (Ok(()), _) => Check::passed(NAME, "privileged containers start".into()),
        (Err(e @ privileged::ProbeError::Engine(_)), _) => {
            Check::failed(NAME, format!("privileged probe container: {e}"))
        }
        (Err(e), PrivilegedMode::Auto) => Check::warning(
            NAME,
            format!(
                "this engine refuses privileged containers ({e}); `privileged: auto` gives them explicit privileges"
            ),
        ),
        (Err(e), _) => Check::failed(
            NAME,
            format!(
                "this engine refuses privileged containers ({e}); set `privileged: explicit` (or `auto`) on node {node} in the inventory"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;
    use privileged::ProbeError;

    fn refused() -> ProbeError {
        ProbeError::Refused(EngineError::StreamFailed {
            what: "start probe".into(),
            message: "operation not permitted".into(),
        })
    }

    #[test]
    fn an_engine_that_starts_privileged_containers_passes_in_every_mode() {
        for mode in [
            PrivilegedMode::Native,
            PrivilegedMode::Explicit,
            PrivilegedMode::Auto,
        ] {
            let check = privileged_verdict(Ok(()), mode, "n1");
            assert_eq!(check.status, Status::Passed, "{mode:?}: {check:?}");
        }
    }

    #[test]
    fn an_engine_that_refuses_passes_under_auto_and_says_what_to_set_otherwise() {
        let check = privileged_verdict(Err(refused()), PrivilegedMode::Auto, "n1");
        assert_eq!(check.status, Status::Warning, "{check:?}");
        assert!(check.message.contains("explicit privileges"), "{check:?}");
        let check = privileged_verdict(Err(refused()), PrivilegedMode::Native, "n1");
        assert_eq!(check.status, Status::Failed, "{check:?}");
        assert!(
            check
                .message
                .contains("set `privileged: explicit` (or `auto`) on node n1"),
            "{check:?}"
        );
    }

    #[test]
    fn a_probe_the_engine_failed_before_starting_fails_in_every_mode() {
        let failed = || {
            ProbeError::Engine(EngineError::NotFound {
                what: "image busybox".into(),
            })
        };
        for mode in [PrivilegedMode::Native, PrivilegedMode::Auto] {
            let check = privileged_verdict(Err(failed()), mode, "n1");
            assert_eq!(check.status, Status::Failed, "{mode:?}: {check:?}");
        }
    }
}
