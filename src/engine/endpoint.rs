//! Which engine kbuild talks to, chosen the way the docker CLI chooses it: `--context NAME`,
//! then DOCKER_HOST, then DOCKER_CONTEXT, then `currentContext` in `$DOCKER_CONFIG/config.json`
//! (default `~/.docker`), then the default socket. A named context's endpoint is read from the
//! CLI's context store. The choice is pure: it reads the environment only through an
//! `EnvSnapshot` taken once at start, and files only under the config directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The docker CLI's default endpoint on Linux and macOS.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// The context that means "no context": DOCKER_HOST, else the default socket.
pub const DEFAULT_CONTEXT: &str = "default";

/// The environment variables the choice depends on, read once (empty values count as unset,
/// as the docker CLI treats them).
#[derive(Debug, Clone, Default)]
pub struct EnvSnapshot {
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    pub docker_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    /// DOCKER_TLS_VERIFY: a DOCKER_HOST engine is reached over TLS.
    pub docker_tls_verify: bool,
    pub docker_cert_path: Option<PathBuf>,
}

impl EnvSnapshot {
    /// The engine's variables from the process snapshot (`crate::env`).
    pub fn capture() -> EnvSnapshot {
        let env = crate::env::current();
        let var = |name: &str| env.get(name).map(str::to_string);
        EnvSnapshot {
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            docker_config: var("DOCKER_CONFIG").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            docker_tls_verify: var("DOCKER_TLS_VERIFY").is_some(),
            docker_cert_path: var("DOCKER_CERT_PATH").map(PathBuf::from),
        }
    }

    /// The docker CLI's configuration directory: DOCKER_CONFIG, else `~/.docker`
    /// (docker/cli cli/config `Dir`).
    pub fn config_dir(&self) -> Option<PathBuf> {
        self.docker_config
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".docker")))
    }
}

/// What decided the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `--context NAME`.
    Flag,
    /// The DOCKER_HOST variable.
    DockerHost,
    /// The DOCKER_CONTEXT variable.
    DockerContext,
    /// `currentContext` in the docker CLI's config.json.
    ConfigCurrentContext,
    /// Nothing set: the default socket.
    Default,
}

/// TLS material a context carries (`contexts/tls/<id>/docker/{ca,cert,key}.pem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Where they are (or were looked for).
    pub dir: PathBuf,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The chosen endpoint and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As given; it may hold a password, so show `shown()` instead.
    pub host: String,
    pub source: Source,
    /// The docker context it came from, when one was named.
    pub context: Option<String>,
    /// The config.json that named the context (for `Source::ConfigCurrentContext`).
    pub config_file: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub skip_tls_verify: bool,
}

impl Endpoint {
    /// The host fit to show: a password in it is replaced with `***`.
    pub fn shown(&self) -> String {
        super::ssh::redact(&self.host)
    }

    /// Why this endpoint, in the user's words: `--context ci`, `DOCKER_HOST`, ...
    pub fn why(&self) -> String {
        let name = self.context.as_deref().unwrap_or(DEFAULT_CONTEXT);
        match self.source {
            Source::Flag if self.context.is_none() => "--engines".to_string(),
            Source::Flag => format!("--context {name}"),
            Source::DockerHost => "DOCKER_HOST".to_string(),
            Source::DockerContext => format!("DOCKER_CONTEXT={name}"),
            Source::ConfigCurrentContext => format!(
                "currentContext \"{name}\" in {}",
                self.config_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "config.json".to_string())
            ),
            Source::Default => {
                "the default socket: no --context, DOCKER_HOST, DOCKER_CONTEXT or currentContext"
                    .to_string()
            }
        }
    }

    /// For `--json`: `{"host", "source", "context"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "host": self.shown(),
            "source": self.source,
            "context": self.context,
            "why": self.why(),
        })
    }
}

/// The context name the docker CLI would use, and what named it
/// (mirrors docker/cli cli/command/cli.go `resolveContextName`).
fn context_name(
    flag: Option<&str>,
    env: &EnvSnapshot,
) -> Result<(String, Source, Option<PathBuf>)> {
    if let Some(name) = flag.filter(|n| !n.is_empty()) {
        return Ok((name.to_string(), Source::Flag, None));
    }
    if env.docker_host.is_some() {
        return Ok((DEFAULT_CONTEXT.to_string(), Source::DockerHost, None));
    }
    if let Some(name) = &env.docker_context {
        return Ok((name.clone(), Source::DockerContext, None));
    }
    if let Some(dir) = env.config_dir() {
        let file = dir.join("config.json");
        if let Some(name) = current_context(&file)? {
            return Ok((name, Source::ConfigCurrentContext, Some(file)));
        }
    }
    Ok((DEFAULT_CONTEXT.to_string(), Source::Default, None))
}

/// `currentContext` in the CLI's config.json; None when the file or the key is absent.
fn current_context(file: &Path) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read the docker CLI's config", file, e)),
    };
    let config: Config = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!(
            "the docker CLI's config {} is not valid JSON: {e}",
            file.display()
        ))
        .with_hint(
            "fix or move the file aside, or choose the engine with --context NAME or DOCKER_HOST",
        )
    })?;
    Ok(config.current_context.filter(|c| !c.is_empty()))
}

/// The context store's id for a name: the hex SHA-256 of the name
/// (docker/cli cli/context/store `contextdirOf`).
pub fn context_id(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// Resolves the endpoint: the context name first, then that context's docker endpoint.
pub fn resolve(flag: Option<&str>, env: &EnvSnapshot) -> Result<Endpoint> {
    let (name, source, config_file) = context_name(flag, env)?;
    if name == DEFAULT_CONTEXT {
        // The default context is "the DOCKER_HOST based configuration" in the docker CLI.
        let named = matches!(
            source,
            Source::Flag | Source::DockerContext | Source::ConfigCurrentContext
        );
        return Ok(Endpoint {
            host: env
                .docker_host
                .clone()
                .unwrap_or_else(|| DEFAULT_HOST.to_string()),
            source,
            context: named.then(|| DEFAULT_CONTEXT.to_string()),
            config_file,
            tls: default_tls(env),
            skip_tls_verify: false,
        });
    }
    let named_by = match source {
        Source::Flag => format!("--context {name}"),
        Source::DockerContext => format!("DOCKER_CONTEXT={name}"),
        _ => format!(
            "currentContext in {}",
            config_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    };
    let Some(dir) = env.config_dir() else {
        return Err(Error::usage(format!(
            "docker context \"{name}\" ({named_by}) cannot be looked up: neither DOCKER_CONFIG nor HOME is set"
        ))
        .with_hint("set DOCKER_CONFIG to the docker CLI's configuration directory, or DOCKER_HOST to the engine"));
    };
    let (host, skip_tls_verify) = read_meta(&dir, &name, &named_by)?;
    Ok(Endpoint {
        host,
        source,
        context: Some(name.clone()),
        config_file,
        tls: tls_files(&dir, &name),
        skip_tls_verify,
    })
}

/// A context's docker endpoint from `contexts/meta/<id>/meta.json`.
fn read_meta(dir: &Path, name: &str, named_by: &str) -> Result<(String, bool)> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints", default)]
        endpoints: std::collections::HashMap<String, DockerEndpoint>,
    }
    #[derive(Deserialize)]
    struct DockerEndpoint {
        #[serde(rename = "Host", default)]
        host: Option<String>,
        #[serde(rename = "SkipTLSVerify", default)]
        skip_tls_verify: bool,
    }
    let file = dir
        .join("contexts/meta")
        .join(context_id(name))
        .join("meta.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let known = context_names(dir);
            let list = if known.is_empty() {
                format!("{} holds no contexts", dir.display())
            } else {
                format!(
                    "the contexts in {} are: {}",
                    dir.display(),
                    known.join(", ")
                )
            };
            return Err(Error::usage(format!(
                "docker context \"{name}\" ({named_by}) does not exist: there is no {}",
                file.display()
            ))
            .with_hint(format!(
                "{list}; create it with `docker context create {name} --docker host=...`, or choose another with --context NAME (\"default\" is DOCKER_HOST or the default socket)"
            )));
        }
        Err(e) => return Err(Error::io("cannot read the docker context", &file, e)),
    };
    let bad = |why: String| {
        Error::usage(format!(
            "docker context \"{name}\" ({named_by}) is unusable: {} {why}",
            file.display()
        ))
        .with_hint(format!(
            "inspect it with `docker context inspect {name}`, or choose another with --context NAME"
        ))
    };
    let meta: Meta =
        serde_json::from_str(&text).map_err(|e| bad(format!("is not valid JSON: {e}")))?;
    let docker = meta
        .endpoints
        .get("docker")
        .ok_or_else(|| bad("has no docker endpoint".to_string()))?;
    let host = docker
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("names no docker host".to_string()))?;
    Ok((host, docker.skip_tls_verify))
}

/// The TLS files stored for a context, if any.
fn tls_files(dir: &Path, name: &str) -> Option<TlsFiles> {
    let base = dir
        .join("contexts/tls")
        .join(context_id(name))
        .join("docker");
    tls_in(&base)
}

/// `{ca,cert,key}.pem` in `dir`, if any of them is there.
fn tls_in(dir: &Path) -> Option<TlsFiles> {
    let file = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
    let files = TlsFiles {
        dir: dir.to_path_buf(),
        ca: file("ca.pem"),
        cert: file("cert.pem"),
        key: file("key.pem"),
    };
    (files.ca.is_some() || files.cert.is_some() || files.key.is_some()).then_some(files)
}

/// The default context's TLS: with DOCKER_TLS_VERIFY set, `{ca,cert,key}.pem` in
/// DOCKER_CERT_PATH, else in the config directory (as the docker CLI reads them).
fn default_tls(env: &EnvSnapshot) -> Option<TlsFiles> {
    if !env.docker_tls_verify {
        return None;
    }
    let dir = env.docker_cert_path.clone().or_else(|| env.config_dir())?;
    Some(tls_in(&dir).unwrap_or(TlsFiles {
        dir,
        ca: None,
        cert: None,
        key: None,
    }))
}

/// The names of the contexts in the store, sorted.
pub fn context_names(dir: &Path) -> Vec<String> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(rename = "Name")]
        name: String,
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.join("contexts/meta"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("meta.json")).ok())
        .filter_map(|text| serde_json::from_str::<Named>(&text).ok())
        .map(|n| n.name)
        .collect();
    names.sort();
    names
}

/// Where engines people run put their sockets, with whose they are.
pub fn well_known_sockets(env: &EnvSnapshot) -> Vec<(&'static str, PathBuf)> {
    let mut sockets = vec![("Docker", PathBuf::from("/var/run/docker.sock"))];
    if let Some(home) = &env.home {
        sockets.extend([
            ("Docker Desktop", home.join(".docker/run/docker.sock")),
            ("colima", home.join(".colima/default/docker.sock")),
            ("colima", home.join(".colima/docker.sock")),
            ("Rancher Desktop", home.join(".rd/docker.sock")),
        ]);
    }
    if let Some(run) = &env.xdg_runtime_dir {
        sockets.extend([
            ("rootless Docker", run.join("docker.sock")),
            ("rootless podman", run.join("podman/podman.sock")),
        ]);
    }
    sockets
}

/// The well-known sockets that exist here, other than `tried`, as `unix://` hosts.
pub fn other_sockets_here(env: &EnvSnapshot, tried: &str) -> Vec<(&'static str, String)> {
    well_known_sockets(env)
        .into_iter()
        .filter(|(_, path)| path.exists())
        .map(|(whose, path)| (whose, format!("unix://{}", path.display())))
        .filter(|(_, host)| host != tried)
        .collect()
}

/// The choice made at start: `--context` and the environment snapshot.
static CHOICE: OnceLock<(Option<String>, EnvSnapshot)> = OnceLock::new();

/// Records the command's `--context` and the environment, once per process (a recipe's
/// command is the first to record; later calls change nothing).
pub fn choose(flag: Option<String>, env: EnvSnapshot) {
    let _ = CHOICE.set((flag, env));
}

/// The recorded choice (no flag and the current environment when nothing was recorded).
fn choice() -> &'static (Option<String>, EnvSnapshot) {
    CHOICE.get_or_init(|| (None, EnvSnapshot::capture()))
}

/// The endpoint for this run, resolved once (contexts and config.json are read once): the
/// plan, the checks and every connection of the run see the same answer.
pub fn current() -> Result<Endpoint> {
    static RESOLVED: OnceLock<Result<Endpoint>> = OnceLock::new();
    RESOLVED
        .get_or_init(|| {
            let (flag, env) = choice();
            resolve(flag.as_deref(), env)
        })
        .clone()
}

/// One engine of `--engines`: a docker context name, resolved as `--context NAME` would be,
/// or an endpoint (`unix://`, `tcp://`, `ssh://`) used as DOCKER_HOST would be.
pub fn named(entry: &str) -> Result<Endpoint> {
    if entry.contains("://") {
        return Ok(Endpoint {
            host: entry.to_string(),
            source: Source::Flag,
            context: None,
            config_file: None,
            tls: None,
            skip_tls_verify: false,
        });
    }
    resolve(Some(entry), env())
}

/// The environment snapshot of this run.
pub fn env() -> &'static EnvSnapshot {
    &choice().1
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Store(PathBuf);

    impl Store {
        fn new(tag: &str) -> Store {
            let dir =
                std::env::temp_dir().join(format!("kbuild-endpoint-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Store(dir)
        }
        fn context(&self, name: &str, host: &str) -> &Store {
            let meta = self.0.join("contexts/meta").join(context_id(name));
            std::fs::create_dir_all(&meta).unwrap();
            let body = serde_json::json!({
                "Name": name, "Metadata": {},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}
            });
            std::fs::write(meta.join("meta.json"), body.to_string()).unwrap();
            self
        }
        fn current(&self, name: &str) -> &Store {
            std::fs::write(
                self.0.join("config.json"),
                format!("{{\"auths\":{{}},\"currentContext\":\"{name}\"}}"),
            )
            .unwrap();
            self
        }
        fn env(&self) -> EnvSnapshot {
            EnvSnapshot {
                docker_config: Some(self.0.clone()),
                ..Default::default()
            }
        }
    }

    impl Drop for Store {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn context_ids_are_the_sha256_of_the_name() {
        // As `docker context create probe` writes it.
        assert_eq!(
            context_id("probe"),
            "ba9c736f19e7f60b7f6764adb0b7908c0a2b394e09b6c09863528c7f2bc86095"
        );
    }

    #[test]
    fn nothing_set_is_the_default_socket() {
        let e = resolve(None, &EnvSnapshot::default()).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        assert_eq!(e.source, Source::Default);
        assert_eq!(e.context, None);
    }

    #[test]
    fn the_docker_cli_order_is_flag_host_context_config_default() {
        let store = Store::new("order");
        store
            .context("flagged", "unix:///flag.sock")
            .context("envctx", "unix:///envctx.sock")
            .context("cfg", "tcp://10.0.0.1:2375")
            .current("cfg");
        let mut env = store.env();
        env.docker_host = Some("unix:///host.sock".into());
        env.docker_context = Some("envctx".into());

        let e = resolve(Some("flagged"), &env).unwrap();
        assert_eq!(
            (e.host.as_str(), e.source),
            ("unix:///flag.sock", Source::Flag)
        );
        assert_eq!(e.why(), "--context flagged");

        let e = resolve(None, &env).unwrap();
        assert_eq!(
            (e.host.as_str(), e.source),
            ("unix:///host.sock", Source::DockerHost)
        );

        env.docker_host = None;
        let e = resolve(None, &env).unwrap();
        assert_eq!(
            (e.host.as_str(), e.source),
            ("unix:///envctx.sock", Source::DockerContext)
        );
        assert_eq!(e.context.as_deref(), Some("envctx"));

        env.docker_context = None;
        let e = resolve(None, &env).unwrap();
        assert_eq!(
            (e.host.as_str(), e.source),
            ("tcp://10.0.0.1:2375", Source::ConfigCurrentContext)
        );
        assert!(e.why().contains("currentContext \"cfg\""), "{}", e.why());
        assert!(e.why().contains("config.json"), "{}", e.why());
    }

    #[test]
    fn the_default_context_is_docker_host_or_the_default_socket() {
        let store = Store::new("default");
        store.current("default");
        let mut env = store.env();
        let e = resolve(Some("default"), &env).unwrap();
        assert_eq!((e.host.as_str(), e.source), (DEFAULT_HOST, Source::Flag));
        let e = resolve(None, &env).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        env.docker_host = Some("tcp://127.0.0.1:2375".into());
        let e = resolve(Some("default"), &env).unwrap();
        assert_eq!(e.host, "tcp://127.0.0.1:2375");
    }

    #[test]
    fn docker_config_defaults_to_home_dot_docker() {
        let env = EnvSnapshot {
            home: Some("/home/u".into()),
            ..Default::default()
        };
        assert_eq!(env.config_dir(), Some(PathBuf::from("/home/u/.docker")));
        let env = EnvSnapshot {
            home: Some("/home/u".into()),
            docker_config: Some("/etc/dc".into()),
            ..Default::default()
        };
        assert_eq!(env.config_dir(), Some(PathBuf::from("/etc/dc")));
    }

    #[test]
    fn a_missing_context_is_bad_input_naming_the_known_ones() {
        let store = Store::new("missing");
        store
            .context("colima", "unix:///c.sock")
            .context("ci", "unix:///ci.sock");
        let err = resolve(Some("nope"), &store.env()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("\"nope\""), "{}", err.message);
        assert!(err.message.contains("--context nope"), "{}", err.message);
        let hint = err.hint.unwrap();
        assert!(hint.contains("ci, colima"), "{hint}");
    }

    #[test]
    fn broken_files_are_named() {
        let store = Store::new("broken");
        std::fs::write(store.0.join("config.json"), "{not json").unwrap();
        let err = resolve(None, &store.env()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("config.json"), "{}", err.message);

        let meta = store.0.join("contexts/meta").join(context_id("x"));
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(meta.join("meta.json"), r#"{"Name":"x","Endpoints":{}}"#).unwrap();
        let err = resolve(Some("x"), &store.env()).unwrap_err();
        assert!(
            err.message.contains("no docker endpoint"),
            "{}",
            err.message
        );
    }

    #[test]
    fn tls_material_and_skip_verify_are_read() {
        let store = Store::new("tls");
        store.context("remote", "tcp://10.0.0.2:2376");
        let tls = store
            .0
            .join("contexts/tls")
            .join(context_id("remote"))
            .join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), "x").unwrap();
        std::fs::write(tls.join("cert.pem"), "x").unwrap();
        let e = resolve(Some("remote"), &store.env()).unwrap();
        let files = e.tls.unwrap();
        assert_eq!(files.ca, Some(tls.join("ca.pem")));
        assert_eq!(files.key, None);
    }

    #[test]
    fn docker_tls_verify_reads_docker_cert_path() {
        let store = Store::new("tlsenv");
        std::fs::write(store.0.join("ca.pem"), "x").unwrap();
        let mut env = store.env();
        env.docker_host = Some("tcp://10.0.0.4:2376".into());
        assert_eq!(resolve(None, &env).unwrap().tls, None);
        env.docker_tls_verify = true;
        env.docker_cert_path = Some(store.0.clone());
        let tls = resolve(None, &env).unwrap().tls.unwrap();
        assert_eq!(tls.ca, Some(store.0.join("ca.pem")));
        assert_eq!(tls.cert, None);
    }

    #[test]
    fn shown_endpoints_hide_passwords() {
        let store = Store::new("redact");
        store.context("secret", "tcp://admin:hunter2@10.0.0.3:2375");
        let e = resolve(Some("secret"), &store.env()).unwrap();
        assert_eq!(e.shown(), "tcp://admin:***@10.0.0.3:2375");
        assert!(!e.to_json().to_string().contains("hunter2"));
    }

    #[test]
    fn well_known_sockets_cover_the_common_engines() {
        let env = EnvSnapshot {
            home: Some("/Users/me".into()),
            xdg_runtime_dir: Some("/run/user/1000".into()),
            ..Default::default()
        };
        let paths: Vec<String> = well_known_sockets(&env)
            .into_iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        for expected in [
            "/Users/me/.docker/run/docker.sock",
            "/Users/me/.colima/default/docker.sock",
            "/Users/me/.rd/docker.sock",
            "/run/user/1000/docker.sock",
            "/run/user/1000/podman/podman.sock",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} in {paths:?}"
            );
        }
    }
}
