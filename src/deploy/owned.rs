//! Ownership: kolla removes, renames or stops a container it finds by name
//! only when the container's labels say it is this deployment's own
//! (project and service). Anything else in the way is an error that names
//! it; kolla never touches it. Containers found through an observation
//! (which filters by the project label) are handled by id instead, so a
//! container that took the name since is never the one acted on.

use crate::engine::{ContainerDetails, Engine, EngineError};

use super::labels;

/// A container kolla would have to remove or rename, that is not its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "container {name} is in the way and is not kolla's {service} of deployment {project} ({found})\n  hint: kolla never removes or renames a container it does not own; rename or remove it yourself, then run the command again"
)]
pub struct NotOurs {
    pub name: String,
    pub project: String,
    pub service: String,
    /// What its labels say instead.
    pub found: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OwnedError {
    #[error(transparent)]
    NotOurs(#[from] NotOurs),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Whether `details` is `service` of `project`, by its labels.
pub fn check(details: &ContainerDetails, project: &str, service: &str) -> Result<(), NotOurs> {
    let label = |key: &str| details.labels.get(key).map(String::as_str);
    let found = match (label(labels::PROJECT), label(labels::SERVICE)) {
        (Some(p), Some(s)) if p == project && s == service => return Ok(()),
        (None, _) => "it has no kolla.project label".to_string(),
        (Some(p), s) => format!(
            "its labels say project {p}, service {}",
            s.unwrap_or("(none)")
        ),
    };
    Err(NotOurs {
        name: details.name.clone(),
        project: project.to_string(),
        service: service.to_string(),
        found,
    })
}

/// The container named `name`, if there is one and it is `service`'s.
pub async fn find(
    engine: &Engine,
    name: &str,
    project: &str,
    service: &str,
) -> Result<Option<ContainerDetails>, OwnedError> {
    match engine.inspect(name).await? {
        Some(details) => {
            check(&details, project, service)?;
            Ok(Some(details))
        }
        None => Ok(None),
    }
}

/// Remove the container named `name` if it is `service`'s (by its id, so
/// nothing that took the name meanwhile goes); true if one was removed.
pub async fn remove(
    engine: &Engine,
    name: &str,
    project: &str,
    service: &str,
) -> Result<bool, OwnedError> {
    match find(engine, name, project, service).await? {
        Some(details) => {
            engine.remove_container(&details.id, false).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// `name` must be free (for a rename or a create): an error naming what
/// holds it otherwise, ours or not.
pub async fn must_be_free(
    engine: &Engine,
    name: &str,
    project: &str,
    service: &str,
) -> Result<(), OwnedError> {
    match engine.inspect(name).await? {
        None => Ok(()),
        Some(details) => {
            let found = match check(&details, project, service) {
                Ok(()) => format!("kolla's own, id {}", short_id(&details.id)),
                Err(e) => e.found,
            };
            Err(NotOurs {
                name: details.name,
                project: project.to_string(),
                service: service.to_string(),
                found: format!("{found}; a swap needs this name free"),
            }
            .into())
        }
    }
}

pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn details(labels: &[(&str, &str)]) -> ContainerDetails {
        let labels: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ContainerDetails::created("p-web.kolla-lock", labels)
    }

    #[test]
    fn only_labels_of_this_project_and_service_make_a_container_ours() {
        let ours = details(&[(labels::PROJECT, "p"), (labels::SERVICE, "web")]);
        assert_eq!(check(&ours, "p", "web"), Ok(()));
        let unlabelled = check(&details(&[]), "p", "web").unwrap_err();
        assert_eq!(unlabelled.found, "it has no kolla.project label");
        assert!(unlabelled.to_string().contains("p-web.kolla-lock"));
        let other_project = check(&ours, "q", "web").unwrap_err();
        assert_eq!(other_project.found, "its labels say project p, service web");
        let other_service = check(&ours, "p", "api").unwrap_err();
        assert!(other_service.found.contains("service web"));
        let no_service = check(&details(&[(labels::PROJECT, "p")]), "p", "web").unwrap_err();
        assert!(no_service.found.contains("service (none)"));
    }
}
