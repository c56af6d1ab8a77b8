//! A build job's progress in Go packages. `go build -v` prints the import path of every
//! package it compiles (packages taken from the build cache are not printed), one per line;
//! kbuild turns that on through GOFLAGS, counts those lines, takes the total from what the
//! previous run of the same job compiled, and estimates the time left from the rate so far.
//!
//! Pure: no I/O, and times are passed in, so every rule here is unit-tested.

use std::fmt;
use std::time::Duration;

/// How often plain (non-terminal) output prints a progress line by default.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(15);

/// Below this many packages the rate says too little for an estimate.
const MIN_FOR_ETA: u64 = 5;

/// Makes `go build` name the packages it compiles: `-v` in GOFLAGS, keeping what the user
/// set. `-v` goes first because upstream's kube::golang::build_binaries reads `-tags=` out
/// of GOFLAGS with a sed that stops at the next `-`: a `-v` after the tags would leave a
/// trailing space in them. A user's own `-v` or `-v=...` is left alone. It is part of the
/// job's environment (resolve::jobs), so the plan shows it and the fingerprint covers it:
/// every run adds it alike, so it never makes a job look changed.
pub fn name_compiled_packages(env: &mut Vec<(String, String)>) {
    match env.iter_mut().find(|(k, _)| k == "GOFLAGS") {
        Some((_, value)) => {
            let has_v = value
                .split_whitespace()
                .any(|flag| flag == "-v" || flag.starts_with("-v="));
            if !has_v {
                *value = format!("-v {}", value.trim()).trim_end().to_string();
            }
        }
        None => env.push(("GOFLAGS".to_string(), "-v".to_string())),
    }
}

/// Whether a line of build output is `go build -v` naming a package it compiled: an import
/// path alone on its line (cmd/go's rules: elements of letters, digits and `-._~+`, none
/// empty or starting with a dot), or a test variant `path [path.test]`. A single element
/// must be a standard-library name (lower-case letters and digits) or
/// `command-line-arguments`, so that a lone word a script prints (`Done`, `OK`) is not
/// taken for one.
pub fn is_compiled_package(line: &str) -> bool {
    let path = match line.split_once(" [") {
        Some((path, variant)) => match variant.strip_suffix(']') {
            Some(of) if import_path(of) => path,
            _ => return false,
        },
        None => line,
    };
    import_path(path)
        && (path.contains('/')
            || path == "command-line-arguments"
            || path
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn import_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|element| {
            !element.is_empty()
                && !element.starts_with('.')
                && element
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+".contains(&b))
        })
}

/// What earlier runs of a job compiled, kept beside its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// Packages counted.
    pub packages: u64,
    /// Whether that run finished; a run that failed or was stopped counted only part.
    pub complete: bool,
}

impl History {
    /// The total to show for the next run.
    pub fn total(&self) -> Option<u64> {
        (self.packages > 0).then_some(self.packages)
    }

    /// What to keep after a run that counted `counted` packages: a finished run's count
    /// replaces the history; an unfinished run's count is kept only when no finished run
    /// left one (it is then the best estimate there is). A run that compiled nothing
    /// (every package came from the cache) says nothing about the job's size.
    pub fn after(old: Option<History>, counted: u64, finished: bool) -> Option<History> {
        if counted == 0 {
            return old;
        }
        match old {
            Some(old) if old.complete && !finished => Some(old),
            Some(old) if !old.complete && !finished => Some(History {
                packages: old.packages.max(counted),
                complete: false,
            }),
            _ => Some(History {
                packages: counted,
                complete: finished,
            }),
        }
    }
}

/// The count of one running job.
#[derive(Debug, Clone)]
pub struct Tracker {
    done: u64,
    total: Option<u64>,
    /// When the first package came: the time before it went to starting the build, not to
    /// compiling, so the rate is measured from there.
    first: Option<Duration>,
}

impl Tracker {
    pub fn new(total: Option<u64>) -> Tracker {
        Tracker {
            done: 0,
            total,
            first: None,
        }
    }

    /// One more package compiled, `elapsed` after the job started.
    pub fn compiled(&mut self, elapsed: Duration) {
        self.done += 1;
        self.first.get_or_insert(elapsed);
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    /// The state `elapsed` after the job started.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        // More packages than the history said: it was wrong (the job grew, or the cache was
        // warmer last time), so there is no total to show.
        let total = self.total.filter(|t| self.done <= *t);
        // The packages after the first, in the time since the first came.
        let since_first = self.first.map(|first| elapsed.saturating_sub(first));
        Snapshot {
            done: self.done,
            total,
            eta: total
                .zip(since_first)
                .and_then(|(t, span)| eta(self.done.saturating_sub(1), t - 1, span)),
        }
    }
}

/// The time left at the rate so far: `done` packages in `elapsed`, `total - done` to go.
pub fn eta(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    if done < MIN_FOR_ETA || done >= total || elapsed.is_zero() {
        return None;
    }
    let per_package = elapsed.as_secs_f64() / done as f64;
    Some(Duration::from_secs_f64(per_package * (total - done) as f64))
}

/// Progress at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub done: u64,
    pub total: Option<u64>,
    pub eta: Option<Duration>,
}

/// `41/177 Go packages compiled, about 1m12s left`, or `41 Go packages compiled`.
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.total {
            Some(total) => write!(f, "{}/{total} Go packages compiled", self.done)?,
            None if self.done == 1 => write!(f, "1 Go package compiled")?,
            None => write!(f, "{} Go packages compiled", self.done)?,
        }
        if let Some(eta) = self.eta {
            write!(f, ", about {} left", short_duration(eta))?;
        }
        Ok(())
    }
}

/// `45s`, `1m12s`, `2h05m`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goflags(start: Option<&str>) -> String {
        let mut env = vec![(
            "KUBE_BUILD_PLATFORMS".to_string(),
            "linux/amd64".to_string(),
        )];
        if let Some(v) = start {
            env.push(("GOFLAGS".to_string(), v.to_string()));
        }
        name_compiled_packages(&mut env);
        assert_eq!(env.iter().filter(|(k, _)| k == "GOFLAGS").count(), 1);
        env.into_iter().find(|(k, _)| k == "GOFLAGS").unwrap().1
    }

    #[test]
    fn goflags_gets_v_and_keeps_the_users_flags() {
        assert_eq!(goflags(None), "-v");
        assert_eq!(goflags(Some("")), "-v");
        assert_eq!(goflags(Some("-tags=foo")), "-v -tags=foo");
        assert_eq!(goflags(Some("-mod=vendor -race")), "-v -mod=vendor -race");
        assert_eq!(goflags(Some("-race -v")), "-race -v", "already there");
        assert_eq!(goflags(Some("-v=false")), "-v=false", "the user's choice");
    }

    #[test]
    fn go_build_v_lines_are_packages() {
        for line in [
            "runtime",
            "internal/abi",
            "vendor/golang.org/x/net/dns/dnsmessage",
            "k8s.io/kubernetes/cmd/kubectl",
            "k8s.io/component-base/cli",
            "github.com/google/gnostic-models/openapiv2",
            "gopkg.in/yaml.v3",
            "github.com/Azure/go-ansiterm/winterm",
            "command-line-arguments",
            "k8s.io/kubernetes/pkg/util [k8s.io/kubernetes/pkg/util.test]",
        ] {
            assert!(is_compiled_package(line), "{line:?} is a package");
        }
    }

    #[test]
    fn make_and_compiler_lines_are_not_packages() {
        for line in [
            "",
            "+++ [1201 16:06:24] Building go targets for linux/amd64",
            "    k8s.io/kubernetes/cmd/kubectl (static)",
            "/go/src/k8s.io/kubernetes/hack/make-rules/build.sh cmd/kubectl",
            "# k8s.io/kubernetes/cmd/kubectl",
            "cmd/kubectl/main.go:12:2: undefined: foo",
            "make: *** [Makefile:35: all] Error 1",
            "go: downloading github.com/spf13/cobra v1.8.0",
            "signal: killed",
            "Done",
            "OK",
            "./cmd/kubectl",
            "k8s.io//kubernetes",
            "k8s.io/kubernetes/",
            "k8s.io/x [not closed",
            "a b",
        ] {
            assert!(!is_compiled_package(line), "{line:?} is not a package");
        }
    }

    #[test]
    fn the_total_comes_from_the_last_finished_run_else_the_last_count() {
        let finished = |n| History {
            packages: n,
            complete: true,
        };
        let partial = |n| History {
            packages: n,
            complete: false,
        };
        assert_eq!(History::after(None, 177, true), Some(finished(177)));
        assert_eq!(
            History::after(None, 40, false),
            Some(partial(40)),
            "no history: the last run's count"
        );
        assert_eq!(
            History::after(Some(finished(177)), 40, false),
            Some(finished(177)),
            "a stopped run does not replace a finished one"
        );
        assert_eq!(
            History::after(Some(partial(40)), 90, false),
            Some(partial(90))
        );
        assert_eq!(
            History::after(Some(partial(90)), 120, true),
            Some(finished(120))
        );
        assert_eq!(
            History::after(Some(finished(177)), 3, true),
            Some(finished(3)),
            "the same job after a one-file change"
        );
        assert_eq!(
            History::after(Some(finished(177)), 0, true),
            Some(finished(177)),
            "all from the cache: nothing learnt"
        );
        assert_eq!(History::after(None, 0, true), None);
        assert_eq!(finished(0).total(), None);
    }

    #[test]
    fn eta_follows_the_rate_so_far() {
        let s = Duration::from_secs;
        assert_eq!(
            eta(50, 200, s(100)),
            Some(s(300)),
            "2 s a package, 150 to go"
        );
        assert_eq!(eta(4, 200, s(8)), None, "too few to judge");
        assert_eq!(eta(200, 200, s(100)), None, "finished");
        assert_eq!(eta(10, 200, Duration::ZERO), None);
    }

    #[test]
    fn snapshots_read_as_counts_and_totals() {
        let s = Duration::from_secs;
        let mut tracker = Tracker::new(Some(8));
        // The container takes 10 s to start; then a package every 2 s.
        for n in 0..6 {
            tracker.compiled(s(10 + 2 * n));
        }
        let snap = tracker.snapshot(s(20));
        assert_eq!(
            snap.eta,
            Some(s(4)),
            "2 s a package since the first, 2 to go"
        );
        assert_eq!(snap.to_string(), "6/8 Go packages compiled, about 4s left");
        for n in 6..9 {
            tracker.compiled(s(10 + 2 * n));
        }
        let over = tracker.snapshot(Duration::from_secs(20));
        assert_eq!(over.total, None, "more than the history said: no total");
        assert_eq!(over.to_string(), "9 Go packages compiled");
        let mut fresh = Tracker::new(None);
        assert_eq!(fresh.snapshot(s(1)).to_string(), "0 Go packages compiled");
        fresh.compiled(s(2));
        assert_eq!(fresh.snapshot(s(2)).to_string(), "1 Go package compiled");
    }

    #[test]
    fn durations_are_short() {
        let s = Duration::from_secs;
        assert_eq!(short_duration(s(45)), "45s");
        assert_eq!(short_duration(s(72)), "1m12s");
        assert_eq!(short_duration(s(7500)), "2h05m");
    }
}
