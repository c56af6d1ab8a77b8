//! Engines found the way the docker CLI finds them: docker contexts written by the test into
//! a config directory of its own (`contexts/meta/<sha256 of the name>/meta.json`), chosen by
//! `--context`, DOCKER_CONTEXT or `currentContext` in `$DOCKER_CONFIG/config.json`. The
//! context that works points at the local engine through a symlink of the test's own, so
//! only a kbuild that read the context can name that socket.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::*;

/// The local engine's socket, as the other tests reach it.
fn local_socket() -> PathBuf {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    match host.strip_prefix("unix://") {
        Some(path) => PathBuf::from(path),
        None if host.is_empty() => PathBuf::from("/var/run/docker.sock"),
        None => panic!("the context tests need a unix:// engine, not DOCKER_HOST={host}"),
    }
}

/// A docker CLI config directory with contexts, as `docker context create` writes them.
struct DockerConfig {
    dir: tempfile::TempDir,
}

impl DockerConfig {
    fn new() -> DockerConfig {
        DockerConfig {
            dir: tempfile::Builder::new()
                .prefix("kbuild-dockercfg-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A context named `name` whose docker endpoint is `host`.
    fn context(&self, name: &str, host: &str) -> &DockerConfig {
        write_context(self.path(), name, host);
        self
    }

    /// A context reaching the local engine through a socket path only it names.
    fn local_context(&self, name: &str) -> String {
        let link = self.path().join(format!("{name}-engine.sock"));
        std::os::unix::fs::symlink(local_socket(), &link).unwrap();
        let host = format!("unix://{}", link.display());
        self.context(name, &host);
        host
    }

    /// `docker context use name`.
    fn use_context(&self, name: &str) -> &DockerConfig {
        write_current(self.path(), name);
        self
    }
}

/// `contexts/meta/<sha256 of name>/meta.json` under the config directory `dir`.
fn write_context(dir: &Path, name: &str, host: &str) {
    let id: String = Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = dir.join("contexts/meta").join(id);
    std::fs::create_dir_all(&meta).unwrap();
    let body = serde_json::json!({
        "Name": name,
        "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
    });
    std::fs::write(meta.join("meta.json"), body.to_string()).unwrap();
}

/// config.json with `currentContext` set, as `docker context use` leaves it.
fn write_current(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!("{{\n\t\"auths\": {{}},\n\t\"currentContext\": \"{name}\"\n}}"),
    )
    .unwrap();
}

/// kbuild with none of the engine variables of the machine running the tests.
fn clean_env(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
}

fn doctor(config: &Path, extra: &[&str]) -> Command {
    let mut cmd = kbuild();
    clean_env(&mut cmd)
        .env("DOCKER_CONFIG", config)
        .arg("doctor")
        .args(["--image", BUILDER_IMAGE, "--skip-check", "disk"])
        .args(extra);
    cmd
}

/// The doctor's line for the engine check.
fn engine_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("engine"))
        .unwrap_or_else(|| panic!("no engine line in:\n{stdout}"))
}

#[test]
fn a_build_uses_the_current_context_of_docker_config() {
    let config = DockerConfig::new();
    let host = config.local_context("kbuild-local");
    config.use_context("kbuild-local");
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let mut cmd = build_cmd(repo.path(), out.path(), &["kubectl"], &["linux/amd64"]);
    let (code, stdout, stderr) = run(clean_env(&mut cmd).env("DOCKER_CONFIG", config.path()));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let said = format!("{stdout}{stderr}");
    let engine = said
        .lines()
        .find(|l| l.contains("==> engine:"))
        .unwrap_or_else(|| panic!("no engine line:\n{said}"));
    assert!(
        engine.contains(&host),
        "the context's socket is used:\n{said}"
    );
    assert!(
        engine.contains("currentContext \"kbuild-local\""),
        "and why is said:\n{said}"
    );
    assert!(out.path().join("bin/linux/amd64/kubectl").is_file());
    assert_no_containers_left(repo.path());
}

#[test]
fn the_flag_docker_host_and_docker_context_take_the_docker_cli_order() {
    let config = DockerConfig::new();
    let flagged = config.local_context("by-flag");
    let from_env = config.local_context("by-env");
    let current = config.local_context("current");
    config.use_context("current");
    let dead = "unix:///nonexistent/kbuild/dead.sock";

    // --context beats DOCKER_HOST.
    let (code, stdout, stderr) =
        run(doctor(config.path(), &["--context", "by-flag"]).env("DOCKER_HOST", dead));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let line = engine_line(&stdout);
    assert!(line.trim_start().starts_with("pass"), "{stdout}");
    assert!(
        line.contains(&flagged) && line.contains("--context by-flag"),
        "{stdout}"
    );

    // DOCKER_HOST beats DOCKER_CONTEXT.
    let (code, stdout, _) = run(doctor(config.path(), &[])
        .env("DOCKER_HOST", dead)
        .env("DOCKER_CONTEXT", "by-env"));
    assert_eq!(code, 3, "{stdout}");
    let line = engine_line(&stdout);
    assert!(
        line.contains(dead) && line.contains("from DOCKER_HOST"),
        "{stdout}"
    );

    // DOCKER_CONTEXT beats currentContext.
    let (code, stdout, stderr) = run(doctor(config.path(), &[]).env("DOCKER_CONTEXT", "by-env"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let line = engine_line(&stdout);
    assert!(
        line.contains(&from_env) && line.contains("DOCKER_CONTEXT=by-env"),
        "{stdout}"
    );

    // And --json says the same, for scripts.
    let (code, stdout, stderr) = run(&mut doctor(config.path(), &["--json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let head: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(head["endpoint"]["host"], current.as_str(), "{stdout}");
    assert_eq!(
        head["endpoint"]["source"], "config_current_context",
        "{stdout}"
    );
    assert_eq!(head["endpoint"]["context"], "current", "{stdout}");

    // The context named "default" is the default socket (DOCKER_HOST when set).
    let (_, stdout, _) =
        run(doctor(config.path(), &["--context", "default"]).env("DOCKER_HOST", dead));
    assert!(engine_line(&stdout).contains(dead), "{stdout}");
}

#[test]
fn docker_config_elsewhere_wins_over_home() {
    // ~/.docker names a context whose engine is gone.
    let home = tempfile::Builder::new()
        .prefix("kbuild-home-")
        .tempdir()
        .unwrap();
    let dot_docker = home.path().join(".docker");
    write_context(
        &dot_docker,
        "home-ctx",
        "unix:///nonexistent/kbuild/home.sock",
    );
    write_current(&dot_docker, "home-ctx");
    // DOCKER_CONFIG names a directory whose current context works.
    let elsewhere = DockerConfig::new();
    let host = elsewhere.local_context("elsewhere");
    elsewhere.use_context("elsewhere");

    let (code, stdout, stderr) = run(doctor(elsewhere.path(), &[]).env("HOME", home.path()));
    assert_eq!(
        code, 0,
        "DOCKER_CONFIG is read, not ~/.docker:\n{stdout}\n{stderr}"
    );
    assert!(engine_line(&stdout).contains(&host), "{stdout}");

    // Without DOCKER_CONFIG, ~/.docker is the config directory.
    let mut cmd = kbuild();
    let (code, stdout, _) =
        run(clean_env(&mut cmd)
            .env("HOME", home.path())
            .args(["doctor", "--skip-check", "disk"]));
    assert_eq!(code, 3, "{stdout}");
    let line = engine_line(&stdout);
    assert!(
        line.contains("home.sock") && line.contains("docker context \"home-ctx\""),
        "{stdout}"
    );
}

#[test]
fn a_context_naming_a_dead_socket_fails_fast_naming_the_context_and_the_socket() {
    let config = DockerConfig::new();
    let dead = format!("unix://{}/gone.sock", config.path().display());
    config.context("gone", &dead);
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let mut cmd = build_cmd(repo.path(), &out.path().join("out"), &["kubectl"], &[]);
    let started = Instant::now();
    let (code, stdout, stderr) = run(clean_env(&mut cmd)
        .env("DOCKER_CONFIG", config.path())
        .args(["--context", "gone"]));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(
        code, 5,
        "an engine that does not answer exits 5:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("docker context \"gone\""), "{stderr}");
    assert!(stderr.contains(&dead), "the socket is named:\n{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(
        !out.path().join("out/bin").exists(),
        "nothing is installed:\n{stderr}"
    );

    // A context that does not exist is bad input (exit 2), naming the ones that do.
    let bad_out = out.path().join("bad-input");
    let mut cmd = build_cmd(repo.path(), &bad_out, &["kubectl"], &[]);
    let (code, _, stderr) = run(clean_env(&mut cmd)
        .env("DOCKER_CONFIG", config.path())
        .args(["--context", "nope"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(!bad_out.exists(), "bad input leaves nothing behind");
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("are: gone"),
        "the contexts there are named:\n{stderr}"
    );
}

#[test]
fn credentials_in_a_context_are_never_shown() {
    let config = DockerConfig::new();
    config
        .context("secret", "tcp://builder:s3cr3t-token@127.0.0.1:9")
        .use_context("secret");
    let (code, stdout, stderr) = run(&mut doctor(config.path(), &[]));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(!said.contains("s3cr3t-token"), "{said}");
    assert!(said.contains("tcp://builder:***@127.0.0.1:9"), "{said}");
    let (_, stdout, _) = run(&mut doctor(config.path(), &["--json"]));
    assert!(!stdout.contains("s3cr3t-token"), "{stdout}");
}

#[test]
fn when_nothing_answers_the_engine_sockets_found_here_are_named() {
    let home = tempfile::Builder::new()
        .prefix("kbuild-home-")
        .tempdir()
        .unwrap();
    let colima = home.path().join(".colima/default");
    std::fs::create_dir_all(&colima).unwrap();
    let _listener = UnixListener::bind(colima.join("docker.sock")).unwrap();
    let mut cmd = kbuild();
    let (code, stdout, stderr) = run(clean_env(&mut cmd)
        .env("HOME", home.path())
        .env("DOCKER_HOST", "unix:///nonexistent/kbuild/docker.sock")
        .args(["doctor", "--skip-check", "disk"]));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let want = format!("colima at unix://{}/docker.sock", colima.display());
    assert!(stdout.contains(&want), "{stdout}");
}

/// A TLS engine: stunnel in front of the local engine's socket, requiring a client
/// certificate signed by a CA made for the test (as `dockerd --tlsverify` does).
struct TlsEngine {
    dir: tempfile::TempDir,
    port: u16,
    stunnel: std::process::Child,
}

impl TlsEngine {
    fn start() -> TlsEngine {
        let dir = tempfile::Builder::new()
            .prefix("kbuild-tls-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &key[..],
                &[
                    "-keyout",
                    "ca-key.pem",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=kbuild-test-ca",
                ],
            ]
            .concat(),
        );
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
            let (keyout, csr, ext, out) = (
                format!("{name}-key.pem"),
                format!("{name}.csr"),
                format!("{name}.ext"),
                format!("{name}.pem"),
            );
            openssl(
                &[
                    &["req"],
                    &key[..],
                    &[
                        "-keyout",
                        &keyout,
                        "-out",
                        &csr,
                        "-subj",
                        &format!("/CN={name}"),
                    ],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &out,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "foreground = yes\npid =\n[engine]\naccept = 127.0.0.1:{port}\nconnect = {}\ncert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            local_socket().display(),
            d.join("server.pem").display(),
            d.join("server-key.pem").display(),
            d.join("ca.pem").display(),
        );
        std::fs::write(d.join("stunnel.conf"), conf).unwrap();
        let log = std::fs::File::create(d.join("stunnel.log")).unwrap();
        let stunnel = Command::new("stunnel")
            .arg(d.join("stunnel.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("stunnel starts (apt-get install stunnel4)");
        let engine = TlsEngine { dir, port, stunnel };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "stunnel did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        engine
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Gives the context `name` in `config` the client's TLS material, as
    /// `docker context create --docker host=...,ca=...,cert=...,key=...` stores it.
    fn give_tls(&self, config: &Path, name: &str, files: &[&str]) {
        let id: String = Sha256::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = config.join("contexts/tls").join(id).join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        for (file, from) in [
            ("ca.pem", "ca.pem"),
            ("cert.pem", "client.pem"),
            ("key.pem", "client-key.pem"),
        ] {
            if files.contains(&file) {
                std::fs::copy(self.dir.path().join(from), dir.join(file)).unwrap();
            }
        }
    }
}

impl Drop for TlsEngine {
    fn drop(&mut self) {
        let _ = self.stunnel.kill();
        let _ = self.stunnel.wait();
    }
}

#[test]
fn a_context_with_tls_material_reaches_a_tls_engine() {
    let engine = TlsEngine::start();
    let config = DockerConfig::new();
    config.context("tls", &engine.host());
    engine.give_tls(config.path(), "tls", &["ca.pem", "cert.pem", "key.pem"]);
    let (code, stdout, stderr) = run(&mut doctor(config.path(), &["--context", "tls"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let line = engine_line(&stdout);
    assert!(line.trim_start().starts_with("pass"), "{stdout}");
    assert!(
        line.contains(&engine.host()) && line.contains("--context tls"),
        "{stdout}"
    );

    // Without the client key kbuild says what is missing, before connecting.
    config.context("half", &engine.host());
    engine.give_tls(config.path(), "half", &["ca.pem", "cert.pem"]);
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let mut cmd = build_cmd(repo.path(), out.path(), &["kubectl"], &[]);
    let (code, _, stderr) = run(clean_env(&mut cmd)
        .env("DOCKER_CONFIG", config.path())
        .args(["--context", "half"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("key.pem") && stderr.contains("--context half"),
        "{stderr}"
    );
}
