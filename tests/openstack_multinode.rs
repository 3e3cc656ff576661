//! The heavy multi-node check: the real OpenStack cloud split over two
//! test nodes (engines of their own, reached over TLS, images copied from
//! this engine because the nodes reach no registry): a controller that is
//! also a compute node (n1) and a compute node (n2), libvirt and
//! nova-compute on each. Both hypervisors come up in the real client's
//! `openstack hypervisor list`, a server is placed on each and runs in
//! that node's libvirt, and `kolla upgrade nova-compute --parallel 1` goes
//! node by node, each node healthy before the next starts, with both
//! guests running throughout; a rollback brings both nodes back the same
//! way. A guest on a tenant network on n2 gets its address from the DHCP
//! agent on n1, over VXLAN between the nodes' Open vSwitch agents (Epoxy,
//! the default release), on a network of the nodes' own for tunnels: the
//! test nodes' kernel has no openvswitch module, and the userspace switch
//! moves the tunnel interface's address onto a bridge of its own. Two
//! nodes, not three: a third engine and its copies of the compute images
//! cost CI minutes and would check nothing more. Ignored by default
//! (minutes); tools/test and CI run it with --include-ignored.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, Deployment, Sandbox, TestNode, api, describe, eventually, stdout_of};
use kolla::config::release::Release;

#[test]
#[ignore = "heavy: deploys real OpenStack services over two test nodes; tools/test runs it"]
fn a_cloud_over_two_nodes_keeps_a_guest_on_each_compute_node_through_a_rolling_upgrade() {
    common::phase("begin");
    let images = Sandbox::for_project_images("mn", Release::DEFAULT);
    common::phase("build the image tree");
    let output = images.build(&["--threads", "2"]);
    assert!(output.status.success(), "{}", describe(&output));

    common::phase("start two test nodes");
    let mut cluster = Cluster::start("os", 2);
    cluster.add_tunnel_network();
    let (n1, n2) = (cluster.node("n1"), cluster.node("n2"));
    let controller = n1.address.clone();
    let globals = format!("{}internal_address: {controller}\n", images.globals());
    let mut d = Deployment::of(images, "mn", "swap", &globals);
    d.compose_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("compose");
    d.env.clear();
    // The test nodes run at a low CPU weight beside a whole other cloud
    // on two cores (tools/test): an engine there can take far longer than
    // an operator's 10 s to answer an inspect while images load into it.
    d.env
        .push(("KOLLA_ENGINE_TIMEOUT".to_string(), "60".to_string()));
    d.inventory = cluster.write_inventory("inventory.yml", &|i| match i {
        0 => vec!["controller", "compute"],
        _ => vec!["compute"],
    });
    let output = d.kolla("genpwd", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    // One deploy, as an operator runs it on a fresh cloud: compute.yml
    // comes after the controller (`x-kolla.after`), so the compute node,
    // whose services need the controller's RabbitMQ, waits for n1.
    common::phase("deploy");
    let output = d.kolla("deploy", &["--health-timeout", "600"]);
    assert!(output.status.success(), "{}", describe(&output));
    let deployed = stdout_of(&output);
    for node in ["n1", "n2"] {
        assert!(deployed.contains(&format!("node {node}:")), "{deployed}");
    }
    let said = common::stderr(&output);
    let waves = (
        said.find("wave 1 of 2: n1\n"),
        said.find("wave 2 of 2: n2\n"),
    );
    assert!(
        matches!(waves, (Some(a), Some(b)) if a < b),
        "the controller is not deployed first:\n{said}"
    );
    // Where a node's deploy spends its time (copies, waits on health),
    // for the CI log.
    eprintln!("kolla deploy said:\n{said}");
    let password = common::admin_password(&d.images.config_dir);

    // The real client sees both compute nodes as hypervisors, up.
    // Nova's view of both compute nodes: their first reports.
    common::phase("hypervisors");
    let hosts = eventually(
        "both hypervisors up in `openstack hypervisor list`",
        90,
        || {
            let listed = common::openstack(
                &controller,
                &password,
                &["hypervisor", "list", "--long", "-f", "json"],
            );
            let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).ok()?;
            let up: BTreeSet<String> = rows
                .as_array()?
                .iter()
                .filter(|h| h["State"] == "up")
                .filter_map(|h| h["Host IP"].as_str().map(str::to_string))
                .collect();
            (up.len() == 2).then_some(up)
        },
    );
    let expected: BTreeSet<String> = [n1.address.clone(), n2.address.clone()].into();
    assert_eq!(
        hosts, expected,
        "each compute node advertises its own address"
    );

    let token = common::admin_token(&controller, &password).expect("an admin token");
    common::phase("boot a guest on each compute node");
    let flavor = common::create_flavor(&controller, &token, 64);
    let image = a_blank_image(&controller, &token);
    for node in [n1, n2] {
        boot_on(&controller, &token, node, &image, &flavor);
    }
    for node in [n1, n2] {
        // The boot itself: scheduling, the guest's disk, QEMU under emulation.
        eventually(&format!("a guest running on {}", node.name), 120, || {
            (guests(&d, node).len() == 1).then_some(())
        });
    }
    let guests_before = [guests(&d, n1), guests(&d, n2)];

    common::phase("rolling upgrade");
    // Node by node: n1 swapped and healthy before n2 starts.
    let changed = format!("{}/nova-compute:rolled", d.images.namespace);
    d.images
        .changed_image(&d.images.image_ref("nova-compute"), &changed);
    let output = d.kolla(
        "upgrade",
        &[
            "nova-compute",
            "--tag",
            "rolled",
            "--parallel",
            "1",
            "--health-timeout",
            "300",
        ],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert_one_after_the_other(&d, &output, n1, n2, 2);
    assert_eq!(
        [guests(&d, n1), guests(&d, n2)],
        guests_before,
        "a guest stopped with nova-compute"
    );
    both_hypervisors_up(&controller, &token);

    common::phase("rolling rollback");
    let output = d.kolla("rollback", &["nova-compute", "--parallel", "1"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_one_after_the_other(&d, &output, n1, n2, 1);
    assert_eq!(
        [guests(&d, n1), guests(&d, n2)],
        guests_before,
        "a guest stopped with the rollback of nova-compute"
    );
    both_hypervisors_up(&controller, &token);

    common::phase("nova-libvirt upgraded on a compute node");
    // libvirt nested in a test node: the guest's QEMU outlives the swap
    // there too, the same process, and kolla says so.
    let qemu_before = qemu_of(&d, n2);
    let changed = format!("{}/nova-libvirt:rolled", d.images.namespace);
    d.images
        .changed_image(&d.images.image_ref("nova-libvirt"), &changed);
    let output = d.kolla(
        "upgrade",
        &["nova-libvirt", "--tag", "rolled", "--node", &n2.name],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        common::stderr(&output).contains("nova-libvirt: guests kept running: 1 of 1"),
        "{}",
        describe(&output)
    );
    assert_eq!(qemu_of(&d, n2), qemu_before, "another QEMU runs the guest");
    assert_eq!(
        [guests(&d, n1), guests(&d, n2)],
        guests_before,
        "a guest stopped with nova-libvirt"
    );
    both_hypervisors_up(&controller, &token);

    common::phase("DHCP over VXLAN");
    dhcp_reaches_a_compute_node_over_vxlan(&controller, &password, n2);

    common::phase("delete the servers");
    common::Cli {
        host: &controller,
        admin: &password,
    }
    .delete_every_server();

    common::phase("destroy --purge-data");
    let output = d.kolla("destroy", &["--purge-data", "--yes-i-really-mean-it"]);
    assert!(output.status.success(), "{}", describe(&output));
    for node in [n1, n2] {
        let left = node.docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=kolla.project={}", d.project),
        ]);
        assert!(
            stdout_of(&left).trim().is_empty(),
            "{}: containers left after destroy",
            node.name
        );
    }
}

/// The guests' QEMU processes on `node`, as nova-libvirt's kolla-guests
/// lists them (`NAME PID kept` lines).
fn qemu_of(d: &Deployment, node: &TestNode) -> String {
    let output = node.docker(&["exec", &d.container("nova-libvirt"), "kolla-guests", "list"]);
    assert!(output.status.success(), "{}", describe(&output));
    let listed = stdout_of(&output);
    if !listed.trim().ends_with(" kept") {
        // Where the guest's QEMU sits, against the container's own cgroups.
        let pid = listed.split_whitespace().nth(1).unwrap_or("0");
        let cgroups = node.docker(&[
            "exec",
            &d.container("nova-libvirt"),
            "sh",
            "-c",
            &format!("cat /proc/{pid}/cgroup; echo ---; cat /proc/self/cgroup; echo ---; grep cgroup /proc/mounts"),
        ]);
        panic!("{}: {listed}\n{}", node.name, describe(&cgroups));
    }
    listed
}

/// The running libvirt domains on `node`.
fn guests(d: &Deployment, node: &TestNode) -> Vec<String> {
    common::running_domains(|args| node.docker(args), &d.container("nova-libvirt"))
}

/// nova-compute on `first` and `second` runs `generation`, and kolla
/// began to swap `second` only after `first` passed its health check (its
/// timestamped lines say when).
fn assert_one_after_the_other(
    d: &Deployment,
    output: &std::process::Output,
    first: &TestNode,
    second: &TestNode,
    generation: u64,
) {
    let live = d.container("nova-compute");
    for node in [first, second] {
        let inspected = node.docker(&["inspect", &live]);
        assert!(inspected.status.success(), "{}", describe(&inspected));
        let details: serde_json::Value =
            serde_json::from_slice(&inspected.stdout).expect("inspect JSON");
        let container = &details[0];
        assert_eq!(
            container["Config"]["Labels"]["kolla.generation"],
            generation.to_string(),
            "{}",
            node.name
        );
        assert_eq!(container["State"]["Running"], true, "{}", node.name);
    }
    let said = common::stderr(output);
    // Where a rolling swap spends its time, in the CI log.
    for line in said.lines().filter(|l| l.contains("nova-compute")) {
        eprintln!("  {line}");
    }
    let healthy = common::said_at(
        &said,
        &format!("{}: nova-compute: healthy after", first.name),
    );
    let swapping = common::said_at(&said, &format!("{}: nova-compute: swapping", second.name));
    assert!(
        healthy < swapping,
        "{} was swapped ({swapping}s) before {} was healthy ({healthy}s):\n{said}",
        second.name,
        first.name
    );
}

/// Both compute services report up.
fn both_hypervisors_up(controller: &str, token: &str) {
    // Their heartbeats to Nova (each 10 s), after their swaps. A swap of
    // nova-libvirt closes nova-compute's connection to libvirt, and Nova
    // disables the service until it has connected again (at its next use
    // of libvirt, a periodic task at the latest: 60 s); a server placed
    // there meanwhile fails to schedule.
    eventually("both nova-compute services up and enabled", 120, || {
        let reply = api(
            controller,
            "GET",
            8774,
            "/v2.1/os-services?binary=nova-compute",
            token,
            &[],
            b"",
        );
        let services = reply.json()["services"].as_array()?.clone();
        (services.len() == 2
            && services
                .iter()
                .all(|s| s["state"] == "up" && s["status"] == "enabled"))
        .then_some(())
    })
}

/// A blank 1 MiB raw disk in Glance; its id.
fn a_blank_image(controller: &str, token: &str) -> String {
    let image =
        serde_json::json!({"name": "blank", "disk_format": "raw", "container_format": "bare"});
    common::glance_upload(controller, token, image, &vec![0u8; 1 << 20])
}

/// A server without a network (there is no Neutron) placed on `node` (the
/// admin's `nova:HOST` zone).
fn boot_on(controller: &str, token: &str, node: &TestNode, image: &str, flavor: &str) {
    let server = serde_json::json!({
        "name": format!("on-{}", node.name), "imageRef": image, "flavorRef": flavor,
        "networks": "none", "availability_zone": format!("nova:{}", node.name)});
    common::create_server(controller, token, server);
}

/// A guest booted on `node` on a tenant network (VXLAN) gets, by DHCP, the
/// address Neutron gave its port: dnsmasq runs on the controller, so the
/// request crossed from `node`'s bridge to the controller's in VXLAN. The
/// client made it all, and deletes it again.
fn dhcp_reaches_a_compute_node_over_vxlan(controller: &str, password: &str, node: &TestNode) {
    let cli = common::Cli {
        host: controller,
        admin: password,
    };
    let name = |what: &str| common::unique_name("kolla-test", what);
    let (network, flavor, server) = (name("tenant"), name("flavor"), name("server"));
    let network = cli.value(&["network", "create", &network, "-f", "value", "-c", "id"]);
    cli.ok(&[
        "subnet",
        "create",
        "--network",
        &network,
        "--subnet-range",
        "10.20.0.0/24",
        &name("subnet"),
    ]);
    let image = cli.upload_guest(&name("guest"));
    cli.ok(&[
        "flavor", "create", "--ram", "128", "--vcpus", "1", "--disk", "1", &flavor,
    ]);
    let zone = format!("nova:{}", node.name);
    let server = cli.value(&[
        "server",
        "create",
        "--image",
        &image,
        "--flavor",
        &flavor,
        "--network",
        &network,
        "--availability-zone",
        &zone,
        "--wait",
        &server,
        "-f",
        "value",
        "-c",
        "id",
    ]);
    let shown = cli.json_object(&["server", "show", &server, "-f", "json"]);
    assert_eq!(shown["OS-EXT-SRV-ATTR:host"], node.name.as_str(), "{shown}");
    cli.guest_shows_its_dhcp_address(&server);
    cli.ok(&["server", "delete", "--wait", &server]);
    cli.ok(&["network", "delete", &network]);
}
