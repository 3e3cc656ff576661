//! What the user typed (`cli`), resolved once into the settings every verb
//! works from: globals.yml with the command line's overrides applied and
//! validated, the folders, the engine endpoint of each node, and what the
//! environment says (compose variables, `DOCKER_HOST`, `NO_COLOR`, the
//! user). This is the one place that reads the operator's environment:
//! later code gets values, never `std::env` (ripgrep's low args -> high
//! args). Two internal channels stay where they are used: the swap
//! helper's task (a hidden flag) and the test-only fault points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::{BuildArgs, Cli, ColorChoice};
use crate::config::inventory::Node;
use crate::config::release::Release;
use crate::config::{ConfigError, Globals, globals};
use crate::credentials::CredentialsError;
use crate::engine::{Deadlines, Endpoint, TlsFiles};
pub use crate::progress::Verbosity;

/// The resolved settings of one kolla run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// globals.yml, validated, with the verb's overrides applied.
    pub globals: Globals,
    pub config_dir: PathBuf,
    /// Where the history log lives.
    pub state_dir: PathBuf,
    pub environment: Environment,
    /// Nodes worked on at once (`--forks`).
    pub forks: usize,
    /// How long each kind of engine request may take (`--engine-timeout`).
    pub deadlines: Deadlines,
    /// Whether human output on stderr is coloured (`colour_for`).
    pub colour: bool,
    /// How much progress stderr shows (`--quiet`, `-v`).
    pub verbosity: Verbosity,
}

/// What kolla reads from its environment, read once.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Every variable, for compose files' `${VAR}` (compose reads the
    /// shell's environment the same way).
    pub variables: BTreeMap<String, String>,
    /// Who runs kolla: history records and lock holders name them.
    pub user: String,
    /// The engine of a node without a `docker:` URL (and of `build`).
    pub local_endpoint: Endpoint,
    /// Colour allowed by the environment (`NO_COLOR` unset or empty); the
    /// command line may still decide otherwise (`colour_for`).
    pub colour: bool,
    /// The ssh client configuration for `ssh://` nodes (`KOLLA_SSH_CONFIG`;
    /// None: the user's own).
    pub ssh_config: Option<PathBuf>,
    /// The Docker config folder (`DOCKER_CONFIG`, else ~/.docker), for
    /// registry credentials.
    pub docker_config: PathBuf,
}

impl Environment {
    /// Read this process's environment.
    pub fn read() -> Environment {
        Environment::from_variables(std::env::vars().collect())
    }

    /// The settings a given set of variables makes (pure: tests use it).
    pub fn from_variables(variables: BTreeMap<String, String>) -> Environment {
        let get = |key: &str| variables.get(key).filter(|v| !v.is_empty()).cloned();
        let user = get("USER")
            .or_else(|| get("LOGNAME"))
            .unwrap_or_else(|| "unknown".into());
        let colour = get("NO_COLOR").is_none();
        let ssh_config = get("KOLLA_SSH_CONFIG").map(PathBuf::from);
        let docker_config = get("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|home| PathBuf::from(home).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        let mut local_endpoint = docker_cli_endpoint(&get);
        local_endpoint.ssh_config = ssh_config.clone();
        Environment {
            variables,
            user,
            local_endpoint,
            colour,
            ssh_config,
            docker_config,
        }
    }
}

/// Whether to colour: `--color always|never` wins (no-color.org: a flag
/// the operator typed overrides NO_COLOR), else colour only a terminal
/// and only when NO_COLOR allows it. Escape codes in a CI log or a file
/// are noise.
pub fn colour_for(choice: ColorChoice, environment_allows: bool, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => environment_allows && terminal,
    }
}

/// The endpoint the docker CLI would use: DOCKER_HOST (default the local
/// socket), with TLS when DOCKER_TLS_VERIFY is set, from the certificates
/// in DOCKER_CERT_PATH (default ~/.docker).
fn docker_cli_endpoint(get: &dyn Fn(&str) -> Option<String>) -> Endpoint {
    let url = get("DOCKER_HOST").unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
    let verify = get("DOCKER_TLS_VERIFY").is_some_and(|v| v != "0");
    let tls = verify.then(|| {
        let dir = get("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    });
    Endpoint {
        url,
        tls,
        ssh_config: None,
    }
}

impl Settings {
    /// Read globals.yml from the config folder (required only when the
    /// operator named the folder) and the environment.
    pub fn resolve(cli: &Cli, environment: Environment) -> Result<Settings, ConfigError> {
        let (config_dir, required) = match &cli.config_dir {
            Some(dir) => (dir.clone(), true),
            None => (globals::default_config_dir(), false),
        };
        let globals = Globals::load(&config_dir, required)?;
        globals.validate(&config_dir.join(globals::GLOBALS_FILE))?;
        Ok(Settings {
            globals,
            config_dir,
            state_dir: cli.state_dir.clone(),
            forks: usize::from(cli.forks),
            deadlines: Deadlines {
                answer: std::time::Duration::from_secs(cli.engine_timeout),
            },
            colour: colour_for(
                cli.color,
                environment.colour,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ),
            verbosity: Verbosity::from_flags(cli.quiet, cli.verbose),
            environment,
        })
    }

    fn globals_file(&self) -> PathBuf {
        self.config_dir.join(globals::GLOBALS_FILE)
    }

    /// These settings with `--release` and `--tag` in place of
    /// globals.yml's (a tag given wins over the release's own).
    pub fn with_release_and_tag(
        &self,
        release: Option<Release>,
        tag: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        let mut settings = self.clone();
        settings.globals = apply_release_and_tag(settings.globals, release, tag)?;
        Ok(settings)
    }

    /// Globals for `kolla build`: the command line's image overrides
    /// applied and validated, and `--push` checked against a registry.
    pub fn build_globals(&self, args: &BuildArgs) -> Result<Globals, ConfigError> {
        // One flag at a time, so an error names the flag that caused it
        // (globals.yml itself was checked as it was read).
        let mut globals =
            apply_release_and_tag(self.globals.clone(), args.release, args.tag.as_deref())?;
        if let Some(namespace) = &args.namespace {
            globals.namespace = namespace.clone();
            globals.validate(Path::new("--namespace"))?;
        }
        if let Some(registry) = &args.registry {
            globals.registry = Some(registry.clone());
            globals.validate(Path::new("--registry"))?;
        }
        if let Some(base) = &args.base_image {
            globals.set_base_image(base);
            globals.validate(Path::new("--base-image"))?;
        }
        let origin = self.globals_file();
        if args.push && globals.registry.is_none() {
            return Err(ConfigError::Invalid {
                path: origin,
                message:
                    "--push needs a registry: set `registry` in globals.yml or pass --registry"
                        .into(),
            });
        }
        Ok(globals)
    }

    /// The engine endpoint of a node: its `docker:` URL (and TLS files),
    /// else the one the environment names.
    pub fn endpoint(&self, node: &Node) -> Endpoint {
        match &node.docker {
            None => self.environment.local_endpoint.clone(),
            Some(url) => Endpoint {
                url: url.clone(),
                tls: node.tls.as_ref().map(|t| TlsFiles {
                    ca: t.ca.clone(),
                    cert: t.cert.clone(),
                    key: t.key.clone(),
                }),
                ssh_config: self.environment.ssh_config.clone(),
            },
        }
    }

    /// The operator's registry credentials (their Docker config).
    pub fn credentials(&self) -> Result<crate::credentials::Store, CredentialsError> {
        crate::credentials::Store::load(&self.environment.docker_config)
    }

    /// Active compose profiles: `--profile`, else `COMPOSE_PROFILES` from
    /// the environment or the compose folder's `.env`, as compose does.
    pub fn profiles(&self, given: &[String], dotenv: &BTreeMap<String, String>) -> Vec<String> {
        if !given.is_empty() {
            return given.to_vec();
        }
        self.environment
            .variables
            .get("COMPOSE_PROFILES")
            .or_else(|| dotenv.get("COMPOSE_PROFILES"))
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `--release`, then `--tag`, each checked under its flag's name.
fn apply_release_and_tag(
    mut globals: Globals,
    release: Option<Release>,
    tag: Option<&str>,
) -> Result<Globals, ConfigError> {
    if let Some(release) = release {
        globals.set_release(release);
        globals.validate(Path::new("--release"))?;
    }
    if let Some(tag) = tag {
        globals.set_tag(tag);
        globals.validate(Path::new("--tag"))?;
    }
    Ok(globals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_variables(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_release_flag_moves_the_tag_unless_a_tag_is_given() {
        let globals =
            apply_release_and_tag(Globals::default(), Some(Release::Epoxy), None).unwrap();
        assert_eq!(
            (globals.tag.as_str(), globals.base_image.as_str()),
            ("epoxy", "debian:trixie")
        );
        let globals =
            apply_release_and_tag(Globals::default(), Some(Release::Epoxy), Some("31.0.1"))
                .unwrap();
        assert_eq!(globals.tag, "31.0.1");
        let err = apply_release_and_tag(Globals::default(), None, Some("a b")).unwrap_err();
        assert!(err.to_string().starts_with("--tag:"), "{err}");
    }

    #[test]
    fn the_local_endpoint_follows_the_docker_cli_variables() {
        let plain = environment(&[]);
        assert_eq!(plain.local_endpoint.url, "unix:///var/run/docker.sock");
        assert!(plain.local_endpoint.tls.is_none());
        let tls = environment(&[
            ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/certs"),
        ]);
        assert_eq!(tls.local_endpoint.url, "tcp://10.0.0.5:2376");
        let files = tls.local_endpoint.tls.expect("TLS files");
        assert_eq!(files.ca, PathBuf::from("/certs/ca.pem"));
        let off = environment(&[("DOCKER_TLS_VERIFY", "0"), ("HOME", "/h")]);
        assert!(off.local_endpoint.tls.is_none());
    }

    #[test]
    fn user_and_colour_come_from_the_environment() {
        assert_eq!(environment(&[("LOGNAME", "ops")]).user, "ops");
        assert_eq!(
            environment(&[("USER", "root"), ("LOGNAME", "ops")]).user,
            "root"
        );
        assert_eq!(environment(&[]).user, "unknown");
        assert!(environment(&[("NO_COLOR", "")]).colour);
        assert!(!environment(&[("NO_COLOR", "1")]).colour);
    }

    /// From the operator's environment and flag to the line printed: no
    /// escape code with NO_COLOR or with `--color never`, even on a
    /// terminal, where colour is otherwise on.
    #[test]
    fn no_color_and_color_never_leave_no_escape_codes() {
        use crate::progress::{Finished, Tone, result_line};
        let failed = Finished {
            word: "failed",
            tone: Tone::Bad,
        };
        let line = |choice, variables: &[(&str, &str)]| {
            let colour = colour_for(choice, environment(variables).colour, true);
            result_line("glance-api", failed, ": boom", colour)
        };
        for plain in [
            line(ColorChoice::Auto, &[("NO_COLOR", "1")]),
            line(ColorChoice::Never, &[]),
        ] {
            assert_eq!(plain, "glance-api: failed: boom");
        }
        assert!(line(ColorChoice::Auto, &[]).contains('\x1b'));
        assert!(line(ColorChoice::Always, &[("NO_COLOR", "1")]).contains('\x1b'));
    }

    #[test]
    fn the_color_flag_wins_over_no_color_and_auto_needs_a_terminal() {
        let no_color = environment(&[("NO_COLOR", "1")]).colour;
        assert!(!colour_for(ColorChoice::Auto, no_color, true));
        assert!(colour_for(ColorChoice::Always, no_color, false));
        let allowed = environment(&[]).colour;
        assert!(colour_for(ColorChoice::Auto, allowed, true));
        assert!(!colour_for(ColorChoice::Auto, allowed, false));
        assert!(!colour_for(ColorChoice::Never, allowed, true));
    }

    #[test]
    fn profiles_come_from_the_flag_then_the_environment_then_dotenv() {
        let settings = Settings {
            globals: Globals::default(),
            config_dir: PathBuf::new(),
            state_dir: PathBuf::new(),
            environment: environment(&[("COMPOSE_PROFILES", "a, b,,")]),
            forks: 1,
            deadlines: Deadlines::default(),
            colour: false,
            verbosity: Verbosity::Normal,
        };
        let dotenv = BTreeMap::from([("COMPOSE_PROFILES".to_string(), "c".to_string())]);
        assert_eq!(settings.profiles(&["x".into()], &dotenv), vec!["x"]);
        assert_eq!(settings.profiles(&[], &dotenv), vec!["a", "b"]);
        let bare = Settings {
            environment: environment(&[]),
            ..settings
        };
        assert_eq!(bare.profiles(&[], &dotenv), vec!["c"]);
        assert!(bare.profiles(&[], &BTreeMap::new()).is_empty());
    }
}
