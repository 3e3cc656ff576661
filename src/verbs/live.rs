//! Where a service's live container is, for the verbs that read from it
//! or run in it (`logs`, `exec`): on each selected node, the container
//! kolla names and labels live for the service (`labels::Role::Live`),
//! from one list call per node, with the node's engine kept for the verb.
//! A name that no compose file of those nodes and none of their containers
//! knows is refused as bad input (exit 2), the known names listed closest
//! first; a known service with no live container there, or none running
//! for a command, is an error that says which and where.

use std::collections::BTreeSet;

use super::{suggest, targets};
use crate::cli::NodeArgs;
use crate::config::Inventory;
use crate::config::compose::Variables;
use crate::config::inventory::Node;
use crate::deploy::desired;
use crate::deploy::labels::{ObservedContainer, Role, State};
use crate::engine::Engine;
use crate::settings::Settings;

/// A service's live container on one node.
pub struct Live<'a> {
    pub node: &'a Node,
    pub engine: Engine,
    /// The container's name on the node's engine.
    pub container: String,
    pub state: State,
}

/// The service's live containers on the selected nodes.
pub struct Found<'a> {
    /// In the inventory's order.
    pub live: Vec<Live<'a>>,
    /// The nodes that could not be asked (each already said on stderr):
    /// the verb still works on the others, and fails in the end.
    pub failures: Vec<anyhow::Error>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "service {service:?} is in no compose file of the selected nodes and has no container on them{guess}; the services known, closest first: {known}"
    )]
    Unknown {
        service: String,
        /// ` (did you mean "web"?)`, when one name is close.
        guess: String,
        known: String,
    },
    #[error(
        "service {service} has no live container on {nodes}{unasked}\n  hint: `kolla deploy` starts it; `kolla ps` shows what runs where"
    )]
    NotDeployed {
        service: String,
        nodes: String,
        /// How many selected nodes did not answer, if any.
        unasked: String,
    },
    #[error(
        "service {service} is a data container (created, never started): it prints nothing and runs no command"
    )]
    Data { service: String },
    #[error(
        "service {service} runs on {count} of the selected nodes ({nodes}): name the one to run in with --node"
    )]
    SeveralNodes {
        service: String,
        count: usize,
        nodes: String,
    },
    #[error(
        "service {service}: its live container {container} on node {node} is {state}, not running\n  hint: `kolla logs {service} --node {node}` shows what it printed"
    )]
    NotRunning {
        service: String,
        node: String,
        container: String,
        state: String,
    },
}

impl LiveError {
    /// Whether the operator's input is what is wrong (exit 2): a name
    /// nothing knows, or a command with no one node to run on.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            LiveError::Unknown { .. } | LiveError::SeveralNodes { .. }
        )
    }
}

/// The live containers of `service` on the nodes `args` selects, each
/// node's engine connected; or why there are none.
pub async fn find<'a>(
    settings: &Settings,
    inventory: &'a Inventory,
    args: &NodeArgs,
    service: &str,
) -> anyhow::Result<Found<'a>> {
    let nodes = inventory.select(&args.node)?;
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let answers = super::each_node(nodes.iter().copied(), settings.forks, |node| async move {
        let engine = asked.connect(settings, node).await?;
        let observed = targets::observe(settings, &engine, &node.name).await?;
        anyhow::Ok((node, engine, observed))
    })
    .await;
    let mut found = Found {
        live: Vec::new(),
        failures: Vec::new(),
    };
    let mut on_nodes = BTreeSet::new();
    let mut data = false;
    for answer in answers {
        let (node, engine, observed) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                eprintln!("error: {}", super::describe_error(&error));
                found.failures.push(error);
                continue;
            }
        };
        on_nodes.extend(observed.iter().map(|c| c.service.clone()));
        let Some(live) = live_of(&observed, service) else {
            continue;
        };
        if live.data {
            data = true;
            continue;
        }
        found.live.push(Live {
            node,
            engine,
            container: live.name.clone(),
            state: live.state.clone(),
        });
    }
    if !found.live.is_empty() {
        return Ok(found);
    }
    if data {
        return Err(LiveError::Data {
            service: service.to_string(),
        }
        .into());
    }
    let mut known = compose_services(settings, &nodes, args);
    known.extend(on_nodes);
    Err(none_live(service, &nodes, &known, found.failures.len()).into())
}

/// The container kolla calls `service`'s live one, if `observed` has it.
fn live_of<'c>(observed: &'c [ObservedContainer], service: &str) -> Option<&'c ObservedContainer> {
    observed
        .iter()
        .find(|c| c.service == service && c.role == Role::Live)
}

/// Why no selected node showed a live container of `service`: a name
/// nothing knows, or a service not deployed there. A name none of the
/// nodes that answered knows is not called unknown while some did not
/// answer: one of them may run it.
fn none_live(
    service: &str,
    nodes: &[&Node],
    known: &BTreeSet<String>,
    unasked: usize,
) -> LiveError {
    if !known.contains(service) && unasked == 0 {
        let closest = suggest::closest_first(service, known.iter().map(String::as_str));
        let guess = suggest::likely(service, &closest)
            .map(|name| format!(" (did you mean {name:?}?)"))
            .unwrap_or_default();
        return LiveError::Unknown {
            service: service.to_string(),
            guess,
            known: suggest::listed(&closest),
        };
    }
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    LiveError::NotDeployed {
        service: service.to_string(),
        nodes: match names.as_slice() {
            [one] => format!("node {one}"),
            _ => format!("the selected nodes ({})", suggest::listed(&names)),
        },
        unasked: match unasked {
            0 => String::new(),
            n => format!(" that answered ({n} did not, said above)"),
        },
    }
}

/// The services the compose files of `nodes` define. A file that does not
/// read leaves its services out: these verbs are what an operator reaches
/// for while a file is being mended.
pub(super) fn compose_services(
    settings: &Settings,
    nodes: &[&Node],
    args: &NodeArgs,
) -> BTreeSet<String> {
    let variables = Variables {
        environment: settings.environment.variables.clone(),
        globals: settings.globals.compose_variables(),
    };
    nodes
        .iter()
        .filter_map(|node| desired::load_files(node, &args.compose_dir, &variables).ok())
        .flatten()
        .flat_map(|(_, file)| file.services.into_iter().map(|s| s.name))
        .collect()
}

impl<'a> Found<'a> {
    /// The one node whose live container of `service` runs, for a command;
    /// refused when several do (the operator names one with `--node`), or
    /// when none does.
    pub fn one_running(self, service: &str) -> Result<Live<'a>, LiveError> {
        let (mut running, stopped): (Vec<Live>, Vec<Live>) = self
            .live
            .into_iter()
            .partition(|l| l.state == State::Running);
        match (running.pop(), running.is_empty()) {
            (Some(one), true) => Ok(one),
            (Some(one), false) => {
                running.push(one);
                let names: Vec<&str> = running.iter().map(|l| l.node.name.as_str()).collect();
                Err(LiveError::SeveralNodes {
                    service: service.to_string(),
                    count: names.len(),
                    nodes: suggest::listed(&names),
                })
            }
            (None, _) => {
                // `find` gives at least one live container.
                let first = stopped.first();
                Err(LiveError::NotRunning {
                    service: service.to_string(),
                    node: first.map(|l| l.node.name.clone()).unwrap_or_default(),
                    container: first.map(|l| l.container.clone()).unwrap_or_default(),
                    state: first
                        .map(|l| l.state.as_str().to_string())
                        .unwrap_or_default(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        let text = format!("nodes:\n  {name}:\n    roles: [controller]\n");
        let inventory = Inventory::parse(&text, std::path::Path::new("inventory.yml"))
            .unwrap_or_else(|e| panic!("{e}"));
        inventory.nodes[0].clone()
    }

    #[test]
    fn a_name_nothing_knows_is_bad_input_listing_the_known_closest_first() {
        let (a, b) = (node("a"), node("b"));
        let known: BTreeSet<String> = ["api", "web", "webdata", "worker"]
            .into_iter()
            .map(String::from)
            .collect();
        let error = none_live("wbe", &[&a, &b], &known, 0);
        assert!(error.is_bad_input());
        assert_eq!(
            error.to_string(),
            "service \"wbe\" is in no compose file of the selected nodes and has no container on them (did you mean \"web\"?); the services known, closest first: web, api, worker, webdata"
        );
        // Known, not deployed: said so, not bad input.
        let error = none_live("api", &[&a, &b], &known, 0);
        assert!(!error.is_bad_input());
        assert!(
            error
                .to_string()
                .starts_with("service api has no live container on the selected nodes (a, b)\n"),
            "{error}"
        );
        // A node that did not answer may run what the others do not know.
        let error = none_live("wbe", &[&a], &known, 1);
        assert!(!error.is_bad_input());
        assert!(
            error.to_string().starts_with(
                "service wbe has no live container on node a that answered (1 did not"
            ),
            "{error}"
        );
    }
}
