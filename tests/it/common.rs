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
    // The server images' variables (build/common.sh) would change the bases.
    for name in [
        "KUBE_GORUNNER_IMAGE",
        "KUBE_BASE_IMAGE_REGISTRY",
        "KUBE_DOCKER_REGISTRY",
        "KUBE_DOCKER_IMAGE_TAG",
        "KUBE_APISERVER_BASE_IMAGE",
        "KUBE_CONTROLLER_MANAGER_BASE_IMAGE",
        "KUBE_SCHEDULER_BASE_IMAGE",
        "KUBE_PROXY_BASE_IMAGE",
        "KUBECTL_BASE_IMAGE",
    ] {
        cmd.env_remove(name);
    }
    // Variables kbuild passes through to make would change plans and fingerprints.
    for name in [
        "KUBE_VERBOSE",
        "GOFLAGS",
        "GOLDFLAGS",
        "GOGCFLAGS",
        "GOEXPERIMENT",
        "DBG",
        "NO_COLOR",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

/// `kbuild build <components> --platform <p>... --kube-root <repo> --image <builder> --out <out>`.
pub fn build_cmd(repo: &Path, out: &Path, components: &[&str], platforms: &[&str]) -> Command {
    let mut cmd = kbuild();
    cmd.arg("build").args(components);
    for platform in platforms {
        cmd.args(["--platform", platform]);
    }
    cmd.arg("--kube-root")
        .arg(repo)
        .args(["--image", BUILDER_IMAGE])
        .arg("--out")
        .arg(out);
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

/// Commits everything in `dir` with message `message` (fixed identity and date).
pub fn commit_all(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A mini-kube repository with history, served to kbuild as an upstream:
///
/// ```text
/// master:       c1 (v1.33.0) - c2 ... c20 - c21 (v1.34.0-alpha.1) - c22 ... c40
/// release-1.33: c1 - r1 - r2 (v1.33.1) - r3
/// ```
///
/// Every commit rewrites `pkg/history/log.txt`, so full history holds many more objects
/// than one commit does. Serving by commit id is allowed (uploadpack.allowAnySHA1InWant).
pub struct HistoryRepo {
    pub dir: tempfile::TempDir,
    /// master's commits, c1 first.
    pub master: Vec<String>,
    /// release-1.33's commits after c1: r1, r2, r3.
    pub release: Vec<String>,
}

impl HistoryRepo {
    pub fn new() -> HistoryRepo {
        let dir = tempfile::Builder::new()
            .prefix("kbuild-upstream-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        copy_tree(&fixture_dir(), root);
        git(root, &["init", "-q", "-b", "master"]);
        git(root, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
        git(root, &["config", "uploadpack.allowFilter", "true"]);
        let history = root.join("pkg/history");
        std::fs::create_dir_all(&history).unwrap();
        let write = |n: &str| {
            std::fs::write(
                history.join("log.txt"),
                format!("commit {n}\n{}\n", "x".repeat(64)),
            )
            .unwrap()
        };
        let mut master = Vec::new();
        for i in 1..=40 {
            write(&format!("c{i}"));
            master.push(commit_all(root, &format!("c{i}")));
            match i {
                1 => git(root, &["tag", "-a", "v1.33.0", "-m", "v1.33.0"]),
                21 => git(
                    root,
                    &["tag", "-a", "v1.34.0-alpha.1", "-m", "v1.34.0-alpha.1"],
                ),
                _ => String::new(),
            };
        }
        git(root, &["checkout", "-q", "-b", "release-1.33", &master[0]]);
        let mut release = Vec::new();
        for i in 1..=3 {
            write(&format!("r{i}"));
            release.push(commit_all(root, &format!("r{i}")));
            if i == 2 {
                git(root, &["tag", "-a", "v1.33.1", "-m", "v1.33.1"]);
            }
        }
        git(root, &["checkout", "-q", "master"]);
        HistoryRepo {
            dir,
            master,
            release,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Adds a commit on `branch` (checked out again afterwards) and returns it.
    pub fn add_commit(&self, branch: &str, message: &str) -> String {
        git(self.path(), &["checkout", "-q", branch]);
        std::fs::write(self.path().join("pkg/history/log.txt"), message).unwrap();
        let commit = commit_all(self.path(), message);
        git(self.path(), &["checkout", "-q", "master"]);
        commit
    }
}

/// A process a test starts (a daemon, a server), in a process group of its own. Dropping
/// the guard, whether the test passed or panicked, kills the process, its group and every
/// descendant (`git daemon` is a `git` wrapper around a `git-daemon` child, sshd forks one
/// child per connection), and reaps it: no test leaves anything running.
pub struct ProcessGuard {
    child: std::process::Child,
}

impl ProcessGuard {
    /// Starts `cmd` in a new process group; panics naming `what` if it cannot start.
    pub fn spawn(cmd: &mut Command, what: &str) -> ProcessGuard {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
        ProcessGuard { child }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        kill_tree(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills `pid`, its process group and every descendant (found through /proc before any is
/// killed, since orphans are adopted by init and lose the trail).
pub fn kill_tree(pid: u32) {
    use rustix::process::{kill_process, kill_process_group, Pid, Signal};
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        all.extend(children_of(all[i]));
        i += 1;
    }
    if let Some(group) = Pid::from_raw(pid as i32) {
        // Only a group this process leads: never our own (the test harness's) group.
        if rustix::process::getpgid(Some(group)).ok() == Some(group) {
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
    for p in all {
        if let Some(p) = Pid::from_raw(p as i32) {
            let _ = kill_process(p, Signal::KILL);
        }
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // /proc/<p>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = &stat[stat.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Live processes (not zombies) whose command line contains `needle`.
pub fn processes_matching(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
            if state == "Z" {
                return None;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(needle)
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// `git daemon` serving a directory on 127.0.0.1, stopped (with its children) when dropped.
pub struct GitDaemon {
    process: ProcessGuard,
    pub port: u16,
    name: String,
}

impl GitDaemon {
    /// Serves the repository at `repo` (only it) as git://127.0.0.1:<port>/<its name>.
    pub fn serve(repo: &Path) -> GitDaemon {
        let base = repo.parent().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = ProcessGuard::spawn(
            Command::new("git")
                .args([
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--listen=127.0.0.1",
                    "--enable=upload-pack",
                ])
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", base.display()))
                .arg(repo)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
            "git daemon (is git installed?)",
        );
        let name = repo.file_name().unwrap().to_string_lossy().into_owned();
        let daemon = GitDaemon {
            process,
            port,
            name,
        };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "git daemon did not listen on 127.0.0.1:{port} within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        daemon
    }

    /// The git:// URL of the served repository.
    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/{}", self.port, self.name)
    }
}

/// How many objects a repository holds (loose plus packed), from `git count-objects -v`.
pub fn count_objects(dir: &Path) -> u64 {
    let text = git(dir, &["count-objects", "-v"]);
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("count: ")
                .or_else(|| l.strip_prefix("in-pack: "))
        })
        .map(|n| n.trim().parse::<u64>().unwrap())
        .sum()
}

/// Parses a kubectl `version -o json` output.
pub fn version_json(binary: &Path) -> serde_json::Value {
    let text = run_binary(binary, &["version", "-o", "json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("version -o json: {e}: {text}"))
}

// ---- Robustness helpers (tests/it/robust.rs) ----

/// A kbuild run in the background whose stderr lines are collected as they come.
pub struct Running {
    pub child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd` with stderr piped (not a terminal: plain lines).
    pub fn spawn(cmd: &mut Command) -> Running {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kbuild starts");
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Whether some stderr line so far contains `needle`.
    fn seen(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits until a stderr line contains `needle`; panics with what was seen after `secs`.
    pub fn wait_for(&mut self, needle: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if self.seen(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader drain what is left before judging.
                std::thread::sleep(std::time::Duration::from_millis(200));
                if self.seen(needle) {
                    return;
                }
                panic!(
                    "kbuild exited ({status}) before printing {needle:?}:\n{}",
                    self.stderr()
                );
            }
            if std::time::Instant::now() > deadline {
                panic!("no {needle:?} on stderr within {secs}s:\n{}", self.stderr());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).expect("signal sent");
    }

    /// Waits for the exit (at most `secs`) and returns (exit code, stderr).
    pub fn finish(mut self, secs: u64) -> (i32, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("kbuild did not exit within {secs}s:\n{}", self.stderr());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status.code().unwrap_or(-1), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // A test that failed half-way: kbuild and whatever it started (make, ssh).
            kill_tree(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// Inserts `lines` into the tree's hack/make-rules/build.sh right before it builds (so the
/// build container runs them first), and `after` after the build.
pub fn patch_build_script(root: &Path, before: &str, after: &str) {
    let path = root.join("hack/make-rules/build.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let marker = "kube::golang::build_binaries \"$@\"";
    assert!(text.contains(marker), "build.sh changed: {text}");
    let patched = text.replace(marker, &format!("{before}\n{marker}\n{after}\n"));
    std::fs::write(&path, patched).unwrap();
}

/// Everything under `dir` whose name marks an unfinished write (`*.kbuild-tmp`).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.to_string_lossy().contains(".kbuild-tmp") {
                found.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    found
}

/// Every regular file under `dir`/bin, relative to `dir`.
pub fn binaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.join("bin")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// Volumes kbuild made for the tree at `root` (copy transfer's source volumes).
pub fn managed_volumes(root: &Path) -> Vec<String> {
    let root = root.canonicalize().unwrap();
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", "label=io.kbuild.managed"])
        .arg("--filter")
        .arg(format!("label=io.kbuild.source={}", root.display()))
        .output()
        .expect("docker volume ls runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Removes the source volumes copy transfer keeps for the tree at `root` (they stay between
/// runs, for the next incremental sync); returns their names.
pub fn remove_managed_volumes(root: &Path) -> Vec<String> {
    let volumes = managed_volumes(root);
    for v in &volumes {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", v])
            .status();
    }
    volumes
}

/// Waits up to `secs` for the engine to hold no container of the tree at `root`.
pub fn wait_no_containers_left(root: &Path, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !managed_containers(root).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_no_containers_left(root);
}

/// A tmpfs of `size` (e.g. "4m") mounted on a fresh directory, unmounted on drop.
/// Needs root; fails the test (does not skip) when it cannot mount.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("kbuild-tmpfs-")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} (the disk-full test needs root): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A TCP endpoint on 127.0.0.1 that forwards to the local engine's socket, so that kbuild
/// talks to a tcp:// engine (and so uses copy transfer) which the test can make vanish.
pub struct EngineProxy {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl EngineProxy {
    pub fn start() -> EngineProxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(engine) =
                            std::os::unix::net::UnixStream::connect("/var/run/docker.sock")
                        else {
                            continue;
                        };
                        conns2.lock().unwrap().push(client.try_clone().unwrap());
                        let (mut c_read, mut e_write) =
                            (client.try_clone().unwrap(), engine.try_clone().unwrap());
                        let (mut e_read, mut c_write) = (engine, client);
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut c_read, &mut e_write);
                            let _ = e_write.shutdown(std::net::Shutdown::Write);
                        });
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut e_read, &mut c_write);
                            let _ = c_write.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
            // Dropping the listener here: new connections are refused from now on.
        });
        EngineProxy { port, stop, conns }
    }

    pub fn docker_host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The engine vanishes: no new connections, every open one cut.
    pub fn vanish(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.vanish();
    }
}

/// `tar tzf` of a tarball, as GNU tar lists it.
pub fn gnu_tar_list(tarball: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("tzf")
        .arg(tarball)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "GNU tar cannot list {}",
        tarball.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `script` with bash in `dir`: (exit code, stdout then stderr).
pub fn shell(dir: &Path, script: &str) -> (i32, String) {
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A tiny base image for the server image tests, made once: a static binary as /go-runner
/// (docker's own tini, or Debian's tini-static), with go-runner's entrypoint and user, by
/// `docker import` (no registry here). Idempotent: kept once made.
pub const TEST_BASE_IMAGE: &str = "kbuild-test-base:1";

pub fn ensure_test_base() -> &'static str {
    let present = Command::new("docker")
        .args(["image", "inspect", TEST_BASE_IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return TEST_BASE_IMAGE;
    }
    let binary = ["/usr/bin/docker-init", "/usr/bin/tini-static"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a static binary for the test base (docker-init or tini-static)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(binary, dir.path().join("go-runner")).unwrap();
    let tar = dir.path().join("base.tar");
    let out = Command::new("tar")
        .args(["--owner=0", "--group=0", "--mode=0755", "--mtime=@0", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .arg("go-runner")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new("docker")
        .args(["import"])
        .args(["--change", r#"ENTRYPOINT ["/go-runner"]"#])
        .args(["--change", "USER 65532"])
        .args(["--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin"])
        .args(["--change", "WORKDIR /"])
        .arg(&tar)
        .arg(TEST_BASE_IMAGE)
        .output()
        .unwrap();
    assert!(out.status.success(), "docker import: {out:?}");
    TEST_BASE_IMAGE
}
