//! Closed pipes (issue 23, item 8): a reader of kbuild's stderr that goes away stops the run
//! as Ctrl-C would (cleanup, exit 141), never with a panic (exit 101) or a success; a
//! closed stdout only drops what nobody reads.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;

/// Every binary the fixture has a command for.
const ALL: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubeadm",
    "kubectl",
    "kubelet",
];

/// 128 + SIGPIPE (README "Exit codes").
const CLOSED: i32 = 141;

fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

/// `<dir>/<platform>/<name>` for each name, copies of /bin/true; returns `dir`.
fn bin_tree(dir: &Path, names: &[&str]) -> PathBuf {
    let arch_dir = dir.join(host_platform());
    std::fs::create_dir_all(&arch_dir).unwrap();
    for name in names {
        let path = arch_dir.join(name);
        std::fs::copy("/bin/true", &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.to_path_buf()
}

fn package(bin: &Path, out: &Path, repo: &Path) -> Command {
    let mut cmd = kbuild();
    cmd.arg("package")
        .arg("--bin")
        .arg(bin)
        .arg("--out")
        .arg(out)
        .arg("--kube-root")
        .arg(repo);
    cmd
}

/// Runs `cmd` with a stderr whose reader is already gone; returns the exit code and stdout.
fn with_closed_stderr(cmd: &mut Command) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd.stderr(writer).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_package_run_whose_stderr_is_closed_stops_cleanly_and_fails() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let bin_a = bin_tree(&work.path().join("bin-a"), &["kubectl"]);
    let (code, _, stderr) = run(&mut package(&bin_a, &out, repo.path()));
    assert_eq!(code, 0, "{stderr}");
    let before = std::fs::read(out.join("release-tars/SHA256SUMS")).unwrap();

    let bin_b = bin_tree(&work.path().join("bin-b"), ALL);
    let (code, _) = with_closed_stderr(&mut package(&bin_b, &out, repo.path()));
    assert_eq!(
        code, CLOSED,
        "stopped as an interrupt, not a panic (101) or a success"
    );
    assert_eq!(
        temp_files(&out),
        Vec::<PathBuf>::new(),
        "nothing half-written"
    );
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&out));
    assert_eq!(code, 0, "a whole set is there:\n{stderr}");
    let after = std::fs::read(out.join("release-tars/SHA256SUMS")).unwrap();
    assert_eq!(
        after, before,
        "stopped before the swap: the previous set stays"
    );

    // The lock was released: the next run does not wait.
    let (code, _, stderr) = run(package(&bin_b, &out, repo.path()).arg("--no-wait"));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn verify_with_a_closed_stderr_fails_and_with_a_closed_stdout_finishes() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let bin = bin_tree(&work.path().join("bin"), &["kubectl"]);
    let (code, _, stderr) = run(&mut package(&bin, &out, repo.path()));
    assert_eq!(code, 0, "{stderr}");

    let (code, _) = with_closed_stderr(kbuild().arg("verify").arg(&out));
    assert_eq!(code, CLOSED, "a verify nobody hears does not pass");

    // --json: the events nobody reads are dropped; the verdict is the exit code.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let done = kbuild()
        .args(["verify", "--json"])
        .arg(&out)
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_build_piped_into_head_stops_and_leaves_no_container() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = build_cmd(
        repo.path(),
        &out.path().join("out"),
        &["kubectl"],
        &[host_platform()],
    )
    .stdout(writer.try_clone().unwrap())
    .stderr(writer)
    .stdin(Stdio::null())
    .spawn()
    .unwrap();
    // `| head`: read until make runs in the build container, then go away.
    let mut lines = BufReader::new(reader).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("[kubectl]") {
            break;
        }
    }
    drop(lines);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(CLOSED), "after:\n{}", seen.join("\n"));
    wait_no_containers_left(repo.path(), 30);
    assert_eq!(temp_files(out.path()), Vec::<PathBuf>::new());
}
