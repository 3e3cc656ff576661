//! `kolla upgrade` and `kolla rollback` against the real engine: a
//! host-network HTTP service whose image tag decides what it serves, with
//! its data in a data container. Every failure leaves v1 serving and the
//! data intact.

mod common;

use common::{Bounded, Deployment, describe, docker, expect_exit, said_at, stderr, volume_exists};

fn setup(name: &str, tags: &[&str]) -> Deployment {
    common::swap_deployment(name, tags)
}

fn serving(d: &Deployment) -> Option<String> {
    d.serving()
}

fn deploy_v1(d: &Deployment) {
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(serving(d).as_deref(), Some("version 1.0.0\n"));
}

/// v1 serves, the data is as before, and no stray swap container is left.
fn v1_intact(d: &Deployment, boot_log: &str) {
    assert_eq!(serving(d).as_deref(), Some("version 1.0.0\n"));
    assert_eq!(d.read_data("/data/boot.log"), boot_log);
    let names: Vec<String> = d.containers().into_keys().collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".kolla-new") || n.ends_with(".kolla-lock")),
        "{names:?}"
    );
}

#[test]
fn upgrade_then_rollback_keeps_data_and_history() {
    let d = setup("updown", &["1.0.0", "2.0.0"]);
    deploy_v1(&d);
    let v1_id = d.containers()[&d.container("web")].0.clone();

    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("web upgraded, dark window"),
        "{}",
        describe(&output)
    );
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));
    let after = d.containers();
    assert_eq!(
        after[&d.container("web.kolla-gen-1")],
        (v1_id.clone(), "exited".to_string())
    );
    assert_eq!(d.read_data("/data/boot.log"), "bootstrap\nbootstrap\n");

    // Downgrading needs the flag; nothing changes without it.
    d.expect(
        "upgrade",
        &["web", "--tag", "1.0.0"],
        1,
        &["--allow-downgrade"],
    );
    assert_eq!(d.containers(), after);

    // As JSON: stdout holds only the document, the report goes to stderr.
    let output = d.kolla("rollback", &["web", "--output", "json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let records: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(&output)));
    let record = &records[0];
    assert_eq!(
        (
            &record["node"],
            &record["service"],
            &record["action"],
            &record["result"]
        ),
        (
            &serde_json::json!("local"),
            &serde_json::json!("web"),
            &serde_json::json!("rollback"),
            &serde_json::json!("swapped")
        ),
        "{records}"
    );
    assert_eq!(record["from_generation"], 2, "{records}");
    assert_eq!(record["to_generation"], 1, "{records}");
    assert!(
        record["dark_window_secs"].as_f64().is_some_and(|d| d > 0.0),
        "{records}"
    );
    assert!(
        stderr(&output).contains("node local: web rolled back"),
        "{}",
        describe(&output)
    );
    assert_eq!(serving(&d).as_deref(), Some("version 1.0.0\n"));
    let back = d.containers();
    assert_eq!(back[&d.container("web")], (v1_id, "running".to_string()));
    assert_eq!(back[&d.container("web.kolla-gen-2")].1, "exited");
    assert_eq!(d.read_data("/data/boot.log"), "bootstrap\nbootstrap\n");

    // Rolling back a rollback needs --force.
    d.expect("rollback", &["web"], 1, &["the last change was a rollback"]);
    let output = d.kolla("rollback", &["web", "--force"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));

    let output = d.kolla("history", &["web", "--output", "json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let history: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let actions: Vec<(String, u64, u64, String)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["from_generation"].as_u64().unwrap(),
                r["to_generation"].as_u64().unwrap(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("upgrade".to_string(), 1, 2, "ok".to_string()),
            ("rollback".to_string(), 2, 1, "ok".to_string()),
            ("rollback".to_string(), 1, 2, "ok".to_string()),
        ]
    );
    assert_eq!(history["containers"]["local"].as_array().unwrap().len(), 2);
    // Each record names the image before and after.
    let images: Vec<(String, String)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let tag = |key: &str| {
                let image = r[key].as_str().unwrap_or_default();
                image.rsplit(':').next().unwrap_or_default().to_string()
            };
            (tag("from_image"), tag("image"))
        })
        .collect();
    let pair = |from: &str, to: &str| (from.to_string(), to.to_string());
    assert_eq!(
        images,
        vec![
            pair("1.0.0", "2.0.0"),
            pair("2.0.0", "1.0.0"),
            pair("1.0.0", "2.0.0")
        ]
    );
}

#[test]
fn failed_upgrades_leave_v1_serving_and_the_data_intact() {
    let d = setup("failures", &["1.0.0", "8.0.0", "9.0.0"]);
    deploy_v1(&d);
    let before = d.containers();
    let boot = "bootstrap\n";

    // The image does not exist: the pull fails, nothing changes.
    d.expect("upgrade", &["web", "--tag", "3.0.0"], 1, &["fx-web:3.0.0"]);
    assert_eq!(d.containers(), before);
    v1_intact(&d, boot);

    // The new container exits at once: swapped back.
    d.expect(
        "upgrade",
        &["web", "--tag", "9.0.0", "--health-timeout", "20"],
        1,
        &["exited with code"],
    );
    v1_intact(&d, "bootstrap\nbootstrap\n");

    // The new container never gets healthy: swapped back after the timeout.
    let output = d.kolla(
        "upgrade",
        &["web", "--tag", "8.0.0", "--health-timeout", "8"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("healthcheck failed") || err.contains("not healthy after 8s"),
        "{err}"
    );
    v1_intact(&d, "bootstrap\nbootstrap\nbootstrap\n");

    // The bootstrap job fails: the old container is never touched.
    let live = d.containers()[&d.container("web")].0.clone();
    let output = d
        .command("upgrade", &["web"])
        .env("FAIL_BOOTSTRAP", "yes")
        .bounded_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("bootstrap job exited 1"),
        "{}",
        describe(&output)
    );
    assert_eq!(d.containers()[&d.container("web")].0, live);
    v1_intact(&d, "bootstrap\nbootstrap\nbootstrap\n");

    let history = d.kolla("history", &["web"]);
    let text = String::from_utf8_lossy(&history.stdout);
    assert_eq!(text.matches("swapped back").count(), 2, "{text}");
    // The bootstrap job failed before anything was swapped.
    assert_eq!(text.matches(" failed ").count(), 1, "{text}");
}

/// The new image's upgrade check runs before anything of a running
/// service changes: not on the first deploy, from the new image on an
/// upgrade; a failure stops the upgrade with the check's output and
/// nothing touched, a warning exit code is shown and the upgrade goes on;
/// a rollback (to a kept container) runs none.
#[test]
fn the_new_images_upgrade_check_comes_first_and_a_failure_changes_nothing() {
    let d = setup("check", &["1.0.0", "2.0.0"]);
    deploy_v1(&d);
    assert_eq!(d.read_data_if_any("/data/checks.log"), "");
    let before = d.containers();

    let failing = d
        .command("upgrade", &["web", "--tag", "2.0.0"])
        .env("CHECK_EXIT", "2")
        .bounded_output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(1), "{}", describe(&failing));
    let err = stderr(&failing);
    assert!(
        err.contains("upgrade check exited 2: nothing was changed")
            && err.contains("the check says: exit 2"),
        "{}",
        describe(&failing)
    );
    assert_eq!(d.containers(), before);
    v1_intact(&d, "bootstrap\n");
    assert_eq!(d.read_data("/data/checks.log"), "version 2.0.0\n");

    let warned = d
        .command("upgrade", &["web", "--tag", "2.0.0"])
        .env("CHECK_EXIT", "1")
        .bounded_output()
        .unwrap();
    assert!(warned.status.success(), "{}", describe(&warned));
    let said = describe(&warned);
    assert!(
        said.contains("upgrade check warns (exit 1)") && said.contains("the check says: exit 1"),
        "{said}"
    );
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));
    assert_eq!(d.read_data("/data/boot.log"), "bootstrap\nbootstrap\n");
    let checks = "version 2.0.0\nversion 2.0.0\n";
    assert_eq!(d.read_data("/data/checks.log"), checks);

    let back = d
        .command("rollback", &["web"])
        .env("CHECK_EXIT", "1")
        .bounded_output()
        .unwrap();
    assert!(back.status.success(), "{}", describe(&back));
    assert_eq!(serving(&d).as_deref(), Some("version 1.0.0\n"));
    assert_eq!(d.read_data("/data/checks.log"), checks);
}

#[test]
fn a_hung_upgrade_check_is_killed_at_its_limit_and_one_a_killed_run_left_goes() {
    let d = setup("checkhang", &["1.0.0", "2.0.0"]);
    deploy_v1(&d);
    let before = d.containers();
    let check = format!("{}web.kolla-check", d.prefix);

    // A check that never ends: killed at the limit, nothing changed.
    let hung = d
        .command(
            "upgrade",
            &["web", "--tag", "2.0.0", "--health-timeout", "3"],
        )
        .env("CHECK_SLEEP", "3600")
        .bounded_output()
        .unwrap();
    assert_eq!(hung.status.code(), Some(1), "{}", describe(&hung));
    let err = stderr(&hung);
    assert!(
        err.contains("upgrade check did not finish within 3s and was killed: nothing was changed")
            && err.contains("the check began"),
        "{}",
        describe(&hung)
    );
    assert_eq!(d.containers(), before, "the check container is gone");
    v1_intact(&d, "bootstrap\n");
    assert_eq!(d.read_data("/data/checks.log"), "version 2.0.0\n");

    // kolla SIGKILLed while its check runs: the check runs on; the next
    // upgrade removes it and runs its own.
    let mut upgrade = d.command("upgrade", &["web", "--tag", "2.0.0"]);
    upgrade.env("CHECK_SLEEP", "3600");
    let mut child = upgrade
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !d
        .read_data_if_any("/data/checks.log")
        .ends_with("2.0.0\nversion 2.0.0\n")
    {
        assert!(std::time::Instant::now() < deadline, "the check never ran");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        d.containers().get(&check).map(|(_, state)| state.as_str()),
        Some("running"),
        "the killed run's check runs on"
    );
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));
    assert!(!d.containers().contains_key(&check), "{:?}", d.containers());
    assert_eq!(
        d.read_data("/data/checks.log"),
        "version 2.0.0\nversion 2.0.0\nversion 2.0.0\n"
    );
}

#[test]
fn nothing_to_roll_back_to_and_a_held_lock_are_refused() {
    let d = setup("lock", &["1.0.0", "2.0.0"]);
    deploy_v1(&d);
    d.expect("rollback", &["web"], 1, &["nothing to roll back to"]);

    // Another run holds the lock: the upgrade fails at once, saying who.
    let lock = d.take_lock("web");
    let before = d.containers();
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    // Exit 4: held by someone else, nothing changed.
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    assert!(
        stderr(&output).contains("service web is locked by"),
        "{}",
        describe(&output)
    );
    assert!(
        stderr(&output).contains("kolla unlock web"),
        "{}",
        describe(&output)
    );
    assert_eq!(d.containers(), before);
    assert_eq!(serving(&d).as_deref(), Some("version 1.0.0\n"));
    drop(lock);

    // `kolla unlock` clears a stale lock; then the upgrade goes through.
    let output = d.kolla("unlock", &["web"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("lock of web cleared"),
        "{}",
        describe(&output)
    );
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));
}

#[test]
fn only_retain_replaced_containers_are_kept() {
    let d = setup("retain", &["1.0.0", "2.0.0"]);
    deploy_v1(&d);
    for (tag, extra) in [
        ("2.0.0", None),
        ("1.0.0", Some("--allow-downgrade")),
        ("2.0.0", None),
    ] {
        let mut args = vec!["web", "--tag", tag, "--retain", "1"];
        args.extend(extra);
        let output = d.kolla("upgrade", &args);
        assert!(output.status.success(), "{}", describe(&output));
    }
    // Generations 1..4 existed; 4 is live, only 3 is kept.
    let web: Vec<String> = d
        .containers()
        .into_keys()
        .filter(|n| *n == d.container("web") || n.starts_with(&d.container("web.")))
        .collect();
    assert_eq!(
        web,
        vec![d.container("web"), d.container("web.kolla-gen-3")]
    );
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));
    let output = d.kolla("rollback", &["web"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(serving(&d).as_deref(), Some("version 1.0.0\n"));
}

/// The volume web's image declares (`VOLUME /cache`): the name of the one
/// mounted there in container `name`.
fn cache_volume(d: &Deployment, name: &str) -> String {
    let details = common::runtime()
        .block_on(d.images.engine.inspect(name))
        .unwrap()
        .unwrap_or_else(|| panic!("no container {name}"));
    let volumes: Vec<&(String, String)> = details
        .volumes
        .iter()
        .filter(|(_, path)| path == "/cache")
        .collect();
    assert_eq!(volumes.len(), 1, "{name}: {:?}", details.volumes);
    volumes[0].0.clone()
}

/// An image-declared volume is carried across every swap, rollback, and
/// destroy + deploy, labelled with its service; only --purge-data removes
/// it. The lock container never makes a volume.
#[test]
fn image_declared_volumes_outlive_upgrades_rollbacks_and_destroy() {
    let d = setup("imagevol", &["1.0.0", "2.0.0"]);
    // The swap fixture's web without its data container: /cache is its own.
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        r#"
services:
  web:
    image: ${IMAGE_PREFIX}fx-web:${TAG}
    network_mode: host
    init: true
    restart: unless-stopped
    command: [httpd, -f, -p, "127.0.0.1:${WEB_PORT}", -h, /www]
    healthcheck:
      test: [CMD, wget, -q, -O, /dev/null, "http://127.0.0.1:${WEB_PORT}/"]
      interval: 1s
      retries: 5
"#,
    )
    .unwrap();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let web = d.container("web");
    let volume = cache_volume(&d, &web);
    let output = docker(&["exec", &web, "sh", "-c", "echo kept > /cache/file"]);
    assert!(output.status.success(), "{}", describe(&output));
    let labels = docker(&["volume", "inspect", "-f", "{{json .Labels}}", &volume]);
    let labels: serde_json::Value = serde_json::from_slice(&labels.stdout).unwrap();
    assert_eq!(labels["kolla.project"], d.project.as_str());
    assert_eq!(labels["kolla.service"], "web");

    let read = || {
        let output = docker(&["exec", &web, "cat", "/cache/file"]);
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));
    assert_eq!(cache_volume(&d, &web), volume);
    assert_eq!(read(), "kept\n");
    let output = d.kolla("rollback", &["web"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(cache_volume(&d, &web), volume);
    assert_eq!(read(), "kept\n");

    // No container of the deployment mounts an anonymous volume: every
    // volume any of them has is one kolla named.
    for (name, _) in d.containers() {
        let details = common::runtime()
            .block_on(d.images.engine.inspect(&name))
            .unwrap()
            .unwrap();
        for (volume_name, path) in &details.volumes {
            assert!(
                volume_name.starts_with(&d.prefix),
                "{name} mounts an anonymous volume at {path}"
            );
        }
    }

    // The lock container, made from an image with a VOLUME, makes none.
    let rt = common::runtime();
    let lock = d.take_lock("web");
    let details = rt
        .block_on(d.images.engine.inspect(lock.name()))
        .unwrap()
        .unwrap();
    assert!(details.volumes.is_empty(), "{:?}", details.volumes);
    rt.block_on(kolla::deploy::lock::release(&d.images.engine, lock))
        .unwrap();

    // destroy keeps it; the next deploy mounts it again.
    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(volume_exists(&volume));
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(cache_volume(&d, &web), volume);
    assert_eq!(read(), "kept\n");

    let output = d.kolla("destroy", &["--purge-data", "--yes-i-really-mean-it"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!volume_exists(&volume), "purge left {volume}");
}

/// `--max-dark`: a generation that is not healthy within the budget after
/// the old one stopped is swapped back then, not after the health timeout.
#[test]
fn max_dark_swaps_back_once_the_budget_is_spent() {
    let d = setup("maxdark", &["1.0.0", "8.0.0"]);
    deploy_v1(&d);
    let output = d.kolla(
        "upgrade",
        &[
            "web",
            "--tag",
            "8.0.0",
            "--max-dark",
            "1500ms",
            "--health-timeout",
            "60",
        ],
    );
    let err = expect_exit(
        &output,
        1,
        &[
            "not healthy within --max-dark 1.5s",
            "swapping back to generation 1",
        ],
    );
    let stopped = said_at(&err, "swapping generation 1 for 2");
    let back = said_at(&err, "failed; swapping back");
    assert!(
        back - stopped < 1.5 + 1.5,
        "swapped back {:.3}s after the swap began (budget 1.5s):\n{err}",
        back - stopped
    );
    // The upgrade's bootstrap job ran (once) before the swap.
    v1_intact(&d, "bootstrap\nbootstrap\n");
    // A bad value is refused before anything runs.
    let output = d.kolla("upgrade", &["web", "--tag", "8.0.0", "--max-dark", "soon"]);
    expect_exit(&output, 2, &["\"soon\" is not a duration"]);
}

/// `x-kolla.guests`: a service whose guests (libvirt's QEMUs) must outlive
/// its container. The fixture's stand-in program lists what the test
/// writes. A swap that keeps them says so; one that would take a guest
/// down with the container is refused, naming it, and changes nothing;
/// `--stop-guests` shuts them down first; `stop` leaves them running and
/// `destroy` stops them through the service (started again for it).
#[test]
fn guests_are_kept_through_a_swap_or_it_is_refused_naming_them() {
    let d = setup("guests", &["1.0.0", "2.0.0", "3.0.0"]);
    let compose = d.compose_dir.join("controller.yml");
    let text = std::fs::read_to_string(&compose).expect("compose file");
    let with_guests = text.replacen(
        "    x-kolla:\n      upgrade_check:",
        "    x-kolla:\n      guests: /usr/local/bin/guests\n      upgrade_check:",
        1,
    );
    assert_ne!(
        text, with_guests,
        "the fixture's web service has no x-kolla"
    );
    std::fs::write(&compose, with_guests).expect("compose file");
    deploy_v1(&d);
    let guests = |list: &str| d.write_data("/data/guests.list", list);
    d.write_data("/data/guests.stopped", "");

    guests("vm-1 4242 kept\n");
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("web: guests kept running: 1 of 1 (same processes"),
        "{}",
        describe(&output)
    );

    guests("vm-1 4242 kept\nvm-2 77 in-container\n");
    let before = d.containers();
    let refused = d.kolla("upgrade", &["web", "--tag", "3.0.0"]);
    expect_exit(
        &refused,
        1,
        &[
            "vm-2 (pid 77) would stop with its container",
            "--stop-guests",
        ],
    );
    assert_eq!(d.containers(), before, "a refused swap changed containers");
    assert_eq!(serving(&d).as_deref(), Some("version 2.0.0\n"));
    assert_eq!(d.read_data("/data/guests.stopped"), "");

    let output = d.kolla("upgrade", &["web", "--tag", "3.0.0", "--stop-guests"]);
    assert!(output.status.success(), "{}", describe(&output));
    let said = stderr(&output);
    assert!(
        said.contains("stopping guests (--stop-guests): vm-2 (pid 77)"),
        "{said}"
    );
    assert!(said.contains("LOST: vm-1, vm-2"), "{said}");
    assert_eq!(d.read_data("/data/guests.stopped"), "stop 60\n");

    // `stop` leaves the guests running; `destroy` then starts the service
    // again to stop them through it.
    guests("vm-3 5 kept\n");
    let output = d.kolla("stop", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.read_data("/data/guests.stopped"), "stop 60\n");
    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("stopping the guests of"),
        "{}",
        describe(&output)
    );
    assert_eq!(d.read_data("/data/guests.stopped"), "stop 60\nstop 60\n");
}

/// The image a container of the deployment runs.
fn image_of(d: &Deployment, service: &str) -> String {
    let inspected = common::docker(&["inspect", "-f", "{{.Config.Image}}", &d.container(service)]);
    assert!(inspected.status.success(), "{}", describe(&inspected));
    common::stdout_of(&inspected).trim().to_string()
}

#[test]
fn upgrade_all_goes_stage_by_stage_stops_at_a_failure_and_a_rerun_continues() {
    let d = common::swap_deployment_of("upgrade-all", "all", &["1.0.0", "2.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let (v1, v2) = (
        format!("{}/fx-web:1.0.0", d.images.namespace),
        format!("{}/fx-web:2.0.0", d.images.namespace),
    );
    let before = d.containers();

    // The plan: three stages, each service's cause and images; nothing
    // changes.
    let plan = d.kolla("upgrade", &["--all", "--tag", "2.0.0", "--dry-run"]);
    assert!(plan.status.success(), "{}", describe(&plan));
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    let at = |what: &str| {
        text.find(what)
            .unwrap_or_else(|| panic!("{what:?} not in the plan:\n{text}"))
    };
    assert!(
        at("stage 1 of 3:") < at("  db: first: it needs nothing"),
        "{text}"
    );
    assert!(
        at("stage 2 of 3:") < at("  api: after db (it needs it to start)"),
        "{text}"
    );
    assert!(
        at("stage 3 of 3:") < at("  agent: after api (x-kolla.upgrade_after)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("node local: {v1} -> {v2}")),
        "{text}"
    );
    assert!(
        !text.contains("apidata"),
        "a data container is no step: {text}"
    );
    assert!(
        at("stage 3 of 3:") < at("then, post-upgrade: api: sh -c cat /www/index.html"),
        "{text}"
    );
    assert_eq!(d.containers(), before, "a dry run changes nothing");

    // --dry-run on a named service's upgrade never upgrades it.
    d.expect(
        "upgrade",
        &["api", "--tag", "2.0.0", "--dry-run"],
        2,
        &["--dry-run prints the plan of `upgrade --all`"],
    );
    assert_eq!(d.containers(), before);

    // A service the files add is a deploy's work: refused, nothing done.
    let file = d.compose_dir.join("controller.yml");
    let shipped = std::fs::read_to_string(&file).unwrap();
    let newcomer =
        "  newcomer:\n    image: ${IMAGE_PREFIX}fx-web:${TAG}\n    command: [sleep, \"3600\"]\n";
    std::fs::write(&file, format!("{shipped}{newcomer}")).unwrap();
    d.expect(
        "upgrade",
        &["--all", "--tag", "2.0.0"],
        2,
        &[
            "node local: newcomer is not deployed",
            "nothing was changed",
        ],
    );
    assert_eq!(d.containers(), before);
    std::fs::write(&file, shipped).unwrap();

    // api's bootstrap fails: db is done, api swapped back, agent untouched.
    let failed = d
        .command("upgrade", &["--all", "--tag", "2.0.0"])
        .env("FAIL_API", "yes")
        .bounded_output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    let err = stderr(&failed);
    assert!(
        err.contains("upgrade --all stopped at stage 2 of 3 (api): done: db; left: agent")
            && err.contains("api says no"),
        "{}",
        describe(&failed)
    );
    assert_eq!(image_of(&d, "db"), v2);
    assert_eq!(image_of(&d, "api"), v1);
    assert_eq!(image_of(&d, "agent"), v1);
    assert_eq!(
        post_log(&d),
        "",
        "no post-upgrade step before every stage is done"
    );

    // The rerun finds db done and goes on, api before agent.
    let rerun = d.kolla("upgrade", &["--all", "--tag", "2.0.0"]);
    assert!(rerun.status.success(), "{}", describe(&rerun));
    let said = describe(&rerun);
    assert!(said.contains("db already at generation"), "{said}");
    let api = said.find("api upgraded").expect("api upgraded");
    let agent = said.find("agent upgraded").expect("agent upgraded");
    assert!(api < agent, "{said}");
    for service in ["db", "api", "agent"] {
        assert_eq!(image_of(&d, service), v2, "{service}");
    }
    // Last, api's post-upgrade step, from its new image; a rerun with
    // nothing left to swap runs it again (such steps are idempotent).
    assert!(
        said.find("api: post-upgrade step done").expect("the step") > agent,
        "{said}"
    );
    assert_eq!(post_log(&d), "version 2.0.0\n");
    let again = d.kolla("upgrade", &["--all", "--tag", "2.0.0"]);
    assert!(again.status.success(), "{}", describe(&again));
    assert_eq!(post_log(&d), "version 2.0.0\nversion 2.0.0\n");

    // rollback --all: where to is required; a tag no kept generation has
    // stops at the first stage, nothing changed.
    let upgraded = d.containers();
    d.expect(
        "rollback",
        &["--all"],
        2,
        &["rollback --all needs where to: --release", "--tag"],
    );
    let refused = d.kolla("rollback", &["--all", "--tag", "0.9.0"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("no kept generation has tag 0.9.0")
            && err.contains(
                "rollback --all stopped at stage 1 of 2 (agent): done: nothing; left: api"
            ),
        "{}",
        describe(&refused)
    );
    assert_eq!(
        d.containers(),
        upgraded,
        "a refused rollback changed containers"
    );

    // The reverse order, agent before api; db (one-way) stays on 2.0.0.
    // `--restore-db` restores where a restore point is, and none of these
    // has one: they are swapped as they are.
    let back = d.kolla("rollback", &["--all", "--tag", "1.0.0", "--restore-db"]);
    assert!(back.status.success(), "{}", describe(&back));
    let said = describe(&back);
    assert!(
        said.contains("db: left on its newer image (x-kolla.one_way"),
        "{said}"
    );
    let agent = said.find("agent rolled back").expect("agent rolled back");
    let api = said.find("api rolled back").expect("api rolled back");
    assert!(agent < api, "{said}");
    assert_eq!(image_of(&d, "agent"), v1);
    assert_eq!(image_of(&d, "api"), v1);
    assert_eq!(image_of(&d, "db"), v2);
    // A rerun finds everything there and changes nothing.
    let rolled_back = d.containers();
    let rerun = d.kolla("rollback", &["--all", "--tag", "1.0.0"]);
    assert!(rerun.status.success(), "{}", describe(&rerun));
    assert!(
        describe(&rerun).contains("agent already at tag 1.0.0"),
        "{}",
        describe(&rerun)
    );
    assert_eq!(d.containers(), rolled_back);
}

/// What api's post-upgrade steps logged ("" before the first).
fn post_log(d: &Deployment) -> String {
    let log = common::docker(&[
        "exec",
        &d.container("api"),
        "sh",
        "-c",
        "cat /data/post.log 2>/dev/null || true",
    ]);
    assert!(log.status.success(), "{}", describe(&log));
    common::stdout_of(&log)
}
