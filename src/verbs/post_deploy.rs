//! `kolla post-deploy`: what the operator needs to use the cloud after a
//! deploy: `clouds.yaml` and `admin-openrc.sh` for the admin (mode 0600,
//! beside passwords.yml), pointing at Keystone on the first controller
//! node, how to run the real client with them, and where the dashboard
//! answers.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

use super::Outcome;
use crate::cli::PostDeployArgs;
use crate::config::clouds::{self, Admin};
use crate::config::inventory::Inventory;
use crate::config::passwords;
use crate::settings::Settings;

/// The role whose node runs Keystone (compose/controller.yml).
const KEYSTONE_ROLE: &str = "controller";
/// The admin's password in passwords.yml.
const ADMIN_PASSWORD: &str = "keystone_admin_password";

pub fn post_deploy(settings: &Settings, args: PostDeployArgs) -> anyhow::Result<Outcome> {
    let inventory = Inventory::load(args.inventory.as_deref())?;
    let Some(controller) = inventory
        .nodes
        .iter()
        .find(|n| n.roles.iter().any(|r| r == KEYSTONE_ROLE))
    else {
        anyhow::bail!(
            "{}: no node has the role {KEYSTONE_ROLE}, where Keystone runs",
            inventory.origin.display()
        );
    };
    let passwords_file = settings.config_dir.join(passwords::PASSWORDS_FILE);
    let known = passwords::load(&passwords_file)?;
    let Some(password) = known.get(ADMIN_PASSWORD) else {
        anyhow::bail!(
            "{}: no {ADMIN_PASSWORD}\n  hint: `kolla genpwd` makes it, and `kolla deploy` gives it to Keystone",
            passwords_file.display()
        );
    };
    let admin = Admin {
        auth_url: format!("http://{}:5000/v3", controller.api_address_or_loopback()),
        password: password.clone(),
        region: "RegionOne".to_string(),
    };
    let clouds_yaml = admin.clouds_yaml().map_err(anyhow::Error::msg)?;
    // Absolute, so the commands printed below work from anywhere.
    let config_dir =
        std::path::absolute(&settings.config_dir).unwrap_or_else(|_| settings.config_dir.clone());
    let clouds_path = config_dir.join(clouds::CLOUDS_FILE);
    let openrc_path = config_dir.join(clouds::OPENRC_FILE);
    write_secret(&clouds_path, &clouds_yaml)?;
    write_secret(&openrc_path, &admin.openrc())?;
    outln!(
        "{}, {}: the admin of the cloud at {} (mode 0600)",
        clouds_path.display(),
        openrc_path.display(),
        admin.auth_url
    );
    outln!(
        "  with the openstack client here:  OS_CLOUD={} OS_CLIENT_CONFIG_FILE={} openstack token issue",
        clouds::CLOUD_NAME,
        clouds_path.display()
    );
    // As the file's owner: only they may read it.
    outln!(
        "  or from the kolla-toolbox image: docker run --rm --network host --user \"$(id -u)\" -e HOME=/tmp -v {}:/etc/openstack/clouds.yaml:ro -e OS_CLOUD={} {} openstack token issue",
        clouds_path.display(),
        clouds::CLOUD_NAME,
        settings.globals.image_ref("kolla-toolbox")
    );
    outln!(
        "  the dashboard: http://{}/ (user admin, password {ADMIN_PASSWORD} of {})",
        controller.api_address_or_loopback(),
        passwords_file.display()
    );
    Ok(Outcome::Success)
}

/// Write `text` to `path` readable by its owner only, whatever mode a file
/// already there had; never a moment with the secret in a wider file.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot make it 0600", path.display()))?;
    file.set_len(0)
        .and_then(|()| file.write_all(text.as_bytes()))
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}
