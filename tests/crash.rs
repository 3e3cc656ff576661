//! Crash safety: kolla frozen at a named step (the `fault-injection`
//! feature) and killed there with SIGKILL, then the next command. Each
//! fault point has its own expected outcome: before the old container
//! stops, v1 serves from the very same container; once the new one has
//! been named live, recovery finishes the swap and v2 serves with v1 kept.
//! Every time: exactly one `<svc>` runs, no candidate, lock or job is left,
//! the live container has its restart policy and the kept ones `no`, and
//! the data is as it was. These need `--features fault-injection`
//! (tools/test runs them so); a plain build runs the rest.
//!
//! Most run without the swap helper (`swap_helper: false`), so the fault
//! points inside the critical section freeze kolla itself: what a death of
//! the helper (or of the engine under it) leaves. The helper's own tests
//! are at the end: kolla killed mid-swap, the helper finishes alone.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Bounded, Deployment, describe};

/// The restart policy of container `name`.
fn policy_of(d: &Deployment, name: &str) -> String {
    common::runtime()
        .block_on(d.images.engine.inspect(name))
        .unwrap()
        .unwrap_or_else(|| panic!("no container {name}"))
        .restart_policy
}

/// Exactly one web serves `version`, nothing of a swap is left, policies
/// are right, the data is intact.
fn assert_settled(d: &Deployment, step: &str, version: &str) {
    d.assert_one_live_and_no_leftovers("web", &format!("after {step}"));
    let containers = d.containers();
    let web = d.container("web");
    assert_eq!(
        d.serving().as_deref(),
        Some(format!("version {version}\n").as_str()),
        "after {step}"
    );
    assert_eq!(policy_of(d, &web), "unless-stopped", "after {step}");
    for kept in containers.keys().filter(|n| n.contains(".kolla-gen-")) {
        assert_eq!(policy_of(d, kept), "no", "{kept} after {step}");
    }
    d.assert_data_intact_and_jobs_whole(&format!("after {step}"));
}

/// Run `command` until it says `line`, then SIGKILL it.
fn kill_when(mut command: Command, line: &str) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let wanted = line.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if l.contains(&wanted) {
                let _ = tx.send(());
            }
        }
    });
    let seen = rx.recv_timeout(Duration::from_secs(90));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.is_ok(), "kolla never said {line:?}");
}

/// Wait until no swap helper of the deployment runs.
fn helper_done(d: &Deployment) {
    let helper = d.container("web.kolla-swap");
    for _ in 0..600 {
        if d.containers()
            .get(&helper)
            .is_none_or(|(_, s)| s != "running")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the swap helper still runs after a minute");
}

/// kolla killed while its helper runs the swap: the helper finishes it
/// alone. v2 serves before anyone runs another command; `recover` then
/// only clears the lock and the helper's container.
#[test]
fn the_helper_finishes_a_swap_whose_kolla_was_killed() {
    let d = common::swap_deployment("helper-alone", &["1.0.0", "2.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    d.write_data("/data/precious", "customer data");
    let v1 = d.containers()[&d.container("web")].0.clone();
    kill_when(
        d.command("upgrade", &["web", "--tag", "2.0.0"]),
        "the swap runs on the node",
    );
    helper_done(&d);
    assert_eq!(
        d.serving().as_deref(),
        Some("version 2.0.0\n"),
        "dark after the kill"
    );
    assert_eq!(d.containers()[&d.container("web.kolla-gen-1")].0, v1);
    let output = d.kolla("recover", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_settled(&d, "the helper's swap", "2.0.0");
    assert!(!d.containers().contains_key(&d.container("web.kolla-swap")));
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
    use crate::common::{FaultPoint, kill_at};

    /// A deployment of the swap fixture at v1, without the helper.
    fn deployed(name: &str) -> Deployment {
        let d = common::swap_deployment(name, &["1.0.0", "2.0.0"]);
        d.without_helper();
        let output = d.kolla("deploy", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        d.write_data("/data/precious", "customer data");
        d
    }

    const RECOVER: &[&str] = &["recover"];

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_lock() {
        upgrade_killed_at(FaultPoint::Locked, RECOVER, "1.0.0", true);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_bootstrap() {
        upgrade_killed_at(FaultPoint::Bootstrapped, RECOVER, "1.0.0", true);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_candidate_created() {
        upgrade_killed_at(FaultPoint::CandidateCreated, RECOVER, "1.0.0", true);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_restart_policy_no() {
        upgrade_killed_at(FaultPoint::RestartPolicyNo, RECOVER, "1.0.0", true);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_old_stopped() {
        upgrade_killed_at(FaultPoint::OldStopped, RECOVER, "1.0.0", true);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_old_renamed() {
        upgrade_killed_at(FaultPoint::OldRenamed, RECOVER, "1.0.0", true);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_new_renamed() {
        upgrade_killed_at(FaultPoint::NewRenamed, RECOVER, "2.0.0", false);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_new_started() {
        upgrade_killed_at(FaultPoint::NewStarted, RECOVER, "2.0.0", false);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_gate() {
        upgrade_killed_at(FaultPoint::Gated, RECOVER, "2.0.0", false);
    }

    // Recovery through the next deploy, upgrade and rollback, not only
    // `kolla recover`.

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_old_renamed_then_deploy() {
        // deploy wants 1.0.0 (the globals' tag): the old container again.
        upgrade_killed_at(FaultPoint::OldRenamed, &["deploy"], "1.0.0", true);
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_old_stopped_then_upgrade() {
        upgrade_killed_at(
            FaultPoint::OldStopped,
            &["upgrade", "web", "--tag", "2.0.0"],
            "2.0.0",
            false,
        );
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_after_new_started_then_rollback() {
        // Recovery finishes the swap to 2.0.0; the rollback then goes back.
        upgrade_killed_at(FaultPoint::NewStarted, &["rollback", "web"], "1.0.0", true);
    }

    /// A bootstrap job still running when its kolla is killed is waited for,
    /// never killed, by the run that recovers.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_during_the_bootstrap_job_waits_for_it() {
        let d = deployed("crash-job");
        let v1 = d.containers()[&d.container("web")].0.clone();
        let mut command = d.command("upgrade", &["web", "--tag", "2.0.0"]);
        command.env("BOOTSTRAP_SLEEP", "4");
        kill_at(command, FaultPoint::BootstrapStarted);
        assert!(
            d.containers()
                .get(&d.container("web.kolla-bootstrap"))
                .is_some_and(|(_, state)| state == "running"),
            "the job should still run after its kolla died"
        );
        let output = d.kolla("recover", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("waiting for the bootstrap job"),
            "{}",
            describe(&output)
        );
        assert_settled(&d, FaultPoint::BootstrapStarted.name(), "1.0.0");
        assert_eq!(d.containers()[&d.container("web")].0, v1);
        // Deploy's job and the one that was waited for both finished.
        assert_eq!(d.read_data("/data/boot.log"), "bootstrap\nbootstrap\n");
    }

    /// A swap back killed half-way is finished by recovery: v1 from the very
    /// same container.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_while_swapping_back() {
        let d = common::swap_deployment("crash-back", &["1.0.0", "9.0.0"]);
        d.without_helper();
        let output = d.kolla("deploy", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        d.write_data("/data/precious", "customer data");
        let v1 = d.containers()[&d.container("web")].0.clone();
        kill_at(
            d.command(
                "upgrade",
                &["web", "--tag", "9.0.0", "--health-timeout", "20"],
            ),
            FaultPoint::SwappingBack,
        );
        let output = d.kolla("recover", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        eprintln!("recover: {}", describe(&output));
        assert_settled(&d, FaultPoint::SwappingBack.name(), "1.0.0");
        assert_eq!(d.containers()[&d.container("web")].0, v1);
    }

    /// A rollback killed between its renames: recovery puts back the
    /// generation that was live when the rollback began.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_in_a_rollback() {
        let d = deployed("crash-rollback");
        let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
        assert!(output.status.success(), "{}", describe(&output));
        let v2 = d.containers()[&d.container("web")].0.clone();
        kill_at(d.command("rollback", &["web"]), FaultPoint::OldRenamed);
        let output = d.kolla("recover", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        assert_settled(&d, "rollback old-renamed", "2.0.0");
        assert_eq!(d.containers()[&d.container("web")].0, v2);
        let output = d.kolla("rollback", &["web"]);
        assert!(output.status.success(), "{}", describe(&output));
        assert_settled(&d, "the rollback after", "1.0.0");
    }

    /// The first deploy of a service killed after its container was created
    /// and configured but before it went live: no live container without its
    /// config ever exists; recover clears the rest and deploy makes it afresh.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn crash_in_the_create_path_leaves_no_unconfigured_live_container() {
        for step in [
            FaultPoint::CreateLocked,
            FaultPoint::CreateConfigured,
            FaultPoint::CreateRenamed,
        ] {
            let d = common::swap_deployment(&format!("crash-{step}"), &["1.0.0"]);
            d.without_helper();
            kill_at(d.command("deploy", &[]), step);
            let web = d.container("web");
            let containers = d.containers();
            if step != FaultPoint::CreateRenamed {
                assert!(!containers.contains_key(&web), "{step}: {containers:?}");
            }
            let output = d.kolla("recover", &[]);
            assert!(output.status.success(), "{step}: {}", describe(&output));
            let output = d.kolla("deploy", &[]);
            assert!(output.status.success(), "{step}: {}", describe(&output));
            d.write_data("/data/precious", "customer data");
            assert_settled(&d, step.name(), "1.0.0");
            let output = d.kolla("deploy", &[]);
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("up to date"),
                "{step}: {}",
                describe(&output)
            );
        }
    }

    /// The helper itself dies mid-swap (as when the engine is restarted under
    /// it): recovery restores what was live, from the very same container.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn a_helper_killed_mid_swap_is_recovered() {
        let d = common::swap_deployment("helper-killed", &["1.0.0", "2.0.0"]);
        let output = d.kolla("deploy", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        d.write_data("/data/precious", "customer data");
        let v1 = d.containers()[&d.container("web")].0.clone();
        // The fault point freezes the helper (it gets KOLLA_FAULT); then both
        // it and kolla die.
        kill_at(
            d.command("upgrade", &["web", "--tag", "2.0.0"]),
            FaultPoint::OldRenamed,
        );
        let helper = d.container("web.kolla-swap");
        let killed = std::process::Command::new("docker")
            .args(["kill", &helper])
            .bounded_output()
            .unwrap();
        assert!(killed.status.success(), "{}", describe(&killed));
        let output = d.kolla("recover", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        assert_settled(&d, "helper killed at old-renamed", "1.0.0");
        assert_eq!(d.containers()[&d.container("web")].0, v1);
        assert!(!d.containers().contains_key(&helper));
    }

    /// An upgrade to 2.0.0 killed at `step`, then `then` (a verb and its
    /// arguments): the outcome is `version`, from the same container as before
    /// the upgrade when `same_container`.
    fn upgrade_killed_at(step: FaultPoint, then: &[&str], version: &str, same_container: bool) {
        let d = deployed(&format!("crash-{step}"));
        let v1 = d.containers()[&d.container("web")].0.clone();
        kill_at(d.command("upgrade", &["web", "--tag", "2.0.0"]), step);

        let output = d.kolla(then[0], &then[1..]);
        assert!(
            output.status.success(),
            "{} after {step}: {}",
            then.join(" "),
            describe(&output)
        );
        assert_settled(&d, step.name(), version);
        let live = d.containers()[&d.container("web")].0.clone();
        assert_eq!(live == v1, same_container, "after {step}: {v1} -> {live}");
        if version == "2.0.0" && then[0] == "recover" {
            assert_eq!(d.containers()[&d.container("web.kolla-gen-1")].0, v1);
        }

        // Recovery is idempotent, and the service works on.
        let output = d.kolla("recover", &[]);
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("nothing to recover"),
            "{}",
            describe(&output)
        );
        let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
        assert!(output.status.success(), "{}", describe(&output));
        assert_settled(&d, "the upgrade after", "2.0.0");
    }
}
