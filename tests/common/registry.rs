//! A container registry of its own on loopback for a test (no login: the
//! engine pulls from loopback over plain HTTP), stopped when dropped, and
//! image tags a test made, removed with it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, runtime};

/// A registry of its own on loopback, with no login (the engine pulls
/// from loopback over plain HTTP).
pub struct Registry {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let address = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
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
