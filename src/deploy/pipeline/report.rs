//! What a run did, as typed records for `--output json`, kept in its
//! `RunLog` so that a node's records survive the error that ends its run:
//! each swap (`upgrade`, `rollback`: written by `swaps`), each node's
//! deploy (`deploy`, `deploy --dry-run`: each service's planned action and
//! cause, then its result, from the plan and the executor's results) and
//! each service's recovery (`recover`, and what every intent recovers
//! first).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::deploy::execute::Applied;
use crate::deploy::plan::{Action, ImageChange, Plan};
use crate::deploy::recovery::Recoveries;

/// One service's swap, as `--output json` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct SwapRecord {
    pub(super) node: String,
    pub(super) service: String,
    pub(super) action: &'static str,
    /// `swapped`, `unchanged` (already there) or `failed`.
    pub(super) result: &'static str,
    pub(super) from_generation: u64,
    pub(super) to_generation: Option<u64>,
    /// From the old generation's stop to the new one's first passing
    /// health check: what a client saw.
    pub(super) dark_window_secs: Option<f64>,
    pub(super) error: Option<String>,
}

/// What a run did on every node, for `--output json`: the swaps (upgrade,
/// rollback) in the order they ended, and whether any node ran one of the
/// services named; each node's deploy and recoveries.
#[derive(Default)]
pub struct RunLog {
    pub(super) records: Records<SwapRecord>,
    pub(super) found: AtomicBool,
    pub(super) deploys: Records<(String, DeployRecord)>,
    pub(super) recoveries: Records<(String, RecoveryRecord)>,
}

impl RunLog {
    /// Every swap record so far.
    pub fn records(&self) -> Vec<SwapRecord> {
        self.records.all()
    }

    /// Whether a node ran one of the services a rollback named.
    pub fn found_any(&self) -> bool {
        self.found.load(Ordering::Relaxed)
    }
}

/// Records of one kind, from every node at once.
#[derive(Debug)]
pub struct Records<T>(Mutex<Vec<T>>);

impl<T> Default for Records<T> {
    fn default() -> Self {
        Records(Mutex::new(Vec::new()))
    }
}

impl<T: Clone> Records<T> {
    pub(super) fn push(&self, record: T) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }

    pub(super) fn all(&self) -> Vec<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One node's deploy: what the plan said of each named volume and each
/// service (orphans included) and, unless a dry run, how each action
/// ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployRecord {
    /// What a dry run would recover first (a deploy recovers before it
    /// plans: its node's recoveries say what was done).
    pub recover: Vec<PlannedRecovery>,
    pub volumes: Vec<VolumeRecord>,
    pub services: Vec<ActionRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedRecovery {
    pub service: String,
    pub cause: String,
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeRecord {
    pub volume: String,
    /// `create` (not on the node) or `keep`.
    pub action: &'static str,
}

/// One service's action and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    pub service: String,
    /// `create`, `create-data`, `replace`, `start`, `keep` or `remove` (an
    /// orphan), as the plan's text says.
    pub action: &'static str,
    /// The planner's phrase: "image changed", "up to date", ...
    pub cause: String,
    /// `planned` (dry run), `ok`, `failed`, or `not started` (a failure
    /// before it stopped the deploy).
    pub result: &'static str,
    pub error: Option<String>,
    /// The dependency level (orphans: none).
    pub level: Option<usize>,
    pub from_generation: Option<u64>,
    pub to_generation: Option<u64>,
    /// A replace: from the old generation's stop to the new one's first
    /// passing health check.
    pub dark_window_secs: Option<f64>,
    /// A replace for a new image: the old image and the new one.
    pub image: Option<ImageChange>,
}

impl ActionRecord {
    fn of(action: &Action, level: Option<usize>, result: &'static str) -> ActionRecord {
        ActionRecord {
            service: action.service.clone(),
            action: action.kind.as_str(),
            cause: action.cause.clone(),
            result,
            error: None,
            level,
            from_generation: action.from,
            to_generation: action.generation,
            dark_window_secs: None,
            image: action.image.clone(),
        }
    }

    fn fail(&mut self, error: String) {
        self.result = "failed";
        self.error = Some(error);
    }
}

impl DeployRecord {
    /// The plan, every action `planned` (a dry run) or, as nothing was run
    /// yet, `not started` for those that change something and `ok` for
    /// the rest.
    pub(super) fn of(plan: &Plan, dry_run: bool) -> DeployRecord {
        let result = |action: &Action| match (dry_run, action.kind.changes_something()) {
            (true, _) => "planned",
            (false, true) => "not started",
            (false, false) => "ok",
        };
        let levels = plan.levels.iter().enumerate().flat_map(|(level, actions)| {
            actions
                .iter()
                .map(move |a| ActionRecord::of(a, Some(level), result(a)))
        });
        let orphans = plan
            .orphans
            .iter()
            .map(|a| ActionRecord::of(a, None, result(a)));
        DeployRecord {
            recover: plan
                .recovery
                .iter()
                .map(|r| PlannedRecovery {
                    service: r.service.clone(),
                    cause: r.cause.clone(),
                    steps: r.steps.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            volumes: plan
                .volumes
                .iter()
                .map(|v| VolumeRecord {
                    volume: v.name.clone(),
                    action: if v.create { "create" } else { "keep" },
                })
                .collect(),
            services: levels.chain(orphans).collect(),
        }
    }

    /// Each action's result, as the executor gave it.
    pub(super) fn applied(&mut self, applied: &Applied) {
        for done in &applied.done {
            if let Some(record) = self.service(&done.service) {
                record.result = "ok";
                record.dark_window_secs = done.dark_window.map(|d| d.as_secs_f64());
            }
        }
        for (service, error) in &applied.failed {
            if let Some(record) = service.as_deref().and_then(|s| self.service(s)) {
                record.fail(error.to_string());
            }
        }
    }

    /// A service found not running after the deploy failed after all.
    pub(super) fn failed(&mut self, service: &str, error: String) {
        if let Some(record) = self.service(service) {
            record.fail(error);
        }
    }

    fn service(&mut self, service: &str) -> Option<&mut ActionRecord> {
        self.services.iter_mut().find(|r| r.service == service)
    }
}

/// One service's recovery on a node.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryRecord {
    pub service: String,
    /// What was done, a phrase a step.
    pub steps: Vec<String>,
    /// `recovered`, `nothing to do` (nothing was left once its lock was
    /// held) or `failed`.
    pub result: &'static str,
    pub error: Option<String>,
}

impl RunLog {
    /// Keep `node`'s deploy record.
    pub(super) fn deployed(&self, node: &str, record: DeployRecord) {
        self.deploys.push((node.to_string(), record));
    }

    /// Keep what recovery did on `node`.
    pub(super) fn recovered(&self, node: &str, recoveries: &Recoveries) {
        let done = recoveries
            .done
            .iter()
            .map(|(service, steps)| RecoveryRecord {
                service: service.clone(),
                steps: steps.clone(),
                result: if steps.is_empty() {
                    "nothing to do"
                } else {
                    "recovered"
                },
                error: None,
            });
        let failed = recoveries
            .failed
            .iter()
            .map(|(service, error)| RecoveryRecord {
                service: service.clone(),
                steps: Vec::new(),
                result: "failed",
                error: Some(error.to_string()),
            });
        for record in done.chain(failed) {
            self.recoveries.push((node.to_string(), record));
        }
    }

    /// `node`'s deploy record, if its deploy got as far as a plan.
    pub fn deploy_of(&self, node: &str) -> Option<DeployRecord> {
        self.deploys
            .all()
            .into_iter()
            .find_map(|(n, record)| (n == node).then_some(record))
    }

    /// What recovery did on `node`, service by service.
    pub fn recoveries_of(&self, node: &str) -> Vec<RecoveryRecord> {
        self.recoveries
            .all()
            .into_iter()
            .filter_map(|(n, record)| (n == node).then_some(record))
            .collect()
    }
}
