//! An image reference as `docker build -t` takes it: `[registry/]repository[:tag]`.
//! Docker's rule (distribution/reference `splitDockerDomain`): the first path component is
//! a registry when it holds a `.` or a `:`, or is `localhost`; otherwise the image is on
//! Docker Hub (`docker.io`, with `library/` before a one-component name).

use crate::error::{Error, Result};

pub const DOCKER_HUB: &str = "docker.io";

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
        if text.contains('@') {
            return Err(bad("a digest cannot be a build's name"));
        }
        let last_slash = text.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match text[last_slash..].rfind(':') {
            Some(i) => (&text[..last_slash + i], &text[last_slash + i + 1..]),
            None => (text, "latest"),
        };
        // Tag grammar: [\w][\w.-]{0,127}.
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !tag_ok {
            return Err(bad(
                "the tag must be letters, digits, '_', '.' or '-' (at most 128)",
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ if !name.contains('/') => (DOCKER_HUB.to_string(), format!("library/{name}")),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if registry.is_empty() || !repository.split('/').all(component_ok) {
            return Err(bad(
                "repository names are lowercase letters, digits and '.', '_' or '-' between '/'",
            ));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.to_string(),
            shown: format!("{name}:{tag}"),
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
            ImageRef::parse("localhost/ext").unwrap().registry,
            "localhost"
        );
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
