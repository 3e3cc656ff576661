//! Building the selected images on an engine: parents before children,
//! independent images in parallel, an up-to-date image skipped without
//! calling the builder, a failure marking exactly its descendants
//! `parent_failed`. The outcome of every image is data (`ImageResult`), never
//! a log line or an early exit, so the summary can always be printed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Serialize;
use tokio::task::JoinSet;

use super::ImagesError;
use super::render::{self, RenderedImage, Tree};
use crate::config::Globals;
use crate::engine::{BuildRequest, Engine};
use crate::progress::Progress;

/// Label holding the content hash an image was built from.
pub const LABEL_BUILD_HASH: &str = "kolla.build-hash";
/// Label holding the tree name of the image (`glance-api`).
pub const LABEL_IMAGE_NAME: &str = "kolla.image-name";
/// Label holding the kolla version that built the image.
pub const LABEL_VERSION: &str = "kolla.version";
/// The labels kolla build gives an image: the only `kolla.` labels a
/// deployed image may carry.
pub const IMAGE_LABELS: [&str; 3] = [LABEL_BUILD_HASH, LABEL_IMAGE_NAME, LABEL_VERSION];

/// Which images to build, chosen before anything runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Images to build, parents first.
    pub build: Vec<String>,
    /// Parents of selected images that are not selected themselves
    /// (`--skip-parents`): they must already be on the engine.
    pub prebuilt_parents: BTreeSet<String>,
}

/// Pick the images matching any of `patterns` (all images when there are
/// none) plus, unless `skip_parents`, every ancestor of those. A pattern
/// that matches nothing is an error: it is almost always a typo.
pub fn select(
    tree: &Tree,
    patterns: &[String],
    skip_parents: bool,
) -> Result<Selection, ImagesError> {
    let mut matched = BTreeSet::new();
    for pattern in patterns {
        let regex = Regex::new(pattern).map_err(|e| ImagesError::BadRegex {
            pattern: pattern.clone(),
            message: e.to_string(),
        })?;
        let hits: Vec<&String> = tree.order.iter().filter(|n| regex.is_match(n)).collect();
        if hits.is_empty() {
            let absent: Vec<String> = tree
                .not_in_release
                .iter()
                .filter(|n| regex.is_match(n))
                .cloned()
                .collect();
            return Err(match absent.is_empty() {
                true => ImagesError::NoMatch {
                    pattern: pattern.clone(),
                },
                false => ImagesError::NotInRelease {
                    pattern: pattern.clone(),
                    images: absent,
                },
            });
        }
        matched.extend(hits.into_iter().cloned());
    }
    if patterns.is_empty() {
        matched = tree.order.iter().cloned().collect();
    }
    let mut wanted = matched.clone();
    if !skip_parents {
        for name in &matched {
            wanted.extend(tree.ancestors(name));
        }
    }
    let build: Vec<String> = tree
        .order
        .iter()
        .filter(|n| wanted.contains(*n))
        .cloned()
        .collect();
    let prebuilt_parents = build
        .iter()
        .flat_map(|n| tree.images[n].parents.iter())
        .filter(|p| !wanted.contains(*p))
        .cloned()
        .collect();
    Ok(Selection {
        build,
        prebuilt_parents,
    })
}

/// The patterns of profile `name` from globals.yml.
pub fn profile_patterns(globals: &Globals, name: &str) -> Result<Vec<String>, ImagesError> {
    globals
        .profiles
        .get(name)
        .cloned()
        .ok_or_else(|| ImagesError::UnknownProfile {
            name: name.to_string(),
            known: globals.profiles.keys().cloned().collect(),
        })
}

/// The dependency tree as indented text, roots first.
pub fn dependency_tree_text(tree: &Tree, only: &[String]) -> String {
    fn walk(tree: &Tree, name: &str, depth: usize, only: &BTreeSet<&str>, out: &mut String) {
        out.push_str(&format!("{}{name}\n", "    ".repeat(depth)));
        // `tree.images` is a BTreeMap: children come out sorted by name.
        for (child, image) in &tree.images {
            if only.contains(child.as_str())
                && image.parents.first().map(String::as_str) == Some(name)
            {
                walk(tree, child, depth + 1, only, out);
            }
        }
    }
    let only: BTreeSet<&str> = only.iter().map(String::as_str).collect();
    let mut out = String::new();
    for (name, image) in &tree.images {
        let is_root = image
            .parents
            .first()
            .is_none_or(|p| !only.contains(p.as_str()));
        if only.contains(name.as_str()) && is_root {
            walk(tree, name, 0, &only, &mut out);
        }
    }
    out
}

/// How one image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Built,
    UpToDate,
    Failed,
    ParentFailed,
    /// Not built because the run was interrupted.
    Cancelled,
}

impl Status {
    pub fn is_success(self) -> bool {
        matches!(self, Status::Built | Status::UpToDate)
    }

    /// How the progress display shows it.
    pub fn finished(self) -> crate::progress::Finished {
        use crate::progress::{Finished, Tone};
        let tone = match self {
            Status::Built | Status::UpToDate => Tone::Good,
            Status::Failed | Status::ParentFailed => Tone::Bad,
            Status::Cancelled => Tone::Warning,
        };
        Finished {
            word: self.as_str(),
            tone,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Built => "built",
            Status::UpToDate => "up_to_date",
            Status::Failed => "failed",
            Status::ParentFailed => "parent_failed",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    pub name: String,
    pub reference: String,
    pub status: Status,
    pub image_id: Option<String>,
    pub build_hash: Option<String>,
    pub duration_secs: f64,
    /// When the image's job started and ended, in seconds from the start of
    /// the run (0 for images that never started).
    pub started_secs: f64,
    pub finished_secs: f64,
    pub attempts: u32,
    /// Manifest digest the registry reported, with `--push`.
    pub pushed_digest: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub images: Vec<ImageResult>,
    pub duration_secs: f64,
    pub cancelled: bool,
}

impl Summary {
    pub fn success(&self) -> bool {
        !self.cancelled && self.images.iter().all(|i| i.status.is_success())
    }

    pub fn with_status(&self, status: Status) -> Vec<&ImageResult> {
        self.images.iter().filter(|i| i.status == status).collect()
    }

    /// The summary an operator reads at the end of a run.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for status in [
            Status::Built,
            Status::UpToDate,
            Status::Failed,
            Status::ParentFailed,
            Status::Cancelled,
        ] {
            let images = self.with_status(status);
            if images.is_empty() {
                continue;
            }
            out.push_str(&format!("{} ({}):\n", status.as_str(), images.len()));
            for image in images {
                out.push_str(&format!(
                    "  {:<24} {:>7.1}s",
                    image.name, image.duration_secs
                ));
                if let Some(error) = &image.error {
                    out.push_str(&format!("  {}", first_line(error)));
                }
                out.push('\n');
            }
        }
        out.push_str(&format!(
            "{} images in {:.1}s: {} built, {} up to date, {} failed, {} parent_failed{}\n",
            self.images.len(),
            self.duration_secs,
            self.with_status(Status::Built).len(),
            self.with_status(Status::UpToDate).len(),
            self.with_status(Status::Failed).len(),
            self.with_status(Status::ParentFailed).len(),
            if self.cancelled { ", interrupted" } else { "" },
        ));
        out
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

/// How to build, beyond which images.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub threads: usize,
    /// Extra attempts for an image whose build fails.
    pub retries: u32,
    pub push: bool,
    /// What the registry is told with each push (the operator's Docker
    /// config), if anything.
    pub push_auth: Option<crate::engine::RegistryAuth>,
    /// Rebuild every selected image, bypassing the content hash and the
    /// builder's layer cache.
    pub no_cache: bool,
    /// How long one build attempt may take. The engine API has no timeout
    /// of its own for a build's output stream.
    pub timeout: Duration,
    pub logs_dir: Option<PathBuf>,
    /// The run's package cache (its proxy URL), when there is one.
    pub http_proxy: Option<String>,
}

/// Build `selection` on `engine`, stopping early (and reporting what ran)
/// when `interrupted` resolves.
pub async fn build_images(
    engine: &Engine,
    tree: &Tree,
    globals: &Globals,
    selection: &Selection,
    options: &BuildOptions,
    progress: Arc<Progress>,
    interrupted: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let ids = prebuilt_parent_ids(engine, tree, globals, selection).await?;
    if let Some(dir) = &options.logs_dir {
        std::fs::create_dir_all(dir).map_err(|source| ImagesError::Read {
            path: dir.clone(),
            source,
        })?;
    }
    progress.begin(selection.build.len());
    let mut run = Run {
        engine,
        tree,
        globals,
        options,
        progress: progress.clone(),
        started,
        ids,
        results: BTreeMap::new(),
        running: JoinSet::new(),
        running_names: BTreeMap::new(),
    };
    let queue = schedule_order(tree, selection);
    let mut cancelled = false;
    tokio::pin!(interrupted);
    loop {
        run.start_ready(&queue);
        if run.running.is_empty() {
            break;
        }
        tokio::select! {
            joined = run.running.join_next_with_id() => {
                if let Some(joined) = joined {
                    run.settle(joined);
                }
            }
            () = &mut interrupted => {
                cancelled = true;
                // Dropping the tasks drops their requests; the engine stops
                // a build whose client has gone away.
                run.running.abort_all();
                while run.running.join_next().await.is_some() {}
                break;
            }
        }
    }
    Ok(run.summary(selection, cancelled))
}

/// Ids of the images this run builds FROM without building them.
async fn prebuilt_parent_ids(
    engine: &Engine,
    tree: &Tree,
    globals: &Globals,
    selection: &Selection,
) -> anyhow::Result<HashMap<String, String>> {
    let mut ids = HashMap::new();
    for parent in &selection.prebuilt_parents {
        let reference = globals.image_ref(parent);
        // An engine that cannot answer is a failure, not a missing parent.
        let Some(image) = engine.image(&reference).await? else {
            let image = selection
                .build
                .iter()
                .find(|n| tree.images[*n].parents.contains(parent))
                .cloned()
                .unwrap_or_default();
            return Err(ImagesError::MissingParent {
                image,
                parent: parent.clone(),
                reference,
            }
            .into());
        };
        ids.insert(parent.clone(), image.id);
    }
    Ok(ids)
}

/// The state of one build run: what is done, what runs, and the ids that
/// children build FROM.
struct Run<'a> {
    engine: &'a Engine,
    tree: &'a Tree,
    globals: &'a Globals,
    options: &'a BuildOptions,
    progress: Arc<Progress>,
    started: Instant,
    ids: HashMap<String, String>,
    results: BTreeMap<String, ImageResult>,
    running: JoinSet<ImageResult>,
    running_names: BTreeMap<tokio::task::Id, String>,
}

impl Run<'_> {
    /// Settle every image whose parents have failed, then start what is
    /// ready, up to the thread limit.
    fn start_ready(&mut self, queue: &[String]) {
        for name in queue {
            if self.results.contains_key(name) || self.running_names.values().any(|n| n == name) {
                continue;
            }
            let image = &self.tree.images[name];
            let failed_parent = image
                .parents
                .iter()
                .find(|p| self.results.get(*p).is_some_and(|r| !r.status.is_success()));
            if let Some(parent) = failed_parent {
                let result = not_built(
                    self.globals,
                    name,
                    Status::ParentFailed,
                    Some(format!("parent {parent} did not build")),
                );
                self.record(result);
                continue;
            }
            if self.running.len() >= self.options.threads.max(1) {
                continue;
            }
            let parent_ids: Option<Vec<String>> = image
                .parents
                .iter()
                .map(|p| self.ids.get(p).cloned())
                .collect();
            let Some(parent_ids) = parent_ids else {
                continue;
            };
            let job = Job {
                engine: self.engine.clone(),
                image: image.clone(),
                reference: self.globals.image_ref(name),
                parent_ids,
                options: self.options.clone(),
                progress: self.progress.clone(),
                run_started: self.started,
            };
            let task = self.running.spawn(job.run());
            self.running_names.insert(task.id(), name.clone());
        }
    }

    /// A finished build task's result recorded.
    fn settle(&mut self, joined: Result<(tokio::task::Id, ImageResult), tokio::task::JoinError>) {
        let result = match joined {
            Ok((task, result)) => {
                self.running_names.remove(&task);
                result
            }
            // A panicking build task is a bug; the image still gets a
            // result so the summary stays whole.
            Err(e) => {
                let name = self.running_names.remove(&e.id()).unwrap_or_default();
                let error = format!("build task failed: {e}");
                not_built(self.globals, &name, Status::Failed, Some(error))
            }
        };
        if let Some(id) = &result.image_id
            && result.status.is_success()
        {
            self.ids.insert(result.name.clone(), id.clone());
        }
        self.record(result);
    }

    /// Every selected image's result, in build order; one that never ran
    /// (the run was interrupted) is cancelled.
    fn summary(mut self, selection: &Selection, cancelled: bool) -> Summary {
        for name in &selection.build {
            if !self.results.contains_key(name) {
                let result = not_built(
                    self.globals,
                    name,
                    Status::Cancelled,
                    Some("interrupted before it finished".into()),
                );
                self.record(result);
            }
        }
        self.progress.end();
        let images = selection
            .build
            .iter()
            .filter_map(|n| self.results.remove(n))
            .collect();
        Summary {
            images,
            duration_secs: self.started.elapsed().as_secs_f64(),
            cancelled,
        }
    }

    fn record(&mut self, result: ImageResult) {
        self.progress
            .finish(&result.name, result.status.finished(), &result.error);
        self.results.insert(result.name.clone(), result);
    }
}

/// The order ready images are started in: those that unblock the most
/// other selected images first, so a free thread never waits on a parent
/// that could have started earlier; then the tree's order.
pub fn schedule_order(tree: &Tree, selection: &Selection) -> Vec<String> {
    let selected: BTreeSet<&String> = selection.build.iter().collect();
    let mut order: Vec<(usize, usize, String)> = selection
        .build
        .iter()
        .enumerate()
        .map(|(position, name)| {
            let unblocks = tree
                .descendants(name)
                .iter()
                .filter(|d| selected.contains(d))
                .count();
            (usize::MAX - unblocks, position, name.clone())
        })
        .collect();
    order.sort();
    order.into_iter().map(|(_, _, name)| name).collect()
}

fn not_built(globals: &Globals, name: &str, status: Status, error: Option<String>) -> ImageResult {
    ImageResult {
        name: name.to_string(),
        reference: globals.image_ref(name),
        status,
        image_id: None,
        build_hash: None,
        duration_secs: 0.0,
        started_secs: 0.0,
        finished_secs: 0.0,
        attempts: 0,
        pushed_digest: None,
        error,
    }
}

/// One image's build, run as its own task.
struct Job {
    engine: Engine,
    image: RenderedImage,
    reference: String,
    parent_ids: Vec<String>,
    options: BuildOptions,
    progress: Arc<Progress>,
    run_started: Instant,
}

impl Job {
    async fn run(self) -> ImageResult {
        let started = Instant::now();
        let name = self.image.name.clone();
        self.progress.start(&name);
        let mut log = self.open_log();
        let hash = render::content_hash(&self.image, &self.parent_ids);
        let mut result = ImageResult {
            name: name.clone(),
            reference: self.reference.clone(),
            status: Status::Failed,
            image_id: None,
            build_hash: Some(hash.clone()),
            duration_secs: 0.0,
            started_secs: started.duration_since(self.run_started).as_secs_f64(),
            finished_secs: 0.0,
            attempts: 0,
            pushed_digest: None,
            error: None,
        };
        let outcome = self.build_or_skip(&hash, &mut log, &mut result).await;
        if let Err(error) = outcome {
            write_log(&mut log, &format!("ERROR: {error}"));
            result.status = Status::Failed;
            result.error = Some(error);
        }
        result.duration_secs = started.elapsed().as_secs_f64();
        result.finished_secs = self.run_started.elapsed().as_secs_f64();
        result
    }

    async fn build_or_skip(
        &self,
        hash: &str,
        log: &mut Option<std::fs::File>,
        result: &mut ImageResult,
    ) -> Result<(), String> {
        let existing = self
            .engine
            .image(&self.reference)
            .await
            .map_err(|e| e.to_string())?;
        let up_to_date = existing
            .as_ref()
            .filter(|_| !self.options.no_cache)
            .filter(|i| i.labels.get(LABEL_BUILD_HASH).map(String::as_str) == Some(hash));
        if let Some(image) = up_to_date {
            write_log(
                log,
                &format!("{}: up to date (build hash {hash})", self.reference),
            );
            result.status = Status::UpToDate;
            result.image_id = Some(image.id.clone());
        } else {
            let id = self.build_with_retries(hash, log, result).await?;
            result.status = Status::Built;
            result.image_id = Some(id);
        }
        if self.options.push {
            self.progress
                .line(&self.image.name, &format!("pushing {}", self.reference));
            let digest = self
                .engine
                .push(&self.reference, self.options.push_auth.as_ref(), |line| {
                    write_log(log, line)
                })
                .await
                .map_err(|e| format!("push failed: {e}"))?;
            result.pushed_digest = digest;
        }
        Ok(())
    }

    /// Build the image, trying again after a failure or a timeout (with a
    /// growing pause) up to the retries asked for; the new image's id.
    async fn build_with_retries(
        &self,
        hash: &str,
        log: &mut Option<std::fs::File>,
        result: &mut ImageResult,
    ) -> Result<String, String> {
        let labels = [
            (LABEL_BUILD_HASH, hash),
            (LABEL_IMAGE_NAME, self.image.name.as_str()),
            (LABEL_VERSION, env!("CARGO_PKG_VERSION")),
        ];
        let context = render::context_tar(&self.image, &labels)
            .map_err(|e| format!("cannot make the build context: {e}"))?;
        let context = bytes::Bytes::from(context);
        let mut last_error = String::new();
        let mut built = None;
        let mut allowed = self.options.retries + 1;
        let mut stream_broke = false;
        let mut attempt = 0;
        while attempt < allowed {
            attempt += 1;
            result.attempts = attempt;
            if attempt > 1 {
                self.progress.line(
                    &self.image.name,
                    &format!("retry {attempt}: {}", first_line(&last_error)),
                );
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt - 1))).await;
            }
            let request = BuildRequest {
                tag: self.reference.clone(),
                context_tar: context.clone(),
                no_cache: self.options.no_cache,
                http_proxy: self.options.http_proxy.clone(),
            };
            let build = self.engine.build(request, |line| {
                write_log(log, line);
                self.progress.line(&self.image.name, line);
            });
            match tokio::time::timeout(self.options.timeout, build).await {
                Ok(Ok(id)) => {
                    built = Some(id);
                    break;
                }
                Ok(Err(e)) => {
                    // A build stream the engine cut short (seen under
                    // load with BuildKit) says nothing about the build
                    // itself: it is built once more, whatever --retries
                    // says, from the engine's cache of what was done.
                    if e.is_lost() && !stream_broke {
                        stream_broke = true;
                        allowed += 1;
                    }
                    last_error = e.to_string();
                }
                Err(_) => {
                    last_error =
                        format!("build timed out after {}s", self.options.timeout.as_secs())
                }
            }
        }
        built.ok_or(last_error)
    }

    fn open_log(&self) -> Option<std::fs::File> {
        let dir = self.options.logs_dir.as_ref()?;
        std::fs::File::create(dir.join(format!("{}.log", self.image.name))).ok()
    }
}

fn write_log(log: &mut Option<std::fs::File>, line: &str) {
    if let Some(file) = log {
        let _ = writeln!(file, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::catalog::ImageSource;
    use crate::images::render::render_tree;

    fn tree() -> Tree {
        let source = |name: &str, from: &str| ImageSource {
            name: name.into(),
            template_path: PathBuf::from(format!("images/{name}/Dockerfile.tera")),
            template: format!("FROM {from}\n"),
            files: vec![],
        };
        let child = |parent: &str| format!("{{{{ image_prefix }}}}{parent}:{{{{ tag }}}}");
        render_tree(
            vec![
                source("base", "{{ base_image }}"),
                source("openstack-base", &child("base")),
                source("glance-base", &child("openstack-base")),
                source("glance-api", &child("glance-base")),
                source("nova-base", &child("openstack-base")),
                source("nova-api", &child("nova-base")),
                source("mariadb", &child("base")),
            ],
            &Globals::default(),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn select_adds_parents_unless_skipped() {
        let t = tree();
        let s = select(&t, &["^glance-api$".into()], false).unwrap();
        assert_eq!(
            s.build,
            vec!["base", "openstack-base", "glance-base", "glance-api"]
        );
        assert!(s.prebuilt_parents.is_empty());
        let s = select(&t, &["^glance-api$".into()], true).unwrap();
        assert_eq!(s.build, vec!["glance-api"]);
        assert_eq!(
            s.prebuilt_parents,
            BTreeSet::from(["glance-base".to_string()])
        );
        assert_eq!(select(&t, &[], false).unwrap().build.len(), 7);
    }

    /// Asking by name for an image the release does not build says so.
    #[test]
    fn an_image_not_in_the_release_is_named_when_asked_for() {
        let mut t = tree();
        t.not_in_release.insert("agent".into());
        let err = select(&t, &["^agent$".into()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not in this release (agent)"), "{err}");
        let err = select(&t, &["^nothing$".into()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("matches no image"), "{err}");
    }

    #[test]
    fn images_that_unblock_more_start_first() {
        let t = tree();
        let all = select(&t, &[], false).unwrap();
        assert_eq!(
            schedule_order(&t, &all),
            vec![
                "base",
                "openstack-base",
                "glance-base",
                "nova-base",
                "glance-api",
                "mariadb",
                "nova-api"
            ]
        );
    }

    #[test]
    fn pattern_matching_nothing_or_invalid_is_an_error() {
        let t = tree();
        let err = select(&t, &["nova".into(), "^swift".into()], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"^swift\" matches no image; `kolla build --list-images` lists them"
        );
        assert!(matches!(
            select(&t, &["(".into()], false),
            Err(ImagesError::BadRegex { .. })
        ));
    }

    #[test]
    fn unknown_profile_lists_known_ones() {
        let err = profile_patterns(&Globals::default(), "nope")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown profile \"nope\"; globals.yml defines: default, infra, main"
        );
    }

    #[test]
    fn dependency_tree_is_indented_by_parent() {
        let t = tree();
        let all = select(&t, &[], false).unwrap().build;
        assert_eq!(
            dependency_tree_text(&t, &all),
            "base\n    mariadb\n    openstack-base\n        glance-base\n            glance-api\n        nova-base\n            nova-api\n"
        );
        let some = select(&t, &["nova-api".into()], true).unwrap().build;
        assert_eq!(dependency_tree_text(&t, &some), "nova-api\n");
    }

    #[test]
    fn summary_fails_on_any_unsuccessful_image() {
        let g = Globals::default();
        let ok = ImageResult {
            status: Status::UpToDate,
            ..not_built(&g, "a", Status::Built, None)
        };
        let summary = Summary {
            images: vec![ok.clone()],
            duration_secs: 1.0,
            cancelled: false,
        };
        assert!(summary.success());
        let bad = not_built(
            &g,
            "b",
            Status::ParentFailed,
            Some("parent a did not build".into()),
        );
        let summary = Summary {
            images: vec![ok, bad],
            duration_secs: 1.0,
            cancelled: false,
        };
        assert!(!summary.success());
        assert!(
            summary.human().contains("parent_failed (1):\n  b"),
            "{}",
            summary.human()
        );
    }
}
