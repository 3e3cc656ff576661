//! A container registry of its own on loopback for a test (the engine
//! pulls from loopback over plain HTTP), with no login or one user's, and
//! stopped when dropped; and image tags a test made, removed with it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Bounded, describe, free_port, runtime};

pub struct Registry {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry anyone may push to and pull from.
    pub fn start() -> Registry {
        Registry::serve(tempfile::tempdir().expect("temp dir"), "")
    }

    /// A registry that accepts only `user` with `password`, as private
    /// registries do.
    pub fn with_login(user: &str, password: &str) -> Registry {
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
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
        let auth = format!(
            "auth:\n  htpasswd:\n    realm: kolla-test\n    path: {}\n",
            htpasswd.display()
        );
        Registry::serve(dir, &auth)
    }

    /// Serve from `dir`, with `extra` added to the configuration; once it
    /// answers.
    fn serve(dir: tempfile::TempDir, extra: &str) -> Registry {
        let address = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n{extra}",
            dir.path().join("data").display(),
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
        let registry = Registry {
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

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An image tag this test made, removed with it.
pub struct OwnTag(pub String);

impl Drop for OwnTag {
    fn drop(&mut self) {
        let _ = runtime().block_on(super::engine().remove_image(&self.0, true));
    }
}
