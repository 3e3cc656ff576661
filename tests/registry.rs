//! A registry that wants a login, as private registries do: kolla takes the
//! credentials from the operator's Docker config (as `docker login` wrote
//! them) for its pushes and the nodes' pulls; a wrong password is a clear
//! error that names the image, and nothing is deployed.

mod common;

use base64::Engine as _;
use common::{Bounded, Deployment, Registry, describe, expect_exit};

/// A Docker config folder as `docker login` leaves it.
fn docker_config(registry: &str, user: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#),
    )
    .expect("config.json");
    dir
}

#[test]
fn pushes_and_pulls_use_the_operators_registry_login() {
    let password = "kolla-test-s3cret";
    let registry = Registry::with_login("operator", password);
    let good = docker_config(&registry.address, "operator", password);
    let bad = docker_config(&registry.address, "operator", "wrong-password");
    let d = Deployment::new("regauth");

    // Push fx-base with the login; without it the registry refuses.
    let push = |config: &std::path::Path| {
        d.images
            .build_command(&["^fx-base$", "--registry", &registry.address, "--push"])
            .env("DOCKER_CONFIG", config)
            .bounded_output()
            .expect("run kolla build")
    };
    let refused = push(bad.path());
    expect_exit(&refused, 1, &["push failed"]);
    let pushed = push(good.path());
    assert!(pushed.status.success(), "{}", describe(&pushed));

    // The deployment's image is only in the registry now.
    let image = format!("{}/{}", registry.address, d.images.image_ref("fx-base"));
    let rt = common::runtime();
    rt.block_on(d.images.engine.remove_image(&image, true))
        .expect("remove the local copy");
    let deploy = |config: &std::path::Path| {
        d.command("deploy", &[])
            .env("IMAGE", &image)
            .env("DOCKER_CONFIG", config)
            .bounded_output()
            .expect("run kolla deploy")
    };
    let output = deploy(bad.path());
    expect_exit(&output, 1, &[image.as_str()]);
    assert!(d.containers().is_empty(), "{:?}", d.containers());
    let output = deploy(good.path());
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!d.containers().is_empty());
    rt.block_on(d.images.engine.remove_image(&image, true))
        .expect("remove the pulled image");
}
