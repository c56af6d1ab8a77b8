//! The helper containers the Go cache's export and import run in the cache volume (as
//! root, no network), and what they find there: the image's Go version and the entries
//! the volume holds. The cache's key is made here too, from the engine's image.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, LogsOptions};
use futures_util::StreamExt;

use super::cache::MOUNT;
use super::cache_manifest::{valid_path, CacheKey, TOPS};
use super::docker::DockerEngine;
use super::guard::ContainerGuard;
use super::LABEL_MANAGED;
use crate::error::{Error, Result};

/// One file the volume holds.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    pub mtime: u64,
}

/// What a survey of the volume found.
pub struct Survey {
    pub go: String,
    pub entries: Vec<Listed>,
    /// The exited survey container: the archive endpoint still reads the volume through it.
    pub helper: ContainerGuard,
}

/// A created (not started) root container of `image` with `volume` at MOUNT, running
/// `script` under bash.
pub async fn helper(
    engine: &DockerEngine,
    image: &str,
    volume: &str,
    script: String,
    read_only: bool,
) -> Result<ContainerGuard> {
    let mut labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        ("io.kbuild.job".to_string(), "cache".to_string()),
    ]);
    labels.extend(super::owner::run_labels());
    let mode = if read_only { ":ro" } else { "" };
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["bash".into(), "-c".into(), script]),
        user: Some("0:0".into()),
        env: Some(vec![
            "GOTOOLCHAIN=local".into(),
            "GOFLAGS=".into(),
            "GOCACHE=/tmp/kbuild-go-env".into(),
        ]),
        labels: Some(labels),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:{MOUNT}{mode}")]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| Error::engine(format!("cannot create the Go cache helper container: {e}")))?;
    Ok(ContainerGuard::new(engine.docker.clone(), created.id))
}

/// Starts `helper`, waits for it and returns its stdout; a non-zero exit is an error
/// carrying its stderr.
pub async fn run(engine: &DockerEngine, helper: &ContainerGuard, what: &str) -> Result<Vec<u8>> {
    let failed = |e: String| Error::engine(format!("{what} failed in the cache volume: {e}"));
    engine
        .docker
        .start_container(
            &helper.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut waited = Ok(());
    let mut wait = engine.docker.wait_container(
        &helper.id,
        None::<bollard::query_parameters::WaitContainerOptions>,
    );
    while let Some(item) = wait.next().await {
        if let Err(e) = item {
            waited = Err(e);
        }
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut logs = engine.docker.logs(
        &helper.id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    while let Some(item) = logs.next().await {
        match item.map_err(|e| failed(e.to_string()))? {
            bollard::container::LogOutput::StdOut { message } => out.extend_from_slice(&message),
            bollard::container::LogOutput::StdErr { message } => err.extend_from_slice(&message),
            _ => {}
        }
    }
    match waited {
        Ok(()) => Ok(out),
        Err(e) => Err(failed(format!(
            "{e}: {}",
            String::from_utf8_lossy(&err).trim()
        ))),
    }
}

/// The image's Go version and every file under the volume's cache directories (read-only).
pub async fn survey(engine: &DockerEngine, image: &str, volume: &str) -> Result<Survey> {
    // NUL-separated records: module paths may hold any character but NUL.
    let script = format!(
        "set -eu; go env GOVERSION; cd {MOUNT}; for d in {}; do \
         if [ -d \"$d\" ]; then find \"$d\" -type f -printf '%T@ %s %p\\0'; fi; done",
        TOPS.join(" ")
    );
    let helper = helper(engine, image, volume, script, true).await?;
    let out = run(engine, &helper, "listing the Go cache").await?;
    let text = String::from_utf8_lossy(&out);
    let (go, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let go = go.trim().to_string();
    if !go.starts_with("go") {
        return Err(Error::check(format!(
            "`go env GOVERSION` in {image} printed {go:?}, not a Go version"
        ))
        .with_hint("the builder image must have Go on its PATH"));
    }
    let mut entries = Vec::new();
    for record in rest.split('\0').filter(|r| !r.is_empty()) {
        let mut parts = record.splitn(3, ' ');
        let (Some(mtime), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // Paths kbuild would refuse in an archive are left out of one.
        if !valid_path(path) {
            continue;
        }
        let mtime = mtime.split('.').next().unwrap_or("0").parse().unwrap_or(0);
        entries.push(Listed {
            path: path.to_string(),
            size: size.parse().unwrap_or(0),
            mtime,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Survey {
        go,
        entries,
        helper,
    })
}

/// The key of `image` on `engine`: its repository digest when it has one (a pulled image:
/// the same on every machine and image store), else its config digest, which the Docker
/// graphdriver store reports as the image id. Never the id alone on a containerd store,
/// where the id is the manifest's digest: there the manifest's digest is used and said so.
pub async fn key(engine: &DockerEngine, image: &str, go: &str) -> Result<CacheKey> {
    let found = engine
        .docker
        .inspect_image(image)
        .await
        .map_err(|e| Error::engine(format!("cannot inspect image {image}: {e}")))?;
    let repo_digest = found
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| d.split_once('@').map(|(_, digest)| digest.to_string()))
        .min();
    let (digest, of) = match (repo_digest, found.descriptor) {
        (Some(d), _) => (d, "repository digest"),
        (None, Some(desc)) => (desc.digest.unwrap_or_default(), "manifest digest"),
        (None, None) => (found.id.unwrap_or_default(), "config digest"),
    };
    Ok(CacheKey {
        image: digest,
        image_digest_of: of.to_string(),
        go: go.to_string(),
    })
}
