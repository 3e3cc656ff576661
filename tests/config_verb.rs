//! `kolla config`: the services each node deploys as kolla resolved its
//! compose files, on the busybox fixture and on the shipped compose files
//! with a passwords.yml from `kolla genpwd`. No password shows, in any
//! form, even where a compose value was interpolated from one and a
//! template rendered one; the resolved image and interpolated values do;
//! `--node` limits the nodes; an unknown service is refused closest first.
//! It reads files only: no container is made.

mod common;

use std::path::Path;

use common::{Bounded, Deployment, describe, expect_exit, kolla_command, stdout_of};

/// Passwords with a part no output has by chance; one with characters
/// every escaping changes.
const SECRETS: [&str; 2] = ["Sekr1tC-cnfgq-4pR", r#"Qu"o\te$'d&<x>-8mN"#];

/// The fixture with passwords.yml holding `SECRETS`, a config template
/// that renders one, and API_GREETING (a compose environment value) set
/// to the other.
fn fixture(name: &str) -> Deployment {
    let mut d = Deployment::new(name);
    std::fs::write(
        d.images.config_dir.join("passwords.yml"),
        format!(
            "web_password: {:?}\nother_password: {:?}\n",
            SECRETS[0], SECRETS[1]
        ),
    )
    .expect("passwords.yml");
    std::fs::write(
        d.compose_dir.join("web/web.conf"),
        "password = {{ passwords.web_password }}\n",
    )
    .expect("template");
    d.env
        .push(("API_GREETING".to_string(), SECRETS[1].to_string()));
    d
}

fn assert_no_password(text: &str, what: &str, passwords: &[String]) {
    for secret in passwords {
        let start: String = secret.chars().take(4).collect();
        assert!(
            !text.contains(secret.as_str()),
            "a password ({start}...) shows in {what}:\n{text}"
        );
    }
}

#[test]
fn config_shows_the_fixture_resolved_with_every_password_masked() {
    let d = fixture("config-shown");
    let secrets: Vec<String> = SECRETS.iter().map(|s| s.to_string()).collect();
    let output = d.kolla("config", &[]);
    expect_exit(&output, 0, &[]);
    let yaml = stdout_of(&output);
    assert!(
        yaml.starts_with("# node local (roles: controller)\n"),
        "{yaml}"
    );
    assert_no_password(&yaml, "the YAML", &secrets);
    assert_no_password(&common::stderr(&output), "stderr", &secrets);
    // The image as interpolated, a port interpolated into a command, and
    // the rendered file named (not shown).
    assert!(
        yaml.contains(&format!("image: {}", d.env("IMAGE"))),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!("127.0.0.1:{}", d.env("WEB_PORT"))),
        "{yaml}"
    );
    assert!(yaml.contains("/etc/web/web.conf"), "{yaml}");
    assert!(yaml.contains("GREETING: <hidden>"), "{yaml}");

    let output = d.kolla("config", &["web", "--output", "json"]);
    expect_exit(&output, 0, &[]);
    let json = stdout_of(&output);
    assert_no_password(&json, "the JSON", &secrets);
    let nodes: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(nodes[0]["node"], "local");
    let services = nodes[0]["services"].as_object().expect("services");
    assert_eq!(services.keys().collect::<Vec<_>>(), ["web"]);
    assert_eq!(services["web"]["image"], d.env("IMAGE"));
    assert_eq!(services["web"]["x-kolla"]["config"]["dest"], "/etc/web");
}

#[test]
fn config_limits_to_the_node_asked_and_refuses_an_unknown_service() {
    let d = fixture("config-nodes");
    std::fs::write(
        &d.inventory,
        "nodes:\n  alpha:\n    roles: [controller]\n  beta:\n    roles: [controller]\n",
    )
    .expect("inventory");
    let shown = |args: &[&str]| {
        let output = d.kolla("config", args);
        expect_exit(&output, 0, &[]);
        stdout_of(&output)
    };
    let all = shown(&[]);
    assert!(
        all.contains("# node alpha") && all.contains("\n---\n# node beta"),
        "{all}"
    );
    let beta = shown(&["--node", "beta"]);
    assert!(
        beta.starts_with("# node beta") && !beta.contains("alpha"),
        "{beta}"
    );

    let output = d.kolla("config", &["wbe"]);
    let err = expect_exit(
        &output,
        2,
        &["did you mean \"web\"", "closest first: web, "],
    );
    assert!(output.stdout.is_empty(), "{}", describe(&output));
    assert!(!err.contains(SECRETS[0]));
}

#[test]
fn config_of_the_shipped_files_shows_no_generated_password() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let run = |args: &[&str]| {
        kolla_command()
            .env_remove("KOLLA_INVENTORY")
            .env_remove("KOLLA_COMPOSE_DIR")
            .arg("--config-dir")
            .arg(&config)
            .args(args)
            .bounded_output()
            .expect("run the kolla binary")
    };
    expect_exit(&run(&["genpwd"]), 0, &[]);
    let text = std::fs::read_to_string(config.join("passwords.yml")).expect("passwords.yml");
    let passwords: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| v.len() >= 8)
        .collect();
    assert!(passwords.len() >= 10, "{text}");
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose");
    let compose = compose.to_str().expect("a UTF-8 path");
    for output in [&["--output", "json"][..], &[]] {
        let mut args = vec!["config", "--compose-dir", compose];
        args.extend_from_slice(output);
        let output = run(&args);
        assert!(output.status.success(), "{}", describe(&output));
        let shown = stdout_of(&output);
        assert_no_password(&shown, "the shipped files' config", &passwords);
        assert_no_password(&common::stderr(&output), "stderr", &passwords);
        // ${IMAGE_PREFIX} and ${TAG} interpolated from the globals.
        assert!(shown.contains("kolla/keystone:epoxy"), "{shown}");
        assert!(shown.contains("mariadb"), "{shown}");
    }
}
