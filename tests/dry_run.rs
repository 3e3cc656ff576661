//! A dry run changes nothing on the engine: no container, volume or
//! network is created, started or removed, no image is pulled, and with
//! `privileged: auto` no probe container is made (the plan says a deploy
//! would probe). What the engine did is read from its own event log
//! (`common::EngineEvents`), scoped to the names this test chose. Verbs
//! without a dry run refuse the flag before reaching any engine.

mod common;

use common::*;

/// A node with `privileged: auto` and one privileged service, of the image
/// `image` names for the deployment.
fn privileged_auto(name: &str, image: impl FnOnce(&Deployment) -> String) -> Deployment {
    let d = Deployment::new(name);
    let image = image(&d);
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        format!(
            "services:\n  agent:\n    image: {image}\n    command: [sleep, \"3600\"]\n    privileged: true\n"
        ),
    )
    .expect("compose file");
    std::fs::write(
        &d.inventory,
        "nodes:\n  local:\n    roles: [controller]\n    privileged: auto\n",
    )
    .expect("inventory");
    d
}

#[test]
fn a_dry_run_under_privileged_auto_makes_no_probe_container() {
    let d = privileged_auto("dryprobe", |_| "${IMAGE}".to_string());
    let scope = [d.prefix.as_str()];
    let events = EngineEvents::start();
    let output = d.kolla("deploy", &["--dry-run"]);
    assert!(output.status.success(), "{}", describe(&output));
    let said = stderr(&output);
    assert!(
        said.contains("node local: privileged: auto: would probe at deploy"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout_of(&output).contains("1 changes planned (dry run: nothing changed)"),
        "{}",
        describe(&output)
    );
    events.assert_none(&scope, "deploy --dry-run");
    assert!(d.containers().is_empty());
    // Nor anything of kolla's own records.
    let state = d.images.dir.path().join("state");
    assert!(!state.exists(), "a dry run wrote {}", state.display());

    // The recorder sees what a real deploy does, the probe included.
    let events = EngineEvents::start();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let seen = events.caused(&scope);
    let probe = format!("{}kolla-probe-privileged-", d.prefix);
    assert!(
        seen.iter().any(|e| e.kind == "container"
            && e.action == "create"
            && e.attributes
                .get("name")
                .is_some_and(|n| n.starts_with(&probe))),
        "no probe container among the deploy's events:\n{}",
        seen.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A dry run of a deployed node under `auto` reads the mode from the
    // live container: nothing to probe, nothing to do.
    let events = EngineEvents::start();
    let output = d.kolla("deploy", &["--dry-run"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        !stderr(&output).contains("would probe"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout_of(&output).contains("0 changes planned"),
        "{}",
        describe(&output)
    );
    events.assert_none(&scope, "deploy --dry-run of a deployed node");
}

#[test]
fn a_dry_run_under_privileged_auto_without_the_image_plans_its_pull() {
    let d = privileged_auto("dryabsent", |d| {
        format!("{}/not-built-yet:1.0", d.images.namespace)
    });
    let namespace = format!("{}/", d.images.namespace);
    let scope = [d.prefix.as_str(), namespace.as_str()];
    let events = EngineEvents::start();
    let output = d.kolla("deploy", &["--dry-run"]);
    assert!(output.status.success(), "{}", describe(&output));
    let out = stdout_of(&output);
    assert!(
        out.contains("not-built-yet:1.0 (not on the node yet)"),
        "{out}"
    );
    assert!(
        stderr(&output).contains("would probe at deploy"),
        "{}",
        describe(&output)
    );
    events.assert_none(&scope, "deploy --dry-run");
}

/// Only deploy has a dry run: every other verb that changes a node refuses
/// the flag (exit 2) and touches nothing, rather than run for real.
#[test]
fn verbs_without_a_dry_run_refuse_the_flag_and_change_nothing() {
    let d = Deployment::new("drynone");
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        "services:\n  web:\n    image: ${IMAGE}\n    command: [sleep, \"3600\"]\n",
    )
    .expect("compose file");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let before = d.containers();
    assert_eq!(before.len(), 1, "{before:?}");
    let events = EngineEvents::start();
    for (verb, args) in [
        ("stop", vec![]),
        ("destroy", vec!["--purge-data", "--yes-i-really-mean-it"]),
        ("upgrade", vec!["web", "--tag", "2.0"]),
        ("rollback", vec!["web"]),
        ("pull", vec![]),
        ("recover", vec![]),
        ("unlock", vec!["web"]),
    ] {
        let mut args = args;
        args.push("--dry-run");
        let output = d.kolla(verb, &args);
        expect_exit(&output, 2, &["--dry-run"]);
    }
    events.assert_none(&[d.prefix.as_str()], "verbs given --dry-run");
    assert_eq!(d.containers(), before);
}

/// The recorder's scope, on events as the engine writes them.
#[test]
fn the_recorder_keeps_only_what_the_prefixes_name() {
    let event = |kind: &str, action: &str, id: &str, attributes: &[(&str, &str)]| EngineEvent {
        kind: kind.into(),
        action: action.into(),
        id: id.into(),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let all = vec![
        event("container", "create", "c1", &[("name", "kt-x-probe")]),
        event("container", "create", "c2", &[("name", "other")]),
        event("network", "connect", "n", &[("container", "c1")]),
        event("network", "connect", "n", &[("container", "c2")]),
        event("volume", "create", "kt-x-logs", &[]),
        event("volume", "mount", "v9", &[("container", "c1")]),
        event(
            "image",
            "pull",
            "kt-ns/absent:1",
            &[("name", "kt-ns/absent")],
        ),
        event("image", "pull", "busybox:1", &[("name", "busybox")]),
    ];
    let kept = in_scope(all, &["kt-x-", "kt-ns/"]);
    let kept: Vec<(&str, &str)> = kept
        .iter()
        .map(|e| (e.kind.as_str(), e.id.as_str()))
        .collect();
    assert_eq!(
        kept,
        vec![
            ("container", "c1"),
            ("network", "n"),
            ("volume", "kt-x-logs"),
            ("volume", "v9"),
            ("image", "kt-ns/absent:1"),
        ]
    );
}

/// `kolla deploy --dry-run | head -1`: the reader goes away before kolla
/// writes. Kolla neither panics (exit 101) nor stops: it says on stderr
/// how the run ended, as it would have. And a real deploy into a closed
/// pipe finishes its work.
#[test]
fn output_into_a_closed_pipe_neither_panics_nor_stops_the_work() {
    let d = Deployment::new("closedpipe");
    for args in [&["--dry-run"][..], &[][..]] {
        let (reader, writer) = nix::unistd::pipe().expect("a pipe");
        drop(reader);
        let output = d
            .command("deploy", args)
            .stdout(std::process::Stdio::from(writer))
            .bounded_output()
            .expect("run kolla");
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {said}");
        assert!(!said.contains("panicked"), "{args:?}: {said}");
    }
    let containers = d.containers();
    let web = containers
        .get(&d.container("web"))
        .map(|(_, state)| state.as_str());
    assert_eq!(web, Some("running"), "{containers:?}");
}

/// A replace for a changed config names what changed (the variable, the
/// rendered file, passwords.yml), from what the live container keeps of
/// its parts: keyed hashes, no value. The dry run changes nothing.
#[test]
fn a_dry_run_names_the_parts_of_a_config_that_changed() {
    let d = Deployment::new("dryparts");
    std::fs::create_dir_all(d.compose_dir.join("app")).expect("template folder");
    let write = |level: &str, greeting: &str, password: &str| {
        std::fs::write(
            d.compose_dir.join("app/app.conf"),
            format!("greeting = {greeting}\npassword = {{{{ passwords.app_password }}}}\n"),
        )
        .expect("template");
        std::fs::write(
            d.compose_dir.join("controller.yml"),
            format!(
                "services:\n  app:\n    image: ${{IMAGE}}\n    command: [sleep, \"3600\"]\n    environment: {{LEVEL: \"{level}\", KEPT: \"1\"}}\n    x-kolla:\n      config: {{src: app/, dest: /etc/app}}\n"
            ),
        )
        .expect("compose file");
        std::fs::write(
            d.images.config_dir.join("passwords.yml"),
            format!("app_password: {password}\n"),
        )
        .expect("passwords");
    };
    write("info", "hello", "first-secret-value");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let live = d.containers()[&d.container("app")].0.clone();

    let dry_run = |expected: &str| {
        let output = d.kolla("deploy", &["--dry-run"]);
        assert!(output.status.success(), "{}", describe(&output));
        let said = stdout_of(&output);
        let line = said
            .lines()
            .find(|l| l.contains("replace") && l.contains(" app "))
            .unwrap_or_else(|| panic!("no replace of app in:\n{said}"));
        assert!(
            line.ends_with(&format!("(config changed: {expected})")),
            "{line}"
        );
        assert!(!said.contains("second-secret-value"), "{said}");
        assert_eq!(
            d.containers()[&d.container("app")].0,
            live,
            "a dry run replaced it"
        );
    };
    write("debug", "hello", "first-secret-value");
    dry_run("environment LEVEL");
    write("debug", "bonjour", "first-secret-value");
    dry_run("environment LEVEL, file /etc/app/app.conf");
    write("info", "hello", "second-secret-value");
    dry_run("passwords.yml");
}
