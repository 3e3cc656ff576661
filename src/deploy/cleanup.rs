//! What `kolla destroy` runs between stopping a node's containers and
//! removing them: each service's cleanup job (`x-kolla.cleanup`), for the
//! services whose live container is on the node. A job is the service's
//! container as the compose files define it (its image as it runs on the
//! node, privileges, network, binds and config files), with the job's
//! command: it removes what the service made on the node outside its
//! containers (Neutron's network namespaces, the switch's devices, its
//! iptables chains), which no container removal takes with it. A job that
//! fails is said, with its last lines; the destroy goes on, since the
//! containers are stopped already and leaving them would help no one.

use std::time::Duration;

use super::config_files;
use super::desired::Desired;
use super::labels::{self, ObservedContainer, Role};
use super::service::DesiredService;
use super::spec::ContainerSpec;
use crate::engine::{Engine, EngineError, RunOutput};

/// How long a cleanup job may run: deleting namespaces and links takes a
/// second; one still running after this is stuck, and is removed.
const LIMIT: Duration = Duration::from_secs(120);

/// Where the cleanup jobs run.
pub struct Node<'a> {
    pub engine: &'a Engine,
    pub name: &'a str,
    pub prefix: &'a str,
    pub project: &'a str,
}

/// Run the cleanup job of every service of `desired` that has one and
/// whose live container is in `observed`; returns what each did, a line
/// each (a failure's with its last lines). `say` hears each as it starts.
pub async fn run_cleanups(
    node: &Node<'_>,
    desired: &Desired,
    observed: &[ObservedContainer],
    say: impl Fn(String),
) -> Vec<String> {
    let mut lines = Vec::new();
    for (service, wanted) in &desired.services {
        let Some(command) = &wanted.service.kolla.cleanup else {
            continue;
        };
        let Some(live) = observed
            .iter()
            .find(|c| &c.service == service && c.role == Role::Live)
        else {
            continue;
        };
        let name = labels::container_name(node.prefix, service, Role::Check);
        // A job a killed destroy left would refuse the name.
        if let Some(left) = observed.iter().find(|c| c.name == name) {
            let _ = node.engine.remove_container(&left.id, false).await;
        }
        let spec = job_spec(node, wanted, live, name, command);
        let files = desired
            .files
            .get(service)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let tar = match config_files::tar(files) {
            Ok(tar) => tar,
            Err(e) => {
                lines.push(format!("{service}: cleanup not run: its config files: {e}"));
                continue;
            }
        };
        say(format!(
            "{}: {service}: cleanup: {}",
            node.name,
            command.join(" ")
        ));
        let ran = node
            .engine
            .run_spec_with_files_to_completion(&spec, Some(tar.into()), LIMIT)
            .await;
        lines.push(said(service, ran));
    }
    lines
}

/// The last `n` lines of `text`, quoted.
/// The job's container: the service's as the compose files define it, with
/// the job's command, under `name`.
fn job_spec(
    node: &Node<'_>,
    wanted: &DesiredService,
    live: &ObservedContainer,
    name: String,
    command: &[String],
) -> ContainerSpec {
    let mut spec = wanted.spec.clone();
    spec.name = name;
    // The image the service runs here, which the node has.
    spec.image = if live.digest.is_empty() {
        live.image.clone()
    } else {
        live.digest.clone()
    };
    spec.command = Some(command.to_vec());
    spec.restart_policy = Some("no".into());
    spec.healthcheck = None;
    spec.ports.clear();
    // No volume of its own, nor a data container's: it works on the node.
    spec.anonymous_volumes.clear();
    spec.volumes_from.clear();
    spec.labels = [
        (labels::PROJECT.to_string(), node.project.to_string()),
        (labels::SERVICE.to_string(), wanted.service.name.clone()),
    ]
    .into_iter()
    .collect();
    spec
}

/// What a job did, in a line (a failure's with its last lines).
fn said(service: &str, ran: Result<RunOutput, EngineError>) -> String {
    match ran {
        Ok(out) if out.exit_code == 0 => {
            let said: Vec<&str> = out.output.lines().collect();
            if said.is_empty() {
                format!("{service}: cleaned up")
            } else {
                format!("{service}: cleaned up: {}", said.join("; "))
            }
        }
        Ok(out) => format!(
            "{service}: cleanup exited {} (the destroy goes on); its last lines:\n{}",
            out.exit_code,
            last_lines(&out.output, 20)
        ),
        Err(e) => format!("{service}: cleanup failed (the destroy goes on): {e}"),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    super::steps::quoted(&lines[lines.len().saturating_sub(n)..].join("\n"))
}
