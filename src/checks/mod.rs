//! Prerequisite checks: each is a small function giving pass / warn / fail with a detail
//! and, when something is wrong, a hint. `kbuild doctor` shows them all; every build runs the
//! ones it needs before any container is created and stops at the first failure with the
//! same message (`--skip-check NAME` skips one deliberately).
//!
//! Thresholds (README "Checks"): engine memory 2 GiB for a build of some components, 8 GiB for
//! a quick-release (upstream's documented figure; links die with `signal: killed` below it);
//! free disk: fail under 5 GiB / warn under 20 GiB for a build, 20 / 50 GiB for a
//! quick-release (upstream recommends 50 GB). `--min-memory` and `--min-disk` change them.

pub mod go;
pub mod preflight;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::suggest;
use crate::ui::{Mode, Stream, Ui};
use crate::units::human_bytes;

/// Every check, in the order they run, with what it looks at.
pub const NAMES: &[(&str, &str)] = &[
    ("git", "the git CLI, to get and describe the source"),
    (
        "engine",
        "the Docker engine answers (--context, DOCKER_HOST, DOCKER_CONTEXT, config.json)",
    ),
    (
        "memory",
        "memory of the engine (or of this machine for --engine host)",
    ),
    ("cpus", "CPUs of the engine (or of this machine)"),
    (
        "disk",
        "free disk where the source, the outputs and the engine's data are",
    ),
    ("image", "the builder image is present, or can be pulled"),
    (
        "arch",
        "the builder image's architecture matches the engine's",
    ),
    (
        "go",
        "the local Go satisfies the tree's .go-version (--engine host)",
    ),
    ("make", "GNU make on this machine (--engine host)"),
];

/// What the thresholds are sized for (`--for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// `kbuild build` of some components.
    Build,
    /// Every server, node and client binary for several platforms (upstream's quick-release).
    QuickRelease,
}

impl Profile {
    pub fn label(self) -> &'static str {
        match self {
            Profile::Build => "a build",
            Profile::QuickRelease => "a quick-release",
        }
    }
    pub fn default_min_memory(self) -> u64 {
        match self {
            Profile::Build => 2 << 30,
            Profile::QuickRelease => 8 << 30,
        }
    }
    pub fn default_min_disk(self) -> u64 {
        match self {
            Profile::Build => 5 << 30,
            Profile::QuickRelease => 20 << 30,
        }
    }
    pub fn default_warn_disk(self) -> u64 {
        match self {
            Profile::Build => 20 << 30,
            Profile::QuickRelease => 50 << 30,
        }
    }
}

/// The checks' settings, resolved from flags.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    pub profile: Profile,
    pub min_memory: u64,
    pub min_disk: u64,
    pub warn_disk: u64,
    /// Checks skipped with --skip-check.
    pub skip: Vec<String>,
}

impl CheckPlan {
    /// Validates `--skip-check` names and fills in the profile's defaults.
    pub fn new(
        profile: Profile,
        min_memory: Option<u64>,
        min_disk: Option<u64>,
        skip: &[String],
    ) -> Result<CheckPlan> {
        for name in skip {
            if !NAMES.iter().any(|(n, _)| n == name) {
                let valid: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                let mut err = Error::usage(format!("unknown check \"{name}\" in --skip-check"));
                let list = format!("the checks are: {}", valid.join(", "));
                err = match suggest::closest(name, valid.iter().copied()) {
                    Some(close) => err.with_hint(format!("did you mean \"{close}\"? {list}")),
                    None => err.with_hint(list),
                };
                return Err(err);
            }
        }
        let min_disk = min_disk.unwrap_or(profile.default_min_disk());
        Ok(CheckPlan {
            profile,
            min_memory: min_memory.unwrap_or(profile.default_min_memory()),
            min_disk,
            warn_disk: profile.default_warn_disk().max(min_disk),
            skip: skip.to_vec(),
        })
    }

    pub fn skips(&self, name: &str) -> bool {
        self.skip.iter().any(|s| s == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            hint: None,
        }
    }
    pub fn warn(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
    pub fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
    pub fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Skip,
            detail: detail.into(),
            hint: None,
        }
    }

    /// The error a build stops with, the same words the doctor shows.
    pub fn to_error(&self) -> Error {
        let mut err = Error::check(format!("check {} failed: {}", self.name, self.detail));
        let skip = format!("(to go on anyway: --skip-check {})", self.name);
        err = err.with_hint(match &self.hint {
            Some(hint) => format!("{hint} {skip}"),
            None => skip,
        });
        err
    }
}

/// Runs checks one after another: a build stops at the first failure, the doctor collects.
pub struct Checker<'a> {
    pub plan: &'a CheckPlan,
    ui: &'a Ui,
    stop_on_fail: bool,
    pub results: Vec<Check>,
}

impl<'a> Checker<'a> {
    /// For a build: reports warnings, stops at the first failure.
    pub fn for_build(plan: &'a CheckPlan, ui: &'a Ui) -> Checker<'a> {
        Checker {
            plan,
            ui,
            stop_on_fail: true,
            results: Vec::new(),
        }
    }

    /// For `kbuild doctor`: collects every result.
    pub fn for_doctor(plan: &'a CheckPlan, ui: &'a Ui) -> Checker<'a> {
        Checker {
            plan,
            ui,
            stop_on_fail: false,
            results: Vec::new(),
        }
    }

    /// Whether `name` is to be run (not skipped with --skip-check); records the skip.
    pub fn wants(&mut self, name: &'static str) -> bool {
        if self.plan.skips(name) {
            self.results
                .push(Check::skip(name, "skipped with --skip-check"));
            if self.stop_on_fail {
                self.ui
                    .warn(&format!("check {name} skipped (--skip-check {name})"));
            }
            return false;
        }
        true
    }

    /// Records one result; for a build, a failure is returned as the error.
    pub fn record(&mut self, check: Check) -> Result<()> {
        if self.stop_on_fail {
            match check.status {
                Status::Pass => self
                    .ui
                    .detail(&format!("check {}: {}", check.name, check.detail)),
                Status::Skip => {}
                Status::Warn => {
                    let mut text = format!("check {}: {}", check.name, check.detail);
                    if let Some(hint) = &check.hint {
                        text.push_str(&format!(" ({hint})"));
                    }
                    self.ui.warn(&text)
                }
                Status::Fail => {
                    let err = check.to_error();
                    self.results.push(check);
                    return Err(err);
                }
            }
        }
        self.results.push(check);
        Ok(())
    }

    /// Whether this checker collects every result (`kbuild doctor`) rather than stopping.
    pub fn is_for_doctor(&self) -> bool {
        !self.stop_on_fail
    }

    /// Runs `name` unless skipped.
    pub fn run(&mut self, name: &'static str, check: impl FnOnce() -> Check) -> Result<()> {
        if self.wants(name) {
            self.record(check())?;
        }
        Ok(())
    }

    /// One line for the build's log of what was checked.
    pub fn summary(&self) -> String {
        let count = |s: Status| self.results.iter().filter(|c| c.status == s).count();
        let names: Vec<&str> = self.results.iter().map(|c| c.name).collect();
        format!(
            "{} ({} passed, {}, {} skipped)",
            names.join(", "),
            count(Status::Pass),
            crate::ui::count(count(Status::Warn), "warning", "warnings"),
            count(Status::Skip)
        )
    }
}

// ---- the checks ----------------------------------------------------------------------

pub fn git() -> Check {
    match duct::cmd!("git", "--version")
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
    {
        Ok(out) if out.status.success() => Check::pass(
            "git",
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ),
        _ => Check::fail(
            "git",
            "git is not installed or not on PATH",
            "install git (Debian/Ubuntu: apt-get install git; macOS: xcode-select --install)",
        ),
    }
}

/// A connected engine as the checks see it: plain values the caller reads from the engine.
pub struct EngineSeen<'a> {
    pub product: &'a str,
    pub version: &'a str,
    pub os: &'a str,
    /// Go's name for the engine's architecture (amd64, arm64).
    pub arch: &'a str,
    pub endpoint: &'a str,
    /// What chose the endpoint (`--context ci`, `DOCKER_HOST`, ...).
    pub chosen_by: &'a str,
}

/// The engine connection's outcome; `endpoint` is the one tried.
pub fn engine(connected: std::result::Result<&EngineSeen, &Error>, endpoint: &str) -> Check {
    match connected {
        Ok(engine) => Check::pass(
            "engine",
            format!(
                "{} {} ({}, {}) answers at {} (from {})",
                engine.product,
                engine.version,
                engine.os,
                engine.arch,
                engine.endpoint,
                engine.chosen_by
            ),
        ),
        Err(err) => Check::fail(
            "engine",
            // The connection's errors name the endpoint and its source; others get them added.
            if err.message.contains("no Docker engine answers at")
                || err.message.contains("context")
            {
                err.message.clone()
            } else {
                format!("{} (endpoint tried: {endpoint})", err.message)
            },
            err.hint.clone().unwrap_or_else(|| {
                "start Docker, or point DOCKER_HOST (or --context) at a running engine".to_string()
            }),
        ),
    }
}

/// The share of a memory setting an engine reports: the kernel of its VM keeps some.
/// Docker Desktop set to "8 GB" reports about 7.7 GiB (96%), set to 2 GB about 1.9 GiB, and
/// a WSL2 engine with 16 GB reports about 15.3 GiB (95.5%); 94% leaves room for all of them.
const REPORTED_SHARE: f64 = 0.94;
/// Under this share of the threshold the engine is set clearly lower: fail. Between it and
/// [`REPORTED_SHARE`], a setting a little under the threshold: warn.
const WARN_SHARE: f64 = 0.85;

/// Whether an engine reporting `have` bytes is set to at least `need`, a little under it, or
/// clearly under it. Settings are what users choose ("8 GB"); reports are what the engine's
/// kernel sees once its own memory is taken.
fn compare_memory(have: u64, need: u64) -> Status {
    let share = have as f64 / need as f64;
    if share >= REPORTED_SHARE {
        Status::Pass
    } else if share >= WARN_SHARE {
        Status::Warn
    } else {
        Status::Fail
    }
}

/// Memory available to builds against the profile's threshold. `limit` is `--memory`.
pub fn memory(plan: &CheckPlan, have: u64, whose: &str, limit: Option<u64>) -> Check {
    let need = plan.min_memory;
    let why = if plan.profile == Profile::QuickRelease {
        "upstream documents 8 GB for a full build; below it the Go linker is killed (`signal: killed`)"
    } else {
        "linking one large Kubernetes binary takes about 2 GiB"
    };
    if have == 0 {
        return Check::warn(
            "memory",
            format!("{whose} did not say how much memory it has"),
            format!("make sure it has at least {}", human_bytes(need)),
        );
    }
    let fix = if whose.contains("engine") {
        "give Docker more memory (Docker Desktop: Settings > Resources > Memory; colima/lima: restart with more memory), or build fewer components and platforms at once"
    } else {
        "build on a machine with more memory, or build fewer components and platforms at once"
    };
    // What an engine set to exactly the threshold would report, for the messages.
    let floor = (need as f64 * REPORTED_SHARE) as u64;
    match compare_memory(have, need) {
        Status::Fail => {
            return Check::fail(
                "memory",
                format!(
                    "{whose} has {}; {} needs at least {} ({why}); an engine set to {} reports {} or more",
                    human_bytes(have),
                    plan.profile.label(),
                    human_bytes(need),
                    human_bytes(need),
                    human_bytes(floor)
                ),
                format!("{fix}; --min-memory SIZE changes the threshold"),
            )
        }
        Status::Warn => {
            return Check::warn(
                "memory",
                format!(
                    "{whose} has {}, a little under the {} {} needs (an engine set to {} reports {} or more)",
                    human_bytes(have),
                    human_bytes(need),
                    plan.profile.label(),
                    human_bytes(need),
                    human_bytes(floor)
                ),
                format!("the build may be killed for memory: {fix}"),
            )
        }
        Status::Pass | Status::Skip => {}
    }
    // A container limit is exact (a cgroup): no kernel of a VM takes its share.
    if let Some(limit) = limit.filter(|l| *l < need) {
        return Check::fail(
            "memory",
            format!(
                "--memory limits the build container to {}, below the {} {} needs",
                human_bytes(limit),
                human_bytes(need),
                plan.profile.label()
            ),
            "raise or drop --memory (or lower the threshold with --min-memory)",
        );
    }
    let as_set = if have < need {
        format!(
            " (what an engine set to {} reports: its kernel keeps some)",
            human_bytes(need)
        )
    } else {
        String::new()
    };
    Check::pass(
        "memory",
        format!(
            "{whose} has {}{as_set}, enough for {} (>= {})",
            human_bytes(have),
            plan.profile.label(),
            human_bytes(need),
        ),
    )
}

pub fn cpus(have: u64, whose: &str) -> Check {
    match have {
        0 => Check::warn(
            "cpus",
            format!("{whose} did not say how many CPUs it has"),
            "builds use every CPU they get",
        ),
        1 => Check::warn(
            "cpus",
            format!("{whose} has 1 CPU: builds will be slow"),
            "give the engine more CPUs (Docker Desktop: Settings > Resources)",
        ),
        n => Check::pass(
            "cpus",
            format!(
                "{whose} has {}",
                crate::ui::count(n as usize, "CPU", "CPUs")
            ),
        ),
    }
}

/// Free space on the filesystem holding `path` (or its nearest existing parent).
pub fn free_space(path: &Path) -> Option<(u64, u64)> {
    let mut probe = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    loop {
        if probe.exists() {
            let st = rustix::fs::statvfs(&probe).ok()?;
            return Some((st.f_bavail.saturating_mul(st.f_frsize), st.f_fsid));
        }
        if !probe.pop() {
            return None;
        }
    }
}

/// Free disk at each (label, path): the worst status wins; paths on one filesystem are
/// reported together.
pub fn disk(plan: &CheckPlan, places: &[(&str, PathBuf)]) -> Check {
    let mut groups: Vec<(u64, u64, Vec<String>)> = Vec::new(); // (fsid, free, labels)
    let mut unknown = Vec::new();
    for (label, path) in places {
        let text = format!("{label} ({})", path.display());
        match free_space(path) {
            Some((free, fsid)) => match groups.iter_mut().find(|g| g.0 == fsid) {
                Some(group) => group.2.push(text),
                None => groups.push((fsid, free, vec![text])),
            },
            None => unknown.push(text),
        }
    }
    if groups.is_empty() {
        return Check::warn(
            "disk",
            format!("cannot tell the free space of {}", unknown.join(", ")),
            format!("make sure at least {} is free", human_bytes(plan.warn_disk)),
        );
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(_, free, labels)| {
            format!("{} free for {}", human_bytes(*free), labels.join(" and "))
        })
        .collect();
    let least = groups.iter().map(|g| g.1).min().unwrap_or(0);
    let detail = parts.join("; ");
    let fix = "free some space (`docker system df` shows what Docker holds; `kbuild clean` removes kbuild's outputs and caches), or put the source and outputs on a bigger disk (--kube-root/--source-dir, --out)";
    if least < plan.min_disk {
        Check::fail(
            "disk",
            format!(
                "{detail}: {} needs at least {} free (builds die with \"no space left on device\")",
                plan.profile.label(),
                human_bytes(plan.min_disk)
            ),
            format!("{fix}; --min-disk SIZE changes the threshold"),
        )
    } else if least < plan.warn_disk {
        Check::warn(
            "disk",
            format!(
                "{detail}: less than the {} recommended for {}",
                human_bytes(plan.warn_disk),
                plan.profile.label()
            ),
            fix,
        )
    } else {
        Check::pass("disk", detail)
    }
}

/// What the engine (and, when asked, its registry) said of the builder image.
pub enum ImageFound {
    /// On the engine.
    Present {
        id: String,
        os: String,
        arch: Option<String>,
        size: u64,
    },
    /// Not on the engine; the registry was not asked (a build pulls it).
    Absent,
    /// Not on the engine; the registry has it for these architectures.
    Pullable(Vec<String>),
    /// Not on the engine, and the registry refused: what it said.
    Unpullable(String),
    /// Not on the engine, and the registry did not answer within this time.
    RegistrySilent(Duration),
    /// The engine could not say: what went wrong.
    Unreadable(String),
}

/// The builder image check; the image's architecture when known (for a pullable image, the
/// engine's own when the registry has it, as the pull will pick it).
pub fn image(image: &str, found: ImageFound, engine_arch: &str) -> (Check, Option<String>) {
    const PULL_TAKES: &str = "pulling a kube-cross image takes a few minutes the first time";
    const CANNOT_PULL: &str = "check the network and registry access, or load the image (docker load -i FILE) and name it with --image";
    match found {
        ImageFound::Present { id, os, arch, size } => {
            let short = id.trim_start_matches("sha256:");
            let check = Check::pass(
                "image",
                format!(
                    "{image} is present ({}, {os}/{}, {})",
                    &short[..12.min(short.len())],
                    arch.as_deref().unwrap_or_default(),
                    human_bytes(size)
                ),
            );
            (check, arch)
        }
        ImageFound::Absent => (
            Check::warn(
                "image",
                format!("{image} is not on the engine: it will be pulled before the build"),
                PULL_TAKES,
            ),
            None,
        ),
        ImageFound::Pullable(archs) => {
            let arch = archs
                .iter()
                .find(|a| *a == engine_arch)
                .or(archs.first())
                .cloned();
            let listed = match archs.is_empty() {
                true => "one platform".to_string(),
                false => archs.join(", "),
            };
            let check = Check::warn(
                "image",
                format!("{image} is not on the engine; its registry has it ({listed}), so it will be pulled before the build"),
                PULL_TAKES,
            );
            (check, arch)
        }
        ImageFound::Unpullable(why) => (
            Check::fail(
                "image",
                format!("{image} is not on the engine and cannot be pulled: {why}"),
                CANNOT_PULL,
            ),
            None,
        ),
        ImageFound::RegistrySilent(waited) => (
            Check::fail(
                "image",
                format!(
                    "{image} is not on the engine and its registry did not answer within {} seconds",
                    waited.as_secs()
                ),
                CANNOT_PULL,
            ),
            None,
        ),
        ImageFound::Unreadable(why) => (
            Check::fail(
                "image",
                format!("cannot inspect {image}: {why}"),
                "check that the engine is healthy (docker info)",
            ),
            None,
        ),
    }
}

/// The image must run natively on the engine (upstream #74965: exec format error on arm64).
pub fn arch(engine: &EngineSeen, image: &str, image_arch: Option<&str>) -> Check {
    let engine_arch = engine.arch;
    let Some(image_arch) = image_arch.filter(|a| !a.is_empty()) else {
        return Check::skip(
            "arch",
            format!("the architecture of {image} is known once it is pulled"),
        );
    };
    if image_arch == engine_arch {
        return Check::pass(
            "arch",
            format!("{image} is {image_arch}, as the engine ({engine_arch})"),
        );
    }
    let detail = format!(
        "{image} is {image_arch} but the engine is {engine_arch}: it would run under emulation (many times slower) or fail with \"exec format error\""
    );
    let hint = format!(
        "use a builder image for {engine_arch} (kube-cross images are multi-arch: remove the local {image_arch} copy and pull again), or --skip-check arch if the engine emulates {image_arch}"
    );
    if engine.os.contains("Docker Desktop") {
        Check::warn("arch", detail, hint)
    } else {
        Check::fail("arch", detail, hint)
    }
}

pub fn make() -> Check {
    match duct::cmd!("make", "--version")
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or("make").to_string();
            if first.contains("GNU Make") {
                Check::pass("make", first)
            } else {
                Check::warn(
                    "make",
                    format!("{first} is not GNU make"),
                    "install GNU make (macOS: brew install make, then use gmake's directory first on PATH)",
                )
            }
        }
        _ => Check::fail(
            "make",
            "make is not installed or not on PATH",
            "install GNU make (Debian/Ubuntu: apt-get install make; macOS: xcode-select --install)",
        ),
    }
}

/// This machine's memory in bytes (for --engine host).
pub fn host_memory() -> u64 {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("MemTotal:") {
                let kib: u64 = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                return kib * 1024;
            }
        }
    }
    duct::cmd!("sysctl", "-n", "hw.memsize")
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .read()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

pub fn host_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(0)
}

/// Prints the doctor's table (or JSON lines) of `results`.
pub fn print_report(ui: &Ui, header: &str, header_json: serde_json::Value, results: &[Check]) {
    match ui.mode() {
        Mode::Quiet => {}
        Mode::Json => {
            let mut head = serde_json::json!({ "event": "doctor" });
            if let (Some(o), serde_json::Value::Object(f)) = (head.as_object_mut(), header_json) {
                o.extend(f);
            }
            crate::ui::emit(Stream::Out, &head.to_string());
            for check in results {
                let mut line = serde_json::json!({ "event": "check" });
                if let (Some(o), Ok(serde_json::Value::Object(f))) =
                    (line.as_object_mut(), serde_json::to_value(check))
                {
                    o.extend(f);
                }
                crate::ui::emit(Stream::Out, &line.to_string());
            }
        }
        Mode::Plain | Mode::Terminal => {
            crate::ui::emit(Stream::Out, header);
            for check in results {
                crate::ui::emit(
                    Stream::Out,
                    &format!(
                        "  {:<4}  {:<6}  {}",
                        check.status.label(),
                        check.name,
                        check.detail
                    ),
                );
                if let Some(hint) = &check.hint {
                    if check.status >= Status::Warn {
                        crate::ui::emit(Stream::Out, &format!("                hint: {hint}"));
                    }
                }
            }
            let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            crate::ui::emit(
                Stream::Out,
                &format!(
                    "checks: {} (a build skips one with --skip-check NAME)",
                    names.join(", ")
                ),
            );
        }
    }
}

/// Refuses a `--cpus` above the CPUs of the engine that is to run the containers, as Docker
/// would when the container is created: said before anything is made. `have` 0 is an engine
/// that did not say.
pub fn check_cpus_fit(cpus: Option<f64>, have: u64, engine: &str) -> Result<()> {
    match cpus {
        Some(cpus) if have > 0 && cpus > have as f64 => Err(Error::usage(format!(
            "--cpus {cpus} is more than the {} of the engine at {engine}",
            crate::ui::count(have as usize, "CPU", "CPUs")
        ))
        .with_hint(format!(
            "give at most --cpus {have}, or leave --cpus out to let each build use every CPU the engine has"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(profile: Profile) -> CheckPlan {
        CheckPlan::new(profile, None, None, &[]).unwrap()
    }

    #[test]
    fn memory_thresholds_by_profile() {
        let gib = 1u64 << 30;
        assert_eq!(
            memory(&plan(Profile::Build), 4 * gib, "the engine", None).status,
            Status::Pass
        );
        let c = memory(
            &plan(Profile::QuickRelease),
            4 * gib,
            "the Docker engine",
            None,
        );
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("8.0 GiB"), "{}", c.detail);
        assert!(c.hint.unwrap().contains("Docker Desktop"));
        let custom = CheckPlan::new(Profile::Build, Some(16 * gib), None, &[]).unwrap();
        assert_eq!(memory(&custom, 8 * gib, "x", None).status, Status::Fail);
        assert_eq!(
            memory(&plan(Profile::Build), 8 * gib, "x", Some(gib)).status,
            Status::Fail,
            "a --memory limit under the threshold fails"
        );
    }

    fn gib(tenths: u64) -> u64 {
        (tenths << 30) / 10
    }

    #[test]
    fn an_engine_set_to_8_gb_passes_a_quick_release() {
        let qr = plan(Profile::QuickRelease);
        // Docker Desktop set to "8 GB" reports about 7.7 GiB.
        for have in [gib(76), gib(78), gib(80)] {
            let c = memory(&qr, have, "the Docker engine", None);
            assert_eq!(
                c.status,
                Status::Pass,
                "{}: {}",
                human_bytes(have),
                c.detail
            );
            assert!(c.detail.contains(&human_bytes(have)), "{}", c.detail);
        }
        assert!(memory(&qr, gib(76), "the Docker engine", None)
            .detail
            .contains("set to 8.0 GiB reports"));
    }

    #[test]
    fn a_little_under_warns_and_clearly_under_fails_with_the_figures() {
        let qr = plan(Profile::QuickRelease);
        let warn = memory(&qr, gib(72), "the Docker engine", None);
        assert_eq!(warn.status, Status::Warn, "{}", warn.detail);
        assert!(
            warn.detail.contains("7.2 GiB") && warn.detail.contains("8.0 GiB"),
            "{}",
            warn.detail
        );
        let fail = memory(&qr, gib(60), "the Docker engine", None);
        assert_eq!(fail.status, Status::Fail, "{}", fail.detail);
        assert!(
            fail.detail.contains("6.0 GiB") && fail.detail.contains("7.5 GiB or more"),
            "{}",
            fail.detail
        );
    }

    #[test]
    fn two_gib_builds() {
        let build = plan(Profile::Build);
        assert_eq!(memory(&build, gib(19), "e", None).status, Status::Pass);
        assert_eq!(memory(&build, gib(20), "e", None).status, Status::Pass);
        assert_eq!(memory(&build, gib(18), "e", None).status, Status::Warn);
        assert_eq!(memory(&build, gib(15), "e", None).status, Status::Fail);
        // A container limit is exact: 1.9 GiB of --memory is under 2 GiB.
        assert_eq!(
            memory(&build, gib(80), "e", Some(gib(19))).status,
            Status::Fail
        );
    }

    #[test]
    fn unknown_skip_names_are_refused_with_a_suggestion() {
        let err = CheckPlan::new(Profile::Build, None, None, &["memroy".into()]).unwrap_err();
        assert!(err.hint.unwrap().contains("did you mean \"memory\""));
        assert!(CheckPlan::new(Profile::Build, None, None, &["arch".into()]).is_ok());
    }

    #[test]
    fn disk_groups_paths_on_one_filesystem() {
        let tmp = std::env::temp_dir();
        let c = disk(
            &CheckPlan::new(Profile::Build, None, Some(1), &[]).unwrap(),
            &[
                ("the source", tmp.clone()),
                ("the outputs", tmp.join("not/yet/there")),
            ],
        );
        assert_ne!(c.status, Status::Fail, "{}", c.detail);
        assert_eq!(c.detail.matches("free for").count(), 1, "{}", c.detail);
        let huge = CheckPlan::new(Profile::Build, None, Some(1 << 60), &[]).unwrap();
        assert_eq!(disk(&huge, &[("the source", tmp)]).status, Status::Fail);
    }

    fn engine_on(os: &'static str) -> EngineSeen<'static> {
        EngineSeen {
            product: "Docker",
            version: "28.0",
            os,
            arch: "arm64",
            endpoint: "unix:///var/run/docker.sock",
            chosen_by: "the default socket",
        }
    }

    #[test]
    fn a_pullable_image_takes_the_engines_architecture_when_the_registry_has_it() {
        let archs = vec!["amd64".to_string(), "arm64".to_string()];
        let (c, arch) = image("kube-cross:v1", ImageFound::Pullable(archs), "arm64");
        assert_eq!(c.status, Status::Warn, "{}", c.detail);
        assert!(c.detail.contains("(amd64, arm64)"), "{}", c.detail);
        assert_eq!(arch.as_deref(), Some("arm64"));
        let (_, arch) = image(
            "kube-cross:v1",
            ImageFound::Pullable(vec!["amd64".into()]),
            "arm64",
        );
        assert_eq!(arch.as_deref(), Some("amd64"), "else the only one it has");
    }

    #[test]
    fn an_image_that_cannot_be_had_fails_naming_it_and_the_wait() {
        let (c, arch) = image(
            "kube-cross:v1",
            ImageFound::RegistrySilent(Duration::from_secs(15)),
            "amd64",
        );
        assert_eq!((c.status, arch), (Status::Fail, None));
        assert!(c.detail.contains("kube-cross:v1"), "{}", c.detail);
        assert!(c.detail.contains("within 15 seconds"), "{}", c.detail);
        assert!(c.hint.unwrap().contains("--image"));
        let (c, _) = image("kube-cross:v1", ImageFound::Absent, "amd64");
        assert_eq!(c.status, Status::Warn, "a build pulls it: {}", c.detail);
    }

    #[test]
    fn a_present_image_shows_its_short_id_and_platform() {
        let found = ImageFound::Present {
            id: format!("sha256:{}", "ab".repeat(32)),
            os: "linux".into(),
            arch: Some("arm64".into()),
            size: 3 << 30,
        };
        let (c, arch) = image("kube-cross:v1", found, "arm64");
        assert_eq!(c.status, Status::Pass);
        assert!(
            c.detail.contains("(abababababab, linux/arm64, 3.0 GiB)"),
            "{}",
            c.detail
        );
        assert_eq!(arch.as_deref(), Some("arm64"));
    }

    #[test]
    fn a_foreign_image_fails_except_where_the_engine_emulates() {
        let linux = engine_on("Debian GNU/Linux 13 (trixie)");
        assert_eq!(arch(&linux, "i", Some("arm64")).status, Status::Pass);
        let c = arch(&linux, "i", Some("amd64"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("exec format error"), "{}", c.detail);
        let desktop = engine_on("Docker Desktop");
        assert_eq!(arch(&desktop, "i", Some("amd64")).status, Status::Warn);
        assert_eq!(arch(&linux, "i", None).status, Status::Skip);
    }

    #[test]
    fn an_engine_that_does_not_answer_is_named_with_the_endpoint_tried() {
        let err = Error::engine("connection refused");
        let c = engine(Err(&err), "tcp://10.0.0.9:2375");
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("(endpoint tried: tcp://10.0.0.9:2375)"),
            "{}",
            c.detail
        );
        assert!(c.hint.unwrap().contains("start Docker"));
        let c = engine(Ok(&engine_on("Docker Desktop")), "unused");
        assert_eq!(c.status, Status::Pass);
        assert!(
            c.detail
                .contains("answers at unix:///var/run/docker.sock (from the default socket)"),
            "{}",
            c.detail
        );
    }
}
