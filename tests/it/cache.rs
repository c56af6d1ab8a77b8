//! Skipping unchanged jobs and keeping Go caches between runs.

use std::process::Command;

use crate::common::*;

/// How many containers the engine created for the tree at `root` since `since` (Unix time).
fn containers_created_since(root: &std::path::Path, since: String) -> usize {
    let root = root.canonicalize().unwrap();
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = Command::new("docker")
        .args(["events", "--since", &since, "--until", &until.to_string()])
        .args(["--filter", "type=container", "--filter", "event=create"])
        .arg("--filter")
        .arg(format!("label=io.kbuild.source={}", root.display()))
        .output()
        .expect("docker events runs");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Now, to the nanosecond, as `docker events --since` takes it (whole seconds would count
/// the previous build's events of the same second).
fn now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

fn build(repo: &KubeRepo, out: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let (code, _, stderr) =
        run(build_cmd(repo.path(), out, &["kubectl"], &["linux/amd64"]).args(extra));
    (code, stderr)
}

#[test]
fn an_unchanged_second_build_creates_no_container_and_an_edit_rebuilds() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let kubectl = out.path().join("bin/linux/amd64/kubectl");

    let (code, stderr) = build(&repo, out.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    let first = std::fs::read(&kubectl).unwrap();

    let before = now();
    let (code, stderr) = build(&repo, out.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("up to date"), "{stderr}");
    assert_eq!(
        containers_created_since(repo.path(), before),
        0,
        "no container for an unchanged job"
    );
    assert_eq!(std::fs::read(&kubectl).unwrap(), first);

    // One edited Go file: the job runs again and the binary changes.
    let main = repo.path().join("cmd/kubectl/main.go");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        text.replace("func main() {", "func main() {\n\t_ = \"edited\""),
    )
    .unwrap();
    let before = now();
    let (code, stderr) = build(&repo, out.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert!(
        containers_created_since(repo.path(), before) >= 1,
        "the edit ran a build"
    );
    let second = std::fs::read(&kubectl).unwrap();
    assert_ne!(first, second, "the edited tree gives a different binary");
    let version: serde_json::Value =
        serde_json::from_str(&run_binary(&kubectl, &["version", "-o", "json"])).unwrap();
    assert_eq!(
        version["gitVersion"], "v1.34.0-dirty",
        "stamped once as dirty"
    );
    assert_eq!(version["gitTreeState"], "dirty");

    // A binary someone replaced by hand is not "up to date" either, and --force always builds.
    std::fs::write(&kubectl, b"not kubectl").unwrap();
    let (code, stderr) = build(&repo, out.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert_eq!(std::fs::read(&kubectl).unwrap(), second);
    let (code, stderr) = build(&repo, out.path(), &["--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert_no_containers_left(repo.path());
}

#[test]
fn go_caches_live_in_a_labelled_volume_that_survives_the_run() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = build(&repo, out.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    let volumes = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", "label=io.kbuild.cache=go"])
        .output()
        .unwrap();
    let volumes = String::from_utf8_lossy(&volumes.stdout).to_string();
    let volume = volumes
        .lines()
        .find(|v| v.starts_with("kbuild-gocache-"))
        .unwrap_or_else(|| panic!("no Go cache volume after a build: {volumes:?}"));
    // The build cache inside it holds compiled packages (Go writes them as <hash>-d files).
    let listing = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{volume}:/c"))
        .args([
            BUILDER_IMAGE,
            "sh",
            "-c",
            "find /c/go-build -name '*-d' | wc -l",
        ])
        .output()
        .unwrap();
    let entries: usize = String::from_utf8_lossy(&listing.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        entries > 50,
        "the Go build cache volume holds {entries} entries"
    );
    // The tree itself holds no Go cache: it lives in the volume.
    assert!(!repo.path().join("_output/local/go/cache").exists());
}
