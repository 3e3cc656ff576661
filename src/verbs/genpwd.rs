//! `kolla genpwd`: fill passwords.yml with random passwords, keeping the
//! ones already there and the rest of the file's text (see
//! `config::passwords::generate`).

use super::Outcome;
use crate::cli::GenpwdArgs;
use crate::config::passwords::{self, GenpwdError};
use crate::settings::Settings;

pub fn genpwd(settings: &Settings, args: GenpwdArgs) -> anyhow::Result<Outcome> {
    let config_dir = settings.config_dir.as_path();
    let path = args
        .passwords
        .unwrap_or_else(|| config_dir.join(passwords::PASSWORDS_FILE));
    // Bad input stays a `ConfigError` (exit 2); a failed read or write is
    // a failure of the work (exit 1).
    let generated = passwords::generate(&path, passwords::TEMPLATE).map_err(|e| match e {
        GenpwdError::Config(e) => anyhow::Error::from(e),
        e => anyhow::Error::from(e),
    })?;
    let shown = match generated.file == path {
        true => path.display().to_string(),
        false => format!("{} (-> {})", path.display(), generated.file.display()),
    };
    outln!(
        "{shown}: {} passwords generated, the others kept",
        generated.names.len()
    );
    Ok(Outcome::Success)
}
