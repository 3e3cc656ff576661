//! A `Sandbox`: a private copy of the fixture image tree (with busybox in
//! `fx-base/`) and a namespace no other test uses. Dropping it removes
//! exactly the images under that namespace and those it built.
//!
//! The images most tests merely run (busybox, Debian with Python) are
//! shared instead: `shared_busybox` and `shared_python` build them once per
//! test process in a namespace of the run's own (`kolla-test-fixture-*`),
//! and no test removes them, so no test's cleanup pulls an image or a
//! cached layer from under another's build. The run removes them at its
//! end (tools/test, by the run's id in KOLLA_TEST_RUN).

use super::Bounded;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use kolla::config::release::Release;
use kolla::engine::Engine;

use super::{COUNTER, REGISTRY, copy_tree, describe, engine, fixtures, kolla_command, runtime};

pub struct Sandbox {
    pub namespace: String,
    pub dir: tempfile::TempDir,
    pub images_dir: PathBuf,
    pub config_dir: PathBuf,
    /// What the tree's root builds FROM.
    pub base_image: String,
    /// The OpenStack release the tree is built for; its images are tagged
    /// with the release's name.
    pub release: Release,
    pub engine: Engine,
    /// Ids of images this sandbox built, so that images a rebuild left
    /// untagged are removed too.
    built_ids: RefCell<Vec<String>>,
    /// The images tagged with the release in the namespace are shared (by
    /// the heavy tests, or by every test of a run; the namespace is named by
    /// the tree's content hash): kept when the sandbox goes, so the next
    /// test, or the next run on this machine, finds them up to date.
    keeps_tree: bool,
    /// Tags this sandbox added to a kept tree (`changed_image`): its own,
    /// removed with it. Another test sharing the tree adds its own; a tag
    /// of the namespace is never removed for being in it.
    changed: RefCell<Vec<String>>,
}

impl Sandbox {
    /// A copy of `tests/fixtures/images` with busybox in `fx-base/`, and a
    /// unique namespace derived from `name`.
    pub fn new(name: &str) -> Sandbox {
        let sandbox = Sandbox::empty(name, "scratch");
        copy_tree(&fixtures().join("images"), &sandbox.images_dir);
        let busybox = busybox_path();
        std::fs::copy(&busybox, sandbox.images_dir.join("fx-base/busybox")).expect("copy busybox");
        std::fs::write(
            sandbox.images_dir.join("fx-base/sandbox.id"),
            &sandbox.namespace,
        )
        .expect("sandbox.id");
        sandbox
    }

    /// The project's own image tree (read in place) for `release`, on the
    /// release's base image, in the namespace `kolla-test-tree-<hash>`,
    /// named by the tree's files and the base image's id: the heavy tests
    /// build the real images once per content on a machine and share them
    /// (`kolla build` finds them up to date). Tags a test adds there
    /// (changed images) are its own and go with the sandbox; the tree's
    /// images stay. Caches of other trees of the same release that no
    /// container uses are removed (the other release's tree is another
    /// test's).
    pub fn for_project_images(name: &str, release: Release) -> Sandbox {
        let mut sandbox = Sandbox::empty(name, &release.base_image());
        sandbox.release = release;
        sandbox.images_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("images");
        let base_id = match sandbox.image(&sandbox.base_image) {
            Some(info) => info.id,
            None => panic!(
                "the base image {} of {release} is missing: run tools/make-base-image {} (tools/test does)",
                sandbox.base_image, sandbox.base_image,
            ),
        };
        sandbox.namespace = format!(
            "kolla-test-tree-{}",
            tree_hash(&sandbox.images_dir, &base_id)
        );
        sandbox.keeps_tree = true;
        let rt = runtime();
        let cached = rt
            .block_on(sandbox.engine.image_tags_matching("kolla-test-tree-*/*"))
            .expect("list images");
        let this_release = format!(":{}", release.default_tag());
        for tag in cached {
            if tag.ends_with(&this_release) && !tag.starts_with(&format!("{}/", sandbox.namespace))
            {
                let _ = rt.block_on(sandbox.engine.remove_image(&tag, false));
            }
        }
        sandbox
    }

    /// The globals.yml lines a deployment of this sandbox's images needs.
    pub fn globals(&self) -> String {
        format!(
            "namespace: {}\nopenstack_release: {}\n",
            self.namespace, self.release
        )
    }

    /// A tree of one image, `folder` (under tests/fixtures), on
    /// `base_image`, its id file copied first by its template: the test's
    /// own layers start there, on top of the shared `base_image`. So no
    /// two tests share a layer a cleanup could remove, and the shared one
    /// below is tagged (a removal never prunes a tagged parent).
    pub fn with_image(name: &str, folder: &str, base_image: &str) -> Sandbox {
        let sandbox = Sandbox::empty(name, base_image);
        let source = fixtures().join(folder);
        let image = source.file_name().expect("an image folder");
        let dir = sandbox.images_dir.join(image);
        copy_tree(&source, &dir);
        std::fs::write(dir.join("sandbox.id"), &sandbox.namespace).expect("sandbox.id");
        sandbox
    }

    fn empty(name: &str, base_image: &str) -> Sandbox {
        let engine = engine();
        let namespace = super::unique_name("kolla-test", name);
        let dir = tempfile::Builder::new()
            .prefix("kolla-test-")
            .tempdir()
            .expect("temporary directory");
        let images_dir = dir.path().join("images");
        let config_dir = dir.path().join("config");
        std::fs::create_dir_all(&config_dir).expect("config dir");
        Sandbox {
            namespace,
            dir,
            images_dir,
            config_dir,
            base_image: base_image.to_string(),
            release: Release::DEFAULT,
            engine,
            built_ids: RefCell::new(Vec::new()),
            keeps_tree: false,
            changed: RefCell::new(Vec::new()),
        }
    }

    /// `kolla build` on this sandbox's tree and namespace, with `args` after.
    pub fn build(&self, args: &[&str]) -> Output {
        self.build_command(args)
            .bounded_output()
            .expect("run the kolla binary")
    }

    /// The `kolla build` command `build` runs, for tests that need to set
    /// its environment or spawn it.
    pub fn build_command(&self, args: &[&str]) -> Command {
        let mut command = kolla_command();
        command
            .arg("--config-dir")
            .arg(&self.config_dir)
            .arg("build")
            .arg("--images-dir")
            .arg(&self.images_dir)
            .args([
                "--namespace",
                &self.namespace,
                "--base-image",
                &self.base_image,
                "--release",
                self.release.name(),
            ])
            .args(args);
        command
    }

    /// `kolla build ... --summary-json`, returning the output and the summary.
    pub fn build_with_summary(&self, args: &[&str]) -> (Output, serde_json::Value) {
        let path = self.dir.path().join(format!(
            "summary-{}.json",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let mut full = args.to_vec();
        full.extend_from_slice(&["--summary-json", path.to_str().expect("utf-8 path")]);
        let output = self.build(&full);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no summary at {}: {e}\n{}",
                path.display(),
                describe(&output)
            )
        });
        let summary: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
        for image in summary["images"].as_array().into_iter().flatten() {
            if let (Some(id), Some("built")) =
                (image["image_id"].as_str(), image["status"].as_str())
            {
                self.built_ids.borrow_mut().push(id.to_string());
            }
        }
        (output, summary)
    }

    pub fn image_ref(&self, name: &str) -> String {
        format!("{}/{name}:{}", self.namespace, self.release.default_tag())
    }

    /// The image on the engine, if present.
    pub fn image(&self, reference: &str) -> Option<kolla::engine::ImageInfo> {
        runtime()
            .block_on(self.engine.image(reference))
            .expect("inspect image")
    }

    /// Image tags under this sandbox's namespace (local and registry).
    pub fn own_tags(&self) -> Vec<String> {
        let rt = runtime();
        let mut tags = Vec::new();
        for pattern in [
            format!("{}/*", self.namespace),
            format!("{REGISTRY}/{}/*", self.namespace),
        ] {
            tags.extend(
                rt.block_on(self.engine.image_tags_matching(&pattern))
                    .expect("list images"),
            );
        }
        tags
    }
}

impl Sandbox {
    /// Build `changed` on this engine: `image` with one label more, so an
    /// upgrade to it swaps the container and nothing else differs. The tag
    /// goes with this sandbox.
    pub fn changed_image(&self, image: &str, changed: &str) {
        // Through kolla's engine (BuildKit), as `kolla build` builds: the
        // CLI's classic builder takes seconds to commit a label onto an
        // OpenStack image, on a machine where start-first swaps run beside.
        let dockerfile = format!("FROM {image}\nLABEL kolla-test.changed={changed}\n");
        let mut context = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        context
            .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
            .expect("the Dockerfile into the context");
        let request = kolla::engine::BuildRequest {
            tag: changed.to_string(),
            context_tar: context.into_inner().expect("the context").into(),
            no_cache: false,
            http_proxy: None,
        };
        runtime()
            .block_on(self.engine.build(request, |_| {}))
            .unwrap_or_else(|e| panic!("building {changed}: {e}"));
        self.changed.borrow_mut().push(changed.to_string());
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let rt = runtime();
        if self.keeps_tree {
            for tag in self.changed.borrow().iter() {
                let _ = rt.block_on(self.engine.remove_image(tag, true));
            }
            return;
        }
        for tag in self.own_tags() {
            let _ = rt.block_on(self.engine.remove_image(&tag, true));
        }
        // Without force: an id another sandbox's tag shares (the builder's
        // cache can give two sandboxes one image) stays. Children first.
        for id in self.built_ids.borrow().iter().rev() {
            let _ = rt.block_on(self.engine.remove_image(id, false));
        }
    }
}

/// The busybox image (`tests/fixtures/images/fx-base`) shared by the
/// tests of this run that only run it; built once per test process.
pub fn shared_busybox() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tree = tempfile::tempdir().expect("temporary directory");
        copy_tree(
            &fixtures().join("images/fx-base"),
            &tree.path().join("fx-base"),
        );
        std::fs::copy(busybox_path(), tree.path().join("fx-base/busybox")).expect("copy busybox");
        shared_image(tree.path(), "fx-base", "scratch")
    })
}

/// Debian with Python (`tests/fixtures/shared/fx-python`), shared by the
/// start-first tests of this run; built once per test process.
pub fn shared_python() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tree = tempfile::tempdir().expect("temporary directory");
        copy_tree(&fixtures().join("shared"), tree.path());
        shared_image(tree.path(), "fx-python", "debian:bookworm")
    })
}

/// Build `image` of the image tree `tree` on `base_image` in the run's
/// namespace for that content, `kolla-test-fixture-[<run>-]<hash>`, unless
/// another process of the run did; its reference. The namespace's id file
/// comes first in each template, so the image shares no layer with any
/// image outside the namespace: removing it at the run's end touches no
/// other run's images. Without KOLLA_TEST_RUN (a hand-run `cargo test`)
/// the image is kept by content hash, as the node image is.
fn shared_image(tree: &Path, image: &str, base_image: &str) -> String {
    let mut sandbox = Sandbox::empty(image, base_image);
    sandbox.images_dir = tree.to_path_buf();
    sandbox.keeps_tree = true;
    let base_id = sandbox
        .image(base_image)
        .map(|info| info.id)
        .unwrap_or_default();
    let hash = tree_hash(tree, &base_id);
    sandbox.namespace = match std::env::var("KOLLA_TEST_RUN") {
        Ok(run) if !run.is_empty() => format!("kolla-test-fixture-{run}-{hash}"),
        _ => format!("kolla-test-fixture-{hash}"),
    };
    for entry in std::fs::read_dir(tree).expect("image folders") {
        let folder = entry.expect("image folder").path();
        std::fs::write(folder.join("sandbox.id"), &sandbox.namespace).expect("sandbox.id");
    }
    // Test binaries of one run may build it at once: one builds, the
    // others then find it up to date.
    let lock = std::env::temp_dir().join(format!("{}.lock", sandbox.namespace));
    let lock = std::fs::File::create(&lock).expect("the shared image's lock file");
    lock.lock().expect("lock the shared image");
    let output = sandbox.build(&[&format!("^{image}$")]);
    assert!(
        output.status.success(),
        "building the shared fixture image {image} failed:\n{}",
        describe(&output)
    );
    sandbox.image_ref(image)
}

/// Sixteen hex digits of a SHA-256 over every file under `dir` (relative
/// path, mode and bytes, in path order) and `base_id`.
fn tree_hash(dir: &Path, base_id: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read the image tree") {
            let path = entry.expect("a tree entry").path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    files(dir, &mut all);
    all.sort();
    let mut hash = Sha256::new();
    hash.update(base_id.as_bytes());
    for path in all {
        let relative = path.strip_prefix(dir).expect("under the tree");
        hash.update(relative.to_string_lossy().as_bytes());
        let mode = std::fs::metadata(&path)
            .expect("a tree file")
            .permissions()
            .mode();
        hash.update(mode.to_le_bytes());
        hash.update(std::fs::read(&path).expect("a tree file"));
    }
    hex::encode(hash.finalize())[..16].to_string()
}

fn busybox_path() -> PathBuf {
    for candidate in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!("busybox-static is not installed (apt-get install busybox-static; tools/test does)");
}

/// The image folders of the project's tree that `release` builds: every
/// one but the images of services the release does not have, whose
/// templates render nothing for it (said here, as the spec the tree is
/// held to, not read from kolla). Both releases have every service today.
pub fn release_images(release: Release) -> Vec<String> {
    let not_in_release: &[&str] = match release {
        Release::Zed | Release::Epoxy => &[],
    };
    let mut names: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/images"))
        .expect("the image tree")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !not_in_release.contains(&name.as_str()))
        .collect();
    names.sort();
    names
}
