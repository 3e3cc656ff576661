//! The order `kolla deploy` works through nodes. A role file's top-level
//! `x-kolla.after` names roles that come first: nova-compute and the Linux
//! bridge agent on a compute node need the controller's RabbitMQ, and
//! their health checks give up if it comes minutes later (as it does when
//! a fresh controller is still receiving its images). Each role gets a
//! level (0 without `after`, else one more than the highest role it comes
//! after); a node waits for the roles its roles come after that it does
//! not hold itself (`node_level`), and nodes deploy wave by wave, level by
//! level, at once within a wave. A node that holds both a role and one it
//! comes after (an all-in-one, or a controller that is also a compute
//! node) deploys them together, its own services in their dependency
//! order, in the wave of the role it comes after: compute-only nodes wait
//! for it. Pure: no engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::graph;

/// A role file's `x-kolla.after`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleAfter {
    pub file: PathBuf,
    /// The roles it comes after, each with its line in `file`.
    pub after: Vec<(String, usize)>,
}

/// The nodes (each given by its roles), as waves of indexes into `nodes`,
/// lowest level first; empty levels are left out. `roles` holds the
/// `after` of each role loaded; a role it names must have a file
/// (`has_file`), and the `after` lists may not go round in a circle.
pub fn waves(
    nodes: &[&[String]],
    roles: &BTreeMap<String, RoleAfter>,
    has_file: &dyn Fn(&str) -> bool,
) -> Result<Vec<Vec<usize>>, ConfigError> {
    for spec in roles.values() {
        if let Some((role, line)) = spec.after.iter().find(|(role, _)| !has_file(role)) {
            return Err(ConfigError::Invalid {
                path: spec.file.clone(),
                message: format!(
                    "line {line}: x-kolla.after names role {role}, but there is no compose file for it ({role}.yml beside this one)"
                ),
            });
        }
    }
    let levels = role_levels(roles)?;
    let node_levels: Vec<usize> = nodes
        .iter()
        .map(|node_roles| node_level(node_roles, roles, &levels))
        .collect();
    let mut by_level: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (index, level) in node_levels.into_iter().enumerate() {
        by_level.entry(level).or_default().push(index);
    }
    Ok(by_level.into_values().collect())
}

/// The wave of a node holding `node_roles`: it waits for the nodes that
/// hold a role one of its roles comes after, and not for itself. A role
/// it holds and one it comes after (a controller that is also a compute
/// node) deploy together, in their services' own order, so the role it
/// comes after adds nothing but what that role itself waits for.
fn node_level(
    node_roles: &[String],
    roles: &BTreeMap<String, RoleAfter>,
    levels: &BTreeMap<&str, usize>,
) -> usize {
    let level = |role: &str| levels.get(role).copied().unwrap_or(0);
    let mut held: Vec<&str> = node_roles.iter().map(String::as_str).collect();
    // What a held role comes after is a lower level: settled first.
    held.sort_by_key(|role| level(role));
    held.dedup();
    let mut waits: HashMap<&str, usize> = HashMap::new();
    for role in held.iter().copied() {
        let after = roles
            .get(role)
            .map(|spec| spec.after.as_slice())
            .unwrap_or_default();
        let wait = after
            .iter()
            .map(|(before, _)| match waits.get(before.as_str()) {
                Some(held_wait) => *held_wait,
                None => level(before) + 1,
            })
            .max()
            .unwrap_or(0);
        waits.insert(role, wait);
    }
    waits.into_values().max().unwrap_or(0)
}

/// The level of every role loaded, and of every role an `after` names
/// but no selected node has (level 0: nothing here waits for it first).
/// Roles are tried in name order, so the circle reported is the same each
/// run.
fn role_levels(roles: &BTreeMap<String, RoleAfter>) -> Result<BTreeMap<&str, usize>, ConfigError> {
    let mut names: Vec<&str> = roles.keys().map(String::as_str).collect();
    let unloaded: BTreeSet<&str> = roles
        .values()
        .flat_map(|spec| spec.after.iter().map(|(role, _)| role.as_str()))
        .filter(|role| !roles.contains_key(*role))
        .collect();
    names.extend(unloaded);
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let needs: Vec<Vec<usize>> = names
        .iter()
        .map(|role| match roles.get(*role) {
            Some(spec) => spec
                .after
                .iter()
                .filter_map(|(r, _)| index.get(r.as_str()).copied())
                .collect(),
            None => Vec::new(),
        })
        .collect();
    let levels = graph::levels(&needs).map_err(|circle| {
        let circle: Vec<&str> = circle.into_iter().map(|i| names[i]).collect();
        circle_error(roles, &circle)
    })?;
    Ok(names.into_iter().zip(levels).collect())
}

/// `circle` (its first role again at the end) as an error at the line
/// where its last role names the first.
fn circle_error(roles: &BTreeMap<String, RoleAfter>, circle: &[&str]) -> ConfigError {
    let (last, first) = match circle {
        [.., last, first] => (*last, *first),
        _ => ("", ""),
    };
    let spec = roles.get(last);
    let line = spec
        .and_then(|s| s.after.iter().find(|(r, _)| r == first))
        .map_or(0, |(_, line)| *line);
    ConfigError::Invalid {
        path: spec.map(|s| s.file.clone()).unwrap_or_default(),
        message: format!(
            "line {line}: x-kolla.after goes round in a circle ({}): no role could be deployed first; take one of these out",
            circle.join(" after ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(specs: &[(&str, &[&str])]) -> BTreeMap<String, RoleAfter> {
        specs
            .iter()
            .map(|(role, after)| {
                let spec = RoleAfter {
                    file: PathBuf::from(format!("compose/{role}.yml")),
                    after: after
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (r.to_string(), 10 + i))
                        .collect(),
                };
                (role.to_string(), spec)
            })
            .collect()
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn any_file(_: &str) -> bool {
        true
    }

    #[test]
    fn compute_nodes_wait_for_every_node_with_a_controller_role_and_an_all_in_one_for_nothing_else()
    {
        let specs = roles(&[("controller", &[]), ("compute", &["controller"])]);
        let (c, n, both) = (
            strings(&["controller"]),
            strings(&["compute"]),
            strings(&["controller", "compute"]),
        );
        let nodes: Vec<&[String]> = vec![&n, &c, &n, &both];
        assert_eq!(
            waves(&nodes, &specs, &any_file).unwrap(),
            vec![vec![1, 3], vec![0, 2]]
        );
        // A controller that is also a compute node, and a compute node:
        // the compute node waits for it.
        assert_eq!(
            waves(&[&both, &n], &specs, &any_file).unwrap(),
            vec![vec![0], vec![1]]
        );
        // One all-in-one: a single wave.
        assert_eq!(waves(&[&both], &specs, &any_file).unwrap(), vec![vec![0]]);
        // Only compute nodes selected (`--node compute`): they go at once.
        assert_eq!(
            waves(&[&n, &n], &specs, &any_file).unwrap(),
            vec![vec![0, 1]]
        );
    }

    #[test]
    fn levels_follow_chains_and_take_the_highest() {
        let specs = roles(&[
            ("db", &[]),
            ("controller", &["db"]),
            ("compute", &["controller", "db"]),
            ("storage", &[]),
        ]);
        let (db, c, n, s) = (
            strings(&["db"]),
            strings(&["controller"]),
            strings(&["compute"]),
            strings(&["storage", "compute"]),
        );
        assert_eq!(
            waves(&[&n, &s, &c, &db], &specs, &any_file).unwrap(),
            vec![vec![3], vec![2], vec![0, 1]]
        );
    }

    #[test]
    fn a_chain_of_twenty_thousand_roles_orders_its_nodes() {
        let n = 20_000;
        let names: Vec<String> = (0..n).map(|i| format!("r{i:05}")).collect();
        // Each role comes after the next: the first is the deepest.
        let specs: BTreeMap<String, RoleAfter> = names
            .iter()
            .enumerate()
            .map(|(i, role)| {
                let after = names.get(i + 1).map(|next| (next.clone(), 3));
                let spec = RoleAfter {
                    file: PathBuf::from(format!("compose/{role}.yml")),
                    after: after.into_iter().collect(),
                };
                (role.clone(), spec)
            })
            .collect();
        let (first, middle, last) = (
            strings(&[&names[0]]),
            strings(&[&names[n / 2]]),
            strings(&[&names[n - 1]]),
        );
        assert_eq!(
            waves(&[&first, &middle, &last], &specs, &any_file).unwrap(),
            vec![vec![2], vec![1], vec![0]]
        );
    }

    #[test]
    fn a_circle_is_refused_naming_the_roles_file_and_line() {
        let specs = roles(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        let node = strings(&["a"]);
        let error = waves(&[&node], &specs, &any_file).unwrap_err().to_string();
        assert!(error.contains("a after b after c after a"), "{error}");
        assert!(error.contains("compose/c.yml"), "{error}");
        assert!(error.contains("line 10"), "{error}");
    }

    #[test]
    fn a_role_without_a_file_is_refused_with_the_line_naming_it() {
        let specs = roles(&[("compute", &["controller", "contrller"])]);
        let node = strings(&["compute"]);
        let error = waves(&[&node], &specs, &|role| role == "controller")
            .unwrap_err()
            .to_string();
        assert!(error.contains("compose/compute.yml"), "{error}");
        assert!(error.contains("line 11"), "{error}");
        assert!(error.contains("role contrller"), "{error}");
    }
}
