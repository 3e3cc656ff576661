//! `NodeRun`: the connection and facts of one node (its engine, the
//! deployment's names, how long to wait, where to say things and record
//! history), with the conversions of lower errors into `DeployError` and
//! the lock calls. It decides nothing and changes nothing by itself: the
//! owners built over it do, each in its own file (`StepRunner` in
//! steps.rs, `RestorePoints` in restore_point.rs, `Executor` in
//! execute.rs).

use std::time::Duration;

use super::error::DeployError;
use super::history::{self, Record};
use super::lock::{self, Lock, LockError};
use super::owned::OwnedError;
use crate::engine::{Engine, EngineError};
use crate::progress::Steps;

/// How long to wait, and how much to show, when things go wrong.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Longest wait for a healthcheck to pass (or a job to finish).
    pub health_timeout: Duration,
    /// How long a service without a healthcheck must stay up after a swap.
    pub monitor_window: Duration,
    /// Kept containers per service after a swap.
    pub retain: usize,
    /// Log lines shown for a failing container.
    pub log_lines: usize,
    /// Longest a swapped service may be dark: from the old generation's
    /// stop to the new one's first passing gate; past it, swap back.
    pub max_dark: Option<Duration>,
    /// Stop a service's guests (`x-kolla.guests`) that would not survive
    /// its swap, rather than refuse the swap.
    pub stop_guests: bool,
    /// How long to wait for a service lock another run holds
    /// (`--lock-wait`); None: a held lock fails at once.
    pub lock_wait: Option<Duration>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            health_timeout: Duration::from_secs(300),
            monitor_window: Duration::from_secs(2),
            max_dark: None,
            stop_guests: false,
            lock_wait: None,
            retain: crate::config::globals::DEFAULT_RETAIN,
            log_lines: 30,
        }
    }
}

/// Everything a node's deploy works with.
pub struct NodeRun<'a> {
    pub engine: &'a Engine,
    pub node: &'a str,
    pub placement_prefix: &'a str,
    pub project: &'a str,
    pub options: &'a ApplyOptions,
    /// What the operator sees of each service's steps.
    pub steps: &'a Steps,
    /// Where the history log lives (None: not recorded).
    pub state_dir: Option<&'a std::path::Path>,
    /// Run swaps' critical sections in a helper container on the node.
    pub use_helper: bool,
    /// Who runs kolla, for locks and the history.
    pub user: &'a str,
}

impl NodeRun<'_> {
    pub fn engine_error(&self, source: EngineError) -> DeployError {
        DeployError::Engine {
            node: self.node.to_string(),
            source,
        }
    }

    pub(super) fn owned_error(&self, error: OwnedError) -> DeployError {
        match error {
            OwnedError::NotOurs(source) => DeployError::NotOurs {
                node: self.node.to_string(),
                source: Box::new(source),
            },
            OwnedError::Engine(e) => self.engine_error(e),
        }
    }

    pub(super) fn lock_error(&self, error: LockError) -> DeployError {
        match error {
            LockError::NotOurs(source) => DeployError::NotOurs {
                node: self.node.to_string(),
                source,
            },
            source => DeployError::Lock {
                node: self.node.to_string(),
                source,
            },
        }
    }

    /// Release a lock this run holds; a failure is reported, since the
    /// work under it is done either way.
    pub async fn unlock(&self, lock: Lock) -> Result<(), DeployError> {
        lock::release(self.engine, lock)
            .await
            .map_err(|e| self.engine_error(e))
    }

    /// Append to the history log; a log that cannot be written is reported,
    /// never a reason to fail a swap that happened.
    pub fn record(&self, record: &Record) {
        if let Some(dir) = self.state_dir
            && let Err(e) = history::append(dir, record)
        {
            self.steps.note(format!(
                "warning: cannot write {}: {e}",
                history::path(dir).display()
            ));
        }
    }
}
