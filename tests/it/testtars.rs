//! Upstream's test targets and test tarballs (kube::release::package_test_tarballs) against
//! the real engine: the layouts GNU tar lists, the e2e binary run from its tarball, the
//! checksums, `kbuild verify`, the SBOM and provenance, and `--no-test-tarballs`. Byte for
//! byte reproducibility across cold builds is checked with the other tarballs
//! (tests/it/release.rs).

use std::path::Path;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `kbuild quick-release` of linux/amd64 into `out`, with `extra` flags; its stderr. No
/// server images: tests/it/images.rs makes those.
fn quick_release(repo: &Path, out: &Path, extra: &[&str]) -> String {
    let (code, _, stderr) = run(kbuild()
        .args(["quick-release", "--no-images", "--platform", "linux/amd64"])
        .args([
            "--kube-root",
            s(repo),
            "--image",
            BUILDER_IMAGE,
            "--out",
            s(out),
        ])
        .args(extra));
    assert_eq!(code, 0, "kbuild quick-release failed:\n{stderr}");
    stderr
}

fn manifest(tars: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(tars.join("manifest.json")).unwrap()).unwrap()
}

fn test_tarballs(tars: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tars)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kubernetes-test-"))
        .collect();
    names.sort();
    names
}

#[test]
fn quick_release_writes_upstream_test_tarballs_and_no_test_tarballs_skips_them() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let tars = out.join("release-tars");
    let stderr = quick_release(repo.path(), &out, &[]);
    // The test targets build in a job of their own.
    assert!(
        stderr.contains("quick-release-test+test-server"),
        "{stderr}"
    );
    assert_eq!(
        test_tarballs(&tars),
        [
            "kubernetes-test-linux-amd64.tar.gz",
            "kubernetes-test-linux-amd64.tar.gz.sha256",
            "kubernetes-test-linux-amd64.tar.gz.sha512",
            "kubernetes-test-portable.tar.gz",
            "kubernetes-test-portable.tar.gz.sha256",
            "kubernetes-test-portable.tar.gz.sha512",
        ]
    );

    // package_test_platform_tarballs on a server platform: KUBE_TEST_BINARIES and
    // KUBE_TEST_SERVER_BINARIES in kubernetes/test/bin, nothing else.
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-test-linux-amd64.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/test/",
            "kubernetes/test/bin/",
            "kubernetes/test/bin/e2e.test",
            "kubernetes/test/bin/e2e_node.test",
            "kubernetes/test/bin/ginkgo",
            "kubernetes/test/bin/go-runner",
            "kubernetes/test/bin/kubemark",
        ]
    );
    // package_test_tarballs: test/images, then KUBE_TEST_PORTABLE; no binaries.
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-test-portable.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/hack/",
            "kubernetes/hack/e2e-internal/",
            "kubernetes/hack/e2e-internal/e2e-status.sh",
            "kubernetes/hack/get-build.sh",
            "kubernetes/hack/ginkgo-e2e.sh",
            "kubernetes/hack/lib/",
            "kubernetes/hack/lib/golang.sh",
            "kubernetes/hack/lib/init.sh",
            "kubernetes/hack/lib/logging.sh",
            "kubernetes/hack/lib/version.sh",
            "kubernetes/test/",
            "kubernetes/test/e2e/",
            "kubernetes/test/e2e/testing-manifests/",
            "kubernetes/test/e2e/testing-manifests/storage/",
            "kubernetes/test/e2e/testing-manifests/storage/pod.yaml",
            "kubernetes/test/images/",
            "kubernetes/test/images/agnhost/",
            "kubernetes/test/images/agnhost/VERSION",
            "kubernetes/test/kubemark/",
            "kubernetes/test/kubemark/start-kubemark.sh",
        ]
    );

    // The e2e suite, taken from the tarball, runs and reports the stamped version.
    let unpack = work.path().join("unpack");
    std::fs::create_dir_all(&unpack).unwrap();
    let (code, text) = shell(
        &unpack,
        &format!(
            "tar xzf {}",
            s(&tars.join("kubernetes-test-linux-amd64.tar.gz"))
        ),
    );
    assert_eq!(code, 0, "{text}");
    let bin = unpack.join("kubernetes/test/bin");
    assert_eq!(
        run_binary(&bin.join("e2e.test"), &["--version"]),
        "e2e.test v1.34.0\n"
    );
    let suite = run_binary(&bin.join("e2e.test"), &[]);
    assert!(
        suite.contains("e2e.test v1.34.0") && suite.contains("PASS"),
        "{suite}"
    );
    assert!(run_binary(&bin.join("ginkgo"), &["version"]).contains("Ginkgo Version"));
    assert_eq!(
        run_binary(&bin.join("e2e_node.test"), &["--version"]),
        "e2e_node.test v1.34.0\n"
    );

    // Checksums, verify, manifest, SBOM and provenance cover them as every tarball.
    let (code, text) = shell(&tars, "sha256sum -c SHA256SUMS && sha512sum -c SHA512SUMS");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("kubernetes-test-portable.tar.gz: OK")
            && text.contains("kubernetes-test-linux-amd64.tar.gz: OK"),
        "{text}"
    );
    let (code, _, text) = run(kbuild().args(["verify", s(&tars)]));
    assert_eq!(code, 0, "{text}");
    let m = manifest(&tars);
    let artifact = |file: &str| {
        m["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in the manifest"))
            .clone()
    };
    let platform = artifact("kubernetes-test-linux-amd64.tar.gz");
    assert_eq!(platform["kind"], "test");
    assert_eq!(
        platform["components"],
        serde_json::json!([
            "ginkgo",
            "e2e.test",
            "go-runner",
            "kubemark",
            "e2e_node.test"
        ])
    );
    assert_eq!(
        artifact("kubernetes-test-portable.tar.gz")["kind"],
        "test-portable"
    );
    assert!(
        !m["notes"].to_string().contains("test-portable"),
        "{}",
        m["notes"]
    );
    let sbom = std::fs::read_to_string(tars.join("kubernetes-release.spdx.json")).unwrap();
    assert!(
        sbom.contains("kubernetes-test-linux-amd64.tar.gz") && sbom.contains("e2e.test"),
        "the SBOM lists the test tarball and its binaries"
    );
    let provenance = std::fs::read_to_string(tars.join("kubernetes-release.intoto.jsonl")).unwrap();
    assert!(provenance.contains("kubernetes-test-portable.tar.gz"));

    // --no-test-tarballs: no test job, no test tarball (the previous ones are replaced with
    // the set), and the manifest says why.
    let stderr = quick_release(repo.path(), &out, &["--no-test-tarballs"]);
    assert!(!stderr.contains("quick-release-test"), "{stderr}");
    assert_eq!(test_tarballs(&tars), Vec::<String>::new());
    let notes = manifest(&tars)["notes"].to_string();
    assert!(
        notes.contains("no kubernetes-test-portable.tar.gz")
            && notes.contains("--no-test-tarballs"),
        "{notes}"
    );
    let (code, _, text) = run(kbuild().args(["verify", s(&tars)]));
    assert_eq!(code, 0, "{text}");
    assert_no_containers_left(repo.path());
}
