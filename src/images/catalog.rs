//! The image tree on disk: `images/<name>/Dockerfile.tera` plus every other
//! file in that folder (the build context). Parents are not declared; they
//! are read from the rendered `FROM` lines (`resolve_parents`), so the tree
//! can never disagree with what is actually built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::ImagesError;
use crate::config::globals::{Globals, is_valid_path_component};

/// The template each image folder must hold.
pub const TEMPLATE_FILE: &str = "Dockerfile.tera";

/// One file of an image's build context, as it goes into the tar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContextFile {
    /// Path inside the context, `/`-separated, relative to the image folder.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// One image folder, as read from disk.
#[derive(Debug, Clone)]
pub struct ImageSource {
    pub name: String,
    /// Path of `Dockerfile.tera`, for error messages.
    pub template_path: PathBuf,
    pub template: String,
    /// Context files, sorted by path.
    pub files: Vec<ContextFile>,
}

/// Read every image folder under `dir`, sorted by name.
pub fn load_tree(dir: &Path) -> Result<Vec<ImageSource>, ImagesError> {
    if !dir.is_dir() {
        return Err(ImagesError::MissingDir(dir.to_path_buf()));
    }
    let mut images = Vec::new();
    for entry in read_dir_sorted(dir)? {
        let template_path = entry.join(TEMPLATE_FILE);
        if !entry.is_dir() || !template_path.is_file() {
            continue;
        }
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_valid_path_component(&name) {
            return Err(ImagesError::BadName { path: entry, name });
        }
        let template =
            std::fs::read_to_string(&template_path).map_err(|source| ImagesError::Read {
                path: template_path.clone(),
                source,
            })?;
        let files = context_files(&entry)?;
        images.push(ImageSource {
            name,
            template_path,
            template,
            files,
        });
    }
    if images.is_empty() {
        return Err(ImagesError::EmptyTree(dir.to_path_buf()));
    }
    Ok(images)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, ImagesError> {
    let read_error = |source| ImagesError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(read_error)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    entries.sort();
    Ok(entries)
}

/// The build context of an image folder: every file but the template.
fn context_files(dir: &Path) -> Result<Vec<ContextFile>, ImagesError> {
    use std::os::unix::fs::PermissionsExt;
    let read_error = |(path, source)| ImagesError::Read { path, source };
    let mut files = Vec::new();
    for (relative, path) in crate::files::walk(dir).map_err(read_error)? {
        if relative == TEMPLATE_FILE {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| read_error((path.clone(), e)))?;
        let data = std::fs::read(&path).map_err(|e| read_error((path.clone(), e)))?;
        files.push(ContextFile {
            path: relative,
            // Only the executable bit matters to a build; the rest would
            // make the content hash depend on the operator's umask.
            mode: if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            },
            data,
        });
    }
    Ok(files)
}

/// A FROM line of a rendered Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct FromLine {
    pub line: usize,
    pub reference: String,
    pub alias: Option<String>,
}

/// The FROM lines of a Dockerfile (`FROM [--platform=..] ref [AS alias]`).
pub fn from_lines(dockerfile: &str) -> Vec<FromLine> {
    dockerfile
        .lines()
        .enumerate()
        .filter_map(|(index, text)| {
            let mut words = text.split_whitespace();
            if !words.next()?.eq_ignore_ascii_case("FROM") {
                return None;
            }
            let reference = words.find(|w| !w.starts_with("--"))?.to_string();
            let alias = match (words.next(), words.next()) {
                (Some(kw), Some(alias)) if kw.eq_ignore_ascii_case("AS") => Some(alias.to_string()),
                _ => None,
            };
            Some(FromLine {
                line: index + 1,
                reference,
                alias,
            })
        })
        .collect()
}

/// The images of the tree that `dockerfile` (of image `path`) builds FROM.
/// Every FROM must name an image of the tree (with this build's prefix and
/// tag), the configured base image, `scratch`, or an earlier stage.
pub fn parents_of(
    dockerfile: &str,
    path: &Path,
    names: &BTreeSet<String>,
    globals: &Globals,
) -> Result<Vec<String>, ImagesError> {
    let froms = from_lines(dockerfile);
    if froms.is_empty() {
        return Err(ImagesError::NoFrom {
            path: path.to_path_buf(),
        });
    }
    let prefix = globals.image_prefix();
    let suffix = format!(":{}", globals.tag);
    let mut stages = BTreeSet::new();
    let mut parents = Vec::new();
    for from in froms {
        let reference = from.reference.as_str();
        let in_tree = reference
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(&suffix))
            .filter(|name| names.contains(*name));
        if let Some(name) = in_tree {
            if !parents.iter().any(|p| p == name) {
                parents.push(name.to_string());
            }
        } else if reference != globals.base_image
            && reference != "scratch"
            && !stages.contains(reference)
        {
            return Err(ImagesError::UnknownParent {
                path: path.to_path_buf(),
                line: from.line,
                reference: from.reference,
                base: globals.base_image.clone(),
            });
        }
        if let Some(alias) = from.alias {
            stages.insert(alias);
        }
    }
    Ok(parents)
}

/// Refuse a FROM of `dockerfile` (of image `path`) that names an image of
/// the tree whose template renders nothing for these settings (`absent`).
pub fn refuse_absent_parents(
    dockerfile: &str,
    path: &Path,
    absent: &BTreeSet<String>,
    globals: &Globals,
) -> Result<(), ImagesError> {
    let prefix = globals.image_prefix();
    let suffix = format!(":{}", globals.tag);
    for from in from_lines(dockerfile) {
        let named = from
            .reference
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(&suffix));
        if let Some(parent) = named.filter(|name| absent.contains(*name)) {
            return Err(ImagesError::ParentNotInRelease {
                path: path.to_path_buf(),
                line: from.line,
                parent: parent.to_string(),
                release: globals.openstack_release.to_string(),
            });
        }
    }
    Ok(())
}

/// Order image names parents first (a topological order, ties by name), or
/// report a cycle as the chain of names that closes it.
pub fn topological_order(
    parents: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, ImagesError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        parents: &BTreeMap<String, Vec<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), ImagesError> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(name.to_string());
                return Err(ImagesError::Cycle(cycle));
            }
            None => {}
        }
        marks.insert(name.to_string(), Mark::Visiting);
        stack.push(name.to_string());
        for parent in parents.get(name).into_iter().flatten() {
            visit(parent, parents, marks, stack, order)?;
        }
        stack.pop();
        marks.insert(name.to_string(), Mark::Done);
        order.push(name.to_string());
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut order = Vec::new();
    for name in parents.keys() {
        visit(name, parents, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn from_lines_reads_platform_and_alias() {
        let froms =
            from_lines("# c\nFROM --platform=linux/amd64 a:1 AS build\nRUN x\nfrom build\n");
        assert_eq!(froms.len(), 2);
        assert_eq!(froms[0].line, 2);
        assert_eq!(froms[0].reference, "a:1");
        assert_eq!(froms[0].alias.as_deref(), Some("build"));
        assert_eq!(froms[1].reference, "build");
    }

    #[test]
    fn parents_are_tree_images_with_this_prefix_and_tag() {
        let g = Globals::default();
        let tree = names(&["base", "openstack-base"]);
        let path = Path::new("images/x/Dockerfile.tera");
        let df = format!("FROM {}\n", g.image_ref("openstack-base"));
        assert_eq!(
            parents_of(&df, path, &tree, &g).unwrap(),
            vec!["openstack-base"]
        );
        let df = format!("FROM {}\n", g.base_image);
        assert!(parents_of(&df, path, &tree, &g).unwrap().is_empty());
        // Right name, wrong tag: not ours, and not the base either.
        let err = parents_of("RUN x\nFROM kolla/base:other\n", path, &tree, &g).unwrap_err();
        assert_eq!(
            err.to_string(),
            "images/x/Dockerfile.tera:2: FROM kolla/base:other names an image that is neither in the tree nor the base image (debian:trixie)"
        );
        assert!(matches!(
            parents_of("RUN x\n", path, &tree, &g),
            Err(ImagesError::NoFrom { .. })
        ));
    }

    #[test]
    fn order_puts_parents_first() {
        let parents = BTreeMap::from([
            ("c".to_string(), vec!["b".to_string()]),
            ("b".to_string(), vec!["a".to_string()]),
            ("a".to_string(), vec![]),
            ("d".to_string(), vec!["a".to_string()]),
        ]);
        assert_eq!(
            topological_order(&parents).unwrap(),
            vec!["a", "b", "c", "d"]
        );
    }

    #[test]
    fn cycle_is_reported_as_a_chain() {
        let parents = BTreeMap::from([
            ("a".to_string(), vec!["c".to_string()]),
            ("b".to_string(), vec!["a".to_string()]),
            ("c".to_string(), vec!["b".to_string()]),
        ]);
        let err = topological_order(&parents).unwrap_err().to_string();
        assert_eq!(err, "the image tree has a cycle: a -> c -> b -> a");
    }
}
