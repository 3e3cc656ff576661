//! Recovery: bring each service back to exactly one live container after
//! a run that died. `plan` is the pure half (containers and the dead run's
//! lock -> steps, golden-tested); `run` takes the lock and runs the steps;
//! `recover_first` is what every node pipeline does before its own work.

pub mod plan;
pub mod run;

use super::context::NodeRun;
use super::error::DeployError;
use super::labels::ObservedContainer;

/// What a pipeline recovers before its own work.
#[derive(Debug, Clone, Copy)]
pub struct Recovering<'a> {
    /// Only these services (None: every one).
    pub only: Option<&'a [String]>,
    /// Take over any lock (`recover --force`).
    pub force: bool,
    /// A live container that is merely stopped counts as work (it is
    /// started and gated); false for `start` and `restart`, whose own
    /// work that is (see `plan::services_with_leftovers`).
    pub stopped_too: bool,
}

/// What recovery did on a node: each service with leftovers, in turn,
/// and what was done for it (a phrase a step; none: nothing was left once
/// its lock was held); the first failure ends it, and is kept apart.
#[derive(Debug, Default)]
pub struct Recoveries {
    pub done: Vec<(String, Vec<String>)>,
    pub failed: Option<(String, DeployError)>,
}

impl Recoveries {
    /// Whether anything changed (the caller then looks at the node again),
    /// or the failure.
    pub fn changed(self) -> Result<bool, DeployError> {
        match self.failed {
            Some((_, error)) => Err(error),
            None => Ok(self.done.iter().any(|(_, steps)| !steps.is_empty())),
        }
    }
}

/// Recover the leftovers of interrupted swaps of the services `how` says
/// before working on them, saying each step; stops at the first failure.
pub async fn recover_first(
    run: &NodeRun<'_>,
    observed: &[ObservedContainer],
    how: Recovering<'_>,
) -> Recoveries {
    let Recovering {
        only,
        force,
        stopped_too,
    } = how;
    let services = if stopped_too {
        plan::services_needing_recovery(observed, run.options.retain)
    } else {
        plan::services_with_leftovers(observed, run.options.retain)
    };
    let mut recoveries = Recoveries::default();
    for service in services {
        if only.is_some_and(|only| !only.contains(&service)) {
            continue;
        }
        match run::recover_service(run, &service, observed, force).await {
            Ok(done) => {
                for step in &done {
                    run.steps
                        .note(format!("{}: {service}: recovery: {step}", run.node));
                }
                recoveries.done.push((service, done));
            }
            Err(error) => {
                recoveries.failed = Some((service, error));
                break;
            }
        }
    }
    recoveries
}
