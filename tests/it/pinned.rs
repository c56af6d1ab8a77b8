//! A saved plan pins every input, and `kbuild run plan.json` checks every pin before it
//! creates anything. A stale plan of each command kind (build: the dirty tree edited after
//! planning; quick-release: the image retagged or gone; extension: its jobs come out
//! differently; package: a binary swapped) and an unreachable engine are refused, and leave
//! no trace: --out absent or exactly as it was (every file's size and mtime, the previous
//! run's kbuild-timings.* included), and no new container, volume or image on the engine.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Every file and directory under `dir` with its size and mtime (nanoseconds), or None when
/// `dir` does not exist.
fn listing(dir: &Path) -> Option<Vec<(PathBuf, u64, i128)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, u64, i128)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mtime = meta
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i128;
            out.push((
                path.strip_prefix(root).unwrap().to_path_buf(),
                meta.len(),
                mtime,
            ));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    if !dir.exists() {
        return None;
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    Some(out)
}

fn lines(cmd: &mut Command) -> Vec<String> {
    let out = cmd.output().expect("docker runs");
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    found.sort();
    found
}

/// What the engine holds that a run on the tree at `root` with `image` could have made:
/// containers and volumes with kbuild's labels for the tree, kbuild's Go cache volumes, and
/// the images under `image`'s repository (a pull by tag would change them).
fn engine_state(root: &Path, image: &str) -> Vec<String> {
    let root = root.canonicalize().unwrap();
    let source = format!("label=io.kbuild.source={}", root.display());
    let mut state = lines(
        Command::new("docker")
            .args(["ps", "-a", "--format", "container {{.ID}}"])
            .args(["--filter", "label=io.kbuild.managed", "--filter", &source]),
    );
    state.extend(lines(
        Command::new("docker")
            .args(["volume", "ls", "--format", "volume {{.Name}}"])
            .args(["--filter", "label=io.kbuild.managed", "--filter", &source]),
    ));
    let repo = image.split(':').next().unwrap();
    state.extend(lines(Command::new("docker").args([
        "images",
        "--no-trunc",
        "--format",
        "image {{.Repository}}:{{.Tag}} {{.ID}}",
        "--filter",
        &format!("reference={repo}"),
    ])));
    state
}

/// Go cache volumes (kbuild's, shared by runs): none may appear during a refused run. Other
/// runs on the engine may add some meanwhile, so only the one the plan names is compared.
fn volume_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `kbuild plan --json <args>` saved to `file`.
fn save_plan(file: &Path, cmd: &mut Command) -> serde_json::Value {
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(code, 0, "kbuild plan: {stderr}");
    std::fs::write(file, &stdout).unwrap();
    serde_json::from_str(&stdout).unwrap()
}

/// Runs the saved plan `file` and asserts it is refused with `code`, leaving --out and the
/// engine as they were; returns stderr.
fn assert_refused_without_trace(
    file: &Path,
    out: &Path,
    root: &Path,
    image: &str,
    code: i32,
) -> String {
    let (out_before, engine_before) = (listing(out), engine_state(root, image));
    let elsewhere = tempfile::tempdir().unwrap();
    let (got, _, stderr) = run(kbuild().current_dir(elsewhere.path()).arg("run").arg(file));
    assert_eq!(got, code, "refused with exit {code}: {stderr}");
    assert_eq!(
        listing(out),
        out_before,
        "--out is untouched (or still absent): {stderr}"
    );
    assert_eq!(
        engine_state(root, image),
        engine_before,
        "nothing new on the engine"
    );
    stderr
}

/// A unique tag of the builder image, removed when dropped.
struct Tag(String);

impl Tag {
    fn of_builder(name: &str) -> Tag {
        let tag = format!("kbuild-pinned-{name}:{}", std::process::id());
        assert!(Command::new("docker")
            .args(["tag", BUILDER_IMAGE, &tag])
            .status()
            .unwrap()
            .success());
        Tag(tag)
    }

    /// Points the tag at an empty image of its own.
    fn move_to_empty(&self, work: &Path) {
        let empty = work.join("empty.tar");
        let status = Command::new("tar")
            .arg("-cf")
            .arg(&empty)
            .args(["-T", "/dev/null"])
            .status()
            .unwrap();
        assert!(status.success());
        let imported = Command::new("docker")
            .arg("import")
            .arg(&empty)
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(imported.status.success(), "{imported:?}");
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn a_build_plan_of_a_dirty_tree_edited_after_planning_is_refused_without_trace() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    let file = work.path().join("plan.json");
    std::fs::write(repo.path().join("NOTES"), "work in progress\n").unwrap();
    let mut planning = kbuild();
    planning
        .args([
            "plan",
            "--json",
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
        ])
        .args(["--image", BUILDER_IMAGE, "--timings"])
        .arg("--kube-root")
        .arg(repo.path())
        .arg("--out")
        .arg(&out);
    let plan = save_plan(&file, &mut planning);
    assert_eq!(plan["source"]["tree_state"], "dirty", "{plan}");
    assert!(
        plan["source"]["changes"]
            .as_str()
            .is_some_and(|d| d.len() == 64),
        "a dirty tree is pinned by the digest of its changes: {plan}"
    );
    // The plan runs as made, and writes its timings.
    let (code, _, stderr) = run(kbuild().arg("run").arg(&file));
    assert_eq!(code, 0, "the saved plan runs: {stderr}");
    assert!(out.join("kbuild-timings.json").is_file(), "{stderr}");
    // Edited after planning: the commit is the same, the changes are not.
    std::fs::write(repo.path().join("NOTES"), "more work\n").unwrap();
    let stderr = assert_refused_without_trace(&file, &out, repo.path(), BUILDER_IMAGE, 2);
    assert!(
        stderr.contains("stale") && stderr.contains("uncommitted changes differ"),
        "{stderr}"
    );
    assert_no_containers_left(repo.path());
}

#[test]
fn a_quick_release_plan_whose_image_was_retagged_or_removed_is_refused_without_trace() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    let file = work.path().join("plan.json");
    let tag = Tag::of_builder("qr");
    let plan = save_plan(
        &file,
        kbuild()
            .args([
                "plan",
                "--json",
                "quick-release",
                "--no-test-tarballs",
                "--no-images",
                "--platform",
                "linux/amd64",
            ])
            .args(["--image", &tag.0, "--min-memory", "1g", "--min-disk", "1g"])
            .arg("--kube-root")
            .arg(repo.path())
            .arg("--out")
            .arg(&out),
    );
    let volume = plan["engine"]["cache_volume"].as_str().unwrap().to_string();
    let had_volume = volume_exists(&volume);
    // Retagged: another image under the planned name.
    tag.move_to_empty(work.path());
    let stderr = assert_refused_without_trace(&file, &out, repo.path(), &tag.0, 2);
    assert!(
        stderr.contains("stale") && stderr.contains(&tag.0),
        "{stderr}"
    );
    // Gone, and the plan names no repository digest (a local image has none): refused,
    // not pulled by tag.
    let _ = Command::new("docker").args(["rmi", "-f", &tag.0]).output();
    let stderr = assert_refused_without_trace(&file, &out, repo.path(), &tag.0, 2);
    assert!(
        stderr.contains("not on the engine") && stderr.contains("repository digest"),
        "{stderr}"
    );
    assert_eq!(
        volume_exists(&volume),
        had_volume,
        "no Go cache volume made"
    );
    assert_no_containers_left(repo.path());
}

#[test]
fn an_extension_plan_whose_jobs_come_out_differently_is_refused_without_trace() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    let file = work.path().join("plan.json");
    // Planned with a variable that reaches the build; run without it.
    save_plan(
        &file,
        kbuild()
            .env("GOFLAGS", "-mod=vendor")
            .args(["plan", "--json", "extension", "--platform", "linux/amd64"])
            .args([
                "--image",
                BUILDER_IMAGE,
                "--min-memory",
                "1g",
                "--min-disk",
                "1g",
            ])
            .arg("--kube-root")
            .arg(repo.path())
            .arg("--out")
            .arg(&out),
    );
    let stderr = assert_refused_without_trace(&file, &out, repo.path(), BUILDER_IMAGE, 2);
    assert!(
        stderr.contains("stale") && stderr.contains("differs in env"),
        "{stderr}"
    );
    assert!(!out.exists(), "not even an empty --out");
    assert_no_containers_left(repo.path());
}

#[test]
fn a_package_plan_whose_binary_was_swapped_is_refused_without_trace() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    let file = work.path().join("plan.json");
    let bin = work.path().join("bin");
    let arch = bin.join("linux/amd64");
    std::fs::create_dir_all(&arch).unwrap();
    for name in ["kubectl", "kube-proxy", "kubelet", "kubeadm"] {
        std::fs::write(arch.join(name), format!("\x7fELF {name}\n")).unwrap();
    }
    let plan = save_plan(
        &file,
        kbuild()
            .args(["plan", "--json", "package", "--bin"])
            .arg(&bin)
            .arg("--kube-root")
            .arg(repo.path())
            .arg("--out")
            .arg(&out),
    );
    assert_eq!(
        plan["binaries"].as_array().map(Vec::len),
        Some(4),
        "every binary is pinned: {plan}"
    );
    std::fs::copy(arch.join("kube-proxy"), arch.join("kubectl")).unwrap();
    let stderr = assert_refused_without_trace(&file, &out, repo.path(), BUILDER_IMAGE, 2);
    assert!(
        stderr.contains("stale") && stderr.contains(&s(&arch.join("kubectl"))),
        "{stderr}"
    );
    assert!(!out.exists(), "not even an empty --out");
}

#[test]
fn an_unreachable_engine_refuses_before_anything_is_created() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    let dead = format!("unix://{}", work.path().join("dead.sock").display());
    // A command run directly.
    let (code, _, stderr) =
        run(build_cmd(repo.path(), &out, &["kubectl"], &["linux/amd64"]).env("DOCKER_HOST", &dead));
    assert_eq!(code, 5, "an unreachable engine is exit 5: {stderr}");
    assert!(!out.exists(), "not even an empty --out: {stderr}");
    // A saved plan run where the engine does not answer.
    let file = work.path().join("plan.json");
    save_plan(
        &file,
        kbuild()
            .args([
                "plan",
                "--json",
                "build",
                "kubectl",
                "--platform",
                "linux/amd64",
            ])
            .args(["--image", BUILDER_IMAGE])
            .arg("--kube-root")
            .arg(repo.path())
            .arg("--out")
            .arg(&out),
    );
    let (code, _, stderr) = run(kbuild().env("DOCKER_HOST", &dead).arg("run").arg(&file));
    assert_eq!(code, 5, "an unreachable engine is exit 5: {stderr}");
    assert!(!out.exists(), "not even an empty --out: {stderr}");
}

#[test]
fn a_defaulted_tree_that_cannot_be_read_is_not_planned() {
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(kbuild().current_dir(elsewhere.path()).args([
        "plan",
        "--json",
        "build",
        "kubectl",
        "--image",
        BUILDER_IMAGE,
    ]));
    assert_eq!(code, 2, "refused as `build` is: {stdout} {stderr}");
    assert!(stderr.contains("not a Kubernetes tree"), "{stderr}");
    // Named explicitly, a tree planned here and run elsewhere is stored absolute.
    let (code, stdout, stderr) = run(kbuild().current_dir(elsewhere.path()).args([
        "plan",
        "--json",
        "build",
        "kubectl",
        "--image",
        BUILDER_IMAGE,
        "--kube-root",
        "k",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let root = elsewhere
        .path()
        .canonicalize()
        .unwrap_or(elsewhere.path().into());
    let planned = PathBuf::from(plan["source"]["root"].as_str().unwrap());
    assert!(planned.is_absolute(), "{plan}");
    assert!(
        planned.ends_with("k") && planned.parent().unwrap().canonicalize().unwrap() == root,
        "{plan}"
    );
}

#[test]
fn a_ref_plan_pins_the_commit_and_a_moved_ref_is_refused_before_the_fetch() {
    let upstream = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let (out, checkout) = (work.path().join("o"), work.path().join("src"));
    let file = work.path().join("plan.json");
    let plan = save_plan(
        &file,
        kbuild()
            .args([
                "plan",
                "--json",
                "build",
                "kubectl",
                "--platform",
                "linux/amd64",
            ])
            .args(["--image", BUILDER_IMAGE, "--repo", &upstream.url()])
            .args(["--ref", "master", "--source-dir"])
            .arg(&checkout)
            .arg("--out")
            .arg(&out),
    );
    let planned = upstream.master.last().unwrap();
    assert_eq!(
        plan["source"]["commit"].as_str(),
        Some(planned.as_str()),
        "the commit master names, asked without a fetch: {plan}"
    );
    assert!(!checkout.exists(), "planning fetches nothing");
    let moved = upstream.add_commit("master", "c41");
    let (code, _, stderr) = run(kbuild().arg("run").arg(&file));
    assert_eq!(code, 2, "a moved ref is refused: {stderr}");
    assert!(
        stderr.contains(planned.as_str()) && stderr.contains(&moved),
        "{stderr}"
    );
    assert!(!checkout.exists(), "refused before the fetch: {stderr}");
    assert!(!out.exists(), "not even an empty --out: {stderr}");
}
