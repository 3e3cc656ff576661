//! The start and restart intents once the node is ready: the pure plan
//! (`deploy::lifecycle`) made from what the node runs, then each level's
//! services started or restarted together, each in its own session and
//! gated, before the next level; a failure stops the levels after it (what
//! depends on a service that did not come up is not started). Summed up
//! in a line per outcome.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::{NodeAt, NodeErrors};
use crate::deploy::error::DeployError;
use crate::deploy::execute::Executor;
use crate::deploy::labels::{ObservedContainer, Role};
use crate::deploy::lifecycle::{self, Decision};
use crate::progress::{Finished, Tone};

/// Start (or restart) the live containers of `services` (every service
/// when None) on the node `at`, which runs `observed`: the lines to
/// report.
pub(super) async fn start(
    at: &NodeAt<'_>,
    observed: &[ObservedContainer],
    services: Option<&[String]>,
    restart: bool,
) -> Result<Vec<String>, NodeErrors> {
    let run = &at.run;
    let plan =
        lifecycle::plan(observed, services, restart).map_err(|message| DeployError::Refused {
            node: run.node.to_string(),
            message,
        })?;
    // What each service came to, by how it reads in the report.
    let mut outcomes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (service, why) in &plan.left {
        outcomes
            .entry(why.clone())
            .or_default()
            .push(service.clone());
    }
    let executor = Executor::of(run);
    let mut errors = Vec::new();
    for level in &plan.levels {
        let turns = level.iter().filter_map(|turn| {
            let planned = observed
                .iter()
                .find(|c| c.service == turn.service && c.role == Role::Live)?;
            Some(async move { (turn, executor.start_live(turn, planned).await) })
        });
        for (turn, result) in join_all(turns).await {
            let service = turn.service.as_str();
            match result {
                Ok((decision, dark)) => {
                    let (word, detail) = said(decision, dark);
                    let finished = Finished {
                        word,
                        tone: Tone::Good,
                    };
                    run.steps.done(run.node, service, finished, &detail);
                    let outcome = match decision {
                        Decision::Leave(why) => why.to_string(),
                        _ => word.to_string(),
                    };
                    outcomes.entry(outcome).or_default().push(format!(
                        "{service}{}",
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({detail})")
                        }
                    ));
                }
                Err(e) => {
                    let failed = Finished {
                        word: "failed",
                        tone: Tone::Bad,
                    };
                    run.steps.done(run.node, service, failed, &e.to_string());
                    errors.push(anyhow::Error::from(e));
                }
            }
        }
        // What the next levels need did not come up: they are not started.
        if !errors.is_empty() {
            return Err(NodeErrors(errors));
        }
    }
    if outcomes.is_empty() {
        return Ok(vec!["no live container to start".to_string()]);
    }
    Ok(outcomes
        .into_iter()
        .map(|(outcome, services)| format!("{outcome}: {}", services.join(", ")))
        .collect())
}

/// How a service's turn reads: the word for its result, and its dark
/// window when it was restarted.
fn said(decision: Decision, dark: Option<std::time::Duration>) -> (&'static str, String) {
    let detail = dark
        .map(|d| format!("dark {:.3}s", d.as_secs_f64()))
        .unwrap_or_default();
    match decision {
        Decision::Start => ("started", detail),
        Decision::Restart => ("restarted", detail),
        Decision::Leave(_) => ("left as it is", detail),
    }
}
