//! Which of a node's images `kolla prune-images` removes: kolla's own
//! images (a repository the node's compose files name, in any tag, or an
//! image `kolla build` labelled under the tree's prefix) that no container
//! on the node uses, live, kept for rollback or stopped, whoever made it.
//! Pure: the engine's lists in, the images to remove out, so the rule
//! that keeps every rollback possible is tested without an engine. The
//! verb (`verbs::prune_images`) takes the locks and removes them.

use std::collections::BTreeSet;

use crate::container::split_tag;
use crate::engine::ListedImage;
use crate::images::build::LABEL_IMAGE_NAME;

/// What makes an image the deployment's, and which of its images stay
/// whatever the containers say.
#[derive(Debug, Clone, Default)]
pub struct Ours {
    /// Repositories the node's compose files name: any tag of them is
    /// kolla's.
    pub repositories: BTreeSet<String>,
    /// The references the compose files name now: what the next deploy
    /// or upgrade runs (pulled ahead, not yet in a container), kept.
    pub desired: BTreeSet<String>,
    /// `registry/namespace/` of kolla's image tree (globals.yml).
    pub image_prefix: String,
    /// globals.yml's tag: the tree's current build, kept (its parents
    /// too, which no container runs but the next build starts from).
    pub tag: String,
}

impl Ours {
    /// The deployment's images from the references its compose files name.
    pub fn of<'r>(
        references: impl IntoIterator<Item = &'r str>,
        image_prefix: &str,
        tag: &str,
    ) -> Ours {
        let desired: BTreeSet<String> = references.into_iter().map(familiar).collect();
        Ours {
            repositories: desired.iter().map(|r| repository(r).to_string()).collect(),
            desired,
            image_prefix: familiar(image_prefix),
            tag: tag.to_string(),
        }
    }

    /// Whether `tag` (`name:tag`) of an image with `labels` is kolla's.
    fn owns(&self, tag: &str, labels: &std::collections::HashMap<String, String>) -> bool {
        self.repositories.contains(repository(tag))
            || (labels.contains_key(LABEL_IMAGE_NAME) && tag.starts_with(&self.image_prefix))
    }

    /// Whether an image tagged `tag` stays though no container uses it.
    fn keeps(&self, tag: &str) -> bool {
        self.desired.contains(tag)
            || (tag.starts_with(&self.image_prefix) && split_tag(tag).1 == self.tag)
    }
}

/// An image to remove: its id, its tags (all kolla's) and the bytes its
/// removal frees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unused {
    pub id: String,
    pub tags: Vec<String>,
    /// Its own bytes: its size less what it shares with other images
    /// where the engine says, else its whole size.
    pub bytes: u64,
    /// Whether the engine counted the shared bytes (else `bytes` is an
    /// estimate: see `estimate_from_layers`).
    pub exact: bool,
}

/// For an engine that does not count shared bytes (before API 1.42): each
/// of `unused` gets its size less the largest image of `images` whose
/// layers (`layers`: image id -> diff ids, base first) its own begin with,
/// its parent in the tree most often, whose bytes stay with that image
/// (or are counted once, where that one goes too). Layers shared with a
/// sibling only are still counted: the total is at most what is freed.
pub fn estimate_from_layers(
    unused: &mut [Unused],
    images: &[ListedImage],
    layers: &std::collections::HashMap<String, Vec<String>>,
) {
    for image in unused.iter_mut().filter(|i| !i.exact) {
        let Some(mine) = layers.get(&image.id) else {
            continue;
        };
        let base = images
            .iter()
            .filter(|other| other.id != image.id)
            .filter(|other| {
                layers
                    .get(&other.id)
                    .is_some_and(|theirs| !theirs.is_empty() && mine.starts_with(theirs))
            })
            .map(|other| other.size)
            .max()
            .unwrap_or(0);
        image.bytes = image.bytes.saturating_sub(base);
    }
}

/// Of `images`, kolla's that nothing needs: every tag kolla's (an image
/// also tagged outside the deployment is someone else's too), not the
/// image of any container in `in_use` (image ids of every container on the
/// node, kept generations and stopped ones included: a rollback starts
/// one), and not one the compose files name now or of the current build.
/// Dangling images (no tag) are left alone: nothing says whose they are.
pub fn unused_images(
    images: &[ListedImage],
    in_use: &BTreeSet<String>,
    ours: &Ours,
) -> Vec<Unused> {
    let mut unused: Vec<Unused> = images
        .iter()
        .filter(|i| !i.tags.is_empty() && !in_use.contains(&i.id))
        .filter(|i| i.tags.iter().all(|t| ours.owns(t, &i.labels)))
        .filter(|i| !i.tags.iter().any(|t| ours.keeps(t)))
        .map(|i| Unused {
            id: i.id.clone(),
            tags: i.tags.clone(),
            bytes: i.size.saturating_sub(i.shared_size.unwrap_or(0)),
            exact: i.shared_size.is_some(),
        })
        .collect();
    unused.sort_by(|a, b| a.tags.cmp(&b.tags));
    unused
}

/// A reference as the engine lists it: Docker Hub's `docker.io/` and
/// `library/` left out, `:latest` where no tag or digest is given.
fn familiar(reference: &str) -> String {
    let short = reference.strip_prefix("docker.io/").unwrap_or(reference);
    let short = short.strip_prefix("library/").unwrap_or(short);
    let named = short.contains('@') || split_tag(short).0 != short;
    match named || short.ends_with('/') {
        true => short.to_string(),
        false => format!("{short}:latest"),
    }
}

/// The repository of a reference (`name` of `name:tag` or `name@digest`).
fn repository(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    split_tag(name).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn image(id: &str, tags: &[&str], built: bool, size: u64) -> ListedImage {
        let labels = match built {
            true => HashMap::from([(LABEL_IMAGE_NAME.to_string(), "x".to_string())]),
            false => HashMap::new(),
        };
        ListedImage {
            id: id.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels,
            size,
            shared_size: Some(size / 2),
        }
    }

    fn ours() -> Ours {
        Ours::of(
            [
                "kolla/web:3.0",
                "docker.io/library/mariadb:11",
                "r:5000/kolla/api",
            ],
            "kolla/",
            "3.0",
        )
    }

    fn ids(unused: &[Unused]) -> Vec<&str> {
        unused.iter().map(|u| u.id.as_str()).collect()
    }

    #[test]
    fn an_image_a_kept_or_stopped_container_uses_is_never_removed() {
        let images = [
            image("live", &["kolla/web:3.0"], true, 10),
            image("gen-2", &["kolla/web:2.0"], true, 10),
            image("gen-1", &["kolla/web:1.0"], true, 10),
            image("old", &["kolla/web:0.9"], true, 10),
        ];
        let in_use = BTreeSet::from(["live".to_string(), "gen-2".into(), "gen-1".into()]);
        assert_eq!(ids(&unused_images(&images, &in_use, &ours())), ["old"]);
        // With no container left on gen-1, its image goes too.
        let in_use = BTreeSet::from(["live".to_string(), "gen-2".into()]);
        assert_eq!(
            ids(&unused_images(&images, &in_use, &ours())),
            ["old", "gen-1"]
        );
    }

    #[test]
    fn any_tag_of_a_compose_repository_is_ours_and_other_images_are_not() {
        let images = [
            image("maria-old", &["mariadb:10"], false, 4),
            image("api-old", &["r:5000/kolla/api:0.1"], false, 4),
            image("theirs", &["someone/web:1.0"], false, 4),
            image("shared", &["kolla/web:0.8", "someone/web:0.8"], true, 4),
            image("dangling", &[], true, 4),
            // Built by kolla under another namespace: another deployment's.
            image("other-tree", &["other/web:0.1"], true, 4),
        ];
        assert_eq!(
            ids(&unused_images(&images, &BTreeSet::new(), &ours())),
            ["maria-old", "api-old"]
        );
    }

    #[test]
    fn what_the_compose_files_name_now_and_the_current_build_stay() {
        let images = [
            image("pulled-ahead", &["kolla/web:3.0"], true, 4),
            image("latest-api", &["r:5000/kolla/api:latest"], false, 4),
            image("parent", &["kolla/base:3.0"], true, 4),
            image("old-parent", &["kolla/base:2.0"], true, 4),
        ];
        assert_eq!(
            ids(&unused_images(&images, &BTreeSet::new(), &ours())),
            ["old-parent"]
        );
    }

    #[test]
    fn the_bytes_freed_are_what_the_image_does_not_share() {
        let mut images = vec![image("a", &["kolla/web:1.0"], true, 100)];
        let unused = unused_images(&images, &BTreeSet::new(), &ours());
        assert_eq!((unused[0].bytes, unused[0].exact), (50, true));
        images[0].shared_size = None;
        let unused = unused_images(&images, &BTreeSet::new(), &ours());
        assert_eq!((unused[0].bytes, unused[0].exact), (100, false));
    }

    #[test]
    fn without_the_engines_count_the_parents_bytes_are_left_out() {
        let mut images = vec![
            image("base", &["kolla/base:3.0"], true, 60),
            image("old", &["kolla/web:1.0"], true, 100),
            image("sibling", &["kolla/api:1.0"], true, 90),
        ];
        for i in &mut images {
            i.shared_size = None;
        }
        let layers = HashMap::from([
            ("base".to_string(), vec!["l1".to_string(), "l2".into()]),
            (
                "old".to_string(),
                vec!["l1".into(), "l2".into(), "l3".into()],
            ),
            ("sibling".to_string(), vec!["l1".into(), "l4".into()]),
        ]);
        let mut unused = unused_images(&images, &BTreeSet::new(), &ours());
        assert_eq!(ids(&unused), ["sibling", "old"]);
        estimate_from_layers(&mut unused, &images, &layers);
        // `old` begins with all of base's layers; `sibling` with one only,
        // which no image ends at: counted whole.
        assert_eq!((unused[1].bytes, unused[0].bytes), (40, 90));
        // Counted by the engine: left as it is.
        let mut counted = vec![Unused {
            exact: true,
            ..unused[1].clone()
        }];
        counted[0].bytes = 7;
        estimate_from_layers(&mut counted, &images, &layers);
        assert_eq!(counted[0].bytes, 7);
    }

    #[test]
    fn references_read_as_the_engine_lists_them() {
        assert_eq!(familiar("docker.io/library/mariadb:11"), "mariadb:11");
        assert_eq!(familiar("busybox"), "busybox:latest");
        assert_eq!(familiar("r:5000/kolla/api"), "r:5000/kolla/api:latest");
        assert_eq!(familiar("kolla/web@sha256:ab"), "kolla/web@sha256:ab");
        assert_eq!(repository("kolla/web@sha256:ab"), "kolla/web");
        assert_eq!(repository("r:5000/kolla/api:1"), "r:5000/kolla/api");
        assert_eq!(familiar("kolla/"), "kolla/");
    }
}
