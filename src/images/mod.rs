//! The image builder: the tree of image sources (`catalog`), their rendering
//! into Dockerfiles and build contexts (`render`), and the scheduler that
//! builds them on an engine, parents first (`build`), with one package cache
//! for the run's downloads (`package_cache`).

pub mod build;
pub mod catalog;
pub mod package_cache;
pub mod render;

use std::path::PathBuf;

/// Bad input found before anything is built: each variant names the file
/// (and line, where there is one) so the operator can fix it.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "images directory {0} does not exist (pass --images-dir, or run from a kolla checkout)"
    )]
    MissingDir(PathBuf),
    #[error("{0}: no image folder (with a Dockerfile.tera) in it")]
    EmptyTree(PathBuf),
    #[error(
        "{path}: image name {name:?} is not a valid repository name (lowercase letters, digits, '.', '_', '-')"
    )]
    BadName { path: PathBuf, name: String },
    #[error("{path}: {message}")]
    Template { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Override { path: PathBuf, message: String },
    #[error(
        "{path}:{line}: FROM {reference} names an image that is neither in the tree nor the base image ({base})"
    )]
    UnknownParent {
        path: PathBuf,
        line: usize,
        reference: String,
        base: String,
    },
    #[error("{path}: the rendered Dockerfile has no FROM line")]
    NoFrom { path: PathBuf },
    #[error(
        "{path}:{line}: builds FROM {parent}, whose template renders nothing for release {release} (not in that release)"
    )]
    ParentNotInRelease {
        path: PathBuf,
        line: usize,
        parent: String,
        release: String,
    },
    #[error(
        "{pattern:?} matches only images that are not in this release ({}): their templates render nothing for its settings",
        .images.join(", ")
    )]
    NotInRelease {
        pattern: String,
        images: Vec<String>,
    },
    #[error("the image tree has a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("unknown profile {name:?}; globals.yml defines: {}", .known.join(", "))]
    UnknownProfile { name: String, known: Vec<String> },
    #[error("{pattern:?} is not a valid regex: {message}")]
    BadRegex { pattern: String, message: String },
    #[error("{pattern:?} matches no image; `kolla build --list-images` lists them")]
    NoMatch { pattern: String },
    #[error(
        "{image} needs {parent}, which is not selected and not on the engine as {reference}; drop --skip-parents or build it first"
    )]
    MissingParent {
        image: String,
        parent: String,
        reference: String,
    },
}
