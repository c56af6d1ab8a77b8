//! Careless or hostile input to `kbuild package` and `kbuild verify`: binary trees holding
//! links, FIFOs, binaries of the wrong platform or binaries the tree has no target for;
//! release directories holding files nothing lists, links, and list files far larger than
//! anything kbuild writes.
//!
//! The binary trees here hold copies of a real executable of this machine (/bin/true, an
//! ELF for the host platform): packaging reads files, it does not run them, so the tests
//! need no build.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// The `<os>/<arch>` of this machine's executables.
fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

/// `<dir>/bin/<platform>/<name>` for each name, each a copy of a real host executable
/// (mode 0755). Returns `<dir>/bin`.
fn bin_tree(dir: &Path, platform: &str, names: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let arch_dir = dir.join("bin").join(platform);
    std::fs::create_dir_all(&arch_dir).unwrap();
    for name in names {
        let path = arch_dir.join(name);
        std::fs::copy("/bin/true", &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.join("bin")
}

/// `kbuild package --bin <bin> --out <out> --kube-root <repo>`.
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

/// A packaged release-tars directory (kubectl for the host platform), verified intact.
fn packaged(repo: &KubeRepo, work: &Path) -> PathBuf {
    let bin = bin_tree(work, host_platform(), &["kubectl"]);
    let out = work.join("out");
    let (code, _, stderr) = run(&mut package(&bin, &out, repo.path()));
    assert_eq!(code, 0, "kbuild package failed:\n{stderr}");
    let tars = out.join("release-tars");
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&tars));
    assert_eq!(code, 0, "an intact directory verifies:\n{stderr}");
    tars
}

fn client_tarball() -> String {
    format!(
        "kubernetes-client-{}.tar.gz",
        host_platform().replace('/', "-")
    )
}

#[test]
fn verify_fails_on_an_unlisted_tarball_and_on_a_symlinked_artifact() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let tars = packaged(&repo, work.path());

    // An extra tarball that no checksum file or manifest lists.
    let extra = tars.join("kubernetes-client-linux-s390x.tar.gz");
    std::fs::copy(tars.join(client_tarball()), &extra).unwrap();
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&tars));
    assert_eq!(code, 7, "an unlisted tarball fails verification:\n{stderr}");
    assert!(
        stderr.contains("kubernetes-client-linux-s390x.tar.gz: is listed in no SHA256SUMS, SHA512SUMS or manifest.json"),
        "{stderr}"
    );
    // A file of the user's own that does not pass for an artifact is left alone.
    std::fs::remove_file(&extra).unwrap();
    std::fs::write(tars.join("NOTES.txt"), "release notes\n").unwrap();
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&tars));
    assert_eq!(code, 0, "{stderr}");

    // An artifact replaced by a link to a file outside the directory (even with the very
    // same bytes): verify does not vouch for what a link points at.
    let src = tars.join("kubernetes-src.tar.gz");
    let elsewhere = work.path().join("elsewhere.tar.gz");
    std::fs::rename(&src, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &src).unwrap();
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&tars));
    assert_eq!(
        code, 7,
        "a symlinked artifact fails verification:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "kubernetes-src.tar.gz: is a symbolic link (to {})",
            elsewhere.display()
        )),
        "{stderr}"
    );
}

#[test]
fn verify_refuses_list_files_that_are_huge_or_not_regular_without_reading_them() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let tars = packaged(&repo, work.path());

    // A manifest.json larger than any kbuild writes (sparse: it costs no disk).
    let manifest = tars.join("manifest.json");
    std::fs::remove_file(&manifest).unwrap();
    std::fs::File::create(&manifest)
        .unwrap()
        .set_len(400 << 20)
        .unwrap();
    // SHA256SUMS as a FIFO: opening it for reading would wait for a writer forever.
    let sums = tars.join("SHA256SUMS");
    std::fs::remove_file(&sums).unwrap();
    let made = Command::new("mkfifo").arg(&sums).status().unwrap();
    assert!(made.success());

    let mut cmd = kbuild();
    cmd.arg("verify").arg(&tars);
    let (code, stderr) = Running::spawn(&mut cmd).finish(60);
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "manifest.json is {} bytes, more than the {} bytes",
            400u64 << 20,
            16u64 << 20
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("SHA256SUMS: is a FIFO, not a regular file"),
        "{stderr}"
    );
}

#[test]
fn package_refuses_a_symlinked_binary_or_a_fifo_and_writes_nothing() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let bin = bin_tree(work.path(), host_platform(), &[]);
    let kubectl = bin.join(host_platform()).join("kubectl");
    // Today's kubectl -> /usr/bin/ls would ship ls as kubectl.
    std::os::unix::fs::symlink("/usr/bin/ls", &kubectl).unwrap();
    let out = work.path().join("out");
    let (code, _, stderr) = run(&mut package(&bin, &out, repo.path()));
    assert_eq!(code, 2, "a link in the binary tree is bad input:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is a symbolic link (to /usr/bin/ls)",
            kubectl.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!out.join("release-tars").exists(), "nothing was written");

    std::fs::remove_file(&kubectl).unwrap();
    let made = Command::new("mkfifo").arg(&kubectl).status().unwrap();
    assert!(made.success());
    let (code, stderr) = Running::spawn(&mut package(&bin, &out, repo.path())).finish(60);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is a FIFO, not a regular file",
            kubectl.display()
        )),
        "a FIFO is named as what it is, not as missing:\n{stderr}"
    );
    assert!(!out.join("release-tars").exists(), "nothing was written");
}

#[test]
fn package_refuses_a_binary_built_for_another_platform_as_bad_input() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    // A linux executable where the darwin/arm64 client binary belongs.
    let bin = bin_tree(work.path(), "darwin/arm64", &["kubectl"]);
    let out = work.path().join("out");
    let (code, _, stderr) = run(&mut package(&bin, &out, repo.path()));
    assert_eq!(
        code, 2,
        "a refusal of bad input is exit 2, not 4:\n{stderr}"
    );
    assert!(stderr.contains("executable, not darwin/arm64"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!out.join("release-tars").exists(), "nothing was written");
}

#[test]
fn package_says_when_it_gives_a_non_executable_binary_mode_0755() {
    use std::os::unix::fs::PermissionsExt;
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let bin = bin_tree(work.path(), host_platform(), &["kubectl"]);
    let kubectl = bin.join(host_platform()).join("kubectl");
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = work.path().join("out");
    let (code, _, stderr) = run(&mut package(&bin, &out, repo.path()));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: {} is not executable (mode 0644); its tarball entries get mode 0755",
            kubectl.display()
        )),
        "{stderr}"
    );
    let listing = Command::new("tar")
        .arg("tvzf")
        .arg(out.join("release-tars").join(client_tarball()))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let line = listing
        .lines()
        .find(|l| l.ends_with("kubernetes/client/bin/kubectl"))
        .unwrap_or_else(|| panic!("kubectl in the tarball:\n{listing}"));
    assert!(line.starts_with("-rwxr-xr-x"), "{line}");
}

#[test]
fn package_names_every_binary_it_leaves_out_and_why() {
    let repo = KubeRepo::tagged("v1.34.0");
    // The tree has no kube-apiserver target any more.
    git(repo.path(), &["rm", "-rq", "cmd/kube-apiserver"]);
    commit_all(repo.path(), "no kube-apiserver");
    let work = tempfile::tempdir().unwrap();
    let bin = bin_tree(
        work.path(),
        host_platform(),
        &["kubectl", "kube-apiserver", "kubectl.sig"],
    );
    let out = work.path().join("out");
    let (code, _, stderr) = run(&mut package(&bin, &out, repo.path()));
    assert_eq!(code, 0, "{stderr}");
    let arch_dir = bin.join(host_platform());
    for (file, why) in [
        (
            "kube-apiserver",
            "the source tree has no cmd/kube-apiserver",
        ),
        (
            "kubectl.sig",
            "kubectl.sig is not a binary upstream's release tarballs carry",
        ),
    ] {
        assert!(
            stderr.contains(&format!(
                "warning: not packaged: {}: {why}",
                arch_dir.join(file).display()
            )),
            "{file} is named as left out:\n{stderr}"
        );
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("release-tars/manifest.json")).unwrap(),
    )
    .unwrap();
    let notes: Vec<&str> = manifest["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.contains(&format!(
            "{}/kube-apiserver in the binary tree is not packaged: the source tree has no cmd/kube-apiserver",
            host_platform()
        ).as_str()),
        "{notes:?}"
    );
    // And it really is in no tarball.
    let listed = serde_json::to_string(&manifest["artifacts"]).unwrap();
    assert!(!listed.contains("kube-apiserver"), "{listed}");
}
