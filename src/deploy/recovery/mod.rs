//! Recovery: bring each service back to exactly one live container after
//! a run that died. `plan` is the pure half (containers and the dead run's
//! lock -> steps, golden-tested); `run` takes the lock and runs the steps;
//! `recover_first` is what every node pipeline does before its own work.

pub mod plan;
pub mod run;

use super::context::NodeRun;
use super::error::DeployError;
use super::labels::ObservedContainer;

/// Recover the leftovers of interrupted swaps of `only` (all services when
/// None) before working on them; says what it did. Returns whether anything
/// changed (the caller then looks at the node again).
pub async fn recover_first(
    run: &NodeRun<'_>,
    observed: &[ObservedContainer],
    only: Option<&[String]>,
    force: bool,
) -> Result<bool, DeployError> {
    let mut changed = false;
    for service in plan::services_needing_recovery(observed, run.options.retain) {
        if only.is_some_and(|only| !only.contains(&service)) {
            continue;
        }
        let done = run::recover_service(run, &service, observed, force).await?;
        for step in &done {
            run.steps
                .note(format!("{}: {service}: recovery: {step}", run.node));
        }
        changed |= !done.is_empty();
    }
    Ok(changed)
}
