//! Planning `kolla start` and `kolla restart`, pure: from one snapshot of
//! what the node runs, which live containers of the services asked for are
//! started or restarted, in their dependency levels (the `kolla.level`
//! label, lowest first, so what others need comes back first), and why the
//! others are left as they are. No compose file is read: like a rollback,
//! these verbs work from the containers the node has. The same decision is
//! taken again under each service's lock (`Turn::recheck`), from the node
//! as it is then: another run may have changed the service since.

use std::collections::BTreeMap;

use super::labels::{ObservedContainer, Role, State};

/// What becomes of one service's live container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// Not running: start it, then gate it.
    Start,
    /// Running: stop it (its own signal and grace period) and start it
    /// again, the same container, then gate it.
    Restart,
    /// Left as it is, and why.
    Leave(&'static str),
}

impl Decision {
    fn word(self) -> &'static str {
        match self {
            Decision::Start => "start",
            Decision::Restart => "restart",
            Decision::Leave(_) => "leave",
        }
    }
}

/// One service's start or restart, as planned.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Turn {
    pub service: String,
    pub decision: Decision,
    /// A restart (else a start): how the decision is taken again.
    pub restart: bool,
}

impl Turn {
    /// The turn decided again from `observed_now`, the node once the
    /// service's lock is held: its live container (None: it has none any
    /// more) and what to do with it now.
    pub fn recheck<'o>(
        &self,
        observed_now: &'o [ObservedContainer],
    ) -> Option<(&'o ObservedContainer, Decision)> {
        let live = observed_now
            .iter()
            .find(|c| c.service == self.service && c.role == Role::Live)?;
        Some((live, decide(live, self.restart)))
    }
}

/// What `kolla start` (or, with `restart`, `kolla restart`) does with the
/// live container `live`.
pub fn decide(live: &ObservedContainer, restart: bool) -> Decision {
    match live.state {
        _ if live.data => Decision::Leave("a data container: created, never started"),
        // What recovery calls a completed one-shot: running it again is a
        // deploy's decision (its compose file says what it is for).
        State::Exited if live.exit_code == Some(0) && live.restart == "no" => {
            Decision::Leave("a one-shot that completed (exited 0, restart policy no)")
        }
        State::Running | State::Restarting if restart => Decision::Restart,
        State::Running | State::Restarting => Decision::Leave("already running"),
        State::Paused => Decision::Leave("paused (`docker unpause` resumes it)"),
        _ => Decision::Start,
    }
}

/// A node's start or restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartPlan {
    /// The services to start or restart, by dependency level, lowest
    /// first, sorted by name within a level.
    pub levels: Vec<Vec<Turn>>,
    /// The services asked for that are left as they are, with why.
    pub left: Vec<(String, String)>,
}

impl StartPlan {
    /// The plan as text, for the tests' golden comparisons.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (level, turns) in self.levels.iter().enumerate() {
            out.push_str(&format!("level {level}:\n"));
            for turn in turns {
                let word = turn.decision.word();
                out.push_str(&format!("  {word:<8} {}\n", turn.service));
            }
        }
        if !self.left.is_empty() {
            out.push_str("left:\n");
            for (service, why) in &self.left {
                out.push_str(&format!("  {service} ({why})\n"));
            }
        }
        out
    }
}

/// The start (or restart) of `services` on a node that runs `observed`
/// (every service with a live container when None). A data container
/// named is refused: it holds volumes and is never started. A service
/// named that has no live container on this node is left (another node
/// may run it).
pub fn plan(
    observed: &[ObservedContainer],
    services: Option<&[String]>,
    restart: bool,
) -> Result<StartPlan, String> {
    let live: BTreeMap<&str, &ObservedContainer> = observed
        .iter()
        .filter(|c| c.role == Role::Live)
        .map(|c| (c.service.as_str(), c))
        .collect();
    let asked: Vec<&str> = match services {
        Some(named) => named.iter().map(String::as_str).collect(),
        None => live.keys().copied().collect(),
    };
    let mut plan = StartPlan::default();
    let mut by_level: BTreeMap<usize, Vec<Turn>> = BTreeMap::new();
    for service in asked {
        let Some(container) = live.get(service) else {
            plan.left
                .push((service.to_string(), "no live container on this node".into()));
            continue;
        };
        match decide(container, restart) {
            Decision::Leave(_) if container.data && services.is_some() => {
                return Err(format!(
                    "service {service} is a data container: it is never started (its volumes serve the services that use them)"
                ));
            }
            Decision::Leave(why) => plan.left.push((service.to_string(), why.to_string())),
            decision => by_level.entry(container.level).or_default().push(Turn {
                service: service.to_string(),
                decision,
                restart,
            }),
        }
    }
    for (_, mut turns) in by_level {
        turns.sort();
        turns.dedup();
        plan.levels.push(turns);
    }
    plan.left.sort();
    plan.left.dedup();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(service: &str, state: State, level: usize) -> ObservedContainer {
        let mut c = ObservedContainer::running(service, Role::Live);
        c.state = state;
        c.level = level;
        c.restart = "unless-stopped".into();
        c
    }

    fn node() -> Vec<ObservedContainer> {
        let mut data = live("webdata", State::Created, 0);
        data.data = true;
        let mut job = live("migrate", State::Exited, 1);
        job.exit_code = Some(0);
        job.restart = "no".into();
        let mut stopped = live("api", State::Exited, 2);
        stopped.exit_code = Some(143);
        let kept = ObservedContainer {
            role: Role::Kept(1),
            state: State::Exited,
            ..live("web", State::Exited, 1)
        };
        vec![
            data,
            job,
            stopped,
            kept,
            live("web", State::Running, 1),
            live("db", State::Exited, 0),
            live("cache", State::Running, 0),
            live("frozen", State::Paused, 0),
        ]
    }

    #[test]
    fn a_start_brings_up_what_is_stopped_dependencies_first() {
        let plan = plan(&node(), None, false).unwrap();
        assert_eq!(
            plan.text(),
            "level 0:
  start    db
level 1:
  start    api
left:
  cache (already running)
  frozen (paused (`docker unpause` resumes it))
  migrate (a one-shot that completed (exited 0, restart policy no))
  web (already running)
  webdata (a data container: created, never started)
"
        );
    }

    #[test]
    fn a_restart_takes_what_runs_and_starts_what_does_not() {
        let plan = plan(&node(), None, true).unwrap();
        assert_eq!(
            plan.text(),
            "level 0:
  restart  cache
  start    db
level 1:
  restart  web
level 2:
  start    api
left:
  frozen (paused (`docker unpause` resumes it))
  migrate (a one-shot that completed (exited 0, restart policy no))
  webdata (a data container: created, never started)
"
        );
    }

    #[test]
    fn named_services_alone_and_a_data_container_named_is_refused() {
        let named = ["web".to_string(), "nowhere".to_string(), "web".to_string()];
        let plan = plan(&node(), Some(&named), true).unwrap();
        assert_eq!(
            plan.text(),
            "level 0:
  restart  web
left:
  nowhere (no live container on this node)
"
        );
        let err = super::plan(&node(), Some(&["webdata".to_string()]), false).unwrap_err();
        assert!(
            err.starts_with("service webdata is a data container"),
            "{err}"
        );
        // Under the lock, the decision follows the node as it is then.
        let turn = Turn {
            service: "web".into(),
            decision: Decision::Start,
            restart: false,
        };
        let now = [live("web", State::Running, 1)];
        let (_, decision) = turn.recheck(&now).unwrap();
        assert_eq!(decision, Decision::Leave("already running"));
        let restart = Turn {
            restart: true,
            ..turn.clone()
        };
        let now = [live("web", State::Exited, 1)];
        assert_eq!(restart.recheck(&now).map(|(_, d)| d), Some(Decision::Start));
        assert_eq!(turn.recheck(&[]), None);
    }
}
