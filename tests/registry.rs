//! A registry that wants a login, as private registries do: kolla takes the
//! credentials from the operator's Docker config (as `docker login` wrote
//! them) for its pushes and the nodes' pulls; a wrong password is a clear
//! error that names the image, and nothing is deployed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Bounded, Deployment, describe, expect_exit, free_port};

/// A registry on loopback that accepts only `user` with `password`.
struct AuthRegistry {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    fn start(user: &str, password: &str) -> AuthRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let hashed = Command::new("python3")
            .args([
                "-c",
                "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                password,
            ])
            .bounded_output()
            .expect("python3 for a bcrypt hash");
        assert!(hashed.status.success(), "{}", describe(&hashed));
        let hash = String::from_utf8_lossy(&hashed.stdout).trim().to_string();
        assert!(hash.starts_with("$2"), "no bcrypt hash: {hash}");
        std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).expect("htpasswd");
        let address = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: {address}\nauth:\n  htpasswd:\n    realm: kolla-test\n    path: {htpasswd}\n",
            root = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("registry.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (tools/setup installs it)");
        let registry = AuthRegistry {
            child,
            address,
            _dir: dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the registry did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let registry = AuthRegistry::start("operator", password);
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
