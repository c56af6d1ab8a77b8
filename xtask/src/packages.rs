//! The Debian packages the tests need, installed by `cargo xtask test` itself so that the
//! README's one test command is all the set-up a fresh machine needs: git and make for the
//! fixture, openssh-server for the ssh:// engine tests, podman (with runc, which its test
//! configures: crun refuses hybrid cgroup hosts) for the podman test, openssl and stunnel4
//! (a TLS engine in front of the local one) for the TLS context test, iproute2 (the bridge
//! of the second dockerd the multi-engine tests start), skopeo, umoci, docker-registry and
//! file for the extension image tests, chromium (run headless) for the timings page test,
//! and a host Go for the `--engine host` tests. Debian bookworm's own Go is older than
//! upstream's go1.22 floor, so golang-1.23-go comes from bookworm-backports (added to the
//! apt sources when missing; no other suite is mixed into the host).

use std::path::Path;
use std::process::Command;

use crate::util::{self, run, step, Failure};

/// Where golang-1.23-go puts its go binary; the host-engine tests look there.
pub const HOST_GO_DIR: &str = "/usr/lib/go-1.23/bin";
const PACKAGES: &[&str] = &[
    "git",
    "make",
    "openssh-server",
    "podman",
    "runc",
    "openssl",
    "stunnel4",
    "chromium",
    "iproute2",
];
/// The extension image tests (tests/it/extimage.rs) read the OCI layout with skopeo and
/// umoci, push to Debian's docker-registry (the CNCF distribution server, started by the
/// test on 127.0.0.1) and check the binaries inside with `file`.
const IMAGE_TOOLS: &[&str] = &["skopeo", "umoci", "docker-registry", "file"];

/// Every package the tests need.
fn wanted() -> impl Iterator<Item = &'static str> {
    PACKAGES.iter().chain(IMAGE_TOOLS).copied()
}
const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";

fn installed(package: &str) -> bool {
    util::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Installs what is missing (apt-get update only when something is).
pub fn ensure() -> Result<(), Failure> {
    let missing: Vec<&str> = wanted().filter(|p| !installed(p)).collect();
    let need_go = !Path::new(HOST_GO_DIR).join("go").is_file();
    if missing.is_empty() && !need_go {
        return Ok(());
    }
    if util::effective_uid() != Some(0) {
        let mut what = missing.join(" ");
        if need_go {
            what.push_str(" golang-1.23-go (from bookworm-backports)");
        }
        return Err(Failure::new(format!(
            "the tests need Debian packages that are missing: {what}; run `cargo xtask test` as root once, \
             or install them with sudo apt-get install"
        )));
    }
    if need_go && !backports_configured() {
        step("adding bookworm-backports to the apt sources (for golang-1.23-go)");
        std::fs::write(
            BACKPORTS_SOURCES,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )
        .map_err(|e| Failure::new(format!("cannot write {BACKPORTS_SOURCES}: {e}")))?;
    }
    step("apt-get update");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    if !missing.is_empty() {
        step(&format!("apt-get install {}", missing.join(" ")));
        run(apt_install().args(&missing))?;
    }
    if need_go {
        step("apt-get install -t bookworm-backports golang-1.23-go");
        run(apt_install().args(["-t", "bookworm-backports", "golang-1.23-go"]))?;
    }
    Ok(())
}

fn apt_install() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "-qq", "--no-install-recommends"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

fn backports_configured() -> bool {
    let mut sources = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in entries.flatten() {
            sources.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    sources.iter().any(|s| s.contains("bookworm-backports"))
}

/// The PyPI tools the supply-chain tests validate kbuild's output with: the SPDX validator
/// (`pyspdxtools`) and the in-toto attestation bindings. Pinned, in a venv under target/ so
/// that the system's Python stays as it is; tests/it/attest.rs looks for them there.
pub const PYPI_VENV: &str = "target/attest-venv";
const PYPI_PACKAGES: &[&str] = &["spdx-tools==0.8.5", "in-toto-attestation==0.9.3"];
/// Debian's python3 makes venvs only with python3-venv (it carries ensurepip).
const PYTHON_DEBIAN: &[&str] = &["python3", "python3-venv"];

/// Creates the venv and installs the PyPI packages, unless they are there already.
pub fn ensure_pypi() -> Result<(), Failure> {
    let venv = Path::new(PYPI_VENV);
    let python = venv.join("bin/python");
    let ready = python.is_file()
        && venv.join("bin/pyspdxtools").is_file()
        && util::output(
            Command::new(&python).args(["-c", "import in_toto_attestation.v1.statement"]),
        )
        .is_some();
    if ready {
        return Ok(());
    }
    if !venv.join("bin/pip").is_file() {
        step(&format!("python3 -m venv {PYPI_VENV}"));
        let made = util::output(Command::new("python3").args(["-m", "venv", PYPI_VENV])).is_some();
        if !made {
            let missing: Vec<&str> = PYTHON_DEBIAN
                .iter()
                .copied()
                .filter(|p| !installed(p))
                .collect();
            if missing.is_empty() || util::effective_uid() != Some(0) {
                return Err(Failure::new(format!(
                    "cannot make a Python venv in {PYPI_VENV}; install python3 and python3-venv \
                     (sudo apt-get install {}) and run `cargo xtask test` again",
                    PYTHON_DEBIAN.join(" ")
                )));
            }
            step(&format!("apt-get install {}", missing.join(" ")));
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            run(apt_install().args(&missing))?;
            let _ = std::fs::remove_dir_all(venv);
            run(Command::new("python3").args(["-m", "venv", PYPI_VENV]))?;
        }
    }
    step(&format!(
        "pip install {} (into {PYPI_VENV})",
        PYPI_PACKAGES.join(" ")
    ));
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PYPI_PACKAGES))
}
