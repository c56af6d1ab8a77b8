//! Upstream's version rules (hack/lib/version.sh): `git describe` output rewritten to
//! semver, `-dirty` for a dirty tree, gitMajor/gitMinor, and the semver gate.

use crate::error::{Error, Result};

/// The version facts stamped into every binary with `-X` ldflags.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GitVersion {
    pub git_version: String,
    pub git_major: String,
    pub git_minor: String,
}

/// Rewrites `git describe --tags --abbrev=14` output to semver, as upstream does:
/// `v1.1.0-alpha.0-6-g84c76d1142ea4d` -> `v1.1.0-alpha.0.6+84c76d1142ea4d` and
/// `v1.1.0-6-g84c76d1142ea4d` -> `v1.1.0-6+84c76d1142ea4d`; `-dirty` is appended for a dirty tree.
pub fn from_describe(describe: &str, dirty: bool) -> Result<GitVersion> {
    let describe = describe.trim();
    let mut version = match split_distance(describe) {
        Some((base, distance, hash)) if base.contains('-') => format!("{base}.{distance}+{hash}"),
        Some((base, distance, hash)) => format!("{base}-{distance}+{hash}"),
        None => describe.to_string(),
    };
    if dirty {
        version.push_str("-dirty");
    }
    parse(&version)
}

/// Splits `<base>-<n>-g<14 hex>` into its parts; None for an exact tag.
fn split_distance(describe: &str) -> Option<(&str, &str, &str)> {
    let (rest, hash) = describe.rsplit_once("-g")?;
    if hash.len() != 14 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (base, distance) = rest.rsplit_once('-')?;
    if distance.is_empty() || !distance.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, distance, hash))
}

/// Validates a version as upstream's semver gate does and derives gitMajor/gitMinor
/// (gitMinor gets a `+` when a `-` part follows the version core).
pub fn parse(version: &str) -> Result<GitVersion> {
    let invalid = || {
        Error::source(format!(
            "\"{version}\" is not a valid Kubernetes version (semantic version starting with v, like v1.34.2 or v1.35.0-alpha.1)"
        ))
        .with_hint("set it with --version or KUBE_GIT_VERSION, or tag the commit (git tag v1.34.0); see https://semver.org")
    };
    let rest = version.strip_prefix('v').ok_or_else(invalid)?;
    // core is MAJOR.MINOR[.PATCH]; then optional -PRE and +BUILD.
    let core_end = rest.find(['-', '+']).unwrap_or(rest.len());
    let (core, suffix) = rest.split_at(core_end);
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(2..=3).contains(&numbers.len()) || !numbers.iter().all(|n| numeric(n)) {
        return Err(invalid());
    }
    let (pre, build) = match suffix.split_once('+') {
        Some((pre, build)) => (pre, Some(build)),
        None => (suffix, None),
    };
    let ident_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if let Some(pre) = pre.strip_prefix('-') {
        if !ident_ok(pre) {
            return Err(invalid());
        }
    } else if !pre.is_empty() {
        return Err(invalid());
    }
    if let Some(build) = build {
        if !ident_ok(build) {
            return Err(invalid());
        }
    }
    // kube::version::get_version_vars: gitMinor gets a `+` when its regex's `([-].*)?` group,
    // right after MAJOR.MINOR[.PATCH], matches: a pre-release, a distance or -dirty. Build
    // metadata alone (`v1.34.2+custom`, `v1.34.2+custom-dirty`) leaves it bare.
    let mut minor = numbers[1].to_string();
    if suffix.starts_with('-') {
        minor.push('+');
    }
    Ok(GitVersion {
        git_version: version.to_string(),
        git_major: numbers[0].to_string(),
        git_minor: minor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_tag() {
        let v = from_describe("v1.34.2", false).unwrap();
        assert_eq!(v.git_version, "v1.34.2");
        assert_eq!((v.git_major.as_str(), v.git_minor.as_str()), ("1", "34"));
    }

    #[test]
    fn commits_after_a_release_tag() {
        let v = from_describe("v1.1.0-6-g84c76d1142ea4d", false).unwrap();
        assert_eq!(v.git_version, "v1.1.0-6+84c76d1142ea4d");
        assert_eq!(v.git_minor, "1+");
    }

    #[test]
    fn commits_after_a_prerelease_tag() {
        let v = from_describe("v1.1.0-alpha.0-6-g84c76d1142ea4d", false).unwrap();
        assert_eq!(v.git_version, "v1.1.0-alpha.0.6+84c76d1142ea4d");
    }

    #[test]
    fn prerelease_tag_exact() {
        let v = from_describe("v1.35.0-rc.1", false).unwrap();
        assert_eq!(v.git_version, "v1.35.0-rc.1");
        assert_eq!(v.git_minor, "35+");
    }

    #[test]
    fn dirty_tree() {
        let v = from_describe("v1.34.0-3-gabcdefabcdefab", true).unwrap();
        assert_eq!(v.git_version, "v1.34.0-3+abcdefabcdefab-dirty");
        assert_eq!(
            from_describe("v1.34.0", true).unwrap().git_version,
            "v1.34.0-dirty"
        );
    }

    #[test]
    fn minor_gets_a_plus_only_for_a_dash_part_after_the_core() {
        // kube::version::get_version_vars: ^v([0-9]+)\.([0-9]+)(\.[0-9]+)?([-].*)?([+].*)?$,
        // `+` appended when group 4 matched.
        for (version, minor) in [
            ("v1.34.2", "34"),
            ("v1.34.2+custom", "34"),
            ("v1.34.2+custom-dirty", "34"),
            ("v1.34+meta", "34"),
            ("v1.34.2-dirty", "34+"),
            ("v1.34.2-rc.1+meta", "34+"),
            ("v1.34.0-3+abcdefabcdefab", "34+"),
            ("v1.35-alpha.0", "35+"),
        ] {
            assert_eq!(parse(version).unwrap().git_minor, minor, "{version}");
        }
    }

    #[test]
    fn invalid_semver_refused_with_hint() {
        for bad in [
            "1.34.0",
            "v1",
            "vX.Y",
            "v1.2.3.4",
            "v1.2.3-",
            "v1.2.3-a b",
            "release-1.34",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.hint.is_some(), "{bad}");
        }
    }
}
