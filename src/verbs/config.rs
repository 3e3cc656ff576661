//! `kolla config [--node N] [SERVICE...]`: the services each selected node
//! deploys, as kolla resolved its compose files (interpolation, anchors,
//! profiles and x-kolla applied, config templates rendered and checked),
//! so an operator sees what a deploy would create rather than what the
//! file says. From files only: no engine is reached. Every password of
//! passwords.yml is masked in every form a template's escaping gives it
//! (`templates::redact`), and rendered config files are named, never
//! shown; the document itself is written by `config::compose::show`.

use std::collections::BTreeSet;

use super::{Outcome, named, targets};
use crate::cli::{ConfigArgs, OutputFormat};
use crate::config::compose::show::{self, NodeServices};
use crate::config::passwords;
use crate::settings::Settings;

pub fn config(settings: &Settings, args: ConfigArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    // Resolving renders every template: a file kolla would refuse at
    // deploy is refused here too, before anything is printed.
    let targets = targets::resolve(&inventory, settings, &args.nodes)?;
    named::refuse_unknown_in(&args.services, &targets)?;
    let passwords = passwords::read(&settings.config_dir.join(passwords::PASSWORDS_FILE))?;
    let secrets: Vec<&str> = passwords.values.values().map(String::as_str).collect();
    let mask = |text: &str| crate::templates::redact(text, secrets.iter().copied());
    let only: BTreeSet<&String> = args.services.iter().collect();
    let nodes: Vec<NodeServices> = targets
        .iter()
        // A node none of the named services runs says nothing.
        .filter(|t| only.is_empty() || t.desired.services.keys().any(|s| only.contains(s)))
        .map(|t| {
            let services = t
                .desired
                .services
                .iter()
                .filter(|(name, _)| only.is_empty() || only.contains(name))
                .map(|(name, desired)| {
                    let files = t
                        .desired
                        .files
                        .get(name)
                        .map(|files| files.iter().map(|f| f.path.clone()).collect())
                        .unwrap_or_default();
                    (&desired.service, files)
                });
            NodeServices::new(&t.node.name, &t.node.roles, services)
        })
        .collect();
    let text = match args.output {
        OutputFormat::Human => show::to_yaml(&nodes, &mask),
        OutputFormat::Json => show::to_json(&nodes, &mask),
    }
    .map_err(|e| anyhow::anyhow!("cannot write the resolved services: {e}"))?;
    outln!("{}", text.trim_end());
    Ok(Outcome::Success)
}
