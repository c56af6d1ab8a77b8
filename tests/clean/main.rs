//! `kbuild clean` removes what kbuild made for one output directory, and never a live run's
//! work. It has a test binary of its own because `--caches` removes the shared Go cache
//! volumes: cargo runs test binaries one after another, so it never pulls a volume from under
//! a build of the main suite. The tests here take turns for the same reason.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

const BUILDER_IMAGE: &str = "kbuild-builder:go1.24-trixie";

/// One test at a time: `--engine-wide --caches` would otherwise race the other's build.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn kbuild() -> Command {
    let mut cmd = Command::cargo_bin("kbuild").unwrap();
    for name in [
        "KUBE_GIT_VERSION",
        "KUBE_BUILD_PLATFORMS",
        "SOURCE_DATE_EPOCH",
        "KBUILD_IMAGE",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

/// A copy of mini-kube in a new temporary directory.
fn fixture_copy() -> tempfile::TempDir {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-kube");
    let tree = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .args(["-a", &format!("{}/.", fixture.display())])
        .arg(tree.path())
        .status()
        .unwrap();
    assert!(status.success());
    tree
}

/// `kbuild build kubectl` for linux/amd64 of `tree` into `out`.
fn build(tree: &Path, out: &Path) -> Command {
    let mut cmd = kbuild();
    cmd.args([
        "build",
        "kubectl",
        "--platform",
        "linux/amd64",
        "--version",
        "v1.34.0",
    ])
    .args(["--image", BUILDER_IMAGE])
    .arg("--kube-root")
    .arg(tree)
    .arg("--out")
    .arg(out);
    cmd
}

/// (exit code, stderr) of `cmd`.
fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Ids of the running containers kbuild made for the tree at `root`.
fn running_containers(root: &Path) -> Vec<String> {
    let root = root.canonicalize().unwrap();
    docker_lines(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=io.kbuild.source={}", root.display()),
    ])
}

/// Every path below `dir`, relative to it, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            found.push(e.path().strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), found);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// A kbuild run in the background; killed (with what it started) if the test fails.
struct Background(std::process::Child);

impl Background {
    fn spawn(cmd: &mut Command) -> Background {
        Background(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// (exit code, stderr), waiting at most `secs`.
    fn finish(mut self, secs: u64) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.running() {
            assert!(Instant::now() < deadline, "still running after {secs}s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SIGTERM: kbuild removes its container on the way out.
            let _ = Command::new("kill").arg(self.0.id().to_string()).status();
            let _ = self.0.wait();
        }
    }
}

/// The file that lets a held build (`hold_builds`) go on.
const RELEASE: &str = "release-the-build";

/// Makes the fixture's build wait in the build container, before it compiles, until the test
/// creates `RELEASE` in the tree (bind-mounted, so the container sees it), or 10 minutes.
fn hold_builds(tree: &Path) {
    let path = tree.join("hack/make-rules/build.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let marker = "kube::golang::build_binaries \"$@\"";
    assert!(text.contains(marker), "build.sh changed: {text}");
    let wait = format!(
        "for _ in $(seq 3000); do [[ -e \"${{KUBE_ROOT}}/{RELEASE}\" ]] && break; sleep 0.2; done"
    );
    std::fs::write(&path, text.replace(marker, &format!("{wait}\n{marker}"))).unwrap();
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "no {what} within {secs}s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn clean_never_touches_a_live_build_and_waits_for_its_locks() {
    let _turn = turn();
    let tree = fixture_copy();
    hold_builds(tree.path());
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let mut live = Background::spawn(&mut build(tree.path(), &out));
    wait_until("running build container", 240, || {
        assert!(live.running(), "the build ended early");
        !running_containers(tree.path()).is_empty()
    });
    let container = running_containers(tree.path());
    let before = listing(&out);

    // Another --out (one that does not exist): the live build's container is not its own.
    let (code, stderr) = run(kbuild()
        .arg("clean")
        .arg("--out")
        .arg(scratch.path().join("nonexistent")));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(running_containers(tree.path()), container, "{stderr}");
    // Engine-wide, a live run's container stays, and clean says so.
    let (code, stderr) = run(kbuild()
        .args(["clean", "--engine-wide"])
        .arg("--out")
        .arg(scratch.path().join("nonexistent")));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("its run is live"), "{stderr}");
    // The live build's own --out: its lock is held, so clean refuses at once, naming the
    // holder, and removes nothing.
    let (code, stderr) = run(kbuild().arg("clean").arg("--out").arg(&out));
    assert_eq!(code, 9, "{stderr}");
    assert!(stderr.contains(&format!("pid {}", live.0.id())), "{stderr}");
    // --all takes the tree's lock, which the build holds too.
    let planted = tree.path().join("_output/dockerized/planted");
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, "").unwrap();
    let (code, stderr) = run(kbuild()
        .args(["clean", "--all", "--kube-root"])
        .arg(tree.path())
        .arg("--out")
        .arg(scratch.path().join("nonexistent")));
    assert_eq!(code, 9, "{stderr}");
    assert!(stderr.contains("the tree"), "{stderr}");
    assert!(planted.exists(), "the tree's _output stays");
    assert_eq!(running_containers(tree.path()), container, "still building");
    assert_eq!(
        listing(&out),
        before,
        "nothing removed in the build's --out"
    );

    // --wait waits for the build, then cleans.
    let mut waiting = Background::spawn(kbuild().args(["clean", "--wait"]).arg("--out").arg(&out));
    std::thread::sleep(Duration::from_secs(2));
    assert!(waiting.running(), "clean --wait waits for the build");

    std::fs::write(tree.path().join(RELEASE), "").unwrap();
    let (code, stderr) = live.finish(600);
    assert_eq!(code, 0, "the live build finishes: {stderr}");
    let (code, stderr) = waiting.finish(120);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("removed"), "{stderr}");
    assert_eq!(listing(&out), [".kbuild.lock"], "{stderr}");
}

#[test]
fn clean_removes_only_recorded_files_and_never_the_lock() {
    let _turn = turn();
    let tree = fixture_copy();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let (code, stderr) = run(&mut build(tree.path(), &out));
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("bin/linux/amd64/kubectl").is_file());
    // kbuild's release-tars, as a run leaves them (recorded: its files and the directory),
    // and a killed run's staging directory.
    let tars = out.join("release-tars");
    let (code, stderr) = run(kbuild()
        .args([
            "package",
            "--version",
            "v1.34.0",
            "--platform",
            "linux/amd64",
        ])
        .arg("--kube-root")
        .arg(tree.path())
        .arg("--bin")
        .arg(out.join("bin"))
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    assert!(tars.join("SHA256SUMS").is_file(), "{stderr}");
    let staging = out.join(format!(".release-tars.{}.kbuild-tmp", u32::MAX - 1));
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("half.tar.gz"), vec![0u8; 4096]).unwrap();
    // The user's own files among kbuild's.
    std::fs::write(tars.join("NOTES.md"), "mine\n").unwrap();
    std::fs::write(out.join("bin/linux/amd64/my-plugin"), "mine too\n").unwrap();
    let lock = out.join(".kbuild.lock");
    let inode = std::fs::metadata(&lock).unwrap().ino();

    let (code, stderr) = run(kbuild().arg("clean").arg("--out").arg(&out));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        listing(&out),
        [
            ".kbuild",
            ".kbuild.lock",
            ".kbuild/owner.json",
            "bin",
            "bin/linux",
            "bin/linux/amd64",
            "bin/linux/amd64/my-plugin",
            "release-tars",
            "release-tars/NOTES.md",
        ],
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(tars.join("NOTES.md")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        std::fs::metadata(&lock).unwrap().ino(),
        inode,
        "the lock file is never unlinked"
    );
    // Still kbuild's: the next build writes there.
    let (code, stderr) = run(&mut build(tree.path(), &out));
    assert_eq!(code, 0, "{stderr}");
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn clean_engine_wide_removes_finished_runs_objects_and_reports_the_space() {
    let _turn = turn();
    let tree = fixture_copy();
    let scratch = tempfile::tempdir().unwrap();
    let out_dir = scratch.path().join("out");

    // A build leaves a Go cache volume and outputs behind.
    let (code, stderr) = run(&mut build(tree.path(), &out_dir));
    assert_eq!(code, 0, "{stderr}");
    // And a crashed run of an older kbuild left a container behind, with no liveness label.
    let created = Command::new("docker")
        .args([
            "create",
            "--label",
            "io.kbuild.managed=true",
            BUILDER_IMAGE,
            "true",
        ])
        .output()
        .unwrap();
    assert!(created.status.success());
    let leftover = String::from_utf8_lossy(&created.stdout).trim().to_string();
    assert!(!docker_lines(&["volume", "ls", "-q", "--filter", "label=io.kbuild.cache"]).is_empty());
    // A file of the user's in the output directory, which kbuild did not write.
    std::fs::write(out_dir.join("notes.txt"), "precious\n").unwrap();

    // Not an --out's: a plain clean leaves it.
    let (code, stderr) = run(kbuild()
        .arg("clean")
        .arg("--out")
        .arg(scratch.path().join("other")));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("--engine-wide"), "{stderr}");
    assert_eq!(
        docker_lines(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("id={leftover}")
        ])
        .len(),
        1
    );

    let (code, stderr) = run(kbuild()
        .args(["clean", "--engine-wide", "--caches"])
        .arg("--out")
        .arg(&out_dir));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("reclaimed"), "{stderr}");
    assert!(
        docker_lines(&["ps", "-aq", "--filter", &format!("id={leftover}")]).is_empty(),
        "{stderr}"
    );
    // Only what kbuild recorded writing is gone; the user's file, the lock and the owner file
    // (the directory is still kbuild's) stay.
    assert_eq!(
        listing(&out_dir),
        [".kbuild", ".kbuild.lock", ".kbuild/owner.json", "notes.txt"],
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("notes.txt")).unwrap(),
        "precious\n"
    );

    // Cleaning again finds nothing more to remove.
    let (code, stderr) = run(kbuild().arg("clean").arg("--out").arg(&out_dir));
    assert_eq!(code, 0, "{stderr}");
    assert!(out_dir.join("notes.txt").exists());

    // Without the user's file, a build and a clean leave only the lock.
    std::fs::remove_file(out_dir.join("notes.txt")).unwrap();
    let (code, stderr) = run(&mut build(tree.path(), &out_dir));
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = run(kbuild().arg("clean").arg("--out").arg(&out_dir));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("reclaimed"),
        "it says how much space came back: {stderr}"
    );
    assert_eq!(listing(&out_dir), [".kbuild.lock"], "{stderr}");
}
