//! `kolla genpwd`: fill passwords.yml with random passwords, keeping the
//! ones already there.

use super::Outcome;
use crate::cli::GenpwdArgs;
use crate::config::passwords;
use crate::settings::Settings;

pub fn genpwd(settings: &Settings, args: GenpwdArgs) -> anyhow::Result<Outcome> {
    let config_dir = settings.config_dir.as_path();
    let path = args
        .passwords
        .unwrap_or_else(|| config_dir.join(passwords::PASSWORDS_FILE));
    let generated = passwords::generate(&path, passwords::TEMPLATE)?;
    println!(
        "{}: {} passwords generated, the others kept",
        path.display(),
        generated.len()
    );
    Ok(Outcome::Success)
}
