//! Input that is refused before anything runs: no engine is needed for these.

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
