//! The compose reader's tests: real-world shapes, every refusal with its
//! line, and the limits that keep a hostile file from exhausting memory.

use super::*;
use std::time::Duration;

fn vars() -> Variables {
    Variables {
        environment: BTreeMap::from([("TAG".to_string(), "from-env".to_string())]),
        // Under a prefix, as a deployment names its containers: a
        // one-letter service name is then a fine container name.
        globals: BTreeMap::from([
            ("TAG".to_string(), "zed".to_string()),
            ("IMAGE_PREFIX".to_string(), "kolla/".to_string()),
            ("REGISTRY".to_string(), "127.0.0.1:4000".to_string()),
            ("CONTAINER_PREFIX".to_string(), "t-".to_string()),
        ]),
    }
}

fn parse_text(text: &str) -> Result<ComposeFile, ConfigError> {
    parse(
        text,
        Path::new("compose/compute.yml"),
        &vars(),
        &BTreeMap::new(),
    )
}

const COMPUTE: &str = r#"
x-service: &service
  restart: unless-stopped
  environment:
    KOLLA_CONFIG_STRATEGY: COPY_ALWAYS
services:
  computedata:
    image: ${REGISTRY}/kolla/data:${TAG}
    volumes: [/var/lib/nova, "/var/lib/libvirt"]
    x-kolla: {data: true}
  nova-libvirt:
    <<: *service
    image: ${IMAGE_PREFIX}nova-libvirt:${TAG:-latest}
    network_mode: host
    pid: host
    privileged: true
    volumes_from: [computedata]
    healthcheck:
      test: virsh version
      interval: 1m30s
      retries: 3
  nova-compute:
    <<: *service
    image: ${IMAGE_PREFIX}nova-compute:${TAG}
    network_mode: host
    command: nova-compute --config-file "/etc/nova/nova.conf"
    volumes_from: [computedata]
    volumes:
      - nova_logs:/var/log/kolla/nova
      - /run:/run:ro
    depends_on: {nova-libvirt: {condition: service_healthy}}
    healthcheck: {test: [CMD, healthcheck_port, nova-compute, "5672"]}
    stop_grace_period: 90s
    x-kolla:
      config: {src: nova/, dest: /etc/nova}
      bootstrap: {command: [nova-manage, db, sync]}
volumes:
  nova_logs:
"#;

#[test]
fn reads_a_compute_file_with_anchors_and_interpolation() {
    let file = parse_text(COMPUTE).unwrap();
    let names: Vec<&str> = file.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["computedata", "nova-compute", "nova-libvirt"]);
    let data = file.service("computedata").unwrap();
    assert_eq!(data.image, "127.0.0.1:4000/kolla/data:from-env");
    assert!(data.kolla.data);
    assert_eq!(data.volumes.len(), 2);
    let compute = file.service("nova-compute").unwrap();
    assert_eq!(compute.image, "kolla/nova-compute:from-env");
    assert_eq!(compute.restart.as_deref(), Some("unless-stopped"));
    assert_eq!(compute.environment["KOLLA_CONFIG_STRATEGY"], "COPY_ALWAYS");
    assert_eq!(
        compute.command.as_deref().unwrap(),
        ["nova-compute", "--config-file", "/etc/nova/nova.conf"]
    );
    assert_eq!(compute.depends_on["nova-libvirt"], Condition::Healthy);
    assert_eq!(compute.volumes_from, vec!["computedata"]);
    assert_eq!(
        compute.volumes,
        vec![
            Mount::Volume {
                source: Some("nova_logs".into()),
                target: "/var/log/kolla/nova".into(),
                read_only: false,
                literal: false,
            },
            Mount::Bind {
                source: "/run".into(),
                target: "/run".into(),
                read_only: true,
                propagation: None,
            },
        ]
    );
    assert_eq!(compute.stop_grace_period, Some(Duration::from_secs(90)));
    assert_eq!(
        compute.kolla.bootstrap.as_deref().unwrap(),
        ["nova-manage", "db", "sync"]
    );
    let config = compute.kolla.config.as_ref().unwrap();
    assert_eq!(config.src, Path::new("compose/nova/"));
    assert_eq!(config.dest, "/etc/nova");
    let libvirt = file.service("nova-libvirt").unwrap();
    assert!(libvirt.privileged);
    assert_eq!(libvirt.pid.as_deref(), Some("host"));
    let health = libvirt.healthcheck.as_ref().unwrap();
    assert_eq!(health.test, vec!["CMD-SHELL", "virsh version"]);
    assert_eq!(health.interval, Some(Duration::from_secs(90)));
    assert_eq!(file.volumes["nova_logs"].name, "nova_logs");
}

#[test]
fn names_kolla_gives_its_own_containers_are_refused_as_service_names() {
    for name in [
        "web.kolla-lock",
        "web.kolla-new",
        "web.kolla-bootstrap",
        "web.kolla-gen-3",
    ] {
        let text = format!("services:\n  ok:\n    image: x\n  {name}:\n    image: x\n");
        let err = parse_text(&text).unwrap_err().to_string();
        // The line is the service's first key (its body).
        assert!(
            err.starts_with(&format!(
                "compose/compute.yml: line 5: service {name}: a service name may not end in"
            )),
            "{err}"
        );
    }
    for fine in ["web.kolla-gen-x", "kolla-new", "web.kolla-gen-"] {
        assert_eq!(reserved_suffix(fine), None, "{fine}");
    }
}

#[test]
fn config_paths_stay_inside_their_folders() {
    let with = |src: &str, dest: &str| {
        parse_text(&format!(
            "services:\n  a:\n    image: x\n    x-kolla:\n      config: {{src: {src:?}, dest: {dest:?}}}\n"
        ))
    };
    assert!(with("a/", "/etc/a").is_ok());
    assert!(with("a/../b/", "/etc/a").is_ok());
    // A src error is at the line of `config:` (its key is inline).
    for (src, dest, line, what) in [
        ("../elsewhere/", "/etc/a", 5, "must stay inside"),
        ("a/../../b", "/etc/a", 5, "must stay inside"),
        ("/etc/", "/etc/a", 5, "must stay inside"),
        ("a/", "etc/a", 3, "absolute path"),
        ("a/", "/etc/../root", 3, "without '..'"),
    ] {
        let err = with(src, dest).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("compose/compute.yml: line {line}: service a:")),
            "{err}"
        );
        assert!(err.contains(what), "{src} {dest}: {err}");
    }
    // A symlink that leads out of the folder is refused too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("compose")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.path().join("compose/link")).unwrap();
    let text = "services:\n  a:\n    image: x\n    x-kolla: {config: {src: link/, dest: /etc/a}}\n";
    let err = parse(
        text,
        &dir.path().join("compose/c.yml"),
        &vars(),
        &BTreeMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("must stay inside"), "{err}");
}

#[test]
fn env_files_stay_inside_the_folder_and_errors_name_the_compose_line() {
    let dir = tempfile::tempdir().unwrap();
    let compose = dir.path().join("compose");
    std::fs::create_dir_all(&compose).unwrap();
    std::fs::write(compose.join("app.env"), "A=1\n").unwrap();
    std::fs::write(dir.path().join("admin-openrc.sh"), "OS_PASSWORD=s3cret\n").unwrap();
    std::os::unix::fs::symlink("../admin-openrc.sh", compose.join("link.env")).unwrap();
    let with = |env_file: &str| {
        parse(
            &format!("services:\n  a:\n    image: x\n    env_file: {env_file}\n"),
            &compose.join("c.yml"),
            &vars(),
            &BTreeMap::new(),
        )
    };
    let file = with("app.env").unwrap();
    assert_eq!(file.services[0].environment["A"], "1");
    let outside = dir.path().join("admin-openrc.sh");
    for env_file in [
        outside.to_str().unwrap(),
        "../admin-openrc.sh",
        "[app.env, ../admin-openrc.sh]",
        "link.env",
    ] {
        let err = with(env_file).unwrap_err().to_string();
        assert!(
            err.contains("c.yml: line 4: service a: env_file: "),
            "{env_file}: {err}"
        );
        assert!(err.contains("must stay inside"), "{env_file}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
    let err = with("missing.env").unwrap_err().to_string();
    assert!(
        err.contains("c.yml: line 4: service a: env_file: "),
        "{err}"
    );
    assert!(err.contains("missing.env"), "{err}");
}

#[test]
fn the_guests_program_is_one_word() {
    let with = |program: &str| {
        parse_text(&format!(
            "services:\n  a:\n    image: x\n    x-kolla: {{guests: {program:?}}}\n"
        ))
    };
    assert_eq!(
        with("kolla-guests").unwrap().services[0]
            .kolla
            .guests
            .as_deref(),
        Some("kolla-guests")
    );
    for bad in ["", "kolla-guests; reboot", "a\tb"] {
        let err = with(bad).unwrap_err().to_string();
        assert!(err.contains("x-kolla.guests: "), "{bad:?}: {err}");
        assert!(err.contains("must name one program"), "{bad:?}: {err}");
    }
}

#[test]
fn kolla_labels_are_reserved() {
    for label in [
        "kolla.data",
        "kolla.update-order",
        "kolla.project",
        "kolla.x",
    ] {
        let text = format!(
            "services:\n  a:\n    image: x\n    labels:\n      keep: me\n      {label}: \"true\"\n"
        );
        let err = parse_text(&text).unwrap_err().to_string();
        assert!(
                err.starts_with(&format!(
                    "compose/compute.yml: line 4: service a: labels: \"{label}\": labels starting with \"kolla.\" are kolla's own"
                )),
                "{err}"
            );
    }
    let list = "services:\n  a:\n    image: x\n    labels: [kolla.data=true]\n";
    assert!(
        parse_text(list)
            .unwrap_err()
            .to_string()
            .contains("kolla's own")
    );
    let fine = "services:\n  a:\n    image: x\n    labels: {kollaborate: y, org.kolla.x: z}\n";
    assert_eq!(parse_text(fine).unwrap().services[0].labels.len(), 2);
}

#[test]
fn a_dependency_cycle_is_named_with_its_lines_when_the_file_is_read() {
    let text = "services:\n  c:\n    image: x\n    depends_on: [a]\n  a:\n    image: x\n    volumes_from: [b]\n  b:\n    image: x\n    network_mode: service:c\n  d:\n    image: x\n    depends_on: [a]\n";
    let err = parse_text(text).unwrap_err().to_string();
    assert_eq!(
        err,
        "compose/compute.yml: line 6: service a: services wait for each other in a cycle, so none could start: a -> b -> c -> a (a at line 6, b at line 9, c at line 3)"
    );
    let fine = text.replace("network_mode: service:c", "network_mode: host");
    assert!(parse_text(&fine).is_ok());
}

#[test]
fn named_volumes_mount_the_name_they_are_created_under() {
    let text = "services:\n  a:\n    image: x\n    volumes: [own:/o, named:/n, outside:/e, /anon]\nvolumes:\n  own:\n  named: {name: literal}\n  outside: {external: true}\n";
    let file = parse_text(text).unwrap();
    let mounts: Vec<(Option<&str>, bool)> = file.services[0]
        .volumes
        .iter()
        .map(|m| match m {
            Mount::Volume {
                source, literal, ..
            } => (source.as_deref(), *literal),
            Mount::Bind { .. } => (None, false),
        })
        .collect();
    assert_eq!(
        mounts,
        vec![
            (Some("own"), false),
            (Some("literal"), true),
            (Some("outside"), true),
            (None, false)
        ]
    );
    assert!(file.volumes["outside"].external);
}

#[test]
fn numbers_and_booleans_may_come_from_variables() {
    let text = "services:\n  a:\n    image: x\n    privileged: ${PRIV:-true}\n    init: $INIT\n    volumes: [{type: volume, source: v, target: /v, read_only: \"${RO:-false}\"}]\n    healthcheck:\n      test: [CMD, \"true\"]\n      retries: $RETRIES\nvolumes:\n  v:\n";
    let variables = Variables {
        environment: BTreeMap::from([
            ("INIT".to_string(), "false".to_string()),
            ("RETRIES".to_string(), "7".to_string()),
        ]),
        globals: vars().globals,
    };
    let file = parse(text, Path::new("c.yml"), &variables, &BTreeMap::new()).unwrap();
    let a = &file.services[0];
    assert!(a.privileged);
    assert_eq!(a.init, Some(false));
    assert_eq!(a.healthcheck.as_ref().unwrap().retries, Some(7));
    assert!(matches!(
        a.volumes[0],
        Mount::Volume {
            read_only: false,
            ..
        }
    ));
    // A value that is not one, with the line of its own key.
    let bad = text.replace("$RETRIES", "${RETRIES}x");
    let err = parse(&bad, Path::new("c.yml"), &variables, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.yml: line 9: service a: healthcheck.retries: \"7x\""),
        "{err}"
    );
}

#[test]
fn environment_and_label_values_may_be_numbers_booleans_or_null() {
    let text = "services:\n  a:\n    image: x\n    environment: {N: 5, B: true, F: 1.5, E: null, S: text}\n    labels: {n: 1, b: false}\n  b:\n    image: x\n    environment: [N=5, E]\n";
    let file = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
    let a = &file.services[0];
    assert_eq!(a.environment["N"], "5");
    assert_eq!(a.environment["B"], "true");
    assert_eq!(a.environment["F"], "1.5");
    assert_eq!(a.environment["S"], "text");
    assert_eq!(a.labels["n"], "1");
    assert_eq!(a.labels["b"], "false");
}

#[test]
fn every_service_error_of_a_file_is_reported_at_once() {
    let text = "services:\n  a:\n    image: x\n    privileged: maybe\n  b:\n    command: [x]\n  c:\n    image: x\n    restart: sometimes\n  d:\n    image: x\n";
    let err = parse_text(text).unwrap_err().to_string();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("compose/compute.yml: line"))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("compose/compute.yml: line 4: service a: privileged"),
        "{err}"
    );
    assert!(lines[1].contains("service b: no image"), "{err}");
    assert!(lines[2].contains("service c:"), "{err}");
}

#[test]
fn extra_hosts_and_sysctls_in_map_and_list_form() {
    let text = "services:\n  a:\n    image: x\n    extra_hosts: {db: 10.0.0.5, v6: \"::1\"}\n    sysctls: {net.core.somaxconn: 1024, net.ipv4.tcp_syncookies: 0}\n  b:\n    image: x\n    extra_hosts: [\"db:10.0.0.5\", \"v6=::1\"]\n    sysctls: [net.core.somaxconn=1024]\n";
    let file = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
    for service in &file.services {
        assert_eq!(
            service.extra_hosts,
            vec!["db:10.0.0.5", "v6:::1"],
            "{}",
            service.name
        );
        assert_eq!(service.sysctls["net.core.somaxconn"], "1024");
    }
    assert_eq!(file.services[0].sysctls["net.ipv4.tcp_syncookies"], "0");
    let err = parse_text("services:\n  a:\n    image: x\n    extra_hosts: [lonely]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("extra_hosts: \"lonely\" needs an address"),
        "{err}"
    );
}

#[test]
fn errors_name_the_line_of_their_own_key() {
    let text = "x-base: &base\n  restart: sometimes\nservices:\n  a:\n    image: x\n    environment: {privileged: 1}\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: soon\n    privileged: maybe\n  b:\n    <<: *base\n    image: x\n";
    let err = parse_text(text).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("compose/compute.yml: line 9: service a: healthcheck.interval"),
        "{err}"
    );
    // A key merged from an anchor: the line of the service using it.
    assert!(
        lines[1].starts_with("compose/compute.yml: line 12: service b: restart"),
        "{err}"
    );
    assert_eq!(line_of_key_in_block(text, 5, "privileged"), Some(10));
    assert_eq!(
        line_of_key_in_block(text, 5, "healthcheck.interval"),
        Some(9)
    );
    assert_eq!(
        line_of_key_in_block(text, 5, "healthcheck.retries"),
        Some(7)
    );
    assert_eq!(line_of_key_in_block(text, 5, "ports"), None);
}

#[test]
fn an_empty_file_or_one_without_services_is_an_error() {
    for text in [
        "",
        "# nothing\n",
        "services: {}\n",
        "version: '3'\nservices: {}\n",
    ] {
        let err = parse_text(text).unwrap_err().to_string();
        assert!(err.starts_with("compose/compute.yml:"), "{text:?}: {err}");
        assert!(err.contains("at least one service"), "{text:?}: {err}");
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = "services:\n  a:\n    image: x\n    privilegd: true\n";
    let err = parse_text(text).unwrap_err().to_string();
    assert!(
        err.starts_with("compose/compute.yml: line 4 column 5: unknown field `privilegd`"),
        "{err}"
    );
    let err = parse_text("services: {}\nnetworks: {}\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2: unknown top-level key `networks`"),
        "{err}"
    );
}

#[test]
fn wrong_type_and_malformed_yaml_name_the_line() {
    let err = parse_text("services:\n  a:\n    image: x\n    privileged: maybe\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 4"), "{err}");
    let err = parse_text("services:\n  a:\n    image: [x\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("compose/compute.yml: line"), "{err}");
}

#[test]
fn references_must_name_services_of_the_file() {
    let text = "services:\n  a:\n    image: x\n  b:\n    image: y\n    volumes_from: [nodata]\n";
    let err = parse_text(text).unwrap_err().to_string();
    assert_eq!(
        err,
        "compose/compute.yml: line 5: service b: volumes_from names \"nodata\", which is not a service in this file"
    );
    let text = "services:\n  a:\n    image: x\n    depends_on: [ghost]\n";
    assert!(
        parse_text(text)
            .unwrap_err()
            .to_string()
            .contains("depends_on names \"ghost\"")
    );
    let text = "services:\n  a:\n    image: x\n    volumes: [undeclared:/data]\n";
    assert!(
        parse_text(text)
            .unwrap_err()
            .to_string()
            .contains("not declared under the top-level volumes")
    );
}

#[test]
fn required_variable_names_service_and_field() {
    let text = "services:\n  glance-api:\n    image: \"${GLANCE_IMAGE:?set GLANCE_IMAGE}\"\n";
    let err = parse_text(text).unwrap_err().to_string();
    assert_eq!(
        err,
        "compose/compute.yml: line 3: service glance-api: image: required variable GLANCE_IMAGE is not set: set GLANCE_IMAGE"
    );
}

#[test]
fn dotenv_sits_between_environment_and_globals() {
    let dotenv = BTreeMap::from([
        ("TAG".to_string(), "dotenv".to_string()),
        ("IMAGE_PREFIX".to_string(), "mine/".to_string()),
    ]);
    let text = "services:\n  a:\n    image: ${IMAGE_PREFIX}a:${TAG}\n";
    let file = parse(text, Path::new("c.yml"), &vars(), &dotenv).unwrap();
    assert_eq!(file.services[0].image, "mine/a:from-env");
    let parsed = parse_dotenv(
        "# c\nA=1\nexport B=\"two words\"\nC='x'\n",
        Path::new(".env"),
    )
    .unwrap();
    assert_eq!(parsed["A"], "1");
    assert_eq!(parsed["B"], "two words");
    assert_eq!(parsed["C"], "x");
    assert!(parse_dotenv("novalue\n", Path::new(".env")).is_err());
}

#[test]
fn legacy_v1_layout_is_read() {
    let text = "glance-data:\n  image: kolla/data:zed\n  volumes: [/var/lib/glance]\nglance-api:\n  image: kolla/glance-api:zed\n  name: glance-api\n  net: host\n  volumes_from: [glance-data]\n";
    let file = parse_text(text).unwrap();
    let api = file.service("glance-api").unwrap();
    assert_eq!(api.network_mode.as_deref(), Some("host"));
    assert_eq!(api.volumes_from, vec!["glance-data"]);
    // Used only through volumes_from, serving nothing: a data container.
    assert!(file.service("glance-data").unwrap().kolla.data);
    assert!(!api.kolla.data);
    // A server others share volumes with stays a server.
    let shared = "libvirt:\n  image: kolla/nova-libvirt:zed\n  net: host\n  privileged: true\n  restart: always\ncompute:\n  image: kolla/nova-compute:zed\n  volumes_from: [libvirt]\n";
    let file = parse_text(shared).unwrap();
    assert!(!file.service("libvirt").unwrap().kolla.data);
    // A data image with its volumes in the image only is data too.
    let image_only = "novadata:\n  image: kolla/centos-nova-data:zed\ncompute:\n  image: kolla/nova-compute:zed\n  net: host\n  volumes_from: [novadata]\n";
    let file = parse_text(image_only).unwrap();
    assert!(file.service("novadata").unwrap().kolla.data);
    // Not in the Compose Spec layout, which says so itself.
    let spec = format!(
        "services:\n{}",
        text.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    let file = parse_text(&spec).unwrap();
    assert!(!file.service("glance-data").unwrap().kolla.data);
    // Kolla's own v1 files name containers apart from their keys.
    let text = "glancedata:\n  image: kolla/data:zed\n  name: glance_data\n  volumes: [/var/lib/glance]\nglanceapi:\n  image: kolla/glance-api:zed\n  name: glance-api\n  net: host\n  volumes_from: [glancedata]\n";
    let file = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
    let api = file.service("glance-api").unwrap();
    assert_eq!(api.volumes_from, vec!["glance_data"]);
    assert!(file.service("glance_data").unwrap().kolla.data);
    let err = parse_text("a:\n  image: x\n  name: b\nb:\n  image: x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("a second service is named \"b\""), "{err}");
    let err = parse_text("a:\n  image: x\n  name: a.kolla-new\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("may not end in"), "{err}");
}

/// The shape of Kolla's own v1 compute file (2015): three-space
/// indentation, a data image with its volumes in the image only, two
/// privileged host services sharing its volumes, `env_file`.
#[test]
fn kolla_v1_compute_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openstack.env"), "ADMIN_USER=admin\n").unwrap();
    let text = "computedata:\n   image: kollaglue/centos-rdo-nova-compute-data\n   name: computedata\n\nlibvirt:\n   image: kollaglue/centos-rdo-nova-libvirt\n   name: libvirt\n   net: host\n   pid: host\n   privileged: true\n   restart: always\n   env_file:\n    - openstack.env\n   volumes:\n    - /run:/run\n    - /lib/modules:/lib/modules:ro\n   volumes_from:\n    - computedata\n\nnovacompute:\n   image: kollaglue/centos-rdo-nova-compute\n   name: nova-compute\n   net: host\n   privileged: true\n   restart: always\n   env_file:\n    - openstack.env\n   volumes_from:\n    - computedata\n";
    let file = parse(
        text,
        &dir.path().join("nova-compute.yml"),
        &vars(),
        &BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = file.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["computedata", "libvirt", "nova-compute"]);
    assert!(file.service("computedata").unwrap().kolla.data);
    let libvirt = file.service("libvirt").unwrap();
    assert!(!libvirt.kolla.data && libvirt.privileged);
    assert_eq!(libvirt.environment["ADMIN_USER"], "admin");
    assert_eq!(
        file.service("nova-compute").unwrap().volumes_from,
        vec!["computedata"]
    );
}

/// The idioms of large self-hosted compose files: `x-` anchors merged
/// with `<< :` (a space before the colon) and `<<: [*a, *b]`, a
/// healthcheck anchor whose numbers come from variables, conditions
/// from anchors, an env file.
#[test]
fn self_hosted_project_idioms_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env.app"), "APP_ENV=prod\n").unwrap();
    let text = r#"version: '3.4'
x-restart-policy: &restart_policy
  restart: unless-stopped
x-depends_on-healthy: &depends_on-healthy
  condition: service_healthy
x-healthcheck-defaults: &healthcheck_defaults
  interval: "$HEALTHCHECK_INTERVAL"
  timeout: "$HEALTHCHECK_TIMEOUT"
  retries: $HEALTHCHECK_RETRIES
x-app-defaults: &app_defaults
  << : *restart_policy
  image: "example/app:${APP_TAG:-1.4.0}"
  env_file: .env.app
services:
  database:
    << : *restart_policy
    image: postgres:11.7-alpine
    environment:
      POSTGRES_USER: main
      POSTGRES_DB: main
    healthcheck:
      <<: *healthcheck_defaults
      test: [ "CMD", "pg_isready", "-q", "-d", "main", "-U", "main" ]
    volumes:
      - db:/var/lib/postgresql/data
  app:
    <<: [*app_defaults]
    command: /entrypoint-app.sh
    ports:
      - 8080:80
    depends_on:
      database:
        <<: *depends_on-healthy
volumes:
  db:
"#;
    let variables = Variables {
        environment: BTreeMap::from([
            ("HEALTHCHECK_INTERVAL".to_string(), "30s".to_string()),
            ("HEALTHCHECK_TIMEOUT".to_string(), "1m30s".to_string()),
            ("HEALTHCHECK_RETRIES".to_string(), "10".to_string()),
        ]),
        globals: BTreeMap::new(),
    };
    let file = parse(
        text,
        &dir.path().join("docker-compose.yml"),
        &variables,
        &BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let db = file.service("database").unwrap();
    let health = db.healthcheck.as_ref().unwrap();
    assert_eq!(health.retries, Some(10));
    assert_eq!(health.interval, Some(Duration::from_secs(30)));
    assert_eq!(health.timeout, Some(Duration::from_secs(90)));
    assert_eq!(db.restart.as_deref(), Some("unless-stopped"));
    let app = file.service("app").unwrap();
    assert_eq!(app.image, "example/app:1.4.0");
    assert_eq!(app.environment["APP_ENV"], "prod");
    assert_eq!(app.depends_on["database"], Condition::Healthy);
    assert_eq!(app.ports.len(), 1);
}

#[test]
fn bind_propagation_in_both_syntaxes() {
    let text = r#"
services:
  agent:
    image: x
    volumes:
      - /run/netns:/run/netns:shared
      - /srv:/srv:ro,rslave
      - {type: bind, source: /mnt, target: /mnt, bind: {propagation: rshared}}
    x-kolla: {host_shared_mounts: [/run/netns]}
"#;
    let file = parse_text(text).unwrap();
    let agent = &file.services[0];
    let propagations: Vec<_> = agent
        .volumes
        .iter()
        .map(|m| match m {
            Mount::Bind {
                propagation,
                read_only,
                ..
            } => (propagation.clone(), *read_only),
            Mount::Volume { .. } => (None, false),
        })
        .collect();
    assert_eq!(
        propagations,
        [
            (Some("shared".to_string()), false),
            (Some("rslave".to_string()), true),
            (Some("rshared".to_string()), false)
        ]
    );
    assert_eq!(agent.kolla.host_shared_mounts, ["/run/netns"]);
}

#[test]
fn short_and_long_syntaxes() {
    let text = r#"
services:
  web:
    image: x
    environment: ["A=1", "B=two=2"]
    ports: ["8080:80", "127.0.0.1:9000:90/udp", {target: 443, published: "8443"}]
    labels: {team: infra}
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    tmpfs: /run
    entrypoint: [/bin/sh, -c]
    restart: on-failure:3
"#;
    let file = parse_text(text).unwrap();
    let web = &file.services[0];
    assert_eq!(web.environment["B"], "two=2");
    assert_eq!(
        web.ports,
        vec![
            Port {
                host_ip: None,
                published: Some(8080),
                target: 80,
                protocol: "tcp".into()
            },
            Port {
                host_ip: Some("127.0.0.1".into()),
                published: Some(9000),
                target: 90,
                protocol: "udp".into()
            },
            Port {
                host_ip: None,
                published: Some(8443),
                target: 443,
                protocol: "tcp".into()
            },
        ]
    );
    assert_eq!(web.labels["team"], "infra");
    assert_eq!(
        web.ulimits["nofile"],
        Ulimit {
            soft: 1024,
            hard: 2048
        }
    );
    assert_eq!(
        web.ulimits["nproc"],
        Ulimit {
            soft: 512,
            hard: 512
        }
    );
    assert_eq!(web.tmpfs, vec!["/run"]);
    assert_eq!(web.entrypoint.as_deref().unwrap(), ["/bin/sh", "-c"]);
}

#[test]
fn bad_values_are_refused() {
    let cases = [
        ("    restart: sometimes\n", "restart \"sometimes\""),
        ("    network_mode: mynet\n", "network_mode \"mynet\""),
        (
            "    network_mode: host\n    ports: [\"80:80\"]\n",
            "ports have no effect",
        ),
        ("    stop_grace_period: soon\n", "not a duration"),
        (
            "    healthcheck: {test: [curl, x]}\n",
            "must start with CMD",
        ),
        (
            "    depends_on: {b: {condition: service_ready}}\n",
            "unknown condition",
        ),
        (
            "    depends_on: {b: {condition: service_started, required: false}}\n",
            "required: false is not supported",
        ),
        (
            "    depends_on: {b: {restart: true}}\n",
            "restart: true is not supported",
        ),
        (
            "    volumes: [\"data:relative\"]\n",
            "must be an absolute path",
        ),
        ("    x-kolla: {update_order: sideways}\n", "update_order"),
        (
            "    x-kolla: {host_ports: [\"80\"]}\n",
            "host_ports is for network_mode: host",
        ),
        (
            "    network_mode: host\n    x-kolla: {host_ports: [http]}\n",
            "\"http\" is not a port number",
        ),
        (
            "    x-kolla: {data: true, bootstrap: {command: x}}\n",
            "data container",
        ),
        (
            "    x-kolla: {host_sysctls: {net.ipv4.tcp_migrate_req: 1}}\n",
            "host_sysctls is for network_mode: host",
        ),
        (
            "    network_mode: host\n    x-kolla: {host_sysctls: {kernel.panic: 1}}\n",
            "a network setting",
        ),
        (
            "    network_mode: host\n    x-kolla: {host_sysctls: {net.ipv4.x: \"1; reboot\"}}\n",
            "a plain value",
        ),
        (
            "    x-kolla: {restore_point: {databases: [a]}}\n",
            "has no x-kolla.bootstrap",
        ),
        (
            "    x-kolla: {bootstrap: {command: x}, restore_point: {}}\n",
            "name the databases",
        ),
        (
            "    x-kolla: {bootstrap: {command: x}, restore_point: {dump: cat}}\n",
            "give both dump and restore",
        ),
        (
            "    x-kolla: {bootstrap: {command: x}, restore_point: {databases: [a], dump: x, restore: z}}\n",
            "leave it out",
        ),
    ];
    assert_refused(&cases);
}

#[test]
fn a_files_after_lists_roles_with_their_lines() {
    let text = "x-kolla:\n  after:\n    - controller\n    - ${STORAGE_ROLE:-storage}\nservices:\n  a:\n    image: x\n";
    let file = parse_text(text).unwrap();
    assert_eq!(
        file.after,
        vec![("controller".to_string(), 3), ("storage".to_string(), 4)]
    );
    assert_eq!(
        parse_text("services:\n  a:\n    image: x\n").unwrap().after,
        vec![]
    );
}

#[test]
fn a_files_after_refuses_what_is_not_a_role_with_its_line() {
    let cases = [
        (
            "x-kolla: {after: [../etc]}\n",
            "line 1",
            "is not a role name",
        ),
        (
            "x-kolla: {after: [\"a b\"]}\n",
            "line 1",
            "is not a role name",
        ),
        ("x-kolla: {after: [\"\"]}\n", "line 1", "is not a role name"),
        (
            "x-kolla: {after: [.hidden]}\n",
            "line 1",
            "is not a role name",
        ),
        ("x-kolla:\n  after: [compute]\n", "line 2", "after itself"),
        ("x-kolla:\n  after: [a, b, a]\n", "line 2", "listed twice"),
        (
            "x-kolla: {after: controller}\n",
            "line 1",
            "expected a list",
        ),
        ("x-kolla: {before: [a]}\n", "line 1", "before"),
    ];
    for (top, line, want) in cases {
        let text = format!("{top}services:\n  a:\n    image: x\n");
        let err = parse_text(&text).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("compose/compute.yml"), "{top:?}: {err}");
        assert!(err.contains(line), "{top:?}: {err}");
        assert!(err.contains(want), "{top:?}: {err}");
    }
}

/// Each case's lines, added to service `a`, make an error naming `a`
/// and saying what it must.
fn assert_refused(cases: &[(&str, &str)]) {
    for (extra, want) in cases {
        let text = format!("services:\n  b:\n    image: y\n  a:\n    image: x\n{extra}");
        let err = parse_text(&text).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(err.contains("service a"), "{extra:?}: {err}");
    }
}

#[test]
fn bad_mounts_are_refused() {
    assert_refused(&[
        (
            "    x-kolla: {host_shared_mounts: [\"/run/netns; reboot\"]}\n",
            "an absolute folder of the node",
        ),
        ("    x-kolla: {host_shared_mounts: [/]}\n", "other than /"),
        (
            "    x-kolla: {host_shared_mounts: [/run/../etc]}\n",
            "an absolute folder of the node",
        ),
        (
            "    volumes: [\"/run/netns:/run/netns:sideways\"]\n",
            "a propagation (shared,",
        ),
        (
            "    volumes: [\"data:/data:shared\"]\n",
            "applies to bind mounts",
        ),
        (
            "    volumes: [{type: volume, source: data, target: /data, bind: {propagation: shared}}]\n",
            "a bind mount's propagation",
        ),
        (
            "    volumes: [{type: bind, source: /run, target: /run, bind: {propagation: up}}]\n",
            "bind.propagation \"up\"",
        ),
    ]);
}

#[test]
fn bad_upgrade_orders_are_refused() {
    assert_refused(&[
        (
            "    x-kolla: {upgrade_after: [a]}\n",
            "x-kolla.upgrade_after: names the service itself",
        ),
        (
            "    x-kolla: {upgrade_after: [\"b c\"]}\n",
            "x-kolla.upgrade_after: \"b c\" is not a service name",
        ),
        (
            "    volumes: [/d]\n    x-kolla: {data: true, upgrade_after: [b]}\n",
            "takes no upgrade_after, post_upgrade or one_way",
        ),
        (
            "    volumes: [/d]\n    x-kolla: {data: true, one_way: true}\n",
            "takes no upgrade_after, post_upgrade or one_way",
        ),
    ]);
    let file = parse_text("services:\n  b:\n    image: y\n    x-kolla: {one_way: true}\n  a:\n    image: x\n    x-kolla: {upgrade_after: [b, elsewhere]}\n").unwrap();
    let a = file.service("a").unwrap();
    assert_eq!(a.kolla.upgrade_after, ["b", "elsewhere"]);
    assert!(!a.kolla.one_way);
    assert!(file.service("b").unwrap().kolla.one_way);
}

#[test]
fn a_cleanup_job_is_a_command_and_no_data_container_takes_one() {
    let file = parse_text(
        "services:\n  agent:\n    image: a\n    x-kolla: {cleanup: {command: [kolla-cleanup, namespaces, qdhcp-]}}\n  plain:\n    image: p\n",
    )
    .unwrap();
    assert_eq!(
        file.service("agent").unwrap().kolla.cleanup.as_deref(),
        Some(
            ["kolla-cleanup", "namespaces", "qdhcp-"]
                .map(String::from)
                .as_slice()
        )
    );
    assert_eq!(file.service("plain").unwrap().kolla.cleanup, None);
    assert_refused(&[
        (
            "    volumes: [/d]\n    x-kolla: {data: true, cleanup: {command: [x]}}\n",
            "takes no config, bootstrap, upgrade_check or cleanup",
        ),
        (
            "    x-kolla: {cleanup: {command: []}}\n",
            "x-kolla.cleanup.command: empty",
        ),
        (
            "    x-kolla: {bootstrap: {command: \"\"}}\n",
            "x-kolla.bootstrap.command: empty",
        ),
    ]);
    let err = parse_text("services:\n  a:\n    image: x\n    x-kolla: {cleanup: {run: [x]}}\n")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 4") && err.contains("unknown field `run`"),
        "{err}"
    );
}

#[test]
fn a_restore_point_names_its_databases_or_its_own_commands() {
    let text = "services:\n  glance:\n    image: g\n    x-kolla:\n      bootstrap: {command: x}\n      restore_point: {databases: [glance, glance_cache]}\n  own:\n    image: o\n    x-kolla:\n      bootstrap: {command: x}\n      restore_point: {service: db, dump: cat /s, restore: [sh, -c, 'cat > /s']}\n";
    let file = parse_text(text).unwrap();
    let of = |name: &str| {
        file.services
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.kolla.restore_point.clone())
            .expect("a restore point")
    };
    let glance = of("glance");
    assert_eq!(glance.service, "mariadb");
    assert!(glance.dump.starts_with(&["mariadb-dump".to_string()]));
    assert!(
        glance
            .dump
            .ends_with(&["--databases".into(), "glance".into(), "glance_cache".into()])
    );
    assert!(glance.dump.contains(&"--single-transaction".to_string()));
    assert!(glance.dump.contains(&"--add-drop-database".to_string()));
    assert!(glance.restore.join(" ").contains("$KOLLA_RESTORE_POINT"));
    let own = of("own");
    assert_eq!(own.service, "db");
    assert_eq!(own.dump, vec!["cat", "/s"]);
    assert_eq!(own.restore, vec!["sh", "-c", "cat > /s"]);
}

mod yaml_limits {
    use super::*;

    /// `anchors` anchors, each of `keys` variables, merged by `services`
    /// services each: the shape of real files with one x- anchor per
    /// concern.
    fn many_aliases(anchors: usize, services: usize) -> String {
        let mut text = String::new();
        for a in 0..anchors {
            text.push_str(&format!("x-env{a}: &env{a}\n"));
            for k in 0..8 {
                text.push_str(&format!("  VARIABLE_{a}_{k}: \"value {k}\"\n"));
            }
        }
        text.push_str("services:\n");
        for s in 0..services {
            let merged: Vec<String> = (0..anchors).map(|a| format!("*env{a}")).collect();
            text.push_str(&format!(
                "  s{s}:\n    image: x\n    environment:\n      <<: [{}]\n",
                merged.join(", ")
            ));
        }
        text
    }

    #[test]
    fn many_aliases_of_few_anchors_are_read() {
        let text = many_aliases(10, 15);
        assert_eq!(text.matches('*').count(), 150);
        let file = parse(
            &text,
            Path::new("big.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.services.len(), 15);
        assert_eq!(file.services[0].environment.len(), 80);
    }

    #[test]
    fn a_yaml_bomb_is_refused_in_words() {
        let mut text = String::from(
            "x-a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
        );
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let list = [previous.as_str(); 9].join(", ");
            text.push_str(&format!("x-a{level}: &a{level} [{list}]\n"));
        }
        text.push_str("services:\n  s:\n    image: x\n    command: *a9\n");
        let err = parse(
            &text,
            Path::new("bomb.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("bomb.yml: line"), "{err}");
        assert!(err.contains("too big to read safely"), "{err}");
    }
}
