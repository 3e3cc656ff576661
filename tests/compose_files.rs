//! Compose files as real projects write them, against the real engine:
//! named volumes mount exactly the volume they name, external volumes are
//! never substituted, data containers are never swapped, and destroy and
//! stop stop each service the way its file says (signal, grace period,
//! dependents first) before anything is removed, and folders a service
//! shares with the node become shared mounts.

mod common;

use common::{Bounded, Deployment, describe, docker, stderr, volume_exists};

/// The volumes container `name` mounts, as (volume, path).
fn mounts(d: &Deployment, name: &str) -> Vec<(String, String)> {
    common::runtime()
        .block_on(d.images.engine.inspect(name))
        .unwrap()
        .unwrap_or_else(|| panic!("no container {name}"))
        .volumes
}

/// Removes a volume the test made itself.
struct OwnVolume(String);

impl Drop for OwnVolume {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "-f", &self.0]);
    }
}

#[test]
fn named_volumes_mount_the_volume_they_name_and_external_ones_must_exist() {
    let d = Deployment::new("volnames");
    let literal = format!("{}literal", d.prefix);
    let external = format!("{}outside", d.prefix);
    let _cleanup = (OwnVolume(literal.clone()), OwnVolume(external.clone()));
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        format!(
            r#"
services:
  app:
    image: ${{IMAGE}}
    command: [sleep, "3600"]
    volumes: [own:/own, named:/named, outside:/outside]
volumes:
  own: {{}}
  named: {{name: {literal}}}
  outside: {{external: true, name: {external}}}
"#
        ),
    )
    .unwrap();
    // The external volume is missing: a clear error, nothing created.
    let output = d.kolla("deploy", &[]);
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("volume {external} is external")) && err.contains("does not exist"),
        "{err}"
    );
    assert!(d.containers().is_empty(), "{:?}", d.containers());
    assert!(!volume_exists(&external), "kolla made an empty substitute");

    let made = docker(&[
        "volume",
        "create",
        "--label",
        "kolla-test=outside",
        &external,
    ]);
    assert!(made.status.success(), "{}", describe(&made));
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let mut found = mounts(&d, &d.container("app"));
    found.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        found,
        vec![
            (literal.clone(), "/named".to_string()),
            (external.clone(), "/outside".to_string()),
            (format!("{}own", d.prefix), "/own".to_string()),
        ]
    );
    // Purging removes what kolla made, never the external volume.
    let output = d.kolla("destroy", &["--purge-data", "--yes-i-really-mean-it"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!volume_exists(&literal), "purge left {literal}");
    assert!(!volume_exists(&format!("{}own", d.prefix)));
    assert!(volume_exists(&external), "purge removed an external volume");
}

/// A volume the file names that someone made before kolla (same name, no
/// kolla label) is used as it is: the dry run keeps it, the deploy mounts
/// it with its data, and a purge leaves it, since kolla did not make it.
#[test]
fn a_named_volume_made_outside_kolla_is_kept_used_and_never_purged() {
    let d = Deployment::new("volforeign");
    let volume = format!("{}logs", d.prefix);
    let _cleanup = OwnVolume(volume.clone());
    let made = docker(&["volume", "create", "--label", "kolla-test=foreign", &volume]);
    assert!(made.status.success(), "{}", describe(&made));
    let wrote = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v"),
        d.env("IMAGE"),
        "sh",
        "-c",
        "echo before-kolla > /v/mark",
    ]);
    assert!(wrote.status.success(), "{}", describe(&wrote));

    let output = d.expect("deploy", &["--dry-run"], 0, &[]);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        text.lines()
            .any(|l| l.contains("keep") && l.contains(&format!("{volume} "))),
        "{text}"
    );
    assert!(!text.contains("not on the node"), "{text}");

    d.expect("deploy", &[], 0, &[]);
    let agent = d.container("logs-agent");
    assert!(
        mounts(&d, &agent).contains(&(volume.clone(), "/logs".to_string())),
        "{:?}",
        mounts(&d, &agent)
    );
    let read = docker(&["exec", &agent, "cat", "/logs/mark"]);
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        "before-kolla\n",
        "{}",
        describe(&read)
    );

    d.expect(
        "destroy",
        &["--purge-data", "--yes-i-really-mean-it"],
        0,
        &[],
    );
    assert!(
        volume_exists(&volume),
        "purge removed a volume kolla did not make"
    );
}

#[test]
fn a_data_container_is_never_upgraded_or_rolled_back() {
    let d = common::swap_deployment("dataswap", &["1.0.0", "2.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let before = d.containers();
    for (verb, args) in [
        ("upgrade", vec!["webdata", "--tag", "2.0.0"]),
        ("rollback", vec!["webdata"]),
    ] {
        let output = d.kolla(verb, &args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{verb}: {}",
            describe(&output)
        );
        assert!(
            stderr(&output).contains("service webdata is a data container"),
            "{verb}: {}",
            describe(&output)
        );
        assert_eq!(d.containers(), before, "{verb} touched something");
    }
}

#[test]
fn destroy_and_stop_stop_each_service_as_its_file_says_dependents_first() {
    let d = Deployment::new("graceful");
    // Each service logs the signal it got to the shared volume; `db` is
    // what `app` depends on, so app must stop first.
    let service = |name: &str, signal: &str| {
        format!(
            r#"  {name}:
    image: ${{IMAGE}}
    stop_signal: {signal}
    stop_grace_period: 20s
    volumes_from: [webdata]
    command:
      - sh
      - -c
      - "trap 'echo {name} got {signal} >> /data/stops; exit 0' {short}; echo up; while true; do sleep 0.2; done"
"#,
            short = signal.trim_start_matches("SIG")
        )
    };
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        format!(
            "services:\n  webdata:\n    image: ${{IMAGE}}\n    volumes: [/data]\n    x-kolla: {{data: true}}\n{}{}    depends_on: [db]\n",
            service("db", "SIGUSR1"),
            service("app", "SIGUSR2"),
        ),
    )
    .unwrap();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    traps_set(&d, 1);

    let output = d.kolla("stop", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        d.read_data("/data/stops"),
        "app got SIGUSR2\ndb got SIGUSR1\n"
    );

    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    traps_set(&d, 2);
    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        d.read_data("/data/stops"),
        "app got SIGUSR2\ndb got SIGUSR1\napp got SIGUSR2\ndb got SIGUSR1\n",
        "destroy killed a service instead of stopping it"
    );
}

/// Wait until app and db have each said "up" `times` times: a container
/// runs before its shell has set its trap, and a signal before that ends
/// the shell without a word in /data/stops.
fn traps_set(d: &Deployment, times: usize) {
    for service in ["app", "db"] {
        let name = d.container(service);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let logs = common::runtime()
                .block_on(d.images.engine.logs_tail(&name, 100))
                .unwrap_or_default();
            if logs.lines().filter(|l| l.trim() == "up").count() >= times {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never set its trap: {logs}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn profiles_come_from_flags_the_environment_or_dotenv_and_must_exist() {
    let d = Deployment::new("profiles");
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        r#"
services:
  always:
    image: ${IMAGE}
    command: [sleep, "3600"]
  debug:
    image: ${IMAGE}
    command: [sleep, "3600"]
    profiles: [debug]
  old-agent:
    image: ${IMAGE}
    command: [sleep, "3600"]
    profiles: [zed]
"#,
    )
    .unwrap();
    d.expect(
        "deploy",
        &["--profile", "typo"],
        2,
        &["profile \"typo\"", "debug"],
    );
    // A release's services follow the release deployed, never a flag.
    d.expect(
        "deploy",
        &["--profile", "zed"],
        2,
        &["zed is a release, not a profile", "--release zed"],
    );
    assert!(d.containers().is_empty());
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!d.containers().contains_key(&d.container("debug")));
    assert!(!d.containers().contains_key(&d.container("old-agent")));
    let output = d
        .command("deploy", &[])
        .env("COMPOSE_PROFILES", "debug")
        .bounded_output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert!(d.containers().contains_key(&d.container("debug")));
    // From .env beside the files, as compose reads it.
    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    std::fs::write(d.compose_dir.join(".env"), "COMPOSE_PROFILES=debug\n").unwrap();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(d.containers().contains_key(&d.container("debug")));
}

#[test]
fn an_empty_compose_file_is_refused_before_anything_is_touched() {
    let d = Deployment::new("emptyfile");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let before = d.containers();
    std::fs::write(d.compose_dir.join("controller.yml"), "# nothing yet\n").unwrap();
    d.expect(
        "deploy",
        &["--remove-orphans"],
        2,
        &["controller.yml: the file is empty"],
    );
    assert_eq!(d.containers(), before);
}

#[test]
fn upgrade_tag_on_an_image_with_a_literal_tag_says_the_file_decides() {
    let d = common::swap_deployment("literaltag", &["1.0.0", "2.0.0"]);
    let file = d.compose_dir.join("controller.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("fx-web:${TAG}", "fx-web:1.0.0")).unwrap();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let before = d.containers();
    d.expect(
        "upgrade",
        &["web", "--tag", "2.0.0"],
        2,
        &["tag comes from the compose file"],
    );
    assert_eq!(d.containers(), before);
}

/// A file in Kolla's own v1 layout deploys: its data container is created
/// and never started, the server takes its `name:`, `net: host` and
/// `env_file`; destroy keeps the data, --dry-run says what is data.
#[test]
fn kolla_v1_files_deploy_with_their_data_containers() {
    let images = common::Sandbox::new("legacy");
    let d = Deployment::of(images, "legacy", "legacy", "").on_shared_busybox();
    let output = d.kolla("deploy", &["--dry-run"]);
    assert!(output.status.success(), "{}", describe(&output));
    let plan = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(plan.contains("create-data  webdata"), "{plan}");
    assert!(plan.contains("create       web "), "{plan}");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let containers = d.containers();
    assert_eq!(containers[&d.container("webdata")].1, "created");
    assert_eq!(containers[&d.container("web")].1, "running");
    // The v1 file has no healthcheck: kolla's gate said "still running"
    // after its monitor window, never "ready", and the server starts
    // behind a shell line; on a loaded machine it may listen a moment
    // later, so its first answer is awaited, briefly.
    let greeting = common::eventually("the v1 server answers", 10, || {
        common::http_get(d.env("WEB_PORT"), "/greeting")
    });
    assert_eq!(greeting, "hello from v1\n");
    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let left: Vec<String> = d.containers().into_keys().collect();
    assert_eq!(left, vec![d.container("webdata")]);
    assert_eq!(d.read_data("/data/greeting"), "hello from v1\n");
}

/// In the Compose Spec layout a data container says so; one that exits at
/// once without saying so is an error that tells how.
#[test]
fn an_unmarked_data_container_is_an_error_that_says_how_to_mark_it() {
    let d = Deployment::new("unmarked");
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        r#"
services:
  data:
    image: ${IMAGE}
    command: ["true"]
    volumes: [/data]
  app:
    image: ${IMAGE}
    command: [sleep, "3600"]
    volumes_from: [data]
"#,
    )
    .unwrap();
    d.expect("deploy", &[], 1, &["mark it `x-kolla: {data: true}`"]);
}

/// A dry run before the images reach the node says what it would pull and
/// plans the rest; it pulls and creates nothing.
#[test]
fn a_dry_run_plans_pulls_of_images_not_on_the_node() {
    let d = Deployment::new("drypull");
    let absent = format!("{}/not-built-yet:1.0", d.images.namespace);
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        format!(
            "services:\n  here:\n    image: ${{IMAGE}}\n    command: [sleep, \"3600\"]\n  later:\n    image: {absent}\n    command: [sleep, \"3600\"]\n"
        ),
    )
    .unwrap();
    let output = d.kolla("deploy", &["--dry-run"]);
    assert!(output.status.success(), "{}", describe(&output));
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        out.contains(&format!("pull {absent} (not on the node yet)")),
        "{out}"
    );
    assert!(out.contains("create       later"), "{out}");
    assert!(out.contains("create       here"), "{out}");
    assert!(d.containers().is_empty());
    // The real deploy says the image is missing, naming it.
    let output = d.kolla("deploy", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr(&output).contains(&absent), "{}", describe(&output));
}

/// `extra_hosts` and `sysctls` reach the container, whichever form the
/// file writes them in.
#[test]
fn extra_hosts_and_sysctls_reach_the_container() {
    let d = Deployment::new("hostsctl");
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        r#"
services:
  app:
    image: ${IMAGE}
    command: [sleep, "3600"]
    extra_hosts: {db.internal: 10.11.12.13}
    sysctls: {net.core.somaxconn: 1234}
"#,
    )
    .unwrap();
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let app = d.container("app");
    let hosts = docker(&["exec", &app, "cat", "/etc/hosts"]);
    assert!(
        String::from_utf8_lossy(&hosts.stdout).contains("10.11.12.13\tdb.internal"),
        "{}",
        describe(&hosts)
    );
    let somaxconn = docker(&["exec", &app, "cat", "/proc/sys/net/core/somaxconn"]);
    assert_eq!(String::from_utf8_lossy(&somaxconn.stdout), "1234\n");
}

/// Unmounts and removes a folder of the node the test had made shared.
struct NodeFolder(String);

impl Drop for NodeFolder {
    fn drop(&mut self) {
        let inner = format!("{}/inner", self.0);
        let _ = std::process::Command::new("umount")
            .args(["-l", &inner])
            .bounded_status();
        let _ = std::process::Command::new("umount")
            .args(["-l", &self.0])
            .bounded_status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The mount-propagation state of `path` on this machine: `shared`,
/// `private` or None when it is no mount point.
fn propagation_of(path: &str) -> Option<&'static str> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.get(4) == Some(&path)).then(|| {
            let optional = fields[6..].iter().take_while(|f| **f != "-");
            if optional.clone().any(|f| f.starts_with("shared:")) {
                "shared"
            } else {
                "private"
            }
        })
    })
}

/// `x-kolla.host_shared_mounts`: prechecks say the folder is not shared
/// yet; the deploy makes it a shared mount of the node before the service
/// exists, the service's bind with shared propagation starts, and a mount
/// the container makes under it shows on the node.
#[test]
fn a_folder_the_service_shares_is_made_a_shared_mount_and_mounts_propagate() {
    let d = Deployment::new("sharedmount");
    let folder = format!("/run/{}", d.project);
    let _cleanup = NodeFolder(folder.clone());
    assert_eq!(propagation_of(&folder), None);
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        format!(
            r#"
services:
  agent:
    image: ${{IMAGE}}
    command: [sleep, "3600"]
    cap_add: [SYS_ADMIN]
    security_opt: [apparmor=unconfined]
    volumes: ["{folder}:{folder}:shared"]
    x-kolla: {{host_shared_mounts: ["{folder}"]}}
"#
        ),
    )
    .unwrap();
    let checked = d.kolla("prechecks", &[]);
    assert!(
        stdout_text(&checked).contains(&format!(
            "{folder} is not a shared mount yet: deploy makes it one (for agent)"
        )),
        "{}",
        describe(&checked)
    );
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(propagation_of(&folder), Some("shared"));
    let inner = format!("{folder}/inner");
    let mounted = docker(&[
        "exec",
        &d.container("agent"),
        "sh",
        "-c",
        &format!("mkdir -p {inner} && mount -t tmpfs kolla-test {inner}"),
    ]);
    assert!(mounted.status.success(), "{}", describe(&mounted));
    assert!(
        propagation_of(&inner).is_some(),
        "the container's mount did not reach the node"
    );
    let checked = d.kolla("prechecks", &[]);
    assert!(
        stdout_text(&checked).contains(&format!("{folder} is a shared mount (for agent)")),
        "{}",
        describe(&checked)
    );
}

fn stdout_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
