//! Platforms (`os/arch`) and upstream's supported lists (hack/lib/golang.sh).

use std::fmt;

use crate::error::{Error, Result};

/// An `os/arch` pair that upstream builds for at least one target set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: &'static str,
    pub arch: &'static str,
}

const fn p(os: &'static str, arch: &'static str) -> Platform {
    Platform { os, arch }
}

/// KUBE_SUPPORTED_SERVER_PLATFORMS.
pub const SERVER: &[Platform] = &[
    p("linux", "amd64"),
    p("linux", "arm64"),
    p("linux", "s390x"),
    p("linux", "ppc64le"),
];

/// KUBE_SUPPORTED_NODE_PLATFORMS: the server platforms and windows/amd64.
pub const NODE: &[Platform] = &[
    p("linux", "amd64"),
    p("linux", "arm64"),
    p("linux", "s390x"),
    p("linux", "ppc64le"),
    p("windows", "amd64"),
];

/// KUBE_SUPPORTED_CLIENT_PLATFORMS.
pub const CLIENT: &[Platform] = &[
    p("linux", "amd64"),
    p("linux", "386"),
    p("linux", "arm"),
    p("linux", "arm64"),
    p("linux", "s390x"),
    p("linux", "ppc64le"),
    p("darwin", "amd64"),
    p("darwin", "arm64"),
    p("windows", "amd64"),
    p("windows", "386"),
    p("windows", "arm64"),
];

/// KUBE_SUPPORTED_TEST_PLATFORMS: the platforms kube::golang::test_targets build for
/// (the server-only test targets build for `SERVER`).
pub const TEST: &[Platform] = &[
    p("linux", "amd64"),
    p("linux", "arm64"),
    p("linux", "s390x"),
    p("linux", "ppc64le"),
    p("darwin", "amd64"),
    p("darwin", "arm64"),
    p("windows", "amd64"),
    p("windows", "arm64"),
];

impl Platform {
    /// Every platform any target set supports, in upstream's client order.
    pub fn all() -> &'static [Platform] {
        CLIENT
    }

    /// Parses `os/arch` against the union of upstream's lists. Unknown pairs are refused
    /// with the list of valid ones: upstream silently drops them, kbuild never does.
    pub fn parse(text: &str) -> Result<Platform> {
        let trimmed = text.trim();
        let found = Self::all()
            .iter()
            .find(|p| format!("{}/{}", p.os, p.arch) == trimmed);
        found.copied().ok_or_else(|| {
            Error::usage(format!("unknown platform \"{trimmed}\""))
                .with_hint(format!("valid platforms are: {}", list(Self::all())))
        })
    }

    /// The platform Go calls the machine kbuild runs on, where upstream supports it.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            "x86" => "386",
            "s390x" => "s390x",
            "powerpc64" => "ppc64le",
            "arm" => "arm",
            _ => "amd64",
        };
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            "windows" => "windows",
            _ => "linux",
        };
        Self::all()
            .iter()
            .copied()
            .find(|p| p.os == os && p.arch == arch)
            .unwrap_or(p("linux", "amd64"))
    }

    /// Upstream's KUBE_FASTBUILD platform: linux on the host's arch (amd64 fallback).
    pub fn fastbuild() -> Platform {
        let host = Self::host();
        SERVER
            .iter()
            .copied()
            .find(|p| p.arch == host.arch)
            .unwrap_or(p("linux", "amd64"))
    }

    /// `.exe` on windows, nothing elsewhere.
    pub fn exe_suffix(&self) -> &'static str {
        if self.os == "windows" {
            ".exe"
        } else {
            ""
        }
    }

    /// `os-arch`, as release tarball names use it.
    pub fn dashed(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }

    /// The name of the part of job `base` that builds this platform alone (several engines
    /// split a job per platform): `quick-release-server+node+client-linux-arm64`.
    pub fn job_name(&self, base: &str) -> String {
        format!("{base}-{}", self.dashed())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `a, b, c` for messages.
pub fn list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_platforms() {
        let p = Platform::parse("darwin/arm64").unwrap();
        assert_eq!((p.os, p.arch), ("darwin", "arm64"));
        assert_eq!(
            Platform::parse(" windows/amd64 ").unwrap().exe_suffix(),
            ".exe"
        );
    }

    #[test]
    fn refuses_unknown_platform_and_lists_valid_ones() {
        let err = Platform::parse("linux/amd65").unwrap_err();
        assert!(err.message.contains("linux/amd65"));
        let hint = err.hint.unwrap();
        assert!(
            hint.contains("linux/amd64") && hint.contains("windows/arm64"),
            "{hint}"
        );
        assert!(Platform::parse("freebsd/amd64").is_err());
        assert!(Platform::parse("linux").is_err());
    }

    #[test]
    fn node_is_server_plus_windows_amd64() {
        for s in SERVER {
            assert!(NODE.contains(s));
        }
        assert!(NODE.contains(&Platform::parse("windows/amd64").unwrap()));
        assert_eq!(NODE.len(), SERVER.len() + 1);
    }

    #[test]
    fn every_set_is_within_client_union() {
        for set in [SERVER, NODE, TEST] {
            for p in set {
                assert!(CLIENT.contains(p), "{p} missing from the union");
            }
        }
    }
}
