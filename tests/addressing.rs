//! The shipped compose files and config templates on a multi-node cloud:
//! every service binds its node's `api_address` and reaches the others at
//! globals' `internal_address`; nothing is left on loopback. (The
//! all-in-one's loopback defaults are what the heavy test deploys.)

use std::collections::BTreeMap;
use std::path::Path;

use kolla::config::compose::Variables;
use kolla::config::inventory::Inventory;
use kolla::config::{Globals, passwords};
use kolla::deploy::desired;

/// Every rendered file of every service a node of `roles` runs, and each
/// service's healthcheck, as text.
fn rendered(roles: &str, api_address: &str, internal_address: &str) -> Vec<(String, String)> {
    let inventory = Inventory::parse(
        &format!("nodes:\n  n1:\n    roles: [{roles}]\n    api_address: {api_address}\n"),
        Path::new("inventory.yml"),
    )
    .expect("inventory");
    let node = &inventory.nodes[0];
    let globals = Globals {
        internal_address: internal_address.to_string(),
        ..Globals::default()
    };
    let variables = Variables {
        environment: BTreeMap::new(),
        globals: globals.compose_variables(),
    };
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose");
    let files = desired::load_files(node, &compose, &variables).expect("compose files");
    let passwords: BTreeMap<String, String> = passwords::TEMPLATE
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| !key.trim().is_empty() && !key.starts_with('#'))
        .map(|(key, _)| (key.trim().to_string(), format!("secret-{}", key.trim())))
        .collect();
    let desired = desired::desired(node, &files, &globals, &passwords, &[]).expect("desired");
    let mut texts = Vec::new();
    for (service, files) in &desired.files {
        for file in files {
            texts.push((
                format!("{service}: {}", file.path),
                String::from_utf8_lossy(&file.bytes).into_owned(),
            ));
        }
    }
    for (service, wanted) in &desired.services {
        if let Some(check) = &wanted.spec.healthcheck {
            texts.push((format!("{service}: healthcheck"), check.test.join(" ")));
        }
    }
    texts
}

#[test]
fn a_multi_node_cloud_binds_node_addresses_and_reaches_the_controller() {
    let (api, internal) = ("10.1.2.3", "10.9.8.7");
    let texts = rendered("controller, compute", api, internal);
    assert!(
        texts.len() > 20,
        "too few files to mean anything: {}",
        texts.len()
    );
    // Open vSwitch's database is each node's own (its agents and os-vif
    // reach the node's ovsdb-server): the one loopback address that stays.
    let node_local = "ovsdb_connection = tcp:127.0.0.1:6640\n";
    assert!(
        texts.iter().any(|(_, text)| text.contains(node_local)),
        "the Open vSwitch agent's database connection moved: update this test"
    );
    for (what, text) in &texts {
        assert!(
            !text.replace(node_local, "").contains("127.0.0.1"),
            "{what} still uses loopback:\n{text}"
        );
    }
    let find = |what: &str| {
        texts
            .iter()
            .find(|(w, _)| w.ends_with(what))
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no {what}"))
    };
    // Binds: the node's own address.
    assert!(
        find("keystone: /var/lib/kolla/config_files/uwsgi.ini")
            .contains("http-socket = 10.1.2.3:5000")
    );
    assert!(find("/glance-api.conf").contains("bind_host = 10.1.2.3"));
    assert!(find("/kolla.cnf").contains("bind-address = 10.1.2.3"));
    assert!(find("memcached: healthcheck").contains("/dev/tcp/10.1.2.3/11211"));
    // Connections: the controller's internal address.
    assert!(find("/glance-api.conf").contains("@10.9.8.7:3306/glance"));
    assert!(find("nova-compute: /var/lib/kolla/config_files/nova.conf").contains("@10.9.8.7:5672"));
    assert!(
        find("nova-compute: /var/lib/kolla/config_files/nova.conf").contains("my_ip = 10.1.2.3")
    );
    // Database users may connect from other nodes.
    assert!(find("/bootstrap.sql").contains("'keystone'@'%'"));
}

#[test]
fn the_all_in_one_stays_on_loopback() {
    let texts = rendered("controller, compute", "127.0.0.1", "127.0.0.1");
    let bootstrap = texts
        .iter()
        .find(|(w, _)| w.ends_with("/bootstrap.sql"))
        .expect("mariadb's bootstrap.sql");
    assert!(
        bootstrap.1.contains("'keystone'@'127.0.0.1'"),
        "{}",
        bootstrap.1
    );
    assert!(!bootstrap.1.contains("'%'"), "{}", bootstrap.1);
}
