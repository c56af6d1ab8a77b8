//! `kbuild smoke DIR`: the fixture's kubectl, run for the host platform and inspected for
//! the others, and the extension's kubeconfig calls against an unreachable 127.0.0.1 and
//! against a small API server the test runs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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

/// The three calls as smoke shows them, for the context docker-desktop.
const CALLS: [&str; 3] = [
    "kubectl cluster-info --request-timeout 2s --context docker-desktop",
    "kubectl config view -o jsonpath={.contexts}",
    "kubectl get namespaces --no-headers -o custom-columns=:metadata.name --context docker-desktop",
];

/// The host's kubectl of a fresh v1.34.0 fixture build, in `out`.
fn build_host_kubectl(repo: &Path, out: &Path) {
    let (code, _, stderr) = run(&mut build_cmd(repo, out, &["kubectl"], &["linux/amd64"]));
    assert_eq!(code, 0, "build failed:\n{stderr}");
}

/// A kubeconfig whose context docker-desktop points at `server`, with a token and a client
/// key that must never be shown.
fn write_kubeconfig(dir: &Path, server: &str, token: &str, key: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dd\n  cluster:\n    server: {server}\n\
             contexts:\n- name: docker-desktop\n  context:\n    cluster: dd\n    user: me\n\
             current-context: docker-desktop\npreferences: {{}}\nusers:\n- name: me\n  user:\n    token: {token}\n    client-key-data: {key}\n"
        ),
    )
    .unwrap();
    path
}

fn smoke_with(out: &Path, kubeconfig: &Path) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let (code, stdout, stderr) = run(kbuild().args([
        "smoke",
        s(out),
        "--kubeconfig",
        s(kubeconfig),
        "--context",
        "docker-desktop",
    ]));
    (code, stdout, stderr, started.elapsed())
}

#[test]
fn smoke_reports_an_unreachable_server_in_time_and_hides_secrets() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    build_host_kubectl(repo.path(), out.path());
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (token, key) = (
        "kbuild-smoke-secret-token-7f3a9c",
        "S2J1aWxkU2VjcmV0S2V5RGF0YQ==",
    );
    let kubeconfig = write_kubeconfig(out.path(), &format!("https://127.0.0.1:{port}"), token, key);
    let (code, stdout, stderr, took) = smoke_with(out.path(), &kubeconfig);
    // An unreachable cluster is an answer an extension handles: smoke passes and says so.
    assert_eq!(code, 0, "{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "three calls with a 2s request timeout took {took:?}"
    );
    for secret in [token, key] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} was printed:\n{stderr}"
        );
    }
    for call in [CALLS[0], CALLS[2]] {
        assert!(
            stderr.contains(&format!("{call}: unreachable"))
                && stderr.contains(&format!("127.0.0.1:{port} was refused")),
            "{call} is reported unreachable:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("{}: ok (contexts listed)", CALLS[1])),
        "config view needs no server:\n{stderr}"
    );
    assert_no_containers_left(repo.path());
}

/// A plain-http API server on 127.0.0.1 that answers /version and /api/v1/namespaces, and
/// records each request line with its Authorization header.
fn serve_api(namespaces: &[&str]) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let items: Vec<serde_json::Value> = namespaces
        .iter()
        .map(|n| serde_json::json!({"metadata": {"name": n}, "status": {"phase": "Active"}}))
        .collect();
    let list = serde_json::json!({"kind": "NamespaceList", "apiVersion": "v1", "items": items});
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut auth = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.strip_prefix("Authorization: ") {
                    auth = v.trim().to_string();
                }
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(format!("{path} {auth}"));
            let (status, body) = match path.split('?').next().unwrap() {
                "/version" => (
                    "200 OK",
                    r#"{"major":"1","minor":"34","gitVersion":"v1.34.0"}"#.to_string(),
                ),
                "/api/v1/namespaces" => ("200 OK", list.to_string()),
                _ => (
                    "404 Not Found",
                    r#"{"kind":"Status","code":404}"#.to_string(),
                ),
            };
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn smoke_reaches_a_running_api_server_and_lists_its_namespaces() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    build_host_kubectl(repo.path(), out.path());
    let (port, seen) = serve_api(&["default", "kube-system", "team-a"]);
    let (token, key) = (
        "kbuild-smoke-secret-token-4e1d0b",
        "S2J1aWxkT3RoZXJLZXlEYXRh",
    );
    let kubeconfig = write_kubeconfig(out.path(), &format!("http://127.0.0.1:{port}"), token, key);
    let (code, stdout, stderr, _) = smoke_with(out.path(), &kubeconfig);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: reachable: Kubernetes control plane is running at http://127.0.0.1:{port}",
            CALLS[0]
        )),
        "cluster-info reaches the server:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: reachable: namespaces default, kube-system, team-a",
            CALLS[2]
        )),
        "the server's namespaces are listed:\n{stderr}"
    );
    for secret in [token, key] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} was printed:\n{stderr}"
        );
    }
    // The calls went to this server, as the kubeconfig's user.
    let seen = seen.lock().unwrap().clone();
    for path in ["/version", "/api/v1/namespaces"] {
        assert!(
            seen.contains(&format!("{path} Bearer {token}")),
            "{path} was asked with the token: {seen:?}"
        );
    }
    assert_no_containers_left(repo.path());
}
