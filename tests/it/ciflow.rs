//! The CI workflow of docs/release-sets.md (release.yml), its kbuild commands run as written against
//! mini-kube: a build job per matrix platform in a fresh checkout, whose `bin/` is the
//! artifact, then a package job in another fresh checkout into which the artifacts were
//! downloaded. Only the CI-only steps (checkout, upload, download) are done here by hand.

use std::path::{Path, PathBuf};

use crate::common::*;

/// The workflow sketch of docs/release-sets.md: the lines of its ```yaml block.
fn workflow() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/release-sets.md"))
            .unwrap();
    let start = readme
        .find("# .github/workflows/release.yml")
        .expect("the CI workflow of docs/release-sets.md");
    let block = &readme[start..];
    let end = block.find("```").expect("the end of the workflow");
    block[..end].lines().map(str::to_string).collect()
}

/// The matrix's platforms, and the `run:` commands of the build job and the package job.
fn jobs(lines: &[String]) -> (Vec<String>, String, String) {
    let platforms = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("platform: ["))
        .expect("a platform matrix")
        .trim_end_matches(']')
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    let runs: Vec<String> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- run: "))
        .map(str::to_string)
        .collect();
    assert_eq!(runs.len(), 2, "a build and a package command: {runs:?}");
    (platforms, runs[0].clone(), runs[1].clone())
}

/// A fresh checkout of the release commit, as actions/checkout gives each job.
fn checkout(repo: &Path, into: &Path) -> PathBuf {
    git(
        into.parent().unwrap(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            into.to_str().unwrap(),
        ],
    );
    into.to_path_buf()
}

/// Runs `command` with bash in `dir`, kbuild on PATH, as a runner would; the test engine's
/// builder image (no registry here) and, on this machine's small disk, mini-kube's needs
/// are the only differences.
fn step(dir: &Path, command: &str) -> (i32, String, String) {
    let kbuild_bin = assert_cmd::cargo::cargo_bin("kbuild");
    let path = format!(
        "{}:{}",
        kbuild_bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let command = command.replace(
        "kbuild --json quick-release",
        "kbuild --json quick-release --min-disk 2g",
    );
    run(std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &command])
        .current_dir(dir)
        .env("PATH", path)
        .env("KBUILD_IMAGE", BUILDER_IMAGE)
        .env_remove("DOCKER_HOST")
        .env_remove("KUBE_GIT_VERSION")
        .env_remove("SOURCE_DATE_EPOCH"))
}

/// Copies the files of `from` into `to` (merge-multiple: later artifacts add to earlier).
fn merge(from: &Path, to: &Path) {
    for entry in walkdir(from) {
        let rel = entry.strip_prefix(from).unwrap();
        let target = to.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn the_readme_ci_workflow_runs_as_written() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let (platforms, build, package) = jobs(&workflow());
    assert!(build.contains("--out _output/kbuild"), "{build}");
    let artifacts = work.path().join("artifacts");
    for (n, platform) in platforms.iter().enumerate() {
        let dir = checkout(repo.path(), &work.path().join(format!("build-{n}")));
        let command = build.replace("${{ matrix.platform }}", platform);
        let (code, stdout, stderr) = step(&dir, &command);
        assert_eq!(code, 0, "{command}\n{stdout}\n{stderr}");
        let log = std::fs::read_to_string(dir.join("build.jsonl")).unwrap();
        assert!(log.lines().count() > 1, "build.jsonl: {log}");
        // upload-artifact: the build job's bin/.
        merge(&dir.join("_output/kbuild/bin"), &artifacts);
    }
    let dir = checkout(repo.path(), &work.path().join("package"));
    // download-artifact, merged into the path the workflow names.
    let downloaded = dir.join("_output/kbuild/bin");
    merge(&artifacts, &downloaded);
    let before = walkdir(&downloaded).len();
    let (code, stdout, stderr) = step(&dir, &package);
    assert_eq!(code, 0, "{package}\n{stdout}\n{stderr}");
    let tars = dir.join("_output/kbuild/release-tars");
    for p in &platforms {
        let client = tars.join(format!("kubernetes-client-{}.tar.gz", p.replace('/', "-")));
        assert!(client.is_file(), "{}", client.display());
    }
    // The downloaded binaries are the user's: not in kbuild's ledger, and kept by clean.
    let ledger = std::fs::read_to_string(dir.join("_output/kbuild/.kbuild/files")).unwrap();
    assert!(
        !ledger.lines().any(|l| l.starts_with("bin/")),
        "the ledger lists only what kbuild wrote: {ledger}"
    );
    let (code, _, stderr) = step(&dir, "kbuild clean --out _output/kbuild");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        walkdir(&downloaded).len(),
        before,
        "clean kept the download"
    );
    assert!(!tars.exists(), "clean removed what kbuild wrote");
    assert_no_containers_left(repo.path());
}
