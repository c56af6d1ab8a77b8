//! The Docker engine, through its API (bollard): detect it once, make sure the builder
//! image is there, run a build job in a labelled container, stream its output, and
//! always remove the container.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, LogsOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::guard::ContainerGuard;
use super::{BuildJob, CONTAINER_SRC, DOCKER_OUTPUT_SUBPATH, LABEL_MANAGED, LABEL_SOURCE};
use crate::error::{Error, Result};
use crate::joblog::JobLog;
use crate::signals::Interrupt;
use crate::ui::Ui;

/// How long an engine may take to answer its first ping before we call it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests after the first may legitimately take long (image pulls, waits).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The engine endpoint kbuild talks to, as the Docker CLI would pick it.
pub fn endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

fn unreachable(detail: impl std::fmt::Display) -> Error {
    Error::engine(format!("no Docker engine answers at {}: {detail}", endpoint())).with_hint(
        "start Docker (e.g. `systemctl start docker`, or open Docker Desktop), or point DOCKER_HOST at a running engine; `--engine host` builds with the local Go instead",
    )
}

/// Connects to the engine named by DOCKER_HOST, fails within seconds when nothing answers,
/// and negotiates the API version (older engines such as 20.10 speak 1.41).
pub async fn connect_client() -> Result<Docker> {
    let docker = Docker::connect_with_defaults().map_err(unreachable)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.ping()).await {
        Err(_) => return Err(unreachable("no answer within 2 seconds")),
        Ok(Err(e)) => return Err(unreachable(e)),
        Ok(Ok(_)) => {}
    }
    let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
        .await
        .map_err(|_| unreachable("no answer to the version request within 2 seconds"))?
        .map_err(unreachable)?;
    Ok(docker.with_timeout(REQUEST_TIMEOUT))
}

/// What kbuild needs to know about the engine, read once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    pub endpoint: String,
    pub server_version: String,
    pub os: String,
    /// Go's name for the engine's architecture (amd64, arm64).
    pub arch: String,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub rootless: bool,
}

/// A connected Docker engine.
#[derive(Clone)]
pub struct DockerEngine {
    pub docker: Docker,
    pub info: EngineInfo,
}

/// The options of one container run beyond the job itself.
pub struct RunOptions<'a> {
    pub root: &'a Path,
    pub image: &'a str,
    /// Abort when the build prints nothing for this long.
    pub stall_timeout: Option<Duration>,
    /// A memory limit for the container, in bytes.
    pub memory_limit: Option<u64>,
    /// Give the container a network (off by default: upstream builds with GOPROXY=off).
    pub network: bool,
    /// The Go cache volume to mount, if any.
    pub cache_volume: Option<&'a str>,
}

impl DockerEngine {
    pub async fn connect() -> Result<DockerEngine> {
        let docker = connect_client().await?;
        let info = docker.info().await.map_err(unreachable)?;
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
            endpoint: endpoint(),
            server_version: info.server_version.unwrap_or_default(),
            os: info.operating_system.unwrap_or_default(),
            arch,
            cpus: info.ncpu.unwrap_or(0).max(0) as u64,
            memory_bytes: info.mem_total.unwrap_or(0).max(0) as u64,
            rootless,
        };
        Ok(DockerEngine { docker, info })
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
        job: &BuildJob,
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
            .map_err(|e| Error::engine(format!("cannot create the build container: {e}")))?;
        let guard = ContainerGuard::new(self.docker.clone(), created.id.clone());
        let outcome = tokio::select! {
            r = self.drive(&created.id, job, options, log, ui) => r,
            e = interrupt.wait() => Err(e),
        };
        guard.remove().await;
        outcome
    }

    fn container_body(&self, job: &BuildJob, options: &RunOptions<'_>) -> ContainerCreateBody {
        let mut env: Vec<String> = vec!["HOME=/tmp".to_string(), "GOTOOLCHAIN=local".to_string()];
        let mut binds = vec![format!("{}:{CONTAINER_SRC}", options.root.display())];
        if let Some(volume) = options.cache_volume {
            binds.push(format!("{volume}:{}", crate::cache::MOUNT));
            env.extend(
                crate::cache::go_env()
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}")),
            );
        }
        env.extend(
            job.make_env(DOCKER_OUTPUT_SUBPATH)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            ("io.kbuild.job".to_string(), job.name.clone()),
            (LABEL_SOURCE.to_string(), options.root.display().to_string()),
        ]);
        let user = self.build_user().map(|(uid, gid)| format!("{uid}:{gid}"));
        let host_config = HostConfig {
            binds: Some(binds),
            network_mode: Some(if options.network { "bridge" } else { "none" }.to_string()),
            memory: options.memory_limit.map(|m| m as i64),
            memory_swap: options.memory_limit.map(|m| m as i64),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(options.image.to_string()),
            cmd: Some(job.command()),
            env: Some(env),
            user,
            working_dir: Some(CONTAINER_SRC.to_string()),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    /// Starts the container, streams its output, and turns its exit into a result.
    async fn drive(
        &self,
        id: &str,
        job: &BuildJob,
        options: &RunOptions<'_>,
        log: &mut JobLog,
        ui: &Ui,
    ) -> Result<()> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| Error::engine(format!("cannot start the build container: {e}")))?;
        let mut stream = self.docker.logs(
            id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut pending = Vec::new();
        loop {
            let next = match options.stall_timeout {
                Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        return Err(Error::build(format!(
                            "the build of {} printed nothing for {}s and was stopped",
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
            let chunk = chunk.map_err(|e| engine_lost(e, log))?;
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
        let code = self.exit_code(id).await.map_err(|e| engine_lost(e, log))?;
        if code == 0 {
            return Ok(());
        }
        let state = self.docker.inspect_container(id, None).await.ok();
        let oom = state
            .and_then(|s| s.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        log.flush()?;
        if oom || (code == 137 && options.memory_limit.is_some()) {
            return Err(self.out_of_memory(job, options, log));
        }
        let mut err = Error::build(format!(
            "make failed with exit code {code} while building {}",
            job.name
        ))
        .with_hint(format!("the whole log is {}", log.path().display()))
        .with_details(log.tail());
        if log.tail().iter().any(|l| l.contains("signal: killed")) {
            err = err.with_hint(format!(
                "a compiler or linker was killed, most likely for lack of memory: give the engine at least 8 GiB (it has {}); the whole log is {}",
                human_bytes(self.info.memory_bytes),
                log.path().display()
            ));
        }
        Err(err)
    }

    async fn exit_code(&self, id: &str) -> std::result::Result<i64, bollard::errors::Error> {
        let mut wait = self.docker.wait_container(id, None::<WaitContainerOptions>);
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e),
            None => Ok(0),
        }
    }

    fn out_of_memory(&self, job: &BuildJob, options: &RunOptions<'_>, log: &JobLog) -> Error {
        let limit = match options.memory_limit {
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

fn pull_failed(image: &str, e: impl std::fmt::Display) -> Error {
    Error::engine(format!("cannot pull the builder image {image}: {e}")).with_hint(
        "check the network and registry access, or load the image (docker load) and pass it with --image",
    )
}

fn engine_lost(e: bollard::errors::Error, log: &JobLog) -> Error {
    Error::engine(format!("lost the Docker engine during the build: {e}"))
        .with_hint(format!(
            "check that the engine is still running (docker info), then run again; the log so far is {}",
            log.path().display()
        ))
        .with_details(log.tail())
}

/// Splits `repo[:tag]` (the registry part may hold a port) into repo and tag.
pub fn split_reference(image: &str) -> (&str, &str) {
    let name_start = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

/// 8.0 GiB, 512.0 MiB, ...
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
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
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(human_bytes(8 * 1024 * 1024 * 1024), "8.0 GiB");
        assert_eq!(human_bytes(512), "512 B");
    }
}
