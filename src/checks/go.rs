//! The `go` check of host builds: the local Go against `.go-version`, go.mod and
//! upstream's floor (hack/lib/golang.sh `kube::golang::verify_go_version`).

use std::path::Path;

use super::Check;
use crate::engine::host::{go_mod_minimum, install_hint, local_go, GoVersion, MINIMUM_GO};

/// The `go` check: the local Go against `.go-version`, go.mod and upstream's floor.
pub fn check(pin: Option<&str>, root: Option<&Path>) -> Check {
    let force = crate::env::current().get("FORCE_HOST_GO").is_some();
    let install = install_hint(pin, crate::kube::Platform::host());
    let Some((path, text)) = local_go() else {
        return Check::fail(
            "go",
            "no go on PATH: the host engine builds with the local Go",
            format!("{install}; or build in a container (--engine docker)"),
        );
    };
    let where_ = format!("{text} ({})", path.display());
    if text.starts_with("devel") {
        return Check::warn(
            "go",
            format!("{where_} is a development build: its version cannot be checked against .go-version"),
            "use a released Go for reproducible builds",
        );
    }
    let Some(have) = GoVersion::parse(&text) else {
        return Check::warn(
            "go",
            format!("cannot read the version of {where_}"),
            install,
        );
    };
    let floor = GoVersion {
        major: MINIMUM_GO.0,
        minor: MINIMUM_GO.1,
        patch: Some(0),
        text: "go1.22".into(),
    };
    if !have.at_least(&floor) {
        return Check::fail(
            "go",
            format!("{where_} is too old: Kubernetes requires go1.22 or greater"),
            install,
        );
    }
    if let Some(min) = root.and_then(go_mod_minimum) {
        if !have.at_least(&min) {
            return Check::fail(
                "go",
                format!(
                    "{where_} is older than the go {} that go.mod requires (GOTOOLCHAIN=local: it cannot switch)",
                    min.text.trim_start_matches("go")
                ),
                install,
            );
        }
    }
    let Some(pin_text) = pin else {
        return Check::warn(
            "go",
            format!("{where_}; the tree has no .go-version to check it against"),
            "upstream trees pin their Go in .go-version",
        );
    };
    let Some(want) = GoVersion::parse(pin_text) else {
        return Check::warn(
            "go",
            format!("{where_}; .go-version says \"{pin_text}\", which is not a Go version"),
            "fix .go-version",
        );
    };
    if have.satisfies_pin(&want) {
        return Check::pass(
            "go",
            format!(
                "{where_} satisfies .go-version {pin_text} (go{}.{}.x with x >= {})",
                want.major,
                want.minor,
                want.patch.unwrap_or(0)
            ),
        );
    }
    let detail = format!(
        "{where_} does not satisfy .go-version {pin_text}: kbuild needs go{}.{}.x with x >= {} (upstream would download go{pin_text}; kbuild never downloads)",
        want.major,
        want.minor,
        want.patch.unwrap_or(0)
    );
    if force {
        Check::warn(
            "go",
            format!("{detail}; FORCE_HOST_GO is set, so it builds with {text} anyway"),
            "binaries built with another Go than the pinned one may differ from upstream's",
        )
    } else {
        Check::fail(
            "go",
            detail,
            format!("{install}; or set FORCE_HOST_GO=1 to build with {text} anyway (upstream's escape hatch); or build in a container (--engine docker)"),
        )
    }
}
