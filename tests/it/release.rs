//! `kbuild quick-release`, `kbuild package`, `kbuild verify` and `kbuild extension`
//! against the real engine: upstream tarball layouts checked with GNU tar, checksums with
//! sha256sum/sha512sum, byte-for-byte reproducibility across cold builds, and tampering.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A copy of the builder image with a new id, so that the Go cache volume kbuild keys by
/// image id is new and empty: a truly cold build, without touching the shared cache other
/// tests use concurrently. Removed (with its cache volume) when dropped.
struct FreshImage {
    tag: String,
}

impl FreshImage {
    fn new() -> FreshImage {
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let tag = format!("kbuild-test-fresh:{nonce}");
        let mut child = Command::new("docker")
            .args(["build", "-q", "--label", "io.kbuild.managed=true"])
            .args([
                "--label",
                &format!("io.kbuild.test-nonce={nonce}"),
                "-t",
                &tag,
                "-",
            ])
            .env("DOCKER_BUILDKIT", "0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker build runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("FROM {BUILDER_IMAGE}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "cannot derive a fresh builder image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        FreshImage { tag }
    }
}

impl Drop for FreshImage {
    fn drop(&mut self) {
        let label = format!("label=io.kbuild.image={}", self.tag);
        let vols = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter", &label])
            .output()
            .unwrap();
        for v in String::from_utf8_lossy(&vols.stdout).split_whitespace() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.tag])
            .output();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `tar tzvf` lines: (mode string, owner/group, path).
fn gnu_tar_verbose(tarball: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("tar")
        .args(["tzvf"])
        .arg(tarball)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[5].to_string())
        })
        .collect()
}

fn quick_release(repo: &Path, out: &Path, image: &str, platforms: &[&str]) -> String {
    let mut cmd = kbuild();
    cmd.args([
        "quick-release",
        "--no-images",
        "--kube-root",
        s(repo),
        "--image",
        image,
        "--out",
        s(out),
    ]);
    for p in platforms {
        cmd.args(["--platform", p]);
    }
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "kbuild quick-release failed:\n{stderr}");
    stderr
}

const TARBALLS: &[&str] = &[
    "kubernetes-client-darwin-arm64.tar.gz",
    "kubernetes-client-linux-amd64.tar.gz",
    "kubernetes-manifests.tar.gz",
    "kubernetes-node-linux-amd64.tar.gz",
    "kubernetes-server-linux-amd64.tar.gz",
    "kubernetes-src.tar.gz",
    "kubernetes-test-darwin-arm64.tar.gz",
    "kubernetes-test-linux-amd64.tar.gz",
    "kubernetes-test-portable.tar.gz",
    "kubernetes.tar.gz",
];
/// The SBOM and provenance listed beside the tarballs (tests/it/attest.rs checks them).
const ATTESTATIONS: &[&str] = &[
    "kubernetes-release.intoto.jsonl",
    "kubernetes-release.spdx.json",
];

/// A checksum list without the lines of the provenance, which states the run's times, and of
/// the manifest, which records the run's plan (its output directory).
fn without_provenance(sums: &[u8]) -> String {
    String::from_utf8_lossy(sums)
        .lines()
        .filter(|l| !l.ends_with(ATTESTATIONS[0]) && !l.ends_with("  manifest.json"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// mini-kube tagged `tag`, plus a few of the files upstream's manifests and final tarballs
/// are made from (cluster/, docs/, LICENSES/), committed with the tag moved onto them.
fn repo_with_cluster_files(tag: &str) -> KubeRepo {
    let repo = KubeRepo::tagged(tag);
    for (path, text) in [
        (
            "cluster/gce/manifests/kube-apiserver.manifest",
            "apiVersion: v1\n",
        ),
        ("cluster/gce/gci/configure-helper.sh", "#!/bin/bash\n"),
        ("cluster/addons/dns/coredns.yaml.in", "kind: Deployment\n"),
        ("cluster/addons/dns/demo-pod.yaml", "kind: Pod\n"),
        ("cluster/addons/dns/README.md", "dns\n"),
        ("cluster/get-kube-binaries.sh", "#!/bin/bash\n"),
        ("cluster/notes.txt~", "editor backup\n"),
        ("docs/README.md", "docs\n"),
        ("LICENSES/LICENSE", "Apache-2.0\n"),
    ] {
        let file = repo.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        if path.ends_with(".sh") {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    commit_all(repo.path(), "cluster files");
    git(repo.path(), &["tag", "-f", "-a", tag, "-m", tag]);
    repo
}

/// `tar tf` of a tar stream on stdin, sorted.
fn tar_list_of(bytes: &[u8]) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new("tar")
        .args(["tf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    list.sort();
    list
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

#[test]
fn quick_release_writes_upstream_tarballs_reproducibly_with_checksums_and_manifest() {
    let repo = repo_with_cluster_files("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out1 = work.path().join("out1");
    let stderr = quick_release(
        repo.path(),
        &out1,
        BUILDER_IMAGE,
        &["linux/amd64", "darwin/arm64"],
    );
    // What the tree lacks and what upstream does not build are said, never silent.
    assert!(
        stderr.contains("kubectl-convert") && stderr.contains("kube-aggregator"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no node binaries or tarball for darwin/arm64"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no server binaries or tarball for darwin/arm64"),
        "{stderr}"
    );
    // What upstream's quick-release writes and kbuild does not is said in the summary too.
    assert!(stderr.contains("server images"), "{stderr}");

    let tars = out1.join("release-tars");
    let mut names: Vec<String> = std::fs::read_dir(&tars)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    names.sort();
    assert_eq!(names, TARBALLS);

    // Upstream's layouts, exactly, as GNU tar lists them.
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-client-linux-amd64.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/client/",
            "kubernetes/client/bin/",
            "kubernetes/client/bin/kubectl"
        ]
    );
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-client-darwin-arm64.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/client/",
            "kubernetes/client/bin/",
            "kubernetes/client/bin/kubectl"
        ]
    );
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-node-linux-amd64.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/LICENSES/",
            "kubernetes/LICENSES/LICENSE",
            "kubernetes/kubernetes-src.tar.gz",
            "kubernetes/node/",
            "kubernetes/node/bin/",
            "kubernetes/node/bin/kube-proxy",
            "kubernetes/node/bin/kubeadm",
            "kubernetes/node/bin/kubectl",
            "kubernetes/node/bin/kubelet",
        ]
    );
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-server-linux-amd64.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/LICENSES/",
            "kubernetes/LICENSES/LICENSE",
            "kubernetes/addons/",
            "kubernetes/kubernetes-src.tar.gz",
            "kubernetes/server/",
            "kubernetes/server/bin/",
            "kubernetes/server/bin/kube-apiserver",
            "kubernetes/server/bin/kube-controller-manager",
            "kubernetes/server/bin/kube-proxy",
            "kubernetes/server/bin/kube-scheduler",
            "kubernetes/server/bin/kubeadm",
            "kubernetes/server/bin/kubectl",
            "kubernetes/server/bin/kubelet",
        ]
    );
    // package_kube_manifests_tarball: the gce manifests and helpers under gci-trusty/ (the
    // helper renamed), the add-on manifests with their paths, no demo, no README.
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-manifests.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/gci-trusty/",
            "kubernetes/gci-trusty/dns/",
            "kubernetes/gci-trusty/dns/coredns.yaml.in",
            "kubernetes/gci-trusty/gci-configure-helper.sh",
            "kubernetes/gci-trusty/kube-apiserver.manifest",
        ]
    );
    assert!(
        stderr.contains(
            "kubernetes-manifests.tar.gz holds no cluster/gce/manifests/kube-proxy.manifest"
        ),
        "what the tree lacks is said: {stderr}"
    );
    // package_final_tarball: cluster/, hack/lib, docs/, README.md, LICENSES/, the manifests
    // tarball, the two READMEs and the version; no binaries, no cruft.
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/LICENSES/",
            "kubernetes/LICENSES/LICENSE",
            "kubernetes/README.md",
            "kubernetes/client/",
            "kubernetes/client/README",
            "kubernetes/cluster/",
            "kubernetes/cluster/addons/",
            "kubernetes/cluster/addons/dns/",
            "kubernetes/cluster/addons/dns/README.md",
            "kubernetes/cluster/addons/dns/coredns.yaml.in",
            "kubernetes/cluster/addons/dns/demo-pod.yaml",
            "kubernetes/cluster/gce/",
            "kubernetes/cluster/gce/gci/",
            "kubernetes/cluster/gce/gci/configure-helper.sh",
            "kubernetes/cluster/gce/manifests/",
            "kubernetes/cluster/gce/manifests/kube-apiserver.manifest",
            "kubernetes/cluster/get-kube-binaries.sh",
            "kubernetes/docs/",
            "kubernetes/docs/README.md",
            "kubernetes/hack/",
            "kubernetes/hack/lib/",
            "kubernetes/hack/lib/golang.sh",
            "kubernetes/hack/lib/init.sh",
            "kubernetes/hack/lib/logging.sh",
            "kubernetes/hack/lib/version.sh",
            "kubernetes/server/",
            "kubernetes/server/README",
            "kubernetes/server/kubernetes-manifests.tar.gz",
            "kubernetes/version",
        ]
    );
    let full = work.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    let (code, text) = shell(
        &full,
        &format!("tar xzf {}", s(&tars.join("kubernetes.tar.gz"))),
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        std::fs::read_to_string(full.join("kubernetes/version")).unwrap(),
        "v1.34.0\n"
    );
    assert_eq!(
        std::fs::read(full.join("kubernetes/server/kubernetes-manifests.tar.gz")).unwrap(),
        std::fs::read(tars.join("kubernetes-manifests.tar.gz")).unwrap()
    );
    // package_src_tarball, clean tree: exactly what `git archive HEAD` holds, at the top
    // level (no kubernetes/ prefix).
    let archive = Command::new("git")
        .args(["archive", "HEAD"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    let src = gnu_tar_list(&tars.join("kubernetes-src.tar.gz"));
    assert_eq!(sorted(src.clone()), tar_list_of(&archive.stdout));
    for want in [
        "go.mod",
        ".gitignore",
        "cmd/kubectl/main.go",
        "hack/make-rules/build.sh",
    ] {
        assert!(src.iter().any(|p| p == want), "{want} missing from {src:?}");
    }
    assert!(
        !src.iter()
            .any(|p| p.starts_with("kubernetes/") || p.contains("_output")),
        "{src:?}"
    );
    // Owners and modes: 0/0, 0755 for directories and executables, 0644 for other files.
    for (mode, owner, path) in gnu_tar_verbose(&tars.join("kubernetes-server-linux-amd64.tar.gz")) {
        assert_eq!(owner, "0/0", "{path}");
        let want = if path.ends_with('/') {
            "drwxr-xr-x"
        } else if path.ends_with(".tar.gz") || path.contains("/LICENSES/") {
            "-rw-r--r--"
        } else {
            "-rwxr-xr-x"
        };
        assert_eq!(mode, want, "{path}");
    }
    for (mode, _, path) in gnu_tar_verbose(&tars.join("kubernetes-src.tar.gz")) {
        if path.ends_with("build.sh") {
            assert_eq!(mode, "-rwxr-xr-x", "git's executable bit kept: {path}");
        } else if path == "go.mod" {
            assert_eq!(mode, "-rw-r--r--");
        }
    }
    // The binaries inside are the built ones, for the platform the name says.
    let unpack = work.path().join("unpack");
    std::fs::create_dir_all(&unpack).unwrap();
    let (code, text) = shell(
        &unpack,
        &format!(
            "tar xzf {}",
            s(&tars.join("kubernetes-client-darwin-arm64.tar.gz"))
        ),
    );
    assert_eq!(code, 0, "{text}");
    assert!(is_macho_arm64(&header(
        &unpack.join("kubernetes/client/bin/kubectl")
    )));

    // Checksums: sha256sum -c, sha512sum -c, and the dl.k8s.io sidecar recipe.
    let (code, text) = shell(&tars, "sha256sum -c SHA256SUMS && sha512sum -c SHA512SUMS");
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text.matches(": OK").count(),
        2 * (TARBALLS.len() + ATTESTATIONS.len() + 1),
        "{text}"
    );
    for name in TARBALLS {
        let (code, text) = shell(
            &tars,
            &format!(
                "echo \"$(cat {name}.sha256)  {name}\" | sha256sum --check && \
                 echo \"$(cat {name}.sha512)  {name}\" | sha512sum --check"
            ),
        );
        assert_eq!(code, 0, "{name}: {text}");
        let sidecar = std::fs::read_to_string(tars.join(format!("{name}.sha256"))).unwrap();
        assert_eq!(sidecar.len(), 64, "hex digest only: {sidecar:?}");
    }
    let sums = std::fs::read_to_string(tars.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums.lines().map(|l| &l[66..]).collect();
    let mut expected: Vec<&str> = TARBALLS.iter().chain(ATTESTATIONS).copied().collect();
    expected.push("manifest.json");
    expected.sort();
    assert_eq!(
        listed, expected,
        "SHA256SUMS is sorted by name and lists the manifest"
    );

    // The manifest.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tars.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["schemaVersion"], 1);
    assert_eq!(m["kbuildVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["source"]["commit"], repo.commit());
    assert_eq!(m["source"]["gitVersion"], "v1.34.0");
    assert_eq!(m["source"]["ref"], "v1.34.0");
    assert_eq!(m["source"]["treeState"], "clean");
    assert_eq!(m["source"]["sourceDateEpoch"], COMMIT_EPOCH);
    assert_eq!(m["toolchain"]["builderImage"], BUILDER_IMAGE);
    let notes = m["notes"].to_string();
    // The test tarballs are written (their layouts: tests/it/testtars.rs), and compared
    // byte for byte with the second run's below.
    assert!(!notes.contains("kubernetes-test-portable"), "{notes}");
    // Run with --no-images, which the manifest says (tests/it/images.rs makes them).
    assert!(notes.contains("no server images (--no-images)"), "{notes}");
    assert!(m["toolchain"]["builderImageId"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(
        m["toolchain"]["goVersion"]
            .as_str()
            .unwrap()
            .starts_with("go1."),
        "{}",
        m["toolchain"]
    );
    let artifacts = m["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), TARBALLS.len() + ATTESTATIONS.len());
    let server = artifacts
        .iter()
        .find(|a| a["file"] == "kubernetes-server-linux-amd64.tar.gz")
        .unwrap();
    assert_eq!(server["kind"], "server");
    assert_eq!(
        (server["os"].as_str(), server["arch"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    let bytes = std::fs::read(tars.join("kubernetes-server-linux-amd64.tar.gz")).unwrap();
    assert_eq!(server["size"], bytes.len() as u64);
    assert_eq!(
        server["sha256"].as_str().unwrap(),
        std::fs::read_to_string(tars.join("kubernetes-server-linux-amd64.tar.gz.sha256")).unwrap()
    );
    assert!(server["components"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("kube-apiserver")));
    let kubelet = server["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "kubernetes/server/bin/kubelet")
        .unwrap();
    assert_eq!(kubelet["mode"], "0755");
    let (code, _, text) = run(kbuild().args(["verify", s(&tars)]));
    assert_eq!(code, 0, "{text}");

    // Second run: another copy of the same commit (another path), a cold Go cache (a new
    // image id means a new, empty cache volume), no previous outputs.
    let fresh = FreshImage::new();
    let repo2 = repo_with_cluster_files("v1.34.0");
    assert_eq!(repo2.commit(), repo.commit());
    let out2 = work.path().join("out2");
    quick_release(
        repo2.path(),
        &out2,
        &fresh.tag,
        &["linux/amd64", "darwin/arm64"],
    );
    for name in TARBALLS.iter().chain(&[ATTESTATIONS[1]]) {
        let a = std::fs::read(tars.join(name)).unwrap();
        let b = std::fs::read(out2.join("release-tars").join(name)).unwrap();
        assert!(a == b, "{name} differs between two runs at the same commit");
    }
    for name in ["SHA256SUMS", "SHA512SUMS"] {
        let a = std::fs::read(tars.join(name)).unwrap();
        let b = std::fs::read(out2.join("release-tars").join(name)).unwrap();
        assert_eq!(
            without_provenance(&a),
            without_provenance(&b),
            "{name} differs between two runs at the same commit"
        );
    }
    drop(fresh);
    assert_no_containers_left(repo.path());
    assert_no_containers_left(repo2.path());
}

/// Builds kubectl for linux/amd64 and windows/amd64 into `out` (warm shared cache).
fn build_clients(repo: &Path, out: &Path) {
    let (code, _, stderr) = run(kbuild().args([
        "build",
        "kubectl",
        "--platform",
        "linux/amd64",
        "--platform",
        "windows/amd64",
        "--kube-root",
        s(repo),
        "--image",
        BUILDER_IMAGE,
        "--out",
        s(out),
    ]));
    assert_eq!(code, 0, "kbuild build failed:\n{stderr}");
}

#[test]
fn package_alone_then_verify_names_tampered_and_missing_artifacts() {
    let repo = KubeRepo::tagged("v1.33.1");
    let work = tempfile::tempdir().unwrap();
    let built = work.path().join("built");
    build_clients(repo.path(), &built);

    // A CI pipeline packages from a copied bin tree, a dirty tree at that, into an
    // output directory inside the tree that git ignores.
    std::fs::write(repo.path().join("README.md"), "changed after the commit\n").unwrap();
    std::fs::write(repo.path().join("NOTES.txt"), "untracked\n").unwrap();
    std::fs::write(repo.path().join("local.env"), "ignored\n").unwrap();
    std::fs::write(
        repo.path().join(".git/info/exclude"),
        "/dist/\n/local.env\n",
    )
    .unwrap();
    // What upstream's package_src_tarball makes of a tree that is not clean: every
    // top-level entry but _*, .git*, .config*, .gsutil*, all that is under each (ignored
    // files too), under kubernetes/ and with no kubernetes/ entry; listed by GNU tar.
    let reference = work.path().join("reference-src.tar.gz");
    let (code, text) = shell(
        repo.path(),
        &format!(
            "tar czf {} --transform 's,^,kubernetes/,' $(ls -A | grep -Ev '^(_|[.]git|[.]config|[.]gsutil)')",
            s(&reference)
        ),
    );
    assert_eq!(code, 0, "{text}");
    let want_src = sorted(gnu_tar_list(&reference));
    assert!(want_src.contains(&"kubernetes/local.env".to_string()));
    let dist = repo.path().join("dist");
    let (code, _, stderr) = run(kbuild().args([
        "package",
        "--bin",
        s(&built.join("bin")),
        "--out",
        s(&dist),
        "--kube-root",
        s(repo.path()),
    ]));
    assert_eq!(code, 0, "kbuild package failed:\n{stderr}");
    assert!(
        stderr.contains("no node binaries for linux/amd64"),
        "what is not packaged is said: {stderr}"
    );
    let tars = dist.join("release-tars");
    assert_eq!(
        gnu_tar_list(&tars.join("kubernetes-client-windows-amd64.tar.gz")),
        [
            "kubernetes/",
            "kubernetes/client/",
            "kubernetes/client/bin/",
            "kubernetes/client/bin/kubectl.exe"
        ]
    );
    let (code, text) = shell(&tars, "sha256sum -c SHA256SUMS && sha512sum -c SHA512SUMS");
    assert_eq!(code, 0, "{text}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tars.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["source"]["treeState"], "dirty");
    assert_eq!(m["source"]["srcContent"], "working-tree");
    // Exactly upstream's entries; the output directory inside the tree is not among them.
    assert_eq!(
        sorted(gnu_tar_list(&tars.join("kubernetes-src.tar.gz"))),
        want_src
    );
    assert!(m["toolchain"]["builderImage"].is_null());
    // The dirty tree's source tarball holds the working tree as built.
    let unpack = work.path().join("src");
    std::fs::create_dir_all(&unpack).unwrap();
    let (code, text) = shell(
        &unpack,
        &format!("tar xzf {}", s(&tars.join("kubernetes-src.tar.gz"))),
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        std::fs::read_to_string(unpack.join("kubernetes/README.md")).unwrap(),
        "changed after the commit\n"
    );
    assert!(unpack.join("kubernetes/NOTES.txt").is_file());
    assert!(!unpack.join("kubernetes/_output").exists());

    let (code, _, stderr) = run(kbuild().args(["verify", s(&dist)]));
    assert_eq!(code, 0, "an intact directory verifies:\n{stderr}");

    // Tamper with one tarball, remove another, corrupt a sidecar.
    let tampered = tars.join("kubernetes-client-linux-amd64.tar.gz");
    let mut bytes = std::fs::read(&tampered).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&tampered, bytes).unwrap();
    std::fs::remove_file(tars.join("kubernetes-client-windows-amd64.tar.gz")).unwrap();
    std::fs::write(tars.join("kubernetes-src.tar.gz.sha512"), "0".repeat(128)).unwrap();
    let (code, _, stderr) = run(kbuild().args(["verify", s(&tars)]));
    assert_eq!(code, 7, "verify fails with exit code 7:\n{stderr}");
    assert!(
        stderr.contains("kubernetes-client-linux-amd64.tar.gz: sha256 differs from SHA256SUMS"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kubernetes-client-windows-amd64.tar.gz: missing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kubernetes-src.tar.gz.sha512: sha512 differs"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("kubernetes-src.tar.gz: "),
        "the intact source tarball is not blamed:\n{stderr}"
    );
    // JSON mode carries the same failure, machine-readably.
    let (code, stdout, _) = run(kbuild().args(["--json", "verify", s(&tars)]));
    assert_eq!(code, 7);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["kind"], "verify");
}

#[test]
fn verify_refuses_a_directory_with_nothing_to_check() {
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild().args(["verify", s(empty.path())]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("SHA256SUMS"), "{stderr}");
}

/// The binaries in an extension layout, relative to extension/.
fn layout_files(ext: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for arch in ["amd64", "arm64"] {
        for os in ["darwin", "linux", "windows"] {
            let dir = ext.join(arch).join(os);
            for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let e = e.unwrap();
                found.push((
                    format!("{arch}/{os}/{}", e.file_name().to_string_lossy()),
                    e.path(),
                ));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn extension_lays_out_kubectl_per_image_arch_with_metadata_and_dockerfile() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild().args([
        "extension",
        "--kube-root",
        s(repo.path()),
        "--image",
        BUILDER_IMAGE,
        "--out",
        s(out.path()),
    ]));
    assert_eq!(code, 0, "kbuild extension failed:\n{stderr}");
    let ext = out.path().join("extension");
    let files = layout_files(&ext);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "amd64/darwin/kubectl",
            "amd64/linux/kubectl",
            "amd64/windows/kubectl.exe",
            "arm64/darwin/kubectl",
            "arm64/linux/kubectl",
            "arm64/windows/kubectl.exe"
        ]
    );
    for (name, path) in &files {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{name} is a plain file, not a symlink"
        );
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "{name}");
        let h = header(path);
        let ok = match name.as_str() {
            "amd64/darwin/kubectl" => is_macho(&h, 0x0100_0007),
            "arm64/darwin/kubectl" => is_macho_arm64(&h),
            "amd64/linux/kubectl" => is_elf_amd64(&h),
            "arm64/linux/kubectl" => is_elf(&h, 0xb7),
            "amd64/windows/kubectl.exe" => is_pe32plus_amd64(&h),
            "arm64/windows/kubectl.exe" => is_pe(&h, 0xaa64),
            _ => false,
        };
        assert!(ok, "{name} is not the format its directory names");
    }
    let fragment: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ext.join("host-binaries.json")).unwrap())
            .expect("the metadata fragment parses as JSON");
    let binaries = &fragment["host"]["binaries"][0];
    assert_eq!(binaries["darwin"][0]["path"], "/darwin/kubectl");
    assert_eq!(binaries["linux"][0]["path"], "/linux/kubectl");
    assert_eq!(binaries["windows"][0]["path"], "/windows/kubectl.exe");
    let snippet = std::fs::read_to_string(ext.join("Dockerfile.snippet")).unwrap();
    assert!(snippet.contains("ARG TARGETARCH"), "{snippet}");
    assert!(snippet.contains("extension/${TARGETARCH}/ /"), "{snippet}");
    // The arch directories hold nothing but the binaries (they are copied to / as they are).
    for arch in ["amd64", "arm64"] {
        let mut entries: Vec<String> = std::fs::read_dir(ext.join(arch))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(entries, ["darwin", "linux", "windows"]);
    }
    let (code, text) = shell(&ext, "sha256sum -c SHA256SUMS && sha512sum -c SHA512SUMS");
    assert_eq!(code, 0, "{text}");
    let (code, _, stderr) = run(kbuild().args(["verify", s(&ext)]));
    assert_eq!(code, 0, "{stderr}");
    assert_no_containers_left(repo.path());
}

fn is_macho(h: &[u8], cpu: u32) -> bool {
    h.len() >= 8 && h[..4] == [0xcf, 0xfa, 0xed, 0xfe] && h[4..8] == cpu.to_le_bytes()
}

fn is_elf(h: &[u8], machine: u16) -> bool {
    h.len() >= 20 && &h[..4] == b"\x7fELF" && h[18..20] == machine.to_le_bytes()
}

fn is_pe(h: &[u8], machine: u16) -> bool {
    if h.len() < 0x40 || &h[..2] != b"MZ" {
        return false;
    }
    let pe = u32::from_le_bytes([h[0x3c], h[0x3d], h[0x3e], h[0x3f]]) as usize;
    h.len() > pe + 26
        && &h[pe..pe + 4] == b"PE\0\0"
        && h[pe + 4..pe + 6] == machine.to_le_bytes()
        && h[pe + 24..pe + 26] == 0x020bu16.to_le_bytes()
}

#[test]
fn ctrl_c_while_packaging_leaves_no_artifact_behind() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    // A large linux/amd64 "kubectl" (an ELF header, then incompressible bytes) keeps the
    // packaging busy long enough to be interrupted.
    let bin = work.path().join("bin/linux/amd64");
    std::fs::create_dir_all(&bin).unwrap();
    let mut bytes = vec![0u8; 64];
    bytes[..4].copy_from_slice(b"\x7fELF");
    bytes[4] = 2;
    bytes[5] = 1;
    bytes[18] = 0x3e;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    bytes.extend((0..(96usize << 20)).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    std::fs::write(bin.join("kubectl"), &bytes).unwrap();
    drop(bytes);
    let out = work.path().join("out");
    let tars = out.join("release-tars");
    let mut child = kbuild()
        .args([
            "package",
            "--bin",
            s(&work.path().join("bin")),
            "--out",
            s(&out),
        ])
        .args(["--kube-root", s(repo.path())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a tarball is being written (in the staging directory kbuild moves into
    // release-tars only when the whole set is complete), then press Ctrl-C.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let staged_tarball = || {
        std::fs::read_dir(&out).ok().and_then(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".kbuild-tmp"))
                .find_map(|staging| {
                    std::fs::read_dir(staging.path())
                        .ok()
                        .map(|files| files.count() > 0)
                })
        })
    };
    loop {
        let writing = staged_tarball().unwrap_or(false);
        if writing {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "kbuild finished before it could be interrupted"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "packaging never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let left: Vec<String> = std::fs::read_dir(&tars)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind after Ctrl-C: {left:?}");
    let staging: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".kbuild-tmp"))
        .collect();
    assert!(
        staging.is_empty(),
        "staging left behind after Ctrl-C: {staging:?}"
    );
}
