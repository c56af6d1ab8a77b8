//! The output directory is kbuild's own: `kbuild clean` removes nothing kbuild did not
//! create, no command writes through a link planted there, and an `--out` that is `/`,
//! `$HOME`, the tree (or its ancestor), or inside the tree without git ignoring it is refused.
//!
//! The clean refusals here stop before kbuild talks to the engine; the clean that does
//! remove (and empties the engine of kbuild's objects) is in tests/clean.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` with its bytes, sorted: what a user would compare.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                out.push((format!("{name}/"), Vec::new()));
                walk(root, &path, out);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((name, target.display().to_string().into_bytes()));
            } else {
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn clean(out: &str, cwd: &Path) -> (i32, String, String) {
    run(kbuild().args(["clean", "--out", out]).current_dir(cwd))
}

#[test]
fn clean_refuses_directories_kbuild_did_not_create_and_leaves_them_untouched() {
    let work = tempfile::tempdir().unwrap();

    // A directory of the user's.
    let d = work.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("notes.txt"), "precious\n").unwrap();
    let (code, _, stderr) = clean("d", work.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not made by kbuild"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(d.join("notes.txt")).unwrap(),
        "precious\n"
    );

    // A git checkout.
    let repo = KubeRepo::tagged("v1.34.0");
    let before = snapshot(repo.path());
    let (code, _, stderr) = clean(s(repo.path()), work.path());
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(snapshot(repo.path()), before, "the checkout is untouched");

    // The current directory, and /.
    let before = snapshot(work.path());
    for out in [".", "/"] {
        let (code, _, stderr) = clean(out, &d);
        assert_eq!(code, 2, "--out {out}: {stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }
    assert_eq!(snapshot(work.path()), before, "nothing was removed");
}

#[test]
fn outs_that_are_root_home_or_the_tree_are_refused_before_anything_is_written() {
    let repo = KubeRepo::tagged("v1.34.0");
    let home = tempfile::tempdir().unwrap();
    let before = snapshot(repo.path());
    let parent = repo.path().parent().unwrap().to_path_buf();
    let cases: [(&Path, &str); 4] = [
        (Path::new("/"), "the root directory"),
        (home.path(), "your home directory"),
        (repo.path(), "the source tree"),
        (&parent, "an ancestor of the source tree"),
    ];
    for (out, what) in cases {
        // An image the engine does not have: were the --out taken, the run would fail
        // later, differently (and without writing binaries under /usr/bin).
        let (code, _, stderr) = run(kbuild()
            .args(["build", "kubectl", "--platform", "linux/amd64"])
            .args(["--image", "kbuild-test-absent:none", "--kube-root"])
            .arg(repo.path())
            .arg("--out")
            .arg(out)
            .env("HOME", home.path()));
        assert_eq!(code, 2, "--out {}: {stderr}", out.display());
        assert!(stderr.contains(what), "--out {}: {stderr}", out.display());
        assert!(stderr.contains("hint:"), "{stderr}");
    }
    // Every command that takes --out.
    let commands: [&[&str]; 4] = [
        &["quick-release", "--platform", "linux/amd64"],
        &["extension", "--platform", "linux/amd64"],
        &["package", "--platform", "linux/amd64"],
        &["doctor"],
    ];
    for command in commands {
        let (code, _, stderr) = run(kbuild()
            .args(command)
            .arg("--kube-root")
            .arg(repo.path())
            .args(["--out", "/"]));
        let command = command[0];
        assert_eq!(code, 2, "{command} --out /: {stderr}");
        assert!(stderr.contains("the root directory"), "{command}: {stderr}");
    }
    assert!(!Path::new("/usr/bin/linux").exists());
    assert_eq!(snapshot(repo.path()), before, "nothing written in the tree");
    assert!(snapshot(home.path()).is_empty(), "nothing written in $HOME");
}

#[test]
fn a_build_into_a_directory_with_files_kbuild_did_not_write_is_refused() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "precious\n").unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        work.path(),
        &["kubectl"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("kbuild did not create it"), "{stderr}");
    assert!(stderr.contains("new or empty directory"), "{stderr}");
    assert_eq!(
        snapshot(work.path()),
        [("notes.txt".to_string(), b"precious\n".to_vec())],
        "nothing was added"
    );
}

#[test]
fn writes_never_follow_links_planted_in_the_output_directory() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let build = || {
        run(&mut build_cmd(
            repo.path(),
            &out,
            &["kubectl"],
            &["linux/amd64"],
        ))
    };
    let (code, _, stderr) = build();
    assert_eq!(code, 0, "{stderr}");

    // The directory is marked as kbuild's, with what it wrote there.
    let owner: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(".kbuild/owner.json")).unwrap())
            .unwrap();
    assert_eq!(owner["owner"], "kbuild");
    assert_eq!(owner["created"], true);
    assert_eq!(
        owner["paths"],
        serde_json::json!([".kbuild.lock", "bin", "logs"])
    );

    // A victim elsewhere, and an empty directory elsewhere.
    let victim = work.path().join("victim.txt");
    std::fs::write(&victim, "keep me\n").unwrap();
    let elsewhere = work.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let refused = |(code, _, stderr): (i32, String, String), link: &Path| {
        assert_eq!(code, 8, "{stderr}");
        assert!(
            stderr.contains(&format!("{} is a symbolic link", link.display())),
            "names the link: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
        assert!(snapshot(&elsewhere).is_empty(), "nothing landed elsewhere");
    };

    // The job's log a link to another file.
    let log = out.join("logs/kubectl.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let mut force = build_cmd(repo.path(), &out, &["kubectl"], &["linux/amd64"]);
    refused(run(force.arg("--force")), &log);
    std::fs::remove_file(&log).unwrap();

    // bin a link to another directory.
    let bin = out.join("bin");
    std::fs::rename(&bin, work.path().join("bin.real")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &bin).unwrap();
    refused(build(), &bin);
    std::fs::remove_file(&bin).unwrap();
    std::fs::rename(work.path().join("bin.real"), &bin).unwrap();

    // release-tars a link to another directory.
    let tars = out.join("release-tars");
    std::os::unix::fs::symlink(&elsewhere, &tars).unwrap();
    let package = run(kbuild()
        .args(["package", "--kube-root", s(repo.path()), "--out"])
        .arg(&out));
    refused(package, &tars);
}

#[test]
fn an_out_inside_the_tree_is_refused_unless_git_ignores_it_and_then_leaves_the_tree_clean() {
    let repo = KubeRepo::tagged("v1.34.0");
    let dist = repo.path().join("dist");
    let quick_release = || {
        run(kbuild()
            .args([
                "quick-release",
                "--no-test-tarballs",
                "--no-images",
                "--platform",
                "linux/amd64",
            ])
            .args(["--image", BUILDER_IMAGE, "--kube-root", s(repo.path())])
            .arg("--out")
            .arg(&dist))
    };

    let (code, _, stderr) = quick_release();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("inside the source tree"), "{stderr}");
    assert!(stderr.contains(".git/info/exclude"), "{stderr}");
    assert!(
        stderr.contains("_output/kbuild (git ignores it)"),
        "the fixture ignores /_output/, as Kubernetes does: {stderr}"
    );
    assert!(!dist.exists(), "nothing written");

    // Ignored by git: allowed; run twice, the second run sees the first one's outputs.
    let exclude = repo.path().join(".git/info/exclude");
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    text.push_str("/dist/\n");
    std::fs::write(&exclude, text).unwrap();
    let mut src_sizes = Vec::new();
    for round in 1..=2 {
        let (code, _, stderr) = quick_release();
        assert_eq!(code, 0, "run {round}: {stderr}");
        let tars = dist.join("release-tars");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(tars.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["source"]["gitVersion"], "v1.34.0", "run {round}");
        assert_eq!(manifest["source"]["treeState"], "clean", "run {round}");
        let size = std::fs::metadata(tars.join("kubernetes-src.tar.gz"))
            .unwrap()
            .len();
        assert!(
            size < 1 << 20,
            "run {round}: the src tarball is {size} bytes"
        );
        src_sizes.push(size);
    }
    assert_eq!(
        src_sizes[0], src_sizes[1],
        "the outputs did not get into the src tarball"
    );
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(
        status.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}
