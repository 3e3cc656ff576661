//! `globals.yml`: the settings every image and service shares (registry,
//! namespace, tag, base image, build profiles). Missing keys take Kolla's
//! defaults; unknown keys are an error, so a typo never goes unnoticed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::release::Release;
use super::{ConfigError, names, reference};

/// The file name looked up inside `--config-dir`.
pub const GLOBALS_FILE: &str = "globals.yml";

/// Kept generations per service when neither globals.yml nor `--retain`
/// says.
pub const DEFAULT_RETAIN: usize = 2;

/// `retain:` as a whole number of kept generations, 0 or more. Written out
/// so that `-1`, `2.5` or `three` are refused saying what the key takes
/// (the YAML error adds the line and column).
fn retain_count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    struct Count;
    impl serde::de::Visitor<'_> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("retain: a whole number of kept generations per service, 0 or more")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<usize, E> {
            u64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                .and_then(|v| self.visit_u64(v))
        }
    }
    // `any`: the YAML reader's own u64 parse would refuse `-1` without
    // saying what the key takes.
    deserializer.deserialize_any(Count)
}

/// Settings shared by the image builder and the deployer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Globals {
    /// Registry host (and port) images are pushed to and pulled from. None
    /// means images live only on the engines that build them.
    pub registry: Option<String>,
    /// Repository path under the registry, e.g. `kolla`.
    pub namespace: String,
    /// Tag given to every image of one build (by default the release's
    /// name).
    pub tag: String,
    /// The image the tree's root (`base`) starts from (by default the
    /// release's Debian suite, as tools/make-base-image names it).
    pub base_image: String,
    pub base_distro: String,
    /// The Debian suite the base image is (by default the release's).
    pub base_distro_release: String,
    /// The OpenStack release the tree builds and the deployment runs.
    pub openstack_release: Release,
    /// `binary`: services come from the distribution's packages.
    pub install_type: String,
    pub maintainer: String,
    /// Named sets of image regexes, selected with `kolla build --profile`.
    pub profiles: BTreeMap<String, Vec<String>>,
    /// Label value that marks this deployment's containers (several
    /// deployments may share an engine).
    pub project: String,
    /// Prepended to every container and volume name kolla creates.
    pub container_prefix: String,
    /// Run each swap's critical section (stop, renames, start, gate, swap
    /// back) in a helper container on the node, so it finishes even if
    /// kolla or its link to the node dies. Off: kolla runs it itself.
    pub swap_helper: bool,
    /// The controller's address on the internal network: where services
    /// on every node reach the database, the message queue, memcached and
    /// Keystone. Loopback for an all-in-one.
    pub internal_address: String,
    /// Replaced containers kept per service for rollback (`--retain`
    /// overrides it for one run): a plain run keeps what the operator
    /// asked for here instead of pruning to the built-in default.
    #[serde(deserialize_with = "retain_count")]
    pub retain: usize,
    /// Which of the values the release implies were set in globals.yml or
    /// by a flag, so that a change of release leaves them be.
    #[serde(skip)]
    pub pinned: Pinned,
}

/// The values `openstack_release` implies that were set explicitly.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pinned {
    pub tag: bool,
    pub base_image: bool,
    pub base_distro_release: bool,
}

/// Which of those keys a globals.yml writes (any value; the value itself
/// is read, and checked, as part of `Globals`).
#[derive(Deserialize)]
struct GivenKeys {
    tag: Option<serde::de::IgnoredAny>,
    base_image: Option<serde::de::IgnoredAny>,
    base_distro_release: Option<serde::de::IgnoredAny>,
}

impl Default for Globals {
    fn default() -> Self {
        let profile = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        let release = Release::DEFAULT;
        Globals {
            registry: None,
            namespace: "kolla".into(),
            tag: release.default_tag().into(),
            base_image: release.base_image(),
            base_distro: "debian".into(),
            base_distro_release: release.debian_suite().into(),
            openstack_release: release,
            install_type: "binary".into(),
            maintainer: "kolla project".into(),
            profiles: BTreeMap::from([
                (
                    "infra".into(),
                    profile(&["^mariadb$", "^memcached$", "^rabbitmq$", "^data$"]),
                ),
                (
                    "main".into(),
                    profile(&["^keystone", "^glance", "^nova", "^placement", "^neutron"]),
                ),
                ("default".into(), profile(&[".*"])),
            ]),
            project: "kolla".into(),
            container_prefix: String::new(),
            swap_helper: true,
            internal_address: "127.0.0.1".into(),
            retain: DEFAULT_RETAIN,
            pinned: Pinned::default(),
        }
    }
}

/// One path component of a repository name.
static PATH_COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("static regex"));

/// `error` (a value of globals.yml refused) with the line of the key its
/// message starts with, when the file writes that key.
fn at_line_of_key(error: ConfigError, text: &str) -> ConfigError {
    let ConfigError::Invalid { path, message } = error else {
        return error;
    };
    let key: String = message
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
        .collect();
    let line = text
        .lines()
        .position(|l| !key.is_empty() && l.starts_with(&format!("{key}:")));
    let message = match line {
        Some(index) => format!("line {}: {message}", index + 1),
        None => message,
    };
    ConfigError::Invalid { path, message }
}

/// Whether `name` may be used as one component of an image repository.
pub fn is_valid_path_component(name: &str) -> bool {
    PATH_COMPONENT.is_match(name)
}

impl Globals {
    /// Read `globals.yml` from `dir`. With `required` false (the default
    /// directory), a missing directory or file means "all defaults"; with it
    /// true (the operator named the directory), a missing directory is an
    /// error.
    pub fn load(dir: &Path, required: bool) -> Result<Globals, ConfigError> {
        if !dir.is_dir() {
            return if required {
                Err(ConfigError::MissingDir(dir.to_path_buf()))
            } else {
                Ok(Globals::default())
            };
        }
        let path = dir.join(GLOBALS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Globals::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Globals::parse(&text, &path)
    }

    /// Parse globals from YAML text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Globals, ConfigError> {
        // An empty file (or one holding only comments) means all defaults.
        let yaml_error = |e: serde_saphyr::Error| ConfigError::Yaml {
            path: path.to_path_buf(),
            message: crate::config::yaml::error_text(&e, text),
        };
        let globals: Globals = if text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "---"
        }) {
            Globals::default()
        } else {
            let mut globals: Globals = serde_saphyr::from_str(text).map_err(yaml_error)?;
            let given: GivenKeys = serde_saphyr::from_str(text).map_err(yaml_error)?;
            globals.pinned = Pinned {
                tag: given.tag.is_some(),
                base_image: given.base_image.is_some(),
                base_distro_release: given.base_distro_release.is_some(),
            };
            globals.follow_release();
            globals
        };
        globals
            .validate(path)
            .map_err(|e| at_line_of_key(e, text))?;
        Ok(globals)
    }

    /// Give the values the release implies to those not set explicitly.
    fn follow_release(&mut self) {
        let release = self.openstack_release;
        if !self.pinned.tag {
            self.tag = release.default_tag().into();
        }
        if !self.pinned.base_image {
            self.base_image = release.base_image();
        }
        if !self.pinned.base_distro_release {
            self.base_distro_release = release.debian_suite().into();
        }
    }

    /// These globals for `release` (`--release`): the tag, base image and
    /// suite follow it, unless globals.yml or a flag set them.
    pub fn set_release(&mut self, release: Release) {
        self.openstack_release = release;
        self.follow_release();
    }

    /// `--tag`: this tag, whatever the release.
    pub fn set_tag(&mut self, tag: &str) {
        self.tag = tag.to_string();
        self.pinned.tag = true;
    }

    /// `--base-image`: this base, whatever the release.
    pub fn set_base_image(&mut self, image: &str) {
        self.base_image = image.to_string();
        self.pinned.base_image = true;
    }

    /// Check every value that ends up in an image reference against
    /// Docker's grammar, so a bad value fails here and not mid-build.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if !reference::is_valid_tag(&self.tag) {
            return Err(invalid(format!(
                "tag {:?} is not a valid Docker tag (letters, digits, '_', '.', '-'; at most 128)",
                self.tag
            )));
        }
        if self
            .namespace
            .split('/')
            .any(|c| !is_valid_path_component(c))
        {
            return Err(invalid(format!(
                "namespace {:?} is not a valid repository path (lowercase letters, digits, separators)",
                self.namespace
            )));
        }
        if self.internal_address.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!(
                "internal_address {:?} is not an IP address",
                self.internal_address
            )));
        }
        if let Some(registry) = &self.registry
            && !reference::is_valid_domain(registry)
        {
            return Err(invalid(format!(
                "registry {registry:?} is not a host[:port]"
            )));
        }
        if !is_valid_path_component(&self.project) {
            return Err(invalid(format!(
                "project {:?} must be lowercase letters, digits and separators",
                self.project
            )));
        }
        if !self
            .container_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(invalid(format!(
                "container_prefix {:?} may use only letters, digits, '_', '.', '-'",
                self.container_prefix
            )));
        }
        let release = self.openstack_release;
        if self.base_distro_release != release.debian_suite() {
            return Err(invalid(format!(
                "base_distro_release {:?}: openstack_release {release} comes from Debian {}; leave base_distro_release out, or pick the release that suite carries",
                self.base_distro_release,
                release.debian_suite()
            )));
        }
        self.validate_engine_names().map_err(invalid)?;
        for (name, patterns) in &self.profiles {
            for pattern in patterns {
                if let Err(e) = Regex::new(pattern) {
                    return Err(invalid(format!(
                        "profile {name}: {pattern:?} is not a valid regex: {e}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The names the engine gets from these values: the containers the
    /// prefix starts, the base image and the tree's image references.
    fn validate_engine_names(&self) -> Result<(), String> {
        for name in names::kolla_prefix_names(&self.container_prefix) {
            names::check_container_name(&name).map_err(|e| {
                format!(
                    "container_prefix {:?} starts every name kolla gives, and {e}; start it with a letter or digit",
                    self.container_prefix
                )
            })?;
        }
        reference::parse(&self.base_image)
            .map_err(|e| format!("base_image {:?} {e}", self.base_image))?;
        // Each part may be fine and their sum too long.
        reference::parse(&self.image_ref("base")).map_err(|e| {
            format!(
                "namespace {:?}: the image references it makes ({}) are refused: it {e}",
                self.namespace,
                self.image_ref("<image>")
            )
        })?;
        Ok(())
    }

    /// `registry/namespace/` (or `namespace/`): what every image of the tree
    /// starts with.
    pub fn image_prefix(&self) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}/", self.namespace),
            None => format!("{}/", self.namespace),
        }
    }

    /// The variables compose files may interpolate, upper-case as in
    /// `${REGISTRY}`, `${TAG}`, `${IMAGE_PREFIX}`.
    pub fn compose_variables(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "REGISTRY".to_string(),
                self.registry.clone().unwrap_or_default(),
            ),
            ("NAMESPACE".to_string(), self.namespace.clone()),
            ("TAG".to_string(), self.tag.clone()),
            ("IMAGE_PREFIX".to_string(), self.image_prefix()),
            (
                "OPENSTACK_RELEASE".to_string(),
                self.openstack_release.to_string(),
            ),
            ("PROJECT".to_string(), self.project.clone()),
            (
                "CONTAINER_PREFIX".to_string(),
                self.container_prefix.clone(),
            ),
            (
                "INTERNAL_ADDRESS".to_string(),
                self.internal_address.clone(),
            ),
        ])
    }

    /// The full reference of image `name` of this build.
    pub fn image_ref(&self, name: &str) -> String {
        format!("{}{name}:{}", self.image_prefix(), self.tag)
    }
}

/// Where `globals.yml` is read from when `--config-dir` is not given.
pub fn default_config_dir() -> PathBuf {
    PathBuf::from("/etc/kolla")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Globals, ConfigError> {
        Globals::parse(text, Path::new("globals.yml"))
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("# nothing\n").unwrap(), Globals::default());
    }

    #[test]
    fn values_override_defaults() {
        let g = parse("registry: 127.0.0.1:4000\ntag: \"1.2.3\"\n").unwrap();
        assert_eq!(g.registry.as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(
            g.image_ref("glance-api"),
            "127.0.0.1:4000/kolla/glance-api:1.2.3"
        );
        assert_eq!(g.namespace, Globals::default().namespace);
    }

    #[test]
    fn a_release_brings_its_tag_base_image_and_suite() {
        let g = parse("openstack_release: epoxy\n").unwrap();
        assert_eq!(g.openstack_release, Release::Epoxy);
        assert_eq!(g.tag, "epoxy");
        assert_eq!(g.base_image, "debian:trixie");
        assert_eq!(g.base_distro_release, "trixie");
        assert_eq!(g.compose_variables()["OPENSTACK_RELEASE"], "epoxy");
        let zed = parse("openstack_release: zed\n").unwrap();
        assert_eq!(
            (zed.tag.as_str(), zed.base_image.as_str()),
            ("zed", "debian:bookworm")
        );
        let default = parse("namespace: k\n").unwrap();
        assert_eq!(default.openstack_release, Release::Epoxy, "the newest");
        assert_eq!(
            (default.tag.as_str(), default.base_image.as_str()),
            ("epoxy", "debian:trixie")
        );
    }

    #[test]
    fn a_tag_or_base_image_written_in_the_file_stays_whatever_the_release() {
        let mut g = parse(
            "openstack_release: epoxy\ntag: \"31.0.1\"\nbase_image: mirror.local/debian:13\n",
        )
        .unwrap();
        assert_eq!(g.tag, "31.0.1");
        assert_eq!(g.base_image, "mirror.local/debian:13");
        g.set_release(Release::Zed);
        assert_eq!(g.tag, "31.0.1", "the file's tag stays");
        assert_eq!(g.base_image, "mirror.local/debian:13");
        assert_eq!(g.base_distro_release, "bookworm", "the suite follows");
        let mut plain = parse("namespace: k\n").unwrap();
        plain.set_release(Release::Epoxy);
        assert_eq!(
            (plain.tag.as_str(), plain.base_image.as_str()),
            ("epoxy", "debian:trixie")
        );
        plain.set_tag("2.0.0");
        plain.set_release(Release::Zed);
        assert_eq!(plain.tag, "2.0.0", "a flag's tag stays too");
    }

    #[test]
    fn a_suite_that_does_not_carry_the_release_is_refused_at_its_line() {
        let err = parse("openstack_release: epoxy\nbase_distro_release: bookworm\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("globals.yml: line 2: base_distro_release"),
            "{err}"
        );
        assert!(err.contains("epoxy comes from Debian trixie"), "{err}");
        assert!(parse("openstack_release: zed\nbase_distro_release: bookworm\n").is_ok());
    }

    #[test]
    fn an_unknown_release_names_the_known_ones() {
        let err = parse("tag: x\nopenstack_release: caracal\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("globals.yml:"), "{err}");
        assert!(err.contains("caracal") && err.contains("epoxy"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let err = parse("tag: zed\nregsitry: x\n").unwrap_err().to_string();
        assert!(err.starts_with("globals.yml:"), "{err}");
        assert!(err.contains("regsitry"), "{err}");
        assert!(err.contains('2'), "line missing: {err}");
    }

    #[test]
    fn retain_is_a_count_of_kept_generations_refused_with_its_line_otherwise() {
        assert_eq!(parse("tag: x\n").unwrap().retain, DEFAULT_RETAIN);
        assert_eq!(parse("retain: 5\n").unwrap().retain, 5);
        assert_eq!(parse("retain: 0\n").unwrap().retain, 0);
        for bad in ["-1", "2.5", "three", "\"3\"", "[3]", "null"] {
            let err = parse(&format!("tag: x\nretain: {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("globals.yml:"), "{bad}: {err}");
            assert!(err.contains("line 2"), "{bad}: {err}");
            assert!(err.contains("0 or more"), "{bad}: {err}");
        }
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse("profiles: 3\n").unwrap_err().to_string();
        assert!(err.contains("globals.yml"), "{err}");
    }

    #[test]
    fn bad_tag_and_namespace_are_refused() {
        assert!(
            parse("tag: \"a b\"\n")
                .unwrap_err()
                .to_string()
                .contains("tag")
        );
        assert!(
            parse("namespace: Kolla\n")
                .unwrap_err()
                .to_string()
                .contains("namespace")
        );
        assert!(
            parse("registry: \"http://x\"\n")
                .unwrap_err()
                .to_string()
                .contains("registry")
        );
        assert!(
            parse("profiles: {p: [\"(\"]}\n")
                .unwrap_err()
                .to_string()
                .contains("profile p")
        );
    }

    #[test]
    fn values_that_make_names_the_engine_refuses_are_refused_with_their_line() {
        let err = parse("project: x\ncontainer_prefix: \"-\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("globals.yml: line 2: container_prefix \"-\""),
            "{err}"
        );
        assert!(parse("container_prefix: \"k-\"\n").is_ok());
        let err = parse("tag: zed\nbase_image: \"debian bookworm\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("globals.yml: line 2: base_image"), "{err}");
        assert!(parse("base_image: Debian\n").is_err());
        assert!(parse("base_image: r.io:5000/debian@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n").is_ok());
        // Each part valid, the whole reference too long.
        let long = format!("namespace: {}\n", "n".repeat(250));
        let err = parse(&long).unwrap_err().to_string();
        assert!(err.starts_with("globals.yml: line 1: namespace"), "{err}");
        assert!(err.contains("at most 255"), "{err}");
        assert!(parse("registry: \"[::1]:5000\"\n").is_err());
    }
}
