//! Things runs and tests share, and inputs that name nothing: empty platform lists, images by
//! digest, concurrent runs on one tree, credentials in URLs, the Go cache volume's owner, and
//! the processes tests start.

use std::path::Path;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_empty_platform_list_is_refused_by_every_command_and_nothing_is_written() {
    let repo = KubeRepo::tagged("v1.33.0");
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir_all(bin.join("linux/amd64")).unwrap();
    let out = work.path().join("out");
    for given in ["", ",", " "] {
        let commands: [Vec<&str>; 4] = [
            vec!["build", "kubectl"],
            vec!["quick-release"],
            vec!["extension"],
            vec!["package", "--bin", s(&bin)],
        ];
        for command in commands {
            let mut cmd = kbuild();
            cmd.args(&command)
                .args(["--platform", given, "--kube-root", s(repo.path())])
                .args(["--out", s(&out)]);
            let (code, _, stderr) = run(&mut cmd);
            assert_eq!(code, 2, "{command:?} --platform {given:?}: {stderr}");
            assert!(stderr.contains("names no platform"), "{stderr}");
            assert!(stderr.contains("hint:"), "{stderr}");
            assert!(!out.exists(), "{command:?} wrote {}", out.display());
        }
    }
    for command in [vec!["build", "kubectl"], vec!["quick-release"]] {
        let mut cmd = kbuild();
        cmd.args(&command)
            .args(["--kube-root", s(repo.path()), "--out", s(&out)])
            .env("KUBE_BUILD_PLATFORMS", " ");
        let (code, _, stderr) = run(&mut cmd);
        assert_eq!(code, 2, "{command:?} KUBE_BUILD_PLATFORMS=\" \": {stderr}");
        assert!(
            stderr.contains("KUBE_BUILD_PLATFORMS=\" \" names no platform"),
            "{stderr}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn an_image_by_digest_is_pulled_by_that_digest() {
    // No registry is reachable here: a registry on a closed local port shows which reference
    // the engine was asked to pull. Split wrongly, the engine refuses the reference itself.
    let repo = KubeRepo::tagged("v1.33.0");
    let out = tempfile::tempdir().unwrap();
    let digest = format!("sha256:{}", "0".repeat(63) + "1");
    for image in [
        format!("127.0.0.1:1/kbuild-builder@{digest}"),
        format!("127.0.0.1:1/kbuild-builder:go1.24-trixie@{digest}"),
    ] {
        let mut cmd = kbuild();
        cmd.args(["build", "kubectl", "--kube-root", s(repo.path())])
            .args(["--image", &image, "--out", s(out.path())]);
        let (code, _, stderr) = run(&mut cmd);
        assert_eq!(code, 5, "{image}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot pull the builder image {image}")),
            "{stderr}"
        );
        assert!(!stderr.contains("invalid reference format"), "{stderr}");
        assert!(
            stderr.contains("127.0.0.1:1") && stderr.contains("connection refused"),
            "the engine tried the image's registry: {stderr}"
        );
        assert!(binaries(out.path()).is_empty());
    }
}
