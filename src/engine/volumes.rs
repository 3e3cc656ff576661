//! Volumes on an engine: create (labelled), exists, list by label,
//! remove.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::RemoveVolumeOptionsBuilder;

use super::deadline::DATA_REMOVAL;
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
        let what = format!("create volume {name}");
        self.work(&what, self.docker.create_volume(request))
            .await
            .map(|_| ())
    }

    /// Whether a volume named `name` exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, EngineError> {
        match self
            .answer(
                &format!("inspect volume {name}"),
                self.docker.inspect_volume(name),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(EngineError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Names of the volumes carrying `label` (`key=value`).
    pub async fn volume_names(&self, label: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let response = self
            .answer("list volumes", self.docker.list_volumes(Some(options)))
            .await?;
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
        let what = format!("remove volume {name}");
        let request = self.docker.remove_volume(name, Some(options));
        match self
            .within(&what, DATA_REMOVAL.max(self.deadlines.work()), request)
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_api(what, e) {
                EngineError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }
}
