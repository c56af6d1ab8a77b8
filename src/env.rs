//! The process environment, read once when kbuild starts. The resolver turns the variables
//! that choose what runs (KUBE_BUILD_PLATFORMS, KUBE_GIT_VERSION, DOCKER_HOST, GOFLAGS, ...)
//! into the plan; the few that only shape the process itself (TERM, NO_COLOR, PATH, HOME) are
//! read from the same snapshot. Nothing else in kbuild reads `std::env`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::OnceLock;

/// The environment as it was when the snapshot was taken.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
}

static SNAPSHOT: OnceLock<Env> = OnceLock::new();

impl Env {
    /// Reads the whole environment once.
    fn capture() -> Env {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    /// A snapshot made of the given pairs (tests, and plans replayed elsewhere).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
        }
    }

    /// The value of `name` as text, or None when unset, empty or not UTF-8 (as shells and
    /// the docker CLI treat an empty variable: unset).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(std::ffi::OsStr::new(name))
            .and_then(|v| v.to_str())
            .filter(|v| !v.is_empty())
    }

    /// Like `get`, but a value of only blanks also counts as unset.
    pub fn non_blank(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// The raw value, for paths that need not be UTF-8 (PATH, HOME).
    pub fn os(&self, name: &str) -> Option<&OsString> {
        self.vars
            .get(std::ffi::OsStr::new(name))
            .filter(|v| !v.is_empty())
    }

    /// Whether `name` is set at all (even to an empty value).
    pub fn is_set(&self, name: &str) -> bool {
        self.vars.contains_key(std::ffi::OsStr::new(name))
    }
}

/// The snapshot taken at start (taken now if nothing took it yet).
pub fn current() -> &'static Env {
    SNAPSHOT.get_or_init(Env::capture)
}

/// The user's cache directory: XDG_CACHE_HOME, ~/Library/Caches on macOS, else ~/.cache.
pub fn cache_home() -> Option<std::path::PathBuf> {
    if let Some(xdg) = current()
        .os("XDG_CACHE_HOME")
        .cloned()
        .map(std::path::PathBuf::from)
    {
        if xdg.is_absolute() {
            return Some(xdg);
        }
    }
    let home = current()
        .os("HOME")
        .cloned()
        .map(std::path::PathBuf::from)
        .filter(|h| h.is_absolute())?;
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Caches")
    } else {
        home.join(".cache")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_values_count_as_unset() {
        let env = Env::from_pairs(&[("A", ""), ("B", "  "), ("C", "x")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), Some("  "));
        assert_eq!(env.non_blank("B"), None);
        assert_eq!(env.get("C"), Some("x"));
        assert!(env.is_set("A"));
        assert!(!env.is_set("D"));
    }
}
