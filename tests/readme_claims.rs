//! Claims the README makes that no other test checked: `--forks N` bounds
//! how many nodes are worked on at once (while every engine is asked at
//! once whether it answers, when there are more nodes than forks), a node
//! whose host key changed is
//! refused over ssh, a swap whose swapping back fails too ends with exit 3,
//! and glance-api-drain waits for Glance's workers no longer than its
//! timeout.

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Bounded, Cluster, Pending, SilentEngine, describe, expect_exit, half_answer_counted,
    kolla_command, run_within, swap_deployment,
};

/// Engines that never answer: one loopback listener per node, which
/// accepts and says nothing, so each node kolla is working on holds one
/// open connection the test can see.
struct BlackHoles {
    listeners: Vec<TcpListener>,
    dir: tempfile::TempDir,
}

impl BlackHoles {
    fn new(count: usize) -> BlackHoles {
        let listeners: Vec<TcpListener> = (0..count)
            .map(|_| {
                let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
                listener.set_nonblocking(true).expect("non-blocking");
                listener
            })
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("kolla-forks-")
            .tempdir()
            .expect("temporary directory");
        let mut inventory = String::from("nodes:\n");
        for (i, listener) in listeners.iter().enumerate() {
            let port = listener.local_addr().expect("its address").port();
            inventory.push_str(&format!(
                "  n{i}:\n    docker: tcp://127.0.0.1:{port}\n    roles: [controller]\n"
            ));
        }
        std::fs::write(dir.path().join("inventory.yml"), inventory).expect("inventory");
        BlackHoles { listeners, dir }
    }

    /// `kolla ps` over every black hole, with `flags` before the verb.
    fn ps(&self, flags: &[&str]) -> Command {
        let mut command = kolla_command();
        command
            .env_remove("KOLLA_INVENTORY")
            .arg("--config-dir")
            .arg(self.dir.path())
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(flags)
            .arg("ps")
            .arg("-i")
            .arg(self.dir.path().join("inventory.yml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Accept what is waiting on every listener: (node index, connection).
    fn accept(&self, open: &mut Vec<(usize, TcpStream)>) {
        for (i, listener) in self.listeners.iter().enumerate() {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => open.push((i, stream)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("accept on a black hole: {e}"),
                }
            }
        }
    }
}

/// How long a round lets connections gather: far longer than kolla takes
/// to open every connection it is allowed to open at once.
const ROUND: Duration = Duration::from_millis(1500);

/// Run `command` against `holes` in rounds: the connections that gather in
/// a round are counted by node, then closed (the engine "fails"), which
/// lets kolla go on to the next nodes. The most nodes held at once in a
/// round, every node ever reached, and kolla's output.
fn nodes_at_once(holes: &BlackHoles, mut command: Command) -> (usize, usize, std::process::Output) {
    let mut child = command.spawn().expect("run kolla");
    let deadline = Instant::now() + Duration::from_secs(45);
    let (mut most, mut reached) = (0, BTreeSet::new());
    let mut open = Vec::new();
    let mut round_began: Option<Instant> = None;
    while child.try_wait().expect("kolla's status").is_none() {
        assert!(Instant::now() < deadline, "kolla still runs after 45 s");
        holes.accept(&mut open);
        if !open.is_empty() && round_began.is_none() {
            round_began = Some(Instant::now());
        }
        if round_began.is_some_and(|t| t.elapsed() >= ROUND) {
            let nodes: BTreeSet<usize> = open.iter().map(|(i, _)| *i).collect();
            most = most.max(nodes.len());
            reached.extend(nodes);
            open.clear();
            round_began = None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let nodes: BTreeSet<usize> = open.iter().map(|(i, _)| *i).collect();
    most = most.max(nodes.len());
    reached.extend(nodes);
    let output = child.wait_with_output().expect("kolla's output");
    (most, reached.len(), output)
}

/// README: "Verbs that reach every node work on `--forks N` nodes at once
/// (default 16). A node that does not answer fails its own part". Six
/// engines that answer the handshake and then hang on the first request:
/// with `--forks 2` kolla waits on two at a time and still names all six
/// with the request they left unanswered; by default, all six at once.
#[test]
fn forks_bounds_how_many_nodes_are_worked_on_at_once() {
    for (flags, expected) in [(&["--forks", "2"][..], 2), (&[][..], 6)] {
        let pending = std::sync::Arc::new(Pending::default());
        let engines: Vec<SilentEngine> = (0..6)
            .map(|i| half_answer_counted(i, std::sync::Arc::clone(&pending)))
            .collect();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut inventory = String::from("nodes:\n");
        for (i, engine) in engines.iter().enumerate() {
            inventory.push_str(&format!(
                "  n{i}:\n    docker: {}\n    roles: [controller]\n",
                engine.url
            ));
        }
        std::fs::write(dir.path().join("inventory.yml"), inventory).expect("inventory");
        let mut command = kolla_command();
        command
            .env_remove("KOLLA_INVENTORY")
            .env_remove("KOLLA_ENGINE_TIMEOUT")
            .arg("--config-dir")
            .arg(dir.path())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--engine-timeout", "1"])
            .args(flags)
            .arg("ps")
            .arg("-i")
            .arg(dir.path().join("inventory.yml"));
        let (output, _) = run_within(command, Duration::from_secs(45));
        let said = expect_exit(&output, 1, &[]);
        // Each request hangs until the one-second deadline: a window of
        // half that sees the nodes waited on together.
        let most = pending.most_within(Duration::from_millis(500));
        assert_eq!(
            most,
            expected,
            "{flags:?}: {most} nodes at once\n{}",
            describe(&output)
        );
        assert_eq!(pending.reached().len(), 6, "{flags:?}\n{said}");
        for (i, engine) in engines.iter().enumerate() {
            let named = format!(
                "node n{i}: the engine at {} did not answer `list containers` within 1s",
                engine.url
            );
            assert!(said.contains(&named), "n{i} unnamed:\n{said}");
        }
    }
}

/// README: "With more nodes than `--forks`, kolla first asks every node's
/// engine at once whether it answers". Six engines that never answer, two
/// forks: all six are asked at once, and each is named.
#[test]
fn every_engine_is_asked_at_once_whether_it_answers() {
    let holes = BlackHoles::new(6);
    for (flags, expected) in [(&["--forks", "2"][..], 6), (&[][..], 6)] {
        let (most, reached, output) = nodes_at_once(&holes, holes.ps(flags));
        let said = expect_exit(&output, 1, &[]);
        assert_eq!(
            most,
            expected,
            "{flags:?}: {most} nodes at once\n{}",
            describe(&output)
        );
        assert_eq!(reached, 6, "{flags:?}: {reached} nodes reached\n{said}");
        for i in 0..6 {
            assert!(
                said.contains(&format!("node n{i}")),
                "n{i} unnamed:\n{said}"
            );
        }
    }
}

/// `known_hosts` as `scanned` holds it, every node's key swapped for one
/// made here of the same type: what ssh sees when a node's key changed.
fn changed_keys(scanned: &str, dir: &std::path::Path) -> String {
    let mut changed = String::new();
    for line in scanned.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let (Some(host), Some(kind)) = (fields.next(), fields.next()) else {
            continue;
        };
        let short = match kind {
            "ssh-ed25519" => "ed25519",
            "ssh-rsa" => "rsa",
            k if k.starts_with("ecdsa-sha2-") => "ecdsa",
            _ => continue,
        };
        let key = dir.join(format!("other_{short}"));
        if !key.exists() {
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", short, "-N", "", "-f"])
                .arg(&key)
                .bounded_output()
                .expect("run ssh-keygen");
            assert!(made.status.success(), "{}", describe(&made));
        }
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("the key");
        let blob = public.split_whitespace().nth(1).expect("a public key");
        changed.push_str(&format!("{host} {kind} {blob}\n"));
    }
    assert!(!changed.is_empty(), "no host key in:\n{scanned}");
    changed
}

/// README: "A host key that is not in known_hosts, or that changed, is
/// refused". (tests/multinode.rs checks a key that is not there.) The
/// node's entry holds another key: refused with ssh's own words, nothing
/// listed; with the right key the same command works.
#[test]
fn over_ssh_a_node_whose_host_key_changed_is_refused() {
    let cluster = Cluster::start("hostkey", 1);
    let inventory = cluster.write_ssh_inventory("inventory.yml", &|_| vec!["controller"]);
    let known = cluster.ssh_config(true);
    let ssh_dir = known.parent().expect("the ssh folder").to_path_buf();
    let scanned = std::fs::read_to_string(ssh_dir.join("known_hosts")).expect("known_hosts");
    let changed_hosts = ssh_dir.join("changed_known_hosts");
    std::fs::write(&changed_hosts, changed_keys(&scanned, &ssh_dir)).expect("changed keys");
    let config = std::fs::read_to_string(&known)
        .expect("ssh config")
        .replace(
            &ssh_dir.join("known_hosts").display().to_string(),
            &changed_hosts.display().to_string(),
        );
    let changed = ssh_dir.join("config-changed");
    std::fs::write(&changed, config).expect("ssh config");

    let ps = |config: &std::path::Path| {
        kolla_command()
            .env_remove("KOLLA_INVENTORY")
            .env("KOLLA_SSH_CONFIG", config)
            .arg("--config-dir")
            .arg(cluster.dir.path())
            .arg("--state-dir")
            .arg(cluster.dir.path().join("state"))
            .args(["ps", "-i"])
            .arg(&inventory)
            .bounded_output()
            .expect("run kolla")
    };
    let output = ps(&changed);
    let said = expect_exit(
        &output,
        1,
        &["node n1", "over ssh", "Host key verification failed"],
    );
    assert!(
        said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || said.contains("has changed"),
        "the refusal does not say the key changed:\n{said}"
    );
    let output = ps(&known);
    assert!(output.status.success(), "{}", describe(&output));
}

/// README, exit codes: "3: a swap failed and swapping back failed too
/// ... run `kolla recover`". The swap helper is killed while it waits for
/// a new generation that never gets healthy: nobody can say what state the
/// swap is in, so kolla exits 3, and `kolla recover` then brings back the
/// generation that served.
#[test]
fn a_swap_left_half_done_exits_3_and_recover_settles_it() {
    let d = swap_deployment("exit3", &["1.0.0", "8.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let upgrade = d.command("upgrade", &["web", "--tag", "8.0.0"]);
    let upgrade = std::thread::spawn(move || {
        let mut upgrade = upgrade;
        upgrade.bounded_output().expect("run kolla")
    });
    let helper = d.container("web.kolla-swap");
    let started = Instant::now();
    while d
        .containers()
        .get(&helper)
        .is_none_or(|(_, s)| s != "running")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60) && !upgrade.is_finished(),
            "the swap helper never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = common::docker(&["kill", &helper]);
    assert!(killed.status.success(), "{}", describe(&killed));
    let output = upgrade.join().expect("the upgrade's thread");
    expect_exit(&output, 3, &["kolla recover"]);

    let output = d.kolla("recover", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    d.assert_one_live_and_no_leftovers("web", "after recover");
    // Which generation recover settles on depends on the step the kill
    // landed after (tests/crash.rs holds each step's outcome): the old one
    // before the new one was renamed live, the new one from then on.
    let serving = d.serving();
    assert!(
        matches!(
            serving.as_deref(),
            Some("version 1.0.0\n") | Some("version 8.0.0\n")
        ),
        "after recover: {serving:?}"
    );
}

/// glance-api-drain (bash, run here on this machine's /proc) over a
/// stand-in for glance-api: a parent whose one worker ends on SIGHUP, or
/// ignores it when `stubborn`. A stop (SIGTERM) after the worker started;
/// how long the script took to exit from the stop, what it printed, and the
/// worker's pid.
fn drain_a_stand_in(stubborn: bool, timeout: &str) -> (Duration, String, i32) {
    let script = common::fixtures().join("../../images/glance-api/glance-api-drain");
    let parent = if stubborn {
        "trap '' HUP; sleep 30 & wait"
    } else {
        "sleep 30 & wait"
    };
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .args(["sh", "-c", parent])
        .env("KOLLA_DRAIN_TIMEOUT", timeout)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A test run under nohup (CI's is) hands SIGHUP ignored to every child,
    // and a shell cannot take back a signal ignored when it started: the
    // stand-in's worker would never end. Glance's workers get it as the
    // default, which ends a plain worker.
    // SAFETY: between fork and exec only signal(2), async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGHUP,
                nix::sys::signal::SigHandler::SigDfl,
            )
            .map(|_| ())
            .map_err(std::io::Error::from)
        });
    }
    let mut child = command.spawn().expect("run glance-api-drain");
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .bounded_status()
        .expect("run kill");
    assert!(term.success());
    let deadline = stopped + Duration::from_secs(40);
    while child.try_wait().expect("its status").is_none() {
        assert!(Instant::now() < deadline, "glance-api-drain runs on");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = stopped.elapsed();
    let output = child.wait_with_output().expect("its output");
    let said = common::stdout_of(&output);
    let worker = said
        .lines()
        .find_map(|l| l.strip_prefix("glance-api-drain: draining workers "))
        .and_then(|pids| pids.trim().parse().ok())
        .unwrap_or_else(|| panic!("no one worker drained:\n{}", describe(&output)));
    (took, said, worker)
}

/// README: the container ends when Glance's workers are done, at most
/// KOLLA_DRAIN_TIMEOUT after the stop, within the stop grace period. A
/// worker that finishes is not waited for beyond (a timeout of 20 s, not
/// waited out); one that never finishes is left after the timeout (2 s
/// here); and the longest wait the script
/// can make by default (the socket wait and the timeout) is shorter than
/// glance-api's grace period in compose/controller.yml.
#[test]
fn glance_api_drain_waits_for_its_workers_no_longer_than_its_timeout() {
    // A timeout far above what a loaded machine adds, so that ending well
    // before it can only mean the script saw the worker end.
    let (took, said, _) = drain_a_stand_in(false, "20");
    assert!(
        took < Duration::from_secs(8),
        "{took:?} for a worker that ended, with a timeout of 20 s:\n{said}"
    );
    assert!(said.contains("glance-api-drain: stopped"), "{said}");

    let (took, said, worker) = drain_a_stand_in(true, "2");
    let alive = Command::new("kill")
        .args(["-KILL", &worker.to_string()])
        .bounded_status()
        .expect("run kill");
    assert!(
        alive.success(),
        "the stubborn worker ended before the timeout"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "{took:?} for a timeout of 2 s:\n{said}"
    );

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("images/glance-api/glance-api-drain"))
        .expect("the script");
    let seconds = |after: &str, until: char| -> u64 {
        let at = script
            .find(after)
            .unwrap_or_else(|| panic!("no {after:?} in the script"));
        let rest = &script[at + after.len()..];
        rest[..rest.find(until).expect("its end")]
            .parse()
            .expect("seconds")
    };
    let longest = seconds("while_for ", ' ') + seconds("${KOLLA_DRAIN_TIMEOUT:-", '}');
    let compose = std::fs::read_to_string(root.join("compose/controller.yml")).expect("compose");
    let glance = &compose[compose.find("\n  glance-api:\n").expect("glance-api")..];
    let grace = glance
        .lines()
        .find_map(|l| l.trim().strip_prefix("stop_grace_period: "))
        .and_then(|v| v.strip_suffix('s')?.parse::<u64>().ok())
        .expect("glance-api's stop_grace_period in seconds");
    assert_eq!(
        (longest, grace),
        (55, 60),
        "README says 50 + 5 s within 60 s"
    );
}
