//! `--engine host`: the fixture built with this machine's Go and make, no Docker involved.
//! These tests need a Go on the host: .ci/run installs Debian's golang-1.23-go from
//! bookworm-backports. Without one they fail and say how to install it.

use std::path::{Path, PathBuf};

use crate::common::*;

/// The host Go's bin directory and its version (1.23.5).
pub(crate) fn host_go() -> (PathBuf, String) {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    candidates.extend(
        [
            "/usr/lib/go-1.23/bin",
            "/usr/lib/go/bin",
            "/usr/local/go/bin",
        ]
        .map(PathBuf::from),
    );
    for dir in candidates {
        let go = dir.join("go");
        if !go.is_file() {
            continue;
        }
        let out = std::process::Command::new(&go)
            .args(["env", "GOVERSION"])
            .env("GOTOOLCHAIN", "local")
            .output();
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if let Some(version) = text.strip_prefix("go") {
                return (dir, version.to_string());
            }
        }
    }
    panic!(
        "these tests build with the host's Go and found none (PATH, /usr/lib/go-1.23/bin, /usr/local/go/bin); \
install one: on Debian bookworm as root, add bookworm-backports to the apt sources and \
`apt-get install -t bookworm-backports golang-1.23-go` (bash .ci/run does this), or install Go from https://go.dev/dl/"
    );
}

/// PATH with the host Go's directory first.
pub(crate) fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap()
}

/// The fixture, pinned to `go_version` (and go.mod lowered to the host Go's minor when
/// needed), committed and tagged v1.34.0.
pub(crate) fn pinned_repo(go_version: &str, host_minor: &str) -> KubeRepo {
    let repo = KubeRepo::tagged("v1.34.0");
    std::fs::write(repo.path().join(".go-version"), format!("{go_version}\n")).unwrap();
    for go_mod in ["go.mod", "staging/src/k8s.io/component-base/go.mod"] {
        let path = repo.path().join(go_mod);
        let text = std::fs::read_to_string(&path).unwrap();
        let lowered: String = text
            .lines()
            .map(|l| {
                if l.starts_with("go ") {
                    format!("go {host_minor}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, lowered + "\n").unwrap();
    }
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "pin the host Go"]);
    git(
        repo.path(),
        &["tag", "-f", "-a", "v1.34.0", "-m", "v1.34.0"],
    );
    repo
}

pub(crate) fn minor_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[test]
fn host_engine_builds_kubectl_with_the_local_go() {
    let (go_dir, version) = host_go();
    let repo = pinned_repo(&version, &minor_of(&version));
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild()
        .env("PATH", path_with(&go_dir))
        .env("DOCKER_HOST", "unix:///nonexistent/no-docker-needed.sock")
        .args([
            "-v",
            "build",
            "kubectl",
            "--engine",
            "host",
            "--platform",
            "linux/amd64",
        ])
        .arg("--kube-root")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("satisfies .go-version {version}")),
        "{stderr}"
    );
    let kubectl = out.path().join("bin/linux/amd64/kubectl");
    assert!(is_elf_amd64(&header(&kubectl)), "kubectl is ELF x86-64");
    let v = version_json(&kubectl);
    assert_eq!(v["gitVersion"], "v1.34.0");
    assert_eq!(v["gitCommit"], repo.commit());
    assert_eq!(v["gitTreeState"], "clean");
    assert_eq!(v["buildDate"], "2023-11-14T22:13:20Z");
    // The same layout as a container build writes, from upstream's _output/local.
    assert!(repo
        .path()
        .join("_output/local/bin/linux/amd64/kubectl")
        .is_file());
    assert!(out.path().join("logs/kubectl.log").is_file());
}

#[test]
fn host_engine_refuses_a_go_that_does_not_satisfy_go_version() {
    let (go_dir, version) = host_go();
    let repo = pinned_repo("1.99.0", &minor_of(&version));
    let out = tempfile::tempdir().unwrap();
    let build = |force_host_go: bool| {
        let mut cmd = kbuild();
        cmd.env("PATH", path_with(&go_dir))
            .env_remove("FORCE_HOST_GO")
            .args([
                "build",
                "kubectl",
                "--engine",
                "host",
                "--platform",
                "linux/amd64",
            ])
            .arg("--kube-root")
            .arg(repo.path())
            .arg("--out")
            .arg(out.path());
        if force_host_go {
            cmd.env("FORCE_HOST_GO", "1");
        }
        run(&mut cmd)
    };
    let (code, _, stderr) = build(false);
    assert_eq!(code, 3, "a failed check exits 3:\n{stderr}");
    assert!(stderr.contains("check go failed"), "{stderr}");
    assert!(
        stderr.contains(&format!("go{version}")) && stderr.contains(".go-version 1.99.0"),
        "{stderr}"
    );
    assert!(stderr.contains("go1.99.x"), "the rule is stated:\n{stderr}");
    assert!(stderr.contains("FORCE_HOST_GO"), "{stderr}");
    assert!(!out.path().join("bin").exists(), "nothing was built");

    // The doctor says the same.
    let (code, stdout, _) = run(kbuild()
        .env("PATH", path_with(&go_dir))
        .env_remove("FORCE_HOST_GO")
        .args(["doctor", "--engine", "host", "--kube-root"])
        .arg(repo.path()));
    assert_eq!(code, 3, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("FAIL") && l.contains(" go ")),
        "{stdout}"
    );

    // FORCE_HOST_GO: upstream's escape hatch builds anyway, with a warning.
    let (code, _, stderr) = build(true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("FORCE_HOST_GO is set"), "{stderr}");
    assert!(out.path().join("bin/linux/amd64/kubectl").is_file());
}

#[test]
fn host_engine_without_go_says_how_to_get_one() {
    let repo = KubeRepo::tagged("v1.34.0");
    let empty = tempfile::tempdir().unwrap();
    // PATH with git and make but no go.
    let bin = empty.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["git", "make", "bash", "env"] {
        for dir in ["/usr/bin", "/bin"] {
            let src = Path::new(dir).join(tool);
            if src.is_file() && !bin.join(tool).exists() {
                std::os::unix::fs::symlink(&src, bin.join(tool)).unwrap();
            }
        }
    }
    let (code, _, stderr) = run(kbuild()
        .env("PATH", &bin)
        .args(["build", "kubectl", "--engine", "host", "--kube-root"])
        .arg(repo.path())
        .arg("--out")
        .arg(empty.path().join("out")));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no go on PATH"), "{stderr}");
    assert!(stderr.contains("install Go 1.24.4"), "{stderr}");
    assert!(stderr.contains("--engine docker"), "{stderr}");
}
