//! The swap helper: a short-lived container on the node that runs a swap's
//! critical section (stop the old container, rename both, start the new
//! one, gate it, swap back on failure; `upgrade::swap_in`), so the section
//! finishes even when kolla is killed or loses its link to the node. The
//! helper is kolla itself: its image holds this very binary and the shared
//! libraries it needs, built on the node the first time a swap needs it
//! (tagged by the binary's identity, so each kolla build has its own) and
//! given the node's engine socket. kolla waits for it, shows its lines as
//! its own and reads its verdict from its last line; the helper container
//! is removed after. If kolla dies meanwhile, the helper finishes alone and
//! the next command (recovery) removes it.
//!
//! When the helper cannot be made or started (another architecture, no
//! `ldd`), nothing has been touched yet and kolla runs the section itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::context::{ApplyOptions, NodeRun};
use super::critical::{self, SwapTask};
use super::error::DeployError;
use super::labels::{self, Role};
use super::owned;
use super::spec::ContainerSpec;
use crate::engine::{BuildRequest, Endpoint, Engine, WaitGoal, WaitOutcome};
use crate::progress::Steps;

/// The helper image's repository; its tag names the kolla build.
pub const REPOSITORY: &str = "kolla-swap-helper";
/// The environment variable that hands the helper its task (read by the
/// hidden `swap-helper --task` flag).
pub const TASK_ENV: &str = "KOLLA_SWAP_TASK";
/// The helper's verdict: the one stdout line starting with this.
const VERDICT: &str = "kolla-swap-verdict: ";
/// Where the node's engine socket is mounted in the helper.
const SOCKET: &str = "/var/run/docker.sock";

/// Everything the helper needs besides the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HelperInput {
    node: String,
    prefix: String,
    project: String,
    health_timeout_ms: u64,
    monitor_window_ms: u64,
    retain: usize,
    log_lines: usize,
    #[serde(default)]
    max_dark_ms: Option<u64>,
    task: SwapTask,
}

/// What the helper says of its swap.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Verdict {
    dark_secs: Option<f64>,
    error: Option<String>,
    needs_recovery: bool,
}

/// Run a swap's critical section: in the node's helper container when the
/// deployment uses one (and it can start), else here.
pub async fn perform(run: &NodeRun<'_>, task: SwapTask) -> Result<Duration, DeployError> {
    if run.use_helper {
        match in_helper(run, &task).await {
            Ok(outcome) => return outcome,
            // Nothing was touched yet: the critical section runs here.
            Err(unavailable) => run.steps.event(
                run.node,
                &task.service,
                &format!(
                    "note: no swap helper on this node ({unavailable}); kolla runs the swap itself"
                ),
            ),
        }
    }
    critical::swap_in(run, &task).await
}

/// Run `task` in the node's helper. Err: the helper could not be used and
/// nothing was touched (the caller runs the section itself); Ok: the
/// swap's own outcome.
async fn in_helper(
    run: &NodeRun<'_>,
    task: &SwapTask,
) -> Result<Result<Duration, DeployError>, String> {
    let service = task.service.as_str();
    let name = labels::container_name(run.placement_prefix, service, Role::Helper);
    match owned::find(run.engine, &name, run.project, service).await {
        Ok(Some(old)) if old.running => {
            return Ok(Err(DeployError::JobStillRunning {
                node: run.node.to_string(),
                service: service.to_string(),
                name,
                waited: 0,
            }));
        }
        Ok(Some(old)) => run
            .engine
            .remove_container(&old.id, false)
            .await
            .map_err(|e| e.to_string())?,
        Ok(None) => {}
        Err(e) => return Ok(Err(run.owned_error(e))),
    }
    let id = start_helper(run, task, &name).await?;
    let step = format!("the swap runs on the node, in {name}");
    run.steps.status(run.node, service, &step);
    // From here the helper owns the section: whatever happens to this
    // process, it runs to its end.
    let (verdict, followed, still_running) = follow_helper(run, service, &id).await;
    Ok(outcome_of(
        run,
        service,
        &name,
        verdict,
        followed,
        still_running,
    ))
}

/// Create and start the helper container for `task`; its id.
async fn start_helper(run: &NodeRun<'_>, task: &SwapTask, name: &str) -> Result<String, String> {
    let engine = run.engine;
    let image = ensure_image(engine).await?;
    let input = HelperInput {
        node: run.node.to_string(),
        prefix: run.placement_prefix.to_string(),
        project: run.project.to_string(),
        health_timeout_ms: millis(run.options.health_timeout),
        monitor_window_ms: millis(run.options.monitor_window),
        retain: run.options.retain,
        log_lines: run.options.log_lines,
        max_dark_ms: run.options.max_dark.map(millis),
        task: task.clone(),
    };
    let input = serde_json::to_string(&input).map_err(|e| e.to_string())?;
    let socket = match engine.endpoint().strip_prefix("unix://") {
        Some(path) => path.to_string(),
        None => SOCKET.to_string(),
    };
    let mut env = vec![format!("{TASK_ENV}={input}")];
    if let Some(step) = super::fault::active() {
        env.push(format!("KOLLA_FAULT={step}"));
    }
    let spec = ContainerSpec {
        name: name.to_string(),
        image,
        entrypoint: Some(vec!["/kolla".into()]),
        command: Some(vec!["swap-helper".into()]),
        env,
        user: Some("0".into()),
        network_mode: Some("none".into()),
        binds: vec![format!("{socket}:{SOCKET}")],
        labels: BTreeMap::from([
            (labels::PROJECT.to_string(), run.project.to_string()),
            (labels::SERVICE.to_string(), task.service.clone()),
        ]),
        restart_policy: Some("no".into()),
        ..ContainerSpec::default()
    };
    let id = engine
        .create_container(&spec)
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = engine.start_container(&id).await {
        let _ = engine.remove_container(&id, false).await;
        return Err(e.to_string());
    }
    Ok(id)
}

/// Relay the helper's lines until it ends; its verdict, how following
/// ended, and whether it still runs (then it is left to finish).
async fn follow_helper(
    run: &NodeRun<'_>,
    service: &str,
    id: &str,
) -> (
    Option<Verdict>,
    Result<(), crate::engine::EngineError>,
    bool,
) {
    let engine = run.engine;
    let mut verdict = None;
    let own_prefix = format!("{}: {service}: ", run.node);
    // The helper may be quiet through a whole health gate.
    let limit =
        (run.options.health_timeout.saturating_mul(3)).saturating_add(Duration::from_secs(600));
    let followed = engine
        .follow_logs(id, limit, |line, stdout| match line.strip_prefix(VERDICT) {
            Some(json) if stdout => verdict = serde_json::from_str::<Verdict>(json).ok(),
            // The helper's steps of this service are its steps here.
            _ => match line.strip_prefix(&own_prefix) {
                Some(step) => run.steps.event(run.node, service, step),
                None => run.steps.note(line.to_string()),
            },
        })
        .await;
    // The log stream ends when the helper exits; if it broke off early
    // (a dropped connection), wait for the helper itself.
    let still_running = match engine.inspect(id).await {
        Ok(Some(details)) if details.running => {
            let ended = engine.wait_for(id, WaitGoal::Exited, limit).await;
            !matches!(ended, Ok(WaitOutcome::Exited(_)))
        }
        _ => false,
    };
    if !still_running {
        let _ = engine.remove_container(id, false).await;
    }
    (verdict, followed, still_running)
}

/// The swap's outcome from what the helper said (or did not say).
fn outcome_of(
    run: &NodeRun<'_>,
    service: &str,
    name: &str,
    verdict: Option<Verdict>,
    followed: Result<(), crate::engine::EngineError>,
    still_running: bool,
) -> Result<Duration, DeployError> {
    let node = run.node.to_string();
    let service = service.to_string();
    let failed = |message: String| DeployError::NeedsRecovery {
        node: node.clone(),
        service: service.clone(),
        failure: "the swap helper gave no verdict".into(),
        stuck: message,
    };
    match (verdict, followed) {
        (
            Some(Verdict {
                error: None,
                dark_secs,
                ..
            }),
            _,
        ) => Ok(dark_window(dark_secs)),
        (
            Some(Verdict {
                error: Some(message),
                needs_recovery: false,
                ..
            }),
            _,
        ) => Err(DeployError::SwappedBack {
            node,
            service,
            message,
        }),
        (
            Some(Verdict {
                error: Some(message),
                ..
            }),
            _,
        ) => Err(DeployError::HelperNeedsRecovery {
            node,
            service,
            message,
        }),
        (None, Err(e)) => Err(failed(e.to_string())),
        (None, Ok(())) if still_running => Err(failed(format!("{name} is still running"))),
        (None, Ok(())) => Err(failed(format!("{name} ended without one"))),
    }
}

/// The dark window a verdict states: it comes from the node, so a figure
/// no duration can hold (negative, NaN, huge) counts as none.
fn dark_window(secs: Option<f64>) -> Duration {
    secs.and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::ZERO)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The helper's side (`kolla swap-helper`, inside the helper container):
/// run the task from the environment against the mounted engine socket,
/// then print the verdict.
pub async fn serve(task: &str) -> anyhow::Result<()> {
    let input: HelperInput = serde_json::from_str(task)?;
    let engine = Engine::connect(&Endpoint::plain(format!("unix://{SOCKET}"))).await?;
    let options = ApplyOptions {
        health_timeout: Duration::from_millis(input.health_timeout_ms),
        monitor_window: Duration::from_millis(input.monitor_window_ms),
        retain: input.retain,
        log_lines: input.log_lines,
        max_dark: input.max_dark_ms.map(Duration::from_millis),
        // The guests were seen to before the helper was asked.
        stop_guests: false,
        // The lock is kolla's, taken before the helper was asked.
        lock_wait: None,
    };
    let steps = Steps::untimed();
    let run = NodeRun {
        engine: &engine,
        node: &input.node,
        placement_prefix: &input.prefix,
        project: &input.project,
        options: &options,
        steps: &steps,
        state_dir: None,
        use_helper: false,
        user: "swap-helper",
    };
    let result = critical::swap_in(&run, &input.task).await;
    let verdict = match &result {
        Ok(dark) => Verdict {
            dark_secs: Some(dark.as_secs_f64()),
            error: None,
            needs_recovery: false,
        },
        Err(e) => Verdict {
            dark_secs: None,
            error: Some(e.to_string()),
            needs_recovery: e.needs_recovery(),
        },
    };
    println!("{VERDICT}{}", serde_json::to_string(&verdict)?);
    Ok(())
}

/// The helper image on this node, built if missing: its tag.
async fn ensure_image(engine: &Engine) -> Result<String, String> {
    let files = helper_files()?;
    let mut identity = Sha256::new();
    for (path, source) in &files {
        let meta = std::fs::metadata(source).map_err(|e| format!("{}: {e}", source.display()))?;
        identity.update(path.as_bytes());
        identity.update(meta.len().to_le_bytes());
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        identity.update(modified.to_le_bytes());
    }
    let tag = format!("{REPOSITORY}:{}", &hex::encode(identity.finalize())[..16]);
    if engine
        .image(&tag)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(tag);
    }
    // Helpers of earlier kolla builds: removed unless a container uses one.
    for old in engine
        .image_tags_matching(&format!("{REPOSITORY}:*"))
        .await
        .unwrap_or_default()
    {
        let _ = engine.remove_image(&old, false).await;
    }
    let context = context_tar(&files).map_err(|e| format!("helper image context: {e}"))?;
    engine
        .build(
            BuildRequest {
                tag: tag.clone(),
                context_tar: context.into(),
                no_cache: false,
                http_proxy: None,
            },
            |_| {},
        )
        .await
        .map_err(|e| format!("building {tag}: {e}"))?;
    Ok(tag)
}

/// This binary and its shared libraries (as `ldd` lists them): (path in
/// the image, file here). Worked out once per process.
fn helper_files() -> Result<Vec<(String, PathBuf)>, String> {
    static FILES: std::sync::OnceLock<Result<Vec<(String, PathBuf)>, String>> =
        std::sync::OnceLock::new();
    FILES.get_or_init(find_helper_files).clone()
}

fn find_helper_files() -> Result<Vec<(String, PathBuf)>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find kolla's binary: {e}"))?;
    let output = std::process::Command::new("ldd")
        .arg(&exe)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let mut files = vec![("kolla".to_string(), exe)];
    // A static binary: ldd says so and fails; it needs nothing else.
    if output.status.success() {
        for path in shared_libraries(&String::from_utf8_lossy(&output.stdout)) {
            files.push((
                path.trim_start_matches('/').to_string(),
                PathBuf::from(&path),
            ));
        }
    }
    Ok(files)
}

/// The absolute paths of the libraries in `ldd`'s output.
fn shared_libraries(ldd: &str) -> Vec<String> {
    ldd.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split(" (").next().unwrap_or_default().trim();
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

fn context_tar(files: &[(String, PathBuf)]) -> std::io::Result<Vec<u8>> {
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/kolla\"]\n";
    // Symlinks are followed: the image gets each library at its path.
    let mut contents = Vec::new();
    for (path, source) in files {
        contents.push((format!("rootfs/{path}"), std::fs::read(source)?));
    }
    crate::files::tar(
        std::iter::once(("Dockerfile", 0o644, dockerfile.as_bytes())).chain(
            contents
                .iter()
                .map(|(path, data)| (path.as_str(), 0o755, data.as_slice())),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_read_from_ldd_output() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibmissing.so => not found\n";
        assert_eq!(
            shared_libraries(ldd),
            vec![
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn a_verdicts_dark_window_never_panics() {
        assert_eq!(dark_window(Some(1.5)), Duration::from_millis(1500));
        assert_eq!(dark_window(None), Duration::ZERO);
        for odd in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(dark_window(Some(odd)), Duration::ZERO, "{odd}");
        }
    }

    #[test]
    fn this_binary_and_its_libraries_make_the_image() {
        let files = helper_files().unwrap();
        assert_eq!(files[0].0, "kolla");
        assert!(files.iter().all(|(path, _)| !path.starts_with('/')));
        assert!(files.iter().all(|(_, source)| source.exists()));
    }
}
