//! Start-first swaps on the host's network: the service's server binds its
//! port with SO_REUSEPORT (as uwsgi's reuse-port does), so the new
//! container serves beside the old one; it is gated on its own health
//! socket, then the old one drains and stops. A client probing the port
//! every 2 ms sees no gap; a candidate that never gets healthy leaves the
//! old one serving with no gap at all; and kolla killed at any step of a
//! start-first swap leaves, after `recover`, one live container serving.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Deployment, Sandbox, describe, expect_exit, http_request, shared_python};

/// The fixture at each of `tags`, deployed at 1.0.0.
/// The probe's 50 ms bound is about kolla and the kernel, not about a
/// machine busy with the other test of this file: they take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Write net.ipv4.tcp_migrate_req of this machine's network namespace the
/// way kolla does (a container with NET_ADMIN and /proc/sys writable).
fn set_migrate_req(value: &str) {
    let output = common::docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--cap-add",
        "NET_ADMIN",
        "--security-opt",
        "systempaths=unconfined",
        "--user",
        "0",
        "--label",
        "kolla.test=start-first",
        "debian:bookworm",
        "sh",
        "-c",
        &format!("echo {value} > /proc/sys/net/ipv4/tcp_migrate_req"),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
}

fn deployed(name: &str, tags: &[&str]) -> Deployment {
    let images = Sandbox::with_image(name, "start-first/images/fx-reuse", shared_python());
    for tag in tags {
        let output = images.build(&["^fx-reuse$", "--tag", tag]);
        assert!(output.status.success(), "{}", describe(&output));
    }
    let globals = format!("namespace: {}\ntag: \"1.0.0\"\n", images.namespace);
    let d = Deployment::of(images, name, "start-first/compose", &globals);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    d
}

/// What the service answers now ("" when nothing does).
fn answer(d: &Deployment) -> String {
    let port = d.env("WEB_PORT").parse().expect("port");
    let reply = http_request("GET", port, "/", &[], b"", Duration::from_secs(2));
    reply.text()
}

/// A client asking every 2 ms while `during` runs: the longest time
/// without an answer, the failed requests, and the versions it saw.
fn probed<T>(d: &Deployment, during: impl FnOnce() -> T) -> (Duration, usize, Vec<String>, T) {
    let port: u16 = d.env("WEB_PORT").parse().expect("port");
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last_ok = Instant::now();
            let (mut longest, mut failed, mut seen) = (Duration::ZERO, 0, Vec::new());
            while !done.load(Ordering::SeqCst) {
                let reply = http_request("GET", port, "/", &[], b"", Duration::from_secs(1));
                if reply.status == 200 {
                    longest = longest.max(last_ok.elapsed());
                    last_ok = Instant::now();
                    let text = reply.text();
                    if !seen.contains(&text) {
                        seen.push(text);
                    }
                } else {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (longest.max(last_ok.elapsed()), failed, seen)
        })
    };
    let result = during();
    done.store(true, Ordering::SeqCst);
    let (longest, failed, seen) = probe.join().expect("probe thread");
    (longest, failed, seen, result)
}

#[test]
fn start_first_on_the_host_network_serves_throughout() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The fixture asks for net.ipv4.tcp_migrate_req=1 on the node: cleared
    // first, so that the deploy is seen to set it.
    set_migrate_req("0");
    let d = deployed("startfirst", &["1.0.0", "2.0.0", "8.0.0"]);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
            .expect("this kernel has net.ipv4.tcp_migrate_req")
            .trim(),
        "1",
        "the deploy set the node setting the fixture asks for"
    );
    assert_eq!(answer(&d), "version 1.0.0\n");

    let (longest, failed, seen, output) =
        probed(&d, || d.kolla("upgrade", &["api", "--tag", "2.0.0"]));
    assert!(output.status.success(), "{}", describe(&output));
    let err = common::stderr(&output);
    assert!(err.contains("dark window 0.000s"), "{err}");
    assert!(
        longest < Duration::from_millis(50),
        "the longest time without an answer was {longest:?} ({failed} failed requests): {seen:?}"
    );
    assert_eq!(answer(&d), "version 2.0.0\n");

    // The rollback starts the kept generation beside the live one too.
    let (longest, failed, seen, output) = probed(&d, || d.kolla("rollback", &["api"]));
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        longest < Duration::from_millis(50),
        "rollback: the longest time without an answer was {longest:?} ({failed} failed requests): {seen:?}"
    );
    assert_eq!(failed, 0, "requests failed during the rollback");
    assert_eq!(answer(&d), "version 1.0.0\n");

    // A candidate that never gets healthy: the old one never stops.
    let (longest, failed, _, output) = probed(&d, || {
        d.kolla(
            "upgrade",
            &["api", "--tag", "8.0.0", "--health-timeout", "10"],
        )
    });
    expect_exit(&output, 1, &["service api"]);
    assert_eq!(failed, 0, "requests failed while the candidate failed");
    assert!(longest < Duration::from_millis(50), "{longest:?}");
    assert_eq!(answer(&d), "version 1.0.0\n");
    d.assert_one_live_and_no_leftovers("api", "after a failed start-first upgrade");
}

/// A plain build leaves the fault-point tests out; this says how many.
#[test]
fn fault_point_tests_left_out() {
    common::fault_point_tests_left_out(file!());
}

/// The tests that freeze kolla at a fault point (`KOLLA_FAULT`): only the
/// `fault-injection` build has them; a plain build counts them and says
/// so (`fault_point_tests_left_out`).
#[cfg(feature = "fault-injection")]
mod fault_points {
    use super::*;
    use crate::common::kill_at;

    #[test]
    fn kolla_killed_at_any_step_of_a_start_first_swap_recovers_to_one_live_container() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let d = deployed("startfirst-crash", &["1.0.0", "2.0.0"]);
        // kolla itself runs the swap (not the helper), and is killed in it.
        d.without_helper();
        for step in [
            "candidate-created",
            "restart-policy-no",
            "old-stopped",
            "old-renamed",
            "new-renamed",
            "new-started",
        ] {
            let target = if answer(&d) == "version 1.0.0\n" {
                "2.0.0"
            } else {
                "1.0.0"
            };
            let args = ["api", "--tag", target, "--allow-downgrade"];
            kill_at(d.command("upgrade", &args), step);
            let output = d.kolla("recover", &[]);
            assert!(output.status.success(), "{step}: {}", describe(&output));
            d.assert_one_live_and_no_leftovers("api", step);
            let serving = answer(&d);
            assert!(
                serving == "version 1.0.0\n" || serving == "version 2.0.0\n",
                "{step}: serves {serving:?}"
            );
        }
        // A start-first rollback killed with both generations running.
        let before = answer(&d);
        kill_at(
            d.command("rollback", &["api", "--force"]),
            "rollback-started-beside",
        );
        let output = d.kolla("recover", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        d.assert_one_live_and_no_leftovers("api", "rollback-started-beside");
        assert_eq!(
            answer(&d),
            before,
            "the live generation stays; the kept one stops"
        );
    }
}
