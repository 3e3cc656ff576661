//! Image tags as versions: `upgrade` refuses a lower semantic version, or
//! an older OpenStack release (the tags `zed`, `epoxy` that `--release`
//! gives), unless told otherwise. Pure.

/// How a new image tag relates to the running one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// Same tag (a rebuilt image shows as a new digest).
    Same,
    Higher,
    Lower,
    /// The tags are neither both semantic versions nor both releases:
    /// not compared.
    NotComparable,
}

fn semver_of(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// Compare the tags of two image references by semantic version.
pub fn compare_tags(running: &str, wanted: &str) -> TagChange {
    let (_, old) = crate::container::split_tag(running);
    let (_, new) = crate::container::split_tag(wanted);
    if old == new {
        return TagChange::Same;
    }
    if let (Some(old), Some(new)) = (release_order(old), release_order(new)) {
        return match new.cmp(&old) {
            std::cmp::Ordering::Greater => TagChange::Higher,
            std::cmp::Ordering::Less => TagChange::Lower,
            std::cmp::Ordering::Equal => TagChange::Same,
        };
    }
    match (semver_of(old), semver_of(new)) {
        (Some(old), Some(new)) if new > old => TagChange::Higher,
        (Some(old), Some(new)) if new < old => TagChange::Lower,
        (Some(_), Some(_)) => TagChange::Same,
        _ => TagChange::NotComparable,
    }
}

/// A release's place in OpenStack's order, for a tag that names one.
fn release_order(tag: &str) -> Option<usize> {
    use crate::config::release::Release;
    Release::ALL
        .iter()
        .position(|release| release.default_tag() == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_by_semantic_version() {
        assert_eq!(
            compare_tags("r/kolla/a:1.2.3", "r/kolla/a:1.10.0"),
            TagChange::Higher
        );
        assert_eq!(
            compare_tags("kolla/a:2.0.0", "kolla/a:1.9.9"),
            TagChange::Lower
        );
        assert_eq!(
            compare_tags("kolla/a:v2.0.0", "kolla/a:2.0.1"),
            TagChange::Higher
        );
        assert_eq!(
            compare_tags("kolla/a:2.0.0-rc.1", "kolla/a:2.0.0"),
            TagChange::Higher
        );
        assert_eq!(compare_tags("kolla/a:zed", "kolla/a:zed"), TagChange::Same);
        assert_eq!(
            compare_tags("kolla/a:zed", "kolla/a:2023.1"),
            TagChange::NotComparable
        );
        assert_eq!(
            compare_tags("127.0.0.1:4000/a:1.0.0", "127.0.0.1:4000/a:0.9.0"),
            TagChange::Lower
        );
    }

    #[test]
    fn release_tags_compare_in_openstacks_order() {
        assert_eq!(
            compare_tags("kolla/a:zed", "kolla/a:epoxy"),
            TagChange::Higher
        );
        assert_eq!(
            compare_tags("kolla/a:epoxy", "kolla/a:zed"),
            TagChange::Lower
        );
        assert_eq!(
            compare_tags("kolla/a:epoxy", "kolla/a:1.0.0"),
            TagChange::NotComparable
        );
    }
}
