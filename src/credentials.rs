//! Registry credentials, found where the docker CLI keeps them: the
//! operator's Docker config (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): its `auths` (written by `docker login`), and
//! its credential helpers (`credHelpers` per registry, `credsStore` for
//! all), which are asked as the CLI asks them
//! (`docker-credential-<name> get`, the registry on stdin). kolla sends
//! them with each pull and push, so nodes need no login of their own.
//!
//! No config file, or no entry for a registry, means anonymous access.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

/// Docker Hub's key in the config, as the CLI writes it.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// What a registry is told (the engine's plain type).
pub use crate::engine::RegistryAuth as Credentials;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("credential helper docker-credential-{helper} for {server}: {message}")]
    Helper {
        helper: String,
        server: String,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The operator's Docker config, read once.
#[derive(Debug, Default)]
pub struct Store {
    path: PathBuf,
    config: RawConfig,
}

impl Store {
    /// The config in `dir` (config.json); none there is an empty store.
    pub fn load(dir: &Path) -> Result<Store, CredentialsError> {
        let path = dir.join("config.json");
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| CredentialsError::Config {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RawConfig::default(),
            Err(e) => {
                return Err(CredentialsError::Config {
                    path,
                    message: e.to_string(),
                });
            }
        };
        Ok(Store { path, config })
    }

    /// The credentials for the registry `image` comes from, if the config
    /// has any.
    pub fn for_image(&self, image: &str) -> Result<Option<Credentials>, CredentialsError> {
        let server = registry_of(image);
        let helper = self
            .config
            .cred_helpers
            .get(&server)
            .or(self.config.creds_store.as_ref());
        if let Some(helper) = helper {
            return ask_helper(helper, &server);
        }
        let Some(auth) = self.lookup(&server) else {
            return Ok(None);
        };
        self.decode(&server, auth).map(Some)
    }

    /// The `auths` entry of `server`, also under the URL forms the CLI
    /// writes (`https://host/`, `http://host`) and, for Docker Hub, under
    /// any of its names.
    fn lookup(&self, server: &str) -> Option<&RawAuth> {
        let wanted = canonical(server);
        self.config
            .auths
            .iter()
            .find_map(|(key, auth)| (canonical(key) == wanted).then_some(auth))
    }

    fn decode(&self, server: &str, auth: &RawAuth) -> Result<Credentials, CredentialsError> {
        let (mut username, mut password) = (auth.username.clone(), auth.password.clone());
        if let Some(encoded) = &auth.auth {
            let bad = |message: String| CredentialsError::Config {
                path: self.path.clone(),
                message: format!("auths.{server}.auth: {message}"),
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| bad(format!("not base64 ({e})")))?;
            let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| bad("expected base64 of user:password".into()))?;
            username = Some(user.to_string());
            password = Some(pass.to_string());
        }
        Ok(Credentials {
            server: server.to_string(),
            username,
            password,
            identity_token: auth.identitytoken.clone(),
        })
    }
}

/// The registry an image reference names: its first component when that
/// looks like a host (a dot, a port, or `localhost`), else Docker Hub.
/// Docker Hub is always named by the key `docker login` stores it under,
/// whichever of its names the image uses (`docker.io/library/busybox`,
/// `busybox`), so its credentials are found either way.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            canonical(first)
        }
        _ => DOCKER_HUB.to_string(),
    }
}

/// A registry as one string: the host (`reg.example:5000`) without the
/// scheme, path or trailing slash the CLI may have written, and Docker Hub
/// by its config key whatever name it was given.
fn canonical(server: &str) -> String {
    let bare = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let bare = bare.strip_suffix("/v1").unwrap_or(bare);
    match bare {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        host => host.to_string(),
    }
}

/// `docker-credential-<helper> get`, with the registry on stdin.
fn ask_helper(helper: &str, server: &str) -> Result<Option<Credentials>, CredentialsError> {
    let failed = |message: String| CredentialsError::Helper {
        helper: helper.to_string(),
        server: server.to_string(),
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    let said = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // The protocol's answer for "nothing stored": anonymous access.
        if said.contains("credentials not found") {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("{} {}", said.trim(), err.trim())));
    }
    let answer: HelperAnswer =
        serde_json::from_str(&said).map_err(|e| failed(format!("unreadable answer: {e}")))?;
    // A username of <token> means the secret is an identity token.
    let token = answer.username == "<token>";
    Ok(Some(Credentials {
        server: server.to_string(),
        username: (!token).then_some(answer.username),
        password: (!token).then(|| answer.secret.clone()),
        identity_token: token.then_some(answer.secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_of_image_references() {
        assert_eq!(
            registry_of("registry.example:5000/kolla/nova:zed"),
            "registry.example:5000"
        );
        assert_eq!(
            registry_of("127.0.0.1:4000/kolla/nova:zed"),
            "127.0.0.1:4000"
        );
        assert_eq!(registry_of("localhost/kolla/nova"), "localhost");
        assert_eq!(registry_of("kolla/nova:zed"), DOCKER_HUB);
        assert_eq!(registry_of("busybox"), DOCKER_HUB);
        assert_eq!(registry_of("docker.io/kolla/nova:zed"), DOCKER_HUB);
        assert_eq!(registry_of("index.docker.io/library/busybox"), DOCKER_HUB);
    }

    #[test]
    fn docker_hub_images_find_the_login_docker_stores() {
        let dir = tempfile::tempdir().expect("temp dir");
        // `docker login` without a server writes this key; "b3BzOnB3" is
        // base64 of ops:pw.
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "b3BzOnB3"}}}"#,
        )
        .expect("config");
        let store = Store::load(dir.path()).expect("store");
        for image in [
            "docker.io/kolla/keystone:epoxy",
            "docker.io/library/busybox",
            "kolla/keystone:epoxy",
            "busybox",
        ] {
            let found = store
                .for_image(image)
                .expect("lookup")
                .unwrap_or_else(|| panic!("{image}: no credentials"));
            assert_eq!(found.server, DOCKER_HUB, "{image}");
            assert_eq!(found.username.as_deref(), Some("ops"), "{image}");
        }
        // Another registry does not get Docker Hub's login.
        assert_eq!(
            store.for_image("quay.io/kolla/keystone").expect("lookup"),
            None
        );
    }

    #[test]
    fn auths_helpers_and_bad_entries() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"https://reg.example:5000/": {"auth": "b3BzOnMzY3IzdDpwYXJ0"},
                          "bad.example": {"auth": "%%%"}},
                "credHelpers": {"helped.example": "kolla-test-none"}}"#,
        )
        .expect("config");
        let store = Store::load(dir.path()).expect("store");
        let found = store
            .for_image("reg.example:5000/kolla/keystone:zed")
            .expect("lookup")
            .expect("credentials");
        assert_eq!(found.username.as_deref(), Some("ops"));
        // Only the first colon splits: passwords may hold colons.
        assert_eq!(found.password.as_deref(), Some("s3cr3t:part"));
        assert!(!format!("{found:?}").contains("s3cr3t"));
        assert_eq!(store.for_image("other.example/x").expect("lookup"), None);
        let err = store.for_image("bad.example/x").unwrap_err().to_string();
        assert!(err.contains("auths.bad.example.auth: not base64"), "{err}");
        let err = store.for_image("helped.example/x").unwrap_err().to_string();
        assert!(err.contains("docker-credential-kolla-test-none"), "{err}");
        // No config at all: anonymous.
        let empty = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            Store::load(empty.path())
                .expect("store")
                .for_image("a.b/c")
                .expect("lookup"),
            None
        );
    }
}
