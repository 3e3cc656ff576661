//! A host where kolla-ansible ran before: its passwords.yml, as
//! `kolla-genpwd` writes it (`tests/fixtures/kolla-ansible`), read with no
//! engine. `kolla genpwd` adds only kolla's missing names and keeps every
//! byte already there (the ssh key pairs, the registry password left null,
//! the keys kolla does not use); every shipped config template renders
//! with the file; a template that asks for an ssh key pair (a map) is
//! refused naming both files and lines, never showing the key.

mod common;

use std::path::{Path, PathBuf};

use common::{Bounded, describe, fixtures, kolla_command, stdout_of};
use kolla::config::passwords;

/// The fixture, as written by kolla-genpwd.
fn written_by_kolla_ansible() -> String {
    std::fs::read_to_string(fixtures().join("kolla-ansible/passwords.yml"))
        .expect("the kolla-ansible fixture")
}

/// A config folder holding a copy of the fixture.
fn config_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("passwords.yml");
    std::fs::write(&file, written_by_kolla_ansible()).expect("copy the fixture");
    (dir, file)
}

#[test]
fn genpwd_adds_kollas_missing_names_and_keeps_kolla_ansibles_bytes() {
    let (dir, file) = config_dir();
    let before = written_by_kolla_ansible();
    let output = kolla_command()
        .arg("--config-dir")
        .arg(dir.path())
        .arg("genpwd")
        .bounded_output()
        .expect("run kolla genpwd");
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stdout_of(&output).contains("2 passwords generated"),
        "{}",
        describe(&output)
    );
    let after = std::fs::read_to_string(&file).expect("the file genpwd wrote");
    let added = after
        .strip_prefix(before.as_str())
        .unwrap_or_else(|| panic!("genpwd changed kolla-ansible's lines:\n{after}"));
    let names: Vec<&str> = added
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name)
        .collect();
    // In the order of kolla's template.
    assert_eq!(names, ["rabbitmq_cluster_cookie", "memcache_secret_key"]);

    // Read back: every name kolla's templates use is a password, the ssh
    // key pairs and the blank registry password are set aside.
    let read = passwords::read(&file).expect("the filled file reads");
    let template = passwords::TEMPLATE
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim())
        .filter(|name| !name.is_empty() && !name.starts_with('#'));
    for name in template {
        assert!(read.values.contains_key(name), "{name} is a password");
    }
    assert_eq!(read.values["barbican_crypto_key"].len(), 44);
    let set_aside: Vec<&str> = read.set_aside.keys().map(String::as_str).collect();
    assert_eq!(
        set_aside,
        [
            "bifrost_ssh_key",
            "docker_registry_password",
            "keystone_ssh_key",
            "kolla_ssh_key",
            "nova_ssh_key"
        ]
    );

    // Again: nothing to add, nothing written.
    let output = kolla_command()
        .arg("--config-dir")
        .arg(dir.path())
        .arg("genpwd")
        .bounded_output()
        .expect("run kolla genpwd");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(std::fs::read_to_string(&file).expect("the file"), after);
}

/// Every template kolla ships renders for the all-in-one with the file
/// kolla-ansible wrote (once kolla's genpwd added its names).
#[test]
fn every_shipped_template_renders_with_kolla_ansibles_file() {
    use kolla::config::{Globals, Inventory, compose::Variables};
    use kolla::deploy::desired;
    let (_dir, file) = config_dir();
    passwords::generate(&file, passwords::TEMPLATE).expect("kolla genpwd");
    let read = passwords::read(&file).expect("the file reads");
    let inventory = Inventory::load(None).expect("the built-in inventory");
    let node = &inventory.nodes[0];
    let globals = Globals::default();
    let variables = Variables {
        environment: Default::default(),
        globals: globals.compose_variables(),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = desired::load_files(node, &root.join("compose"), &variables).expect("compose");
    let wanted =
        desired::desired_of(node, &files, &globals, &read, &[]).unwrap_or_else(|e| panic!("{e}"));
    let keystone = &read.values["keystone_database_password"];
    let rendered = wanted
        .files
        .values()
        .flatten()
        .any(|f| String::from_utf8_lossy(&f.bytes).contains(keystone.as_str()));
    assert!(
        rendered,
        "kolla-ansible's keystone password reaches keystone"
    );
}

/// A template that asks for an ssh key pair is refused: its line, the
/// passwords file's line, and nothing of the key.
#[test]
fn a_template_asking_for_an_ssh_key_pair_is_refused_naming_the_lines() {
    use kolla::config::compose::{Variables, parse};
    use kolla::deploy::config_files::{TemplateInputs, render};
    let (dir, file) = config_dir();
    let read = passwords::read(&file).expect("the file reads");
    let templates = dir.path().join("nova");
    std::fs::create_dir_all(&templates).expect("templates folder");
    std::fs::write(
        templates.join("id_rsa"),
        "{# the key nova-ssh would use #}\n{{ passwords.nova_ssh_key.private_key }}\n",
    )
    .expect("template");
    let compose = "services:\n  nova-ssh:\n    image: x\n    x-kolla: {config: {src: nova, dest: /var/lib/nova/.ssh}}\n";
    let parsed = parse(
        compose,
        &dir.path().join("compute.yml"),
        &Variables::default(),
        &Default::default(),
    )
    .expect("compose file");
    let inputs = TemplateInputs {
        passwords: read,
        ..TemplateInputs::default()
    };
    let err = render(&parsed.services[0], &inputs)
        .expect_err("a map is no password")
        .to_string();
    let line = written_by_kolla_ansible()
        .lines()
        .position(|l| l == "nova_ssh_key:")
        .expect("nova_ssh_key in the fixture")
        + 1;
    let expected = format!(
        "line 2: asks for passwords.nova_ssh_key, which {} holds at line {line} as a map",
        file.display()
    );
    assert!(
        err.contains("nova/id_rsa") && err.contains(&expected),
        "{err}"
    );
    assert!(
        !err.contains("bm90IGEga2V5") && !err.contains("PRIVATE KEY"),
        "{err}"
    );
}
