//! Shared helpers: the fixture as a real git repository, the kbuild command, engine checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// The local builder image made by `cargo xtask builder-image`.
pub const BUILDER_IMAGE: &str = "kbuild-builder:go1.24-trixie";

/// A fixed commit time so that every fixture repository has the same SOURCE_DATE_EPOCH.
pub const COMMIT_EPOCH: u64 = 1_700_000_000;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-kube")
}

/// The kbuild binary under test.
pub fn kbuild() -> Command {
    let mut cmd = Command::cargo_bin("kbuild").expect("kbuild binary");
    cmd.env_remove("KUBE_GIT_VERSION")
        .env_remove("KUBE_BUILD_PLATFORMS")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("KBUILD_IMAGE");
    cmd
}

/// Runs a command and returns (status code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("command runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs git in `dir` with a fixed identity and dates; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let date = format!("@{COMMIT_EPOCH} +0000");
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "kbuild tests")
        .env("GIT_AUTHOR_EMAIL", "tests@kbuild.invalid")
        .env("GIT_COMMITTER_NAME", "kbuild tests")
        .env("GIT_COMMITTER_EMAIL", "tests@kbuild.invalid")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Copies a directory tree (files and directories only), skipping `_output`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "_output" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of mini-kube as its own git repository, committed and tagged `tag`.
pub struct KubeRepo {
    pub dir: tempfile::TempDir,
}

impl KubeRepo {
    pub fn tagged(tag: &str) -> KubeRepo {
        let dir = tempfile::Builder::new()
            .prefix("kbuild-kube-")
            .tempdir()
            .unwrap();
        copy_tree(&fixture_dir(), dir.path());
        git(dir.path(), &["init", "-q", "-b", "master"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "mini-kube"]);
        git(dir.path(), &["tag", "-a", tag, "-m", tag]);
        KubeRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn commit(&self) -> String {
        git(self.path(), &["rev-parse", "HEAD"])
    }
}

/// Ids of containers kbuild made for the tree at `root` that are still on the engine.
/// (Tests run in parallel, so each looks only at the containers of its own tree.)
pub fn managed_containers(root: &Path) -> Vec<String> {
    let root = root.canonicalize().unwrap();
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=io.kbuild.managed"])
        .arg("--filter")
        .arg(format!("label=io.kbuild.source={}", root.display()))
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Asserts the engine holds no container kbuild made for the tree at `root`.
pub fn assert_no_containers_left(root: &Path) {
    let left = managed_containers(root);
    assert!(left.is_empty(), "kbuild left containers behind: {left:?}");
}

/// Runs a built binary and returns its stdout.
pub fn run_binary(path: &Path, args: &[&str]) -> String {
    let out = Command::new(path).args(args).output().expect("binary runs");
    assert!(out.status.success(), "{} {args:?} failed", path.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first bytes of a file, to check its executable format.
pub fn header(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes[..bytes.len().min(4096)].to_vec()
}

pub fn is_macho_arm64(h: &[u8]) -> bool {
    h.len() >= 8 && h[..4] == [0xcf, 0xfa, 0xed, 0xfe] && h[4..8] == 0x0100_000cu32.to_le_bytes()
}

pub fn is_pe32plus_amd64(h: &[u8]) -> bool {
    if h.len() < 0x40 || &h[..2] != b"MZ" {
        return false;
    }
    let pe = u32::from_le_bytes([h[0x3c], h[0x3d], h[0x3e], h[0x3f]]) as usize;
    // PE signature, machine x86-64, and the optional header magic 0x20b (PE32+).
    h.len() > pe + 26
        && &h[pe..pe + 4] == b"PE\0\0"
        && h[pe + 4..pe + 6] == 0x8664u16.to_le_bytes()
        && h[pe + 24..pe + 26] == 0x020bu16.to_le_bytes()
}

pub fn is_elf_amd64(h: &[u8]) -> bool {
    h.len() >= 20 && &h[..4] == b"\x7fELF" && h[18..20] == 0x3eu16.to_le_bytes()
}
