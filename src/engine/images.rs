//! Images on an engine: inspect, build (the context as a tar, the
//! builder's stream), pull, push, remove.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ImportImageOptionsBuilder,
    ListImagesOptionsBuilder, PushImageOptionsBuilder, RemoveImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;

use super::deadline::{COMMAND_QUIET, STREAM_QUIET};
use super::{Engine, EngineError};

/// How often a long image copy tells how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What a registry is told with a pull or push (from the operator's
/// Docker config); plain data, never printed with its secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub server: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn docker_credentials(auth: Option<&RegistryAuth>) -> Option<bollard::auth::DockerCredentials> {
    auth.map(|a| bollard::auth::DockerCredentials {
        username: a.username.clone(),
        password: a.password.clone(),
        serveraddress: Some(a.server.clone()),
        identitytoken: a.identity_token.clone(),
        ..Default::default()
    })
}

/// What kolla needs to know about an image on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub repo_digests: Vec<String>,
    /// The paths its `VOLUME` instructions declare.
    pub volumes: Vec<String>,
}

/// One image build: the tar of the context (with `Dockerfile` at its root)
/// and the tag to give the result.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub tag: String,
    pub context_tar: Bytes,
    /// Build every step afresh instead of reusing the builder's cache.
    pub no_cache: bool,
    /// An HTTP proxy on the engine host's loopback for the build's
    /// downloads (kolla's package cache): given as the builder's predefined
    /// `http_proxy` argument, which stays out of the cache key and the
    /// image's history, with the build on the host's network to reach it.
    pub http_proxy: Option<String>,
}

impl Engine {
    /// The image `reference` (name:tag, name@digest or id), or None.
    pub async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        let what = format!("inspect image {reference}");
        match self
            .within(
                &what,
                self.deadlines.answer,
                self.docker.inspect_image(reference),
            )
            .await?
        {
            Ok(inspect) => Ok(Some(ImageInfo {
                id: inspect.id.unwrap_or_default(),
                labels: inspect
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default(),
                volumes: inspect.config.and_then(|c| c.volumes).unwrap_or_default(),
                repo_digests: inspect.repo_digests.unwrap_or_default(),
            })),
            Err(e) => match EngineError::from_api(format!("image {reference}"), e) {
                EngineError::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Build an image with the engine's builder. Each line the builder
    /// prints goes to `on_line`; the first error the builder reports fails
    /// the build. Returns the new image's id.
    pub async fn build(
        &self,
        request: BuildRequest,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, EngineError> {
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&request.tag)
            .nocache(request.no_cache)
            .rm(true)
            .forcerm(true);
        if let Some(proxy) = &request.http_proxy {
            let args = HashMap::from([("http_proxy", proxy.as_str())]);
            options = options.buildargs(&args).networkmode("host");
        }
        let options = options.build();
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(request.context_tar)));
        let what = format!("build {}", request.tag);
        while let Some(item) = self.next_within(&what, COMMAND_QUIET, &mut stream).await? {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(EngineError::BuildFailed {
                            message: detail.message.unwrap_or_else(|| "build failed".into()),
                        });
                    }
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            on_line(line);
                        }
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(EngineError::BuildFailed { message: error });
                }
                Err(e) => return Err(EngineError::from_api(format!("build {}", request.tag), e)),
            }
        }
        match self.image(&request.tag).await? {
            Some(info) => Ok(info.id),
            None => Err(EngineError::BuildFailed {
                message: format!("the builder finished but {} does not exist", request.tag),
            }),
        }
    }

    /// Push `reference` (which must name its registry) and return the
    /// manifest digest the registry reported.
    pub async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        mut on_line: impl FnMut(&str),
    ) -> Result<Option<String>, EngineError> {
        let (name, tag) = split_tag(reference);
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = self
            .docker
            .push_image(name, Some(options), docker_credentials(auth));
        let mut digest = None;
        let what = format!("push {reference}");
        while let Some(item) = self.next_within(&what, STREAM_QUIET, &mut stream).await? {
            let info = item.map_err(|e| EngineError::from_api(format!("push {reference}"), e))?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::StreamFailed {
                    what: format!("push {reference}"),
                    message: detail.message.unwrap_or_else(|| "push failed".into()),
                });
            }
            if let Some(status) = info.status.as_deref() {
                if let Some(found) = status
                    .split_whitespace()
                    .find(|w| w.starts_with("sha256:"))
                    .filter(|_| status.contains("digest:"))
                {
                    digest = Some(found.to_string());
                }
                on_line(status);
            }
        }
        Ok(digest)
    }

    /// Pull `reference` (name:tag or name@digest).
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), EngineError> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self
            .docker
            .create_image(Some(options), None, docker_credentials(auth));
        let what = format!("pull {reference}");
        while let Some(item) = self.next_within(&what, STREAM_QUIET, &mut stream).await? {
            let info = item.map_err(|e| EngineError::from_api(format!("pull {reference}"), e))?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::StreamFailed {
                    what: format!("pull {reference}"),
                    message: detail.message.unwrap_or_else(|| "pull failed".into()),
                });
            }
        }
        Ok(())
    }

    /// Copy `references` from this engine to `to` in one stream, from one
    /// engine's `save` into the other's `load` (nothing lands on disk
    /// here). One stream carries each layer the images share once: a
    /// node's OpenStack images share hundreds of megabytes of base layers,
    /// which a copy per image would send again for each. `progress` hears
    /// the bytes sent so far every `PROGRESS_EVERY`; the total is returned.
    pub async fn copy_images_to(
        &self,
        references: &[&str],
        to: &Engine,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<u64, EngineError> {
        let what = || format!("copy {} to {}", references.join(", "), to.endpoint);
        let sent = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&sent);
        let mut told = std::time::Instant::now();
        let saved = self.docker.export_images(references).inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                let total =
                    counted.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
                if told.elapsed() >= PROGRESS_EVERY {
                    told = std::time::Instant::now();
                    progress(total);
                }
            }
        });
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut loading = to.docker.import_image_stream(options, saved, None);
        // The load answers once it has every byte, so progress is the
        // bytes the save sends: a copy that sends none for STREAM_QUIET
        // has stalled at one end or the other.
        let mut seen = 0;
        loop {
            let info = match tokio::time::timeout(STREAM_QUIET, loading.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    let now = sent.load(Ordering::Relaxed);
                    if now == seen {
                        return Err(self.unresponsive(&what(), STREAM_QUIET));
                    }
                    seen = now;
                    continue;
                }
            };
            let info = info.map_err(|e| EngineError::from_api(what(), e))?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::StreamFailed {
                    what: what(),
                    message: detail.message.unwrap_or_else(|| "load failed".into()),
                });
            }
        }
        Ok(sent.load(Ordering::Relaxed))
    }

    /// Remove an image reference (untags; deletes the image once no tag or
    /// container holds it). A missing image is not an error. Without
    /// `force`, an image still tagged elsewhere or used by a container is a
    /// `Conflict` and stays.
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<(), EngineError> {
        let options = RemoveImageOptionsBuilder::default().force(force).build();
        let what = format!("remove image {reference}");
        match self
            .work(
                &what,
                self.docker.remove_image(reference, Some(options), None),
            )
            .await
        {
            Ok(_) | Err(EngineError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tags (`name:tag`) of every image whose reference matches `pattern`
    /// (Docker's `reference` filter, e.g. `kolla/*`).
    pub async fn image_tags_matching(&self, pattern: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("reference", vec![pattern])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let images = self
            .answer("list images", self.docker.list_images(Some(options)))
            .await?;
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .collect())
    }
}

/// Split `name:tag` at the tag's colon (not a registry port's).
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn split_tag_ignores_registry_port() {
        assert_eq!(
            split_tag("127.0.0.1:4000/kolla/x:zed"),
            ("127.0.0.1:4000/kolla/x", "zed")
        );
        assert_eq!(
            split_tag("127.0.0.1:4000/kolla/x"),
            ("127.0.0.1:4000/kolla/x", "latest")
        );
        assert_eq!(split_tag("kolla/x:1.0"), ("kolla/x", "1.0"));
    }
}
