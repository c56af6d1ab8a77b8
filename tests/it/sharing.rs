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

/// Whether `needle` occurs in the file at `path`.
fn file_contains(path: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn two_builds_of_one_tree_into_two_outputs_take_turns_and_stay_consistent() {
    // make writes <tree>/_output whatever --out says. The build script lingers after
    // building, so that a second run building at the same time would overwrite what the
    // first is about to install.
    let marker = "kbuild-test: built";
    let repo = KubeRepo::tagged("v1.33.0");
    patch_build_script(repo.path(), "", &format!("echo '{marker}'; sleep 8"));
    let work = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (work.path().join("cA"), work.path().join("cB"));
    let components = ["kubectl", "kubeadm", "kubelet"];
    let platforms = ["linux/amd64", "linux/arm64"];
    let build = |out: &Path, version: &str| {
        let mut cmd = build_cmd(repo.path(), out, &components, &platforms);
        cmd.args(["--version", version]);
        cmd
    };
    let mut a = Running::spawn(&mut build(&out_a, "v1.33.0-aaa"));
    a.wait_for(marker, 600);
    let mut b = Running::spawn(&mut build(&out_b, "v1.33.0-bbb"));
    b.wait_for(
        &format!("waiting for another kbuild run (pid {})", a.pid()),
        60,
    );
    let (code_a, stderr_a) = a.finish(600);
    assert_eq!(code_a, 0, "{stderr_a}");
    let (code_b, stderr_b) = b.finish(600);
    assert_eq!(code_b, 0, "{stderr_b}");
    let check = |out: &Path, mine: &str, other: &str| {
        let found = binaries(out);
        assert_eq!(found.len(), 6, "{found:?}");
        for bin in &found {
            let path = out.join(bin);
            assert!(file_contains(&path, mine), "{} lacks {mine}", bin.display());
            assert!(
                !file_contains(&path, other),
                "{} carries {other}",
                bin.display()
            );
        }
    };
    check(&out_a, "v1.33.0-aaa", "v1.33.0-bbb");
    check(&out_b, "v1.33.0-bbb", "v1.33.0-aaa");
    // The next run of A finds its fingerprint matching its binaries.
    let (code, _, stderr) = run(&mut build(&out_a, "v1.33.0-aaa"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("up to date"), "{stderr}");
    check(&out_a, "v1.33.0-aaa", "v1.33.0-bbb");
    assert_no_containers_left(repo.path());
}

#[test]
fn a_lock_file_planted_as_a_link_is_refused_and_its_target_kept() {
    let repo = KubeRepo::tagged("v1.33.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let precious = work.path().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    std::os::unix::fs::symlink(&precious, out.join(".kbuild.lock")).unwrap();
    let (code, _, stderr) = run(&mut build_cmd(repo.path(), &out, &["kubectl"], &[]));
    assert_eq!(code, 8, "{stderr}");
    assert!(
        stderr.contains(&out.join(".kbuild.lock").display().to_string())
            && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert!(binaries(&out).is_empty());
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && file_contains(&e.path(), needle) {
                found.push(e.path());
            }
        }
    }
    found
}

#[test]
fn a_repository_url_with_a_token_is_shown_nowhere() {
    // Nothing listens on port 1: the fetch fails, and kbuild says so naming the repository.
    let secret = "SECRET-7f3a";
    let repo_url = format!("http://gitlab-ci-token:{secret}@127.0.0.1:1/group/kubernetes.git");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    for json in [false, true] {
        let mut cmd = kbuild();
        if json {
            cmd.arg("--json");
        }
        cmd.args([
            "-v", "build", "kubectl", "--ref", "v1.33.0", "--repo", &repo_url,
        ])
        .arg("--source-dir")
        .arg(work.path().join("checkout"))
        .args(["--image", BUILDER_IMAGE, "--out", s(&out)]);
        let (code, stdout, stderr) = run(&mut cmd);
        assert_eq!(code, 6, "{stdout}{stderr}");
        assert!(
            stdout.contains("127.0.0.1:1/group/kubernetes.git")
                || stderr.contains("127.0.0.1:1/group/kubernetes.git"),
            "the repository is still named: {stdout}{stderr}"
        );
        assert!(!stdout.contains(secret), "{stdout}");
        assert!(!stderr.contains(secret), "{stderr}");
        assert!(!stdout.contains("gitlab-ci-token") && !stderr.contains("gitlab-ci-token"));
    }
    if out.exists() {
        assert_eq!(
            files_containing(&out, secret),
            Vec::<std::path::PathBuf>::new()
        );
    }
    // The same URL in a recipe: `recipe check` and `plan` print what it resolves to.
    let recipe = work.path().join("k8s.toml");
    std::fs::write(
        &recipe,
        format!("command = \"build\"\ncomponents = [\"kubectl\"]\n[source]\nrepo = \"{repo_url}\"\nref = \"v1.33.0\"\n"),
    )
    .unwrap();
    for sub in [&["recipe", "check"][..], &["plan"][..]] {
        let (code, stdout, stderr) = run(kbuild().args(sub).arg(&recipe));
        assert_eq!(code, 0, "{sub:?}: {stderr}");
        assert!(
            stdout.contains("127.0.0.1:1/group/kubernetes.git"),
            "{stdout}"
        );
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}{stderr}"
        );
    }
}

#[test]
fn an_origin_url_with_a_token_stays_out_of_manifest_logs_and_events() {
    let secret = "SECRET-91bd";
    let repo = KubeRepo::tagged("v1.33.0");
    git(
        repo.path(),
        &[
            "remote",
            "add",
            "origin",
            &format!("https://gitlab-ci-token:{secret}@gitlab.example.com/group/kubernetes.git"),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let mut build = build_cmd(repo.path(), out.path(), &["kubectl"], &["linux/amd64"]);
    build.args(["--json", "-v"]);
    let (code, stdout, stderr) = run(&mut build);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
    let mut package = kbuild();
    package
        .args(["--json", "-v", "package", "--kube-root", s(repo.path())])
        .args(["--out", s(out.path())]);
    let (code, stdout, stderr) = run(&mut package);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(!stderr.contains(secret), "{stderr}");
    let manifest = std::fs::read_to_string(out.path().join("release-tars/manifest.json")).unwrap();
    assert!(
        manifest.contains("https://***@gitlab.example.com/group/kubernetes.git"),
        "{manifest}"
    );
    assert_eq!(
        files_containing(out.path(), secret),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn a_git_daemon_is_stopped_with_its_children_even_when_the_test_fails() {
    let repo = KubeRepo::tagged("v1.33.0");
    let port = std::sync::atomic::AtomicU16::new(0);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let daemon = GitDaemon::serve(repo.path());
        port.store(daemon.port, std::sync::atomic::Ordering::SeqCst);
        let listed = std::process::Command::new("git")
            .args(["ls-remote", &daemon.url()])
            .output()
            .unwrap();
        assert!(listed.status.success(), "the daemon serves");
        panic!("the test fails while the daemon runs");
    }));
    assert!(failed.is_err());
    let needle = format!("--port={}", port.load(std::sync::atomic::Ordering::SeqCst));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !processes_matching(&needle).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(processes_matching(&needle), Vec::<String>::new());
}

/// The Go cache volume kbuild uses for the builder image and `uid` (src/cache.rs's naming).
fn cache_volume_for(uid: u32) -> String {
    use sha2::Digest;
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", BUILDER_IMAGE])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let digest = sha2::Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("kbuild-gocache-{hex}-{uid}")
}

/// Volumes a test made, removed when it ends however it ends.
struct VolumeGuard(Vec<String>);

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
    }
}

fn docker_ok(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_root_owned_go_cache_volume_left_by_an_interrupted_run_is_handed_to_the_build_user() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    // Builds run as the invoking user. The tests run as root, so kbuild runs here as a
    // user of its own, with the docker socket's group as its group to reach the engine.
    let uid = 4242;
    let gid = std::fs::metadata("/var/run/docker.sock").unwrap().gid();
    let volume = cache_volume_for(uid);
    let _cleanup = VolumeGuard(vec![volume.clone(), format!("{volume}.owned")]);
    for v in &_cleanup.0 {
        let _ = std::process::Command::new("docker")
            .args(["volume", "rm", "-f", v])
            .output();
    }
    // What a run stopped between creating the volume and handing it over leaves: the
    // labelled volume, owned by root.
    docker_ok(&[
        "volume",
        "create",
        "--label",
        "io.kbuild.managed=true",
        "--label",
        "io.kbuild.cache=go",
        "--label",
        &format!("io.kbuild.image={BUILDER_IMAGE}"),
        &volume,
    ]);
    let owner = |v: &str| {
        docker_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{v}:/c"),
            BUILDER_IMAGE,
            "stat",
            "-c",
            "%u:%g",
            "/c",
        ])
    };
    assert_eq!(owner(&volume), "0:0");
    let repo = KubeRepo::tagged("v1.33.0");
    let work = tempfile::tempdir().unwrap();
    let (home, out) = (work.path().join("home"), work.path().join("out"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    for dir in [repo.path(), work.path()] {
        let chown = std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(dir)
            .status()
            .unwrap();
        assert!(chown.success());
    }
    let mut cmd = build_cmd(repo.path(), &out, &["kubectl"], &["linux/amd64"]);
    cmd.env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .uid(uid)
        .gid(gid);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(owner(&volume), format!("{uid}:{gid}"));
    let kubectl = out.join("bin/linux/amd64/kubectl");
    assert_eq!(version_json(&kubectl)["gitVersion"], "v1.33.0");
    assert_no_containers_left(repo.path());
}

#[test]
fn a_ref_checkout_is_not_switched_while_a_build_uses_it() {
    // Upstream: v1.33.0, then v1.33.1 whose build script lingers, so the build is caught
    // while it runs in the checkout.
    let marker = "kbuild-test: building";
    let up = KubeRepo::tagged("v1.33.0");
    patch_build_script(up.path(), &format!("echo '{marker}'; sleep 5"), "");
    commit_all(up.path(), "a slow build");
    git(up.path(), &["tag", "-a", "v1.33.1", "-m", "v1.33.1"]);
    let url = format!("file://{}", up.path().display());
    let work = tempfile::tempdir().unwrap();
    let (checkout, out) = (work.path().join("k8s"), work.path().join("out"));
    let mut build = kbuild();
    build
        .args(["build", "kubectl", "--platform", "linux/amd64"])
        .args(["--image", BUILDER_IMAGE, "--ref", "v1.33.1", "--repo", &url])
        .arg("--source-dir")
        .arg(&checkout)
        .arg("--out")
        .arg(&out);
    let mut building = Running::spawn(&mut build);
    building.wait_for(marker, 600);
    let at_build = git(&checkout, &["rev-parse", "HEAD"]);
    // Another run on the same checkout at another ref: refused with --no-wait...
    let (code, _, stderr) = run(kbuild()
        .args([
            "source",
            "--no-wait",
            "--repo",
            &url,
            "--ref",
            "v1.33.0",
            "--dir",
        ])
        .arg(&checkout));
    assert_eq!(code, 9, "{stderr}");
    assert!(
        stderr.contains(&format!("another kbuild run (pid {})", building.pid()))
            && stderr.contains(&checkout.display().to_string()),
        "{stderr}"
    );
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), at_build);
    // ...and by default waits for the build to finish, then switches.
    let (code, _, stderr) = run(kbuild()
        .args(["source", "--repo", &url, "--ref", "v1.33.0", "--dir"])
        .arg(&checkout));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("waiting for another kbuild run"),
        "{stderr}"
    );
    let (code, stderr) = building.finish(600);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        version_json(&out.join("bin/linux/amd64/kubectl"))["gitVersion"],
        "v1.33.1"
    );
    assert_no_containers_left(&checkout);
}
