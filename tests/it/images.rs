//! quick-release's server images (issue 24), against the real engine and real tools: the
//! refusal without a base, then a run on a local base (`--base-image`), its places, `docker
//! load` and run, skopeo, the capability in the tar header, the manifest, `kbuild verify`,
//! and a second run's identical bytes (`--images-only`).

use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn quick_release(repo: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run(kbuild()
        .args(["quick-release", "--platform", "linux/amd64"])
        .args([
            "--kube-root",
            s(repo),
            "--image",
            BUILDER_IMAGE,
            "--out",
            s(out),
        ])
        .args(["--min-disk", "1g"])
        .args(extra));
    (code, stderr)
}

/// The named member of a tar, read whole.
fn member(tar: &Path, name: &str) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap() == Path::new(name) {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            return Some(bytes);
        }
    }
    None
}

/// The PAX `SCHILY.xattr.security.capability` of `path` in the image's last layer.
fn capability(image_tar: &Path, path: &str) -> Option<Vec<u8>> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&member(image_tar, "manifest.json").unwrap()).unwrap();
    let last = manifest[0]["Layers"].as_array().unwrap().last().unwrap();
    let layer = member(image_tar, last.as_str().unwrap()).unwrap();
    let mut archive = tar::Archive::new(&layer[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap() == Path::new(path) {
            for ext in e.pax_extensions().unwrap()? {
                let ext = ext.unwrap();
                if ext.key().unwrap() == "SCHILY.xattr.security.capability" {
                    return Some(ext.value_bytes().to_vec());
                }
            }
        }
    }
    None
}

#[test]
fn a_saved_plan_pins_its_bases_and_is_refused_when_one_moved() {
    let base = ensure_test_base();
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    // A tag of its own, so the test can move it.
    let tag = format!("kbuild-test-base:moving-{}", std::process::id());
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    docker(&["tag", base, &tag]);
    let pin = format!("go-runner={tag}");
    let (code, stdout, stderr) = run(kbuild()
        .args([
            "plan",
            "--json",
            "quick-release",
            "--platform",
            "linux/amd64",
        ])
        .args(["--kube-root", s(repo.path()), "--image", BUILDER_IMAGE])
        .args(["--out", s(&work.path().join("o")), "--min-disk", "1g"])
        .args(["--base-image", &pin, "--base-image"])
        .arg(format!("distroless-iptables={base}")));
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let id = docker(&["image", "inspect", "-f", "{{.Id}}", &tag]);
    let pinned = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["binary"] == "kube-scheduler")
        .unwrap();
    assert_eq!(pinned["base_id"], id, "{pinned}");
    let plan_file = work.path().join("plan.json");
    std::fs::write(&plan_file, &stdout).unwrap();

    // The tag now names another image: the saved plan is stale, before any build.
    docker(&["tag", BUILDER_IMAGE, &tag]);
    let (code, _, stderr) = run(kbuild().arg("run").arg(&plan_file));
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("moved") && stderr.contains(&id), "{stderr}");
    assert!(!stderr.contains("==> build"), "{stderr}");
}

#[test]
fn server_images_are_refused_without_a_base_and_loadable_reproducible_and_verified_with_one() {
    let base = ensure_test_base();
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();

    // The tree pins registry.k8s.io's go-runner, which this engine lacks: refused before
    // any build or any write, naming the way out.
    let refused = work.path().join("refused");
    let (code, stderr) = quick_release(repo.path(), &refused, &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("registry.k8s.io/build-image/go-runner:v2.4.0-go1.25.5-bookworm.0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--no-images") && stderr.contains("--base-image"),
        "{stderr}"
    );
    assert!(!stderr.contains("==> build"), "{stderr}");
    assert!(
        !refused.exists(),
        "a refused run wrote {}",
        refused.display()
    );

    let (go_runner, distroless) = (
        format!("go-runner={base}"),
        format!("distroless-iptables={base}"),
    );
    let flags = ["--base-image", &go_runner, "--base-image", &distroless];
    let out = work.path().join("one");
    let (code, stderr) = quick_release(repo.path(), &out, &flags);
    assert_eq!(code, 0, "{stderr}");

    // Upstream's places: server/bin of the server tarball, and release-images/<arch>/.
    let images = out.join("release-images/amd64");
    let binaries = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-proxy",
        "kube-scheduler",
        "kubectl",
    ];
    let mut found: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let want: Vec<String> = binaries.iter().map(|b| format!("{b}.tar")).collect();
    assert_eq!(found, want);
    let server = out.join("release-tars/kubernetes-server-linux-amd64.tar.gz");
    let listing = Command::new("tar")
        .arg("tzf")
        .arg(&server)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for b in binaries {
        for f in [format!("{b}.tar"), format!("{b}.docker_tag")] {
            let path = format!("kubernetes/server/bin/{f}");
            assert!(
                listing.lines().any(|l| l == path),
                "{path} not in\n{listing}"
            );
        }
    }
    let tag = Command::new("tar")
        .args([
            "xzOf",
            s(&server),
            "kubernetes/server/bin/kube-apiserver.docker_tag",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tag.stdout), "v1.34.0\n");

    // The binary has setcap's capability, in the tar header (a docker load of security.*
    // xattrs can fail on some storage drivers).
    assert_eq!(
        capability(
            &images.join("kube-apiserver.tar"),
            "usr/local/bin/kube-apiserver"
        )
        .as_deref(),
        Some(&[1u8, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..])
    );
    assert_eq!(
        capability(
            &images.join("kube-scheduler.tar"),
            "usr/local/bin/kube-scheduler"
        ),
        None
    );

    // The manifest lists every image with its digests and its base's.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("release-tars/manifest.json")).unwrap())
            .unwrap();
    let listed = manifest["images"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{listed:?}");
    for image in listed {
        for field in ["configDigest", "manifestDigest", "baseDigest"] {
            assert!(
                image[field].as_str().unwrap().starts_with("sha256:"),
                "{field}: {image}"
            );
        }
        assert_eq!(image["base"], base);
    }
    assert!(manifest["notes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| !n.as_str().unwrap().contains("server images")));

    // The SBOM: each image a descendant of its base, containing its binary (whose Go
    // modules are under it); the provenance names the image tars.
    let sbom: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("release-tars/kubernetes-release.spdx.json")).unwrap(),
    )
    .unwrap();
    let relations = sbom["relationships"].to_string();
    for b in binaries {
        let image = format!("SPDXRef-Image-release-images-amd64-{b}.tar");
        assert!(
            relations.contains(&format!(r#""relatedSpdxElement":"SPDXRef-BaseImage-kbuild-test-base-1","relationshipType":"DESCENDANT_OF","spdxElementId":"{image}""#)),
            "{relations}"
        );
        assert!(
            relations.contains(&format!(r#""relatedSpdxElement":"SPDXRef-Binary-linux-amd64-{b}","relationshipType":"CONTAINS","spdxElementId":"{image}""#)),
            "{relations}"
        );
    }
    let provenance =
        std::fs::read_to_string(out.join("release-tars/kubernetes-release.intoto.jsonl")).unwrap();
    assert!(
        provenance.contains(r#""name":"release-images/amd64/kube-proxy.tar""#),
        "{provenance}"
    );

    // The real tools: docker load and run, skopeo.
    let name = "registry.k8s.io/kube-scheduler-amd64:v1.34.0";
    let loaded = Command::new("docker")
        .args(["load", "-i", s(&images.join("kube-scheduler.tar"))])
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    let ran = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/usr/local/bin/kube-scheduler",
        ])
        .args([name, "--version"])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", name]).output();
    assert!(
        String::from_utf8_lossy(&ran.stdout).contains("v1.34.0"),
        "{ran:?}"
    );
    let skopeo = Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "docker-archive:{}",
            s(&images.join("kube-apiserver.tar"))
        ))
        .output();
    if let Ok(skopeo) = skopeo {
        assert!(skopeo.status.success(), "{skopeo:?}");
        let report: serde_json::Value = serde_json::from_slice(&skopeo.stdout).unwrap();
        assert_eq!(report["Architecture"], "amd64");
    }

    // ctr import through dockerd's own containerd, where it has one (into a namespace of
    // this test's, removed after).
    let socket = [
        "/var/run/docker/containerd/containerd.sock",
        "/run/containerd/containerd.sock",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    if let (Some(socket), true) = (
        socket,
        Command::new("ctr").arg("--version").output().is_ok(),
    ) {
        let ns = format!("kbuild-test-{}", std::process::id());
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .args(["-a", socket, "-n", &ns])
                .args(args)
                .output()
                .unwrap()
        };
        let imported = ctr(&[
            "images",
            "import",
            "--no-unpack",
            s(&images.join("kube-proxy.tar")),
        ]);
        let listed = ctr(&["images", "ls", "-q"]);
        let _ = ctr(&["images", "rm", "registry.k8s.io/kube-proxy-amd64:v1.34.0"]);
        let _ = Command::new("ctr")
            .args(["-a", socket, "namespaces", "rm", &ns])
            .output();
        assert!(imported.status.success(), "{imported:?}");
        assert!(
            String::from_utf8_lossy(&listed.stdout)
                .contains("registry.k8s.io/kube-proxy-amd64:v1.34.0"),
            "{listed:?}"
        );
    }

    // kbuild verify re-hashes the images too.
    let (code, _, stderr) = run(kbuild().args(["verify", s(&out)]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("release-images/amd64/kube-apiserver.tar"),
        "{stderr}"
    );

    // A second run, of just the images (`--images-only`, upstream's `make release-images`)
    // into its own --out, writes the same bytes, and no tarballs.
    let two = work.path().join("two");
    let mut again = flags.to_vec();
    again.push("--images-only");
    let (code, stderr) = quick_release(repo.path(), &two, &again);
    assert_eq!(code, 0, "{stderr}");
    assert!(!two.join("release-tars").exists());
    for b in binaries {
        let tar = format!("release-images/amd64/{b}.tar");
        assert!(
            std::fs::read(out.join(&tar)).unwrap() == std::fs::read(two.join(&tar)).unwrap(),
            "{tar} differs between two runs"
        );
    }
}
