//! The order `kolla deploy` works through nodes. A role file's top-level
//! `x-kolla.after` names roles that come first: nova-compute and the Linux
//! bridge agent on a compute node need the controller's RabbitMQ, and
//! their health checks give up if it comes minutes later (as it does when
//! a fresh controller is still receiving its images). Each role gets a
//! level (0 without `after`, else one more than the highest role it comes
//! after); a node takes the highest level of its roles, and nodes deploy
//! wave by wave, level by level, at once within a wave. A node that holds
//! both a role and one it comes after (an all-in-one) deploys them
//! together, its own services in their dependency order. Pure: no engine.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::ConfigError;

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
    let mut levels = BTreeMap::new();
    for role in roles.keys() {
        level(role, roles, &mut levels, &mut Vec::new())?;
    }
    let node_levels: Vec<usize> = nodes
        .iter()
        .map(|node_roles| {
            node_roles
                .iter()
                .map(|role| levels.get(role.as_str()).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut by_level: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (index, level) in node_levels.into_iter().enumerate() {
        by_level.entry(level).or_default().push(index);
    }
    Ok(by_level.into_values().collect())
}

/// The level of `role` (memoised in `levels`); `path` holds the roles on
/// the way here, to name a circle.
fn level<'a>(
    role: &'a str,
    roles: &'a BTreeMap<String, RoleAfter>,
    levels: &mut BTreeMap<&'a str, usize>,
    path: &mut Vec<&'a str>,
) -> Result<usize, ConfigError> {
    if let Some(known) = levels.get(role) {
        return Ok(*known);
    }
    // A role named but not loaded (no selected node has it) waits for
    // nothing here.
    let Some(spec) = roles.get(role) else {
        return Ok(0);
    };
    if let Some(start) = path.iter().position(|r| *r == role) {
        let mut circle: Vec<&str> = path[start..].to_vec();
        circle.push(role);
        let line = roles
            .get(path[path.len() - 1])
            .and_then(|s| s.after.iter().find(|(r, _)| r == role))
            .map_or(0, |(_, line)| *line);
        let last = roles.get(path[path.len() - 1]).unwrap_or(spec);
        return Err(ConfigError::Invalid {
            path: last.file.clone(),
            message: format!(
                "line {line}: x-kolla.after goes round in a circle ({}): no role could be deployed first; take one of these out",
                circle.join(" after ")
            ),
        });
    }
    path.push(role);
    let mut highest = None;
    for (before, _) in &spec.after {
        let below = level(before, roles, levels, path)?;
        highest = Some(highest.map_or(below, |h: usize| h.max(below)));
    }
    path.pop();
    let mine = highest.map_or(0, |h| h + 1);
    levels.insert(role, mine);
    Ok(mine)
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
    fn compute_nodes_wait_for_the_controllers_and_an_all_in_one_for_nothing_else() {
        let specs = roles(&[("controller", &[]), ("compute", &["controller"])]);
        let (c, n, both) = (
            strings(&["controller"]),
            strings(&["compute"]),
            strings(&["controller", "compute"]),
        );
        let nodes: Vec<&[String]> = vec![&n, &c, &n, &both];
        assert_eq!(
            waves(&nodes, &specs, &any_file).unwrap(),
            vec![vec![1], vec![0, 2, 3]]
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
