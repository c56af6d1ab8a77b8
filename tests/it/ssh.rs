//! `DOCKER_HOST=ssh://...` engines, end to end: a private sshd on 127.0.0.1 (a child of
//! the test, with its own host key and authorized keys) in front of the local engine.
//!
//! The ssh client reads its config from the passwd home directory, never from $HOME, so
//! the tests put a wrapper `ssh` first on kbuild's PATH that runs the real client with
//! `-F <the test's config>` (which also keeps /etc/ssh/ssh_config and the user's own
//! config out): the test's key, a known_hosts file holding the test's host key, strict
//! host key checking, no agent.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::common::*;

/// Finds a program on PATH or in the sbin directories (sshd lives in /usr/sbin).
fn program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: the ssh tests need openssh-server and openssh-client (apt-get install openssh-server)")
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) {
    let out = Command::new(program("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kbuild-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private sshd on 127.0.0.1:<port> that lets root in with the test's keys; killed on drop.
struct SshServer {
    // Fields drop in order: the server (and its per-connection children) before its directory.
    process: ProcessGuard,
    dir: tempfile::TempDir,
    port: u16,
}

impl SshServer {
    fn start() -> SshServer {
        let dir = tempfile::Builder::new()
            .prefix("kbuild-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        keygen(&d.join("stranger_key"));
        keygen(&d.join("nodocker_key"));
        let public = |name: &str| std::fs::read_to_string(d.join(format!("{name}.pub"))).unwrap();
        // nodocker_key logs in to a shell whose PATH has no docker, as on a host without it.
        std::fs::write(
            d.join("authorized_keys"),
            format!(
                "{}command=\"PATH=/nonexistent exec /bin/sh -c \\\"$SSH_ORIGINAL_COMMAND\\\"\" {}",
                public("client_key"),
                public("nodocker_key")
            ),
        )
        .unwrap();
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {keys}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PidFile {pid}\nLogLevel VERBOSE\n",
                host_key = d.join("host_key").display(),
                keys = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            ),
        )
        .unwrap();
        // sshd's privilege separation directory (the service would create it at boot).
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (the ssh tests need root)");
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let process = ProcessGuard::spawn(
            Command::new(program("sshd"))
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
            "sshd",
        );
        let mut server = SshServer { process, dir, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.process.try_wait() {
                panic!("sshd exited ({status}):\n{}", server.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not listen on 127.0.0.1:{port} within 10 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn docker_host(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A client set-up: `key` as identity; the server's host key known, or not.
    fn client(&self, key: &str, knows_host: bool) -> SshClient {
        let known = if knows_host {
            let host_key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
            let mut fields = host_key.split_whitespace();
            format!(
                "[127.0.0.1]:{} {} {}\n",
                self.port,
                fields.next().unwrap(),
                fields.next().unwrap()
            )
        } else {
            String::new()
        };
        SshClient::new(Some(&self.dir.path().join(key)), &known)
    }
}

/// The ssh client kbuild runs: a wrapper `ssh` in a directory put first on PATH.
struct SshClient {
    dir: tempfile::TempDir,
}

impl SshClient {
    fn new(key: Option<&Path>, known_hosts: &str) -> SshClient {
        let dir = tempfile::Builder::new()
            .prefix("kbuild-ssh-client-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("known_hosts"), known_hosts).unwrap();
        let mut config = format!(
            "Host *\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {}\n  \
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            d.join("known_hosts").display()
        );
        if let Some(key) = key {
            config.push_str(&format!("  IdentityFile {}\n", key.display()));
        }
        std::fs::write(d.join("config"), config).unwrap();
        std::fs::create_dir(d.join("bin")).unwrap();
        let wrapper = d.join("bin/ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} -F {} \"$@\"\n",
                program("ssh").display(),
                d.join("config").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        SshClient { dir }
    }

    /// kbuild with this client first on PATH and DOCKER_HOST set to `host`.
    fn kbuild(&self, host: &str) -> Command {
        let path = std::env::var("PATH").unwrap_or_default();
        let mut cmd = kbuild();
        cmd.env(
            "PATH",
            format!("{}:{path}", self.dir.path().join("bin").display()),
        )
        .env("DOCKER_HOST", host)
        .env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// Processes still running this client (its config path is on their command line).
    fn processes(&self) -> Vec<String> {
        let needle = self.dir.path().join("config").display().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        found
    }

    /// Waits up to `secs` for every ssh process of this client to be gone.
    fn assert_no_processes_left(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let left = self.processes();
        assert!(left.is_empty(), "ssh processes outlived kbuild: {left:?}");
    }
}

fn build_args<'a>(cmd: &'a mut Command, repo: &Path, out: &Path) -> &'a mut Command {
    cmd.args([
        "build",
        "kubectl",
        "--platform",
        "linux/amd64",
        "--kube-root",
    ])
    .arg(repo)
    .args(["--image", BUILDER_IMAGE, "--out"])
    .arg(out)
}

#[test]
fn an_ssh_engine_builds_the_same_bytes_as_a_local_bind_mount() {
    let server = SshServer::start();
    let client = server.client("client_key", true);
    let repo = KubeRepo::tagged("v1.34.0");

    let remote = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, _, stderr) = run(build_args(
        &mut client.kbuild(&server.docker_host()),
        repo.path(),
        remote.path(),
    ));
    let took = started.elapsed();
    assert_eq!(code, 0, "{stderr}\n--- sshd log ---\n{}", server.log());
    assert!(
        stderr.contains(&format!("at {}", server.docker_host())),
        "names the ssh engine:\n{stderr}"
    );
    assert!(
        stderr.contains("==> sync:") && stderr.contains("copy transfer"),
        "uses the copy transfer:\n{stderr}"
    );
    eprintln!("build over ssh took {took:?}");

    let local = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(build_args(&mut kbuild(), repo.path(), local.path())
        .args(["--transfer", "bind"])
        .env_remove("DOCKER_HOST"));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("==> sync:"), "{stderr}");

    let built = binaries(remote.path());
    assert_eq!(built, binaries(local.path()));
    assert_eq!(built, [PathBuf::from("bin/linux/amd64/kubectl")]);
    for rel in &built {
        let a = std::fs::read(remote.path().join(rel)).unwrap();
        let b = std::fs::read(local.path().join(rel)).unwrap();
        assert!(a == b, "{} differs between ssh and bind", rel.display());
    }
    let version = version_json(&remote.path().join("bin/linux/amd64/kubectl"));
    assert_eq!(version["gitVersion"], "v1.34.0");
    assert_no_containers_left(repo.path());
    assert_eq!(
        remove_managed_volumes(repo.path()).len(),
        1,
        "the source volume stays for the next sync"
    );
    assert!(temp_files(remote.path()).is_empty());
    // Every ssh connection ended with kbuild: no daemons, no control masters left behind.
    client.assert_no_processes_left(5);
}

#[test]
fn an_ssh_endpoint_that_does_not_answer_fails_fast_with_a_hint() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let client = SshClient::new(None, "");
    // Nothing listens: refused at once. Something accepts but never speaks: ssh's
    // connect timeout (which covers the server's banner).
    let refused = format!("ssh://root@127.0.0.1:{}", free_port());
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let blackhole = format!(
        "ssh://root@127.0.0.1:{}",
        silent.local_addr().unwrap().port()
    );
    for (host, says) in [
        (refused.as_str(), "Connection refused"),
        (blackhole.as_str(), "timed out"),
    ] {
        let started = Instant::now();
        let (code, _, stderr) = run(build_args(
            &mut client.kbuild(host),
            repo.path(),
            out.path(),
        ));
        let took = started.elapsed();
        assert_eq!(code, 5, "{host}: {stderr}");
        assert!(
            stderr.contains(host),
            "names the endpoint {host}:\n{stderr}"
        );
        assert!(stderr.contains(says), "{host}: ssh's reason:\n{stderr}");
        assert!(stderr.contains("hint:"), "{host}: a hint:\n{stderr}");
        assert!(stderr.contains("DOCKER_HOST"), "{host}:\n{stderr}");
        assert!(took < Duration::from_secs(2), "{host}: took {took:?}");
    }
    drop(silent);
    assert_no_containers_left(repo.path());
    assert!(binaries(out.path()).is_empty());
    client.assert_no_processes_left(5);
}

#[test]
fn ssh_failures_say_what_to_fix() {
    let server = SshServer::start();
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    for (client, what, message, hint) in [
        (
            server.client("stranger_key", true),
            "a key the remote does not know",
            "Permission denied",
            "authorized_keys",
        ),
        (
            server.client("client_key", false),
            "an unknown host key",
            "does not trust the host key",
            "known_hosts",
        ),
        (
            server.client("nodocker_key", true),
            "a remote without docker",
            "has no docker CLI",
            "install the Docker CLI",
        ),
    ] {
        let started = Instant::now();
        let (code, _, stderr) = run(build_args(
            &mut client.kbuild(&server.docker_host()),
            repo.path(),
            out.path(),
        ));
        assert_eq!(code, 5, "{what}: {stderr}");
        assert!(stderr.contains(message), "{what}:\n{stderr}");
        assert!(stderr.contains(hint), "{what}: hint:\n{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: took {:?}",
            started.elapsed()
        );
        client.assert_no_processes_left(5);
    }
    assert_no_containers_left(repo.path());
    assert!(binaries(out.path()).is_empty());
}

#[test]
fn ctrl_c_on_the_terminal_during_an_ssh_build_still_cleans_up_through_ssh() {
    // A terminal's Ctrl-C signals the whole foreground process group; the ssh processes
    // kbuild talks to the engine through must survive it, so that kbuild can remove the
    // build container.
    let marker = "kbuild-test: sleeping";
    let repo = KubeRepo::tagged("v1.34.0");
    patch_build_script(repo.path(), &format!("echo '{marker}'; sleep 300"), "");
    let server = SshServer::start();
    let client = server.client("client_key", true);
    let out = tempfile::tempdir().unwrap();
    let mut cmd = client.kbuild(&server.docker_host());
    build_args(&mut cmd, repo.path(), out.path()).process_group(0);
    let mut run = Running::spawn(&mut cmd);
    run.wait_for(marker, 120);
    assert_eq!(managed_containers(repo.path()).len(), 1, "the build runs");
    assert_eq!(managed_volumes(repo.path()).len(), 1, "the source volume");
    let group = rustix::process::Pid::from_raw(run.pid() as i32).unwrap();
    rustix::process::kill_process_group(group, Signal::INT).unwrap();
    let (code, stderr) = run.finish(60);
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("stopped by Ctrl-C"), "{stderr}");
    assert_no_containers_left(repo.path());
    assert_eq!(
        remove_managed_volumes(repo.path()).len(),
        1,
        "the source volume stays for the next sync"
    );
    assert!(binaries(out.path()).is_empty());
    client.assert_no_processes_left(5);
}
