//! `kbuild extension --tag`: the multi-arch extension image without buildx, checked with
//! the tools an author would use: skopeo and umoci on the OCI layout, a real registry
//! (Debian's docker-registry, the CNCF distribution server) for --push, `file` on the
//! binaries inside, and the Docker engine for --load.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a tool and returns its stdout, failing the test with its stderr otherwise.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (cargo xtask test installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The author's extras: metadata.json with a UI tab, an icon and a static UI.
struct Extras {
    dir: tempfile::TempDir,
}

impl Extras {
    fn new() -> Extras {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("metadata.json"),
            r#"{"ui": {"dashboard-tab": {"title": "Kubectl", "root": "/ui", "src": "index.html"}}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("icon.svg"),
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("ui")).unwrap();
        std::fs::write(dir.path().join("ui/index.html"), "<p>kubectl</p>\n").unwrap();
        Extras { dir }
    }

    fn args(&self) -> Vec<String> {
        let p = |n: &str| self.dir.path().join(n).to_str().unwrap().to_string();
        vec![
            "--metadata".into(),
            p("metadata.json"),
            "--icon".into(),
            p("icon.svg"),
            "--ui".into(),
            p("ui"),
            "--label".into(),
            "org.opencontainers.image.vendor=Kbuild Tests".into(),
            "--label".into(),
            "com.docker.desktop.extension.api.version=>= 0.3.4".into(),
        ]
    }
}

/// `kbuild extension --tag <tag> <extras> <more>` on the tree at `repo`.
fn extension(repo: &Path, out: &Path, tag: &str, extras: &Extras, more: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run(kbuild()
        .args([
            "extension",
            "--kube-root",
            s(repo),
            "--image",
            BUILDER_IMAGE,
            "--out",
            s(out),
        ])
        .args(["--tag", tag])
        .args(extras.args())
        .args(more));
    (code, stderr)
}

/// The files of one platform's single layer, unpacked into `dest`.
fn unpack_layer(manifest_dir: &Path, dest: &Path) {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest_dir.join("manifest.json")).unwrap())
            .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let digest = layers[0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    std::fs::create_dir_all(dest).unwrap();
    tool(
        "tar",
        &["xzf", s(&manifest_dir.join(digest)), "-C", s(dest)],
    );
}

/// What `file` says about a file.
fn file_says(path: &Path) -> String {
    tool("file", &["-b", s(path)])
}

fn platforms_of(index: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(index).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn extension_tag_writes_a_two_platform_oci_layout_that_skopeo_and_umoci_read() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let extras = Extras::new();
    let (code, stderr) = extension(repo.path(), out.path(), "me/kubectl-ext:1.0", &extras, &[]);
    assert_eq!(code, 0, "kbuild extension --tag failed:\n{stderr}");
    let ext = out.path().join("extension");
    let layout = ext.join("image");
    let index = tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:1.0", s(&layout))],
    );
    assert_eq!(
        platforms_of(&index),
        ["linux/amd64", "linux/arm64"],
        "{index}"
    );
    assert!(ext.join("image.oci.tar.gz").is_file());
    let archived = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}:1.0", s(&ext.join("image.oci.tar.gz"))),
        ],
    );
    assert_eq!(archived, index, "the oci-archive holds the same index");

    // Labels from the flags and the source.
    let config = tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:1.0-linux-arm64", s(&layout)),
        ],
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.vendor"], "Kbuild Tests");
    assert_eq!(
        labels["com.docker.desktop.extension.api.version"],
        ">= 0.3.4"
    );
    assert_eq!(labels["org.opencontainers.image.title"], "kubectl-ext");
    assert_eq!(labels["org.opencontainers.image.version"], "v1.34.0");
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        repo.commit().as_str()
    );
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(
        config["created"], "2023-11-14T22:13:20Z",
        "created is SOURCE_DATE_EPOCH"
    );

    // umoci unpacks each platform (by its own name: the tag names the index of both).
    for (arch, darwin_cpu) in [("amd64", "x86_64"), ("arm64", "arm64")] {
        let bundle = out.path().join(format!("bundle-{arch}"));
        tool(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:1.0-linux-{arch}", s(&layout)),
                s(&bundle),
            ],
        );
        let root = bundle.join("rootfs");
        let darwin = file_says(&root.join("darwin/kubectl"));
        assert!(
            darwin.contains("Mach-O 64-bit") && darwin.contains(darwin_cpu),
            "{arch}: {darwin}"
        );
        let windows = file_says(&root.join("windows/kubectl.exe"));
        let want = if arch == "amd64" { "x86-64" } else { "Aarch64" };
        assert!(
            windows.contains("PE32+") && windows.contains(want),
            "{arch}: {windows}"
        );
        let metadata: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("metadata.json")).unwrap())
                .unwrap();
        assert_eq!(metadata["icon"], "icon.svg");
        assert_eq!(
            metadata["ui"]["dashboard-tab"]["title"], "Kubectl",
            "the author's keys stay"
        );
        let binaries = &metadata["host"]["binaries"][0];
        assert_eq!(binaries["darwin"][0]["path"], "/darwin/kubectl");
        assert_eq!(binaries["windows"][0]["path"], "/windows/kubectl.exe");
        assert!(root.join("icon.svg").is_file() && root.join("ui/index.html").is_file());
    }

    // The layer tar is normalized: sorted, root-owned, SOURCE_DATE_EPOCH times.
    let blob_dir = out.path().join("one");
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:1.0-linux-amd64", s(&layout)),
            &format!("dir:{}", s(&blob_dir)),
        ],
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(blob_dir.join("manifest.json")).unwrap())
            .unwrap();
    let layer = blob_dir.join(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let listing = tool(
        "tar",
        &["tzvf", s(&layer), "--numeric-owner", "--full-time"],
    );
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{listing}");
    assert!(
        listing
            .lines()
            .all(|l| l.contains(" 0/0 ") && l.contains("2023-11-14 22:13:20")),
        "{listing}"
    );

    // The same inputs give the same image: write it again from scratch.
    let first = std::fs::read(layout.join("index.json")).unwrap();
    std::fs::remove_dir_all(&ext).unwrap();
    let (code, stderr) = extension(repo.path(), out.path(), "me/kubectl-ext:1.0", &extras, &[]);
    assert_eq!(code, 0, "second run failed:\n{stderr}");
    assert_eq!(
        std::fs::read(layout.join("index.json")).unwrap(),
        first,
        "same index digest"
    );

    // The extension directory still verifies (the image vouches for itself by digest).
    let (code, _, stderr) = run(kbuild().args(["verify", s(&ext)]));
    assert_eq!(code, 0, "{stderr}");
    assert_no_containers_left(repo.path());
}

#[test]
fn extension_image_inputs_are_checked_before_anything_is_built() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("o");
    let base = || {
        let mut c = kbuild();
        c.args([
            "extension",
            "--kube-root",
            s(repo.path()),
            "--image",
            BUILDER_IMAGE,
            "--out",
            s(&dest),
        ]);
        c
    };
    let bad_json_file = out.path().join("metadata.json");
    std::fs::write(&bad_json_file, "{\"ui\": ").unwrap();
    let bad_json = bad_json_file.to_str().unwrap().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--tag", "Me/Ext:1.0"], "not an image name"),
        (
            &["--tag", "me/ext:1.0", "--icon", "/nonexistent/icon.svg"],
            "--icon",
        ),
        (&["--tag", "me/ext:1.0", "--label", "novalue"], "KEY=VALUE"),
        (&["--push"], "--tag"),
        (
            &["--tag", "me/ext:1.0", "--metadata", &bad_json],
            "not JSON",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, stderr) = run(base().args(*args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!dest.exists(), "{args:?} left {} behind", dest.display());
    }
    assert_no_containers_left(repo.path());
}

/// Debian's docker-registry on 127.0.0.1 with its own storage and config, stopped on drop.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry starts (cargo xtask test installs it)");
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed().as_secs() < 20,
                "the registry did not listen on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }

    fn image(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn extension_push_sends_both_platforms_to_a_registry_with_the_same_digest_twice() {
    let registry = Registry::start();
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let extras = Extras::new();
    let tag = registry.image("me/kubectl-ext:1.0");
    let (code, stderr) = extension(repo.path(), out.path(), &tag, &extras, &["--push"]);
    assert_eq!(code, 0, "kbuild extension --push failed:\n{stderr}");
    let remote = format!("docker://{tag}");
    let index = tool(
        "skopeo",
        &["inspect", "--tls-verify=false", "--raw", &remote],
    );
    assert_eq!(
        platforms_of(&index),
        ["linux/amd64", "linux/arm64"],
        "{index}"
    );
    for arch in ["amd64", "arm64"] {
        let dir = out.path().join(format!("pulled-{arch}"));
        tool(
            "skopeo",
            &[
                "copy",
                "--src-tls-verify=false",
                "--override-arch",
                arch,
                &remote,
                &format!("dir:{}", s(&dir)),
            ],
        );
        let root = out.path().join(format!("root-{arch}"));
        unpack_layer(&dir, &root);
        let darwin = file_says(&root.join("darwin/kubectl"));
        let windows = file_says(&root.join("windows/kubectl.exe"));
        let linux = file_says(&root.join("linux/kubectl"));
        if arch == "arm64" {
            assert!(
                darwin.contains("Mach-O 64-bit") && darwin.contains("arm64"),
                "{darwin}"
            );
            assert!(
                linux.contains("ELF 64-bit") && linux.contains("aarch64"),
                "{linux}"
            );
        } else {
            assert!(
                windows.contains("PE32+") && windows.contains("x86-64"),
                "{windows}"
            );
            assert!(
                linux.contains("ELF 64-bit") && linux.contains("x86-64"),
                "{linux}"
            );
        }
        assert!(root.join("metadata.json").is_file());
    }
    // A second run from scratch pushes the very same image.
    let digest = |raw: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(raw.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    std::fs::remove_dir_all(out.path().join("extension")).unwrap();
    let (code, stderr) = extension(repo.path(), out.path(), &tag, &extras, &["--push"]);
    assert_eq!(code, 0, "second push failed:\n{stderr}");
    let again = tool(
        "skopeo",
        &["inspect", "--tls-verify=false", "--raw", &remote],
    );
    assert_eq!(
        digest(&again),
        digest(&index),
        "the image digest is the same on a second run"
    );
    assert!(
        stderr.contains(&format!("sha256:{}", digest(&index))),
        "the digest is reported:\n{stderr}"
    );

    // A registry that does not answer: exit 5, a hint, and the credentials never shown.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let password = "kbuild-push-password-93b1";
    let (code, _, stderr) = run(kbuild()
        .args([
            "extension",
            "--kube-root",
            s(repo.path()),
            "--image",
            BUILDER_IMAGE,
            "--out",
            s(out.path()),
        ])
        .args([
            "--tag",
            &format!("127.0.0.1:{closed}/me/kubectl-ext:1.0"),
            "--push",
        ])
        .env("KBUILD_REGISTRY_USERNAME", "me")
        .env("KBUILD_REGISTRY_PASSWORD", password));
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("cannot push") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(password),
        "the password was printed:\n{stderr}"
    );
    assert_no_containers_left(repo.path());
}

/// Removes an image this test loaded, even when the test fails.
struct LoadedImage(String);

impl Drop for LoadedImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.0])
            .output();
    }
}

#[test]
fn extension_load_puts_the_engines_variant_into_the_engine_with_its_labels() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let extras = Extras::new();
    let name = format!(
        "kbuild-test/extimage-load:{}",
        PathBuf::from(out.path())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_lowercase()
            .replace(['.', '_'], "-")
            .trim_start_matches('-')
    );
    let _cleanup = LoadedImage(name.clone());
    let (code, stderr) = extension(repo.path(), out.path(), &name, &extras, &["--load"]);
    assert_eq!(code, 0, "kbuild extension --load failed:\n{stderr}");
    let engine_arch = tool("docker", &["version", "--format", "{{.Server.Arch}}"]);
    let inspected = tool(
        "docker",
        &[
            "image",
            "inspect",
            &name,
            "--format",
            "{{.Architecture}} {{index .Config.Labels \"org.opencontainers.image.vendor\"}}",
        ],
    );
    assert_eq!(
        inspected.trim(),
        format!("{} Kbuild Tests", engine_arch.trim())
    );
    assert_no_containers_left(repo.path());
}

#[test]
fn a_recipe_carries_the_extension_image_keys_and_only_for_extension() {
    let dir = tempfile::tempdir().unwrap();
    let tree = KubeRepo::tagged("v1.34.0");
    let recipe = dir.path().join("ext.toml");
    std::fs::write(
        &recipe,
        format!(
            "command = \"extension\"\n\n[source]\nkube_root = \"{}\"\n\n[extension]\n\
             tag = \"me/kubectl-ext:1.0\"\nmetadata = \"metadata.json\"\nicon = \"icon.svg\"\n\
             ui = \"ui\"\nlabels = [\"org.opencontainers.image.vendor=Me\"]\npush = true\n",
            tree.path().display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(kbuild().args(["plan", s(&recipe)]));
    assert_eq!(code, 0, "{stderr}");
    for part in [
        "tag = \"me/kubectl-ext:1.0\"",
        "metadata = \"metadata.json\"",
        "icon = \"icon.svg\"",
        "ui = \"ui\"",
        "label = [\"org.opencontainers.image.vendor=Me\"]",
        "push = true",
        "extension/image.oci.tar.gz",
    ] {
        assert!(stdout.contains(part), "{part} is planned:\n{stdout}");
    }
    let wrong = dir.path().join("build.toml");
    std::fs::write(
        &wrong,
        "command = \"build\"\ncomponents = [\"kubectl\"]\n\n[extension]\npush = true\n",
    )
    .unwrap();
    let (code, _, stderr) = run(kbuild().args(["recipe", "check", s(&wrong)]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("build.toml:1:") && stderr.contains("[extension]"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}
