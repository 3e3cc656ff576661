//! What can go wrong while the deployer changes a node, as one error type
//! every deploy file returns: each variant names the node and service, and
//! says what the operator can do. The verbs map it to an exit code
//! (`needs_recovery`, `is_bad_input`).

use super::lock::LockError;
use super::owned::NotOurs;
use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("node {node}: {source}")]
    Engine {
        node: String,
        #[source]
        source: EngineError,
    },
    #[error(
        "node {node}: service {service}: the bootstrap job exited {code}; its last lines:\n{logs}"
    )]
    Bootstrap {
        node: String,
        service: String,
        code: i64,
        logs: String,
    },
    #[error(
        "node {node}: service {service}: the post-upgrade step exited {code} (the service runs its new image); its last lines:\n{logs}\n  hint: once its cause is fixed, `kolla upgrade --all` again runs it again"
    )]
    PostUpgrade {
        node: String,
        service: String,
        code: i64,
        logs: String,
    },
    #[error(
        "node {node}: service {service}: the new image's upgrade check exited {code}: nothing was changed; its output:\n{logs}"
    )]
    UpgradeCheck {
        node: String,
        service: String,
        code: i64,
        logs: String,
    },
    #[error(
        "node {node}: service {service}: the new image's upgrade check did not finish within {waited}s and was killed: nothing was changed; its output:\n{logs}\n  hint: see why it waits (a service it asks that does not answer?), or give it longer with --health-timeout"
    )]
    UpgradeCheckHung {
        node: String,
        service: String,
        waited: u64,
        logs: String,
    },
    #[error("node {node}: service {service}: {what}; its last lines:\n{logs}")]
    Unhealthy {
        node: String,
        service: String,
        what: String,
        logs: String,
    },
    #[error("node {node}: {source}")]
    Lock {
        node: String,
        #[source]
        source: LockError,
    },
    #[error(
        "node {node}: service {service}: image {image} is not on the node{}\n  hint: build it (kolla build) or push it to the registry, then `kolla pull`",
        .pull_error.as_deref().map(|e| format!(" and could not be pulled: {e}")).unwrap_or_default()
    )]
    ImageMissing {
        node: String,
        service: String,
        image: String,
        pull_error: Option<String>,
    },
    #[error(
        "node {node}: service {service}: image {image} carries kolla's own label{} {}, which would pass for kolla's record of the container\n  hint: rebuild the image without them (only kolla build's {} may be set by an image)",
        if .labels.len() == 1 { "" } else { "s" },
        .labels.join(", "),
        crate::images::build::IMAGE_LABELS.join(", ")
    )]
    ImageForgesLabels {
        node: String,
        service: String,
        image: String,
        labels: Vec<String>,
    },
    #[error(
        "node {node}: service {service}: {guests} would stop with its container, so it was not replaced\n  hint: keep the guests outside the container (see x-kolla.guests), or pass --stop-guests to shut them down cleanly first"
    )]
    GuestsWouldStop {
        node: String,
        service: String,
        guests: String,
    },
    #[error("node {node}: service {service}: its guests: {message}")]
    Guests {
        node: String,
        service: String,
        message: String,
    },
    #[error("node {node}: service {service}: cannot render its config: {message}")]
    Config {
        node: String,
        service: String,
        message: String,
    },
    #[error("node {node}: {source}")]
    NotOurs {
        node: String,
        #[source]
        source: Box<NotOurs>,
    },
    #[error(
        "node {node}: service {service}: {failure}\n  and swapping back failed too: {stuck}\n  hint: run `kolla recover` to bring the last good generation back"
    )]
    NeedsRecovery {
        node: String,
        service: String,
        failure: String,
        stuck: String,
    },
    /// The swap helper swapped back after this failure (its message names
    /// the node and service already).
    #[error("{message}")]
    SwappedBack {
        node: String,
        service: String,
        message: String,
    },
    /// The swap helper failed and could not swap back either (its message
    /// says so, with the way out).
    #[error("{message}")]
    HelperNeedsRecovery {
        node: String,
        service: String,
        message: String,
    },
    #[error(
        "node {node}: service {service}: {name}, left by an earlier run, is still running after {waited}s\n  hint: kolla never kills a running bootstrap job (it may be migrating a schema) or swap helper (it is finishing a swap); run `kolla recover` again once it has finished"
    )]
    JobStillRunning {
        node: String,
        service: String,
        name: String,
        waited: u64,
    },
    #[error(
        "node {node}: service {service}: {message}\n  hint: kolla prepares the node from a one-shot container on the host network (sysctls: NET_ADMIN and systempaths=unconfined; shared mounts: the host's PID namespace with SYS_ADMIN, SYS_PTRACE and SYS_CHROOT, AppArmor and seccomp unconfined); where the engine refuses that, set the node up yourself (sysctl -w; mount --bind DIR DIR && mount --make-shared DIR)"
    )]
    NodeSetting {
        node: String,
        service: String,
        message: String,
    },
    /// What the operator asked for does not fit what the node runs (a
    /// data container named for a rollback): bad input, nothing changed.
    #[error("node {node}: {message}")]
    Refused { node: String, message: String },
    #[error("node {node}: service {service}: restore point: {message}")]
    RestorePoint {
        node: String,
        service: String,
        message: String,
    },
}

impl DeployError {
    /// Whether the run left work that `kolla recover` must finish.
    /// Whether the failure is the operator's input (a config that cannot
    /// be rendered), not the work.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DeployError::Config { .. }
                | DeployError::ImageForgesLabels { .. }
                | DeployError::Refused { .. }
        )
    }

    pub fn needs_recovery(&self) -> bool {
        matches!(
            self,
            DeployError::NeedsRecovery { .. } | DeployError::HelperNeedsRecovery { .. }
        )
    }
}
