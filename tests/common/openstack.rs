//! What the heavy tests ask of a real OpenStack deployment: its APIs over
//! plain HTTP at an address (loopback for the all-in-one, the controller's
//! for a cloud over test nodes), the admin's token and password, the real
//! client (`openstack`, Debian's python3-openstackclient), libvirt's
//! running guests, and changed images to upgrade to.

use super::Bounded;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Pace, Reply, describe, http_request_paced, http_request_to};

/// Marks a step of a heavy test with the seconds since the test began, so
/// that a CI log shows where the minutes go (tools/test runs the heavy
/// tests with --nocapture).
pub fn phase(what: &str) {
    static BEGAN: OnceLock<Instant> = OnceLock::new();
    let began = BEGAN.get_or_init(Instant::now);
    eprintln!("[{:7.1}s] {what}", began.elapsed().as_secs_f64());
}

/// One request to the API at `host`:`port`, with `token` (when not empty)
/// as X-Auth-Token; status 0 when the service does not answer.
pub fn api(
    host: &str,
    method: &str,
    port: u16,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut all = headers.to_vec();
    if !token.is_empty() {
        all.push(("X-Auth-Token", token));
    }
    http_request_to(
        host,
        method,
        port,
        path,
        &all,
        body,
        Duration::from_secs(60),
    )
}

/// Create the image `image` describes in Glance at `host` and store
/// `bytes` in it; its id.
pub fn glance_upload(host: &str, token: &str, image: serde_json::Value, bytes: &[u8]) -> String {
    glance_upload_paced(host, token, image, bytes, None)
}

/// `glance_upload`, the bytes sent at `pace`: an upload in flight for as
/// long as the caller needs.
pub fn glance_upload_paced(
    host: &str,
    token: &str,
    image: serde_json::Value,
    bytes: &[u8],
    pace: Option<Pace<'_>>,
) -> String {
    let created = api(
        host,
        "POST",
        9292,
        "/v2/images",
        token,
        &[("Content-Type", "application/json")],
        image.to_string().as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"]
        .as_str()
        .expect("an image id")
        .to_string();
    let uploaded = http_request_paced(
        host,
        "PUT",
        9292,
        &format!("/v2/images/{id}/file"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("X-Auth-Token", token),
        ],
        bytes,
        pace,
        Duration::from_secs(120),
    );
    assert_eq!(uploaded.status, 204, "{}", uploaded.text());
    id
}

/// A flavor of one vCPU, `ram_mb` of memory and a 1 GB disk, made in Nova
/// at `host`; its id.
pub fn create_flavor(host: &str, token: &str, ram_mb: u32) -> String {
    let flavor = serde_json::json!({"flavor": {
        "name": format!("kolla-test-{ram_mb}"), "ram": ram_mb, "vcpus": 1, "disk": 1}});
    let created = api(
        host,
        "POST",
        8774,
        "/v2.1/flavors",
        token,
        &[("Content-Type", "application/json")],
        flavor.to_string().as_bytes(),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    created.json()["flavor"]["id"]
        .as_str()
        .expect("a flavor id")
        .to_string()
}

/// Ask Nova at `host` for the server `server` describes (its `server`
/// object; microversion 2.37, so `"networks": "none"` works without
/// Neutron); its id.
pub fn create_server(host: &str, token: &str, server: serde_json::Value) -> String {
    let created = api(
        host,
        "POST",
        8774,
        "/v2.1/servers",
        token,
        &[
            ("Content-Type", "application/json"),
            ("OpenStack-API-Version", "compute 2.37"),
        ],
        serde_json::json!({ "server": server })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(created.status, 202, "{}", created.text());
    created.json()["server"]["id"]
        .as_str()
        .expect("a server id")
        .to_string()
}

/// Keystone's answer at `host` to admin asking for a project-scoped token.
pub fn token_request(host: &str, password: &str) -> Reply {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
    api(
        host,
        "POST",
        5000,
        "/v3/auth/tokens",
        "",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// An admin token from Keystone at `host` for `password`, or None when
/// Keystone refuses; its catalog must name every service deployed.
pub fn admin_token(host: &str, password: &str) -> Option<String> {
    let reply = token_request(host, password);
    if reply.status != 201 {
        return None;
    }
    let catalog = reply.json()["token"]["catalog"].clone();
    for kind in ["identity", "image", "placement", "compute"] {
        assert!(
            catalog
                .as_array()
                .is_some_and(|c| c.iter().any(|s| s["type"] == kind)),
            "no {kind} service in the catalog: {catalog}"
        );
    }
    reply.headers.get("x-subject-token").cloned()
}

/// Keystone's admin password from the deployment's passwords.yml.
pub fn admin_password(config_dir: &Path) -> String {
    let passwords =
        std::fs::read_to_string(config_dir.join("passwords.yml")).expect("passwords.yml");
    passwords
        .lines()
        .find_map(|l| l.strip_prefix("keystone_admin_password: "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("an admin password in passwords.yml")
}

/// The real client, `openstack ARGS`, as admin against Keystone at `host`.
pub fn openstack(host: &str, password: &str, args: &[&str]) -> Output {
    let output = Command::new("openstack")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OS_AUTH_URL", format!("http://{host}:5000/v3"))
        .env("OS_IDENTITY_API_VERSION", "3")
        .env("OS_USERNAME", "admin")
        .env("OS_PASSWORD", password)
        .env("OS_PROJECT_NAME", "admin")
        .env("OS_USER_DOMAIN_ID", "default")
        .env("OS_PROJECT_DOMAIN_ID", "default")
        .args(args)
        .bounded_output();
    output.unwrap_or_else(|e| {
        panic!(
            "cannot run the openstack client ({e}): tools/setup installs python3-openstackclient"
        )
    })
}

/// Poll `check` every second for up to `within_secs`; panics naming
/// `what`. Only for what kolla never claimed ready (a guest's boot, a
/// service's periodic report to Nova or Neutron): after kolla says a
/// service is healthy it must answer at once, and tests ask it once. Each
/// caller says why it polls and why its bound.
pub fn eventually<T>(what: &str, within_secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            eprintln!("{what}: after {:.1}s", started.elapsed().as_secs_f64());
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(within_secs),
            "{what}: not within {within_secs}s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The libvirt domains running in the libvirt container `container`, by
/// name; `docker` runs the docker CLI of the engine it is on.
pub fn running_domains(docker: impl Fn(&[&str]) -> Output, container: &str) -> Vec<String> {
    let output = docker(&[
        "exec",
        container,
        "virsh",
        "-c",
        "qemu:///system",
        "list",
        "--name",
        "--state-running",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// The tiny guest (`tests/fixtures/guest`): the Debian kernel and a busybox
/// initramfs that prints `kolla-guest: booted` on the console, then its
/// address once DHCP gives one. Built once from the Debian base, tagged by
/// the hash of what it is made of and kept between runs, as a build cache.
pub struct Guest {
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
}

pub fn guest() -> Guest {
    use sha2::{Digest, Sha256};
    let dir = super::fixtures().join("guest");
    let base = super::docker(&["image", "inspect", "-f", "{{.Id}}", "debian:bookworm"]);
    assert!(
        base.status.success(),
        "the guest is built on the Debian base image: run tools/make-base-image debian:bookworm (tools/test does)"
    );
    let mut hash = Sha256::new();
    hash.update(&base.stdout);
    for file in ["Dockerfile", "init", "udhcpc.script"] {
        hash.update(std::fs::read(dir.join(file)).expect("guest fixture file"));
    }
    let tag = format!("kolla-test-guest:{}", &hex::encode(hash.finalize())[..16]);
    if !super::docker(&["image", "inspect", &tag]).status.success() {
        let built = super::docker(&["build", "-q", "-t", &tag, dir.to_str().expect("utf-8 path")]);
        assert!(
            built.status.success(),
            "building the guest failed:\n{}",
            describe(&built)
        );
    }
    let holder = super::unique_name("kolla-test-guest", "files");
    let created = super::docker(&["create", "--name", &holder, &tag, "true"]);
    assert!(created.status.success(), "{}", describe(&created));
    let out = tempfile::tempdir().expect("temporary directory");
    let copied = super::docker(&[
        "cp",
        &format!("{holder}:/guest/."),
        out.path().to_str().expect("utf-8 path"),
    ]);
    let _ = super::docker(&["rm", "-f", "-v", &holder]);
    assert!(copied.status.success(), "{}", describe(&copied));
    let read = |name: &str| std::fs::read(out.path().join(name)).expect("a guest file");
    Guest {
        kernel: read("vmlinuz"),
        initrd: read("initrd"),
    }
}

/// The admin's `openstack` client against the cloud at `host`.
pub struct Cli<'a> {
    pub host: &'a str,
    pub admin: &'a str,
}

impl Cli<'_> {
    pub fn run(&self, args: &[&str]) -> Output {
        openstack(self.host, self.admin, args)
    }

    /// Run it; it must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "openstack {}: {}",
            args.join(" "),
            describe(&output)
        );
        output
    }

    /// What it printed, trimmed.
    pub fn value(&self, args: &[&str]) -> String {
        super::stdout_of(&self.ok(args)).trim().to_string()
    }

    /// A `-f json` listing.
    pub fn json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let output = self.ok(args);
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("openstack {}: not a JSON list ({e})", args.join(" ")))
    }

    /// A `-f json` object.
    pub fn json_object(&self, args: &[&str]) -> serde_json::Value {
        let output = self.ok(args);
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("openstack {}: not JSON ({e})", args.join(" ")))
    }

    /// The JSON it printed, or None when it failed.
    pub fn try_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let output = self.run(args);
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).ok())
            .flatten()
    }

    /// Delete every server and wait until each is gone: a guest left for
    /// `kolla destroy` is given Nova's clean-shutdown wait (60 s) that the
    /// tiny guests, with no ACPI daemon, never answer.
    pub fn delete_every_server(&self) {
        let servers = self.json(&["server", "list", "--all-projects", "-f", "json"]);
        let ids: Vec<&str> = servers
            .iter()
            .map(|server| server["ID"].as_str().expect("a server id"))
            .collect();
        if !ids.is_empty() {
            // One client for all: each start of it costs seconds of CPU.
            self.ok(&[&["server", "delete", "--wait"], ids.as_slice()].concat());
        }
        assert!(
            self.json(&["server", "list", "--all-projects", "-f", "json"])
                .is_empty(),
            "servers left after delete"
        );
    }

    /// Upload the tiny guest (`guest()`: kernel, initramfs, and an empty
    /// root disk naming them) as image `name`; the root disk's id.
    pub fn upload_guest(&self, name: &str) -> String {
        let guest = guest();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let write = |file: &str, bytes: &[u8]| {
            let path = dir.path().join(file);
            std::fs::write(&path, bytes).expect("writing a guest file");
            path.to_str().expect("a UTF-8 path").to_string()
        };
        let kernel = write("vmlinuz", &guest.kernel);
        let initrd = write("initrd", &guest.initrd);
        let root = write("root.raw", &vec![0u8; 1 << 20]);
        let upload = |name: &str, format: &str, container: &str, file: &str, extra: &[&str]| {
            let mut args = vec![
                "image",
                "create",
                "--disk-format",
                format,
                "--container-format",
                container,
                "--file",
                file,
            ];
            args.extend(extra);
            args.extend([name, "-f", "value", "-c", "id"]);
            self.value(&args)
        };
        let kernel = upload(&format!("{name}-kernel"), "aki", "aki", &kernel, &[]);
        let initrd = upload(&format!("{name}-initrd"), "ari", "ari", &initrd, &[]);
        let kernel_id = format!("kernel_id={kernel}");
        let ramdisk_id = format!("ramdisk_id={initrd}");
        // The tiny guest has no ACPI daemon to hear a clean shutdown: Nova
        // would wait out its 60 s before powering it off on every stop.
        upload(
            name,
            "raw",
            "bare",
            &root,
            &[
                "--property",
                &kernel_id,
                "--property",
                &ramdisk_id,
                "--property",
                "os_shutdown_timeout=3",
            ],
        )
    }

    /// Wait until the tiny guest's console shows, as eth0's address, the
    /// fixed address Neutron gave its port: DHCP really worked.
    pub fn guest_shows_its_dhcp_address(&self, server: &str) {
        let address = self.port_address(server);
        // The guest boots under emulation and asks for its address.
        eventually("the guest's console shows its DHCP address", 180, || {
            let log = self.value(&["console", "log", "show", server]);
            log.contains(&format!("kolla-guest: eth0 address {address}/24"))
                .then_some(())
        });
    }

    /// The fixed address Neutron gave the server's only port.
    pub fn port_address(&self, server: &str) -> String {
        let ports = self.json(&["port", "list", "--server", server, "-f", "json"]);
        let [port] = ports.as_slice() else {
            panic!("the server has one port: {ports:?}");
        };
        port["Fixed IP Addresses"][0]["ip_address"]
            .as_str()
            .unwrap_or_else(|| panic!("no address on the port: {port}"))
            .to_string()
    }
}
