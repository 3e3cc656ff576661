//! Crash safety of the swap: `kolla upgrade` frozen after each step (the
//! `fault-injection` feature), killed with SIGKILL there, then `kolla
//! recover`. Whatever the step, exactly one `<svc>` runs (v1 or v2, never
//! both, never none), no candidate or lock is left, and the data is as it
//! was. tools/test runs these with `--features fault-injection`.

#![cfg(feature = "fault-injection")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Deployment, describe};

fn crash_at(step: &str) {
    let d = common::swap_deployment(&format!("crash-{step}"), &["1.0.0", "2.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    d.write_data("/data/precious", "customer data");

    let mut child = d
        .command("upgrade", &["web", "--tag", "2.0.0"])
        .env("KOLLA_FAULT", step)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("fault injection: frozen after") {
                let _ = tx.send(());
            }
        }
    });
    let frozen = rx.recv_timeout(Duration::from_secs(60));
    // SIGKILL: no cleanup of any kind runs in kolla.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(frozen.is_ok(), "kolla never reached step {step}");

    let output = d.kolla("recover", &[]);
    assert!(
        output.status.success(),
        "recover after {step}: {}",
        describe(&output)
    );
    assert_one_web_serving(&d, step);
    assert_eq!(
        d.read_data("/data/precious"),
        "customer data",
        "after {step}"
    );

    // Recovery is idempotent, and the service works on: an upgrade now
    // goes through.
    let output = d.kolla("recover", &[]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("nothing to recover"),
        "{}",
        describe(&output)
    );
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.serving().as_deref(), Some("version 2.0.0\n"));
}

fn assert_one_web_serving(d: &Deployment, step: &str) {
    let containers = d.containers();
    let running: Vec<&String> = containers
        .iter()
        .filter(|(name, (_, state))| name.starts_with(&d.container("web")) && state == "running")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        running,
        vec![&d.container("web")],
        "after {step}: {containers:?}"
    );
    assert!(
        !containers.keys().any(|n| n.ends_with(".kolla-new")
            || n.ends_with(".kolla-lock")
            || n.ends_with(".kolla-bootstrap")),
        "after {step}: {containers:?}"
    );
    let serving = d.serving();
    assert!(
        matches!(
            serving.as_deref(),
            Some("version 1.0.0\n") | Some("version 2.0.0\n")
        ),
        "after {step}: serving {serving:?}"
    );
}

#[test]
fn crash_after_lock() {
    crash_at("locked");
}

#[test]
fn crash_after_bootstrap() {
    crash_at("bootstrapped");
}

#[test]
fn crash_after_candidate_created() {
    crash_at("candidate-created");
}

#[test]
fn crash_after_restart_policy_no() {
    crash_at("restart-policy-no");
}

#[test]
fn crash_after_old_stopped() {
    crash_at("old-stopped");
}

#[test]
fn crash_after_old_renamed() {
    crash_at("old-renamed");
}

#[test]
fn crash_after_new_renamed() {
    crash_at("new-renamed");
}

#[test]
fn crash_after_new_started() {
    crash_at("new-started");
}

#[test]
fn crash_after_gate() {
    crash_at("gated");
}
