//! The OpenStack release a tree is built for and a deployment runs
//! (`openstack_release` in globals.yml, `--release` on the command line),
//! and what it implies when globals.yml does not say otherwise: the Debian
//! suite whose packages carry it, the base image made from that suite, and
//! the images' default tag.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A release kolla builds and deploys, oldest first (the order upgrades go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// OpenStack Zed (2022.2), from Debian 12 (bookworm).
    Zed,
    /// OpenStack 2025.1 Epoxy, from Debian 13 (trixie).
    Epoxy,
}

impl Release {
    /// Every release kolla knows, oldest first.
    pub const ALL: [Release; 2] = [Release::Zed, Release::Epoxy];

    /// What a globals.yml without `openstack_release` gets: the newest.
    pub const DEFAULT: Release = Release::Epoxy;

    /// The name globals.yml and `--release` use.
    pub fn name(self) -> &'static str {
        match self {
            Release::Zed => "zed",
            Release::Epoxy => "epoxy",
        }
    }

    /// The Debian suite whose packages carry this release.
    pub fn debian_suite(self) -> &'static str {
        match self {
            Release::Zed => "bookworm",
            Release::Epoxy => "trixie",
        }
    }

    /// The base image `tools/make-base-image` makes from that suite.
    pub fn base_image(self) -> String {
        format!("debian:{}", self.debian_suite())
    }

    /// The tag a tree of this release is built with unless told otherwise.
    pub fn default_tag(self) -> &'static str {
        self.name()
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Release {
    type Err = String;

    fn from_str(text: &str) -> Result<Release, String> {
        Release::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Release::ALL.iter().map(|r| r.name()).collect();
                format!(
                    "{text:?} is not a release kolla knows (one of: {})",
                    known.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_release_names_its_suite_base_and_tag() {
        assert_eq!(Release::Zed.base_image(), "debian:bookworm");
        assert_eq!(Release::Epoxy.base_image(), "debian:trixie");
        assert_eq!(Release::Epoxy.default_tag(), "epoxy");
        for release in Release::ALL {
            assert_eq!(release.name().parse::<Release>(), Ok(release));
            assert_eq!(release.to_string(), release.name());
        }
    }

    #[test]
    fn releases_order_oldest_first() {
        assert!(Release::Zed < Release::Epoxy);
        assert!(Release::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_unknown_release_lists_the_known_ones() {
        let err = "caracal".parse::<Release>().unwrap_err();
        assert!(err.contains("\"caracal\""), "{err}");
        assert!(err.contains("zed, epoxy"), "{err}");
        assert!("Zed".parse::<Release>().is_err(), "names are lowercase");
    }
}
