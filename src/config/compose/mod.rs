//! Compose files -> typed services. A node with role `R` runs
//! `compose/R.yml`; this module reads such a file into `ServiceSpec`s.
//!
//! The format is the Compose Spec (so `docker-compose config` accepts our
//! files and operators already know it), restricted to the keys kolla
//! supports: any other key is an error naming file:line, never silently
//! dropped. Kolla's own settings live under `x-kolla`. YAML anchors and
//! merge keys work; string values are interpolated (`${VAR}`, see
//! `interpolate`) from the environment, a `.env` beside the file, and
//! globals.yml, in that order. The legacy v1 layout of the original Kolla
//! files (services at the top level, `net:`, `name:`) is read too.
//!
//! Files: `dotenv` (`.env` and `env_file`, as compose reads them), `model`
//! (the typed services), `raw` (the serde shapes of the
//! YAML), `resolve` (raw -> model, one function per key), `validate`
//! (the model against the engine's rules, under the deployment's container
//! prefix); this file reads a file through them.

mod dotenv;
mod model;
mod raw;
mod resolve;
pub mod show;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde_saphyr::Spanned;

use super::ConfigError;
pub use dotenv::parse_dotenv;
pub use model::*;
use raw::*;
use resolve::*;
pub use resolve::{RESERVED_LABEL_PREFIX, parse_duration};

// ---------------------------------------------------------------------------

/// Variables for interpolation, in priority order: the process environment
/// (as passed in by the caller), the `.env` beside the file, globals.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    pub environment: BTreeMap<String, String>,
    pub globals: BTreeMap<String, String>,
}

/// Read and resolve one compose file.
pub fn load(path: &Path, variables: &Variables) -> Result<ComposeFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dotenv = dotenv_in(path.parent().unwrap_or(Path::new(".")))?;
    parse(&text, path, variables, &dotenv)
}

/// The `.env` file of folder `dir` (none: empty).
pub fn dotenv_in(dir: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let path = dir.join(".env");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_dotenv(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Services known by a container name of their own: every reference to
/// their key (`volumes_from`, `depends_on`, `network_mode: service:`) now
/// names them by it. Two services may not share a name.
fn rename_references(
    services: &mut [ServiceSpec],
    renamed: &BTreeMap<String, String>,
    path: &Path,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeMap::new();
    for service in services.iter() {
        if let Some(first) = seen.insert(service.name.clone(), service.line) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "line {}: a second service is named {:?} (the first at line {first}); container names must be unique",
                    service.line, service.name
                ),
            });
        }
    }
    if renamed.is_empty() {
        return Ok(());
    }
    let new_name = |old: &str| renamed.get(old).cloned().unwrap_or_else(|| old.to_string());
    for service in services.iter_mut() {
        for source in &mut service.volumes_from {
            let (name, mode) = match source.split_once(':') {
                Some((name, mode)) => (name.to_string(), Some(mode.to_string())),
                None => (source.clone(), None),
            };
            *source = match mode {
                Some(mode) => format!("{}:{mode}", new_name(&name)),
                None => new_name(&name),
            };
        }
        service.depends_on = std::mem::take(&mut service.depends_on)
            .into_iter()
            .map(|(name, condition)| (new_name(&name), condition))
            .collect();
        if let Some(mode) = &service.network_mode
            && let Some(target) = mode.strip_prefix("service:")
        {
            service.network_mode = Some(format!("service:{}", new_name(target)));
        }
    }
    Ok(())
}

/// Kolla's v1 files declare data containers as ordinary services: an
/// image whose command exits at once, that other services use through
/// `volumes_from`. Such a service is a data container (created, never
/// started, never removed without `--purge-data`) when it is used by
/// another through `volumes_from`, holds volumes (declared in the file, or
/// a `-data` image), and shows nothing of a server: no command of its own
/// beyond `true`, no ports, network, restart policy, privileges,
/// environment, healthcheck or config. A running service others share
/// volumes with (a v1 `volumes_from: [nova-libvirt]`) keeps running. The
/// Compose Spec layout says so explicitly instead (`x-kolla: {data:
/// true}`).
fn mark_legacy_data_containers(services: &mut [ServiceSpec]) {
    let used: std::collections::BTreeSet<String> = services
        .iter()
        .flat_map(|s| s.volumes_from.iter())
        .map(|v| v.split(':').next().unwrap_or(v).to_string())
        .collect();
    for service in services.iter_mut() {
        let exits_at_once = match service.command.as_deref() {
            None => true,
            Some([only]) => matches!(only.as_str(), "true" | "/bin/true"),
            Some(_) => false,
        };
        // The image's own name: after the last `/`, before a tag or digest.
        let image_name = service
            .image
            .rsplit('/')
            .next()
            .and_then(|last| last.split([':', '@']).next())
            .unwrap_or_default();
        let holds_volumes = !service.volumes.is_empty() || image_name.ends_with("data");
        let serves = !service.ports.is_empty()
            || service.network_mode.is_some()
            || service.restart.as_deref().is_some_and(|r| r != "no")
            || service.privileged
            || !service.environment.is_empty()
            || service.healthcheck.is_some()
            || service.kolla.config.is_some()
            || service.kolla.bootstrap.is_some();
        if used.contains(&service.name) && holds_volumes && exits_at_once && !serves {
            service.kolla.data = true;
        }
    }
}

/// How compose YAML is read: the parser's resource limits (events, nodes,
/// aliases, depth, bytes), which stop a "billion laughs" file, stay; its
/// alias-per-anchor ratio goes, since real compose files use many aliases
/// of few anchors (one `x-service` anchor merged into every service).
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.enforce_alias_anchor_ratio = false;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Parse compose YAML `text` (of file `path`, for errors and relative paths).
pub fn parse(
    text: &str,
    path: &Path,
    variables: &Variables,
    dotenv: &BTreeMap<String, String>,
) -> Result<ComposeFile, ConfigError> {
    let (raw, legacy) = read_raw(text, path)?;
    let lookup = |name: &str| {
        variables
            .environment
            .get(name)
            .or_else(|| dotenv.get(name))
            .or_else(|| variables.globals.get(name))
            .cloned()
    };
    let resolver = Resolver {
        path,
        text,
        lookup: &lookup,
    };
    let after = after_roles(&resolver, raw.kolla.after)?;
    let (mut services, renamed) = resolve_services(&resolver, raw.services)?;
    rename_references(&mut services, &renamed, path)?;
    services.sort_by(|a, b| a.name.cmp(&b.name));
    if legacy {
        mark_legacy_data_containers(&mut services);
    }
    let mut file = ComposeFile {
        path: path.to_path_buf(),
        services,
        volumes: top_level_volumes(raw.volumes),
        after,
    };
    check_references(&file)?;
    let mut problems = validate::problems(&file, text, container_prefix(variables));
    // At most 20, as the resolver reports.
    problems.truncate(20);
    match problems.len() {
        0 => {}
        1 => return Err(problems.remove(0)),
        _ => return Err(ConfigError::Several(problems)),
    }
    mount_volume_names(&mut file);
    Ok(file)
}

/// The deployment's container prefix: globals.yml's, as the globals'
/// `${CONTAINER_PREFIX}` (none given: the default, empty).
fn container_prefix(variables: &Variables) -> &str {
    variables
        .globals
        .get("CONTAINER_PREFIX")
        .map_or("", String::as_str)
}

/// `x-kolla.after`: role names (interpolated), each valid as the inventory
/// wants a role, and not the file's own role.
fn after_roles(
    resolver: &Resolver,
    after: Vec<Spanned<String>>,
) -> Result<Vec<(String, usize)>, ConfigError> {
    let own = resolver.path.file_stem().and_then(|s| s.to_str());
    let mut roles = Vec::new();
    for entry in after {
        let line = entry.referenced.line();
        let invalid = |message: String| ConfigError::Invalid {
            path: resolver.path.to_path_buf(),
            message: format!("line {line}: x-kolla.after: {message}"),
        };
        let role = crate::config::interpolate::interpolate(&entry.value, resolver.lookup)
            .map_err(|e| invalid(e.to_string()))?;
        // The inventory's rule for role names: anything else names no role.
        if !crate::config::globals::is_valid_path_component(&role) {
            return Err(invalid(format!(
                "{role:?} is not a role name (lowercase letters, digits, '.', '_', '-', as in compose/ROLE.yml)"
            )));
        }
        if Some(role.as_str()) == own {
            return Err(invalid(format!("a role cannot come after itself ({role})")));
        }
        if roles.iter().any(|(r, _)| *r == role) {
            return Err(invalid(format!("{role} is listed twice")));
        }
        roles.push((role, line as usize));
    }
    Ok(roles)
}

/// The file's raw shapes, and whether it has the Kolla v1 layout
/// (services at the top level).
fn read_raw(text: &str, path: &Path) -> Result<(RawFile, bool), ConfigError> {
    let yaml_error = |e: serde_saphyr::Error| ConfigError::Yaml {
        path: path.to_path_buf(),
        message: crate::config::yaml::error_text(&e, text),
    };
    // An empty file would deploy nothing, and with --remove-orphans remove
    // everything: surely not what its author meant.
    let empty = |what: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: format!("{what}: a compose file must define at least one service"),
    };
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Err(empty("the file is empty"));
    }
    let top: BTreeMap<String, serde::de::IgnoredAny> =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_error)?;
    let legacy = !top.contains_key("services");
    let raw = if legacy {
        let services: BTreeMap<String, Spanned<RawService>> =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_error)?;
        RawFile {
            services,
            volumes: BTreeMap::new(),
            kolla: Default::default(),
        }
    } else {
        if let Some(key) = top
            .keys()
            .find(|key| !key.starts_with("x-") && !TOP_LEVEL_KEYS.contains(&key.as_str()))
        {
            return Err(ConfigError::Yaml {
                path: path.to_path_buf(),
                message: format!(
                    "line {}: unknown top-level key `{key}`, expected one of {} or an x- extension",
                    line_of_key(text, key),
                    TOP_LEVEL_KEYS.join(", ")
                ),
            });
        }
        serde_saphyr::from_str_with_options::<RawFile>(text, yaml_options()).map_err(yaml_error)?
    };
    if raw.services.is_empty() {
        return Err(empty("no services"));
    }
    Ok((raw, legacy))
}

/// Every service resolved, with the keys whose `container_name` renamed
/// them; every service's errors in one run, not one per attempt.
fn resolve_services(
    resolver: &Resolver,
    raw: BTreeMap<String, Spanned<RawService>>,
) -> Result<(Vec<ServiceSpec>, BTreeMap<String, String>), ConfigError> {
    const MOST_ERRORS: usize = 20;
    let mut services = Vec::new();
    let mut renamed = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, raw) in raw {
        match resolver.service(&name, raw) {
            Ok(service) => {
                if service.name != name {
                    renamed.insert(name, service.name.clone());
                }
                services.push(service);
            }
            Err(e) if errors.len() < MOST_ERRORS => errors.push(e),
            Err(_) => {}
        }
    }
    match errors.len() {
        0 => Ok((services, renamed)),
        1 => Err(errors.remove(0)),
        _ => Err(ConfigError::Several(errors)),
    }
}

fn top_level_volumes(raw: BTreeMap<String, Option<RawVolume>>) -> BTreeMap<String, VolumeSpec> {
    raw.into_iter()
        .map(|(key, spec)| {
            let spec = spec.unwrap_or(RawVolume {
                driver: None,
                external: false,
                name: None,
            });
            let volume = VolumeSpec {
                literal: spec.name.is_some() || spec.external,
                name: spec.name.unwrap_or_else(|| key.clone()),
                external: spec.external,
                driver: spec.driver,
            };
            (key, volume)
        })
        .collect()
}

/// Mounts name volumes by key; the container mounts the volume's name.
fn mount_volume_names(file: &mut ComposeFile) {
    for service in &mut file.services {
        for mount in &mut service.volumes {
            if let Mount::Volume {
                source: Some(key),
                literal,
                ..
            } = mount
                && let Some(volume) = file.volumes.get(key.as_str())
            {
                *literal = volume.literal;
                *key = volume.name.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests;
