//! Image references, parsed once for all of kbuild: the builder image (`--image`, checked as
//! the engine would), the image it pulls (`engine::docker::split_reference`) and the name an
//! extension image is built under (`--tag`). The grammar is distribution/reference's
//! (reference.go, `Parse`), which the engine applies:
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path-component { "/" path-component }
//! domain    := host [ ":" port ]           host: DNS labels, or an IPv6 address in [ ]
//! path-component := alnum { separator alnum }   alnum: [a-z0-9]+, separator: . _ __ -+
//! tag       := [\w][\w.-]{0,127}
//! digest    := sha256:<64 hex> | sha384:<96 hex> | sha512:<128 hex>
//! ```
//!
//! The first component is a domain when it holds a `.` or a `:`, is `localhost`, or has an
//! uppercase letter (`splitDockerDomain`); otherwise the image is on Docker Hub (`docker.io`,
//! with `library/` before a one-component path).

use crate::error::{Error, Result};

pub const DOCKER_HUB: &str = "docker.io";

/// The parts of a reference, as slices of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    /// `domain/path`, as written.
    pub name: &'a str,
    pub domain: Option<&'a str>,
    pub path: &'a str,
    pub tag: Option<&'a str>,
    /// `sha256:...`.
    pub digest: Option<&'a str>,
}

/// Where a reference breaks the grammar (a byte offset, for a caret) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub at: usize,
    pub why: String,
}

fn fault(at: usize, why: impl Into<String>) -> Fault {
    Fault {
        at,
        why: why.into(),
    }
}

/// Splits and checks `text`; the fault is the leftmost one.
pub fn parse(text: &str) -> std::result::Result<Parts<'_>, Fault> {
    if text.is_empty() {
        return Err(fault(0, "it is empty"));
    }
    let (name_tag, digest) = match text.find('@') {
        Some(at) => (&text[..at], Some((at + 1, &text[at + 1..]))),
        None => (text, None),
    };
    // A tag is after a `:` in the last component (a `:` before a `/` is a port).
    let last = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last..].rfind(':') {
        Some(i) => (
            &name_tag[..last + i],
            Some((last + i + 1, &name_tag[last + i + 1..])),
        ),
        None => (name_tag, None),
    };
    let (domain, path, path_at) = match name.find('/') {
        Some(i) if looks_like_domain(&name[..i]) => (Some(&name[..i]), &name[i + 1..], i + 1),
        _ => (None, name, 0),
    };
    if let Some(domain) = domain {
        check_domain(domain)?;
    }
    check_path(path).map_err(|f| fault(path_at + f.at, f.why))?;
    if name.len() > 255 {
        return Err(fault(255, "the name is longer than 255 characters"));
    }
    if let Some((at, tag)) = tag {
        check_tag(tag).map_err(|f| fault(at + f.at, f.why))?;
    }
    if let Some((at, digest)) = digest {
        check_digest(digest).map_err(|f| fault(at + f.at, f.why))?;
    }
    Ok(Parts {
        name,
        domain,
        path,
        tag: tag.map(|(_, t)| t),
        digest: digest.map(|(_, d)| d),
    })
}

fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// `host[:port]`: DNS labels (letters, digits, inner `-`) or `[IPv6]`.
fn check_domain(domain: &str) -> std::result::Result<(), Fault> {
    let (host_end, port_at) = if domain.starts_with('[') {
        let Some(close) = domain.find(']') else {
            return Err(fault(domain.len(), "an IPv6 address needs its closing ']'"));
        };
        let inner = &domain[1..close];
        if let Some(i) = inner
            .bytes()
            .position(|b| !(b.is_ascii_hexdigit() || b == b':' || b == b'.'))
        {
            return Err(fault(1 + i, "an IPv6 address is hex digits and ':'"));
        }
        if inner.is_empty() {
            return Err(fault(1, "the IPv6 address is empty"));
        }
        (close + 1, close + 1)
    } else {
        let end = domain.find(':').unwrap_or(domain.len());
        let mut at = 0;
        for label in domain[..end].split('.') {
            let bytes = label.as_bytes();
            if let Some(i) = bytes
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
            {
                return Err(fault(
                    at + i,
                    "a registry host is letters, digits, '-' and '.'",
                ));
            }
            if bytes.is_empty() || bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
                let i = if bytes.first() == Some(&b'-') {
                    0
                } else {
                    bytes.len().saturating_sub(1)
                };
                return Err(fault(
                    at + i,
                    "each part of a registry host starts and ends with a letter or digit",
                ));
            }
            at += label.len() + 1;
        }
        (end, end)
    };
    match &domain[host_end..] {
        "" => Ok(()),
        port => match port.strip_prefix(':') {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(())
            }
            Some(digits) => {
                let i = digits
                    .bytes()
                    .position(|b| !b.is_ascii_digit())
                    .unwrap_or(0);
                Err(fault(port_at + 1 + i, "a registry port is digits"))
            }
            None => Err(fault(port_at, "a registry port follows a ':'")),
        },
    }
}

/// Path components of lowercase letters and digits, with `.`, `_`, `__` or `-`s between.
/// An uppercase letter is reported only when nothing else is wrong: in `Bad Image` the
/// space is what breaks the grammar.
fn check_path(path: &str) -> std::result::Result<(), Fault> {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let mut at = 0;
    for component in path.split('/') {
        let b = component.as_bytes();
        if b.is_empty() {
            return Err(fault(at, "a path component is empty"));
        }
        if !alnum(b[0]) {
            return Err(fault(at, "a path component starts with a letter or digit"));
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            match b[i] {
                b'.' => i += 1,
                b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
                b'-' => {
                    while b.get(i) == Some(&b'-') {
                        i += 1;
                    }
                }
                _ => {
                    return Err(fault(
                        at + i,
                        "a path is lowercase letters, digits and the separators . _ __ -",
                    ))
                }
            }
            if !b.get(i).is_some_and(|&c| alnum(c)) {
                return Err(fault(
                    at + i.min(b.len() - 1),
                    "a separator stands between letters or digits",
                ));
            }
        }
        at += component.len() + 1;
    }
    match path.bytes().position(|b| b.is_ascii_uppercase()) {
        Some(i) => Err(fault(i, "a path is lowercase")),
        None => Ok(()),
    }
}

fn check_tag(tag: &str) -> std::result::Result<(), Fault> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes() {
        [] => Err(fault(0, "the tag after ':' is empty")),
        [first, ..] if !word(*first) => Err(fault(0, "a tag starts with a letter, digit or '_'")),
        b => match b.iter().position(|&c| !(word(c) || c == b'.' || c == b'-')) {
            Some(i) => Err(fault(i, "a tag is letters, digits, '_', '.' and '-'")),
            None if b.len() > 128 => Err(fault(128, "a tag is at most 128 characters")),
            None => Ok(()),
        },
    }
}

fn check_digest(digest: &str) -> std::result::Result<(), Fault> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(fault(
            digest.len(),
            "a digest is algorithm:hex, e.g. sha256:<64 hex digits>",
        ));
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(fault(0, "a digest is sha256, sha384 or sha512")),
    };
    let at = algorithm.len() + 1;
    if let Some(i) = hex
        .bytes()
        .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(fault(at + i, "a digest is lowercase hex digits"));
    }
    if hex.len() != want {
        return Err(fault(
            at + hex.len().min(want),
            format!("a {algorithm} digest is {want} hex digits"),
        ));
    }
    Ok(())
}

/// A name to build an image under, as `docker build -t` takes it: `[registry/]repository[:tag]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `127.0.0.1:5000`, `ghcr.io`, or `docker.io`.
    pub registry: String,
    /// `me/kubectl-ext`.
    pub repository: String,
    pub tag: String,
    /// As the user wrote it (with `:latest` added when no tag was given).
    pub shown: String,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef> {
        let bad = |why: &str| {
            Error::usage(format!("--tag \"{text}\" is not an image name: {why}")).with_hint(
                "use NAME:TAG as with docker build -t, e.g. 127.0.0.1:5000/me/kubectl-ext:1.0",
            )
        };
        let parts = parse(text).map_err(|f| bad(&f.why))?;
        if parts.digest.is_some() {
            return Err(bad("a digest cannot be a build's name"));
        }
        let registry = parts.domain.unwrap_or(DOCKER_HUB).to_string();
        // Docker Hub's official images live under library/.
        let repository = if registry == DOCKER_HUB && !parts.path.contains('/') {
            format!("library/{}", parts.path)
        } else {
            parts.path.to_string()
        };
        let tag = parts.tag.unwrap_or("latest");
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.to_string(),
            shown: format!("{}:{tag}", parts.name),
        })
    }

    /// The host part without a port, for deciding whether plain http is allowed.
    pub fn host(&self) -> &str {
        match self.registry.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.registry,
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_registry_repository_and_tag_as_docker_does() {
        let r = ImageRef::parse("127.0.0.1:5000/me/kubectl-ext:1.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "me/kubectl-ext", "1.0")
        );
        assert_eq!(r.host(), "127.0.0.1");
        let r = ImageRef::parse("me/ext").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("docker.io", "me/ext", "latest")
        );
        assert_eq!(ImageRef::parse("ext:2").unwrap().repository, "library/ext");
        assert_eq!(
            ImageRef::parse("docker.io/ext").unwrap().repository,
            "library/ext"
        );
        assert_eq!(
            ImageRef::parse("localhost/ext").unwrap().registry,
            "localhost"
        );
    }

    #[test]
    fn splits_references_with_tags_digests_and_ports() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let text = format!("localhost:5000/a/b__c-d.e:v1@{digest}");
        let p = parse(&text).unwrap();
        assert_eq!(p.name, "localhost:5000/a/b__c-d.e");
        assert_eq!(p.domain, Some("localhost:5000"));
        assert_eq!(p.path, "a/b__c-d.e");
        assert_eq!(p.tag, Some("v1"));
        assert_eq!(p.digest, Some(digest.as_str()));
        let p = parse("[::1]:5000/img").unwrap();
        assert_eq!((p.domain, p.path, p.tag), (Some("[::1]:5000"), "img", None));
        // A first component with no dot, colon or capital is a path, not a registry.
        assert_eq!(parse("me/ext").unwrap().domain, None);
        assert_eq!(
            parse("Registry.Example.com/img").unwrap().domain,
            Some("Registry.Example.com")
        );
    }

    #[test]
    fn faults_point_at_the_first_bad_character() {
        for (text, at) in [
            ("", 0),
            ("Bad Image!!", 3),
            ("UPPER", 0),
            ("a/Upper", 2),
            ("-img", 0),
            ("a//b", 2),
            ("img:", 4),
            ("img:tag:tag", 3),
            ("img:-x", 4),
            ("img@sha256:abc", 14),
            ("img@md5:00", 4),
            ("img@sha256:ABCD", 11),
            ("a-/b", 1),
            ("host.-x/b", 5),
            ("host:port/b", 5),
            ("a__b___c", 6),
            ("ab.", 2),
        ] {
            assert_eq!(parse(text).unwrap_err().at, at, "{text:?}");
        }
        assert!(parse(&"a".repeat(256)).is_err());
        assert!(parse(&format!("a:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "Me/Ext:1",
            "ext:",
            "ext@sha256:00",
            "ext:-x",
            "a//b:1",
            "ext:a b",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("not an image name"), "{bad}: {e}");
        }
    }
}
