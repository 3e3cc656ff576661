//! Shared helpers for the tests that run against the real Docker engine:
//! `sandbox` (a private image tree and namespace), `deployment` (a project
//! of its own on the engine, and what tests check of it), `http` (a plain
//! client for what the services serve), `nodes` (test nodes with engines
//! of their own), `openstack` (what the heavy tests ask of a real cloud),
//! `events` (what the engine did while a test ran), `bounded` (every
//! command a test runs, killed and named if it hangs), `silent` (engines that
//! never answer, or stop answering after the handshake),
//! and here the engine, the kolla binary and the checks of
//! its output.
//!
//! Everything a test creates carries a name and label no other test uses,
//! so tests run in parallel safely, and is removed by label when dropped.
//! A test that cannot reach the engine fails with a message saying so; it
//! never passes quietly.

#![allow(dead_code, unused_imports)]

mod bounded;
mod deployment;
mod events;
mod gated;
mod http;
mod nodes;
mod openstack;
mod registry;
mod sandbox;
mod silent;

pub use bounded::*;
pub use deployment::*;
pub use events::*;
pub use gated::*;
pub use http::*;
pub use kolla::deploy::fault::FaultPoint;
pub use nodes::*;
pub use openstack::*;
pub use registry::*;
pub use sandbox::*;
pub use silent::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use kolla::engine::Engine;

/// The local registry the push tests use (started by tools/test).
pub const REGISTRY: &str = "127.0.0.1:4000";

/// Numbers names apart within one test process.
pub(crate) static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `<prefix>-<name>-<pid>-<n>`: a name no other test, in this process or
/// another, gives anything.
pub fn unique_name(prefix: &str, name: &str) -> String {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{prefix}-{name}-{}-{n}", std::process::id())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime for a test")
}

/// Connect to the engine the tests use, or fail the test saying why.
pub fn engine() -> Engine {
    let local = kolla::settings::Environment::read().local_endpoint;
    match runtime().block_on(Engine::connect(&local)) {
        Ok(engine) => engine,
        Err(e) => panic!(
            "this test needs a running Docker engine and could not reach one:\n{e}\n\
             start dockerd (tools/test does) or point DOCKER_HOST at one"
        ),
    }
}

/// The kolla under test: this build's, or the one KOLLA_TEST_KOLLA names
/// (tools/test points it at the fault-injection build for the fault-point
/// tests).
pub fn kolla_binary() -> PathBuf {
    match std::env::var_os("KOLLA_TEST_KOLLA") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_kolla")),
    }
}

/// Give `command` (a kolla run) the fault directive `directive`. The
/// fault-point tests need the fault-injection build: without it kolla
/// would never freeze and the test would wait for nothing, so it fails
/// at once saying what to do.
pub fn set_fault(command: &mut Command, directive: String) {
    assert!(
        std::env::var_os("KOLLA_TEST_KOLLA").is_some(),
        "a fault-point test needs the fault-injection build of kolla: \
         `CARGO_TARGET_DIR=target/fault-injection cargo build --features fault-injection` \
         and KOLLA_TEST_KOLLA=target/fault-injection/debug/kolla (tools/test does both)"
    );
    command.env("KOLLA_FAULT", directive);
}

pub fn kolla_command() -> Command {
    let mut command = Command::new(kolla_binary());
    command
        .env_remove("KOLLA_CONFIG_DIR")
        .env_remove("KOLLA_IMAGES_DIR");
    command
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// Say `line` on the test run's stderr even when the test passes: the
/// harness captures `eprintln!` (shown only for a failing test), not
/// writes to the stderr handle itself.
pub fn tell(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fail the test unless `output` exited with `code` and its stderr says
/// every one of `phrases`; that stderr, for further checks.
pub fn expect_exit(output: &Output, code: i32, phrases: &[&str]) -> String {
    assert_eq!(output.status.code(), Some(code), "{}", describe(output));
    let said = stderr(output);
    for phrase in phrases {
        assert!(
            said.contains(phrase),
            "stderr lacks {phrase:?}:\n{}",
            describe(output)
        );
    }
    said
}

/// The docker CLI, for what tests check from outside kolla.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .bounded_output()
        .expect("run the docker CLI")
}

pub fn volume_exists(name: &str) -> bool {
    docker(&["volume", "inspect", name]).status.success()
}

/// Run `command` until it freezes at `step`, then SIGKILL it.
pub fn kill_at(mut command: Command, step: FaultPoint) {
    set_fault(&mut command, step.freeze());
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("fault injection: frozen after") {
                let _ = tx.send(Ok(()));
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen.join("\n")));
    });
    let frozen = rx.recv_timeout(Duration::from_secs(90));
    // SIGKILL: no cleanup of any kind runs in kolla.
    child.kill().unwrap();
    child.wait().unwrap();
    match frozen {
        Ok(Ok(())) => {}
        Ok(Err(stderr)) => panic!("kolla ended before step {step}:\n{stderr}"),
        Err(_) => panic!("kolla never reached step {step}"),
    }
}

/// The time stamp (seconds) of the first line of `stderr` saying `what`.
pub fn said_at(stderr: &str, what: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in:\n{stderr}"));
    line.trim_start_matches('[')
        .split('s')
        .next()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no time stamp on {line:?}"))
}
