//! `--output json` of the verbs that report node by node (deploy, pull,
//! prechecks, recover): one array on stdout, an element per node with how
//! its work ended and what the verb says of it. Each verb types its own
//! part; the node's name, result and errors are shared here, and so is
//! the note of how each node ended, taken as `over_nodes` reports it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::{NodeReport, describe_error};
use crate::deploy::pipeline::NodeErrors;

/// One node's element.
#[derive(Debug, Serialize)]
pub struct NodeEntry<T> {
    pub node: String,
    /// `ok`, `failed`, or `not started` (a failure before it stopped the
    /// run).
    pub result: &'static str,
    /// What failed, each error on one line with its causes.
    pub errors: Vec<String>,
    #[serde(flatten)]
    pub report: T,
}

/// How each node's work ended: its errors, and what the verb kept of it.
pub struct Ended<T>(Mutex<BTreeMap<String, (Vec<String>, T)>>);

impl<T> Default for Ended<T> {
    fn default() -> Self {
        Ended(Mutex::new(BTreeMap::new()))
    }
}

impl<T: Default> Ended<T> {
    /// Note how `node`'s work ended (`kept`: the verb's own part), and
    /// pass its report on to `over_nodes`.
    pub fn note(&self, node: &str, report: NodeReport, kept: T) -> NodeReport {
        let errors = match &report {
            Ok(_) => Vec::new(),
            Err(NodeErrors(errors)) => errors.iter().map(describe_error).collect(),
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), (errors, kept));
        report
    }

    /// An element for each of `nodes`, in their order: `report` makes the
    /// verb's part from the node's name and what was kept of it (the
    /// default for a node not started).
    pub fn entries<U>(
        self,
        nodes: impl IntoIterator<Item = String>,
        report: impl Fn(&str, T) -> U,
    ) -> Vec<NodeEntry<U>> {
        let mut ended = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        nodes
            .into_iter()
            .map(|node| {
                let (result, errors, kept) = match ended.remove(&node) {
                    Some((errors, kept)) if errors.is_empty() => ("ok", errors, kept),
                    Some((errors, kept)) => ("failed", errors, kept),
                    None => ("not started", Vec::new(), T::default()),
                };
                NodeEntry {
                    report: report(&node, kept),
                    node,
                    result,
                    errors,
                }
            })
            .collect()
    }
}

/// The document, pretty-printed, on stdout.
pub fn print<T: Serialize>(document: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(document)?);
    Ok(())
}
