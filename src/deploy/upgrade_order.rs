//! The order of `kolla upgrade --all`, from the compose files alone: a
//! service is upgraded after what it needs to start (`depends_on`,
//! `volumes_from`, `network_mode: service:`) and after what its
//! `x-kolla.upgrade_after` names (upstream's order where nothing in the
//! files says it: Keystone before Glance before Placement before Nova,
//! Nova's control services before compute, Neutron's server before its
//! agents). Stages: every service of a stage waits for every one of the
//! stages before it. Data containers hold data, not code: never upgraded,
//! never waited for. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::compose::ServiceSpec;

/// Why a service comes after another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// It needs the other to start.
    Needs(String),
    /// Its `x-kolla.upgrade_after` names the other.
    UpgradeAfter(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Needs(other) => write!(f, "after {other} (it needs it to start)"),
            Cause::UpgradeAfter(other) => write!(f, "after {other} (x-kolla.upgrade_after)"),
        }
    }
}

/// One service of a stage, with what it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub service: String,
    /// What it comes after, each once (empty: nothing, it is first).
    pub causes: Vec<Cause>,
}

/// The services of a cycle, from the first the walk met to it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<String>);

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the upgrade order goes round: {} (depends_on, volumes_from and x-kolla.upgrade_after together)",
            self.0.join(" -> ")
        )
    }
}

/// The stages of upgrading `services` (every compose file's, one entry per
/// node and role that runs it: the same name's edges are merged). Names
/// that none of `services` defines are left out: their service is upgraded
/// elsewhere or not at all.
pub fn stages<'a>(
    services: impl IntoIterator<Item = &'a ServiceSpec>,
) -> Result<Vec<Vec<Step>>, Cycle> {
    let mut causes: BTreeMap<&str, BTreeSet<Cause>> = BTreeMap::new();
    let mut data: BTreeSet<&str> = BTreeSet::new();
    let services: Vec<&ServiceSpec> = services.into_iter().collect();
    for service in &services {
        if service.kolla.data {
            data.insert(&service.name);
            continue;
        }
        let mine = causes.entry(&service.name).or_default();
        mine.extend(
            service
                .needs()
                .into_iter()
                .map(|other| Cause::Needs(other.to_string())),
        );
        mine.extend(
            service
                .kolla
                .upgrade_after
                .iter()
                .map(|other| Cause::UpgradeAfter(other.clone())),
        );
    }
    let known: BTreeSet<String> = causes.keys().map(|s| s.to_string()).collect();
    for mine in causes.values_mut() {
        mine.retain(|cause| known.contains(cause.other()));
    }
    let names: Vec<&str> = causes.keys().copied().collect();
    let index = |name: &str| names.binary_search(&name).ok();
    let needs: Vec<Vec<usize>> = names
        .iter()
        .map(|name| {
            let mut after: Vec<usize> = causes[name]
                .iter()
                .filter_map(|c| index(c.other()))
                .collect();
            after.sort_unstable();
            after.dedup();
            after
        })
        .collect();
    let levels = crate::graph::levels(&needs)
        .map_err(|cycle| Cycle(cycle.into_iter().map(|i| names[i].to_string()).collect()))?;
    let mut stages: Vec<Vec<Step>> = vec![Vec::new(); levels.iter().max().map_or(0, |l| l + 1)];
    for (i, level) in levels.into_iter().enumerate() {
        stages[level].push(Step {
            service: names[i].to_string(),
            causes: causes[names[i]].iter().cloned().collect(),
        });
    }
    Ok(stages)
}

impl Cause {
    /// The service it names.
    pub fn other(&self) -> &str {
        match self {
            Cause::Needs(other) | Cause::UpgradeAfter(other) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compose::{Condition, KollaSettings, Variables, parse};
    use std::path::Path;

    fn service(name: &str, depends_on: &[&str], after: &[&str]) -> ServiceSpec {
        let text = format!("services:\n  {name}:\n    image: i\n");
        let file = parse(
            &text,
            Path::new("c.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        let mut spec = file.service(name).unwrap().clone();
        spec.depends_on = depends_on
            .iter()
            .map(|d| (d.to_string(), Condition::Started))
            .collect();
        spec.kolla = KollaSettings {
            upgrade_after: after.iter().map(|a| a.to_string()).collect(),
            ..KollaSettings::default()
        };
        spec
    }

    fn names(stages: &[Vec<Step>]) -> Vec<Vec<&str>> {
        stages
            .iter()
            .map(|stage| stage.iter().map(|s| s.service.as_str()).collect())
            .collect()
    }

    #[test]
    fn stages_follow_needs_and_upgrade_after_and_say_why() {
        let mut data = service("glance-data", &[], &[]);
        data.kolla.data = true;
        let mut glance = service("glance-api", &["keystone"], &[]);
        glance.volumes_from = vec!["glance-data".into()];
        let services = [
            service("mariadb", &[], &[]),
            service("keystone", &["mariadb"], &["rabbitmq"]),
            service("rabbitmq", &[], &[]),
            glance,
            data,
            service("placement-api", &["keystone"], &["glance-api"]),
            // Upgraded on another node set, named but not defined here.
            service("nova-compute", &[], &["nova-api"]),
        ];
        let stages = stages(&services).unwrap();
        assert_eq!(
            names(&stages),
            vec![
                vec!["mariadb", "nova-compute", "rabbitmq"],
                vec!["keystone"],
                vec!["glance-api"],
                vec!["placement-api"],
            ]
        );
        assert_eq!(
            stages[1][0].causes,
            vec![
                Cause::Needs("mariadb".into()),
                Cause::UpgradeAfter("rabbitmq".into())
            ]
        );
        // The data container is neither upgraded nor waited for.
        assert_eq!(stages[2][0].causes, vec![Cause::Needs("keystone".into())]);
        assert_eq!(
            stages[1][0].causes[1].to_string(),
            "after rabbitmq (x-kolla.upgrade_after)"
        );
    }

    #[test]
    fn one_service_on_several_nodes_merges_its_edges() {
        let services = [
            service("server", &[], &[]),
            service("switch", &[], &[]),
            service("agent", &["server"], &[]),
            service("agent", &[], &["switch"]),
        ];
        let stages = stages(&services).unwrap();
        assert_eq!(
            names(&stages),
            vec![vec!["server", "switch"], vec!["agent"]]
        );
        assert_eq!(stages[1][0].causes.len(), 2);
    }

    #[test]
    fn a_cycle_is_named() {
        let services = [
            service("one", &["two"], &[]),
            service("two", &[], &["three"]),
            service("three", &[], &["one"]),
        ];
        let cycle = stages(&services).unwrap_err();
        assert_eq!(cycle.0.first(), cycle.0.last());
        assert_eq!(cycle.0.len(), 4, "{cycle}");
        assert!(cycle.to_string().contains("goes round"), "{cycle}");
    }

    #[test]
    fn nothing_to_upgrade_is_no_stage() {
        assert!(stages(&[]).unwrap().is_empty());
    }
}
