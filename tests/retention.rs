//! What kolla keeps for rollback, against the real engine: globals.yml's
//! `retain` holds across plain runs (no `--retain`), and `kolla
//! prune-images` removes an image no container uses while every kept
//! generation's image stays, so a rollback still works after it. Each test
//! works in a deployment and image namespace of its own, and removes only
//! those.

mod common;

use common::{Deployment, describe, docker, expect_exit, stdout_of as stdout};

fn deploy_v1(d: &Deployment) {
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
}

fn upgrade_to(d: &Deployment, tag: &str) {
    let output = d.kolla("upgrade", &["web", "--tag", tag]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.serving(), Some(format!("version {tag}\n")));
}

/// The names of web's live and kept containers, in name order.
fn web_generations(d: &Deployment) -> Vec<String> {
    d.containers()
        .into_keys()
        .filter(|n| *n == d.container("web") || n.starts_with(&d.container("web.kolla-gen-")))
        .collect()
}

/// `kolla prune-images ARGS`, which must succeed; what it printed.
fn prune_images(d: &Deployment, args: &[&str]) -> String {
    let output = d.kolla("prune-images", args);
    assert!(output.status.success(), "{}", describe(&output));
    stdout(&output)
}

fn add_to_globals(d: &Deployment, line: &str) {
    let path = d.images.config_dir.join("globals.yml");
    let mut globals = std::fs::read_to_string(&path).expect("globals.yml");
    globals.push_str(line);
    std::fs::write(path, globals).expect("globals.yml");
}

#[test]
fn retain_from_globals_keeps_that_many_generations_across_plain_runs() {
    let tags = ["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"];
    let d = common::swap_deployment("retain-globals", &tags);
    add_to_globals(&d, "retain: 3\n");
    deploy_v1(&d);
    // Four upgrades, none with --retain: generations 1 to 5, 5 live.
    for tag in &tags[1..] {
        upgrade_to(&d, tag);
    }
    let three_kept = vec![
        d.container("web"),
        d.container("web.kolla-gen-2"),
        d.container("web.kolla-gen-3"),
        d.container("web.kolla-gen-4"),
    ];
    assert_eq!(
        web_generations(&d),
        three_kept,
        "globals.yml says retain: 3 (the built-in default keeps 2)"
    );
    // Recovery prunes kept generations beyond retain: a plain one keeps
    // the three.
    let output = d.kolla("recover", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(web_generations(&d), three_kept, "after a plain recover");
    // The flag wins over globals.yml for its run.
    let output = d.kolla("recover", &["--retain", "1"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        web_generations(&d),
        vec![d.container("web"), d.container("web.kolla-gen-4")],
        "after recover --retain 1"
    );
    // A value that is not a count is refused with the file and its line,
    // before any engine is touched.
    let path = d.images.config_dir.join("globals.yml");
    let globals = std::fs::read_to_string(&path).expect("globals.yml");
    std::fs::write(&path, globals.replace("retain: 3\n", "retain: -1\n")).expect("globals.yml");
    expect_exit(
        &d.kolla("recover", &[]),
        2,
        &["globals.yml", "line 5", "0 or more"],
    );
    assert_eq!(d.serving().as_deref(), Some("version 5.0.0\n"));
}

#[test]
fn prune_images_keeps_what_kept_generations_use_and_rollback_still_works() {
    let d = common::swap_deployment("prune-images", &["1.0.0", "2.0.0", "3.0.0", "4.0.0"]);
    let image = |tag: &str| format!("{}/fx-web:{tag}", d.images.namespace);
    deploy_v1(&d);
    upgrade_to(&d, "2.0.0");
    upgrade_to(&d, "3.0.0");
    // 4.0.0 was built and never deployed: no container uses it. "alias"
    // is a second tag of 2.0.0's image, which kept generation 2 uses.
    let tagged = docker(&["tag", &image("2.0.0"), &image("alias")]);
    assert!(tagged.status.success(), "{}", describe(&tagged));
    let containers = d.containers();
    let kept_2 = containers[&d.container("web.kolla-gen-2")].0.clone();

    // A run that holds web's lock keeps prune-images from removing
    // anything (exit 4, the holder named).
    let lock = d.take_lock("web");
    expect_exit(
        &d.kolla("prune-images", &[]),
        4,
        &["locked by a-test-operator"],
    );
    common::runtime()
        .block_on(kolla::deploy::lock::release(&d.images.engine, lock))
        .expect("release the test's lock");
    assert!(
        d.images.image(&image("4.0.0")).is_some(),
        "removed under a held lock"
    );

    let said = prune_images(&d, &["--dry-run"]);
    assert!(
        said.contains(&format!("would remove {}", image("4.0.0"))),
        "{said}"
    );
    assert!(said.contains("1 image, "), "{said}");
    assert!(
        d.images.image(&image("4.0.0")).is_some(),
        "the dry run removed it"
    );

    let said = prune_images(&d, &[]);
    assert!(
        said.contains(&format!("removed {}", image("4.0.0"))),
        "{said}"
    );
    assert!(said.contains("bytes) freed"), "{said}");
    // What 4.0.0 frees is its own layers: the shared busybox beneath it
    // stays (its size alone is more than a MiB).
    let base = d.images.image(common::shared_busybox()).expect("the base");
    let base_size = common::runtime()
        .block_on(d.images.engine.list_images())
        .expect("list images")
        .into_iter()
        .find(|i| i.id == base.id)
        .expect("the base listed")
        .size;
    let freed: u64 = said
        .split(" bytes) freed")
        .next()
        .and_then(|before| before.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count: {said}"));
    assert!(
        freed > 0 && freed < base_size,
        "{freed} of {base_size}: {said}"
    );
    assert!(d.images.image(&image("4.0.0")).is_none(), "{said}");
    for kept in ["1.0.0", "2.0.0", "3.0.0", "alias"] {
        assert!(
            d.images.image(&image(kept)).is_some(),
            "{kept} is gone, though a container uses its image: {said}"
        );
    }
    assert!(
        d.images.image(common::shared_busybox()).is_some(),
        "another namespace's image was removed"
    );
    // Nothing else changed: the same containers, no lock left behind.
    assert_eq!(d.containers(), containers);

    // Nothing left to remove.
    let said = prune_images(&d, &[]);
    assert!(said.contains("no unused kolla image"), "{said}");

    // The newest kept generation comes back, healthy, on its own image.
    let output = d.kolla("rollback", &["web"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.serving().as_deref(), Some("version 2.0.0\n"));
    let after = d.containers();
    assert_eq!(
        after[&d.container("web")],
        (kept_2, "running".to_string()),
        "the live container is not kept generation 2"
    );
}
