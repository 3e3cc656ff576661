//! Recovery after a crash anywhere in a swap, from names and generation
//! labels alone. Every step is idempotent, so recovery can itself crash and
//! be run again:
//!
//! - a bootstrap job left behind is removed;
//! - no `<svc>`: the newest kept container (the one the swap stopped) gets
//!   the name back; failing that, a candidate does;
//! - a candidate that never went live is removed;
//! - `<svc>` gets the restart policy it was created with and is started if
//!   it is not running, then must pass the health gate; if it fails, the
//!   newest kept container is swapped back in;
//! - the stale lock is removed.
//!
//! A lock held by a live process (on this machine) or by another machine is
//! left alone unless forced: that swap may still be running.

use super::apply::{DeployError, NodeRun};
use super::labels::{self, ObservedContainer, Role, State};
use super::lock;
use super::upgrade::{self, SwapOptions};

/// Whether `service` has leftovers of an interrupted swap.
pub fn needs_recovery(observed: &[ObservedContainer], service: &str) -> bool {
    let mine: Vec<&ObservedContainer> = observed.iter().filter(|c| c.service == service).collect();
    let has_live = mine.iter().any(|c| c.role == Role::Live);
    let has_kept = mine.iter().any(|c| matches!(c.role, Role::Kept(_)));
    mine.iter()
        .any(|c| matches!(c.role, Role::Candidate | Role::Bootstrap | Role::Lock))
        || (!has_live && has_kept)
}

/// Services with leftovers, sorted.
pub fn services_needing_recovery(observed: &[ObservedContainer]) -> Vec<String> {
    let mut services: Vec<String> = observed
        .iter()
        .filter(|c| needs_recovery(observed, &c.service))
        .map(|c| c.service.clone())
        .collect();
    services.sort();
    services.dedup();
    services
}

/// Bring `service` back to exactly one running `<svc>`; returns what was
/// done, one phrase per step.
pub async fn recover_service(
    run: &NodeRun<'_>,
    service: &str,
    observed: &[ObservedContainer],
    force: bool,
) -> Result<Vec<String>, DeployError> {
    let engine = run.engine;
    let err = |e| run.engine_error(e);
    let mut done = Vec::new();
    let mine: Vec<&ObservedContainer> = observed.iter().filter(|c| c.service == service).collect();

    let lock_held = mine.iter().any(|c| c.role == Role::Lock);
    if lock_held
        && let Some(holder) = lock::holder(engine, run.placement_prefix, service)
            .await
            .map_err(err)?
        && !holder.is_stale()
        && !force
    {
        return Err(DeployError::Lock {
            node: run.node.to_string(),
            source: holder.into_error(service),
        });
    }

    for c in mine.iter().filter(|c| c.role == Role::Bootstrap) {
        engine.remove_container(&c.name, false).await.map_err(err)?;
        done.push(format!("removed the bootstrap job {}", c.name));
    }

    let live_name = labels::container_name(run.placement_prefix, service, Role::Live);
    let mut live: Option<ObservedContainer> = mine
        .iter()
        .find(|c| c.role == Role::Live)
        .map(|c| (*c).clone());
    let mut kept: Vec<ObservedContainer> = mine
        .iter()
        .filter(|c| matches!(c.role, Role::Kept(_)))
        .map(|c| (*c).clone())
        .collect();
    kept.sort_by_key(|c| std::cmp::Reverse(c.generation));
    let candidate = mine
        .iter()
        .find(|c| c.role == Role::Candidate)
        .map(|c| (*c).clone());

    if live.is_none() {
        let restore = if !kept.is_empty() {
            Some(kept.remove(0))
        } else {
            candidate.clone()
        };
        if let Some(back) = restore {
            engine
                .rename_container(&back.name, &live_name)
                .await
                .map_err(err)?;
            done.push(format!("renamed {} back to {live_name}", back.name));
            live = Some(ObservedContainer {
                name: live_name.clone(),
                role: Role::Live,
                ..back
            });
        }
    }
    if let Some(c) = &candidate
        && live.as_ref().is_none_or(|l| l.id != c.id)
    {
        engine.remove_container(&c.name, false).await.map_err(err)?;
        done.push(format!("removed the candidate {}", c.name));
    }

    if let Some(live) = &live {
        let (_, policy) = engine
            .container_details(&live_name)
            .await
            .map_err(err)?
            .unwrap_or_default();
        if policy != live.restart {
            engine
                .set_restart_policy(&live_name, &live.restart)
                .await
                .map_err(err)?;
            done.push(format!(
                "restored the restart policy {} of {live_name}",
                live.restart
            ));
        }
        let unhealthy = live.health.as_deref().is_some_and(|h| h != "healthy");
        if live.state != State::Running || unhealthy || !done.is_empty() {
            if live.state != State::Running {
                engine.start_container(&live_name).await.map_err(err)?;
                done.push(format!(
                    "started {live_name} (generation {})",
                    live.generation
                ));
            }
            if let Err(failure) = run.gate(service, &live_name).await {
                match kept.first() {
                    Some(previous) => {
                        let options = SwapOptions {
                            grace: None,
                            start_first: false,
                        };
                        let current = ObservedContainer {
                            name: live_name.clone(),
                            ..live.clone()
                        };
                        upgrade::rollback(run, service, &current, previous, &kept, &options)
                            .await?;
                        done.push(format!(
                            "generation {} failed its health gate; swapped back to generation {}",
                            live.generation, previous.generation
                        ));
                    }
                    None => return Err(failure),
                }
            }
        }
    }

    if lock_held {
        lock::clear(engine, run.placement_prefix, service)
            .await
            .map_err(err)?;
        done.push("cleared the lock".to_string());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, role: Role) -> ObservedContainer {
        ObservedContainer::running(service, role)
    }

    #[test]
    fn leftovers_are_found_by_name() {
        let clean = vec![container("a", Role::Live), container("a", Role::Kept(1))];
        assert!(services_needing_recovery(&clean).is_empty());
        let observed = vec![
            container("a", Role::Live),
            container("a", Role::Candidate),
            container("b", Role::Kept(2)),
            container("c", Role::Live),
            container("c", Role::Lock),
            container("d", Role::Live),
            container("d", Role::Bootstrap),
        ];
        assert_eq!(
            services_needing_recovery(&observed),
            vec!["a", "b", "c", "d"]
        );
    }
}
