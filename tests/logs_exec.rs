//! `kolla logs` and `kolla exec` against the real engine, on the logs
//! fixture (busybox services that print known lines): what a live
//! container printed, its standard output and error kept apart, `--tail`
//! and `--since`; a command's output and exit code passed through; several
//! nodes (their lines after their names, a command refused until one is
//! named); and names no compose file knows refused with the known ones,
//! closest first.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Bounded, Deployment, Sandbox, describe, docker, expect_exit, stderr, stdout_of};

/// The logs fixture deployed, its own project on the test engine; once
/// talker has printed all its lines.
fn deployed(name: &str) -> Deployment {
    let d = Deployment::of(Sandbox::new(name), name, "logs", "").on_shared_busybox();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let since = Instant::now();
    while !stdout_of(&d.kolla("logs", &["talker"])).contains("out line 5") {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "talker printed no fifth line within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    d
}

#[test]
fn logs_show_what_the_live_container_printed_each_stream_to_its_own() {
    let d = deployed("logs-one");
    let output = d.kolla("logs", &["talker"]);
    expect_exit(&output, 0, &["err line"]);
    // One node: the lines as printed, nothing in front.
    let lines: Vec<String> = (1..=5).map(|i| format!("out line {i}\n")).collect();
    assert_eq!(stdout_of(&output), lines.concat(), "{}", describe(&output));
    assert_eq!(stderr(&output), "err line\n", "{}", describe(&output));

    // --tail counts the log's last lines, whichever stream said them.
    let output = d.kolla("logs", &["talker", "--tail", "2"]);
    expect_exit(&output, 0, &[]);
    assert_eq!(stdout_of(&output), "out line 4\nout line 5\n");
    assert_eq!(stderr(&output), "");

    // --since: a duration before now, an RFC 3339 time, Unix seconds.
    for since in ["1h", "2020-01-01T00:00:00Z", "1577836800"] {
        let output = d.kolla("logs", &["talker", "--since", since]);
        expect_exit(&output, 0, &["err line"]);
        assert_eq!(stdout_of(&output), lines.concat(), "--since {since}");
    }
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
        + 3600;
    let output = d.kolla("logs", &["talker", "--since", &later.to_string()]);
    expect_exit(&output, 0, &[]);
    assert_eq!(stdout_of(&output), "", "{}", describe(&output));
    let output = d.kolla("logs", &["talker", "--since", "yesterday"]);
    expect_exit(&output, 2, &["--since", "RFC 3339"]);

    // -f keeps printing what comes: a line the container prints now (on
    // its init's output, the container's) shows up while kolla runs.
    let mut follower = d.command("logs", &["talker", "-f", "--tail", "0"]);
    let follower = Follower::spawn(&mut follower);
    let since = Instant::now();
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "followed") {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "kolla logs -f showed no new line within 30 s: {seen:?}"
        );
        // Again until seen: kolla may not be reading yet, and --tail 0
        // shows nothing from before.
        let said = d.kolla(
            "exec",
            &["talker", "--", "sh", "-c", "echo followed > /proc/1/fd/1"],
        );
        expect_exit(&said, 0, &[]);
        seen.extend(follower.lines.recv_timeout(Duration::from_millis(500)));
    }
    assert!(seen.iter().all(|l| l == "followed"), "{seen:?}");
}

/// `kolla logs -f` running, its output lines as they come; killed when
/// dropped (it never ends by itself).
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    fn spawn(command: &mut Command) -> Follower {
        use std::io::BufRead;
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start kolla logs -f");
        let stdout = child.stdout.take().expect("its output");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn exec_passes_the_commands_output_and_exit_code_through() {
    let d = deployed("exec-one");
    let output = d.kolla("exec", &["talker", "--", "sh", "-c", "exit 7"]);
    expect_exit(&output, 7, &[]);
    let output = d.kolla(
        "exec",
        &["talker", "--", "sh", "-c", "echo to-out; echo to-err >&2"],
    );
    expect_exit(&output, 0, &["to-err"]);
    assert_eq!(stdout_of(&output), "to-out\n", "{}", describe(&output));
    assert!(!stderr(&output).contains("to-out"), "{}", describe(&output));
    // No terminal here, so none for the command either, and no input.
    let output = d.kolla("exec", &["talker", "--", "sh", "-c", "test -t 1 || exit 3"]);
    expect_exit(&output, 3, &[]);
    let output = d.kolla("exec", &["talker", "--", "cat"]);
    expect_exit(&output, 0, &[]);
    // The engine's refusal to start it, with its code: the engine sends
    // it as the command's output, and the docker CLI shows it there too.
    let output = d.kolla("exec", &["talker", "--", "no-such-command"]);
    expect_exit(&output, 126, &[]);
    let said = stdout_of(&output);
    assert!(
        said.contains("\"no-such-command\": executable file not found"),
        "{}",
        describe(&output)
    );

    // A data container runs nothing; a stopped live container neither.
    let output = d.kolla("exec", &["talkerdata", "--", "true"]);
    expect_exit(&output, 1, &["service talkerdata is a data container"]);
    let stopped = docker(&["stop", "-t", "1", &d.container("listener")]);
    assert!(stopped.status.success(), "{}", describe(&stopped));
    let output = d.kolla("exec", &["listener", "--", "true"]);
    expect_exit(
        &output,
        1,
        &[
            &format!(
                "its live container {} on node local is exited",
                d.container("listener")
            ),
            "kolla logs listener --node local",
        ],
    );
    // Its log is still there to read.
    expect_exit(&d.kolla("logs", &["listener"]), 0, &[]);
    // The command line wants the command after `--`.
    expect_exit(&d.kolla("exec", &["talker"]), 2, &["CMD"]);
}

/// A terminal for kolla gives the command one, of the same size: kolla
/// runs under `script`, which gives it a pseudo-terminal of 33 rows and
/// 101 columns. The size comes once the command runs (engines before API
/// 1.42 take no size with the exec), so the command waits a moment.
#[test]
fn exec_on_a_terminal_gives_the_command_one_of_the_same_size() {
    let d = deployed("exec-tty");
    let inside = "test -t 0 && test -t 1 && sleep 1 && stty size && exit 5";
    let kolla = d.command("exec", &["talker", "--", "sh", "-c", inside]);
    let argv: Vec<String> = std::iter::once(kolla.get_program())
        .chain(kolla.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let line = format!("stty rows 33 cols 101; exec {}", shell_words::join(&argv));
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line, "/dev/null"]);
    for (key, value) in kolla.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let output = script.bounded_output().expect("run script");
    expect_exit(&output, 5, &[]);
    assert!(
        stdout_of(&output).contains("33 101"),
        "{}",
        describe(&output)
    );
}

/// Two inventory nodes that reach the same engine: each finds the
/// service's live container there, so the verbs work over several nodes
/// as they do over a cluster (tests/multinode.rs has one, with engines of
/// their own), at the cost of one engine.
#[test]
fn over_two_nodes_logs_prefix_each_line_and_exec_wants_one_named() {
    let mut d = deployed("logs-two");
    let inventory = d.images.dir.path().join("two-nodes.yml");
    std::fs::write(
        &inventory,
        "nodes:\n  alpha:\n    roles: [controller]\n  b:\n    roles: [controller]\n",
    )
    .expect("write the inventory");
    d.inventory = inventory;

    let output = d.kolla("logs", &["talker"]);
    expect_exit(&output, 0, &["alpha | err line\n", "b     | err line\n"]);
    let out = stdout_of(&output);
    for node in ["alpha | ", "b     | "] {
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with(node)).collect();
        let expected: Vec<String> = (1..=5).map(|i| format!("{node}out line {i}")).collect();
        assert_eq!(lines, expected, "{}", describe(&output));
    }
    assert_eq!(out.lines().count(), 10, "{}", describe(&output));
    // One node named: its lines as printed.
    let output = d.kolla("logs", &["talker", "--node", "b", "--tail", "1"]);
    expect_exit(&output, 0, &[]);
    assert_eq!(stdout_of(&output), "out line 5\n");

    // A command runs on one node: with two, the operator names it.
    let output = d.kolla("exec", &["talker", "--", "echo", "hi"]);
    expect_exit(
        &output,
        2,
        &[
            "service talker runs on 2 of the selected nodes (alpha, b)",
            "--node",
        ],
    );
    assert_eq!(stdout_of(&output), "");
    let output = d.kolla("exec", &["talker", "--node", "b", "--", "echo", "hi"]);
    expect_exit(&output, 0, &[]);
    assert_eq!(stdout_of(&output), "hi\n");
}

/// Nothing deployed: the compose files alone say which names are known.
#[test]
fn a_name_nothing_knows_is_refused_with_the_known_ones_closest_first() {
    let name = "logs-unknown";
    let d = Deployment::of(Sandbox::new(name), name, "logs", "").on_shared_busybox();
    for verb in [&["logs", "tlaker"][..], &["exec", "tlaker", "--", "true"]] {
        let output = d.kolla(verb[0], &verb[1..]);
        expect_exit(
            &output,
            2,
            &[
                "service \"tlaker\" is in no compose file of the selected nodes",
                "did you mean \"talker\"?",
                "the services known, closest first: talker, ",
            ],
        );
        let said = stderr(&output);
        for known in ["listener", "talkerdata"] {
            assert!(said.contains(known), "{known}: {said}");
        }
        assert_eq!(stdout_of(&output), "");
    }
    // Known, but running nowhere: said so, and not as a typing error.
    let output = d.kolla("logs", &["talker"]);
    expect_exit(
        &output,
        1,
        &[
            "service talker has no live container on node local",
            "kolla deploy",
        ],
    );
}
