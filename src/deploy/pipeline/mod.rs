//! One node through the pipeline that `deploy`, `upgrade`, `rollback` and
//! `recover` share, sequenced here and nowhere else: the node's images
//! supplied, its containers observed, the leftovers of an interrupted swap
//! settled (and the node observed again when that changed it),
//! `privileged: auto` settled, then the intent carried out: a deploy plans
//! the node and executes the plan (`converge`), an upgrade or a rollback
//! swaps each named service (`swaps`), a start or a restart brings live
//! containers up again (`lifecycle`). What a deploy and a recovery came
//! to is kept, typed, in the run's log for `--output json` (`report`), as
//! swaps are. Verbs resolve files, connect, pick the nodes and
//! report; what happens on a node is decided here and below.

mod converge;
mod lifecycle;
mod report;
mod swaps;

use super::context::NodeRun;
use super::desired::Desired;
use super::error::DeployError;
use super::labels::{ObservedContainer, Role};
use super::plan::BackTo;
use super::recovery::Recovering;
use super::supply::{self, CopySource, Supply};
use super::{observe, privileged, recovery};
use crate::config::Globals;
use crate::config::inventory::{Node, PrivilegedMode};
use crate::credentials::Store;

pub use report::{DeployRecord, RecoveryRecord, RunLog, SwapRecord};

/// What the pipeline does on a node once the node is ready for it.
pub enum Intent<'a> {
    /// Converge the node to its compose files (`kolla deploy`).
    Deploy {
        remove_orphans: bool,
        /// Plan and say, change nothing (no pull, no probe, no recovery).
        dry_run: bool,
        /// Only these services (`kolla deploy SERVICE...`): what they
        /// depend on is left as it is, and must be up.
        only: Option<&'a [String]>,
        /// The plan's text on stderr (stdout then holds a JSON document).
        plan_on_stderr: bool,
    },
    /// Swap `services` to their desired image and config.
    Upgrade {
        services: &'a [String],
        allow_downgrade: bool,
    },
    /// Run the post-upgrade steps of `services` that run their desired
    /// image and config (`kolla upgrade --all`, once every stage is done).
    PostUpgrade { services: &'a [String] },
    /// Swap `services` back to a kept generation: generation `to`, the
    /// newest one that matches `back_to` (a service that matches already
    /// is left as it is), else the newest one.
    Rollback {
        services: &'a [String],
        to: Option<u64>,
        back_to: Option<&'a BackTo>,
        force: bool,
        restore_db: bool,
    },
    /// Only settle what interrupted swaps left (`kolla recover`): of
    /// `services`, or of every service when None.
    Recover {
        services: Option<&'a [String]>,
        force: bool,
    },
    /// Start the stopped live containers of `services` (every service
    /// when None), or restart them (`restart`), each gated, dependencies
    /// first: from what the node runs, no compose file read.
    Start {
        services: Option<&'a [String]>,
        restart: bool,
    },
}

impl Intent<'_> {
    fn dry_run(&self) -> bool {
        matches!(self, Intent::Deploy { dry_run: true, .. })
    }

    /// What is recovered first: the services whose leftovers are settled
    /// (None: all of them), whether a lock may be taken over by force, and
    /// whether a stopped live container counts; nothing is recovered in a
    /// dry run.
    fn recovers(&self) -> Option<Recovering<'_>> {
        let (only, force) = match *self {
            Intent::Deploy { dry_run: true, .. } => return None,
            Intent::Deploy { only, .. } => (only, false),
            Intent::Upgrade { services, .. }
            | Intent::PostUpgrade { services }
            | Intent::Rollback { services, .. } => (Some(services), false),
            Intent::Recover { services, force } => (services, force),
            Intent::Start { services, .. } => (services, false),
        };
        Some(Recovering {
            only,
            force,
            stopped_too: !matches!(self, Intent::Start { .. }),
        })
    }

    /// A rollback swaps kept containers: it needs no image and creates no
    /// privileged container; recovery touches existing containers only.
    fn needs_images(&self) -> bool {
        matches!(
            self,
            Intent::Deploy { .. } | Intent::Upgrade { .. } | Intent::PostUpgrade { .. }
        )
    }
}

/// A node as the pipeline works on it.
pub struct NodeAt<'a> {
    /// The deployer's handle on the node: its engine, the deployment's
    /// names, the run's options, where to say things.
    pub run: NodeRun<'a>,
    pub node: &'a Node,
    pub globals: &'a Globals,
    /// Where images no pull brings are copied from.
    pub copy_from: CopySource,
    pub credentials: &'a Store,
}

/// What a node's run says (a line each) or every error it met.
pub type NodeResult = Result<Vec<String>, NodeErrors>;

/// Every error a node's run met: one, or several (a deploy's services
/// fail side by side). Any single error converts into it, so `?` works on
/// each step without an adapter.
#[derive(Debug)]
pub struct NodeErrors(pub Vec<anyhow::Error>);

impl<E: Into<anyhow::Error>> From<E> for NodeErrors {
    fn from(error: E) -> Self {
        NodeErrors(vec![error.into()])
    }
}

impl NodeErrors {
    /// Several errors at once.
    pub fn many<E: Into<anyhow::Error>>(errors: impl IntoIterator<Item = E>) -> Self {
        NodeErrors(errors.into_iter().map(Into::into).collect())
    }
}

/// Only put the images of `services` (every service when None) on the
/// node, as a deploy or an upgrade does first: for the verbs that supply
/// every node before they change any (an upgrade) or ahead of a node's
/// wave (a deploy). Says nothing when it succeeds.
pub async fn supply(
    at: &NodeAt<'_>,
    mut desired: Desired,
    services: Option<&[String]>,
) -> NodeResult {
    if let Some(services) = services {
        desired.services.retain(|s, _| services.contains(s));
    }
    supply_images(at, &mut desired, false).await?;
    Ok(Vec::new())
}

/// The node made ready for an intent's own work: what it runs (after any
/// recovery), whether a recovery changed it, and the lines said so far.
struct Ready {
    observed: Vec<ObservedContainer>,
    recovered: bool,
    lines: Vec<String>,
}

/// Carry `intent` out on the node `at`, whose desired state is `desired`
/// (a rollback and a recovery work from what the node has and read none);
/// swaps, deploys and recoveries are recorded in `log`.
pub async fn run(
    at: &NodeAt<'_>,
    mut desired: Desired,
    intent: &Intent<'_>,
    log: &RunLog,
) -> NodeResult {
    let Ready {
        observed,
        recovered,
        mut lines,
    } = ready(at, &mut desired, intent, log).await?;
    match *intent {
        Intent::Deploy {
            remove_orphans,
            dry_run,
            only,
            plan_on_stderr,
        } => {
            let how = converge::How {
                remove_orphans,
                dry_run,
                only,
                plan_on_stderr,
            };
            let done = converge::converge(at, &desired, &observed, how, log).await?;
            lines.extend(done);
            Ok(lines)
        }
        Intent::Upgrade {
            services,
            allow_downgrade,
        } => swaps::upgrade(at, &desired, &observed, (services, allow_downgrade), log)
            .await
            .map(|line| vec![line])
            .map_err(NodeErrors::from),
        Intent::PostUpgrade { services } => swaps::post_upgrade(at, &desired, &observed, services)
            .await
            .map_err(NodeErrors::from),
        Intent::Rollback {
            services,
            to,
            back_to,
            force,
            restore_db,
        } => {
            let how = swaps::RollbackTo {
                to,
                back_to,
                force,
                restore_db,
            };
            swaps::rollback(at, &observed, services, how, log).await
        }
        Intent::Recover { .. } => Ok(vec![
            if recovered {
                "recovered"
            } else {
                "nothing to recover"
            }
            .to_string(),
        ]),
        Intent::Start { services, restart } => {
            lines.extend(lifecycle::start(at, &observed, services, restart).await?);
            Ok(lines)
        }
    }
}

/// What every intent does first, in this order: the images supplied
/// (deploy and upgrade; an upgrade's only), a deploy's external volumes
/// checked, the node observed, a rollback of a data container refused,
/// the leftovers of interrupted swaps settled (and what that did kept in
/// `log`; the node observed again if that changed it), `privileged: auto`
/// settled.
async fn ready(
    at: &NodeAt<'_>,
    desired: &mut Desired,
    intent: &Intent<'_>,
    log: &RunLog,
) -> Result<Ready, NodeErrors> {
    if let Intent::Upgrade { services, .. } | Intent::PostUpgrade { services } = intent {
        desired.services.retain(|s, _| services.contains(s));
    }
    // A deploy of named services plans them against every desired service
    // (what they depend on), but supplies and settles theirs alone.
    let others = match intent {
        Intent::Deploy {
            only: Some(only), ..
        } => {
            let (named, others) = std::mem::take(&mut desired.services)
                .into_iter()
                .partition(|(s, _)| only.contains(s));
            desired.services = named;
            others
        }
        _ => std::collections::BTreeMap::new(),
    };
    let mut lines = Vec::new();
    if intent.needs_images() {
        lines = supply_images(at, desired, intent.dry_run()).await?;
    }
    if let Intent::Deploy { .. } = intent {
        converge::check_external_volumes(at, desired).await?;
    }
    let mut observed = observe_node(at).await?;
    if let Intent::Rollback { services, .. } = intent {
        refuse_data_containers(at, &observed, services)?;
    }
    let mut recovered = false;
    if let Some(how) = intent.recovers() {
        let recoveries = recovery::recover_first(&at.run, &observed, how).await;
        log.recovered(at.run.node, &recoveries);
        recovered = recoveries.changed()?;
        if recovered {
            observed = observe_node(at).await?;
        }
    }
    if intent.needs_images() {
        settle_privileged(at, desired, &observed, intent.dry_run()).await?;
    }
    desired.services.extend(others);
    Ok(Ready {
        observed,
        recovered,
        lines,
    })
}

/// The deployment's containers on the node now.
async fn observe_node(at: &NodeAt<'_>) -> anyhow::Result<Vec<ObservedContainer>> {
    observe::observe(at.run.engine, at.globals)
        .await
        .map_err(|e| anyhow::Error::from(e).context(format!("node {}", at.run.node)))
}

/// Put the node's images on it (pulled, else copied from the operator's
/// engine) and record their ids; a dry run supplies nothing and lists what
/// is missing, a line each.
async fn supply_images(
    at: &NodeAt<'_>,
    desired: &mut Desired,
    dry_run: bool,
) -> Result<Vec<String>, NodeErrors> {
    let (engine, name) = (at.run.engine, at.run.node);
    if dry_run {
        let missing = supply::missing_images(engine, name, desired).await?;
        return Ok(missing
            .iter()
            .map(|image| format!("pull {image} (not on the node yet)"))
            .collect());
    }
    let supply = Supply::Pull {
        copy_from: &at.copy_from,
        credentials: at.credentials,
    };
    supply::resolve_images(engine, name, desired, supply).await?;
    Ok(Vec::new())
}

/// A data container holds data, not code: it is never rolled back.
fn refuse_data_containers(
    at: &NodeAt<'_>,
    observed: &[ObservedContainer],
    services: &[String],
) -> Result<(), DeployError> {
    match observed
        .iter()
        .find(|c| c.data && c.role == Role::Live && services.contains(&c.service))
    {
        Some(data) => Err(DeployError::Refused {
            node: at.run.node.to_string(),
            message: format!(
                "service {} is a data container: it is never rolled back (its volumes stay as they are)",
                data.service
            ),
        }),
        None => Ok(()),
    }
}

/// Settle the node's `privileged: auto` and say what a probe found (or, in
/// a dry run, that a deploy would probe).
async fn settle_privileged(
    at: &NodeAt<'_>,
    desired: &mut Desired,
    observed: &[ObservedContainer],
    dry_run: bool,
) -> anyhow::Result<()> {
    let settled = privileged::settle_privileged(
        at.run.engine,
        at.node,
        desired,
        observed,
        (at.globals, dry_run),
    )
    .await?;
    let how = match settled {
        privileged::Settled::Known => return Ok(()),
        privileged::Settled::WouldProbe => {
            "would probe at deploy (dry run: no probe container; the plan shows native privileges)"
        }
        privileged::Settled::Probed(PrivilegedMode::Explicit) => {
            "the engine refuses --privileged: privileged services get every capability it grants, AppArmor and seccomp unconfined and all devices"
        }
        privileged::Settled::Probed(_) => "the engine starts privileged containers",
    };
    at.run
        .steps
        .note(format!("node {}: privileged: auto: {how}", at.node.name));
    Ok(())
}
