//! Test nodes: containers that run an engine of their own (dockerd with
//! TLS on 2376) and sshd, each at its own address on a private network the
//! test creates, so multi-node tests reach real remote engines. Host
//! networking on a node is that node's network.
//!
//! The node image is built from `tests/fixtures/node` on the Debian base
//! (`tools/make-base-image`), tagged by the hash of what it is made of and
//! kept between runs, as a build cache. Everything else (nodes, network,
//! certificates) is named for the test and removed when the `Cluster` is
//! dropped.

use super::Bounded;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{COUNTER, describe, docker, fixtures, kolla_command, runtime};

/// The Debian base the node image starts from.
const BASE_IMAGE: &str = "debian:bookworm";
/// Label on everything a cluster makes, with the cluster's name.
const LABEL: &str = "kolla-test-cluster";

pub struct Cluster {
    /// Unique on the machine: names the network, nodes and labels.
    pub name: String,
    pub network: String,
    pub nodes: Vec<TestNode>,
    pub dir: tempfile::TempDir,
    /// `kolla certs` output: ca.pem, cert.pem, key.pem, nodes/<n>/.
    pub certs: PathBuf,
}

pub struct TestNode {
    /// Its name in the inventory (`n1`).
    pub name: String,
    /// Its container on the test engine.
    pub container: String,
    /// Its address on the cluster's network.
    pub address: String,
    /// Its interface on the cluster's tunnel network, once it has one
    /// (`Cluster::add_tunnel_network`).
    pub tunnel_interface: Option<String>,
}

impl TestNode {
    pub fn endpoint(&self) -> String {
        format!("tcp://{}:2376", self.address)
    }

    /// Run `command` on the node (as its root shell would).
    pub fn exec(&self, command: &str) -> std::process::Output {
        docker(&["exec", &self.container, "sh", "-c", command])
    }

    /// The docker CLI of the node's own engine.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["exec", self.container.as_str(), "docker"];
        full.extend_from_slice(args);
        docker(&full)
    }

    /// (generation, id, state) of each container of kolla project
    /// `project` on the node, by name.
    pub fn containers_of(&self, project: &str) -> BTreeMap<String, (u64, String, String)> {
        let listed = self.docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=kolla.project={project}"),
            "--format",
            "{{.Names}} {{.Label \"kolla.generation\"}} {{.ID}} {{.State}}",
        ]);
        assert!(listed.status.success(), "{}", describe(&listed));
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let name = parts.next()?.to_string();
                let generation = parts.next()?.parse().unwrap_or(0);
                let id = parts.next()?.to_string();
                let state = parts.next()?.to_string();
                Some((name, (generation, id, state)))
            })
            .collect()
    }
}

/// The node image, built once per test process (and kept by tag).
fn node_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let base = docker(&["image", "inspect", "-f", "{{.Id}}", BASE_IMAGE]);
        assert!(
            base.status.success(),
            "the multi-node tests need the Debian base image {BASE_IMAGE}: run tools/make-base-image debian:bookworm (tools/test does)"
        );
        let dir = fixtures().join("node");
        let mut hash = Sha256::new();
        hash.update(&base.stdout);
        for file in ["Dockerfile", "node-init"] {
            hash.update(std::fs::read(dir.join(file)).expect("node fixture file"));
        }
        let tag = format!("kolla-test-node:{}", &hex::encode(hash.finalize())[..16]);
        if !docker(&["image", "inspect", &tag]).status.success() {
            let built = docker(&["build", "-q", "-t", &tag, dir.to_str().expect("utf-8 path")]);
            assert!(
                built.status.success(),
                "building the node image failed:\n{}",
                describe(&built)
            );
        }
        tag
    })
}

/// Every capability this engine grants: the explicit form of
/// `--privileged`, which the engine here refuses.
fn privileged_args() -> Vec<String> {
    let mut args = Vec::new();
    for cap in kolla::deploy::spec::EXPLICIT_PRIVILEGED_CAPS {
        args.push("--cap-add".to_string());
        args.push(cap.to_string());
    }
    for option in ["apparmor=unconfined", "seccomp=unconfined"] {
        args.push("--security-opt".to_string());
        args.push(option.to_string());
    }
    args.push("--device-cgroup-rule".to_string());
    args.push("a *:* rwm".to_string());
    args
}

impl Cluster {
    /// `count` nodes (`n1`..), each engine answering over TLS with
    /// certificates from `kolla certs`.
    pub fn start(name: &str, count: usize) -> Cluster {
        let image = node_image();
        let cluster_name = super::unique_name("kt", name);
        let dir = tempfile::Builder::new()
            .prefix("kolla-cluster-")
            .tempdir()
            .expect("temporary directory");
        let certs = dir.path().join("certs");
        let mut cluster = Cluster {
            network: cluster_name.clone(),
            name: cluster_name,
            nodes: Vec::new(),
            certs,
            dir,
        };
        if let Some(shares) = node_cpu_shares() {
            lower_nodes_cpu_weight(shares);
        }
        let label = format!("{LABEL}={}", cluster.name);
        let made = docker(&["network", "create", "--label", &label, &cluster.network]);
        assert!(made.status.success(), "{}", describe(&made));
        for i in 1..=count {
            cluster
                .nodes
                .push(cluster.start_node(image, &format!("n{i}")));
        }
        // The certificates name each node's address, known only now.
        let inventory = cluster.write_inventory("inventory-certs.yml", &|_| vec!["controller"]);
        let output = kolla_command()
            .args(["certs", "-i"])
            .arg(&inventory)
            .arg("--dir")
            .arg(&cluster.certs)
            .bounded_output()
            .expect("run kolla certs");
        assert!(output.status.success(), "{}", describe(&output));
        for node in &cluster.nodes {
            cluster.wait_for_engine(node);
        }
        cluster
    }

    fn start_node(&self, image: &str, name: &str) -> TestNode {
        let container = format!("{}-{name}", self.name);
        let node_certs = kolla::certs::node_dir(&self.certs, name);
        std::fs::create_dir_all(&node_certs).expect("node certificate folder");
        let label = format!("{LABEL}={}", self.name);
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &container,
            "--hostname",
            name,
            "--label",
            &label,
            "--network",
            &self.network,
            "-e",
            &format!("NODE_ID={container}"),
            "--tmpfs",
            "/var/lib/docker:exec",
            "--tmpfs",
            "/run:exec",
            "-v",
            &format!("{}:/certs:ro", node_certs.display()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(privileged_args());
        if let Some(shares) = node_cpu_shares() {
            args.extend(["--cpu-shares".to_string(), shares.to_string()]);
        }
        args.push(image.to_string());
        let started = Command::new("docker")
            .args(&args)
            .bounded_output()
            .expect("docker run");
        assert!(started.status.success(), "{}", describe(&started));
        let address = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &container,
        ]);
        let address = String::from_utf8_lossy(&address.stdout).trim().to_string();
        assert!(!address.is_empty(), "node {container} has no address");
        TestNode {
            name: name.to_string(),
            container,
            address,
            tunnel_interface: None,
        }
    }

    /// A second network for the nodes, for tunnel traffic only (VXLAN
    /// between Neutron's agents): each node's interface on it becomes its
    /// `NEUTRON_TUNNEL_INTERFACE` in the inventories written after. The
    /// userspace switch (kernels without the openvswitch module) moves the
    /// interface's address onto a bridge of its own, which the node's
    /// engine and ssh must not depend on.
    pub fn add_tunnel_network(&mut self) {
        let network = format!("{}-tunnel", self.network);
        let label = format!("{LABEL}={}", self.name);
        let made = docker(&["network", "create", "--label", &label, &network]);
        assert!(made.status.success(), "{}", describe(&made));
        for node in &mut self.nodes {
            let joined = docker(&["network", "connect", &network, &node.container]);
            assert!(joined.status.success(), "{}", describe(&joined));
            let format =
                format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
            let address = docker(&["inspect", "-f", &format, &node.container]);
            let address = String::from_utf8_lossy(&address.stdout).trim().to_string();
            assert!(!address.is_empty(), "{} has no tunnel address", node.name);
            let shown = docker(&[
                "exec",
                &node.container,
                "ip",
                "-o",
                "-4",
                "addr",
                "show",
                "to",
                &address,
            ]);
            let line = String::from_utf8_lossy(&shown.stdout).to_string();
            let interface = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_else(|| panic!("{}: no interface holds {address}: {line}", node.name));
            node.tunnel_interface = Some(interface.to_string());
        }
    }

    /// Wait until the node's engine answers over TLS, or fail saying why.
    pub fn wait_for_engine(&self, node: &TestNode) {
        let endpoint = self.tls_endpoint(node);
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < Duration::from_secs(60) {
            match runtime().block_on(kolla::engine::Engine::connect(&endpoint)) {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let logs = docker(&["logs", "--tail", "20", &node.container]);
        panic!(
            "node {} did not answer over TLS within 60 s: {last}\n{}",
            node.name,
            describe(&logs)
        );
    }

    /// A connection to `node`'s engine, over TLS.
    pub fn engine(&self, node: &TestNode) -> kolla::engine::Engine {
        let endpoint = self.tls_endpoint(node);
        runtime()
            .block_on(kolla::engine::Engine::connect(&endpoint))
            .unwrap_or_else(|e| panic!("node {}: {e}", node.name))
    }

    /// `node`'s engine over TLS, with kolla's client certificate.
    fn tls_endpoint(&self, node: &TestNode) -> kolla::engine::Endpoint {
        kolla::engine::Endpoint {
            url: node.endpoint(),
            tls: Some(self.client_tls()),
            ssh_config: None,
        }
    }

    pub fn client_tls(&self) -> kolla::engine::TlsFiles {
        kolla::engine::TlsFiles {
            ca: self.certs.join("ca.pem"),
            cert: self.certs.join("cert.pem"),
            key: self.certs.join("key.pem"),
        }
    }

    /// An inventory of every node over TLS, with the roles `roles` gives
    /// node i (0-based), privileged services in the form each node's engine
    /// grants (`privileged: auto`); its path.
    pub fn write_inventory(
        &self,
        file: &str,
        roles: &dyn Fn(usize) -> Vec<&'static str>,
    ) -> PathBuf {
        self.inventory_over(file, roles, false)
    }

    /// The same over ssh (`ssh://root@address`), for `ssh_config()`.
    pub fn write_ssh_inventory(
        &self,
        file: &str,
        roles: &dyn Fn(usize) -> Vec<&'static str>,
    ) -> PathBuf {
        self.inventory_over(file, roles, true)
    }

    fn inventory_over(
        &self,
        file: &str,
        roles: &dyn Fn(usize) -> Vec<&'static str>,
        ssh: bool,
    ) -> PathBuf {
        let mut text = String::from("nodes:\n");
        for (i, node) in self.nodes.iter().enumerate() {
            if ssh {
                text.push_str(&format!(
                    "  {}:\n    docker: ssh://root@{}\n    api_address: {}\n    privileged: auto\n    roles: [{}]\n",
                    node.name,
                    node.address,
                    node.address,
                    roles(i).join(", "),
                ));
                continue;
            }
            text.push_str(&format!(
                "  {}:\n    docker: {}\n    api_address: {}\n    privileged: auto\n    tls: {{ca: {ca}, cert: {cert}, key: {key}}}\n    roles: [{}]\n",
                node.name,
                node.endpoint(),
                node.address,
                roles(i).join(", "),
                ca = self.certs.join("ca.pem").display(),
                cert = self.certs.join("cert.pem").display(),
                key = self.certs.join("key.pem").display(),
            ));
            if let Some(interface) = &node.tunnel_interface {
                text.push_str(&format!(
                    "    variables: {{NEUTRON_TUNNEL_INTERFACE: {interface}}}\n"
                ));
            }
        }
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).expect("write the inventory");
        path
    }

    /// An ssh client configuration of the cluster's own: a key the nodes
    /// accept for root, and a known_hosts file that holds the nodes' host
    /// keys when `known` (else none: every host is unknown). Its path.
    pub fn ssh_config(&self, known: bool) -> PathBuf {
        let dir = self.dir.path().join("ssh");
        let key = dir.join("id_ed25519");
        if !key.exists() {
            std::fs::create_dir_all(&dir).expect("ssh folder");
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .bounded_output()
                .expect("run ssh-keygen");
            assert!(made.status.success(), "{}", describe(&made));
            let public = format!("{}.pub", key.display());
            for node in &self.nodes {
                let target = format!("{}:/root/.ssh/authorized_keys", node.container);
                let copied = docker(&["cp", &public, &target]);
                assert!(copied.status.success(), "{}", describe(&copied));
                let owned = node.exec(
                    "chown root:root /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys",
                );
                assert!(owned.status.success(), "{}", describe(&owned));
            }
        }
        let known_hosts = dir.join(if known {
            "known_hosts"
        } else {
            "no_known_hosts"
        });
        let mut keys = String::new();
        if known {
            for node in &self.nodes {
                let scanned = Command::new("ssh-keyscan")
                    .args(["-T", "5", &node.address])
                    .bounded_output()
                    .expect("run ssh-keyscan");
                keys.push_str(&String::from_utf8_lossy(&scanned.stdout));
            }
            assert!(!keys.trim().is_empty(), "ssh-keyscan found no host key");
        }
        std::fs::write(&known_hosts, keys).expect("known_hosts");
        let config = dir.join(if known { "config" } else { "config-unknown" });
        std::fs::write(
            &config,
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
                key.display(),
                known_hosts.display()
            ),
        )
        .expect("ssh config");
        config
    }

    pub fn node(&self, name: &str) -> &TestNode {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Stop a node's engine (SIGTERM, as a service manager would) and keep
    /// it down; the node itself stays, its address too.
    pub fn stop_engine(&self, node: &TestNode) {
        let output = node.exec(
            "touch /run/engine-held; pkill -TERM -x dockerd; \
             while pgrep -x dockerd >/dev/null; do sleep 0.1; done",
        );
        assert!(output.status.success(), "{}", describe(&output));
    }

    /// Start a node's engine that `stop_engine` stopped.
    pub fn start_engine(&self, node: &TestNode) {
        let output = node.exec("rm -f /run/engine-held");
        assert!(output.status.success(), "{}", describe(&output));
        self.wait_for_engine(node);
    }

    /// SIGKILL a node's engine; it starts again at once, as under systemd.
    pub fn kill_engine(&self, node: &TestNode) {
        let output = node.exec("pkill -KILL -x dockerd");
        assert!(output.status.success(), "{}", describe(&output));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let label = format!("label={LABEL}={}", self.name);
        let listed = docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &self.network]);
        let _ = docker(&["network", "rm", &format!("{}-tunnel", self.network)]);
        // The node engines' cgroups (empty once their containers died).
        for node in &self.nodes {
            remove_cgroups(&node.container);
        }
    }
}

/// The CPU weight (cgroup v1 shares, 1024 by default) tools/test gives the
/// test nodes when a heavy test on them runs beside the all-in-one's: on
/// two cores the all-in-one's start-first swaps, whose clients allow no
/// failed request, come first; the nodes' cloud, whose checks wait in
/// minutes, takes what is left.
fn node_cpu_shares() -> Option<u32> {
    let value = std::env::var("KOLLA_TEST_NODES_CPU_SHARES").ok()?;
    let shares = value.parse().unwrap_or_else(|_| {
        panic!("KOLLA_TEST_NODES_CPU_SHARES={value}: not a number of CPU shares")
    });
    Some(shares)
}

/// The node engines put their containers under `/kolla-test-nodes` (see
/// tests/fixtures/node/node-init), outside the node containers' own
/// cgroups: that parent's weight is theirs. Made here if no engine made it
/// yet; said on stderr when the machine has no cgroup v1 CPU controller
/// to set it in (the nodes then compete at the default weight).
fn lower_nodes_cpu_weight(shares: u32) {
    let parent = std::path::Path::new("/sys/fs/cgroup/cpu/kolla-test-nodes");
    let set = std::fs::create_dir_all(parent)
        .and_then(|()| std::fs::write(parent.join("cpu.shares"), shares.to_string()));
    if let Err(e) = set {
        eprintln!(
            "test nodes: their containers keep the default CPU weight ({}: {e})",
            parent.display()
        );
    }
}

/// Remove the (empty) cgroups a node's engine left under its parent.
fn remove_cgroups(node: &str) {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for controller in controllers.flatten() {
        let parent = controller.path().join("kolla-test-nodes").join(node);
        if !parent.is_dir() {
            continue;
        }
        // Children first: cgroups are removed with rmdir, bottom up.
        let mut dirs = vec![parent.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
                dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            i += 1;
        }
        for dir in dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        // The shared parent, once no other cluster's node uses it.
        let _ = std::fs::remove_dir(controller.path().join("kolla-test-nodes"));
    }
}
