//! The host engine (`--engine host`): the same `make all WHAT=... KUBE_BUILD_PLATFORMS=...`
//! run with this machine's Go and make (through duct), for machines without Docker. It
//! writes `_output/local` in the tree (upstream's default) and kbuild installs the binaries
//! under `<out>/bin/<os>/<arch>/` as for container builds.
//!
//! Go: upstream (hack/lib/golang.sh verify_go_version) sets GOTOOLCHAIN=go${GO_VERSION} and
//! downloads the pinned `.go-version` unless FORCE_HOST_GO is set. kbuild never downloads, so
//! it builds with GOTOOLCHAIN=local and requires the local go to *satisfy* the pin: the same
//! major.minor and a patch at least the pin's (go1.24.6 satisfies 1.24.4; go1.23.5 does not),
//! on top of upstream's floor (go1.22) and go.mod's `go` line. With FORCE_HOST_GO set a
//! mismatch is a warning, as upstream's escape hatch intends.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::outdir::joblog::JobLog;
use crate::plan::Job;
use crate::signals::Interrupt;
use crate::ui::Ui;

/// Upstream's floor (hack/lib/golang.sh minimum_go_version).
pub const MINIMUM_GO: (u32, u32) = (1, 22);

/// A Go version as `go env GOVERSION` prints it: go1.24.4, go1.25rc1, devel ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    /// None for a release candidate or beta (go1.25rc1): it is below every patch release.
    pub patch: Option<u32>,
    pub text: String,
}

impl GoVersion {
    /// Parses `go1.24.4`, `1.24.4`, `1.24`, `go1.25rc1`.
    pub fn parse(text: &str) -> Option<GoVersion> {
        let t = text.trim();
        let t = t.split_whitespace().next().unwrap_or(t);
        let bare = t.strip_prefix("go").unwrap_or(t);
        let mut parts = bare.splitn(3, '.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor_text = parts.next()?;
        let digits_end = minor_text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(minor_text.len());
        let minor: u32 = minor_text[..digits_end].parse().ok()?;
        let pre_release = digits_end < minor_text.len();
        let patch = if pre_release {
            None
        } else {
            match parts.next() {
                Some(p) => Some(p.parse().ok()?),
                None => Some(0),
            }
        };
        Some(GoVersion {
            major,
            minor,
            patch,
            text: format!("go{bare}"),
        })
    }

    /// Whether this version is at least `other` (a pre-release sorts below .0).
    pub fn at_least(&self, other: &GoVersion) -> bool {
        let key = |v: &GoVersion| (v.major, v.minor, v.patch.map(|p| p as i64).unwrap_or(-1));
        key(self) >= key(other)
    }

    /// kbuild's rule for the pin: same major.minor, patch >= the pin's.
    pub fn satisfies_pin(&self, pin: &GoVersion) -> bool {
        self.major == pin.major && self.minor == pin.minor && self.at_least(pin)
    }
}

/// The `go` the build would use: the first on PATH.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = crate::env::current().os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The local Go's version, asked without letting it switch toolchains.
pub fn local_go() -> Option<(PathBuf, String)> {
    let go = find_on_path("go")?;
    let out = duct::cmd(&go, ["env", "GOVERSION"])
        .dir(std::env::temp_dir())
        .env("GOTOOLCHAIN", "local")
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some((go, text))
}

/// The `go` line of a go.mod: the oldest Go that builds the module.
pub fn go_mod_minimum(root: &Path) -> Option<GoVersion> {
    let text = std::fs::read_to_string(root.join("go.mod")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("go "))
        .and_then(GoVersion::parse)
}

/// Where to get Go `pin` for the machine `host`: go.dev/dl's file for its os and arch.
pub fn install_hint(pin: Option<&str>, host: crate::kube::Platform) -> String {
    let Some(pin) = pin else {
        return "install Go (https://go.dev/dl/) and put its bin directory first on PATH"
            .to_string();
    };
    // go.dev/dl names: go1.24.4.darwin-arm64.pkg, go1.24.4.windows-amd64.msi,
    // go1.24.4.linux-armv6l.tar.gz (32-bit arm), go1.24.4.linux-amd64.tar.gz.
    let arch = match (host.os, host.arch) {
        ("linux", "arm") => "armv6l",
        (_, arch) => arch,
    };
    let kind = match host.os {
        "darwin" => "pkg",
        "windows" => "msi",
        _ => "tar.gz",
    };
    let manager = match host.os {
        "darwin" => "Homebrew",
        _ => "your package manager",
    };
    format!(
        "install Go {pin} (https://go.dev/dl/go{pin}.{}-{arch}.{kind}, or {manager} if it has {pin}) and put its bin directory first on PATH",
        host.os
    )
}

/// Builds with the local toolchain.
pub struct HostEngine {
    pub go: PathBuf,
    pub go_version: String,
}

impl HostEngine {
    /// Finds the local go (the checks have vetted it).
    pub fn detect() -> Result<HostEngine> {
        let (go, go_version) = local_go().ok_or_else(|| {
            Error::check("no go on PATH: the host engine builds with the local Go").with_hint(
                "install Go and put it first on PATH, or build in a container (--engine docker)",
            )
        })?;
        Ok(HostEngine { go, go_version })
    }

    /// Runs the job's make in its working directory with the job's variables over the user's
    /// environment, streaming its output to the log and the UI. make runs in a process group
    /// of its own, so that a stall or Ctrl-C stops every process it started.
    pub async fn run(
        &self,
        job: &Job,
        stall_timeout: Option<Duration>,
        log: &mut JobLog,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<()> {
        let root = Path::new(&job.workdir);
        let mut expr = duct::cmd(&job.command[0], &job.command[1..])
            .dir(root)
            .stderr_to_stdout()
            .unchecked();
        for pair in &job.env {
            if let Some((key, value)) = pair.split_once('=') {
                expr = expr.env(key, value);
            }
        }
        let expr = expr.before_spawn(|cmd| {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            Ok(())
        });
        let reader = Arc::new(expr.reader().map_err(|e| {
            Error::build(format!("cannot start make in {}: {e}", root.display()))
                .with_hint("install GNU make and make sure it is on PATH")
        })?);
        let group = reader.pids().first().copied();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<Vec<u8>>>();
        let pipe = reader.clone();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(&*pipe);
            loop {
                let mut line = Vec::new();
                match lines.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if tx.send(Ok(line)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        let stop = |reason: Error| {
            if let Some(pid) = group {
                kill_group(pid);
            }
            let _ = reader.kill();
            reason
        };
        loop {
            let next = async {
                match stall_timeout {
                    Some(limit) => tokio::time::timeout(limit, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            let item = tokio::select! {
                item = next => item,
                e = interrupt.wait() => return Err(stop(e)),
            };
            let Some(item) = item else {
                let limit = stall_timeout.unwrap_or_default().as_secs();
                return Err(stop(
                    Error::build(format!(
                        "the build of {} printed nothing for {limit}s and was stopped",
                        job.name
                    ))
                    .with_hint(format!(
                        "the full log is {}; raise --stall-timeout if the build is just slow",
                        log.path().display()
                    ))
                    .with_details(log.tail()),
                ));
            };
            let Some(line) = item else { break };
            let line =
                line.map_err(|e| stop(Error::build(format!("cannot read make's output: {e}"))))?;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            log.line(text)?;
            ui.build_line(&job.name, text);
        }
        log.flush()?;
        // The pipe closed: make has exited (the reader waited for it at EOF).
        let status = loop {
            match reader.try_wait() {
                Ok(Some(output)) => break output.status,
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return Err(Error::build(format!("cannot wait for make: {e}"))),
            }
        };
        if status.success() {
            return Ok(());
        }
        let code = status
            .code()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "a signal".to_string());
        let mut err = Error::build(format!(
            "make failed with exit code {code} while building {} with the local {}",
            job.name, self.go_version
        ))
        .with_hint(format!("the whole log is {}", log.path().display()))
        .with_details(log.tail());
        if log.tail().iter().any(|l| l.contains("signal: killed")) {
            err = err.with_hint(format!(
                "a compiler or linker was killed, most likely for lack of memory: build fewer components or platforms at once; the whole log is {}",
                log.path().display()
            ));
        }
        Err(err)
    }
}

/// SIGTERM to make's process group, then SIGKILL after a moment.
fn kill_group(pid: u32) {
    use rustix::process::{kill_process_group, Pid, Signal};
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return;
    };
    let _ = kill_process_group(pid, Signal::TERM);
    std::thread::sleep(Duration::from_millis(300));
    let _ = kill_process_group(pid, Signal::KILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> GoVersion {
        GoVersion::parse(text).unwrap()
    }

    #[test]
    fn the_go_download_hint_fits_the_machine() {
        let hint = |p: &str| install_hint(Some("1.24.4"), crate::kube::Platform::parse(p).unwrap());
        assert!(hint("darwin/arm64").contains("https://go.dev/dl/go1.24.4.darwin-arm64.pkg"));
        assert!(hint("darwin/amd64").contains("https://go.dev/dl/go1.24.4.darwin-amd64.pkg"));
        assert!(hint("linux/amd64").contains("https://go.dev/dl/go1.24.4.linux-amd64.tar.gz"));
        assert!(hint("linux/arm64").contains("https://go.dev/dl/go1.24.4.linux-arm64.tar.gz"));
        assert!(hint("linux/arm").contains("go1.24.4.linux-armv6l.tar.gz"));
        assert!(hint("windows/amd64").contains("go1.24.4.windows-amd64.msi"));
        assert!(!install_hint(None, crate::kube::Platform::host()).contains("linux-amd64"));
    }

    #[test]
    fn parses_go_versions() {
        assert_eq!(v("go1.24.4").patch, Some(4));
        assert_eq!(v("1.24").patch, Some(0));
        assert_eq!(v("go1.25rc1").patch, None);
        assert_eq!(v("go1.23.5 X:nocoverageredesign").minor, 23);
        assert!(GoVersion::parse("devel +abc").is_none());
    }

    #[test]
    fn pin_rule_same_minor_patch_at_least() {
        let pin = v("1.24.4");
        assert!(v("go1.24.4").satisfies_pin(&pin));
        assert!(v("go1.24.9").satisfies_pin(&pin));
        assert!(!v("go1.24.3").satisfies_pin(&pin));
        assert!(
            !v("go1.25.0").satisfies_pin(&pin),
            "another minor is another toolchain"
        );
        assert!(!v("go1.23.5").satisfies_pin(&pin));
        assert!(!v("go1.24rc1").satisfies_pin(&pin));
        assert!(v("go1.24.0").at_least(&v("1.24")));
        assert!(!v("go1.24rc2").at_least(&v("1.24")));
    }
}
