//! A `Deployment`: a project of its own on the test engine (unique
//! project, container prefix and loopback ports; an inventory of one node),
//! the swap fixture built on it, and what tests check of its containers and
//! data. Dropping it removes exactly the containers and volumes labelled
//! with its project.

use super::Bounded;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use super::{
    COUNTER, Sandbox, copy_tree, describe, expect_exit, fixtures, http_get, kolla_command, runtime,
};

/// A deployment of its own on the test engine: a busybox image under a
/// private namespace, a unique project and container prefix, free loopback
/// ports, an inventory of one node (this engine, role controller), and a
/// private copy of the compose fixture. Dropping it removes exactly the
/// containers and volumes labelled with its project.
pub struct Deployment {
    pub images: Sandbox,
    pub project: String,
    pub prefix: String,
    pub compose_dir: PathBuf,
    pub inventory: PathBuf,
    pub env: Vec<(String, String)>,
}

/// A loopback port free now, below the kernel's ephemeral range (port 0
/// would hand out one from that range, which outgoing connections, the
/// healthchecks' among them, take as source ports at any moment), and never
/// handed out twice in one test process.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    // Spread processes apart: each starts at its own place in the range.
    let span = 32768 - 12000;
    let mut port = 12000 + (std::process::id() as usize * 7919 + given.len() * 104729) % span;
    for _ in 0..span {
        let candidate = port as u16;
        if !given.contains(&candidate)
            && std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok()
        {
            given.insert(candidate);
            return candidate;
        }
        port = 12000 + (port - 12000 + 1) % span;
    }
    panic!("no free loopback port between 12000 and 32767");
}

impl Deployment {
    /// A deployment of the compose fixture that runs the run's shared
    /// busybox image; its own sandbox builds nothing unless the test does.
    pub fn new(name: &str) -> Deployment {
        Deployment::of(Sandbox::new(name), name, "compose", "").on_shared_busybox()
    }

    /// IMAGE (what the compose fixtures and the data helpers run) is the
    /// run's shared busybox image.
    pub fn on_shared_busybox(mut self) -> Deployment {
        self.env.retain(|(k, _)| k != "IMAGE");
        self.env
            .push(("IMAGE".to_string(), super::shared_busybox().to_string()));
        self
    }

    /// A deployment of the compose fixture folder `fixture` with the images
    /// of `images`; `globals` is added to its globals.yml.
    pub fn of(images: Sandbox, name: &str, fixture: &str, globals: &str) -> Deployment {
        let project = super::unique_name("kt", name);
        let prefix = format!("{project}-");
        std::fs::write(
            images.config_dir.join("globals.yml"),
            format!("project: {project}\ncontainer_prefix: \"{prefix}\"\n{globals}"),
        )
        .expect("globals.yml");
        let compose_dir = images.dir.path().join("compose");
        copy_tree(&fixtures().join(fixture), &compose_dir);
        let inventory = images.dir.path().join("inventory.yml");
        std::fs::write(&inventory, "nodes:\n  local:\n    roles: [controller]\n")
            .expect("inventory");
        let env = vec![
            ("IMAGE".to_string(), images.image_ref("fx-base")),
            ("WEB_PORT".to_string(), free_port().to_string()),
            ("API_PORT".to_string(), free_port().to_string()),
            ("METRICS_PORT".to_string(), free_port().to_string()),
        ];
        Deployment {
            images,
            project,
            prefix,
            compose_dir,
            inventory,
            env,
        }
    }

    pub fn env(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .expect("known variable")
    }

    /// `kolla VERB` on this deployment, with `args` after the verb.
    pub fn command(&self, verb: &str, args: &[&str]) -> Command {
        let mut command = kolla_command();
        command
            .env_remove("KOLLA_INVENTORY")
            .env_remove("KOLLA_COMPOSE_DIR")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--config-dir")
            .arg(&self.images.config_dir)
            .arg(verb);
        command
            .arg("--state-dir")
            .arg(self.images.dir.path().join("state"));
        match verb {
            "genpwd" => {}
            "unlock" | "history" | "ps" | "post-deploy" => {
                command.arg("-i").arg(&self.inventory);
            }
            _ => {
                command
                    .arg("-i")
                    .arg(&self.inventory)
                    .arg("--compose-dir")
                    .arg(&self.compose_dir);
            }
        }
        command.args(args);
        command
    }

    pub fn kolla(&self, verb: &str, args: &[&str]) -> Output {
        self.command(verb, args)
            .bounded_output()
            .expect("run the kolla binary")
    }

    /// name -> (id, state) of every container of this deployment.
    pub fn containers(&self) -> std::collections::BTreeMap<String, (String, String)> {
        let label = format!("kolla.project={}", self.project);
        runtime()
            .block_on(self.images.engine.list_containers(&label))
            .expect("list containers")
            .into_iter()
            .map(|c| (c.name, (c.id, c.state.as_str().to_string())))
            .collect()
    }

    pub fn container(&self, service: &str) -> String {
        format!("{}{service}", self.prefix)
    }

    /// Read a file from the data container's volumes, through a throwaway
    /// container that mounts them.
    pub fn read_data(&self, path: &str) -> String {
        self.with_data(&["cat", path])
    }

    /// A file of the data container's volumes, or "" where there is none.
    pub fn read_data_if_any(&self, path: &str) -> String {
        self.with_data(&["sh", "-c", "cat \"$1\" 2>/dev/null || true", "sh", path])
    }

    /// Write `text` to a file in the data container's volumes.
    pub fn write_data(&self, path: &str, text: &str) {
        self.with_data(&["sh", "-c", &format!("printf '%s' '{text}' > {path}")]);
    }

    /// Run `command` in a throwaway container with the data container's
    /// volumes; its output. Fails the test if it does not exit 0.
    fn with_data(&self, command: &[&str]) -> String {
        use kolla::deploy::spec::ContainerSpec;
        use kolla::engine::{WaitGoal, WaitOutcome};
        let name = format!(
            "{}data-{}",
            self.prefix,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let spec = ContainerSpec {
            name: name.clone(),
            image: self.env("IMAGE").to_string(),
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            volumes_from: vec![self.container("webdata")],
            labels: [(
                "kolla.project".to_string(),
                format!("{}-reader", self.project),
            )]
            .into(),
            ..ContainerSpec::default()
        };
        let engine = &self.images.engine;
        let rt = runtime();
        rt.block_on(async {
            engine
                .create_container(&spec)
                .await
                .expect("create data container user");
            engine.start_container(&name).await.expect("start it");
            let outcome = engine
                .wait_for(&name, WaitGoal::Exited, std::time::Duration::from_secs(30))
                .await
                .expect("wait for it");
            let text = engine.logs_tail(&name, 100).await.expect("its output");
            engine
                .remove_container(&name, true)
                .await
                .expect("remove it");
            assert_eq!(
                outcome,
                WaitOutcome::Exited(0),
                "{command:?} failed: {text}"
            );
            text
        })
    }
}

/// A deployment of the swap fixture (one host-network web service with a
/// data container) with the fx-web image built at each of `tags`; globals
/// say tag 1.0.0.
pub fn swap_deployment(name: &str, tags: &[&str]) -> Deployment {
    swap_deployment_of("swap", name, tags)
}

/// A deployment of compose fixture folder `fixture` with the fx-web image
/// (tests/fixtures/web) built at each of `tags`; globals say tag 1.0.0.
pub fn swap_deployment_of(fixture: &str, name: &str, tags: &[&str]) -> Deployment {
    let images = Sandbox::with_image(name, "web/fx-web", super::shared_busybox());
    for tag in tags {
        let output = images.build(&["^fx-web$", "--tag", tag]);
        assert!(output.status.success(), "{}", describe(&output));
    }
    let globals = format!("namespace: {}\ntag: \"1.0.0\"\n", images.namespace);
    let image = format!("{}/fx-web:1.0.0", images.namespace);
    let mut d = Deployment::of(images, name, fixture, &globals);
    // The compose file takes its image from globals; IMAGE is what the
    // tests' data helpers run.
    d.env.retain(|(k, _)| k == "WEB_PORT");
    d.env.push(("IMAGE".to_string(), image));
    d
}

impl Deployment {
    /// What the swap fixture's web service serves.
    pub fn serving(&self) -> Option<String> {
        http_get(self.env("WEB_PORT"), "/index.html")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let rt = runtime();
        let engine = &self.images.engine;
        for label in [
            format!("kolla.project={}", self.project),
            format!("kolla.project={}-reader", self.project),
        ] {
            stop_guests(&label);
            if let Ok(containers) = rt.block_on(engine.list_containers(&label)) {
                for c in containers {
                    let _ = rt.block_on(engine.remove_container(&c.name, true));
                }
            }
            if let Ok(volumes) = rt.block_on(engine.volume_names(&label)) {
                for v in volumes {
                    let _ = rt.block_on(engine.remove_volume(&v));
                }
            }
        }
    }
}

impl Deployment {
    /// Swaps in this deployment run in kolla itself, not in the helper.
    pub fn without_helper(&self) {
        let path = self.images.config_dir.join("globals.yml");
        let mut globals = std::fs::read_to_string(&path).expect("globals.yml");
        globals.push_str("swap_helper: false\n");
        std::fs::write(path, globals).expect("globals.yml");
    }

    /// `kolla VERB ARGS` on this deployment, which must exit `code` and
    /// say every one of `phrases` on stderr; its output.
    pub fn expect(&self, verb: &str, args: &[&str], code: i32, phrases: &[&str]) -> Output {
        let output = self.kolla(verb, args);
        expect_exit(&output, code, phrases);
        output
    }
}

/// Fail the test if any of `secrets` appears in what the engine shows of
/// this deployment's containers (`docker inspect`: labels, environment,
/// command, everything) or in any of `texts` (kolla's output, history).
pub fn assert_no_secret_shown(d: &Deployment, secrets: &[&str], texts: &[(&str, String)]) {
    let ids: Vec<String> = d.containers().into_values().map(|(id, _)| id).collect();
    assert!(!ids.is_empty(), "no container to inspect");
    let inspect = Command::new("docker")
        .arg("inspect")
        .args(&ids)
        .bounded_output()
        .expect("run docker inspect");
    assert!(inspect.status.success(), "{}", describe(&inspect));
    let inspected = String::from_utf8_lossy(&inspect.stdout).to_string();
    let mut all = vec![("docker inspect", inspected)];
    all.extend(texts.iter().map(|(what, text)| (*what, text.clone())));
    for secret in secrets {
        assert!(secret.len() >= 8, "a secret this short proves nothing");
        for (what, text) in &all {
            assert!(
                !text.contains(secret),
                "a password shows in {what} (its first characters: {}...)",
                &secret[..4]
            );
        }
    }
}

impl Deployment {
    /// Take `service`'s lock as another kolla run would, from the swap
    /// fixture's v1 image (its declared volumes covered, as kolla does).
    pub fn take_lock(&self, service: &str) -> kolla::deploy::lock::Lock {
        let image = format!("{}/fx-web:1.0.0", self.images.namespace);
        let image_volumes = runtime()
            .block_on(self.images.engine.image(&image))
            .expect("inspect the image")
            .expect("the swap fixture's image")
            .volumes;
        let request = kolla::deploy::lock::LockRequest {
            prefix: &self.prefix,
            project: &self.project,
            service,
            image: &image,
            image_volumes: &image_volumes,
            reason: "upgrade",
            target: "a test",
            from: Some(1),
            from_running: true,
            restore_db: None,
            user: "a-test-operator",
        };
        runtime()
            .block_on(kolla::deploy::lock::acquire(
                &self.images.engine,
                &request,
                kolla::deploy::lock::Takeover::Never,
            ))
            .expect("take the lock")
    }

    /// Fail the test if a candidate, lock, bootstrap job or swap helper of
    /// this deployment is left, or if `service` does not run exactly one
    /// live container.
    pub fn assert_one_live_and_no_leftovers(&self, service: &str, context: &str) {
        let states = self
            .containers()
            .into_iter()
            .map(|(name, (_, state))| (name, state))
            .collect();
        assert_one_live_in(&states, &self.container(service), context);
    }
}

/// `states` (container name -> state) hold exactly one running container
/// of the service whose live container is `live`, and none of the names a
/// swap leaves when it is cut short.
pub fn assert_one_live_in(states: &BTreeMap<String, String>, live: &str, context: &str) {
    let running: Vec<&String> = states
        .iter()
        .filter(|(name, state)| name.starts_with(live) && *state == "running")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(running, vec![live], "{context}: {states:?}");
    assert!(
        !states.keys().any(|n| n.ends_with(".kolla-new")
            || n.ends_with(".kolla-lock")
            || n.ends_with(".kolla-bootstrap")
            || n.ends_with(".kolla-swap")),
        "{context}: {states:?}"
    );
}

impl Deployment {
    /// The swap fixture's data is as the test wrote it, and no bootstrap
    /// job was cut short (each logs its begin and end to /data/jobs.log).
    pub fn assert_data_intact_and_jobs_whole(&self, context: &str) {
        assert_eq!(
            self.read_data("/data/precious"),
            "customer data",
            "{context}"
        );
        let jobs = self.read_data("/data/jobs.log");
        assert_eq!(
            jobs.matches("begin").count(),
            jobs.matches("end").count(),
            "{context}: a bootstrap job was cut short: {jobs:?}"
        );
    }
}

/// Guests outlive their service's container (x-kolla.guests): a test that
/// failed midway would leave them running on the machine once its
/// containers are removed. Each live container with guests is started if
/// need be and asked to stop them, briefly.
fn stop_guests(label: &str) {
    let listed = super::docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={label}"),
        "--filter",
        "label=kolla.guests",
        "--format",
        "{{.Names}} {{.Label \"kolla.guests\"}}",
    ]);
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let Some((name, program)) = line.split_once(' ') else {
            continue;
        };
        if name.contains(".kolla-") {
            continue;
        }
        super::docker(&["start", name]);
        super::docker(&["exec", name, program, "stop", "5"]);
    }
}
