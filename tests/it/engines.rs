//! A second Docker engine for tests that need more than one: a `dockerd` of the tests' own
//! on a private unix socket, with its own (empty) config file, data-root, exec-root, pidfile
//! and bridge, and the builder image loaded from the main engine. No registry, no mock.
//!
//! Its own bridge matters: a second dockerd started with `--bridge none` deletes the main
//! engine's docker0, after which every container on the default network fails. It gets a
//! bridge created here (`ip link add ... type bridge`) and deleted when it stops.
//!
//! One daemon serves every test of a run that holds it at the same time
//! (`SecondEngine::shared`): loading the image takes about 15 s. It stops, and everything of
//! it goes, when the last holder drops it. A test that kills its engine mid-build starts one
//! of its own (`SecondEngine::private`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::common::{kill_tree, processes_matching, ProcessGuard, BUILDER_IMAGE};

pub(crate) struct SecondEngine {
    daemon: Option<ProcessGuard>,
    /// Short (unix socket paths are limited to 108 bytes): the socket and the exec-root.
    run_dir: tempfile::TempDir,
    /// The data-root, the config file, the pidfile and the daemon's log.
    data_dir: tempfile::TempDir,
    bridge: String,
}

static SHARED: Mutex<Weak<SecondEngine>> = Mutex::new(Weak::new());
/// Engines started by this test process so far: each gets a bridge and subnet of its own.
static STARTED: AtomicU32 = AtomicU32::new(0);

impl SecondEngine {
    /// The running second engine, started (with the builder image loaded) if none is.
    pub(crate) fn shared() -> Arc<SecondEngine> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = shared.upgrade() {
            return engine;
        }
        let engine = Arc::new(SecondEngine::start());
        *shared = Arc::downgrade(&engine);
        engine
    }

    /// An engine of the caller's own, which it may kill ([`SecondEngine::kill`]).
    pub(crate) fn private() -> SecondEngine {
        SecondEngine::start()
    }

    fn start() -> SecondEngine {
        let run_dir = tempfile::Builder::new()
            .prefix("kbe")
            .tempdir_in("/tmp")
            .unwrap();
        let data_dir = tempfile::Builder::new()
            .prefix("kbuild-engine-")
            .tempdir()
            .unwrap();
        // Interface names are limited to 15 bytes.
        let nth = STARTED.fetch_add(1, Ordering::SeqCst);
        let bridge = format!("kbt{}x{nth}", std::process::id() % 1_000_000);
        let mut engine = SecondEngine {
            daemon: None,
            run_dir,
            data_dir,
            bridge,
        };
        engine.create_bridge();
        let config = engine.data_dir.path().join("daemon.json");
        std::fs::write(&config, "{}").unwrap();
        let log = std::fs::File::create(engine.log_path()).unwrap();
        let mut cmd = Command::new("dockerd");
        cmd.arg("--host")
            .arg(engine.docker_host())
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(engine.data_dir.path().join("data"))
            .arg("--exec-root")
            .arg(engine.exec_root())
            .arg("--pidfile")
            .arg(engine.data_dir.path().join("dockerd.pid"))
            .args(["--iptables=false", "--ip-masq=false", "--bridge"])
            .arg(&engine.bridge)
            // The main engine's storage driver is the one known to work on this machine.
            .args(["--storage-driver", &main_storage_driver()])
            .env_remove("DOCKER_HOST")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        engine.daemon = Some(ProcessGuard::spawn(&mut cmd, "dockerd"));
        engine.wait_until_answering(Duration::from_secs(60));
        engine.load_builder_image();
        engine
    }

    /// `unix:///tmp/kbe.../d.sock`, for DOCKER_HOST.
    pub(crate) fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.run_dir.path().join("d.sock")
    }

    /// Named on the command lines of dockerd, its containerd and the shims (and not on
    /// those of clients, which name the socket).
    fn exec_root(&self) -> PathBuf {
        self.run_dir.path().join("x")
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("dockerd.log")
    }

    /// The daemon's log so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The docker CLI aimed at this engine.
    pub(crate) fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(self.docker_host())
            .env_remove("DOCKER_HOST");
        cmd
    }

    /// Runs the docker CLI against this engine; panics with its stderr if it fails.
    pub(crate) fn run_docker(&self, args: &[&str]) -> String {
        let out = self.docker().args(args).output().expect("docker runs");
        assert!(
            out.status.success(),
            "docker {args:?} on the second engine failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Ids of containers kbuild made for the tree at `root` on this engine.
    pub(crate) fn managed_containers(&self, root: &Path) -> Vec<String> {
        let root = root.canonicalize().unwrap();
        let filter = format!("label=io.kbuild.source={}", root.display());
        self.run_docker(&[
            "ps",
            "-aq",
            "--filter",
            "label=io.kbuild.managed",
            "--filter",
            &filter,
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect()
    }

    /// Names of volumes kbuild made for the tree at `root` on this engine (those `kbuild
    /// clean` finds: labelled io.kbuild.managed=true).
    pub(crate) fn managed_volumes(&self, root: &Path) -> Vec<String> {
        let root = root.canonicalize().unwrap();
        let filter = format!("label=io.kbuild.source={}", root.display());
        self.run_docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            "label=io.kbuild.managed=true",
            "--filter",
            &filter,
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect()
    }

    fn create_bridge(&self) {
        // A bridge left by an earlier run that was killed would make `add` fail.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let nth: u32 = self.bridge.rsplit('x').next().unwrap().parse().unwrap();
        let subnet = 20 + (std::process::id() + 37 * nth) % 200;
        for args in [
            vec!["link", "add", &self.bridge, "type", "bridge"],
            vec![
                "addr",
                "add",
                &format!("10.250.{subnet}.1/24"),
                "dev",
                &self.bridge,
            ],
            vec!["link", "set", &self.bridge, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip runs");
            assert!(
                out.status.success(),
                "ip {args:?} failed (the second engine needs root and iproute2): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn wait_until_answering(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            let answered = self
                .docker()
                .args(["info", "--format", "{{.ID}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if answered {
                return;
            }
            let exited = self.daemon.as_mut().and_then(|d| d.try_wait());
            if exited.is_some() || started.elapsed() > limit {
                panic!(
                    "the second dockerd did not answer ({exited:?} after {:?}):\n{}",
                    started.elapsed(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker save <builder> | docker -H <this engine> load`.
    fn load_builder_image(&self) {
        let mut save = Command::new("docker")
            .args(["save", BUILDER_IMAGE])
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save runs");
        let loaded = self
            .docker()
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load runs");
        let saved = save.wait().unwrap();
        assert!(
            saved.success() && loaded.status.success(),
            "cannot load {BUILDER_IMAGE} into the second engine (is it built? cargo xtask builder-image): {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
    }

    /// The engine is lost, as with a machine that goes down: dockerd, its containerd, the
    /// container shims and the containers they run, and the storage driver's fuse-overlayfs
    /// mounts are killed (SIGKILL) at once. The shims and fuse-overlayfs left dockerd's
    /// process tree when they started; their command lines name the engine's exec-root or
    /// data-root, and so find them.
    pub(crate) fn kill(&mut self) {
        let containers: Vec<String> = self
            .docker()
            .args(["ps", "-aq", "--no-trunc"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut pids: Vec<u32> = self.daemon.iter().map(ProcessGuard::id).collect();
        pids.extend(self.processes().iter().map(|(pid, _)| *pid));
        for pid in pids {
            kill_tree(pid);
        }
        // The guard reaps dockerd.
        self.daemon = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        // The killed containers' cgroups (cgroupfs driver) stay behind, and go once their
        // processes have gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<PathBuf> = containers.iter().flat_map(|id| glob_cgroups(id)).collect();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for dir in left {
                let _ = std::fs::remove_dir(dir);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The processes (pid, command line) of this engine still alive.
    pub(crate) fn processes(&self) -> Vec<(u32, String)> {
        let mut found: Vec<(u32, String)> = [self.exec_root(), self.data_dir.path().join("data")]
            .iter()
            .flat_map(|dir| processes_matching(&dir.display().to_string()))
            .filter_map(|line| {
                let (pid, cmdline) = line.split_once(": ")?;
                Some((pid.parse().ok()?, cmdline.to_string()))
            })
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// The engine shuts down as on `systemctl stop docker`: SIGTERM to dockerd, which stops
    /// its containers (each within its stop timeout) and then exits.
    pub(crate) fn terminate(&mut self) {
        self.stop_within(Duration::from_secs(60));
    }

    /// Stops the daemon: SIGTERM, a grace period, then the guard kills what is left.
    fn stop(&mut self) {
        self.stop_within(Duration::from_secs(20));
    }

    fn stop_within(&mut self, grace: Duration) {
        let Some(mut daemon) = self.daemon.take() else {
            return;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(daemon.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while daemon.try_wait().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(daemon);
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        // Whatever the tests left (they check that kbuild left nothing of its own).
        if let Ok(out) = self.docker().args(["ps", "-aq"]).output() {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = self.docker().args(["rm", "-f"]).args(&ids).output();
            }
        }
        self.stop();
        // Mounts the daemon left under its directories (all of them, when it was killed)
        // keep them from going.
        for mount in mounts_under(&[self.data_dir.path(), self.run_dir.path()]) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&mount)
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// The mount points under `dirs` (from /proc/self/mountinfo), the deepest first.
fn mounts_under(dirs: &[&Path]) -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = table
        .lines()
        // "id parent major:minor root mount-point options ...": the fifth field.
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| dirs.iter().any(|d| m.starts_with(d)))
        .collect();
    mounts.sort();
    mounts.dedup();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts
}

/// `/sys/fs/cgroup/<controller>/docker/<id>` for each controller where it exists.
fn glob_cgroups(id: &str) -> Vec<PathBuf> {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    controllers
        .flatten()
        .map(|c| c.path().join("docker").join(id))
        .filter(|p| p.is_dir())
        .collect()
}

/// The storage driver of the main engine (`docker info`), or overlay2.
fn main_storage_driver() -> String {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Driver}}"])
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker info runs");
    let driver = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if driver.is_empty() {
        "overlay2".to_string()
    } else {
        driver
    }
}

#[test]
fn the_second_engine_runs_the_builder_image_and_leaves_the_main_bridge_alone() {
    let engine = SecondEngine::shared();
    // Docker 20.10 derives the engine ID from /etc/docker/key.json, so both daemons of
    // this machine share it: the data-root tells them apart.
    let ours = engine.run_docker(&["info", "--format", "{{.DockerRootDir}}"]);
    assert!(
        Path::new(ours.trim()).starts_with(engine.data_dir.path()),
        "the second engine keeps its data in its own directory: {ours}"
    );
    let said = engine.run_docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        BUILDER_IMAGE,
        "go",
        "version",
    ]);
    assert!(said.contains("go1.24"), "{said}");
    // The main engine's containers still get their default network.
    let main_run = Command::new("docker")
        .args(["run", "--rm", BUILDER_IMAGE, "true"])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    assert!(
        main_run.status.success(),
        "the main engine's default network broke: {}",
        String::from_utf8_lossy(&main_run.stderr)
    );
}
