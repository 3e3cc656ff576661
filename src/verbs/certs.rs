//! `kolla certs`: the TLS certificates for the selected nodes' engines and
//! for kolla itself, then how to use them (dockerd's flags per node and
//! the inventory's `tls:`).

use super::Outcome;
use crate::certs::{self, NodeNames};
use crate::cli::CertsArgs;
use crate::config::inventory::Inventory;
use crate::settings::Settings;

pub fn certs(settings: &Settings, args: CertsArgs) -> anyhow::Result<Outcome> {
    let inventory = Inventory::load(args.inventory.as_deref())?;
    let nodes = inventory.select(&args.node)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| settings.config_dir.join("certs"));
    let names: Vec<NodeNames> = nodes
        .iter()
        .map(|node| {
            let mut hosts: Vec<String> = node.endpoint_host().into_iter().collect();
            hosts.extend(node.api_address.clone());
            hosts.push(node.name.clone());
            hosts.dedup();
            NodeNames {
                node: node.name.clone(),
                hosts,
            }
        })
        .collect();
    let issued = certs::issue(&dir, &names, args.days, args.renew)?;
    outln!(
        "{}: {} files written, {} kept (every file 0600)",
        dir.display(),
        issued.written.len(),
        issued.kept.len()
    );
    for node in &names {
        let folder = certs::node_dir(&dir, &node.node);
        outln!(
            "node {}: copy {}/ to the node; dockerd --tlsverify --tlscacert=ca.pem --tlscert=server-cert.pem --tlskey=server-key.pem -H tcp://0.0.0.0:2376 (valid for {})",
            node.node,
            folder.display(),
            node.hosts.join(", ")
        );
    }
    outln!(
        "inventory, for each TLS node: tls: {{ca: {ca}, cert: {cert}, key: {key}}}",
        ca = dir.join("ca.pem").display(),
        cert = dir.join("cert.pem").display(),
        key = dir.join("key.pem").display()
    );
    Ok(Outcome::Success)
}
