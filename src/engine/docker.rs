//! The Docker engine, through its API (bollard): detect it once, make sure the builder
//! image is there, run a build job in a labelled container, stream its output, and
//! always remove the container.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::SystemVersion;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, EventsOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::client::{connect_versioned_to, unreachable};
use super::endpoint::{self, Endpoint};
use super::guard::ContainerGuard;
use super::LABEL_SOURCE;
use crate::error::{Error, Result};
use crate::outdir::joblog::JobLog;
use crate::plan::Job;
use crate::signals::Interrupt;
use crate::ui::Ui;
use crate::units::human_bytes;

/// What kbuild needs to know about the engine, read once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    /// Whose engine answers: "Docker", or "Podman" (which serves the same API).
    pub product: &'static str,
    /// The endpoint, fit to show.
    pub endpoint: String,
    /// What chose it (`--context ci`, `DOCKER_HOST`, ...).
    pub endpoint_why: String,
    /// The docker context it came from, if one was named.
    pub context: Option<String>,
    pub server_version: String,
    pub os: String,
    /// Go's name for the engine's architecture (amd64, arm64).
    pub arch: String,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub rootless: bool,
    /// Where the engine keeps images and volumes (on the engine's machine).
    pub root_dir: Option<String>,
}

/// "Podman" when the engine's version report names a Podman component, else "Docker".
fn product(version: &SystemVersion) -> &'static str {
    let components = version.components.as_deref().unwrap_or_default();
    if components.iter().any(|c| c.name.starts_with("Podman")) {
        "Podman"
    } else {
        "Docker"
    }
}

/// A connected Docker engine.
#[derive(Clone)]
pub struct DockerEngine {
    pub docker: Docker,
    pub info: EngineInfo,
}

/// What a container run needs beyond the job itself.
pub struct RunOptions<'a> {
    /// The tree built, for the container's label (`kbuild clean` tells runs apart by it).
    pub root: &'a Path,
    /// Abort when the build prints nothing for this long.
    pub stall_timeout: Option<Duration>,
}

impl DockerEngine {
    pub async fn connect() -> Result<DockerEngine> {
        Self::connect_to(endpoint::current()?).await
    }

    /// Connects to `chosen` (the run's endpoint, or one of `--engines`).
    pub async fn connect_to(chosen: Endpoint) -> Result<DockerEngine> {
        let (docker, version) = connect_versioned_to(chosen.clone()).await?;
        let info = docker.info().await.map_err(|e| unreachable(&chosen, e))?;
        let arch = match info.architecture.as_deref().unwrap_or("") {
            "x86_64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            other => other.to_string(),
        };
        let rootless = info
            .security_options
            .unwrap_or_default()
            .iter()
            .any(|o| o.contains("name=rootless"));
        let info = EngineInfo {
            product: product(&version),
            endpoint: chosen.shown(),
            endpoint_why: chosen.why(),
            context: chosen.context.clone(),
            server_version: info.server_version.unwrap_or_default(),
            os: info.operating_system.unwrap_or_default(),
            arch,
            cpus: info.ncpu.unwrap_or(0).max(0) as u64,
            memory_bytes: info.mem_total.unwrap_or(0).max(0) as u64,
            rootless,
            root_dir: info.docker_root_dir.filter(|d| !d.is_empty()),
        };
        Ok(DockerEngine { docker, info })
    }

    /// The engine's data directory when it is on this machine (a local unix socket and the
    /// directory exists here), so that its free disk can be checked.
    pub fn local_root_dir(&self) -> Option<std::path::PathBuf> {
        if !self.info.endpoint.starts_with("unix://") {
            return None;
        }
        let dir = std::path::PathBuf::from(self.info.root_dir.as_deref()?);
        dir.is_dir().then_some(dir)
    }

    /// The uid:gid builds run as: the invoking user, so the checkout gets no root-owned
    /// files; None on a rootless engine, which already maps root in the container to the user.
    pub fn build_user(&self) -> Option<(u32, u32)> {
        (!self.info.rootless).then(|| {
            (
                rustix::process::getuid().as_raw(),
                rustix::process::getgid().as_raw(),
            )
        })
    }

    /// The image's id if the engine has it.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(found) => Ok(Some(found.id.unwrap_or_default())),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(Error::engine(format!("cannot inspect image {image}: {e}"))),
        }
    }

    /// Makes sure `image` is present, pulling it when missing; returns its id.
    pub async fn ensure_image(
        &self,
        image: &str,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<String> {
        if let Some(id) = self.image_id(image).await? {
            return Ok(id);
        }
        ui.info(&format!("pulling {image} (not present on the engine)"));
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                let progress = item.map_err(|e| pull_failed(image, e))?;
                if let Some(status) = progress.status {
                    ui.detail(&format!("pull: {status}"));
                }
            }
            Ok::<(), Error>(())
        };
        tokio::select! {
            r = pull => r?,
            e = interrupt.wait() => return Err(e),
        }
        self.image_id(image)
            .await?
            .ok_or_else(|| pull_failed(image, "the engine reported success but has no such image"))
    }

    /// Runs one build job in a fresh container and removes it whatever happens.
    pub async fn run(
        &self,
        job: &Job,
        options: &RunOptions<'_>,
        log: &mut JobLog,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<()> {
        let body = self.container_body(job, options);
        let safe: String = job
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("kbuild-{safe}-{}", std::process::id());
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| refused("cannot create the build container", e))?;
        let guard = ContainerGuard::new(self.docker.clone(), created.id.clone());
        let outcome = tokio::select! {
            r = self.drive(&created.id, job, options, log, ui) => r,
            e = interrupt.wait() => Err(e),
        };
        guard.remove().await;
        outcome
    }

    /// The container exactly as the plan's job says: image, command, working directory,
    /// environment, mounts, network, user and memory limit; nothing is added but kbuild's
    /// labels and the hardening every build container gets.
    fn container_body(&self, job: &Job, options: &RunOptions<'_>) -> ContainerCreateBody {
        // The run's ownership labels (not part of the plan's job: they name this process).
        let mut labels = super::owner::run_labels();
        labels.extend([
            ("io.kbuild.job".to_string(), job.name.clone()),
            (LABEL_SOURCE.to_string(), options.root.display().to_string()),
        ]);
        let host_config = HostConfig {
            binds: Some(job.mounts.clone()),
            network_mode: Some(job.network.clone()),
            memory: job.memory_limit.map(|m| m as i64),
            memory_swap: job.memory_limit.map(|m| m as i64),
            nano_cpus: job.cpus.map(|c| (c * 1e9) as i64),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            // The engine removes the container once it stops even if kbuild is gone (killed,
            // or cut off from the engine), so no build container outlives its build.
            auto_remove: Some(true),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(job.image.clone()),
            cmd: Some(job.command.clone()),
            env: Some(job.env.clone()),
            user: job.user.clone(),
            working_dir: Some(job.workdir.clone()),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    /// Attaches to the container, starts it, streams its output, and turns its exit (read
    /// from the engine's events, since the container removes itself) into a result.
    async fn drive(
        &self,
        id: &str,
        job: &Job,
        options: &RunOptions<'_>,
        log: &mut JobLog,
        ui: &Ui,
    ) -> Result<()> {
        let created = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| Error::engine(format!("cannot inspect the build container: {e}")))?
            .created
            .unwrap_or_default();
        // Events from the container's creation on (the engine replays what already happened),
        // so neither its exit nor an OOM kill can slip by between start and subscription.
        let mut events = self.docker.events(Some(EventsOptions {
            since: unix_seconds(&created).map(|t| (t - 1).to_string()),
            until: None,
            filters: Some(HashMap::from([
                ("container".to_string(), vec![id.to_string()]),
                ("type".to_string(), vec!["container".to_string()]),
            ])),
        }));
        // Attach before starting, as `docker run` does: no output is missed.
        let attached = self
            .docker
            .attach_container(
                id,
                Some(AttachContainerOptions {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    logs: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| refused("cannot attach to the build container", e))?;
        let mut stream = attached.output;
        if let Err(e) = self
            .docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            // A limit too small for even the container's init process fails the start itself
            // ("container init was OOM-killed (memory limit too low?)"): that is out of memory too.
            let text = e.to_string();
            if text.contains("OOM") || text.contains("memory limit too low") {
                return Err(self.out_of_memory(job, log));
            }
            return Err(refused("cannot start the build container", text));
        }
        let follow = async {
            let mut pending = Vec::new();
            loop {
                let next = match options.stall_timeout {
                    Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            return Err(Error::build(format!(
                                "the build of {} printed nothing for {}s and was stopped (its container was removed)",
                                job.name,
                                limit.as_secs()
                            ))
                            .with_hint(format!(
                                "the full log is {}; raise --stall-timeout if the build is just slow",
                                log.path().display()
                            ))
                            .with_details(log.tail()))
                        }
                    },
                    None => stream.next().await,
                };
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(lost)?;
                pending.extend_from_slice(&chunk.into_bytes());
                while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                    log.line(&text)?;
                    ui.build_line(&job.name, &text);
                }
            }
            if !pending.is_empty() {
                let text = String::from_utf8_lossy(&pending).to_string();
                log.line(&text)?;
                ui.build_line(&job.name, &text);
            }
            Ok::<(), Error>(())
        };
        let exit = async {
            let mut oom = false;
            let mut code = None;
            // Signals sent to the container by someone else than the kernel's OOM killer:
            // the engine stopping it (a daemon shutdown), or `docker stop`/`kill`.
            let mut killed_by = None;
            while code.is_none() {
                let Some(event) = events.next().await else {
                    return Err(lost("the engine closed its event stream"));
                };
                let event = event.map_err(lost)?;
                match event.action.as_deref() {
                    Some("oom") => oom = true,
                    Some("kill") => {
                        killed_by = event
                            .actor
                            .as_ref()
                            .and_then(|a| a.attributes.as_ref())
                            .and_then(|a| a.get("signal").cloned())
                            .or(Some("?".to_string()));
                    }
                    Some("die") => {
                        code = Some(
                            event
                                .actor
                                .and_then(|a| a.attributes)
                                .and_then(|a| a.get("exitCode").and_then(|c| c.parse().ok()))
                                .unwrap_or(-1i64),
                        );
                    }
                    _ => {}
                }
            }
            let code = code.unwrap_or(-1);
            if code != 0 && !oom {
                // The OOM event may trail the exit by a moment.
                let late = async {
                    while let Some(Ok(event)) = events.next().await {
                        if event.action.as_deref() == Some("oom") {
                            return true;
                        }
                    }
                    false
                };
                oom = tokio::time::timeout(Duration::from_millis(500), late)
                    .await
                    .unwrap_or(false);
            }
            // The kernel's verdict, while the container is still there to ask.
            oom = oom || self.oom_killed(id).await;
            if code != 0 && !oom {
                if let Some(signal) = &killed_by {
                    return Err(self.stopped_from_outside(code, signal, events).await);
                }
            }
            Ok::<(i64, bool), Error>((code, oom))
        };
        let outcome = tokio::try_join!(follow, exit);
        log.flush()?;
        let (code, oom) = match outcome {
            Ok(((), exit)) => exit,
            Err(e) if e.kind == crate::error::Kind::Engine => {
                return Err(e
                    .with_hint(format!(
                        "check that the engine is still running (docker info), then run again; nothing was installed, the engine removes the build container when it stops; the log so far is {}",
                        log.path().display()
                    ))
                    .with_details(log.tail()))
            }
            Err(e) => return Err(e),
        };
        if code == 0 {
            return Ok(());
        }
        // Podman sends no `oom` event when the kernel kills a compiler rather than the
        // container's first process: under a memory limit, a killed process means the same.
        let killed = killed_in(&log.tail());
        if oom || (job.memory_limit.is_some() && (code == 137 || killed)) {
            // Nobody sent the container a signal (that is an engine error, above): under a
            // memory limit, a kill is the kernel's.
            return Err(self.out_of_memory(job, log));
        }
        let mut err = Error::build(format!(
            "make failed with exit code {code} while building {}",
            job.name
        ))
        .with_hint(format!("the whole log is {}", log.path().display()))
        .with_details(log.tail());
        if killed {
            err = err.with_hint(format!(
                "a compiler or linker was killed, most likely for lack of memory: give the engine at least 8 GiB (it has {}); the whole log is {}",
                human_bytes(self.info.memory_bytes),
                log.path().display()
            ));
        }
        Err(err)
    }

    /// Whether the kernel killed the container for memory (`State.OOMKilled`); false when it
    /// has already removed itself.
    async fn oom_killed(&self, id: &str) -> bool {
        let inspected = self.docker.inspect_container(id, None).await;
        let state = inspected.ok().and_then(|c| c.state);
        state.and_then(|s| s.oom_killed).unwrap_or(false)
    }

    /// The container was stopped by a signal nobody in this build sent. When the engine
    /// itself is going away (a SIGTERM'd dockerd stops its containers, still answering pings
    /// meanwhile, then closes its connections), its event stream ends soon after: the engine
    /// is lost, and the job may run elsewhere. Otherwise someone stopped the container
    /// (`docker stop`, `docker kill`): the build did not fail, but it did not finish either.
    async fn stopped_from_outside(
        &self,
        code: i64,
        signal: &str,
        mut events: impl futures_util::Stream<
                Item = std::result::Result<bollard::models::EventMessage, bollard::errors::Error>,
            > + Unpin,
    ) -> Error {
        let watch = async {
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        None | Some(Err(_)) => return true,
                        Some(Ok(_)) => {}
                    },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if self.docker.ping().await.is_err() {
                            return true;
                        }
                    }
                }
            }
        };
        let going = tokio::time::timeout(SHUTDOWN_GRACE, watch)
            .await
            .unwrap_or(false);
        if going {
            return lost(format!(
                "the engine shut down and stopped the build container (signal {signal}, exit code {code})"
            ));
        }
        Error::engine(format!(
            "the build container was stopped from outside kbuild (signal {signal}, exit code {code}) while the engine kept running"
        ))
        .with_hint("someone stopped or killed the container (docker stop, docker kill, docker rm -f); run again")
    }

    fn out_of_memory(&self, job: &Job, log: &JobLog) -> Error {
        let limit = match job.memory_limit {
            Some(bytes) => format!("a container limit of {}", human_bytes(bytes)),
            None => "no container limit".to_string(),
        };
        Error::build(format!(
            "the build of {} ran out of memory and was killed (engine memory {}, {limit})",
            job.name,
            human_bytes(self.info.memory_bytes)
        ))
        .with_hint(format!(
            "give Docker at least 8 GiB of memory (Docker Desktop: Settings > Resources), drop --memory, or build fewer platforms at once; the whole log is {}",
            log.path().display()
        ))
        .with_details(log.tail())
    }
}

/// The engine refused to create, attach to or start the build container; a runtime failure
/// with a known cause (Podman's defaults) gets its fix as the hint.
fn refused(what: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let err = Error::engine(format!("{what}: {text}"));
    match super::podman::runtime_hint(&text) {
        Some(hint) => err.with_hint(hint),
        None => err,
    }
}

fn pull_failed(image: &str, e: impl std::fmt::Display) -> Error {
    Error::engine(format!("cannot pull the builder image {image}: {e}")).with_hint(
        "check the network and registry access, or load the image (docker load) and pass it with --image",
    )
}

/// Seconds since the epoch of an RFC 3339 time as the engine writes it
/// (`2024-05-01T12:00:00.123456789Z`, or with a `+hh:mm` offset).
fn unix_seconds(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Whether a build log's tail shows a process killed by SIGKILL: Go's `signal: killed`,
/// bash's `Killed` job report, or make's `Error 137` (128 + 9).
fn killed_in(tail: &[String]) -> bool {
    tail.iter().any(|l| {
        l.contains("signal: killed")
            || l.trim_end().ends_with("Error 137")
            || l.split_whitespace().any(|w| w == "Killed")
    })
}

/// How long an engine that stopped a build container gets to show it is shutting down
/// (its event stream ends, or it stops answering). dockerd stops every container on SIGTERM
/// (each within its stop timeout, 10 s) and then closes its connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The engine stopped answering in the middle of a build.
fn lost(e: impl std::fmt::Display) -> Error {
    Error::engine(format!("lost the Docker engine during the build: {e}"))
}

/// The smallest memory limit the engine accepts: moby refuses less in
/// `verifyPlatformContainerResources` (daemon/daemon_unix.go, `linuxMinMemory`, 6 MiB).
pub const MIN_MEMORY_LIMIT: u64 = 6 << 20;

/// Refuses a memory limit the engine would refuse, before anything is created.
pub fn check_memory_limit(bytes: u64, flag: &str) -> Result<()> {
    if bytes >= MIN_MEMORY_LIMIT {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{flag} {} is below the smallest memory limit the engine accepts ({})",
        human_bytes(bytes),
        human_bytes(MIN_MEMORY_LIMIT)
    ))
    .with_hint(
        "a Kubernetes build needs gigabytes: give 6g or more, or leave --memory out for no limit",
    ))
}

/// Refuses an image reference the engine would refuse (crate::imageref has the grammar),
/// saying why, with a caret under the first bad character.
pub fn check_reference(image: &str) -> Result<()> {
    let Err(fault) = crate::imageref::parse(image) else {
        return Ok(());
    };
    let column = image[..fault.at.min(image.len())].chars().count();
    Err(Error::usage(format!(
        "\"{image}\" is not a valid image reference: {}",
        fault.why
    ))
    .with_details(vec![image.to_string(), format!("{}^", " ".repeat(column))])
    .with_hint(
        "write it as [registry[:port]/]path[:tag][@sha256:<64 hex digits>], the path in lowercase letters, digits and . _ - separators, e.g. kbuild-builder:go1.24-trixie or registry.k8s.io/build-image/kube-cross:v1.34.0-go1.24.4-bullseye.0",
    ))
}

/// Splits `repo[:tag][@digest]` into the repo and what to pull: the digest when there is
/// one (the engine's pull API takes it as the tag, and a digest names the image exactly, so
/// a tag beside it is dropped, as the docker CLI does). A reference the grammar refuses is
/// passed on whole, for the engine to refuse in its words.
pub fn split_reference(image: &str) -> (&str, &str) {
    match crate::imageref::parse(image) {
        Ok(parts) => (parts.name, parts.digest.or(parts.tag).unwrap_or("latest")),
        Err(_) => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_image_references() {
        assert_eq!(
            split_reference("registry.k8s.io/build-image/kube-cross:v1.34.0-go1.24.4-bullseye.0"),
            (
                "registry.k8s.io/build-image/kube-cross",
                "v1.34.0-go1.24.4-bullseye.0"
            )
        );
        assert_eq!(
            split_reference("localhost:5000/img"),
            ("localhost:5000/img", "latest")
        );
        assert_eq!(
            split_reference("kbuild-builder:go1.24-trixie"),
            ("kbuild-builder", "go1.24-trixie")
        );
        let digest = format!("sha256:{}", "ab".repeat(32));
        for image in [
            format!("registry.k8s.io/build-image/kube-cross@{digest}"),
            format!("registry.k8s.io/build-image/kube-cross:v1.34.0-go1.24.4-bullseye.0@{digest}"),
        ] {
            assert_eq!(
                split_reference(&image),
                ("registry.k8s.io/build-image/kube-cross", digest.as_str()),
                "{image}"
            );
        }
        assert_eq!(
            split_reference(&format!("localhost:5000/img:v1@{digest}")),
            ("localhost:5000/img", digest.as_str())
        );
    }

    #[test]
    fn checks_image_references_like_the_engine() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        for good in [
            "kbuild-builder:go1.24-trixie".to_string(),
            "registry.k8s.io/build-image/kube-cross:v1.34.0-go1.24.4-bullseye.0".to_string(),
            "localhost:5000/a/b__c-d.e".to_string(),
            "Registry.Example.com/img".to_string(),
            format!("kube-cross@{digest}"),
            format!("registry.k8s.io/kube-cross:v1@{digest}"),
        ] {
            assert!(check_reference(&good).is_ok(), "{good}");
        }
        for bad in [
            "Bad Image!!",
            "",
            "img:",
            "UPPER",
            "a/Upper",
            "img@sha256:abc",
            "img:tag:tag",
            "-img",
        ] {
            let err = check_reference(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        let err = check_reference("Bad Image!!").unwrap_err();
        assert_eq!(err.details[1], "   ^", "the caret is under the space");
    }

    #[test]
    fn memory_limits_below_the_engine_minimum_are_refused() {
        assert!(check_memory_limit(6 << 20, "--memory").is_ok());
        let err = check_memory_limit(1024, "--memory").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("6.0 MiB"), "{}", err.message);
    }

    #[test]
    fn reads_engine_timestamps() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            unix_seconds("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(unix_seconds("garbage"), None);
    }

    #[test]
    fn killed_processes_are_seen_in_the_log() {
        let tail = |l: &str| {
            vec![
                "    k8s.io/kubernetes/cmd/kubectl (static)".to_string(),
                l.to_string(),
            ]
        };
        assert!(killed_in(&tail("make: *** [Makefile:31: all] Error 137")));
        assert!(killed_in(&tail(
            "golang.sh: line 166:    52 Killed                  ( cd ..."
        )));
        assert!(killed_in(&tail(
            "/usr/local/go/pkg/tool/linux_amd64/link: signal: killed"
        )));
        assert!(!killed_in(&tail("make: *** [Makefile:31: all] Error 2")));
    }
}
