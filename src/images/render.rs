//! Rendering: `Dockerfile.tera` + globals (+ an operator's override) -> the
//! Dockerfile that is built, and the tar that carries it to the engine.
//! Pure: text and bytes in, text and bytes out; no engine, no environment,
//! no clock (a template sees only what `templates::globals_context` puts in).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use super::ImagesError;
use super::catalog::{self, ContextFile, ImageSource, TEMPLATE_FILE};
use crate::config::Globals;

/// An operator's `--template-override` file: a Tera template that
/// `{% extends "<image>/Dockerfile.tera" %}` and replaces some of its blocks
/// (or extends another override, to layer them).
#[derive(Debug, Clone)]
pub struct Override {
    pub path: PathBuf,
    pub text: String,
}

impl Override {
    pub fn read(path: &Path) -> Result<Override, ImagesError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImagesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Override {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The name this override is registered under, so others can extend it.
    fn template_name(&self) -> String {
        self.path.display().to_string()
    }
}

/// One image, rendered and with its parents known.
#[derive(Debug, Clone)]
pub struct RenderedImage {
    pub name: String,
    pub template_path: PathBuf,
    pub dockerfile: String,
    pub files: Vec<ContextFile>,
    /// Images of the tree this one is built FROM.
    pub parents: Vec<String>,
}

/// The whole rendered tree and a parents-first order of its images.
#[derive(Debug, Clone)]
pub struct Tree {
    pub images: BTreeMap<String, RenderedImage>,
    pub order: Vec<String>,
    /// Images whose template renders no instruction for this build's
    /// settings: not part of this release (Epoxy's Neutron has no Linux
    /// bridge agent; Zed's cloud runs no Open vSwitch).
    pub not_in_release: BTreeSet<String>,
}

impl Tree {
    /// Every image that (transitively) builds FROM `name`.
    pub fn descendants(&self, name: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for candidate in &self.order {
            let image = &self.images[candidate];
            if image.parents.iter().any(|p| p == name || found.contains(p)) {
                found.insert(candidate.clone());
            }
        }
        found
    }

    /// Every image `name` (transitively) builds FROM.
    pub fn ancestors(&self, name: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(next) = todo.pop() {
            for parent in self
                .images
                .get(&next)
                .map(|i| &i.parents)
                .into_iter()
                .flatten()
            {
                if found.insert(parent.clone()) {
                    todo.push(parent.clone());
                }
            }
        }
        found
    }
}

/// The name an image's template is registered under in Tera, and what an
/// override `extends`.
pub fn template_name(image: &str) -> String {
    format!("{image}/{TEMPLATE_FILE}")
}

static EXTENDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\{%-?\s*extends\s+"([^"]+)"\s*-?%\}"#).expect("static regex"));

/// Render every image of the tree, resolve parents from the FROM lines and
/// order the tree parents first. Any bad template, unknown parent or cycle
/// fails the whole call, before anything is built.
pub fn render_tree(
    sources: Vec<ImageSource>,
    globals: &Globals,
    overrides: &[Override],
) -> Result<Tree, ImagesError> {
    let mut tera = crate::templates::tera();
    for source in &sources {
        tera.add_raw_template(&template_name(&source.name), &source.template)
            .map_err(|e| ImagesError::Template {
                path: source.template_path.clone(),
                message: e.to_string(),
            })?;
    }
    let leaf_overrides = register_overrides(&mut tera, &sources, overrides)?;

    let base_context = crate::templates::globals_context(globals);
    let mut rendered = Vec::new();
    let mut not_in_release = BTreeSet::new();
    for source in sources {
        let mut context = base_context.clone();
        context.insert("image_name", &source.name);
        let (entry, entry_path) = match leaf_overrides.get(&source.name) {
            Some(o) => (o.template_name(), o.path.clone()),
            None => (template_name(&source.name), source.template_path.clone()),
        };
        let dockerfile = tera
            .render(&entry, &context)
            .map_err(|e| ImagesError::Template {
                path: entry_path,
                message: e.to_string(),
            })?;
        if has_no_instruction(&dockerfile) {
            not_in_release.insert(source.name);
        } else {
            rendered.push((source, dockerfile));
        }
    }
    let names: BTreeSet<String> = rendered.iter().map(|(s, _)| s.name.clone()).collect();
    let mut images = BTreeMap::new();
    for (source, dockerfile) in rendered {
        catalog::refuse_absent_parents(
            &dockerfile,
            &source.template_path,
            &not_in_release,
            globals,
        )?;
        let parents = catalog::parents_of(&dockerfile, &source.template_path, &names, globals)?;
        images.insert(
            source.name.clone(),
            RenderedImage {
                name: source.name,
                template_path: source.template_path,
                dockerfile,
                files: source.files,
                parents,
            },
        );
    }
    let parents = images
        .iter()
        .map(|(name, image)| (name.clone(), image.parents.clone()))
        .collect();
    let order = catalog::topological_order(&parents)?;
    Ok(Tree {
        images,
        order,
        not_in_release,
    })
}

/// A rendered Dockerfile of blank and comment lines only: the template
/// says the image has no build for these settings.
fn has_no_instruction(dockerfile: &str) -> bool {
    dockerfile
        .lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'))
}

/// Register the overrides in Tera and return, per image, the override to
/// render instead of the image's own template: the last of its chain.
fn register_overrides<'a>(
    tera: &mut tera::Tera,
    sources: &[ImageSource],
    overrides: &'a [Override],
) -> Result<BTreeMap<String, &'a Override>, ImagesError> {
    let extends = override_targets(sources, overrides)?;
    // Parents before children, so Tera can check each override's blocks
    // against the template it extends.
    let mut pending: Vec<&Override> = overrides.iter().collect();
    let mut registered = BTreeSet::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for o in pending {
            let target = &extends[&o.template_name()];
            if tera.contains_template(target) && !registered.contains(&o.template_name()) {
                tera.add_raw_template(&o.template_name(), &o.text)
                    .map_err(|e| override_error(o, e.to_string()))?;
                registered.insert(o.template_name());
            } else {
                rest.push(o);
            }
        }
        if rest.len() == before {
            return Err(override_error(
                rest[0],
                "overrides extend each other in a cycle".into(),
            ));
        }
        pending = rest;
    }
    chain_leaves(overrides, &extends)
}

fn override_error(o: &Override, message: String) -> ImagesError {
    ImagesError::Override {
        path: o.path.clone(),
        message,
    }
}

/// What each override extends (template name -> template name), checked
/// before Tera sees it so that the error can say which images exist.
fn override_targets(
    sources: &[ImageSource],
    overrides: &[Override],
) -> Result<BTreeMap<String, String>, ImagesError> {
    let mut extends = BTreeMap::new();
    for o in overrides {
        let Some(target) = EXTENDS.captures(&o.text).map(|c| c[1].to_string()) else {
            return Err(override_error(
                o,
                "an override must start with {% extends \"<image>/Dockerfile.tera\" %}".into(),
            ));
        };
        let known_image = sources.iter().any(|s| template_name(&s.name) == target);
        let known_override = overrides.iter().any(|x| x.template_name() == target);
        if !known_image && !known_override {
            return Err(override_error(
                o,
                format!(
                    "extends {target:?}, which is neither an image template (<image>/{TEMPLATE_FILE}) nor another override"
                ),
            ));
        }
        extends.insert(o.template_name(), target);
    }
    Ok(extends)
}

/// The image at the root of each chain, and the chain's last override;
/// two chains for one image are an error.
fn chain_leaves<'a>(
    overrides: &'a [Override],
    extends: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, &'a Override>, ImagesError> {
    let mut leaves: BTreeMap<String, &Override> = BTreeMap::new();
    for o in overrides {
        if extends.values().any(|t| *t == o.template_name()) {
            continue;
        }
        let mut root = extends[&o.template_name()].clone();
        while let Some(next) = extends.get(&root) {
            root = next.clone();
        }
        let image = root
            .trim_end_matches(&format!("/{TEMPLATE_FILE}"))
            .to_string();
        if let Some(other) = leaves.insert(image.clone(), o) {
            return Err(override_error(
                o,
                format!(
                    "{} also overrides {image}; layer them (one extends the other) instead",
                    other.path.display()
                ),
            ));
        }
    }
    Ok(leaves)
}

/// The content hash of one image: its rendered Dockerfile, every context
/// file (path, mode, bytes) and the ids of the images it builds FROM. Equal
/// hashes mean the builder would produce the same image, so it is skipped.
pub fn content_hash(image: &RenderedImage, parent_ids: &[String]) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"kolla-build-hash-v1");
    field(image.dockerfile.as_bytes());
    for file in &image.files {
        field(file.path.as_bytes());
        field(&file.mode.to_le_bytes());
        field(&file.data);
    }
    for id in parent_ids {
        field(id.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// `dockerfile` with `labels` set on its final stage. When the last
/// instruction already is a LABEL, the labels join it: every instruction
/// costs the engine's builder a commit, and on slow storage a commit is the
/// bulk of a small image's build.
pub fn stamp_labels(dockerfile: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return dockerfile.to_string();
    }
    // serde_json's string escaping is the Dockerfile's double-quoted form.
    let pairs: String = labels
        .iter()
        .map(|(key, value)| format!(" {key}={}", serde_json::Value::String(value.to_string())))
        .collect();
    let mut lines: Vec<&str> = dockerfile.lines().collect();
    let is_instruction = |l: &&str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    if let Some(last) = lines.iter().rposition(is_instruction) {
        let mut start = last;
        while start > 0 && lines[start - 1].trim_end().ends_with('\\') {
            start -= 1;
        }
        let keyword = lines[start].split_whitespace().next().unwrap_or("");
        if keyword.eq_ignore_ascii_case("LABEL") {
            let joined = format!("{}{pairs}", lines[last].trim_end());
            lines[last] = &joined;
            return lines.join("\n") + "\n";
        }
    }
    let mut out = dockerfile.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("LABEL{pairs}\n"));
    out
}

/// The build context as a tar: `Dockerfile` plus the context files, owned by
/// root with mtime 0 so the same inputs give the same bytes. `labels` are
/// stamped on the final stage in one LABEL instruction (one layer commit,
/// where the engine's `labels` build option costs one per label).
pub fn context_tar(
    image: &RenderedImage,
    labels: &[(&str, &str)],
) -> Result<Vec<u8>, std::io::Error> {
    let dockerfile = stamp_labels(&image.dockerfile, labels);
    crate::files::tar(
        std::iter::once(("Dockerfile", 0o644, dockerfile.as_bytes())).chain(
            image
                .files
                .iter()
                .map(|file| (file.path.as_str(), file.mode, file.data.as_slice())),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, template: &str) -> ImageSource {
        ImageSource {
            name: name.into(),
            template_path: PathBuf::from(format!("images/{name}/Dockerfile.tera")),
            template: template.into(),
            files: vec![],
        }
    }

    fn tree() -> Vec<ImageSource> {
        vec![
            source(
                "base",
                "FROM {{ base_image }}\n{% block base_footer %}{% endblock %}\n",
            ),
            source(
                "app",
                "FROM {{ image_prefix }}base:{{ tag }}\nLABEL name={{ image_name }}\n{% block app_footer %}{% endblock %}\n",
            ),
        ]
    }

    #[test]
    fn renders_with_globals_and_finds_parents() {
        let g = Globals::default();
        let t = render_tree(tree(), &g, &[]).unwrap();
        assert_eq!(t.order, vec!["base", "app"]);
        assert_eq!(
            t.images["app"].dockerfile,
            "FROM kolla/base:epoxy\nLABEL name=app\n\n"
        );
        assert_eq!(t.images["app"].parents, vec!["base"]);
        assert_eq!(t.images["base"].dockerfile, "FROM debian:trixie\n\n");
        assert_eq!(t.descendants("base"), BTreeSet::from(["app".to_string()]));
        assert_eq!(t.ancestors("app"), BTreeSet::from(["base".to_string()]));
    }

    #[test]
    fn override_replaces_a_block_of_one_image() {
        let o = Override {
            path: PathBuf::from("my-override.tera"),
            text: "{% extends \"app/Dockerfile.tera\" %}{% block app_footer %}RUN echo {{ tag }}{% endblock %}".into(),
        };
        let t = render_tree(tree(), &Globals::default(), &[o]).unwrap();
        assert_eq!(
            t.images["app"].dockerfile,
            "FROM kolla/base:epoxy\nLABEL name=app\nRUN echo epoxy\n"
        );
        assert_eq!(t.images["base"].dockerfile, "FROM debian:trixie\n\n");
    }

    #[test]
    fn layered_overrides_apply_in_order() {
        let first = Override {
            path: PathBuf::from("one.tera"),
            text:
                "{% extends \"app/Dockerfile.tera\" %}{% block app_footer %}RUN one{% endblock %}"
                    .into(),
        };
        let second = Override {
            path: PathBuf::from("two.tera"),
            text: "{% extends \"one.tera\" %}{% block app_footer %}{{ super() }} two{% endblock %}"
                .into(),
        };
        let t = render_tree(tree(), &Globals::default(), &[second, first]).unwrap();
        assert!(
            t.images["app"].dockerfile.ends_with("RUN one two\n"),
            "{}",
            t.images["app"].dockerfile
        );
    }

    #[test]
    fn override_errors_name_the_file() {
        let bad_target = Override {
            path: PathBuf::from("o.tera"),
            text: "{% extends \"nope/Dockerfile.tera\" %}".into(),
        };
        let err = render_tree(tree(), &Globals::default(), &[bad_target])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("o.tera: extends \"nope/Dockerfile.tera\""),
            "{err}"
        );
        let bad_block = Override {
            path: PathBuf::from("o.tera"),
            text: "{% extends \"app/Dockerfile.tera\" %}{% block typo %}x{% endblock %}".into(),
        };
        let err = render_tree(tree(), &Globals::default(), &[bad_block])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("o.tera:") && err.contains("typo"), "{err}");
    }

    #[test]
    fn syntax_error_and_undefined_variable_name_file_and_line() {
        let mut t = tree();
        t[1].template = "FROM {{ image_prefix }}base:{{ tag }}\nRUN {% if %}\n".into();
        let err = render_tree(t, &Globals::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("images/app/Dockerfile.tera:"), "{err}");
        assert!(err.contains(":2:"), "line missing: {err}");

        let mut t = tree();
        t[1].template = "FROM {{ image_prefix }}base:{{ tag }}\nRUN {{ no_such_var }}\n".into();
        let err = render_tree(t, &Globals::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("images/app/Dockerfile.tera:"), "{err}");
        assert!(err.contains("no_such_var") && err.contains(":2:"), "{err}");
    }

    /// A template that renders only comments for a release leaves its
    /// image out of that release's tree; building FROM it says so.
    #[test]
    fn an_image_whose_template_renders_nothing_is_not_in_the_release() {
        let only_zed = "{% if openstack_release == \"zed\" %}FROM {{ image_prefix }}base:{{ tag }}\n\
                        {% else %}# no agent in {{ openstack_release }}\n{% endif %}";
        let mut sources = tree();
        sources.push(source("agent", only_zed));
        let epoxy = render_tree(sources.clone(), &Globals::default(), &[]).unwrap();
        assert_eq!(epoxy.order, ["base", "app"]);
        assert_eq!(epoxy.not_in_release, BTreeSet::from(["agent".to_string()]));

        let mut zed = Globals::default();
        zed.set_release(crate::config::release::Release::Zed);
        let tree_zed = render_tree(sources.clone(), &zed, &[]).unwrap();
        assert_eq!(tree_zed.order, ["base", "agent", "app"]);
        assert!(tree_zed.not_in_release.is_empty());

        sources.push(source("child", "FROM {{ image_prefix }}agent:{{ tag }}\n"));
        let err = render_tree(sources, &Globals::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("images/child/Dockerfile.tera:1: builds FROM agent")
                && err.contains("release epoxy"),
            "{err}"
        );
    }

    #[test]
    fn unknown_parent_and_cycle_are_errors() {
        let mut t = tree();
        t[1].template = "FROM {{ image_prefix }}nothere:{{ tag }}\n".into();
        let err = render_tree(t, &Globals::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("images/app/Dockerfile.tera:1: FROM kolla/nothere:epoxy"),
            "{err}"
        );

        let mut t = tree();
        t[0].template = "FROM {{ image_prefix }}app:{{ tag }}\n".into();
        let err = render_tree(t, &Globals::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn hash_changes_with_each_input() {
        let g = Globals::default();
        let t = render_tree(tree(), &g, &[]).unwrap();
        let app = &t.images["app"];
        let h = content_hash(app, &["sha256:1".into()]);
        assert_eq!(h, content_hash(app, &["sha256:1".into()]));
        assert_ne!(h, content_hash(app, &["sha256:2".into()]));
        let mut with_file = app.clone();
        with_file.files.push(ContextFile {
            path: "a".into(),
            mode: 0o644,
            data: b"x".to_vec(),
        });
        let h2 = content_hash(&with_file, &["sha256:1".into()]);
        assert_ne!(h, h2);
        with_file.files[0].mode = 0o755;
        assert_ne!(h2, content_hash(&with_file, &["sha256:1".into()]));
    }

    #[test]
    fn labels_join_a_trailing_label_instruction() {
        let labels = [("kolla.build-hash", "abc"), ("kolla.image-name", "x")];
        assert_eq!(
            stamp_labels("FROM a\nRUN b\n", &labels),
            "FROM a\nRUN b\nLABEL kolla.build-hash=\"abc\" kolla.image-name=\"x\"\n"
        );
        assert_eq!(
            stamp_labels("FROM a\nLABEL t=1 \\\n      u=2\n\n# end\n", &labels),
            "FROM a\nLABEL t=1 \\\n      u=2 kolla.build-hash=\"abc\" kolla.image-name=\"x\"\n\n# end\n"
        );
        // A LABEL that is not the last instruction is left alone.
        assert_eq!(
            stamp_labels("FROM a\nLABEL t=1\nUSER x", &labels[..1]),
            "FROM a\nLABEL t=1\nUSER x\nLABEL kolla.build-hash=\"abc\"\n"
        );
        assert_eq!(stamp_labels("FROM a\n", &[]), "FROM a\n");
    }

    #[test]
    fn context_tar_is_reproducible_and_holds_the_dockerfile() {
        let t = render_tree(tree(), &Globals::default(), &[]).unwrap();
        let mut app = t.images["app"].clone();
        app.files.push(ContextFile {
            path: "bin/start".into(),
            mode: 0o755,
            data: b"#!/bin/sh\n".to_vec(),
        });
        let a = context_tar(&app, &[("kolla.build-hash", "h\"1")]).unwrap();
        assert_eq!(
            a,
            context_tar(&app, &[("kolla.build-hash", "h\"1")]).unwrap()
        );
        let mut archive = tar::Archive::new(a.as_slice());
        let entries: Vec<(String, u32, String)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    text,
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (
                    "Dockerfile".into(),
                    0o644,
                    "FROM kolla/base:epoxy\nLABEL name=app kolla.build-hash=\"h\\\"1\"\n\n".into()
                ),
                ("bin/start".into(), 0o755, "#!/bin/sh\n".into())
            ]
        );
    }
}
