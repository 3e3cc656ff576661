//! `kolla deploy` across nodes in the order the roles' `x-kolla.after`
//! gives: on two real test nodes (engines of their own), a node of role
//! `second` is not touched until every node of role `first` is deployed
//! and healthy, whatever the inventory's order; when a `first` node fails,
//! the `second` nodes are named and left alone; a deploy killed (SIGKILL)
//! inside the first wave or between the two is finished by the next one,
//! in the same order; and an `after` that names no role, or goes round in
//! a circle, is refused before any engine is reached.

mod common;

use std::collections::BTreeMap;

use common::{Cluster, Deployment, TestNode, describe, expect_exit, stdout_of, swap_deployment_of};

/// The waves fixture over a fresh 2-node cluster: n1 has role `second`
/// (listed first in the inventory), n2 role `first`.
fn setup(name: &str, ready_after: &str) -> (Cluster, Deployment) {
    let cluster = Cluster::start(name, 2);
    let mut d = swap_deployment_of("waves", name, &["1.0.0"]);
    d.env
        .push(("READY_AFTER".to_string(), ready_after.to_string()));
    d.inventory = cluster.write_inventory("inventory.yml", &|i| match i {
        0 => vec!["second"],
        _ => vec!["first"],
    });
    (cluster, d)
}

/// The kernel uptime a fixture container wrote to `file`.
fn uptime_in(node: &TestNode, container: &str, file: &str) -> f64 {
    let output = node.docker(&["exec", container, "cat", file]);
    assert!(
        output.status.success(),
        "{}: {}",
        node.name,
        describe(&output)
    );
    let text = stdout_of(&output);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: {file} holds {text:?}", node.name))
}

/// A deploy that succeeds, going to n2 (role `first`) in wave 1 and to n1
/// in wave 2.
fn deploy_n2_then_n1(d: &Deployment) -> std::process::Output {
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let said = common::stderr(&output);
    let first = said.find("wave 1 of 2: n2");
    let second = said.find("wave 2 of 2: n1");
    assert!(
        first.is_some() && second.is_some() && first < second,
        "{}",
        describe(&output)
    );
    output
}

/// n1's service started after n2's was ready (its health check passes
/// from that moment on): without the order they start together, seconds
/// before it is ready.
fn assert_after_started_once_slow_was_ready(d: &Deployment, n1: &TestNode, n2: &TestNode) {
    let ready = uptime_in(n2, &d.container("slow"), "/tmp/ready");
    let started = uptime_in(n1, &d.container("after"), "/tmp/started");
    assert!(
        started >= ready,
        "n1's `after` started at {started} s of uptime, before n2's `slow` was ready at {ready} s"
    );
}

#[test]
fn a_role_that_comes_after_another_waits_for_its_nodes_to_be_healthy() {
    let (cluster, d) = setup("waves", "3");
    let (n1, n2) = (cluster.node("n1"), cluster.node("n2"));
    let output = deploy_n2_then_n1(&d);
    let text = stdout_of(&output);
    assert!(
        text.contains("node n1:") && text.contains("node n2:"),
        "{text}"
    );
    assert_after_started_once_slow_was_ready(&d, n1, n2);
    // n1's images went to it while n2's wave deployed (at least 3 s: its
    // service is ready after 3 s), not once its own wave began.
    let said = common::stderr(&output);
    let copied = said.find(&format!("MiB to {} in", n1.endpoint()));
    let second_wave = said.find("wave 2 of 2: n1");
    assert!(
        matches!((copied, second_wave), (Some(c), Some(w)) if c < w),
        "n1's images were not copied ahead of its wave:\n{said}"
    );
}

#[test]
fn a_node_whose_roles_come_first_fails_and_the_later_ones_are_left_alone() {
    let (cluster, d) = setup("wavesfail", "never");
    let n1 = cluster.node("n1");
    let output = d.kolla("deploy", &["--health-timeout", "4"]);
    let said = expect_exit(&output, 1, &["node n2", "slow"]);
    let text = stdout_of(&output);
    assert!(text.contains("node n2: FAILED"), "{text}\n{said}");
    assert!(
        text.contains("node n1: not started"),
        "n1 is not named as left alone:\n{text}\n{said}"
    );
    assert_eq!(n1.containers_of(&d.project), BTreeMap::new());
}

#[test]
fn an_after_naming_no_role_or_going_round_is_refused_before_any_engine_is_reached() {
    // Nodes no engine answers for: the error must come from the files.
    let d = swap_deployment_of("waves", "wavesbad", &[]);
    std::fs::write(
        &d.inventory,
        "nodes:\n  a:\n    docker: tcp://127.0.0.1:9\n    roles: [second]\n  b:\n    docker: tcp://127.0.0.1:9\n    roles: [first]\n",
    )
    .expect("inventory");
    let second = d.compose_dir.join("second.yml");
    let text = std::fs::read_to_string(&second).expect("second.yml");
    std::fs::write(&second, text.replace("after: [first]", "after: [frist]")).expect("second.yml");
    let output = d.kolla("deploy", &[]);
    expect_exit(
        &output,
        2,
        &["second.yml", "line 5", "role frist", "no compose file"],
    );

    std::fs::write(&second, text).expect("second.yml");
    let first = d.compose_dir.join("first.yml");
    let text = std::fs::read_to_string(&first).expect("first.yml");
    std::fs::write(&first, format!("x-kolla: {{after: [second]}}\n{text}")).expect("first.yml");
    let output = d.kolla("deploy", &[]);
    expect_exit(&output, 2, &["round in a circle", "line "]);
    let said = common::stderr(&output);
    assert!(
        said.contains("first after second after first")
            || said.contains("second after first after second"),
        "{said}"
    );
    assert!(
        !said.contains("cannot reach"),
        "an engine was tried: {said}"
    );
}

/// A plain build leaves the fault-point tests out; this says how many.
#[test]
fn fault_point_tests_left_out() {
    common::fault_point_tests_left_out(file!());
}

/// The tests that freeze kolla at a fault point (`KOLLA_FAULT`): ignored
/// unless run against the `fault-injection` build of kolla (tools/test
/// builds it and sets KOLLA_TEST_KOLLA); `fault_point_tests_left_out`
/// counts them.
mod fault_points {
    use super::*;
    use crate::common::FaultPoint;

    /// Exactly one running `service` on `node`, and nothing a cut-short step
    /// leaves (candidate, lock, job, helper); its container id.
    fn one_live(d: &Deployment, node: &TestNode, service: &str, context: &str) -> String {
        let containers = node.containers_of(&d.project);
        let states = containers
            .iter()
            .map(|(name, (_, _, state))| (name.clone(), state.clone()))
            .collect();
        let live = d.container(service);
        common::assert_one_live_in(&states, &live, &format!("{} {context}", node.name));
        containers[&live].1.clone()
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn a_deploy_killed_in_the_first_wave_or_between_waves_is_finished_in_order_by_the_next() {
        let (cluster, d) = setup("waveskill", "3");
        let (n1, n2) = (cluster.node("n1"), cluster.node("n2"));

        // SIGKILL while n2's first container is being made, in wave 1.
        common::kill_at(d.command("deploy", &[]), FaultPoint::CreateConfigured);
        assert_eq!(
            n1.containers_of(&d.project),
            BTreeMap::new(),
            "wave 2 began while wave 1 was unfinished"
        );

        // The next deploy finishes n2 and is killed once wave 1 is done: n2
        // serves, n1 is still untouched.
        common::kill_at(d.command("deploy", &[]), FaultPoint::WaveDone);
        let slow = one_live(&d, n2, "slow", "after wave 1");
        assert_eq!(n1.containers_of(&d.project), BTreeMap::new());

        // The last one leaves n2's container as it is and deploys n1 after it.
        deploy_n2_then_n1(&d);
        assert_eq!(
            one_live(&d, n2, "slow", "at the end"),
            slow,
            "n2's container was replaced"
        );
        one_live(&d, n1, "after", "at the end");
        assert_after_started_once_slow_was_ready(&d, n1, n2);
        let output = d.kolla("deploy", &[]);
        let text = stdout_of(&output);
        assert!(
            text.contains("node n1: up to date") && text.contains("node n2: up to date"),
            "{}",
            describe(&output)
        );
    }
}
