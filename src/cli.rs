//! The command line, as the user typed it: every verb and flag, and nothing
//! else. Turning these into resolved settings happens in `settings`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::release::Release;
use crate::config::since::Since;

#[derive(Debug, Parser)]
#[command(
    name = "kolla",
    version,
    about = "Build one container image per cloud service; deploy, upgrade and roll back each service atomically."
)]
pub struct Cli {
    /// Folder holding globals.yml.
    #[arg(long, global = true, env = "KOLLA_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Folder of kolla's local records (the history log).
    #[arg(
        long,
        global = true,
        env = "KOLLA_STATE_DIR",
        value_name = "DIR",
        default_value = "/var/lib/kolla"
    )]
    pub state_dir: PathBuf,

    /// Nodes worked on at once by verbs that reach every node (deploy, ps,
    /// pull, prechecks, stop, start, destroy, history, recover, logs,
    /// exec).
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: u16,

    /// Seconds an engine may take to answer version, list and inspect
    /// requests before its node is named unresponsive (longer work and
    /// streams get deadlines of their own).
    #[arg(
        long,
        global = true,
        env = "KOLLA_ENGINE_TIMEOUT",
        value_name = "SECS",
        default_value_t = crate::engine::DEFAULT_ANSWER.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub engine_timeout: u64,

    /// Colour in human output: `auto` colours a terminal unless NO_COLOR
    /// is set (and not empty); `always` and `never` decide regardless of
    /// both.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Only warnings, failures and results: no step-by-step progress.
    #[arg(
        short,
        long,
        global = true,
        env = "KOLLA_QUIET",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,

    /// More: every line of an image build, and the output of each job
    /// (bootstrap, upgrade check, post-upgrade) even when it succeeds.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render and build the image tree, parents first (what CI runs).
    Build(BuildArgs),
    /// Converge nodes to their compose files (idempotent).
    Deploy(DeployArgs),
    /// Show the deployment's containers per node.
    Ps(PsArgs),
    /// Pull the images the selected nodes deploy (of the services named, or
    /// of every service).
    Pull(PullArgs),
    /// Stop the deployment's containers, or the live containers of the
    /// services named (data containers are never started).
    Stop(StopArgs),
    /// Start the live containers that are stopped (of the services named,
    /// or of every service), dependencies first, each gated by its health
    /// check.
    Start(StartArgs),
    /// Restart the live containers (of the services named, or of every
    /// service) one node at a time, dependencies first, each gated by its
    /// health check: same container, new process.
    Restart(RestartArgs),
    /// Remove the deployment's containers; data only with --purge-data
    /// (more than one node, or data: confirm with --yes-i-really-mean-it).
    Destroy(DestroyArgs),
    /// Check nodes before a deploy: engine, privileges, ports, images, disk.
    Prechecks(PrechecksArgs),
    /// Print the services each selected node deploys, as kolla resolved
    /// its compose files (interpolation, anchors, profiles, x-kolla), with
    /// every secret masked; no engine is reached.
    Config(ConfigArgs),
    /// Fill passwords.yml with random passwords (existing ones are kept).
    Genpwd(GenpwdArgs),
    /// Write clouds.yaml and admin-openrc.sh (0600) for the cloud's admin.
    PostDeploy(PostDeployArgs),
    /// Make the TLS certificates for remote engines: a CA, a server
    /// certificate per node and kolla's client certificate.
    Certs(CertsArgs),
    /// Swap services to a new image (or config), keeping the old container.
    Upgrade(UpgradeArgs),
    /// Swap services back to a kept container: no pull, no build.
    Rollback(RollbackArgs),
    /// Clear a service's stale swap lock.
    Unlock(ServiceArgs),
    /// Show the swaps of a service and what runs now.
    History(HistoryArgs),
    /// Remove kolla's images that no container on the node uses (live,
    /// kept for rollback, or stopped), under every service's lock; print
    /// what went and the bytes freed.
    PruneImages(PruneImagesArgs),
    /// Show the log of a service's live container on every selected node
    /// that has one (each line after its node's name when there are
    /// several).
    Logs(LogsArgs),
    /// Run a command in a service's live container, on the one node that
    /// runs it (a terminal when kolla has one); its exit code is kolla's.
    Exec(ExecArgs),
    /// Finish or undo swaps a crash interrupted, so exactly one container
    /// of each service runs.
    Recover(RecoverArgs),
    /// Print the shell completion script for kolla (bash, zsh or fish).
    Completions(CompletionsArgs),
    /// Print kolla's man page, or a verb's (roff: `kolla manpage | man -l -`).
    Manpage(ManpageArgs),
    /// Run one swap's critical section: what kolla's helper container runs
    /// on a node (its task comes in the environment). Not for operators.
    #[command(hide = true)]
    SwapHelper(SwapHelperArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// The verb whose page to print (kolla-VERB(1)); kolla(1) without.
    #[arg(value_name = "VERB")]
    pub verb: Option<String>,
}

/// The shells `kolla completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct SwapHelperArgs {
    /// The swap's task, as JSON.
    #[arg(long, env = crate::deploy::helper::TASK_ENV, hide_env_values = true)]
    pub task: String,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Only these services (default: every service with leftovers).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    #[command(flatten)]
    pub nodes: NodeArgs,

    #[command(flatten)]
    pub gate: GateArgs,

    /// Take over locks even when their holder may still be running.
    #[arg(long)]
    pub force: bool,

    /// `json`: one JSON array on stdout, an element per node (each service
    /// with leftovers and what recovery did); the report stays on stderr.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PrechecksArgs {
    #[command(flatten)]
    pub nodes: NodeArgs,

    /// `json`: one JSON array on stdout, an element per node with each
    /// check (name, passed, failed or warning, message).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

/// How long a started container's health gate may take.
#[derive(Debug, Args, Clone)]
pub struct HealthArgs {
    /// Seconds a service may take to become healthy (or a job to finish).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(..=MAX_SECS))]
    pub health_timeout: u64,

    /// Seconds a service without a healthcheck must keep running after a
    /// start or a swap.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_seconds_flag)]
    pub monitor_window: std::time::Duration,
}

/// What a verb that takes service locks does when another run holds one.
#[derive(Debug, Args, Clone)]
pub struct LockWaitArgs {
    /// When another kolla run holds a service's lock, wait up to DURATION
    /// for it to end (e.g. 30s, 10m; the holder is named while waiting),
    /// then go on; past it, exit 4 as without the flag.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub lock_wait: Option<std::time::Duration>,
}

/// Timing of swaps and their health gates.
#[derive(Debug, Args, Clone)]
pub struct GateArgs {
    #[command(flatten)]
    pub health: HealthArgs,

    /// Replaced containers kept per service for rollback, for this run
    /// (default: globals.yml `retain`, else 2); older ones are removed.
    #[arg(long, value_name = "N")]
    pub retain: Option<usize>,

    /// Longest a swap may leave a service dark (from the old container's
    /// stop to the new one's first passing health check, e.g. 30s, 1m30s);
    /// past it the swap goes back at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub max_dark: Option<std::time::Duration>,

    /// A service whose guests (x-kolla.guests: libvirt's QEMUs) would stop
    /// with its container: shut them down cleanly and swap, rather than
    /// refuse the swap.
    #[arg(long)]
    pub stop_guests: bool,

    #[command(flatten)]
    pub lock: LockWaitArgs,
}

/// The longest any duration flag may be, in seconds: what the engine
/// holds (see `config::duration`).
const MAX_SECS: u64 = crate::config::duration::MAX.as_secs();

/// A duration flag (`500ms`, `30s`, `1m30s`): not zero, at most the bound.
fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    match crate::config::duration::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err(format!(
            "{text:?} is zero; give a duration like 500ms, 30s or 1m30s"
        )),
        Ok(duration) => Ok(duration),
        Err(e) => Err(format!("{text:?} {e}")),
    }
}

/// A number of seconds (`2`, `0.5`): finite, not negative, at most the bound.
fn parse_seconds_flag(text: &str) -> Result<std::time::Duration, String> {
    crate::config::duration::parse_seconds(text).map_err(|e| format!("{text:?} {e}"))
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Services to upgrade.
    #[arg(value_name = "SERVICE", required_unless_present = "all")]
    pub services: Vec<String>,

    /// Every service of the selected nodes, stage by stage in the order the
    /// compose files give (what each needs to start, `x-kolla.upgrade_after`):
    /// each stage on every node before the next; a failure stops there and
    /// a rerun continues (what is done is found done).
    #[arg(long, conflicts_with = "services")]
    pub all: bool,

    /// With --all: print the stages, each service's nodes, images and why
    /// it comes where it does; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub nodes: NodeArgs,

    #[command(flatten)]
    pub gate: GateArgs,

    /// Image tag to upgrade to (overrides globals.yml `tag`).
    #[arg(long)]
    pub tag: Option<String>,

    /// OpenStack release to upgrade to (overrides globals.yml
    /// `openstack_release`; the tag follows it unless set).
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<Release>,

    /// Allow a tag that is a lower semantic version than the running one.
    #[arg(long)]
    pub allow_downgrade: bool,

    /// Nodes upgraded at once (each node's services one after another).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,

    /// `json`: one JSON document on stdout, a record per swapped service
    /// (generations, dark window, result); the progress stays on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Services to roll back.
    #[arg(value_name = "SERVICE", required_unless_present = "all")]
    pub services: Vec<String>,

    /// Every service of the selected nodes, stage by stage in the reverse
    /// of `upgrade --all`'s order, each back to the newest kept generation
    /// of --release or --tag (one of them is needed): a service already
    /// there is left as it is (a rerun goes on where a failure stopped),
    /// and one marked `x-kolla.one_way` stays on its newer image.
    #[arg(long, conflicts_with_all = ["services", "to"])]
    pub all: bool,

    /// Back to the newest kept generation whose image is of this OpenStack
    /// release (its `openstack_release` label); a service that runs it
    /// already is left as it is.
    #[arg(long, value_name = "RELEASE", conflicts_with_all = ["to", "tag"])]
    pub release: Option<Release>,

    /// Back to the newest kept generation whose image has this tag; a
    /// service that runs it already is left as it is.
    #[arg(long, conflicts_with = "to")]
    pub tag: Option<String>,

    #[command(flatten)]
    pub nodes: NodeArgs,

    #[command(flatten)]
    pub gate: GateArgs,

    /// Roll back to this kept generation instead of the newest one.
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,

    /// Roll back even though the live container is itself a rollback.
    #[arg(long)]
    pub force: bool,

    /// Load the database back from the restore point taken before the
    /// newer generation's bootstrap job (its schema migrations), with the
    /// service stopped during the load. Writes made since are lost.
    #[arg(long)]
    pub restore_db: bool,

    /// Nodes rolled back at once (each node's services one after another).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,

    /// `json`: one JSON document on stdout, a record per service rolled
    /// back (generations, dark window, result).
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[arg(value_name = "SERVICE")]
    pub service: String,

    #[command(flatten)]
    pub nodes: NodeArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(value_name = "SERVICE")]
    pub service: String,

    #[command(flatten)]
    pub nodes: NodeArgs,

    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PruneImagesArgs {
    #[command(flatten)]
    pub nodes: NodeArgs,

    /// Print the images that would be removed and the bytes freed; take
    /// no lock and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub lock: LockWaitArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(value_name = "SERVICE")]
    pub service: String,

    #[command(flatten)]
    pub nodes: NodeArgs,

    /// Keep printing what the containers print (Ctrl-C ends).
    #[arg(short, long)]
    pub follow: bool,

    /// Only the last N lines of each node's log.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,

    /// Only what was printed since TIME: a time (RFC 3339 such as
    /// 2025-05-01T10:00:00Z, or Unix seconds) or a duration before now
    /// (10m, 1h30m), as `docker logs --since` takes it.
    #[arg(long, value_name = "TIME", value_parser = crate::config::since::parse_since)]
    pub since: Option<Since>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(value_name = "SERVICE")]
    pub service: String,

    #[command(flatten)]
    pub nodes: NodeArgs,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Which nodes, and where their compose files are.
#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    /// Inventory file (default: the built-in all-in-one, this machine).
    #[arg(short, long, env = "KOLLA_INVENTORY", value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// Only these nodes: a node name or a role; repeat for several.
    #[arg(long, value_name = "NAME|ROLE")]
    pub node: Vec<String>,

    /// Folder of compose files, one per role (<role>.yml).
    #[arg(
        long,
        env = "KOLLA_COMPOSE_DIR",
        value_name = "DIR",
        default_value = "compose"
    )]
    pub compose_dir: PathBuf,

    /// Activate services of this compose profile; repeat for several.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Only these services (default: every service of the selected
    /// nodes). What they depend on is not touched, and must be up.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    #[command(flatten)]
    pub nodes: NodeArgs,

    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Remove containers of services no compose file of the node names.
    #[arg(long, conflicts_with = "services")]
    pub remove_orphans: bool,

    /// OpenStack release to deploy (overrides globals.yml
    /// `openstack_release`; the tag follows it unless set).
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<Release>,

    #[command(flatten)]
    pub gate: GateArgs,

    /// `json`: one JSON array on stdout, an element per node with each
    /// service's action, its cause and its result (with --dry-run: the
    /// plan); the plan text and progress stay on stderr.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Only these services (default: every service of the selected nodes).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    #[command(flatten)]
    pub nodes: NodeArgs,

    /// `json`: one JSON array on stdout, an element per node.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Only the images of these services (default: every service).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    #[command(flatten)]
    pub nodes: NodeArgs,

    /// `json`: one JSON array on stdout, an element per node with each
    /// image (pulled, already present or failed, and why).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Only the live containers of these services (default: every
    /// container of the deployment).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    #[command(flatten)]
    pub nodes: NodeArgs,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Only these services (default: every service of the selected nodes).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    #[command(flatten)]
    pub nodes: NodeArgs,

    #[command(flatten)]
    pub health: HealthArgs,

    #[command(flatten)]
    pub lock: LockWaitArgs,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub start: StartArgs,

    /// A service whose guests (x-kolla.guests: libvirt's QEMUs) would stop
    /// with its container: shut them down cleanly and restart, rather than
    /// refuse the restart.
    #[arg(long)]
    pub stop_guests: bool,
}

/// `--color`: when human output is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub nodes: NodeArgs,

    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub nodes: NodeArgs,

    /// Also remove data containers, restore points and the deployment's
    /// volumes (only with --yes-i-really-mean-it).
    #[arg(long)]
    pub purge_data: bool,

    /// Confirms a destroy that removes data (--purge-data) or containers
    /// on more than one node; without it such a destroy removes nothing
    /// and says what would have gone.
    #[arg(long)]
    pub yes_i_really_mean_it: bool,
}

#[derive(Debug, Args)]
pub struct GenpwdArgs {
    /// The passwords file (default: passwords.yml in the config dir).
    #[arg(long, value_name = "FILE")]
    pub passwords: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PostDeployArgs {
    /// Inventory file (default: the built-in all-in-one, this machine).
    #[arg(short, long, env = "KOLLA_INVENTORY", value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Inventory file (default: the built-in all-in-one, this machine).
    #[arg(short, long, env = "KOLLA_INVENTORY", value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// Only these nodes: a node name or a role; repeat for several.
    #[arg(long, value_name = "NAME|ROLE")]
    pub node: Vec<String>,

    /// Where the certificates go (default: certs/ in the config dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Days the new certificates are valid.
    #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,

    /// Issue the client and node certificates again (the CA stays).
    #[arg(long)]
    pub renew: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build only images whose name matches one of these regexes (and,
    /// unless --skip-parents, their parents).
    #[arg(value_name = "REGEX")]
    pub patterns: Vec<String>,

    /// Folder of image folders (<name>/Dockerfile.tera + files).
    #[arg(
        long,
        env = "KOLLA_IMAGES_DIR",
        value_name = "DIR",
        default_value = "images"
    )]
    pub images_dir: PathBuf,

    /// Images built at once (parents always before children).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,

    /// Image tag (overrides globals.yml `tag`).
    #[arg(long)]
    pub tag: Option<String>,

    /// OpenStack release to build (overrides globals.yml
    /// `openstack_release`; the tag and base image follow it unless set).
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<Release>,

    /// Repository namespace (overrides globals.yml `namespace`).
    #[arg(long)]
    pub namespace: Option<String>,

    /// Registry host[:port] (overrides globals.yml `registry`).
    #[arg(long)]
    pub registry: Option<String>,

    /// Base image the tree's root builds FROM (overrides globals.yml `base_image`).
    #[arg(long)]
    pub base_image: Option<String>,

    /// Push every built or up-to-date image to the registry.
    #[arg(long)]
    pub push: bool,

    /// Extra attempts for an image whose build fails.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,

    /// Build the images of this profile (globals.yml `profiles`).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Print the selected images and exit.
    #[arg(long, conflicts_with_all = ["list_dependencies", "render_only"])]
    pub list_images: bool,

    /// Print the selected images as a tree of parents and children and exit.
    #[arg(long, conflicts_with = "render_only")]
    pub list_dependencies: bool,

    /// Write the rendered Dockerfiles (and context files) to DIR; build nothing.
    #[arg(long, value_name = "DIR")]
    pub render_only: Option<PathBuf>,

    /// A Tera template that {% extends "<image>/Dockerfile.tera" %} and replaces
    /// blocks; repeat to override several images or to layer overrides.
    #[arg(long, value_name = "FILE")]
    pub template_override: Vec<PathBuf>,

    /// Seconds one image's build may take before it counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub build_timeout: u64,

    /// Build even images that are up to date, without the builder's cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Fetch packages straight from the archive in every build, without the
    /// run's package cache (a caching proxy on loopback, used when the
    /// engine is this machine's).
    #[arg(long)]
    pub no_package_cache: bool,

    /// Do not build the parents of matched images; they must already exist.
    #[arg(long)]
    pub skip_parents: bool,

    /// Write the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// Write each image's build log to DIR/<image>.log.
    #[arg(long, value_name = "DIR")]
    pub logs_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(flags: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec!["kolla", "deploy"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv)
    }

    #[test]
    fn gate_flags_past_any_clock_are_refused_naming_the_flag() {
        for (flag, value) in [
            ("--max-dark", "99999999999999999999h"),
            ("--max-dark", "5000000000000000h5000000000000000h"),
            ("--max-dark", "0s"),
            ("--monitor-window", "inf"),
            ("--monitor-window", "1e300"),
            ("--monitor-window", "NaN"),
            ("--monitor-window", "-1"),
            ("--health-timeout", "18446744073709551615"),
            ("--health-timeout", "2147483648"),
        ] {
            let arg = format!("{flag}={value}");
            let err = deploy(&[&arg]).expect_err(&arg);
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{arg}");
            assert!(err.to_string().contains(flag), "{arg}: {err}");
            // Usage errors exit 2.
            assert_eq!(err.exit_code(), 2, "{arg}");
        }
    }

    #[test]
    fn the_release_flag_takes_a_known_release_only() {
        let Command::Deploy(args) = deploy(&["--release", "epoxy"]).unwrap().command else {
            panic!("not a deploy");
        };
        assert_eq!(args.release, Some(Release::Epoxy));
        let err = deploy(&["--release", "caracal"]).unwrap_err().to_string();
        assert!(
            err.contains("--release") && err.contains("zed, epoxy"),
            "{err}"
        );
        for verb in ["build", "upgrade"] {
            let argv = ["kolla", verb, "--release", "zed", "glance-api"];
            let argv = if verb == "build" {
                &argv[..4]
            } else {
                &argv[..]
            };
            assert!(Cli::try_parse_from(argv).is_ok(), "{verb}");
        }
    }

    #[test]
    fn exec_takes_its_command_after_the_double_dash_only() {
        let cli = Cli::try_parse_from([
            "kolla", "exec", "web", "--node", "n1", "--", "sh", "-c", "exit 7",
        ])
        .unwrap();
        let Command::Exec(args) = cli.command else {
            panic!("not exec");
        };
        assert_eq!(args.service, "web");
        assert_eq!(args.nodes.node, ["n1"]);
        assert_eq!(args.command, ["sh", "-c", "exit 7"]);
        // Flags after `--` are the command's.
        let cli = Cli::try_parse_from(["kolla", "exec", "web", "--", "ls", "--node"]).unwrap();
        let Command::Exec(args) = cli.command else {
            panic!("not exec");
        };
        assert_eq!(args.command, ["ls", "--node"]);
        for argv in [
            &["kolla", "exec", "web"][..],
            &["kolla", "exec", "web", "ls"],
        ] {
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn logs_flags_are_read() {
        let argv = [
            "kolla", "logs", "web", "-f", "--tail", "5", "--since", "10m",
        ];
        let Command::Logs(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not logs");
        };
        assert!(args.follow);
        assert_eq!(args.tail, Some(5));
        assert_eq!(
            args.since,
            Some(Since::Ago(std::time::Duration::from_secs(600)))
        );
        let err = Cli::try_parse_from(["kolla", "logs", "web", "--since", "soon"]).unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn the_lifecycle_verbs_take_service_names_and_lock_wait_where_locks_are_taken() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).map(|cli| cli.command);
        let Ok(Command::Restart(args)) = parse(&[
            "kolla",
            "restart",
            "glance-api",
            "nova-api",
            "--node",
            "controller",
            "--lock-wait",
            "1m30s",
            "--stop-guests",
        ]) else {
            panic!("not a restart");
        };
        assert_eq!(args.start.services, ["glance-api", "nova-api"]);
        assert_eq!(args.start.nodes.node, ["controller"]);
        assert_eq!(
            args.start.lock.lock_wait,
            Some(std::time::Duration::from_secs(90))
        );
        assert!(args.stop_guests);
        let Ok(Command::Start(args)) = parse(&["kolla", "start"]) else {
            panic!("not a start");
        };
        assert!(args.services.is_empty() && args.lock.lock_wait.is_none());
        let Ok(Command::Deploy(args)) =
            parse(&["kolla", "deploy", "nova-api", "--lock-wait", "5s"])
        else {
            panic!("not a deploy");
        };
        assert_eq!(args.services, ["nova-api"]);
        assert_eq!(
            args.gate.lock.lock_wait,
            Some(std::time::Duration::from_secs(5))
        );
        for verb in ["upgrade", "rollback", "recover"] {
            let argv = ["kolla", verb, "web", "--lock-wait", "10m"];
            assert!(parse(&argv).is_ok(), "{verb}");
        }
        let Ok(Command::Stop(args)) = parse(&["kolla", "stop", "web"]) else {
            panic!("not a stop");
        };
        assert_eq!(args.services, ["web"]);
        let Ok(Command::Pull(args)) = parse(&["kolla", "pull", "web", "api"]) else {
            panic!("not a pull");
        };
        assert_eq!(args.services, ["web", "api"]);
        // Stop and pull take no lock: no flag to wait for one.
        for verb in ["stop", "pull"] {
            let err = parse(&["kolla", verb, "--lock-wait", "5s"]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{verb}");
        }
        // A lock wait is a duration, never zero; orphans are the whole
        // node's business.
        for argv in [
            &["kolla", "start", "--lock-wait", "0s"][..],
            &["kolla", "restart", "--lock-wait", "soon"],
            &["kolla", "deploy", "web", "--remove-orphans"],
        ] {
            let err = parse(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn gate_flags_within_bounds_are_read() {
        let cli = deploy(&["--monitor-window", "0.5", "--max-dark", "1m30s"]).unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy");
        };
        assert_eq!(
            args.gate.health.monitor_window,
            std::time::Duration::from_millis(500)
        );
        assert_eq!(args.gate.max_dark, Some(std::time::Duration::from_secs(90)));
        let cli = deploy(&[]).unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy");
        };
        assert_eq!(
            args.gate.health.monitor_window,
            std::time::Duration::from_secs(2)
        );
        assert_eq!(args.gate.health.health_timeout, 300);
        assert_eq!(args.gate.lock.lock_wait, None);
        // Unset, globals.yml's `retain` decides (settings).
        assert_eq!(args.gate.retain, None);
        let Command::Deploy(args) = deploy(&["--retain", "5"]).unwrap().command else {
            panic!("not deploy");
        };
        assert_eq!(args.gate.retain, Some(5));
        assert_eq!(deploy(&["--retain", "-1"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn prune_images_takes_nodes_a_dry_run_and_a_lock_wait() {
        let argv = [
            "kolla",
            "prune-images",
            "--node",
            "compute",
            "--dry-run",
            "--lock-wait",
            "30s",
        ];
        let Command::PruneImages(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not prune-images");
        };
        assert_eq!(args.nodes.node, ["compute"]);
        assert!(args.dry_run);
        assert_eq!(
            args.lock.lock_wait,
            Some(std::time::Duration::from_secs(30))
        );
        let Command::PruneImages(args) = Cli::try_parse_from(["kolla", "prune-images"])
            .unwrap()
            .command
        else {
            panic!("not prune-images");
        };
        assert!(!args.dry_run && args.lock.lock_wait.is_none());
    }
}
