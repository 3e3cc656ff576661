//! One service at a time, against the real engine: `deploy`, `stop`,
//! `start`, `restart` and `pull` of named services leave every other
//! container as it was (same ids, same states); a restart keeps the
//! container and gives it a new process, gated by its health check; a
//! deploy of a service whose dependency is down is refused naming it; a
//! name nothing knows is refused with the known ones, closest first; and
//! `--lock-wait`: a second run waits for the holder of a service's lock,
//! naming it once, goes on once it is released, and gives up at its limit
//! with exit 4 naming the holder.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    Bounded, Deployment, OwnTag, Registry, Sandbox, describe, docker, expect_exit, http_get,
    runtime, stdout_of, swap_deployment,
};

/// name -> (id, state) of the deployment's containers.
type Containers = BTreeMap<String, (String, String)>;

/// When a container's process started (the engine's `State.StartedAt`).
fn started_at(container: &str) -> String {
    let output = docker(&["inspect", "-f", "{{.State.StartedAt}}", container]);
    assert!(output.status.success(), "{}", describe(&output));
    stdout_of(&output).trim().to_string()
}

/// `after` holds every container of `before` with the same id, and the
/// same state except where `changed` (container -> state) says.
fn only_changed(before: &Containers, after: &Containers, changed: &[(&str, &str)]) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "containers came or went"
    );
    for (name, (id, state)) in before {
        let (id_now, state_now) = &after[name];
        assert_eq!(id_now, id, "{name} was replaced");
        let expected = changed
            .iter()
            .find(|(c, _)| c == name)
            .map_or(state.as_str(), |(_, s)| s);
        assert_eq!(state_now, expected, "{name}: {after:?}");
    }
}

fn deployed(name: &str) -> Deployment {
    let d = Deployment::new(name);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    d
}

#[test]
fn a_deploy_of_named_services_changes_them_alone_and_needs_the_rest_up() {
    let d = deployed("one-deploy");
    let first = d.containers();
    let (web_port, api_port) = (d.env("WEB_PORT").to_string(), d.env("API_PORT").to_string());

    // api's environment and web's page both change; only api is named.
    std::fs::write(
        d.compose_dir.join("web/index.html"),
        "web {{ node_name }} version 2\n",
    )
    .expect("web's page");
    let deploy_api = |args: &[&str]| {
        d.command("deploy", args)
            .env("API_GREETING", "bonjour")
            .bounded_output()
            .expect("run kolla deploy")
    };
    let output = deploy_api(&["api"]);
    expect_exit(&output, 0, &[]);
    assert!(
        stdout_of(&output).contains("node local: 1 replace (0 unchanged)"),
        "{}",
        describe(&output)
    );
    let second = d.containers();
    let api = d.container("api");
    for (name, (id, state)) in &first {
        if *name == api {
            assert_ne!(&second[name].0, id, "api was not replaced");
        } else {
            assert_eq!(&second[name], &(id.clone(), state.clone()), "{name}");
        }
    }
    assert_eq!(second[&d.container("api.kolla-gen-1")].0, first[&api].0);
    assert_eq!(
        http_get(&api_port, "/index.html").as_deref(),
        Some("bonjour\n")
    );
    assert_eq!(
        http_get(&web_port, "/index.html").as_deref(),
        Some("web local web version 1\n"),
        "web's new page went live though web was not named"
    );
    // The whole node's plan still has web to replace, and api is done.
    let output = deploy_api(&["--dry-run"]);
    let plan = stdout_of(&output);
    assert!(
        plan.contains("replace      web") && plan.contains("keep         api"),
        "{}",
        describe(&output)
    );

    // A name nothing knows: refused before anything is touched, the name
    // meant first among the known ones.
    expect_exit(
        &deploy_api(&["apii"]),
        2,
        &[
            "service \"apii\" is in no compose file of the selected nodes (did you mean \"api\"?)",
            "the services known, closest first: api, ",
        ],
    );
    assert_eq!(d.containers(), second);

    // What api needs is down: its deploy is refused naming it.
    let output = d.kolla("stop", &["web"]);
    expect_exit(&output, 0, &[]);
    let stopped = d.containers();
    only_changed(&second, &stopped, &[(&d.container("web"), "exited")]);
    let output = d
        .command("deploy", &["api"])
        .env("API_GREETING", "hallo")
        .bounded_output()
        .expect("run kolla deploy");
    expect_exit(
        &output,
        2,
        &[
            "service api depends on web, which this deploy leaves as it is, and web is exited, not running",
            "kolla deploy web api",
        ],
    );
    assert_eq!(d.containers(), stopped);
}

#[test]
fn stop_start_and_restart_one_service_gated_by_its_health_check() {
    let d = deployed("one-restart");
    let web = d.container("web");
    let web_port = d.env("WEB_PORT").to_string();
    let before = d.containers();
    let page = || http_get(&web_port, "/index.html");

    // A restart: the same container, a new process, healthy when it ends.
    let began = started_at(&web);
    let output = d.kolla("restart", &["web"]);
    expect_exit(&output, 0, &[]);
    assert!(
        stdout_of(&output).contains("node local: restarted: web (dark "),
        "{}",
        describe(&output)
    );
    assert_ne!(started_at(&web), began, "web's process was not restarted");
    assert_eq!(page().as_deref(), Some("web local web version 1\n"));
    only_changed(&before, &d.containers(), &[]);

    // Gated: a restart whose health check fails is a failure (exit 1).
    let broken = docker(&["exec", &web, "mv", "/etc/web/index.html", "/etc/web/away"]);
    assert!(broken.status.success(), "{}", describe(&broken));
    let output = d.kolla("restart", &["web", "--health-timeout", "3"]);
    expect_exit(&output, 1, &["service web: not healthy after 3s"]);
    let mended = docker(&["exec", &web, "mv", "/etc/web/away", "/etc/web/index.html"]);
    assert!(mended.status.success(), "{}", describe(&mended));

    // Stop one service, then start it: only it changes, and it serves
    // when the start ends.
    expect_exit(&d.kolla("stop", &["web"]), 0, &[]);
    only_changed(&before, &d.containers(), &[(&web, "exited")]);
    assert_eq!(page(), None);
    let output = d.kolla("start", &["web"]);
    expect_exit(&output, 0, &[]);
    assert!(
        stdout_of(&output).contains("node local: started: web"),
        "{}",
        describe(&output)
    );
    assert_eq!(page().as_deref(), Some("web local web version 1\n"));
    only_changed(&before, &d.containers(), &[]);
    let output = d.kolla("start", &["web"]);
    assert!(
        stdout_of(&output).contains("node local: already running: web"),
        "{}",
        describe(&output)
    );

    // The whole node stopped, then started: everything as it was (the
    // completed one-shot stays completed, the data container created).
    expect_exit(&d.kolla("stop", &[]), 0, &[]);
    let output = d.kolla("start", &[]);
    expect_exit(&output, 0, &[]);
    only_changed(&before, &d.containers(), &[]);
    assert_eq!(page().as_deref(), Some("web local web version 1\n"));

    // Names nothing knows, and a data container, are refused (exit 2).
    for verb in ["start", "restart", "stop"] {
        expect_exit(
            &d.kolla(verb, &["wbe"]),
            2,
            &[
                "service \"wbe\" is in no compose file of the selected nodes and has no container on them (did you mean \"web\"?)",
                "closest first: web, ",
            ],
        );
    }
    expect_exit(
        &d.kolla("restart", &["webdata"]),
        2,
        &["service webdata is a data container"],
    );
    only_changed(&before, &d.containers(), &[]);
}

/// A kolla run whose stderr is read line by line as it comes.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    fn spawn(command: &mut Command) -> Watched {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kolla");
        let stderr = child.stderr.take().expect("its stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait (at most `within`) for a line that holds `phrase`.
    fn wait_for(&mut self, phrase: &str, within: Duration) {
        let since = Instant::now();
        while !self.seen.iter().any(|l| l.contains(phrase)) {
            let left = within.saturating_sub(since.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {phrase:?} within {within:?}:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Its exit code, once it ends (at most `within`), and all it said.
    fn finish(mut self, within: Duration) -> (Option<i32>, String) {
        let since = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("its status") {
                break status;
            }
            if since.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "kolla did not end within {within:?}:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lock this test took, released.
fn release(d: &Deployment, lock: kolla::deploy::lock::Lock) {
    runtime()
        .block_on(kolla::deploy::lock::release(&d.images.engine, lock))
        .expect("release the test's lock");
}

#[test]
fn a_second_run_waits_for_the_lock_holder_and_gives_up_at_its_limit() {
    let d = swap_deployment("one-lockwait", &["1.0.0"]);
    expect_exit(&d.kolla("deploy", &[]), 0, &[]);
    let web = d.container("web");
    let holder = "service web is locked by a-test-operator";

    // Without --lock-wait, a held lock is exit 4 at once.
    let lock = d.take_lock("web");
    expect_exit(&d.kolla("restart", &["web"]), 4, &[holder, "--lock-wait"]);

    // With it: the run waits, says who holds the lock once, and goes on
    // once it is released.
    let began = started_at(&web);
    let mut waiting = Watched::spawn(&mut d.command("restart", &["web", "--lock-wait", "2m"]));
    let said = "local: web: waiting for its lock, held by a-test-operator";
    waiting.wait_for(said, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        waiting.child.try_wait().expect("its status").is_none(),
        "the run did not wait for the lock"
    );
    assert_eq!(
        started_at(&web),
        began,
        "web was touched under another's lock"
    );
    release(&d, lock);
    let (code, stderr) = waiting.finish(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("waiting for its lock").count(),
        1,
        "{stderr}"
    );
    assert_ne!(started_at(&web), began, "web was not restarted");
    d.assert_one_live_and_no_leftovers("web", "after the wait");

    // A deploy that changes web waits the same way (its recovery of web
    // is where it meets the lock), then swaps.
    let lock = d.take_lock("web");
    let mut deploy = d.command("deploy", &["web", "--lock-wait", "2m"]);
    deploy.env("BOOTSTRAP_SLEEP", "0.1");
    let mut waiting = Watched::spawn(&mut deploy);
    waiting.wait_for(said, Duration::from_secs(60));
    release(&d, lock);
    let (code, stderr) = waiting.finish(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        d.containers().contains_key(&d.container("web.kolla-gen-1")),
        "web was not swapped: {stderr}"
    );
    d.assert_one_live_and_no_leftovers("web", "after the deploy's wait");

    // Past its limit: exit 4, the holder named, nothing touched.
    let began = started_at(&web);
    let lock = d.take_lock("web");
    let since = Instant::now();
    let output = d.kolla("restart", &["web", "--lock-wait", "2s"]);
    let waited = since.elapsed();
    expect_exit(&output, 4, &[holder, "(still, after waiting 2s for it)"]);
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(30), "gave up after {waited:?}");
    assert_eq!(started_at(&web), began);
    release(&d, lock);
}

#[test]
fn a_pull_of_one_service_fetches_its_images_alone() {
    let registry = Registry::start();
    let d = Deployment::of(Sandbox::new("one-pull"), "one-pull", "compose", "").on_shared_busybox();
    let pushed = d
        .images
        .build_command(&["^fx-base$", "--registry", &registry.address, "--push"])
        .bounded_output()
        .expect("run kolla build");
    assert!(pushed.status.success(), "{}", describe(&pushed));
    // In the registry only: the pull must fetch it.
    let image = OwnTag(format!(
        "{}/{}",
        registry.address,
        d.images.image_ref("fx-base")
    ));
    runtime()
        .block_on(d.images.engine.remove_image(&image.0, true))
        .expect("remove the local copy");
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        format!(
            "services:\n  fetched:\n    image: {}\n    command: [sleep, \"3600\"]\n  local:\n    image: ${{IMAGE}}\n    command: [sleep, \"3600\"]\n",
            image.0
        ),
    )
    .expect("compose file");

    let output = d.kolla("pull", &["fetched"]);
    expect_exit(&output, 0, &[&format!("pulling {}", image.0)]);
    assert!(
        stdout_of(&output).contains("node local: 1 images pulled"),
        "{}",
        describe(&output)
    );
    assert!(
        !common::stderr(&output).contains(d.env("IMAGE")),
        "the other service's image was pulled too: {}",
        describe(&output)
    );
    assert!(d.images.image(&image.0).is_some(), "not pulled");
    expect_exit(
        &d.kolla("pull", &["fetchd"]),
        2,
        &[
            "service \"fetchd\" is in no compose file of the selected nodes (did you mean \"fetched\"?); the services known, closest first: fetched, local",
        ],
    );
    assert!(d.containers().is_empty(), "a pull created containers");
}
