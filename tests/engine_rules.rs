//! Values the engine would refuse (names, image references, signals,
//! durations) and durations no clock can hold are refused as kolla reads
//! its files and flags: exit 2, the file and line or the flag, and nothing
//! made on the engine. Before, some reached the engine after the images
//! were pulled, and some made kolla panic (exit 101) mid-deploy.

mod common;

use common::{Deployment, describe, docker, stderr};

/// Fail unless the deployment has no container and no volume.
fn assert_nothing_made(d: &Deployment, case: &str) {
    assert!(d.containers().is_empty(), "{case}: {:?}", d.containers());
    let volumes = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=kolla.project={}", d.project),
    ]);
    assert!(volumes.status.success(), "{}", describe(&volumes));
    assert_eq!(
        String::from_utf8_lossy(&volumes.stdout).trim(),
        "",
        "{case}: volumes were made"
    );
}

/// `body` as the one service `app` of the deployment's compose file.
fn one_service(d: &Deployment, body: &str) {
    let text =
        format!("services:\n  app:\n    image: ${{IMAGE}}\n    command: [sleep, \"3600\"]\n{body}");
    std::fs::write(d.compose_dir.join("controller.yml"), text).unwrap();
}

/// Run `deploy` on what the compose file now says: exit 2, and stderr
/// names the file and `line N: ...` with each of `phrases`.
fn refused(d: &Deployment, case: &str, args: &[&str], phrases: &[&str]) {
    let output = d.kolla("deploy", args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{case}: {}",
        describe(&output)
    );
    let err = stderr(&output);
    for phrase in phrases {
        assert!(err.contains(phrase), "{case}: no {phrase:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{case}: {err}");
    assert_nothing_made(d, case);
}

#[test]
fn compose_values_the_engine_refuses_fail_with_file_and_line() {
    let d = Deployment::new("rules");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "stop_grace_period past any clock",
            "    stop_grace_period: 99999999999999999999h\n",
            &[
                "controller.yml: line 5: service app: stop_grace_period",
                "longer than the engine accepts",
            ],
        ),
        (
            "a sum of durations past any clock",
            "    stop_grace_period: 5000000000000000h5000000000000000h\n",
            &[
                "controller.yml: line 5: service app: stop_grace_period",
                "longer than the engine accepts",
            ],
        ),
        (
            "huge healthcheck durations",
            "    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 99999999999999999999h\n",
            &[
                "controller.yml: line 7: service app: healthcheck.interval",
                "longer than the engine accepts",
            ],
        ),
        (
            "huge healthcheck timeout",
            "    healthcheck:\n      test: [CMD, \"true\"]\n      timeout: 2562047788015216h\n",
            &[
                "controller.yml: line 7: service app: healthcheck.timeout",
                "longer than the engine accepts",
            ],
        ),
        (
            "huge healthcheck start period",
            "    healthcheck:\n      test: [CMD, \"true\"]\n      start_period: 99999999999999999999h\n",
            &[
                "controller.yml: line 7: service app: healthcheck.start_period",
                "longer than the engine accepts",
            ],
        ),
        (
            "a healthcheck interval under the engine's 1ms",
            "    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 1us\n",
            &[
                "controller.yml: line 7: service app: healthcheck.interval",
                "1ms",
            ],
        ),
        (
            "an unknown stop signal",
            "    stop_signal: SIGBOGUS\n",
            &["controller.yml: line 5: service app: stop_signal: \"SIGBOGUS\""],
        ),
        (
            "a volume name that is a path",
            "    volumes: [v:/v]\nvolumes:\n  v:\n    name: \"../../etc\"\n",
            &["controller.yml: line 8: volumes: v: volume name \"../../etc\""],
        ),
    ];
    for (case, body, phrases) in cases {
        one_service(&d, body);
        refused(&d, case, &[], phrases);
    }
    // An image reference with an option in it, and one made of variables.
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        "services:\n  app:\n    command: [sleep, \"3600\"]\n    image: \"atk/web:1 --privileged\"\n",
    )
    .unwrap();
    refused(
        &d,
        "an image with an option in it",
        &[],
        &["controller.yml: line 4: service app: image: \"atk/web:1 --privileged\""],
    );
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        "services:\n  app:\n    image: kolla/web:${BAD_TAG:-.dot}\n",
    )
    .unwrap();
    refused(
        &d,
        "a tag from a variable",
        &[],
        &[
            "controller.yml: line 3: service app: image:",
            "tag \".dot\"",
        ],
    );
    // Every problem of the file at once.
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        "services:\n  app:\n    image: Upper/Case\n    stop_signal: \"65\"\n",
    )
    .unwrap();
    refused(
        &d,
        "two problems",
        &[],
        &[
            "line 3: service app: image:",
            "line 4: service app: stop_signal",
        ],
    );
}

#[test]
fn names_are_checked_as_composed_with_the_prefix() {
    let d = Deployment::new("rulenames");
    let globals = d.images.config_dir.join("globals.yml");
    // The default prefix, empty: a service's name is its container's.
    std::fs::write(&globals, format!("project: {}\n", d.project)).unwrap();
    for service in ["\"..\"", "\"-x\"", "a"] {
        std::fs::write(
            d.compose_dir.join("controller.yml"),
            format!("services:\n  {service}:\n    image: ${{IMAGE}}\n"),
        )
        .unwrap();
        let name = service.trim_matches('"');
        refused(
            &d,
            service,
            &[],
            &[
                // Line 3: the service's body.
                &format!("controller.yml: line 3: service {name}: container name {name:?}"),
                "is not one the engine accepts",
            ],
        );
    }
    // The same one-letter service behind a prefix is fine.
    std::fs::write(
        &globals,
        format!("project: {}\ncontainer_prefix: \"-\"\n", d.project),
    )
    .unwrap();
    let output = d.kolla("deploy", &["--dry-run"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("globals.yml: line 2: container_prefix \"-\""),
        "{err}"
    );
    assert_nothing_made(&d, "prefix -");
    std::fs::write(
        &globals,
        format!(
            "project: {}\ncontainer_prefix: \"{}\"\n",
            d.project, d.prefix
        ),
    )
    .unwrap();
    let output = d.kolla("deploy", &["--dry-run"]);
    assert!(output.status.success(), "{}", describe(&output));
}

#[test]
fn flags_past_any_clock_are_refused_before_the_engine() {
    let d = Deployment::new("ruleflags");
    one_service(&d, "");
    for (flag, value, phrase) in [
        (
            "--max-dark",
            "99999999999999999999h",
            "longer than the engine accepts",
        ),
        ("--monitor-window", "inf", "not a number of seconds"),
        (
            "--monitor-window",
            "1e300",
            "longer than the engine accepts",
        ),
        ("--monitor-window", "NaN", "not a number of seconds"),
        ("--monitor-window", "-1", "not a number of seconds"),
        (
            "--health-timeout",
            "18446744073709551615",
            "is not in 0..=2147483647",
        ),
    ] {
        let arg = format!("{flag}={value}");
        let case = arg.as_str();
        refused(&d, case, &[case], &[&format!("'{flag} <"), phrase]);
    }
}

/// `name` with each run of digits as one `#`: the shape of a name whose
/// numbers (generation, pid) vary.
fn shape(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

#[test]
fn the_names_checked_are_the_names_kolla_composes() {
    use kolla::config::names;
    use kolla::deploy::labels::{self, Role};
    use kolla::deploy::{node_prep, restore_point, volumes};
    let (prefix, service) = ("p-", "svc");
    let checked = names::kolla_container_names(prefix, service);
    // Each name kolla composes has a checked counterpart of its shape, at
    // least as long (so the check saw its longest form).
    let covered = |name: &str| {
        checked
            .iter()
            .any(|c| shape(c) == shape(name) && c.len() >= name.len())
    };
    let mut composed: Vec<String> = [
        Role::Live,
        Role::Candidate,
        Role::Kept(1),
        Role::Kept(u64::MAX),
        Role::Lock,
        Role::Bootstrap,
        Role::Helper,
    ]
    .into_iter()
    .map(|role| labels::container_name(prefix, service, role))
    .collect();
    let restore = restore_point::name(prefix, service, u64::MAX);
    composed.push(format!("{restore}.writing"));
    composed.push(restore);
    let owner = node_prep::JobOwner {
        prefix,
        project: "p",
        service,
        image: "x",
    };
    composed.push(node_prep::sysctl_job(&owner, &Default::default()).name);
    composed.push(node_prep::shared_mounts_job(&owner, &[]).name);
    composed.push(node_prep::shared_mounts_check(&owner, &[]).name);
    for name in &composed {
        assert!(
            covered(name),
            "{name} is composed but not checked: {checked:?}"
        );
    }
    // Anonymous volumes: the same length as the checked example.
    let volume = volumes::volume_name(prefix, service, "/var/lib/x");
    let example = names::anonymous_volume_name(prefix, service);
    assert_eq!(volume.len(), example.len(), "{volume} vs {example}");
    assert!(volume.starts_with(&format!("{prefix}{service}-")));
}

/// An image of the run's busybox with `LABEL`s of kolla's own (and one of
/// someone else's), removed when dropped.
struct ForgingImage(String);

impl ForgingImage {
    fn build(labels: &str) -> ForgingImage {
        let tag = format!("{}:1", common::unique_name("kolla-test-forged", "image"));
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {}\nLABEL {labels} org.example.team=web\n",
                common::shared_busybox()
            ),
        )
        .expect("Dockerfile");
        let built = docker(&["build", "-q", "-t", &tag, &dir.path().to_string_lossy()]);
        assert!(built.status.success(), "{}", describe(&built));
        ForgingImage(tag)
    }
}

impl Drop for ForgingImage {
    fn drop(&mut self) {
        docker(&["rmi", &self.0]);
    }
}

/// The engine copies an image's labels onto every container made from it:
/// an image that says `kolla.data=true` would make its service pass for a
/// data container (kept by destroy, refused by upgrade, skipped by
/// recovery). Deploy refuses it before anything is made, exit 2, naming
/// the service, the image and the labels; kolla build's own labels are
/// fine.
#[test]
fn an_image_carrying_kolla_labels_is_refused_before_anything_is_made() {
    // Made before the deployment, so they outlive its containers.
    let forging = ForgingImage::build("kolla.data=true kolla.update-order=start-first");
    let built_by_kolla =
        ForgingImage::build("kolla.build-hash=abc kolla.image-name=app kolla.version=1");
    let mut d = Deployment::new("forged");
    d.env.retain(|(k, _)| k != "IMAGE");
    d.env.push(("IMAGE".to_string(), forging.0.clone()));
    one_service(&d, "");
    for args in [&[][..], &["--dry-run"][..]] {
        refused(
            &d,
            "forged labels",
            args,
            &[
                "service app: image kolla-test-forged-",
                "carries kolla's own labels kolla.data, kolla.update-order",
                "rebuild the image without them",
            ],
        );
    }

    d.env.retain(|(k, _)| k != "IMAGE");
    d.env.push(("IMAGE".to_string(), built_by_kolla.0.clone()));
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.containers().len(), 1, "{:?}", d.containers());
}
