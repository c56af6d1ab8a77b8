//! `kbuild build` against the real engine and the builder image.

use crate::common::*;

#[test]
fn builds_kubectl_for_three_platforms_with_the_stamped_version() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["kubectl"],
        &["linux/amd64", "darwin/arm64", "windows/amd64"],
    ));
    assert_eq!(code, 0, "kbuild build failed:\n{stderr}");

    let linux = out.path().join("bin/linux/amd64/kubectl");
    let darwin = out.path().join("bin/darwin/arm64/kubectl");
    let windows = out.path().join("bin/windows/amd64/kubectl.exe");
    assert!(
        is_elf_amd64(&header(&linux)),
        "linux/amd64 kubectl is not ELF x86-64"
    );
    assert!(
        is_macho_arm64(&header(&darwin)),
        "darwin/arm64 kubectl is not Mach-O arm64"
    );
    assert!(
        is_pe32plus_amd64(&header(&windows)),
        "windows/amd64 kubectl.exe is not PE32+ x86-64"
    );

    let version = run_binary(&linux, &["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&version).expect("version -o json parses");
    assert_eq!(v["gitVersion"], "v1.34.0");
    assert_eq!(v["gitCommit"], repo.commit());
    assert_eq!(v["gitTreeState"], "clean");
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "34");
    // buildDate comes from SOURCE_DATE_EPOCH = the commit time (2023-11-14T22:13:20Z).
    assert_eq!(v["buildDate"], "2023-11-14T22:13:20Z");
    assert!(run_binary(&linux, &["version"]).contains("v1.34.0"));

    let log = std::fs::read_to_string(out.path().join("logs/kubectl.log")).unwrap();
    assert!(
        log.contains("darwin/arm64"),
        "the log holds make's output:\n{log}"
    );
    assert_no_containers_left(repo.path());
}

#[test]
fn builds_kubeadm_and_kubelet_for_linux_without_root_owned_files() {
    let repo = KubeRepo::tagged("v1.33.1");
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["kubeadm", "kubelet"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 0, "kbuild build failed:\n{stderr}");
    for name in ["kubeadm", "kubelet"] {
        let bin = out.path().join("bin/linux/amd64").join(name);
        assert!(is_elf_amd64(&header(&bin)), "{name} is not ELF x86-64");
        assert!(
            run_binary(&bin, &["version"]).contains("v1.33.1"),
            "{name} version"
        );
    }
    // The build ran as the invoking user: everything make wrote in the checkout is ours.
    let me = rustix::process::getuid().as_raw();
    let mut stack = vec![repo.path().join("_output")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            use std::os::unix::fs::MetadataExt;
            let meta = entry.metadata().unwrap();
            assert_eq!(
                meta.uid(),
                me,
                "{} is owned by uid {}",
                entry.path().display(),
                meta.uid()
            );
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert_no_containers_left(repo.path());
}

#[test]
fn failing_make_shows_the_log_tail_and_leaves_no_container() {
    let repo = KubeRepo::tagged("v1.34.0");
    let main = repo.path().join("cmd/kubectl/main.go");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str("\nfunc broken() { this is not go }\n");
    std::fs::write(&main, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["kubectl"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 4, "a failed build exits 4:\n{stderr}");
    assert!(stderr.contains("last lines of the log"), "{stderr}");
    assert!(
        stderr.contains("main.go"),
        "the compiler's complaint is shown:\n{stderr}"
    );
    let log = out.path().join("logs/kubectl.log");
    assert!(
        stderr.contains(log.to_str().unwrap()),
        "the log path is named:\n{stderr}"
    );
    assert!(
        !out.path().join("bin/linux/amd64/kubectl").exists(),
        "no binary from a failed build"
    );
    assert_no_containers_left(repo.path());
}

#[test]
fn missing_default_image_is_pulled_and_a_failed_pull_says_what_to_do() {
    // No registry is reachable here, so pulling the tree's kube-cross image must fail clearly.
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild().args([
        "build",
        "kubectl",
        "--kube-root",
        repo.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("registry.k8s.io/build-image/kube-cross:v1.34.0-go1.24.4-bullseye.0"),
        "the default image comes from build/build-image/cross/VERSION:\n{stderr}"
    );
    assert!(stderr.contains("--image"), "{stderr}");
    assert_no_containers_left(repo.path());
}
