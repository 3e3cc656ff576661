//! Volumes on an engine: create (labelled), exists, list by label,
//! remove.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::RemoveVolumeOptionsBuilder;

use super::{Engine, EngineError};

impl Engine {
    /// Create a named volume (labelled); an existing one is kept as is.
    pub async fn create_volume(
        &self,
        name: &str,
        driver: Option<&str>,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: driver.map(str::to_string),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| EngineError::from_api(format!("create volume {name}"), e))
    }

    /// Whether a volume named `name` exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) => match EngineError::from_api(format!("volume {name}"), e) {
                EngineError::NotFound { .. } => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Names of the volumes carrying `label` (`key=value`).
    pub async fn volume_names(&self, label: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let response = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| EngineError::from_api("list volumes", e))?;
        Ok(response
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Remove a named volume; a missing one is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_api(format!("remove volume {name}"), e) {
                EngineError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }
}
