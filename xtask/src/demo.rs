//! `cargo xtask demo`: kbuild's main job on the bundled tree. recipes/mini-kube.toml is a
//! quick-release of the mini-kube fixture for linux/amd64, darwin/arm64 and windows/amd64
//! in the local builder image. It runs on a git copy of the fixture, committed at a fixed
//! date and tagged, so that the binaries carry real version facts (the tag, the commit and
//! its date), as they would from a real checkout: the fixture itself sits inside kbuild's
//! repository and is no checkout of its own.

use std::path::Path;
use std::process::Command;

use crate::builder_image;
use crate::util::{self, cargo, run, Failure};

/// The fixture the demo copies.
pub const FIXTURE: &str = "tests/fixtures/mini-kube";
/// The git copy the recipe builds (recipes/mini-kube.toml's kube_root).
pub const TREE: &str = "target/demo/mini-kube";
/// The tag on the copy's one commit: the version the binaries report.
pub const TAG: &str = "v1.34.0";
/// The commit (and tag) date: 2025-08-27 00:00 UTC, v1.34.0's release day. Fixed, with a
/// fixed identity, so that the commit id is the same on every machine.
pub const COMMIT_EPOCH: u64 = 1_756_252_800;
/// Where the recipe writes.
const OUT: &str = "out/mini-kube";

pub fn run_demo(root: &Path) -> Result<(), Failure> {
    builder_image::ensure(root, false)?;
    util::step(&format!("a git copy of {FIXTURE} in {TREE}, tagged {TAG}"));
    let commit = prepare_tree(&root.join(FIXTURE), &root.join(TREE))?;
    println!("{TREE} at {commit} ({TAG})");

    util::step("kbuild run recipes/mini-kube.toml");
    run(kbuild().args(["run", "recipes/mini-kube.toml"]))?;
    util::step(&format!("kbuild verify {OUT}"));
    run(kbuild().args(["verify", OUT]))?;

    util::step(&format!("files in {OUT}"));
    let mut files = Vec::new();
    util::walk_files(&root.join(OUT), &mut files)
        .map_err(|e| Failure::new(format!("cannot list {OUT}: {e}")))?;
    files.sort();
    if files.is_empty() {
        return Err(Failure::new(format!("kbuild succeeded but {OUT} is empty")));
    }
    for (path, size) in files {
        let shown = path.strip_prefix(root).unwrap_or(&path);
        println!("{size:>12}  {}", shown.display());
    }

    // The facts the build stamped, where this machine can run the binary.
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        let kubectl = format!("{OUT}/bin/linux/amd64/kubectl");
        util::step(&format!("{kubectl} version"));
        run(Command::new(root.join(&kubectl)).arg("version"))?;
    }
    Ok(())
}

fn kbuild() -> Command {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--bin", "kbuild", "--"]);
    cmd
}

/// Makes `dest` a git repository holding `fixture`'s files (without `_output`) at one
/// commit tagged `TAG`, and returns the commit id. An existing clean copy at that same
/// commit is kept as it is, so a second demo finds its builds up to date.
pub fn prepare_tree(fixture: &Path, dest: &Path) -> Result<String, Failure> {
    let parent = dest
        .parent()
        .ok_or_else(|| Failure::new(format!("{} has no parent", dest.display())))?;
    let fresh = parent.join(".mini-kube.new");
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Failure::new(format!("cannot {what} {}: {e}", path.display()))
    };
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|e| io("remove", &fresh, e))?;
    }
    copy_dir(fixture, &fresh).map_err(|e| io("copy the fixture to", &fresh, e))?;
    git(&fresh, &["init", "-q", "-b", "main"])?;
    git(&fresh, &["add", "-A"])?;
    git(
        &fresh,
        &["commit", "-q", "-m", "mini-kube, the kbuild demo tree"],
    )?;
    git(&fresh, &["tag", "-a", TAG, "-m", TAG])?;
    let commit = git(&fresh, &["rev-parse", "HEAD"])?;

    let kept = dest.is_dir()
        && git(dest, &["rev-parse", "HEAD"]).ok().as_deref() == Some(commit.as_str())
        && git(dest, &["status", "--porcelain"]).ok().as_deref() == Some("");
    if kept {
        std::fs::remove_dir_all(&fresh).map_err(|e| io("remove", &fresh, e))?;
    } else {
        if dest.exists() {
            std::fs::remove_dir_all(dest).map_err(|e| io("remove", dest, e))?;
        }
        std::fs::rename(&fresh, dest).map_err(|e| io("move into place", dest, e))?;
    }
    Ok(commit)
}

/// git in `dir` with a fixed identity and date and no user or system configuration;
/// returns its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> Result<String, Failure> {
    let date = format!("@{COMMIT_EPOCH} +0000");
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "kbuild demo")
        .env("GIT_AUTHOR_EMAIL", "demo@kbuild.invalid")
        .env("GIT_COMMITTER_NAME", "kbuild demo")
        .env("GIT_COMMITTER_EMAIL", "demo@kbuild.invalid")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date);
    let out = cmd
        .output()
        .map_err(|e| Failure::new(format!("cannot run git (install it): {e}")))?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "`{}` failed in {}: {}",
            util::show(&cmd),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Copies files (with their modes), directories and symlinks, skipping `_output`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == "_output" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_tree_is_a_tagged_clean_checkout_made_once() {
        let work = std::env::temp_dir().join(format!("xtask-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let fixture = util::workspace_root().join(FIXTURE);
        let dest = work.join("mini-kube");
        let commit = prepare_tree(&fixture, &dest).unwrap();
        assert_eq!(git(&dest, &["describe", "--tags"]).unwrap(), TAG);
        assert_eq!(git(&dest, &["status", "--porcelain"]).unwrap(), "");
        assert_eq!(
            git(&dest, &["show", "-s", "--format=%ct", "HEAD"]).unwrap(),
            COMMIT_EPOCH.to_string()
        );
        assert!(dest.join("go.mod").is_file());
        assert!(!dest.join("_output").exists());
        // A second run keeps the copy (its build outputs stay up to date).
        let marker = dest.join("_output/kept");
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        std::fs::write(&marker, "").unwrap();
        assert_eq!(prepare_tree(&fixture, &dest).unwrap(), commit);
        assert!(marker.is_file(), "an unchanged copy is kept");
        assert!(!work.join(".mini-kube.new").exists());
        std::fs::remove_dir_all(&work).unwrap();
    }
}
