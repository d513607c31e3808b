//! Image references (`[registry[:port]/]path[:tag][@digest]`), parsed and normalized as docker does.

use std::fmt;
use std::str::FromStr;

use crate::{Digest, DigestError};

/// The registry a reference without one refers to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a reference without tag or digest refers to.
pub const DEFAULT_TAG: &str = "latest";
const OFFICIAL_NAMESPACE: &str = "library";
/// Longest repository name (registry and path) the distribution spec allows.
const MAX_NAME_LEN: usize = 255;
/// Longest tag the distribution spec allows.
const MAX_TAG_LEN: usize = 128;

/// A normalized image reference.
///
/// Parsing applies docker's rules: `busybox` means `docker.io/library/busybox:latest`, a first
/// path component with a `.` or `:` (or `localhost`) is a registry, and a reference with a digest
/// but no tag keeps no tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an [`ImageRef`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("invalid reference format {reference:?}: {reason}")]
    Invalid {
        reference: String,
        reason: &'static str,
    },
    #[error("invalid reference format {reference:?}: repository name must be lowercase")]
    Uppercase { reference: String },
    #[error("invalid reference {reference:?}: {source}")]
    Digest {
        reference: String,
        source: DigestError,
    },
}

impl ImageRef {
    /// The registry host (and port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/path`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The repository as docker shows it: `busybox` for `docker.io/library/busybox`.
    pub fn familiar_repository(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            let path = self
                .path
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path);
            path.to_owned()
        } else {
            self.repository()
        }
    }

    /// The whole reference as docker shows it: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        self.push_suffix(&mut s);
        s
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ImageRefError> {
        format!("{}:{tag}", self.repository()).parse()
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| ImageRefError::Invalid {
            reference: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest.parse().map_err(|source| ImageRefError::Digest {
                    reference: s.to_owned(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/', so a registry port is not
        // mistaken for a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(
                "a tag is at most 128 characters of [A-Za-z0-9_.-], not starting with . or -",
            ));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("repository name is longer than 255 characters"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, remainder.to_owned())
            }
            _ if !name.contains('/') => (DEFAULT_REGISTRY, format!("{OFFICIAL_NAMESPACE}/{name}")),
            _ => (DEFAULT_REGISTRY, name.to_owned()),
        };
        if !valid_registry(registry) {
            return Err(invalid("registry must be HOST[:PORT]"));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ImageRefError::Uppercase {
                reference: s.to_owned(),
            });
        }
        if !path.split('/').all(valid_path_component) {
            return Err(invalid(
                "path components are lowercase letters and digits, separated by '.', '_', '__' or '-'",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry: registry.to_owned(),
            path,
            tag,
            digest,
        })
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    tag.len() <= MAX_TAG_LEN
        && (first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || registry.starts_with('[') => {
            (host, Some(port))
        }
        _ => (registry, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[a-z0-9]+` runs joined by one separator: `.`, `_`, `__` or one or more `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(|&b| alnum(b)) || !bytes.last().is_some_and(|&b| alnum(b)) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repository();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

serde_as_string!(ImageRef);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageRef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn short_names_normalize_like_docker() {
        assert_eq!(
            parse("busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(parse("busybox").familiar(), "busybox:latest");
        assert_eq!(parse("me/app:1.0").to_string(), "docker.io/me/app:1.0");
        assert_eq!(parse("me/app:1.0").familiar(), "me/app:1.0");
    }

    #[test]
    fn a_first_component_with_dot_colon_or_localhost_is_a_registry() {
        let r = parse("127.0.0.1:5000/team/app:v2");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.path(), "team/app");
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(parse("localhost/app").registry(), "localhost");
        assert_eq!(
            parse("localhost:5000/app").familiar(),
            "localhost:5000/app:latest"
        );
        assert_eq!(parse("[::1]:5000/app").registry(), "[::1]:5000");
    }

    #[test]
    fn a_digest_reference_has_no_default_tag() {
        let d = Digest::of(b"x");
        let r = parse(&format!("busybox@{d}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(&d));
        let both = parse(&format!("busybox:1@{d}"));
        assert_eq!(both.to_string(), format!("docker.io/library/busybox:1@{d}"));
    }

    #[test]
    fn invalid_references_are_rejected_with_a_reason() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "-a",
            "a-",
            "a:",
            "a:-tag",
            "a:tag with space",
            "a@sha256:123",
            "host:port/app",
            "a/b..c",
            "ex ample.com/a",
        ] {
            assert!(
                bad.parse::<ImageRef>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(long_tag.parse::<ImageRef>().is_err());
        let long_name = "a".repeat(256);
        assert!(long_name.parse::<ImageRef>().is_err());
    }

    #[test]
    fn separators_follow_the_grammar() {
        for good in ["a.b", "a_b", "a__b", "a---b", "a-b.c_d"] {
            parse(good);
        }
        for bad in ["a___b", "a.-b", "a_.b"] {
            assert!(
                bad.parse::<ImageRef>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn with_tag_keeps_the_repository() {
        assert_eq!(
            parse("127.0.0.1:5000/app:1")
                .with_tag("2")
                .unwrap()
                .to_string(),
            "127.0.0.1:5000/app:2"
        );
    }

    proptest::proptest! {
        #[test]
        fn display_parses_back_to_the_same_reference(
            repo in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
            tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}",
        ) {
            let r = parse(&format!("{repo}:{tag}"));
            proptest::prop_assert_eq!(parse(&r.to_string()), r.clone());
            proptest::prop_assert_eq!(parse(&r.familiar()), r);
        }
    }
}
