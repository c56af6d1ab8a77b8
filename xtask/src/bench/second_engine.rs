//! A second Docker engine for the several-engines benchmark: a `dockerd` of the bench's own
//! on a private unix socket, with its own (empty) config file (this machine's
//! /etc/docker/daemon.json sets a data-root, which clashes with the flag), data-root,
//! exec-root, pidfile and bridge, and the builder image loaded from the main engine.
//! The same approach as the tests' `SecondEngine` (tests/it/engines.rs).
//!
//! Its own bridge matters: a second dockerd started with `--bridge none` deletes the main
//! engine's docker0, after which every container on the default network fails. It gets a
//! bridge created here (`ip link add ... type bridge`), deleted when the engine is dropped,
//! which happens on success, on failure and after Ctrl-C alike.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::builder_image::IMAGE;
use crate::util::{self, Failure};

pub struct SecondEngine {
    daemon: Option<Child>,
    /// Short (unix socket paths are limited to 108 bytes): the socket and the exec-root.
    run_dir: PathBuf,
    /// The data-root, the config file, the pidfile and the daemon's log.
    data_dir: PathBuf,
    bridge: String,
    /// The third octet of the bridge's 10.251.x.0/24.
    subnet: u32,
}

impl SecondEngine {
    /// Starts the daemon and loads the builder image into it (about 15 s).
    pub fn start() -> Result<SecondEngine, Failure> {
        SecondEngine::start_nth(0)
    }

    /// The bench's `n`th engine of its own: each has its own socket, data-root and bridge,
    /// so several run side by side.
    pub fn start_nth(n: u32) -> Result<SecondEngine, Failure> {
        let pid = std::process::id();
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let mut engine = SecondEngine {
            daemon: None,
            run_dir: PathBuf::from(format!("/tmp/kbb{pid}{suffix}")),
            data_dir: std::env::temp_dir().join(format!("kbuild-bench-engine-{pid}{suffix}")),
            // Not the tests' kbt prefix: a test run may have its own engine up meanwhile.
            // An interface name has at most 15 bytes.
            bridge: format!("kbb{}{suffix}", pid % 1_000_000),
            subnet: 20 + (pid + n * 97) % 200,
        };
        for dir in [&engine.run_dir, &engine.data_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
        }
        engine.create_bridge()?;
        let config = engine.data_dir.join("daemon.json");
        std::fs::write(&config, "{}").map_err(|e| Failure::new(e.to_string()))?;
        let log =
            std::fs::File::create(engine.log_path()).map_err(|e| Failure::new(e.to_string()))?;
        let log_err = log.try_clone().map_err(|e| Failure::new(e.to_string()))?;
        let dockerd = util::find_program("dockerd").ok_or_else(|| {
            Failure::new("the several-engines benchmark needs dockerd (apt-get install docker.io)")
        })?;
        let mut cmd = Command::new(dockerd);
        cmd.arg("--host")
            .arg(engine.docker_host())
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(engine.data_dir.join("data"))
            .arg("--exec-root")
            .arg(engine.run_dir.join("x"))
            .arg("--pidfile")
            .arg(engine.data_dir.join("dockerd.pid"))
            .args(["--iptables=false", "--ip-masq=false", "--bridge"])
            .arg(&engine.bridge)
            // The main engine's storage driver is the one known to work on this machine.
            .args(["--storage-driver", &main_storage_driver()])
            .env_remove("DOCKER_HOST")
            .stdout(log)
            .stderr(log_err);
        engine.daemon = Some(
            cmd.spawn()
                .map_err(|e| Failure::new(format!("cannot start dockerd: {e}")))?,
        );
        engine.wait_until_answering(Duration::from_secs(60))?;
        engine.load_builder_image()?;
        Ok(engine)
    }

    /// `unix:///tmp/kbb<pid>/d.sock`, for `--engines`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.run_dir.join("d.sock").display())
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join("dockerd.log")
    }

    /// The daemon's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The docker CLI aimed at this engine.
    fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(self.docker_host())
            .env_remove("DOCKER_HOST");
        cmd
    }

    fn create_bridge(&self) -> Result<(), Failure> {
        // A bridge left by an earlier bench that was killed would make `add` fail.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let address = format!("10.251.{}.1/24", self.subnet);
        for args in [
            vec!["link", "add", &self.bridge, "type", "bridge"],
            vec!["addr", "add", &address, "dev", &self.bridge],
            vec!["link", "set", &self.bridge, "up"],
        ] {
            let out = Command::new("ip")
                .args(&args)
                .output()
                .map_err(|e| Failure::new(format!("cannot run ip (install iproute2): {e}")))?;
            if !out.status.success() {
                return Err(Failure::new(format!(
                    "`ip {}` failed (the second engine needs root and iproute2): {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(())
    }

    fn wait_until_answering(&mut self, limit: Duration) -> Result<(), Failure> {
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
                return Ok(());
            }
            let exited = self
                .daemon
                .as_mut()
                .and_then(|d| d.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > limit {
                return Err(Failure::new(format!(
                    "the bench's second dockerd did not answer ({exited:?} after {:.0?}):\n{}",
                    started.elapsed(),
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker save <builder> | docker -H <this engine> load`.
    fn load_builder_image(&self) -> Result<(), Failure> {
        let mut save = Command::new("docker")
            .args(["save", IMAGE])
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::new(format!("cannot run docker save: {e}")))?;
        let piped = save
            .stdout
            .take()
            .map(Stdio::from)
            .unwrap_or_else(Stdio::null);
        let loaded = self
            .docker()
            .arg("load")
            .stdin(piped)
            .output()
            .map_err(|e| Failure::new(format!("cannot run docker load: {e}")))?;
        let saved = save.wait().map_err(|e| Failure::new(e.to_string()))?;
        if !(saved.success() && loaded.status.success()) {
            return Err(Failure::new(format!(
                "cannot load {IMAGE} into the bench's second engine: {}",
                String::from_utf8_lossy(&loaded.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Stops the daemon: SIGTERM to its own pid, a grace period, then SIGKILL.
    fn stop(&mut self) {
        let Some(mut daemon) = self.daemon.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &daemon.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        // Whatever a failed run left; everything else goes with the data-root.
        if let Some(ids) = util::output(self.docker().args(["ps", "-aq"])) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self.docker().args(["rm", "-f"]).args(&ids).output();
            }
        }
        self.stop();
        for dir in [&self.data_dir, &self.run_dir] {
            // Mounts the daemon may have left under its directories keep them from going.
            let _ = Command::new("umount")
                .args(["-R", "-l"])
                .arg(dir)
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// The storage driver of the main engine (`docker info`), or overlay2.
fn main_storage_driver() -> String {
    util::output(
        Command::new("docker")
            .args(["info", "--format", "{{.Driver}}"])
            .env_remove("DOCKER_HOST"),
    )
    .filter(|d| !d.is_empty())
    .unwrap_or_else(|| "overlay2".to_string())
}
