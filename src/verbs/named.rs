//! The services an operator names on the command line of `deploy`,
//! `pull`, `stop`, `start` and `restart`, checked before anything is
//! touched: a name nothing knows is refused as bad input (exit 2), with the
//! known names closest first (`suggest`). Deploy and pull know what the
//! selected nodes' compose files deploy; stop, start and restart work on
//! what the nodes run, so they also know the services of the containers
//! there (a service whose file was dropped still runs).

use std::collections::BTreeSet;

use super::{live, suggest, targets};
use crate::cli::NodeArgs;
use crate::config::inventory::Node;
use crate::settings::Settings;

/// A service no compose file (or container) of the selected nodes knows.
#[derive(Debug, thiserror::Error)]
#[error("service {service:?} is {nowhere}{guess}; the services known, closest first: {known}")]
pub struct UnknownService {
    service: String,
    /// Where it was looked for.
    nowhere: &'static str,
    /// ` (did you mean "web"?)`, when one name is close.
    guess: String,
    known: String,
}

/// The first of `asked` that is not in `known`, as an error listing the
/// known names closest to it first.
fn first_unknown(
    asked: &[String],
    known: &BTreeSet<String>,
    nowhere: &'static str,
) -> Result<(), UnknownService> {
    let Some(service) = asked.iter().find(|s| !known.contains(*s)) else {
        return Ok(());
    };
    let closest = suggest::closest_first(service, known.iter().map(String::as_str));
    Err(UnknownService {
        service: service.clone(),
        nowhere,
        guess: suggest::likely(service, &closest)
            .map(|name| format!(" (did you mean {name:?}?)"))
            .unwrap_or_default(),
        known: suggest::listed(&closest),
    })
}

/// For `deploy` and `pull`: every one of `asked` is a service some
/// selected node deploys (`targets`, resolved from the compose files).
pub fn refuse_unknown_in(
    asked: &[String],
    targets: &[targets::Target],
) -> Result<(), UnknownService> {
    let known: BTreeSet<String> = targets
        .iter()
        .flat_map(|t| t.desired.services.keys().cloned())
        .collect();
    first_unknown(asked, &known, "in no compose file of the selected nodes")
}

/// For `stop`, `start` and `restart`: every one of `asked` is a service
/// of a compose file of `nodes` (read leniently: these verbs work while a
/// file is being mended) or of a container on them. The nodes are asked
/// only when a name is not in a file; a name is not called unknown while
/// a node did not answer (it may run it: its own work says so then).
pub async fn refuse_unknown_on(
    settings: &Settings,
    nodes: &[&Node],
    args: &NodeArgs,
    asked: &[String],
) -> Result<(), UnknownService> {
    let mut known = live::compose_services(settings, nodes, args);
    if asked.iter().all(|s| known.contains(s)) {
        return Ok(());
    }
    let asked_engines = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let answers = super::each_node(nodes.iter().copied(), settings.forks, |node| async move {
        let engine = asked_engines.connect(settings, node).await?;
        targets::observe(settings, &engine, &node.name).await
    })
    .await;
    for answer in answers {
        match answer {
            Ok(observed) => known.extend(observed.into_iter().map(|c| c.service)),
            Err(_) => return Ok(()),
        }
    }
    first_unknown(
        asked,
        &known,
        "in no compose file of the selected nodes and has no container on them",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_lists_the_known_closest_first() {
        let known: BTreeSet<String> = ["glance-api", "keystone", "nova-api", "nova-compute"]
            .into_iter()
            .map(String::from)
            .collect();
        let asked = ["nova-api".to_string(), "nova-apu".to_string()];
        let err = first_unknown(&asked, &known, "in no compose file").unwrap_err();
        assert_eq!(
            err.to_string(),
            "service \"nova-apu\" is in no compose file (did you mean \"nova-api\"?); the services known, closest first: nova-api, nova-compute, glance-api, keystone"
        );
        assert!(first_unknown(&asked[..1], &known, "x").is_ok());
        assert!(first_unknown(&[], &known, "x").is_ok());
        let err = first_unknown(&["horizon".into()], &BTreeSet::new(), "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "service \"horizon\" is x; the services known, closest first: none"
        );
    }
}
