//! `kbuild smoke DIR`: the fixture's kubectl, run for the host platform and inspected for
//! the others, and the extension's kubeconfig calls against an unreachable 127.0.0.1.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// kubectl for the host (linux/amd64 here), darwin/arm64 and windows/amd64, into `out`.
fn build_three(repo: &Path, out: &Path) {
    let (code, _, stderr) = run(&mut build_cmd(
        repo,
        out,
        &["kubectl"],
        &["linux/amd64", "darwin/arm64", "windows/amd64"],
    ));
    assert_eq!(code, 0, "build failed:\n{stderr}");
}

#[test]
fn smoke_reports_the_stamped_version_and_catches_a_binary_in_the_wrong_place() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    build_three(repo.path(), out.path());
    let (code, _, stderr) = run(kbuild().args(["smoke", s(out.path())]));
    assert_eq!(code, 0, "kbuild smoke failed:\n{stderr}");
    let commit = repo.commit();
    assert!(
        stderr.contains(&format!(
            "gitVersion v1.34.0, gitCommit {commit}, gitTreeState clean"
        )),
        "the host kubectl's stamp is reported:\n{stderr}"
    );
    for p in ["darwin/arm64", "windows/amd64"] {
        assert!(
            stderr.contains(&format!(
                "({p}): format, GOOS/GOARCH and stamped version ok"
            )),
            "{p} is inspected:\n{stderr}"
        );
    }
    // The linux binary where the windows one belongs: smoke names it and exits 7.
    let exe = out.path().join("bin/windows/amd64/kubectl.exe");
    std::fs::copy(out.path().join("bin/darwin/arm64/kubectl"), &exe).unwrap();
    let (code, _, stderr) = run(kbuild().args(["smoke", s(out.path())]));
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("kubectl.exe"), "{stderr}");
    // Nothing to smoke-test is bad input.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild().args(["smoke", s(empty.path())]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_no_containers_left(repo.path());
}

#[test]
fn smoke_kubeconfig_calls_finish_in_time_against_an_unreachable_server_and_hide_secrets() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["kubectl"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 0, "build failed:\n{stderr}");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "kbuild-smoke-secret-token-7f3a9c";
    let kubeconfig = out.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dd\n  cluster:\n    server: https://127.0.0.1:{port}\n\
             contexts:\n- name: docker-desktop\n  context:\n    cluster: dd\n    user: me\n\
             current-context: docker-desktop\nusers:\n- name: me\n  user:\n    token: {secret}\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let (code, stdout, stderr) = run(kbuild().args([
        "smoke",
        s(out.path()),
        "--kubeconfig",
        s(&kubeconfig),
        "--context",
        "docker-desktop",
    ]));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "three calls with a 2s request timeout took {:?}",
        started.elapsed()
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the token was printed:\n{stderr}"
    );
    for call in [
        "kubectl cluster-info --request-timeout 2s --context docker-desktop",
        "kubectl config view -o jsonpath={.contexts}",
        "kubectl get namespaces --no-headers -o custom-columns=:metadata.name --context docker-desktop",
    ] {
        assert!(stderr.contains(call), "{call} is reported:\n{stderr}");
    }
    // mini-kube's kubectl has none of these commands, so each call fails (exit 7) rather
    // than reaching the server; a real kubectl reports "unreachable" for the same address.
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains("cluster-info --request-timeout 2s --context docker-desktop: failed"),
        "{stderr}"
    );
    assert_no_containers_left(repo.path());
}
