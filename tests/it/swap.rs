//! Replacing a release set (issue 23, item 1): a run killed at any step of the swap leaves
//! a directory that `kbuild verify` either accepts as one whole set or reports as an
//! interrupted swap (exit 7), never a half set, and the next run on the `--out` settles it.
//! `kbuild package` of binary trees holding copies of a host executable makes this fast:
//! nothing is built.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Test only (src/outdir.rs): the swap step at which kbuild SIGKILLs itself.
const KILL_AT: &str = "KBUILD_TEST_KILL_AT_SWAP_STEP";

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

fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

/// `<dir>/<platform>/<name>` for each name, copies of /bin/true (mode 0755); returns `dir`.
fn bin_tree(dir: &Path, names: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
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
        .arg(repo)
        .env_remove(KILL_AT);
    cmd
}

/// The artifact names manifest.json lists in `<out>/release-tars`.
fn listed(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("release-tars/manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut files: Vec<String> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file"].as_str().unwrap().to_string())
        .filter(|f| f.ends_with(".tar.gz"))
        .collect();
    files.sort();
    files
}

fn verify(out: &Path) -> (i32, String) {
    let (code, _, stderr) = run(kbuild().arg("verify").arg(out));
    (code, stderr)
}

/// A packaged `--out` holding the client-only set A and a file of the user's.
fn old_set(repo: &KubeRepo, work: &Path) -> PathBuf {
    let bin = bin_tree(&work.join("bin-a"), &["kubectl"]);
    let out = work.join("template");
    let (code, _, stderr) = run(&mut package(&bin, &out, repo.path()));
    assert_eq!(code, 0, "packaging set A failed:\n{stderr}");
    std::fs::write(out.join("release-tars/NOTES.md"), "mine").unwrap();
    out
}

fn copy_out(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_swap_killed_at_every_step_leaves_one_whole_set_the_next_run_settles() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let template = old_set(&repo, work.path());
    let set_a = listed(&template);
    let bin_b = bin_tree(&work.path().join("bin-b"), ALL);
    let mut kills = 0;
    for at in 1.. {
        let out = work.path().join(format!("out-{at}"));
        copy_out(&template, &out);
        let status = package(&bin_b, &out, repo.path())
            .env(KILL_AT, at.to_string())
            .output()
            .unwrap()
            .status;
        if status.success() {
            break;
        }
        assert_eq!(status.signal(), Some(9), "step {at}: killed by the switch");
        kills += 1;
        let (code, stderr) = verify(&out);
        match code {
            // A whole set: A before the journal, B once the journal is gone.
            0 => {
                let set = listed(&out);
                assert!(
                    set == set_a || set.len() > set_a.len(),
                    "step {at}: {set:?}"
                );
            }
            7 => assert!(stderr.contains("was interrupted"), "step {at}:\n{stderr}"),
            _ => panic!("step {at}: verify exited {code}:\n{stderr}"),
        }

        // The next run on this --out settles the swap under its lock before its own one.
        // (A run refused for bad input takes no lock and changes nothing: issue 22; how
        // each step is settled, finished or undone, is outdir's unit tests' subject.)
        let (code, _, stderr) = run(&mut package(&bin_b, &out, repo.path()));
        assert_eq!(code, 0, "step {at}:\n{stderr}");
        let (code, stderr) = verify(&out);
        assert_eq!(code, 0, "step {at}: settled into a whole set:\n{stderr}");
        let set = listed(&out);
        assert!(
            set.len() > set_a.len(),
            "step {at}: the new set was finished: {set:?}"
        );
        assert_eq!(temp_files(&out), Vec::<PathBuf>::new(), "step {at}: swept");
        let notes = std::fs::read(out.join("release-tars/NOTES.md")).unwrap();
        assert_eq!(notes, b"mine", "step {at}: the user's file stays");
        std::fs::remove_dir_all(&out).unwrap();
    }
    assert!(kills > 20, "a kill at each step of the swap: {kills}");
}

#[test]
fn a_directory_under_a_tarball_name_stops_the_run_and_keeps_the_old_set() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = old_set(&repo, work.path());
    let set_a = listed(&out);
    let server = format!(
        "kubernetes-server-{}.tar.gz",
        host_platform().replace('/', "-")
    );
    let blocker = out.join("release-tars").join(&server);
    // The reproduction: an empty directory under a name of the new set.
    std::fs::create_dir(&blocker).unwrap();
    let before: Vec<_> = std::fs::read_dir(out.join("release-tars"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    let bin_b = bin_tree(&work.path().join("bin-b"), ALL);
    let (code, _, stderr) = run(&mut package(&bin_b, &out, repo.path()));
    assert_eq!(code, 8, "{stderr}");
    assert!(
        stderr.contains("is a directory where kbuild writes a file"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing in"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");

    let (code, stderr) = verify(&out);
    assert_eq!(code, 0, "the old set is intact:\n{stderr}");
    assert_eq!(listed(&out), set_a);
    let after: Vec<_> = std::fs::read_dir(out.join("release-tars"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(after, before, "no stray files");
    assert_eq!(temp_files(&out), Vec::<PathBuf>::new());
    assert!(blocker.is_dir(), "the user's directory stays");
}

#[test]
fn a_killed_run_s_staging_is_swept_by_the_next_run() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = old_set(&repo, work.path());
    // What a run killed while packaging leaves (issue 23, item 5).
    let leftover = out.join(".release-tars.999999.kbuild-tmp");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("kubernetes-src.tar.gz"), vec![0u8; 1 << 20]).unwrap();
    let bin_a = work.path().join("bin-a");
    let (code, _, stderr) = run(&mut package(&bin_a, &out, repo.path()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!leftover.exists(), "the leftover went");
    assert_eq!(temp_files(&out), Vec::<PathBuf>::new());
}
