//! Input that is refused before anything runs: no engine is needed for these.

use std::path::Path;

use crate::common::*;

#[test]
fn unknown_component_is_refused_with_the_valid_list() {
    let (code, _, stderr) = run(kbuild().args(["build", "kubctl", "--kube-root", "/nonexistent"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown component \"kubctl\""), "{stderr}");
    assert!(stderr.contains("did you mean \"kubectl\"?"), "{stderr}");
    assert!(stderr.contains("kube-apiserver"), "{stderr}");
}

#[test]
fn unknown_platform_is_refused_with_the_valid_list() {
    let (code, _, stderr) = run(kbuild().args(["build", "kubectl", "--platform", "plan9/amd64"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unknown platform \"plan9/amd64\""),
        "{stderr}"
    );
    assert!(stderr.contains("darwin/arm64"), "{stderr}");
}

#[test]
fn kubelet_for_darwin_is_refused_not_dropped() {
    let (code, _, stderr) = run(kbuild().args(["build", "kubelet", "--platform", "darwin/arm64"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("upstream does not build kubelet for darwin/arm64"),
        "{stderr}"
    );
    assert!(
        stderr.contains("linux/amd64") && stderr.contains("windows/amd64"),
        "{stderr}"
    );
}

#[test]
fn bad_platform_in_kube_build_platforms_is_refused_too() {
    let (code, _, stderr) = run(kbuild()
        .env("KUBE_BUILD_PLATFORMS", "linux/amd64 linux/mips")
        .args(["build", "kubectl"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("linux/mips"), "{stderr}");
}

#[test]
fn a_directory_that_is_not_kubernetes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild().args([
        "build",
        "kubectl",
        "--kube-root",
        dir.path().to_str().unwrap(),
        "--image",
        BUILDER_IMAGE,
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a Kubernetes tree"), "{stderr}");
}

#[test]
fn a_memory_limit_below_the_engine_minimum_is_refused_before_anything_is_made() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (code, _, stderr) =
        run(build_cmd(repo.path(), &out, &["kubectl"], &[]).args(["--memory", "1k"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("below the smallest memory limit the engine accepts (6.0 MiB)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("status code 400"),
        "no raw engine error: {stderr}"
    );
    assert!(!out.exists(), "nothing was created");
    assert_no_containers_left(repo.path());
}

#[test]
fn an_invalid_image_reference_is_refused_with_the_reference_syntax() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild()
        .args(["build", "kubectl", "--kube-root"])
        .arg(repo.path())
        .args(["--image", "Bad Image!!", "--out"])
        .arg(work.path().join("out")));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("\"Bad Image!!\" is not a valid image reference"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[registry[:port]/]path[:tag][@sha256:<64 hex digits>]"),
        "{stderr}"
    );
    assert!(!stderr.contains("engine is healthy"), "{stderr}");
    assert_no_containers_left(repo.path());
    // kbuild doctor checks the reference the same way.
    let (code, _, stderr) = run(kbuild().args(["doctor", "--image", "Bad Image!!"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a valid image reference"), "{stderr}");

    // Digests, with or without a tag, are valid references: with the tree missing, the run
    // stops there, after the image was accepted.
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    for image in [
        format!("kbuild-builder@{digest}"),
        format!("registry.k8s.io/build-image/kube-cross:v1.34.0@{digest}"),
    ] {
        let (code, _, stderr) = run(kbuild().args([
            "build",
            "kubectl",
            "--kube-root",
            "/nonexistent",
            "--image",
            &image,
        ]));
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("cannot open the Kubernetes tree"),
            "{image}: {stderr}"
        );
    }
}

#[test]
fn a_version_that_is_not_semver_with_a_leading_v_is_bad_input() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (code, _, stderr) =
        run(build_cmd(repo.path(), &out, &["kubectl"], &[]).args(["--version", "1.2.3"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("\"1.2.3\" is not a valid Kubernetes version"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing was created");
    // The same from the environment.
    let (code, _, stderr) =
        run(build_cmd(repo.path(), &out, &["kubectl"], &[]).env("KUBE_GIT_VERSION", "1.2.3"));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn a_repository_with_no_commits_is_named_as_such() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("kube");
    copy_tree(&fixture_dir(), &tree);
    git(&tree, &["init", "-q"]);
    let (code, _, stderr) = run(&mut build_cmd(
        &tree,
        &work.path().join("out"),
        &["kubectl"],
        &[],
    ));
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("is a git repository with no commits yet"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ambiguous argument"),
        "no raw git error: {stderr}"
    );
    assert!(stderr.contains("hint: commit the tree first"), "{stderr}");
}

/// Runs kbuild with a stdout whose reader is already gone (as in `kbuild man | head`).
fn run_with_closed_stdout(args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = kbuild().args(args).stdout(writer).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/mini-kube.toml");
    for args in [
        vec!["man"],
        vec!["completions", "bash"],
        vec!["recipe", "check", recipe.to_str().unwrap()],
        vec!["plan", recipe.to_str().unwrap()],
    ] {
        let (code, stderr) = run_with_closed_stdout(&args);
        assert_eq!(code, 0, "kbuild {args:?}: {stderr}");
        assert_eq!(stderr, "", "kbuild {args:?} says nothing");
    }
}
