//! Podman, end to end: Debian's podman serves the Docker API (`podman system service`) on a
//! unix socket of the test's own, with a private storage root, and kbuild builds the fixture
//! through it exactly as through Docker. The builder image comes from the local Docker
//! engine (`docker save | podman load`). The service is stopped, and its storage removed,
//! by a guard even when the test fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// containers.conf for a podman that runs containers here: an empty `default_ulimits`
/// (podman's default open-files limit is above a lower hard limit, which the runtime then
/// cannot set), cgroupfs and a file event log (no systemd needed), and runc (crun refuses
/// hybrid cgroup hosts).
const WORKING_CONF: &str = "[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n";
/// The same without the ulimits fix.
const DEFAULT_ULIMITS_CONF: &str =
    "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n";
/// A hard open-files limit below podman's default, as on the machine the problem was seen.
const LOW_NOFILE: u64 = 20_000;
/// The one file root's podman writes outside its --root: a cache of blob facts for `load`.
const BLOB_INFO_CACHE: &str = "/var/lib/containers/cache/blob-info-cache-v1.boltdb";

/// A private podman: its storage, run directory, configuration and API socket all live in
/// one temporary directory.
struct Podman {
    dir: tempfile::TempDir,
    service: Option<Child>,
    /// Whether the blob info cache was there before: if not, the test removes it.
    had_blob_info_cache: bool,
}

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("kbuild-podman-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("working.conf"), WORKING_CONF).unwrap();
        std::fs::write(
            dir.path().join("default-ulimits.conf"),
            DEFAULT_ULIMITS_CONF,
        )
        .unwrap();
        Podman {
            dir,
            service: None,
            had_blob_info_cache: Path::new(BLOB_INFO_CACHE).exists(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.path().join("podman.sock")
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `podman` on the private storage, configured by `conf`.
    fn podman(&self, conf: &str) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.path().join(conf))
            .arg("--root")
            .arg(self.path().join("root"))
            .arg("--runroot")
            .arg(self.path().join("runroot"))
            .arg("--tmpdir")
            .arg(self.path().join("tmp"));
        cmd
    }

    /// `docker save BUILDER_IMAGE | podman load`.
    fn load_builder_image(&self) {
        let mut save = Command::new("docker")
            .args(["save", BUILDER_IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save runs");
        let load = self
            .podman("working.conf")
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("podman load runs");
        assert!(save.wait().unwrap().success(), "docker save failed");
        assert!(
            load.status.success(),
            "podman load failed: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }

    /// Starts `podman system service` with `conf`, its hard open-files limit lowered to
    /// `nofile` when given, and waits for its socket to answer.
    fn start(&mut self, conf: &str, nofile: Option<u64>) {
        assert!(self.service.is_none(), "one service at a time");
        let _ = std::fs::remove_file(self.socket());
        let mut podman = self.podman(conf);
        podman.args(["system", "service", "--time=0"]);
        podman.arg(self.docker_host());
        let mut cmd = match nofile {
            Some(n) => {
                let mut prlimit = Command::new("prlimit");
                prlimit
                    .arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(podman.get_program());
                prlimit.args(podman.get_args());
                for (k, v) in podman.get_envs() {
                    if let Some(v) = v {
                        prlimit.env(k, v);
                    }
                }
                prlimit
            }
            None => podman,
        };
        let log = std::fs::File::create(self.path().join(format!("{conf}.service.log"))).unwrap();
        // conmon leaves files (e.g. `oom`) in the service's working directory: keep them here.
        let child = cmd
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("podman system service starts");
        self.service = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if std::os::unix::net::UnixStream::connect(self.socket())
                .and_then(|mut s| {
                    s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n")?;
                    let mut answer = String::new();
                    std::io::Read::read_to_string(&mut s, &mut answer)?;
                    Ok(answer.contains("200 OK"))
                })
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "podman system service did not answer:\n{}",
            self.service_log(conf)
        );
    }

    fn service_log(&self, conf: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{conf}.service.log"))).unwrap_or_default()
    }

    /// Stops the service: SIGTERM, then SIGKILL after a grace period.
    fn stop(&mut self) {
        let Some(mut child) = self.service.take() else {
            return;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Containers podman still holds (kbuild's build containers remove themselves).
    fn containers(&self) -> Vec<String> {
        let out = self
            .podman("working.conf")
            .args(["ps", "-aq"])
            .output()
            .expect("podman ps runs");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// kbuild's build of kubectl for linux/amd64 through this podman.
    fn build(&self, repo: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
        let mut cmd = build_cmd(repo, out, &["kubectl"], &["linux/amd64"]);
        run(cmd
            .env("DOCKER_HOST", self.docker_host())
            .env_remove("DOCKER_CONTEXT")
            .args(extra))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.stop();
        let _ = self
            .podman("working.conf")
            .args(["rm", "-af", "-t", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Nothing of podman's may stay mounted below the directory being removed.
        let root = self.path().to_path_buf();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .filter(|m| Path::new(m).starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
        if !self.had_blob_info_cache {
            let cache = Path::new(BLOB_INFO_CACHE);
            let _ = std::fs::remove_file(cache);
            // Only when empty: the directories may hold others' files.
            let _ = std::fs::remove_dir(cache.parent().unwrap());
            let _ = std::fs::remove_dir(cache.parent().unwrap().parent().unwrap());
        }
    }
}

#[test]
fn podman_builds_the_fixture_by_bind_and_copy_and_its_rlimit_failure_names_the_fix() {
    let mut podman = Podman::new();
    podman.load_builder_image();
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();

    // Podman's default open-files limit above the service's hard limit: every container
    // fails to start, and kbuild says what to change.
    podman.start("default-ulimits.conf", Some(LOW_NOFILE));
    let (code, stdout, stderr) = podman.build(repo.path(), out.path(), &[]);
    assert_eq!(
        code, 5,
        "the engine refused the container:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("rlimit"),
        "the engine's words are kept:\n{stderr}"
    );
    assert!(
        stderr.contains("hint:") && stderr.contains("default_ulimits = []"),
        "the hint names the fix:\n{stderr}"
    );
    assert!(!out.path().join("bin").exists(), "nothing is installed");
    assert_eq!(
        podman.containers(),
        Vec::<String>::new(),
        "no container is left"
    );
    podman.stop();

    // With the fix, the build goes through podman and the binary is installed.
    podman.start("working.conf", None);
    let (code, stdout, stderr) = podman.build(repo.path(), out.path(), &[]);
    assert_eq!(
        code,
        0,
        "{stdout}\n{stderr}\nservice log:\n{}",
        podman.service_log("working.conf")
    );
    let said = format!("{stdout}{stderr}");
    let engine = said
        .lines()
        .find(|l| l.contains("==> engine:"))
        .unwrap_or_else(|| panic!("no engine line:\n{said}"));
    assert!(
        engine.contains("Podman") && engine.contains(&podman.docker_host()),
        "kbuild says it is podman, at the test's socket:\n{said}"
    );
    let kubectl = out.path().join("bin/linux/amd64/kubectl");
    assert!(is_elf_amd64(&header(&kubectl)), "{}", kubectl.display());
    let version = run_binary(&kubectl, &["version"]);
    assert!(version.contains("v1.34.0"), "{version}");
    assert_eq!(
        podman.containers(),
        Vec::<String>::new(),
        "no container is left"
    );

    // Copy transfer (what remote podman gets by default) uploads into the volume podman
    // mounts, and gives the same bytes.
    let copied = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = podman.build(repo.path(), copied.path(), &["--transfer", "copy"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read(copied.path().join("bin/linux/amd64/kubectl")).unwrap(),
        std::fs::read(&kubectl).unwrap(),
        "copy and bind transfer give the same binary"
    );
    assert_eq!(
        podman.containers(),
        Vec::<String>::new(),
        "no container is left"
    );

    // Podman sends no oom event when a compiler is killed under a memory limit: kbuild
    // still says the build ran out of memory.
    let (code, stdout, stderr) = podman.build(
        repo.path(),
        out.path(),
        &["--memory", "12m", "--skip-check", "memory", "--force"],
    );
    assert_eq!(code, 4, "{stdout}\n{stderr}");
    assert!(stderr.contains("ran out of memory"), "{stderr}");
    assert_eq!(
        podman.containers(),
        Vec::<String>::new(),
        "no container is left"
    );
}
