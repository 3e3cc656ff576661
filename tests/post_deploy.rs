//! `kolla post-deploy` on its own (no engine needed): the admin's
//! clouds.yaml and admin-openrc.sh, readable by their owner only (even
//! when a wider file was there), pointing at Keystone on the inventory's
//! controller; a clear error without a password. The heavy tests use these
//! files with the real client.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Bounded, describe, kolla_command};

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("written")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn post_deploy_writes_the_admin_files_for_the_controller_0600() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path();
    std::fs::write(config.join("globals.yml"), "").expect("globals.yml");
    let inventory = config.join("inventory.yml");
    std::fs::write(
        &inventory,
        "nodes:\n  c1: {roles: [compute], api_address: 10.1.2.4}\n  ctl: {roles: [controller], api_address: 10.1.2.3}\n",
    )
    .expect("inventory");
    let run = |args: &[&str]| {
        kolla_command()
            .arg("--config-dir")
            .arg(config)
            .args(args)
            .bounded_output()
            .expect("run kolla")
    };
    // No password yet: says where it looked and what makes one.
    let output = run(&["post-deploy", "-i", inventory.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let said = common::stderr(&output);
    assert!(
        said.contains("passwords.yml") && said.contains("kolla genpwd"),
        "{said}"
    );

    let output = run(&["genpwd"]);
    assert!(output.status.success(), "{}", describe(&output));
    // A wider file already there is narrowed, not trusted.
    let clouds = config.join("clouds.yaml");
    std::fs::write(&clouds, "old").expect("an old clouds.yaml");
    std::fs::set_permissions(&clouds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run(&["post-deploy", "-i", inventory.to_str().unwrap()]);
    assert!(output.status.success(), "{}", describe(&output));
    let openrc = config.join("admin-openrc.sh");
    assert_eq!(mode_of(&clouds), 0o600);
    assert_eq!(mode_of(&openrc), 0o600);

    let password = common::admin_password(config);
    let text = std::fs::read_to_string(&clouds).unwrap();
    assert!(text.contains("auth_url: http://10.1.2.3:5000/v3"), "{text}");
    assert!(text.contains(&password), "{text}");
    // The shell reads back what was written.
    let sourced = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {} && echo \"$OS_AUTH_URL $OS_USERNAME $OS_PASSWORD\"",
            openrc.display()
        ))
        .bounded_output()
        .expect("run bash");
    assert_eq!(
        common::stdout_of(&sourced).trim(),
        format!("http://10.1.2.3:5000/v3 admin {password}")
    );
    // Nothing secret on the terminal; where the dashboard is, at the
    // controller's address.
    let shown = format!("{}{}", common::stdout_of(&output), common::stderr(&output));
    assert!(!shown.contains(&password), "{shown}");
    assert!(
        shown.contains("the dashboard: http://10.1.2.3/ (user admin"),
        "{shown}"
    );
}
