//! `kolla deploy` and its companions against the real engine, on the
//! eleven-service busybox fixture (tests/fixtures/compose/controller.yml).

mod common;

use common::{Bounded, Deployment, describe, http_get, said_at, stderr};
use kolla::deploy::config_files::RenderedFile;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn deploy_is_idempotent_replaces_only_what_changed_and_keeps_data() {
    let d = Deployment::new("cycle");
    let web_port = d.env("WEB_PORT").to_string();
    let api_port = d.env("API_PORT").to_string();

    // Cold: every service, in dependency order, gates passed.
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let first = d.containers();
    let services = [
        "webdata",
        "web",
        "api",
        "migrate",
        "worker",
        "cache",
        "queue",
        "notifier",
        "logs-agent",
        "scheduler",
        "metrics",
    ];
    for service in services {
        let (_, state) = first
            .get(&d.container(service))
            .unwrap_or_else(|| panic!("{service} missing: {first:?}"));
        let expected = match service {
            "webdata" => "created",
            "migrate" => "exited",
            _ => "running",
        };
        assert_eq!(state, expected, "{service}");
    }
    assert_eq!(first.len(), services.len(), "{first:?}");
    assert_eq!(
        http_get(&web_port, "/index.html").as_deref(),
        Some("web local web version 1\n")
    );
    assert_eq!(
        http_get(&api_port, "/index.html").as_deref(),
        Some("hello\n")
    );
    assert_eq!(d.read_data("/data/boot.log"), "bootstrap\n");
    assert_eq!(d.read_data("/data/migrated"), "migrated\n");

    // Again: nothing to do, not one container touched.
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stdout(&output).contains("node local: up to date, nothing changed"),
        "{}",
        describe(&output)
    );
    assert_eq!(d.containers(), first);

    // One service's environment changes: only it is replaced, by a swap
    // that keeps the old container.
    let output = d
        .command("deploy", &[])
        .env("API_GREETING", "bonjour")
        .bounded_output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let second = d.containers();
    for (name, (id, _)) in &first {
        if name == &d.container("api") {
            assert_ne!(&second[name].0, id, "api was not replaced");
        } else {
            assert_eq!(&second[name].0, id, "{name} was touched");
        }
    }
    assert_eq!(
        second[&d.container("api.kolla-gen-1")],
        (first[&d.container("api")].0.clone(), "exited".to_string())
    );
    assert_eq!(
        http_get(&api_port, "/index.html").as_deref(),
        Some("bonjour\n")
    );

    // A config template changes: web is replaced, its bootstrap runs again,
    // the data container and its volume stay.
    std::fs::write(
        d.compose_dir.join("web/index.html"),
        "web {{ node_name }} version 2\n",
    )
    .unwrap();
    let output = d
        .command("deploy", &[])
        .env("API_GREETING", "bonjour")
        .bounded_output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        http_get(&web_port, "/index.html").as_deref(),
        Some("web local version 2\n")
    );
    assert_eq!(
        d.containers()[&d.container("webdata")].0,
        first[&d.container("webdata")].0
    );
    assert_eq!(d.read_data("/data/boot.log"), "bootstrap\nbootstrap\n");

    // ps --output json says what the engine says. kolla's gate ran the
    // healthcheck itself; the engine's own first check comes an interval
    // (1 s here) after the start, so its verdict is awaited, briefly.
    let rows: Vec<serde_json::Value> =
        common::eventually("the engine's own check of web", 10, || {
            let output = d.kolla("ps", &["--output", "json"]);
            assert!(output.status.success(), "{}", describe(&output));
            let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
            let web = rows.iter().find(|r| r["container"] == d.container("web"))?;
            (web["health"] == "healthy").then_some(rows)
        });
    let engine = d.containers();
    assert_eq!(rows.len(), engine.len());
    for row in &rows {
        let name = row["container"].as_str().unwrap();
        assert_eq!(
            row["state"].as_str(),
            Some(engine[name].1.as_str()),
            "{name}"
        );
        assert_eq!(row["node"], "local");
    }
    let web_row = rows
        .iter()
        .find(|r| r["container"] == d.container("web"))
        .unwrap();
    assert_eq!(web_row["generation"], 2);
    assert_eq!(web_row["health"], "healthy");

    // Stop, then destroy: data survives both; purge removes it.
    let output = d.kolla("stop", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        d.containers().values().all(|(_, state)| state != "running"),
        "{:?}",
        d.containers()
    );
    assert_eq!(d.read_data("/data/migrated"), "migrated\n");
    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let left: Vec<String> = d.containers().into_keys().collect();
    assert_eq!(left, vec![d.container("webdata")]);
    assert_eq!(d.read_data("/data/boot.log"), "bootstrap\nbootstrap\n");
    // The data container's volume, by name.
    let volumes = |d: &Deployment| -> Vec<String> {
        let output = std::process::Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=kolla.project={}", d.project))
            .bounded_output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let data_volumes = volumes(&d);
    assert!(
        data_volumes
            .iter()
            .any(|v| v.starts_with(&d.container("webdata"))),
        "{data_volumes:?}"
    );
    let output = d.kolla("destroy", &["--purge-data", "--yes-i-really-mean-it"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(d.containers().is_empty());
    for volume in &data_volumes {
        let inspect = std::process::Command::new("docker")
            .args(["volume", "inspect", volume])
            .bounded_output()
            .unwrap();
        assert!(!inspect.status.success(), "purge left the volume {volume}");
    }
    assert!(volumes(&d).is_empty());
    // Deploying again starts from scratch: the old data is gone.
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.read_data("/data/boot.log"), "bootstrap\n");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let d = Deployment::new("dryrun");
    let output = d.kolla("deploy", &["--dry-run"]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(text.contains("create-data  webdata"), "{text}");
    // 11 containers and the named volume the file declares.
    let volume = format!("{}logs ", d.prefix);
    assert!(
        text.lines().any(|l| l.contains("create")
            && l.contains(&volume)
            && l.ends_with("(named in a compose file, not on the node)")),
        "{text}"
    );
    assert!(
        text.contains("level 0:") && text.contains("level 3:"),
        "{text}"
    );
    assert!(
        text.contains("12 changes planned (dry run: nothing changed)"),
        "{text}"
    );
    assert!(d.containers().is_empty());
}

/// `-v` shows a bootstrap job's output though it succeeded; `--quiet`
/// drops the step-by-step progress and keeps the result.
#[test]
fn verbose_shows_a_jobs_output_and_quiet_only_the_result() {
    let d = Deployment::new("verbosity");
    edit(
        &d,
        "echo bootstrap >> /data/boot.log",
        "echo kolla-bootstrap-said-$((40 + 2)); echo bootstrap >> /data/boot.log",
    );
    let loud = d.kolla("deploy", &["-v"]);
    assert!(loud.status.success(), "{}", describe(&loud));
    let said = common::stderr(&loud);
    assert!(said.contains("web: creating"), "-v: {said}");
    assert!(
        said.contains("exited 0; its last lines") && said.contains("| kolla-bootstrap-said-42"),
        "-v: {said}"
    );

    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let quiet = d.kolla("deploy", &["--quiet"]);
    assert!(quiet.status.success(), "{}", describe(&quiet));
    let said = common::stderr(&quiet);
    assert!(
        !said.contains("creating") && !said.contains("kolla-bootstrap-said"),
        "--quiet: {said}"
    );
    assert!(
        stdout(&quiet).contains("create"),
        "--quiet still says what was done: {}",
        describe(&quiet)
    );
}

#[test]
fn a_healthcheck_that_never_passes_fails_the_deploy_with_its_logs() {
    let d = Deployment::new("unhealthy");
    let file = d.compose_dir.join("controller.yml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "test: [CMD, wget, -q, -O, /dev/null, \"http://127.0.0.1:${WEB_PORT}/index.html\"]",
        "test: [CMD-SHELL, \"echo probing web; exit 1\"]",
    );
    let text = text.replace(
        "command: [httpd, -f, -p, \"127.0.0.1:${WEB_PORT}\", -h, /etc/web]",
        "command: [sh, -c, \"echo web is up but broken; exec sleep 3600\"]",
    );
    std::fs::write(&file, text).unwrap();
    let output = d.kolla("deploy", &["--health-timeout", "5"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains("service web"), "{err}");
    assert!(
        err.contains("healthcheck failed") || err.contains("not healthy after 5s"),
        "{err}"
    );
    assert!(
        err.contains("web is up but broken"),
        "the container's logs are not shown: {err}"
    );
    // What depends on web was never created.
    assert!(!d.containers().contains_key(&d.container("api")));
}

/// The gate runs the service's own check itself: with the engine's first
/// check a minute after the start, and the check in the compose spec's
/// string form (a shell line), web is gated, and the services that wait
/// for it healthy are started, long before the engine has looked.
#[test]
fn the_gate_runs_the_check_itself_not_waiting_for_the_engines_interval() {
    let d = Deployment::new("selfprobe");
    let file = d.compose_dir.join("controller.yml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "      test: [CMD, wget, -q, -O, /dev/null, \"http://127.0.0.1:${WEB_PORT}/index.html\"]\n      interval: 1s",
        "      test: \"wget -q -O /dev/null http://127.0.0.1:${WEB_PORT}/index.html || exit 1\"\n      interval: 60s",
    );
    assert!(
        text.contains("interval: 60s"),
        "the fixture changed:\n{text}"
    );
    std::fs::write(&file, text).unwrap();
    let started = std::time::Instant::now();
    let output = d.kolla("deploy", &[]);
    let took = started.elapsed();
    assert!(output.status.success(), "{}", describe(&output));
    // What a client sees, at once: web, and api, which waited for web
    // to be healthy.
    assert!(http_get(d.env("WEB_PORT"), "/index.html").is_some());
    assert_eq!(
        http_get(d.env("API_PORT"), "/index.html").as_deref(),
        Some("hello\n")
    );
    assert!(
        took < std::time::Duration::from_secs(60),
        "the deploy took {took:?}: it waited for the engine's first check"
    );
    // And the engine itself has not checked web yet: the gate's verdict
    // was kolla's own run of the check.
    let ps = d.kolla("ps", &["--output", "json"]);
    assert!(ps.status.success(), "{}", describe(&ps));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&ps.stdout).unwrap();
    let web = rows
        .iter()
        .find(|r| r["container"] == d.container("web"))
        .expect("web in ps");
    assert_eq!(web["health"], "starting", "{web}");
}

#[test]
fn a_missing_image_stops_before_any_change() {
    let d = Deployment::new("noimage");
    let output = d
        .command("deploy", &[])
        .env("IMAGE", format!("{}/no-such-image:zed", d.images.namespace))
        .bounded_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("no-such-image:zed is not on the node"),
        "{err}"
    );
    assert!(d.containers().is_empty());
}

/// Bad input: exit 2, an error naming the file (and line or service), and
/// no container created.
fn refused(d: &Deployment, args: &[&str], expected: &[&str]) {
    let output = d.kolla("deploy", args);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let err = stderr(&output);
    for want in expected {
        assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    }
    assert!(d.containers().is_empty(), "{:?}", d.containers());
}

fn edit(d: &Deployment, from: &str, to: &str) {
    let file = d.compose_dir.join("controller.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(from), "fixture lacks {from:?}");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn bad_compose_files_are_refused_before_anything_runs() {
    let d = Deployment::new("badinput");
    let original = std::fs::read_to_string(d.compose_dir.join("controller.yml")).unwrap();
    let reset = || std::fs::write(d.compose_dir.join("controller.yml"), &original).unwrap();

    edit(&d, "  cache:\n", "  cache:\n    image: [unclosed\n");
    refused(&d, &[], &["controller.yml", "line"]);
    reset();
    edit(
        &d,
        "    stop_grace_period: 2s\n",
        "    stop_grace_period: 2s\n    stop_signall: TERM\n",
    );
    refused(
        &d,
        &[],
        &["controller.yml", "unknown field `stop_signall`", "line"],
    );
    reset();
    edit(
        &d,
        "    restart: unless-stopped\n",
        "    restart: [unless-stopped]\n",
    );
    refused(&d, &[], &["controller.yml", "line"]);
    reset();
    edit(
        &d,
        "    volumes_from: [webdata]\n    depends_on: [web]\n",
        "    volumes_from: [nodata]\n    depends_on: [web]\n",
    );
    refused(
        &d,
        &[],
        &[
            "controller.yml",
            "service migrate",
            "volumes_from names \"nodata\"",
        ],
    );
    reset();
    edit(
        &d,
        "  cache:\n    <<: *busybox\n",
        "  cache:\n    <<: *busybox\n    depends_on: [scheduler]\n",
    );
    refused(&d, &[], &["cycle", "cache", "scheduler"]);
    reset();
    // A required variable left unset.
    let output = d
        .command("deploy", &[])
        .env_remove("IMAGE")
        .bounded_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("required variable IMAGE is not set"),
        "{}",
        describe(&output)
    );
    // An unknown node or role.
    refused(
        &d,
        &["--node", "storage"],
        &["no node or role named \"storage\"", "nodes: local"],
    );
    assert!(d.containers().is_empty());
}

#[test]
fn an_unreachable_node_is_a_clear_error() {
    let d = Deployment::new("unreachable");
    let missing = d.images.dir.path().join("nowhere.sock");
    std::fs::write(
        &d.inventory,
        format!(
            "nodes:\n  local:\n    docker: unix://{}\n    roles: [controller]\n",
            missing.display()
        ),
    )
    .unwrap();
    let output = d.kolla("deploy", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("node local") && err.contains("cannot reach the Docker engine"),
        "{err}"
    );
    assert!(err.contains("nowhere.sock"), "{err}");
}

#[test]
fn genpwd_writes_a_private_passwords_file() {
    let d = Deployment::new("genpwd");
    let output = d.kolla("genpwd", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let path = d.images.config_dir.join("passwords.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("keystone_admin_password: \""), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let output = d.kolla("genpwd", &[]);
    assert!(
        stdout(&output).contains("0 passwords generated"),
        "{}",
        describe(&output)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn prechecks_find_a_taken_port_and_a_missing_image() {
    let d = Deployment::new("prechecks");
    let output = d.kolla("prechecks", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "local: ok   port {} free for web",
            d.env("WEB_PORT")
        )),
        "{text}"
    );
    assert!(text.contains("local: ok   engine "), "{text}");
    assert!(text.contains("GiB free under "), "{text}");

    // Something else listens on api's port: prechecks fail and say which.
    let taken = std::net::TcpListener::bind(("0.0.0.0", d.env("API_PORT").parse::<u16>().unwrap()))
        .unwrap();
    let output = d.kolla("prechecks", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "local: FAIL port {} that api needs is taken",
            d.env("API_PORT")
        )),
        "{text}"
    );
    drop(taken);

    // Once deployed, a service's own ports are not a conflict.
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let output = d.kolla("prechecks", &[]);
    assert!(output.status.success(), "{}", describe(&output));

    let output = d
        .command("prechecks", &[])
        .env("IMAGE", "kolla-test-nowhere/none:1")
        .bounded_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stdout(&output).contains("FAIL image kolla-test-nowhere/none:1 missing"),
        "{}",
        describe(&output)
    );
}

#[test]
fn shipped_compose_files_are_valid_for_docker_compose_and_kolla() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        root.join("compose/controller.yml"),
        root.join("compose/compute.yml"),
        root.join("tests/fixtures/compose/controller.yml"),
        root.join("tests/fixtures/swap/controller.yml"),
    ];
    let vars = [
        ("IMAGE_PREFIX", "kolla/"),
        ("TAG", "zed"),
        ("IMAGE", "busybox"),
        ("WEB_PORT", "8080"),
        ("API_PORT", "8081"),
        ("METRICS_PORT", "8082"),
    ];
    for file in &files {
        let output = std::process::Command::new("docker-compose")
            .arg("-f")
            .arg(file)
            .args(["config", "-q"])
            .envs(vars)
            .bounded_output()
            .expect("docker-compose is installed (tools/setup)");
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            describe(&output)
        );
        let variables = kolla::config::compose::Variables {
            environment: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            globals: Default::default(),
        };
        kolla::config::compose::load(file, &variables).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// What the engine makes of a privileged root container of `image`: true
/// when it starts. The test's own probe, independent of kolla's.
fn engine_allows_privileged(d: &Deployment, image: &str) -> bool {
    let status = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--privileged",
            "--user",
            "0",
            "--entrypoint",
            "true",
        ])
        .args(["--label", &format!("kolla.test={}", d.images.namespace)])
        .arg(image)
        .bounded_output()
        .expect("run docker");
    status.status.success()
}

/// (Privileged, CapAdd, SecurityOpt) of a container, as the engine has it.
fn privileges_of(container: &str) -> (bool, String, String) {
    let output = std::process::Command::new("docker")
        .args(["inspect", "-f"])
        .arg("{{.HostConfig.Privileged}}|{{.HostConfig.CapAdd}}|{{.HostConfig.SecurityOpt}}")
        .arg(container)
        .bounded_output()
        .expect("run docker inspect");
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let mut parts = text.splitn(3, '|');
    let privileged = parts.next() == Some("true");
    let caps = parts.next().unwrap_or_default().to_string();
    let security = parts.next().unwrap_or_default().to_string();
    (privileged, caps, security)
}

#[test]
fn privileged_services_run_in_each_mode_the_engine_supports() {
    let d = Deployment::new("privileged");
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        "services:\n  libvirt:\n    image: ${IMAGE}\n    privileged: true\n    command: [sleep, \"3600\"]\n",
    )
    .unwrap();
    let native_works = engine_allows_privileged(&d, d.env("IMAGE"));
    // Each engine takes one half only; the other is the pure decision's
    // unit tests (deploy::privileged, verbs::prechecks).
    common::tell(if native_works {
        "privileged test: this engine starts --privileged containers: the native half ran; \
         the refusing half (explicit under auto, native refused) is covered by unit tests only"
    } else {
        "privileged test: this engine refuses --privileged: the refusing half ran (explicit \
         under auto, native refused); the native half is covered by unit tests only"
    });
    let inventory = |mode: &str| {
        std::fs::write(
            &d.inventory,
            format!("nodes:\n  local:\n    roles: [controller]\n    privileged: {mode}\n"),
        )
        .unwrap();
    };
    let container = d.container("libvirt");

    // auto: whatever this engine does, the service runs, in the matching form.
    inventory("auto");
    let output = d.kolla("prechecks", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.containers()[&container].1, "running");
    let (privileged, caps, security) = privileges_of(&container);
    assert_eq!(privileged, native_works, "{}", describe(&output));
    if !native_works {
        assert!(
            caps.contains("SYS_ADMIN") && caps.contains("NET_ADMIN"),
            "{caps}"
        );
        assert!(security.contains("seccomp=unconfined"), "{security}");
        assert!(stderr(&output).contains("privileged: auto: the engine refuses --privileged"));
    }
    let probes = d
        .containers()
        .keys()
        .filter(|n| n.contains("probe"))
        .count();
    assert_eq!(probes, 0, "the probe container is left behind");
    // Deployed again: the live container says which mode it was made
    // under, so nothing is probed and nothing changes.
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stdout(&output).contains("up to date, nothing changed"),
        "{}",
        describe(&output)
    );
    assert!(
        !stderr(&output).contains("privileged: auto"),
        "{}",
        describe(&output)
    );

    // explicit: spelled out, whatever the engine could do; a change of
    // mode replaces the container.
    inventory("explicit");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let (privileged, caps, _) = privileges_of(&container);
    assert!(!privileged);
    assert!(caps.contains("SYS_ADMIN"), "{caps}");
    assert_eq!(d.containers()[&container].1, "running");

    // native on an engine that refuses: prechecks say what to set, and a
    // deploy fails and leaves the explicit container serving.
    if !native_works {
        inventory("native");
        let output = d.kolla("prechecks", &[]);
        assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
        assert!(
            stdout(&output).contains("set `privileged: explicit` (or `auto`) on node local"),
            "{}",
            describe(&output)
        );
        let output = d.kolla("deploy", &[]);
        assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
        assert_eq!(d.containers()[&container].1, "running");
        assert!(!privileges_of(&container).0);
    }
}

/// The shipped all-in-one, rendered as a deploy renders it (no engine
/// needed) with `secrets`.
fn shipped_all_in_one(
    secrets: &std::collections::BTreeMap<String, String>,
) -> Result<kolla::deploy::desired::Desired, String> {
    use kolla::config::{Globals, Inventory, compose::Variables};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let inventory = Inventory::load(None).unwrap();
    let node = &inventory.nodes[0];
    let globals = Globals::default();
    let variables = Variables {
        environment: Default::default(),
        globals: globals.compose_variables(),
    };
    let files =
        kolla::deploy::desired::load_files(node, &root.join("compose"), &variables).unwrap();
    kolla::deploy::desired::desired(node, &files, &globals, secrets, &[]).map_err(|e| e.to_string())
}

/// Every template renders, every config.json is JSON with the service's
/// own command, and the admin password reaches only the bootstrap jobs of
/// the services that register in Keystone: never a long-running container.
#[test]
fn shipped_all_in_one_templates_render_for_every_service() {
    use kolla::config::passwords;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("passwords.yml");
    passwords::generate(&secrets, passwords::TEMPLATE).unwrap();
    let secrets = passwords::load(&secrets).unwrap();
    let desired = shipped_all_in_one(&secrets).unwrap_or_else(|e| panic!("{e}"));
    let admin = &secrets["keystone_admin_password"];
    let carries_admin = |files: &[RenderedFile]| {
        files
            .iter()
            .any(|file| String::from_utf8_lossy(&file.bytes).contains(admin.as_str()))
    };
    let mut registering = Vec::new();
    for (service, files) in desired.files.iter().filter(|(_, f)| !f.is_empty()) {
        let Some(config) = files.iter().find(|f| f.path.ends_with("/config.json")) else {
            panic!("{service} has no config.json");
        };
        let config: serde_json::Value = serde_json::from_slice(&config.bytes)
            .unwrap_or_else(|e| panic!("{service}: config.json is not JSON: {e}"));
        let command = config["command"].as_str().unwrap_or_default();
        let mut words = command.split_whitespace();
        let mut program = words.next().unwrap_or_default();
        assert!(
            !program.is_empty(),
            "{service}: config.json names no command"
        );
        // The DHCP and L3 agents start through a script that sets how their
        // namespaces plug into the switch: the agent is its first argument.
        if program == "/etc/neutron/kolla-ns-agent.sh" {
            program = words.next().unwrap_or_default();
        }
        // The L2 agents' start script makes the provider interface first.
        let own_program = (service.starts_with("nova-") && service != "nova-libvirt")
            || (service.starts_with("neutron-") && service != "neutron-openvswitch-agent");
        if own_program {
            assert_eq!(program, service, "{service} runs another service's program");
        }
        assert!(
            !carries_admin(files),
            "{service}: the admin password is in its long-running container's files"
        );
        if carries_admin(&desired.services[service].job_files) {
            registering.push(service.as_str());
        }
        for file in files.iter().chain(&desired.services[service].job_files) {
            let (path, text) = (&file.path, String::from_utf8_lossy(&file.bytes));
            assert!(
                !text.contains("{{") && !text.contains("{%"),
                "{service}: {path} is not fully rendered"
            );
        }
    }
    assert_eq!(
        registering,
        [
            "glance-api",
            "heat-api",
            "keystone",
            "neutron-server",
            "nova-api",
            "placement-api"
        ],
        "the admin password must reach only the bootstrap jobs of the services that register in Keystone"
    );
}

/// Percent-decoding, for the URLs of the rendered files.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("hex after %"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// Passwords full of quotes, dollars, backslashes and URL delimiters reach
/// each shipped file's context intact: a shell script exports exactly the
/// value, ini values and URLs decode to it, SQL literals hold it, and no
/// file gains a line. A value a context cannot hold is refused naming the
/// file and line; a line break is refused as soon as passwords.yml is read,
/// naming the key.
#[test]
fn hostile_passwords_are_escaped_in_every_shipped_template() {
    use kolla::config::passwords;
    const HOSTILE: &str = r#"p'w"d\$(touch /tmp/kolla-pwned)`id`;#&%@:/?x$HOME"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords.yml");
    passwords::generate(&path, passwords::TEMPLATE).unwrap();
    let mut secrets = passwords::load(&path).unwrap();
    let generated = secrets.clone();
    // RabbitMQ's files have no escaping: their two keep generated values.
    for (name, value) in secrets.iter_mut() {
        if !name.starts_with("rabbitmq_") {
            *value = format!("{HOSTILE}{name}");
        }
    }
    let desired = shipped_all_in_one(&secrets).unwrap_or_else(|e| panic!("{e}"));
    let owner_of = |text: &str| -> Option<String> {
        secrets
            .iter()
            .filter(|(_, v)| text.contains(v.as_str()))
            .map(|(_, v)| v.clone())
            .max_by_key(|v| v.len())
    };
    let (mut checked, mut python_literals) = (0, 0);
    for (service, wanted) in &desired.services {
        let files = desired.files[service].iter().chain(&wanted.job_files);
        for file in files {
            let (path, text) = (&file.path, String::from_utf8_lossy(&file.bytes));
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("export ")
                    && let Some((var, _)) = rest.split_once('=')
                    && !var.contains(' ')
                {
                    let out = std::process::Command::new("bash")
                        .arg("-c")
                        .arg(format!("{line}\nprintf %s \"${var}\""))
                        .bounded_output()
                        .unwrap();
                    let value = String::from_utf8_lossy(&out.stdout).to_string();
                    if var.ends_with("PASSWORD") {
                        assert!(
                            secrets.values().any(|v| *v == value),
                            "{service} {path}: {var} is {value:?}"
                        );
                        checked += 1;
                    }
                }
                if let Some(value) = line
                    .strip_prefix("password = ")
                    .or_else(|| line.strip_prefix("memcache_secret_key = "))
                {
                    let value = value.replace("$$", "$");
                    assert!(
                        secrets.values().any(|v| *v == value),
                        "{service} {path}: {line}"
                    );
                    checked += 1;
                }
                if let Some((_, after)) = line.split_once("://")
                    && let Some((userinfo, _)) = after.rsplit_once('@')
                    && let Some((_, password)) = userinfo.split_once(':')
                {
                    let value = percent_decode(password);
                    assert!(
                        secrets.values().any(|v| *v == value),
                        "{service} {path}: {line}"
                    );
                    checked += 1;
                }
                // The dashboard's Django settings: a Python string literal,
                // read back by Python itself.
                if let Some(literal) = line.strip_prefix("SECRET_KEY = ") {
                    let out = std::process::Command::new("python3")
                        .args([
                            "-c",
                            "import ast, sys; sys.stdout.write(ast.literal_eval(sys.argv[1]))",
                            literal,
                        ])
                        .bounded_output()
                        .unwrap();
                    let value = String::from_utf8_lossy(&out.stdout).to_string();
                    assert!(
                        secrets.values().any(|v| *v == value),
                        "{service} {path}: {line} reads as {value:?}"
                    );
                    python_literals += 1;
                }
                if let Some((_, literal)) = line.split_once("IDENTIFIED BY '") {
                    let literal = literal.strip_suffix("';").expect("a closed literal");
                    let value = literal.replace("''", "'").replace("\\\\", "\\");
                    assert!(
                        secrets.values().any(|v| *v == value),
                        "{service} {path}: {line}"
                    );
                    assert!(!literal.replace("''", "").contains('\''), "{line}");
                    checked += 1;
                }
            }
            if path.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{service} {path}: {e}"));
            }
            // A hostile value never appears unescaped where a quote would end it.
            if let Some(value) = owner_of(&text) {
                assert!(
                    !path.ends_with(".sh"),
                    "{service} {path} holds {value:?} raw"
                );
            }
        }
    }
    // Each service's copy of its files counts (165 uses when this was
    // written): far fewer means a kind of use stopped being recognised.
    assert!(checked >= 100, "only {checked} secret uses were checked");
    assert_eq!(
        python_literals, 1,
        "the dashboard's secret key was not read back"
    );
    assert!(!std::path::Path::new("/tmp/kolla-pwned").exists());

    // A value RabbitMQ's file cannot hold: refused with the file and line.
    let mut refused = generated.clone();
    refused.insert("rabbitmq_password".into(), "a$b".into());
    let err = shipped_all_in_one(&refused).unwrap_err();
    assert!(err.contains("rabbitmq.conf:4"), "{err}");
    assert!(err.contains("plain"), "{err}");
    assert!(!err.contains("a$b"), "{err}");

    // A line break is refused as passwords.yml is read, naming the key.
    std::fs::write(&path, "nova_keystone_password: \"a\\nb\"\n").unwrap();
    let err = passwords::load(&path).unwrap_err().to_string();
    assert!(err.contains("nova_keystone_password"), "{err}");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
}

#[test]
fn a_slow_service_holds_up_only_what_depends_on_it() {
    let d = Deployment::new("schedule");
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        r#"
x-healthy: &healthy
  interval: 500ms
  retries: 60
services:
  slow:
    image: ${IMAGE}
    command: [sh, -c, "sleep 4; touch /ready; exec sleep 3600"]
    healthcheck: {<<: *healthy, test: [CMD, test, -f, /ready]}
  fast:
    image: ${IMAGE}
    command: [sleep, "3600"]
    healthcheck: {<<: *healthy, test: [CMD, "true"]}
  after-fast:
    image: ${IMAGE}
    command: [sleep, "3600"]
    depends_on: {fast: {condition: service_healthy}}
  after-slow:
    image: ${IMAGE}
    command: [sleep, "3600"]
    depends_on: {slow: {condition: service_healthy}}
"#,
    )
    .unwrap();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let err = stderr(&output);
    let slow_healthy = said_at(&err, "slow: healthy after");
    let fast_healthy = said_at(&err, "fast: healthy after");
    let after_fast = said_at(&err, "after-fast: creating");
    let after_slow = said_at(&err, "after-slow: creating");
    // In the same dependency level as slow, fast does not make after-fast
    // wait for slow.
    assert!(after_fast >= fast_healthy, "{err}");
    assert!(
        after_fast < slow_healthy,
        "after-fast waited for slow:\n{err}"
    );
    assert!(after_slow >= slow_healthy, "{err}");
    for service in ["slow", "fast", "after-fast", "after-slow"] {
        assert_eq!(d.containers()[&d.container(service)].1, "running");
    }
}

/// Passwords reach a container only in its rendered files: never in labels,
/// environment, command line, kolla's output, `ps --output json` or the
/// history. The long-running container gets its files without the secrets
/// only its bootstrap job needs.
#[test]
fn passwords_show_nowhere_but_in_the_rendered_files() {
    let d = Deployment::new("secrets");
    std::fs::create_dir_all(d.compose_dir.join("app")).unwrap();
    std::fs::write(
        d.compose_dir.join("app/app.conf"),
        "[auth]\npassword = {{ passwords.app_password | ini }}\n",
    )
    .unwrap();
    std::fs::write(
        d.compose_dir.join("app/job.sh"),
        "{% if kolla_job %}ADMIN={{ passwords.app_admin_password | shell }}\ntest -n \"$ADMIN\"\n{% endif %}echo job done\n",
    )
    .unwrap();
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        r#"
services:
  app:
    image: ${IMAGE}
    command: [sleep, "3600"]
    x-kolla:
      config: {src: app/, dest: /etc/app}
      bootstrap: {command: [sh, /etc/app/job.sh]}
"#,
    )
    .unwrap();
    let write_passwords = |app: &str, admin: &str| {
        std::fs::write(
            d.images.config_dir.join("passwords.yml"),
            format!(
                "app_password: {}\napp_admin_password: {}\n",
                serde_json::to_string(app).unwrap(),
                serde_json::to_string(admin).unwrap()
            ),
        )
        .unwrap();
    };
    let first = ("Pw$first'quoted\"value", "Admin'only;$(id)-secret");
    let second = ("Pw$second`changed`value", "Admin'only;$(id)-secret");
    write_passwords(first.0, first.1);
    let deploy1 = d.kolla("deploy", &[]);
    assert!(deploy1.status.success(), "{}", describe(&deploy1));
    let exec = |path: &str| {
        let output = std::process::Command::new("docker")
            .args(["exec", &d.container("app"), "cat", path])
            .bounded_output()
            .unwrap();
        assert!(output.status.success(), "{}", describe(&output));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    // The password is delivered, escaped for its file...
    assert_eq!(
        exec("/etc/app/app.conf"),
        "[auth]\npassword = Pw$$first'quoted\"value\n"
    );
    // ...and the job's secret is not in the long-running container.
    assert_eq!(exec("/etc/app/job.sh"), "echo job done\n");

    // A changed password replaces the container (the hash covers it).
    write_passwords(second.0, second.1);
    let deploy2 = d.kolla("deploy", &[]);
    assert!(deploy2.status.success(), "{}", describe(&deploy2));
    assert!(
        stdout(&deploy2).contains("1 replace"),
        "{}",
        describe(&deploy2)
    );
    assert_eq!(
        exec("/etc/app/app.conf"),
        "[auth]\npassword = Pw$$second`changed`value\n"
    );
    let ps = d.kolla("ps", &["--output", "json"]);
    assert!(ps.status.success(), "{}", describe(&ps));
    let history = d.kolla("history", &["app", "--output", "json"]);
    assert!(history.status.success(), "{}", describe(&history));
    let log = std::fs::read_to_string(kolla::deploy::history::path(
        &d.images.dir.path().join("state"),
    ))
    .expect("the history file");
    let texts: Vec<(&str, String)> = [
        ("the first deploy", &deploy1),
        ("the second deploy", &deploy2),
        ("ps --output json", &ps),
        ("history --output json", &history),
    ]
    .into_iter()
    .map(|(what, o)| (what, format!("{}{}", stdout(o), stderr(o))))
    .chain([("the history file", log)])
    .collect();
    common::assert_no_secret_shown(&d, &[first.0, first.1, second.0, "Pw$$first"], &texts);
}
