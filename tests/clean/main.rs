//! `kbuild clean` removes every object kbuild labelled in the engine. It has a test binary of
//! its own because it removes the shared Go cache volumes: cargo runs test binaries one after
//! another, so it never pulls a volume from under a build of the main suite.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

const BUILDER_IMAGE: &str = "kbuild-builder:go1.24-trixie";

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn clean_removes_every_labelled_object_and_reports_the_space() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-kube");
    let tree = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .args(["-a", &format!("{}/.", fixture.display())])
        .arg(tree.path())
        .status()
        .unwrap();
    assert!(status.success());
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("out");

    // A build leaves a Go cache volume and outputs behind.
    let build = Command::cargo_bin("kbuild")
        .unwrap()
        .args([
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--version",
            "v1.34.0",
        ])
        .args(["--image", BUILDER_IMAGE])
        .arg("--kube-root")
        .arg(tree.path())
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // And a crashed run left a container behind.
    let created = Command::new("docker")
        .args([
            "create",
            "--label",
            "io.kbuild.managed=true",
            BUILDER_IMAGE,
            "true",
        ])
        .output()
        .unwrap();
    assert!(created.status.success());
    assert!(!docker_lines(&["volume", "ls", "-q", "--filter", "label=io.kbuild.cache"]).is_empty());
    // A file of the user's in the output directory, which kbuild did not write.
    std::fs::write(out_dir.join("notes.txt"), "precious\n").unwrap();

    let clean = Command::cargo_bin("kbuild")
        .unwrap()
        .args(["clean", "--caches"])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert!(clean.status.success(), "{stderr}");
    assert!(stderr.contains("removed 1 container"), "{stderr}");
    assert!(stderr.contains("reclaimed"), "{stderr}");
    let reclaimed_mib = stderr
        .split("reclaimed ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        reclaimed_mib > 0.0,
        "it says how much space came back: {stderr}"
    );
    assert!(docker_lines(&["ps", "-aq", "--filter", "label=io.kbuild.managed"]).is_empty());
    assert!(
        docker_lines(&["volume", "ls", "-q", "--filter", "label=io.kbuild.managed"]).is_empty()
    );
    // Only what kbuild recorded writing is gone; the user's file and so the directory stay.
    let mut left: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["notes.txt"], "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("notes.txt")).unwrap(),
        "precious\n"
    );

    // Without kbuild's files the directory is the user's now: clean refuses it.
    let again = Command::cargo_bin("kbuild")
        .unwrap()
        .arg("clean")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(out_dir.join("notes.txt").exists());

    // An output directory kbuild created and nothing else uses goes entirely.
    std::fs::remove_file(out_dir.join("notes.txt")).unwrap();
    std::fs::remove_dir(&out_dir).unwrap();
    let rebuilt = Command::cargo_bin("kbuild")
        .unwrap()
        .args([
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--version",
            "v1.34.0",
        ])
        .args(["--image", BUILDER_IMAGE])
        .arg("--kube-root")
        .arg(tree.path())
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let clean = Command::cargo_bin("kbuild")
        .unwrap()
        .arg("clean")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(!out_dir.exists(), "the output directory is gone");
}
