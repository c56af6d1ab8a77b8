//! Robustness against the real engine (issue 7): interrupts at several phases, a forced
//! out-of-memory kill, an unreachable and a vanishing engine, a stalled build, a full disk,
//! concurrent runs on one output directory, unsafe archives coming back from a container,
//! network-less builds with an environment allowlist, and copy transfer.
//! After each: no build container of the test's tree is left, no `*.kbuild-tmp` file and
//! no partial binary is in the output directory.
//!
//! Slow phases are made deterministic by patching the fixture's hack/make-rules/build.sh
//! (it prints a marker line, then sleeps), and the test acts when the marker shows up.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::common::*;

/// `kbuild build kubectl --platform linux/amd64` of `repo` into `out`, plus `extra`.
fn build_cmd(repo: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = crate::common::build_cmd(repo, out, &["kubectl"], &["linux/amd64"]);
    cmd.args(extra);
    cmd
}

/// Nothing half-done in `out` and nothing left on the engine for `repo`.
fn assert_clean(repo: &Path, out: &Path) {
    assert_no_containers_left(repo);
    let temps = temp_files(out);
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    let bins = binaries(out);
    assert!(
        bins.is_empty(),
        "binaries from an unfinished build: {bins:?}"
    );
}

const SLEEP_MARKER: &str = "kbuild-test: sleeping";

/// A fixture whose build prints a marker and then sleeps `secs` before building.
fn sleepy_repo(secs: u32) -> KubeRepo {
    let repo = KubeRepo::tagged("v1.34.0");
    patch_build_script(
        repo.path(),
        &format!("echo '{SLEEP_MARKER}'; sleep {secs}"),
        "",
    );
    repo
}

#[test]
fn sigint_during_make_removes_the_container_and_exits_130() {
    let repo = sleepy_repo(300);
    let out = tempfile::tempdir().unwrap();
    let mut run = Running::spawn(&mut build_cmd(repo.path(), out.path(), &[]));
    run.wait_for(SLEEP_MARKER, 120);
    assert_eq!(
        managed_containers(repo.path()).len(),
        1,
        "the build is running"
    );
    let sent = Instant::now();
    run.signal(Signal::INT);
    let (code, stderr) = run.finish(60);
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("stopped by Ctrl-C"), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(30),
        "stopping took {:?}",
        sent.elapsed()
    );
    assert_clean(repo.path(), out.path());
    // The lock went with the run: another run may take the directory at once.
    let lock = out.path().join(".kbuild.lock");
    assert_eq!(std::fs::read_to_string(&lock).unwrap_or_default(), "");
}

#[test]
fn sigterm_during_a_copy_transfer_build_exits_143_and_keeps_the_source_volume() {
    let repo = sleepy_repo(300);
    let out = tempfile::tempdir().unwrap();
    let mut run = Running::spawn(&mut build_cmd(
        repo.path(),
        out.path(),
        &["--transfer", "copy"],
    ));
    run.wait_for("==> sync:", 120);
    run.wait_for(SLEEP_MARKER, 120);
    assert_eq!(managed_volumes(repo.path()).len(), 1, "the source volume");
    run.signal(Signal::TERM);
    let (code, stderr) = run.finish(60);
    assert_eq!(code, 143, "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert_clean(repo.path(), out.path());
    // The synced tree stays for the next run's incremental sync.
    assert_eq!(
        remove_managed_volumes(repo.path()).len(),
        1,
        "the source volume stays"
    );
}

#[test]
fn interrupts_in_the_early_phases_exit_130_and_leave_nothing() {
    // Sent as soon as each phase is announced; wherever it lands (engine connection,
    // checks, image, cache volume, upload, container creation), the run stops cleanly.
    for (phase, extra) in [
        ("==> source:", &[][..]),
        ("==> engine:", &[][..]),
        ("==> image:", &[][..]),
        ("==> sync:", &["--transfer", "copy"][..]),
    ] {
        let repo = sleepy_repo(300);
        let out = tempfile::tempdir().unwrap();
        let mut run = Running::spawn(&mut build_cmd(repo.path(), out.path(), extra));
        run.wait_for(phase, 120);
        run.signal(Signal::INT);
        let (code, stderr) = run.finish(60);
        assert_eq!(code, 130, "interrupted at {phase}:\n{stderr}");
        assert_clean(repo.path(), out.path());
        // Only the sync makes a source volume (kept for the next sync, which starts afresh
        // since an unfinished sync leaves no listing).
        let volumes = remove_managed_volumes(repo.path());
        if phase != "==> sync:" {
            assert_eq!(volumes, Vec::<String>::new(), "interrupted at {phase}");
        }
    }
}

#[test]
fn a_build_killed_for_memory_says_so_with_the_limits_and_the_8_gib_advice() {
    let repo = KubeRepo::tagged("v1.34.0");
    // Something new to compile, so that the shared Go cache cannot satisfy the build.
    let main = repo.path().join("cmd/kubectl/main.go");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str(&format!(
        "\nvar oomMarker = \"{}\"\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&main, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["--memory", "16m", "--skip-check", "memory"],
    ));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("ran out of memory"), "{stderr}");
    assert!(
        stderr.contains("a container limit of 16.0 MiB"),
        "names the limit:\n{stderr}"
    );
    assert!(
        stderr.contains("engine memory"),
        "names the engine's memory:\n{stderr}"
    );
    assert!(stderr.contains("at least 8 GiB"), "{stderr}");
    assert_clean(repo.path(), out.path());
}

#[test]
fn an_unreachable_engine_is_reported_in_under_two_seconds() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    // Nothing listens on the port: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("tcp://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    // Something accepts but never answers: the ping times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let blackhole = format!("tcp://127.0.0.1:{}", silent.local_addr().unwrap().port());
    for host in [
        refused.as_str(),
        blackhole.as_str(),
        "unix:///nonexistent/kbuild/docker.sock",
    ] {
        let started = Instant::now();
        let (code, _, stderr) =
            run(build_cmd(repo.path(), out.path(), &[]).env("DOCKER_HOST", host));
        let took = started.elapsed();
        assert_eq!(code, 5, "{host}: {stderr}");
        assert!(
            stderr.contains(host),
            "names the endpoint {host}:\n{stderr}"
        );
        assert!(stderr.contains("DOCKER_HOST"), "says what to do:\n{stderr}");
        assert!(took < Duration::from_secs(2), "{host}: took {took:?}");
    }
    drop(silent);
    assert_clean(repo.path(), out.path());
}

#[test]
fn an_engine_that_vanishes_mid_build_is_reported_and_nothing_is_half_written() {
    // kbuild talks to the engine through a TCP proxy (so tcp://, so copy transfer); the
    // proxy is cut while make runs. The build keeps going on the real engine for a few
    // seconds, then its container removes itself.
    let repo = sleepy_repo(5);
    let out = tempfile::tempdir().unwrap();
    let proxy = EngineProxy::start();
    let mut run = Running::spawn(
        build_cmd(repo.path(), out.path(), &[]).env("DOCKER_HOST", proxy.docker_host()),
    );
    run.wait_for("==> sync:", 120);
    run.wait_for(SLEEP_MARKER, 120);
    proxy.vanish();
    let (code, stderr) = run.finish(60);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("lost the Docker engine"), "{stderr}");
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert!(temp_files(out.path()).is_empty());
    assert!(binaries(out.path()).is_empty());
    // Auto-removal: no build container outlives its build even when kbuild cannot remove it.
    wait_no_containers_left(repo.path(), 120);
    // The source volume is labelled for `kbuild clean`; clean it up here.
    remove_managed_volumes(repo.path());
}

#[test]
fn a_stalled_build_is_stopped_and_its_container_removed() {
    let repo = sleepy_repo(300);
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["--stall-timeout", "3"],
    ));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("printed nothing for 3s"), "{stderr}");
    assert!(stderr.contains("--stall-timeout"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(90));
    assert_clean(repo.path(), out.path());
}

#[test]
fn a_full_disk_fails_clearly_and_keeps_earlier_artifacts() {
    let repo = KubeRepo::tagged("v1.34.0");
    let built = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut crate::common::build_cmd(
        repo.path(),
        built.path(),
        &["kubectl"],
        &["linux/amd64", "darwin/arm64"],
    ));
    assert_eq!(code, 0, "{stderr}");
    let bin = built.path().join("bin");

    // Installing binaries: an output directory too small for a 7 MiB kubectl.
    let small = Tmpfs::mount("4m");
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        small.path(),
        &["--skip-check", "disk"],
    ));
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("disk is full"), "{stderr}");
    assert_clean(repo.path(), small.path());

    // Packaging: a first set (one client tarball, about 3 MiB) fits into 6 MiB; a second
    // set of two does not. The failed run must leave the first set exactly as it was, still
    // verifying, and nothing half-written.
    let package = |out: &Path, platforms: &[&str]| {
        let mut cmd = kbuild();
        cmd.args(["package", "--bin"])
            .arg(&bin)
            .arg("--kube-root")
            .arg(repo.path())
            .arg("--out")
            .arg(out);
        for p in platforms {
            cmd.args(["--platform", p]);
        }
        run(&mut cmd)
    };
    let both = ["linux/amd64", "darwin/arm64"];
    let roomy = tempfile::tempdir().unwrap();
    let (code, _, stderr) = package(roomy.path(), &both);
    assert_eq!(code, 0, "{stderr}");
    let disk = Tmpfs::mount("6m");
    let (code, _, stderr) = package(disk.path(), &["linux/amd64"]);
    assert_eq!(code, 0, "the first set fits: {stderr}");
    let tars = disk.path().join("release-tars");
    let first_set: Vec<(String, Vec<u8>)> = std::fs::read_dir(&tars)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    assert!(first_set
        .iter()
        .any(|(n, _)| n == "kubernetes-client-linux-amd64.tar.gz"));

    let (code, _, stderr) = package(disk.path(), &both);
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("disk is full"), "{stderr}");
    let temps = temp_files(disk.path());
    assert!(temps.is_empty(), "partial artifacts left: {temps:?}");
    for (name, bytes) in &first_set {
        let now = std::fs::read(tars.join(name)).unwrap_or_default();
        assert!(&now == bytes, "{name} from the earlier run changed");
    }
    assert!(
        !tars.join("kubernetes-client-darwin-arm64.tar.gz").exists(),
        "no artifact of the failed set"
    );
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&tars));
    assert_eq!(code, 0, "the earlier set still verifies: {stderr}");
}

#[test]
fn concurrent_runs_on_one_output_directory_wait_or_fail_and_a_dead_holder_frees_it() {
    let repo = sleepy_repo(300);
    let out = tempfile::tempdir().unwrap();
    let mut first = Running::spawn(&mut build_cmd(repo.path(), out.path(), &[]));
    first.wait_for(SLEEP_MARKER, 120);

    // --no-wait: fails at once, naming the holder.
    let (code, _, stderr) = run(&mut build_cmd(repo.path(), out.path(), &["--no-wait"]));
    assert_eq!(code, 9, "{stderr}");
    assert!(
        stderr.contains(&format!("another kbuild run (pid {})", first.pid())),
        "{stderr}"
    );
    // --lock-timeout: waits, then fails.
    let started = Instant::now();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["--lock-timeout", "1"],
    ));
    assert_eq!(code, 9, "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    // The default: waits with a message; Ctrl-C stops the waiting.
    let mut waiting = Running::spawn(&mut build_cmd(repo.path(), out.path(), &[]));
    waiting.wait_for(
        &format!("waiting for another kbuild run (pid {})", first.pid()),
        60,
    );
    waiting.signal(Signal::INT);
    let (code, stderr) = waiting.finish(30);
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(
        managed_containers(repo.path()).len(),
        1,
        "only the first run ever built"
    );
    first.signal(Signal::INT);
    let (code, stderr) = first.finish(60);
    assert_eq!(code, 130, "{stderr}");
    assert_clean(repo.path(), out.path());

    // A holder that dies without cleaning up (SIGKILL) does not leave the lock stuck.
    // (`flock -o`: the lock is held by flock itself, not inherited by its command.)
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(out.path().join(".kbuild.lock"))
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, _) = run(&mut build_cmd(repo.path(), out.path(), &["--no-wait"]));
    assert_eq!(code, 9, "the lock is held");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let fast = KubeRepo::tagged("v1.34.0");
    let (code, _, stderr) = run(&mut build_cmd(fast.path(), out.path(), &["--no-wait"]));
    assert_eq!(code, 0, "free again after the holder died:\n{stderr}");
    assert_no_containers_left(fast.path());
}

#[test]
fn unsafe_archives_from_the_engine_are_refused_and_nothing_is_installed() {
    // The build leaves a link to /etc and a link climbing out among its outputs; copy
    // transfer downloads them as a tar stream, which safe extraction refuses.
    let repo = KubeRepo::tagged("v1.34.0");
    patch_build_script(
        repo.path(),
        "",
        "ln -s /etc \"${KUBE_ROOT}/_output/dockerized/bin/linux/etc\"",
    );
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["--transfer", "copy"],
    ));
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("refused an unsafe archive entry"),
        "{stderr}"
    );
    assert!(stderr.contains("linux/etc"), "{stderr}");
    assert_clean(repo.path(), out.path());
    remove_managed_volumes(repo.path());
}

#[test]
fn builds_have_no_network_and_only_allowlisted_environment() {
    let repo = KubeRepo::tagged("v1.34.0");
    patch_build_script(
        repo.path(),
        "echo \"kbuild-test: net=$(ls /sys/class/net | tr '\\n' ' ')\"; env | sort | sed 's/^/kbuild-test env: /'",
        "",
    );
    let secrets = [
        ("GITHUB_TOKEN", "ghp_kbuildTestSecret0001"),
        ("AWS_SECRET_ACCESS_KEY", "kbuildTestSecret0002"),
        ("DOCKER_AUTH_CONFIG", "kbuildTestSecret0003"),
        (
            "HTTPS_PROXY",
            "http://user:kbuildTestSecret0004@proxy.invalid:3128",
        ),
    ];
    let with_secrets = |cmd: &mut Command| {
        for (k, v) in secrets {
            cmd.env(k, v);
        }
        cmd.env("KUBE_VERBOSE", "1");
    };
    let out = tempfile::tempdir().unwrap();
    let mut cmd = build_cmd(repo.path(), out.path(), &["--json"]);
    with_secrets(&mut cmd);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let log = std::fs::read_to_string(out.path().join("logs/kubectl.log")).unwrap();
    assert!(
        log.contains("kbuild-test: net=lo \n") || log.contains("kbuild-test: net=lo\n"),
        "only loopback:\n{log}"
    );
    assert!(log.contains("kbuild-test env: GOPROXY=off"), "{log}");
    assert!(
        log.contains("kbuild-test env: KUBE_VERBOSE=1"),
        "allowlisted:\n{log}"
    );
    let env_names: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("kbuild-test env: "))
        .filter_map(|l| l.split('=').next())
        .collect();
    for (k, v) in secrets {
        assert!(!env_names.contains(&k), "{k} reached the build");
        for (what, text) in [("log", &log), ("stdout", &stdout), ("stderr", &stderr)] {
            assert!(!text.contains(v), "{k}'s value is in the {what}");
        }
    }
    // The manifest of a package made in that environment holds no secret either.
    let mut cmd = kbuild();
    cmd.args([
        "package",
        "--kube-root",
        repo.path().to_str().unwrap(),
        "--out",
    ])
    .arg(out.path());
    with_secrets(&mut cmd);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let manifest = std::fs::read_to_string(out.path().join("release-tars/manifest.json")).unwrap();
    for (k, v) in secrets {
        assert!(!manifest.contains(v), "{k}'s value is in manifest.json");
    }

    // --network gives the container a network and lifts GOPROXY=off.
    let out2 = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(repo.path(), out2.path(), &["--network"]));
    assert_eq!(code, 0, "{stderr}");
    let log = std::fs::read_to_string(out2.path().join("logs/kubectl.log")).unwrap();
    assert!(log.contains("eth0"), "a network interface:\n{log}");
    assert!(!log.contains("GOPROXY=off"), "{log}");
    assert_no_containers_left(repo.path());
}

#[test]
fn a_tree_that_does_not_vendor_its_dependencies_needs_network() {
    let repo = KubeRepo::tagged("v1.34.0");
    let go_mod = repo.path().join("go.mod");
    let mut text = std::fs::read_to_string(&go_mod).unwrap();
    text.push_str("\nrequire github.com/spf13/cobra v1.8.0\n");
    std::fs::write(&go_mod, text).unwrap();
    // mini-kube's vendor/ holds only its ginkgo stand-in (a local replace): without it the
    // tree vendors nothing.
    std::fs::remove_dir_all(repo.path().join("vendor")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(repo.path(), out.path(), &[]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("github.com/spf13/cobra"), "{stderr}");
    assert!(stderr.contains("--network"), "{stderr}");
    assert!(stderr.contains("go mod vendor"), "{stderr}");
    assert_clean(repo.path(), out.path());
}

#[test]
fn copy_transfer_gives_the_same_bytes_as_a_bind_mount() {
    let repo = KubeRepo::tagged("v1.34.0");
    let platforms = ["--platform", "linux/amd64", "--platform", "darwin/arm64"];
    let bind = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let mut built = Vec::new();
    for (out, transfer) in [(&bind, "bind"), (&copy, "copy")] {
        let (code, _, stderr) = run(kbuild()
            .args(["build", "kubectl", "--kube-root"])
            .arg(repo.path())
            .args(["--image", BUILDER_IMAGE, "--transfer", transfer, "--out"])
            .arg(out.path())
            .args(platforms));
        assert_eq!(code, 0, "{transfer}: {stderr}");
        assert_eq!(stderr.contains("==> sync:"), transfer == "copy", "{stderr}");
        built.push(binaries(out.path()));
    }
    assert_eq!(built[0], built[1]);
    assert_eq!(built[0].len(), 2);
    for rel in &built[0] {
        let a = std::fs::read(bind.path().join(rel)).unwrap();
        let b = std::fs::read(copy.path().join(rel)).unwrap();
        assert!(a == b, "{} differs between bind and copy", rel.display());
    }
    let version = version_json(&copy.path().join("bin/linux/amd64/kubectl"));
    assert_eq!(version["gitVersion"], "v1.34.0");
    assert_eq!(version["gitTreeState"], "clean");
    assert_no_containers_left(repo.path());
    assert_eq!(
        remove_managed_volumes(repo.path()).len(),
        1,
        "the source volume stays for the next sync"
    );
    assert!(temp_files(copy.path()).is_empty());
}
