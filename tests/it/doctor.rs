//! `kbuild doctor` and the checks every build runs first, against the real engine.

use std::time::{Duration, Instant};

use crate::common::*;

fn doctor(repo: &KubeRepo, out: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    run(kbuild()
        .args(["doctor", "--image", BUILDER_IMAGE, "--kube-root"])
        .arg(repo.path())
        .arg("--out")
        .arg(out)
        .args(extra))
}

/// The doctor's line for one check: `  pass  engine  ...`.
fn line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no line for check {name} in:\n{stdout}"))
}

#[test]
fn doctor_passes_here_and_lists_every_check() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = doctor(&repo, out.path(), &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("a build with the docker engine"),
        "{stdout}"
    );
    assert!(stdout.contains("memory >= 2.0 GiB"), "{stdout}");
    for name in ["git", "engine", "memory", "cpus", "disk", "image", "arch"] {
        assert!(
            line(&stdout, name).trim_start().starts_with("pass"),
            "{name} passes:\n{stdout}"
        );
    }
    for name in ["go", "make"] {
        assert!(
            line(&stdout, name).trim_start().starts_with("skip"),
            "{name} is for host builds:\n{stdout}"
        );
    }
    assert!(
        line(&stdout, "engine").contains("unix:///var/run/docker.sock")
            || std::env::var("DOCKER_HOST").is_ok(),
        "the endpoint is named:\n{stdout}"
    );
    assert!(line(&stdout, "image").contains(BUILDER_IMAGE), "{stdout}");
    assert!(
        stdout.contains("checks: git, engine, memory, cpus, disk, image, arch, go, make"),
        "the names --skip-check takes are listed:\n{stdout}"
    );
}

#[test]
fn memory_threshold_above_the_engine_fails_with_a_hint() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = doctor(&repo, out.path(), &["--min-memory", "1000g"]);
    assert_eq!(code, 3, "a failed check exits 3:\n{stdout}\n{stderr}");
    let memory = line(&stdout, "memory");
    assert!(memory.trim_start().starts_with("FAIL"), "{stdout}");
    assert!(memory.contains("1000.0 GiB"), "{stdout}");
    assert!(
        stdout.contains("hint: give Docker more memory"),
        "the fix is named:\n{stdout}"
    );
    assert!(stderr.contains("error: check memory failed"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");

    // A quick-release is held to upstream's 8 GiB by default.
    let (_, stdout, _) = doctor(&repo, out.path(), &["--for", "quick-release"]);
    assert!(stdout.contains("a quick-release"), "{stdout}");
    assert!(stdout.contains("memory >= 8.0 GiB"), "{stdout}");
}

#[test]
fn an_engine_that_does_not_exist_fails_within_two_seconds_naming_the_endpoint() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, stdout, stderr) = run(kbuild()
        .env("DOCKER_HOST", "unix:///nonexistent/kbuild/docker.sock")
        .args(["doctor", "--kube-root"])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    let took = started.elapsed();
    eprintln!("doctor with an engine that does not exist took {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let engine = line(&stdout, "engine");
    assert!(engine.trim_start().starts_with("FAIL"), "{stdout}");
    assert!(
        engine.contains("unix:///nonexistent/kbuild/docker.sock"),
        "the endpoint tried is named:\n{stdout}"
    );
    assert!(stdout.contains("hint: start Docker"), "{stdout}");
    assert!(
        line(&stdout, "memory").contains("needs the engine"),
        "{stdout}"
    );
}

#[test]
fn json_output_parses() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = doctor(&repo, out.path(), &["--json", "--min-memory", "1000g"]);
    assert_eq!(code, 3, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events[0]["event"], "doctor");
    assert_eq!(events[0]["for"], "build");
    assert_eq!(events[0]["min_memory"], 1000u64 << 30);
    let checks: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "check").collect();
    assert_eq!(checks.len(), 9, "{stdout}");
    let memory = checks.iter().find(|c| c["name"] == "memory").unwrap();
    assert_eq!(memory["status"], "fail");
    assert!(memory["hint"].as_str().unwrap().contains("--min-memory"));
    let engine = checks.iter().find(|c| c["name"] == "engine").unwrap();
    assert_eq!(engine["status"], "pass");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["exit_code"], 3);
}

#[test]
fn an_image_the_engine_lacks_and_cannot_pull_fails() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    // No registry is reachable here: the tree's default kube-cross image cannot be pulled.
    let (code, stdout, _) = run(kbuild()
        .args(["doctor", "--kube-root"])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(code, 3, "{stdout}");
    let image = line(&stdout, "image");
    assert!(image.trim_start().starts_with("FAIL"), "{stdout}");
    assert!(
        image.contains("registry.k8s.io/build-image/kube-cross:v1.34.0-go1.24.4-bullseye.0"),
        "{stdout}"
    );
    assert!(stdout.contains("--image"), "{stdout}");
}

#[test]
fn a_build_stops_at_a_failed_check_before_any_container_and_skip_check_overrides() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let build = |extra: &[&str]| {
        run(build_cmd(repo.path(), out.path(), &["kubectl"], &["linux/amd64"]).args(extra))
    };
    let (code, _, stderr) = build(&["--min-memory", "1000g"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("error: check memory failed"), "{stderr}");
    assert!(stderr.contains("1000.0 GiB"), "{stderr}");
    assert!(stderr.contains("--skip-check memory"), "{stderr}");
    assert!(
        !out.path().join("logs").exists(),
        "nothing was built: no log"
    );
    assert_no_containers_left(repo.path());

    let (code, _, stderr) = build(&["--min-memory", "1000g", "--skip-check", "memory"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("check memory skipped"), "{stderr}");
    assert!(out.path().join("bin/linux/amd64/kubectl").is_file());

    let (code, _, stderr) = build(&["--skip-check", "memroy"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean \"memory\""), "{stderr}");
}

#[test]
fn a_build_with_no_engine_fails_fast_with_the_endpoint() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, _, stderr) = run(kbuild()
        .env("DOCKER_HOST", "unix:///nonexistent/kbuild/docker.sock")
        .args([
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--kube-root",
        ])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(code, 5, "an unreachable engine exits 5:\n{stderr}");
    assert!(
        stderr.contains("unix:///nonexistent/kbuild/docker.sock"),
        "{stderr}"
    );
    assert!(stderr.contains("--engine host"), "{stderr}");
}
