//! Image references by the distribution reference grammar, the one the
//! engine parses every image name with (`ParseNormalizedNamed`):
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path-component [ "/" path-component ]*
//! domain    := domain-component [ "." domain-component ]* [ ":" port ]
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest    := algorithm ":" hex   (sha256: 64, sha384: 96, sha512: 128
//!                                   lowercase hex digits)
//! ```
//!
//! The first component is the registry only when it holds a `.` or a `:`
//! or is `localhost`; the name, registry included once normalized
//! (`web` is `docker.io/library/web`), is at most 255 characters; a name of
//! 64 hex digits is an image id, not a reference.
//!
//! Where engines differ, this takes what every engine kolla supports
//! accepts: no IPv6 registry (`[::1]:5000/x`, newer engines only), and an
//! upper-case first component without `.` or `:` is refused (older engines
//! call it an upper-case repository; newer ones a registry). No crate on
//! crates.io implements the grammar exactly (`oci-spec`'s `Reference`
//! takes Unicode tags and upper-case repositories), hence this parser.

use std::sync::LazyLock;

use regex::Regex;

/// The longest name, registry included once normalized.
pub const MAX_NAME: usize = 255;

const DOMAIN_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const PATH_COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const TAG: &str = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

fn domain_pattern() -> String {
    format!(r"{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*(?::[0-9]+)?")
}

/// The whole reference, anchored: name, tag, digest.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let name = format!(
        "(?:{}/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*",
        domain_pattern()
    );
    Regex::new(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$")).expect("static regex")
});
static DOMAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{}$", domain_pattern())).expect("static regex"));
static TAG_ONLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{TAG}$")).expect("static regex"));
static PATH_ONLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{PATH_COMPONENT}$")).expect("static regex"));

/// An image reference, split as the engine splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The registry (`host[:port]`), when the reference names one.
    pub domain: Option<String>,
    /// The repository path under the registry.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Why a text is not an image reference; `Display` says what is wrong, the
/// caller says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("is empty")]
    Empty,
    #[error("holds white space or control characters")]
    Space,
    #[error("has an upper-case letter in its repository name (repository names are lowercase)")]
    Uppercase,
    #[error(
        "has a tag {0:?} that is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}} (at most 128 characters)"
    )]
    Tag(String),
    #[error(
        "is not [registry[:port]/]name[:tag][@digest] (name: lowercase letters and digits, separated by '.', '_', '__', '-' or '/')"
    )]
    Format,
    #[error("has a name of {0} characters with its registry; at most {MAX_NAME}")]
    NameTooLong(usize),
    #[error("is 64 hex digits: an image id, not a name the engine can pull")]
    Identifier,
    #[error("has digest {0:?}: only sha256, sha384 and sha512 digests are known")]
    DigestAlgorithm(String),
    #[error("has digest {0:?}: {1} needs exactly {2} lowercase hex digits")]
    DigestLength(String, String, usize),
}

/// Whether `text` is a registry host with an optional port.
pub fn is_valid_domain(text: &str) -> bool {
    DOMAIN.is_match(text)
}

/// Whether `text` is a valid tag.
pub fn is_valid_tag(text: &str) -> bool {
    TAG_ONLY.is_match(text)
}

/// Parse `text` as the engine does, refusing what any engine would.
pub fn parse(text: &str) -> Result<ImageReference, ReferenceError> {
    if text.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ReferenceError::Space);
    }
    if text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ReferenceError::Identifier);
    }
    let Some(captures) = REFERENCE.captures(text) else {
        return Err(diagnose(text));
    };
    let name = captures.get(1).map_or("", |m| m.as_str());
    let (domain, path) = split_domain(name)?;
    let normalized = match domain {
        Some(domain) => domain.len() + 1 + path.len(),
        // `web` is `docker.io/library/web`; `org/web` `docker.io/org/web`.
        None if path.contains('/') => "docker.io/".len() + path.len(),
        None => "docker.io/library/".len() + path.len(),
    };
    if normalized > MAX_NAME {
        return Err(ReferenceError::NameTooLong(normalized));
    }
    let digest = captures.get(3).map(|m| m.as_str().to_string());
    if let Some(digest) = &digest {
        check_digest(digest)?;
    }
    Ok(ImageReference {
        domain: domain.map(str::to_string),
        path: path.to_string(),
        tag: captures.get(2).map(|m| m.as_str().to_string()),
        digest,
    })
}

/// The registry part of a name matched by the grammar: its first
/// component when that holds a `.` or `:` or is `localhost`.
fn split_domain(name: &str) -> Result<(Option<&str>, &str), ReferenceError> {
    let Some((first, rest)) = name.split_once('/') else {
        return Ok((None, name));
    };
    if first == "localhost" || first.contains(['.', ':']) {
        return Ok((Some(first), rest));
    }
    // A first component the path grammar refuses (upper case) matched as
    // a domain: one engine takes it for a registry, another refuses it.
    if PATH_ONLY.is_match(first) {
        Ok((None, name))
    } else {
        Err(ReferenceError::Uppercase)
    }
}

fn check_digest(digest: &str) -> Result<(), ReferenceError> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or((digest, ""));
    let size = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::DigestAlgorithm(digest.to_string())),
    };
    let lower_hex = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if hex.len() != size || !lower_hex {
        return Err(ReferenceError::DigestLength(
            digest.to_string(),
            algorithm.to_string(),
            size,
        ));
    }
    Ok(())
}

/// Why `text`, which the grammar refuses, is refused, in the words most
/// likely to help.
fn diagnose(text: &str) -> ReferenceError {
    let lower = text.to_ascii_lowercase();
    if lower != text && REFERENCE.is_match(&lower) {
        return ReferenceError::Uppercase;
    }
    let before_digest = text.split('@').next().unwrap_or(text);
    if let Some((name, tag)) = before_digest.rsplit_once(':')
        && !tag.contains('/')
        && REFERENCE.is_match(name)
        && !is_valid_tag(tag)
    {
        return ReferenceError::Tag(tag.to_string());
    }
    ReferenceError::Format
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (Option<String>, String, Option<String>, Option<String>) {
        let r = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (r.domain, r.path, r.tag, r.digest)
    }

    const SHA256: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn names_tags_and_registries_are_split_as_the_engine_does() {
        assert_eq!(parts("busybox"), (None, "busybox".into(), None, None));
        assert_eq!(
            parts("kolla/web:zed"),
            (None, "kolla/web".into(), Some("zed".into()), None)
        );
        assert_eq!(
            parts("127.0.0.1:4000/kolla/web:1.2.3"),
            (
                Some("127.0.0.1:4000".into()),
                "kolla/web".into(),
                Some("1.2.3".into()),
                None
            )
        );
        assert_eq!(
            parts("localhost/web"),
            (Some("localhost".into()), "web".into(), None, None)
        );
        // A port makes a registry even without a dot.
        assert_eq!(
            parts("registry:5000/web"),
            (Some("registry:5000".into()), "web".into(), None, None)
        );
        // Without a '/' a ':' is a tag, even one of digits.
        assert_eq!(
            parts("test.com:5000"),
            (None, "test.com".into(), Some("5000".into()), None)
        );
        assert_eq!(
            parts("Registry.Example.com/a/b/c"),
            (
                Some("Registry.Example.com".into()),
                "a/b/c".into(),
                None,
                None
            )
        );
        assert_eq!(parts("a__b/c--d/e.f_g:T_1.x-").1, "a__b/c--d/e.f_g");
    }

    #[test]
    fn digests_are_checked_by_algorithm() {
        let with_digest = format!("web@{SHA256}");
        assert_eq!(parts(&with_digest).3.as_deref(), Some(SHA256));
        let both = format!("r.io/web:1@{SHA256}");
        assert_eq!(parts(&both).2.as_deref(), Some("1"));
        let sha512 = format!("web@sha512:{}", "0".repeat(128));
        assert!(parse(&sha512).is_ok());
        assert!(matches!(
            parse(&format!("web@sha256:{}", "f".repeat(63))),
            Err(ReferenceError::DigestLength(..))
        ));
        assert!(matches!(
            parse(&format!("web@sha256:{}", "F".repeat(64))),
            Err(ReferenceError::DigestLength(..))
        ));
        assert!(matches!(
            parse(&format!("web@md5:{}", "f".repeat(32))),
            Err(ReferenceError::DigestAlgorithm(_))
        ));
        assert_eq!(parse(&format!("@{SHA256}")), Err(ReferenceError::Format));
    }

    #[test]
    fn upper_case_repositories_are_refused() {
        assert_eq!(parse("Web"), Err(ReferenceError::Uppercase));
        assert_eq!(parse("kolla/Web:1"), Err(ReferenceError::Uppercase));
        assert_eq!(parse("r.io:5000/Kolla/web"), Err(ReferenceError::Uppercase));
        // Engines disagree on this one (registry or repository): refused.
        assert_eq!(parse("Upper/web"), Err(ReferenceError::Uppercase));
        // Tags may be upper case.
        assert!(parse("web:Zed").is_ok());
    }

    #[test]
    fn tags_are_at_most_128_ascii_characters() {
        assert!(parse(&format!("web:{}", "t".repeat(128))).is_ok());
        assert_eq!(
            parse(&format!("web:{}", "t".repeat(129))),
            Err(ReferenceError::Tag("t".repeat(129)))
        );
        assert!(matches!(parse("web:.hidden"), Err(ReferenceError::Tag(_))));
        assert!(matches!(parse("web:-x"), Err(ReferenceError::Tag(_))));
        // Go's \w is ASCII: no Unicode letters in a tag.
        assert!(parse("web:zéd").is_err());
        assert!(parse("wéb").is_err());
    }

    #[test]
    fn what_reached_the_engine_before_is_refused() {
        assert_eq!(parse("atk/web:1 --privileged"), Err(ReferenceError::Space));
        for bad in [
            "",
            ":tag",
            "web:",
            "/web",
            "web/",
            "web//x",
            "-web",
            "web-",
            "a/.b",
            "a...b",
            "r.io:port/web",
            "[::1]:5000/web",
            "http://r.io/web",
            "web:1:2",
            "web@",
            "a_-b",
            "r.io/web@sha256",
            "web\u{0}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_at_most_255_characters_once_normalized() {
        // `docker.io/library/` (18) + 237 = 255.
        assert!(parse(&"a".repeat(237)).is_ok());
        assert_eq!(
            parse(&"a".repeat(238)),
            Err(ReferenceError::NameTooLong(256))
        );
        let long_path = format!("r.io/{}", "a".repeat(250));
        assert!(parse(&long_path).is_ok());
        let too_long = format!("r.io/{}", "a".repeat(251));
        assert_eq!(parse(&too_long), Err(ReferenceError::NameTooLong(256)));
    }

    #[test]
    fn an_image_id_is_not_a_name() {
        assert_eq!(parse(&"a".repeat(64)), Err(ReferenceError::Identifier));
        // 63 or 65 hex digits are names.
        assert!(parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn domains_and_tags_alone() {
        for good in ["r.io", "127.0.0.1:4000", "localhost:5000", "a-b.c", "R.IO"] {
            assert!(is_valid_domain(good), "{good}");
        }
        for bad in ["http://r.io", "r.io/", "-r.io", "r..io", "r.io:", "[::1]"] {
            assert!(!is_valid_domain(bad), "{bad}");
        }
        assert!(is_valid_tag("zed") && is_valid_tag("_1") && !is_valid_tag(".x"));
    }
}
