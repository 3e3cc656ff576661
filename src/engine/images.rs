//! Images on an engine: inspect, build (the context as a tar, the
//! builder's stream), pull, push, list, remove.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::moby::buildkit::v1::StatusResponse;
use bollard::models::{BuildInfoAux, ImageSummary};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, CreateImageOptionsBuilder, ImportImageOptionsBuilder,
    ListImagesOptions, ListImagesOptionsBuilder, PushImageOptionsBuilder,
    RemoveImageOptionsBuilder,
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
    /// Its layers' diff ids, base first: an image whose layers begin with
    /// another's shares that one's bytes.
    pub layers: Vec<String>,
}

/// An image on a node as one list call shows it (`kolla prune-images`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedImage {
    pub id: String,
    /// `name:tag` references (none for a dangling image).
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Bytes of all its layers, those it shares with other images too.
    pub size: u64,
    /// Of those, the bytes other images share, where the engine says
    /// (API 1.42 and later); what removing it alone frees is the rest.
    pub shared_size: Option<u64>,
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
                layers: inspect.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                repo_digests: inspect.repo_digests.unwrap_or_default(),
            })),
            Err(e) => match EngineError::from_api(format!("image {reference}"), e) {
                EngineError::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Build an image with the engine's builder: BuildKit where the engine
    /// has it (API 1.39 and later), else the classic builder. Each line the
    /// builder prints goes to `on_line` (BuildKit's steps as the classic
    /// builder's `Step i/n : ...` lines); the first error the builder
    /// reports fails the build. Returns the new image's id.
    ///
    /// Why BuildKit: the classic builder commits a layer for every
    /// instruction, `USER` and `LABEL` included, and on a storage driver
    /// without native diffs (fuse-overlayfs) each commit walks the whole
    /// image; an OpenStack service image then spends far longer in its
    /// metadata steps than in its package install. BuildKit writes
    /// metadata without a layer and diffs only what a step changed.
    pub async fn build(
        &self,
        request: BuildRequest,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, EngineError> {
        let buildkit = self.has_buildkit();
        let session = buildkit.then(|| build_session_id(&request.tag));
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&request.tag)
            .nocache(request.no_cache)
            .rm(true)
            .forcerm(true);
        if let Some(session) = &session {
            options = options
                .version(BuilderVersion::BuilderBuildKit)
                .session(session);
        }
        if let Some(proxy) = &request.http_proxy {
            let args = HashMap::from([("http_proxy", proxy.as_str())]);
            options = options.buildargs(&args).networkmode("host");
        }
        let options = options.build();
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(request.context_tar)));
        let what = format!("build {}", request.tag);
        let mut steps = BuildKitSteps::default();
        while let Some(item) = self.next_within(&what, COMMAND_QUIET, &mut stream).await? {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        let message = detail.message.unwrap_or_else(|| "build failed".into());
                        return Err(EngineError::BuildFailed {
                            message: steps.explain(message),
                        });
                    }
                    if let Some(BuildInfoAux::BuildKit(status)) = &info.aux {
                        for line in steps.lines(status) {
                            on_line(&line);
                        }
                    }
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            on_line(line);
                        }
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(EngineError::BuildFailed {
                        message: steps.explain(error),
                    });
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

    /// Whether the engine builds with BuildKit over the API (1.39 and
    /// later, with a client session).
    fn has_buildkit(&self) -> bool {
        let version = self.docker.client_version();
        (version.major_version, version.minor_version) >= (1, 39)
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

    /// Every tagged or dangling top-level image on the engine (not the
    /// intermediate layers of classic builds), with the bytes it shares
    /// with others where the engine counts them.
    pub async fn list_images(&self) -> Result<Vec<ListedImage>, EngineError> {
        let options = ListImagesOptionsBuilder::default()
            .shared_size(true)
            .build();
        Ok(self
            .summaries(options)
            .await?
            .into_iter()
            .map(|i| ListedImage {
                id: i.id,
                tags: named(i.repo_tags).collect(),
                labels: i.labels,
                size: u64::try_from(i.size).unwrap_or(0),
                // -1: the engine did not count it.
                shared_size: u64::try_from(i.shared_size).ok(),
            })
            .collect())
    }

    /// Tags (`name:tag`) of every image whose reference matches `pattern`
    /// (Docker's `reference` filter, e.g. `kolla/*`).
    pub async fn image_tags_matching(&self, pattern: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("reference", vec![pattern])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let images = self.summaries(options).await?;
        Ok(images
            .into_iter()
            .flat_map(|i| named(i.repo_tags))
            .collect())
    }

    /// One list call.
    async fn summaries(
        &self,
        options: ListImagesOptions,
    ) -> Result<Vec<ImageSummary>, EngineError> {
        self.answer("list images", self.docker.list_images(Some(options)))
            .await
    }
}

/// An image's tags, without the engine's `<none>:<none>` of an untagged one.
fn named(tags: Vec<String>) -> impl Iterator<Item = String> {
    tags.into_iter().filter(|t| t != "<none>:<none>")
}

/// A BuildKit session id for one build: unique on the engine while it runs
/// (the process, the image and the moment).
fn build_session_id(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "kolla-{name}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// How many lines of a failed step's output its error carries.
const FAILED_STEP_TAIL: usize = 15;

/// BuildKit's progress (vertices and their logs, sent again as they
/// change) as the lines of a build log: each Dockerfile step once, as the
/// classic builder names it, then its output. Remembers each step's last
/// lines, so a failure can say what the failing command printed.
#[derive(Default)]
struct BuildKitSteps {
    announced: std::collections::HashSet<String>,
    names: HashMap<String, String>,
    tails: HashMap<String, std::collections::VecDeque<String>>,
    failed: Option<String>,
}

impl BuildKitSteps {
    fn lines(&mut self, status: &StatusResponse) -> Vec<String> {
        let mut lines = Vec::new();
        for vertex in &status.vertexes {
            let name = step_line(&vertex.name);
            self.names.insert(vertex.digest.clone(), name.clone());
            if vertex.started.is_some() && self.announced.insert(vertex.digest.clone()) {
                lines.push(name);
            }
            if !vertex.error.is_empty() && self.failed.is_none() {
                self.failed = Some(vertex.digest.clone());
            }
        }
        for log in &status.logs {
            let tail = self.tails.entry(log.vertex.clone()).or_default();
            for line in String::from_utf8_lossy(&log.msg).lines() {
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                if tail.len() == FAILED_STEP_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line.to_string());
                lines.push(line.to_string());
            }
        }
        lines
    }

    /// The builder's error, with the failing step and its last output.
    fn explain(&self, message: String) -> String {
        let Some(digest) = &self.failed else {
            return message;
        };
        let step = self.names.get(digest).map(String::as_str).unwrap_or("?");
        let mut text = format!("{message}\n  in {step}");
        if let Some(tail) = self.tails.get(digest).filter(|t| !t.is_empty()) {
            text.push_str("\n  its last output:");
            for line in tail {
                text.push_str("\n    ");
                text.push_str(line);
            }
        }
        text
    }
}

/// BuildKit names a Dockerfile step `[2/3] RUN ...` (`[stage 2/3]` in a
/// multi-stage file); the classic builder `Step 2/3 : RUN ...`, which is
/// what kolla's progress and logs show. Other vertices keep their name.
fn step_line(name: &str) -> String {
    let Some((counter, instruction)) = name
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    else {
        return name.to_string();
    };
    let counter = counter.rsplit(' ').next().unwrap_or(counter);
    match counter.split_once('/') {
        Some((step, of)) if step.parse::<u32>().is_ok() && of.parse::<u32>().is_ok() => {
            format!("Step {step}/{of} : {instruction}")
        }
        _ => name.to_string(),
    }
}

pub use crate::container::split_tag;

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::moby::buildkit::v1::{Vertex, VertexLog};

    #[test]
    fn buildkit_steps_read_as_the_classic_builders() {
        assert_eq!(
            step_line("[2/3] RUN apt-get update"),
            "Step 2/3 : RUN apt-get update"
        );
        assert_eq!(step_line("[build 1/4] FROM base"), "Step 1/4 : FROM base");
        assert_eq!(
            step_line("[internal] load build definition from Dockerfile"),
            "[internal] load build definition from Dockerfile"
        );
        assert_eq!(step_line("[a/b] odd"), "[a/b] odd");
        assert_eq!(step_line("no brackets"), "no brackets");
    }

    fn vertex(digest: &str, name: &str, started: bool, error: &str) -> Vertex {
        Vertex {
            digest: digest.into(),
            name: name.into(),
            started: started.then(Default::default),
            error: error.into(),
            ..Default::default()
        }
    }

    fn log(digest: &str, msg: &str) -> VertexLog {
        VertexLog {
            vertex: digest.into(),
            msg: msg.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn each_step_is_announced_once_and_a_failure_carries_its_output() {
        let mut steps = BuildKitSteps::default();
        let queued = StatusResponse {
            vertexes: vec![vertex("d1", "[2/2] RUN make", false, "")],
            ..Default::default()
        };
        assert!(steps.lines(&queued).is_empty());
        let running = StatusResponse {
            vertexes: vec![vertex("d1", "[2/2] RUN make", true, "")],
            logs: (0..20)
                .map(|i| log("d1", &format!("line {i}\n\n")))
                .collect(),
            ..Default::default()
        };
        let lines = steps.lines(&running);
        assert_eq!(lines[0], "Step 2/2 : RUN make");
        assert_eq!(lines.len(), 21, "{lines:?}");
        let failed = StatusResponse {
            vertexes: vec![vertex("d1", "[2/2] RUN make", true, "exit code: 2")],
            ..Default::default()
        };
        assert!(steps.lines(&failed).is_empty(), "announced twice");
        let text = steps.explain("exit code: 2".into());
        assert!(
            text.starts_with("exit code: 2\n  in Step 2/2 : RUN make"),
            "{text}"
        );
        assert!(
            text.contains("line 19") && text.contains("line 5"),
            "{text}"
        );
        assert!(!text.contains("line 4\n"), "more than the tail: {text}");
        assert_eq!(BuildKitSteps::default().explain("plain".into()), "plain");
    }

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
