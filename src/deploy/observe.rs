//! Looking at a node: the deployment's containers from one list call.

use super::labels::ObservedContainer;
use crate::config::Globals;
use crate::engine::{Engine, EngineError};

/// The deployment's containers on a node, from one list call.
pub async fn observe(
    engine: &Engine,
    globals: &Globals,
) -> Result<Vec<ObservedContainer>, EngineError> {
    observe_project(engine, &globals.project, &globals.container_prefix).await
}

/// The containers of deployment `project` (names under `prefix`).
pub async fn observe_project(
    engine: &Engine,
    project: &str,
    prefix: &str,
) -> Result<Vec<ObservedContainer>, EngineError> {
    let listing = engine
        .list_containers(&format!("{}={project}", super::labels::PROJECT))
        .await?;
    Ok(listing
        .iter()
        .filter_map(|c| ObservedContainer::from_listing(prefix, c))
        .collect())
}
