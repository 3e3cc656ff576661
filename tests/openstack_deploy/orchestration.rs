//! Heat as a user drives it: `openstack stack create` from a HOT template
//! (tests/fixtures/heat) that makes a network, a subnet, an interface on an
//! existing router, a server of the tiny guest and a floating IP. The
//! stack completes, the guest's console shows the address Neutron's DHCP
//! gave it, the floating IP answers ping; `stack delete` removes all it
//! made.

use std::time::Instant;

use super::common::{self, Cli, eventually};

/// What the stack is built on: the provider network, a router with its
/// gateway there, the guest's image and a flavor.
pub struct Ground<'a> {
    pub public: &'a str,
    pub router: &'a str,
    pub image: &'a str,
    pub flavor: &'a str,
}

pub fn a_stack_makes_a_reachable_server(
    cli: &Cli,
    ground: &Ground,
    answers_ping: fn(&str) -> bool,
) {
    let started = Instant::now();
    let name = common::unique_name("kolla-test", "stack");
    let template = common::fixtures().join("heat/server-with-floating-ip.yaml");
    let template = template.to_str().expect("a UTF-8 path");
    let parameters = [
        format!("public={}", ground.public),
        format!("router={}", ground.router),
        format!("image={}", ground.image),
        format!("flavor={}", ground.flavor),
    ];
    let mut create = vec!["stack", "create", "-t", template];
    for parameter in &parameters {
        create.extend(["--parameter", parameter.as_str()]);
    }
    // `--wait` prints the stack's events as they come (a failure's with
    // its reason) and fails unless the stack completes.
    create.extend(["--wait", &name]);
    cli.ok(&create);
    let created = cli.json_object(&["stack", "show", &name, "-f", "json"]);
    assert_eq!(
        created["stack_status"], "CREATE_COMPLETE",
        "the stack: {created}"
    );
    let output = |key: &str| {
        cli.value(&[
            "stack",
            "output",
            "show",
            &name,
            key,
            "-f",
            "value",
            "-c",
            "output_value",
        ])
    };
    let (server, network, floating) = (output("server"), output("network"), output("floating_ip"));
    eprintln!(
        "stack: CREATE_COMPLETE in {:.1}s: server {server}, floating IP {floating}",
        started.elapsed().as_secs_f64()
    );
    let shown = cli.json_object(&["server", "show", &server, "-f", "json"]);
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    cli.guest_shows_its_dhcp_address(&server);
    eventually("the stack's floating IP answers ping", 120, || {
        answers_ping(&floating).then_some(())
    });
    eprintln!(
        "stack: its guest answers on {floating} at {:.1}s",
        started.elapsed().as_secs_f64()
    );

    cli.ok(&["stack", "delete", "--yes", "--wait", &name]);
    let stacks = cli.json(&["stack", "list", "-f", "json"]);
    assert!(
        !stacks.iter().any(|s| s["Stack Name"] == name.as_str()),
        "the stack is still listed: {stacks:?}"
    );
    assert!(
        cli.try_json(&["server", "show", &server, "-f", "json"])
            .is_none(),
        "the stack's server outlived its delete"
    );
    assert!(
        cli.try_json(&["network", "show", &network, "-f", "json"])
            .is_none(),
        "the stack's network outlived its delete"
    );
    let floating_ips = cli.json(&["floating", "ip", "list", "-f", "json"]);
    assert!(
        !floating_ips
            .iter()
            .any(|f| f["Floating IP Address"] == floating.as_str()),
        "the stack's floating IP outlived its delete: {floating_ips:?}"
    );
}
