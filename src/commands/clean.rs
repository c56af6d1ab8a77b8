//! `kbuild clean`: removes what kbuild made — containers and volumes carrying its label in
//! the engine, and its output directory — and says how much space came back. The dockerized
//! upstream build is known to eat disk over time (kind#515, test-infra#5617); this is the
//! one command that gives it all back.
//!
//! In the output directory it removes only what kbuild recorded writing there
//! (`outdir::remove_owned`), and refuses a directory kbuild did not mark as its own.

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};

use crate::engine::cache::LABEL_CACHE;
use crate::engine::docker::DockerEngine;
use crate::engine::LABEL_MANAGED;
use crate::error::{Error, Result};
use crate::outdir;
use crate::ui::Ui;
use crate::units::human_bytes;

pub struct CleanPlan<'a> {
    pub out: &'a Path,
    /// `--kube-root`, when it exists: `--out` may not be it or an ancestor of it.
    pub kube_root: Option<&'a Path>,
    /// Also the Go build and module caches.
    pub caches: bool,
    /// Also the intermediates builds leave in the tree (`_output/dockerized`, `_output/local`).
    pub tree: Option<&'a Path>,
}

pub async fn run(plan: &CleanPlan<'_>, ui: &Ui) -> Result<()> {
    // Refused before anything is removed, in the engine or on disk.
    let owned = outdir::owned_for_clean(plan.out, plan.kube_root)?;
    let engine = DockerEngine::connect().await?;
    let mut reclaimed = 0u64;

    let containers = engine
        .docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            size: true,
            filters: Some(label_filter(LABEL_MANAGED)),
            ..Default::default()
        }))
        .await
        .map_err(|e| Error::engine(format!("cannot list kbuild's containers: {e}")))?;
    for container in &containers {
        let id = container.id.clone().unwrap_or_default();
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        engine
            .docker
            .remove_container(&id, Some(options))
            .await
            .map_err(|e| Error::engine(format!("cannot remove container {id}: {e}")))?;
        reclaimed += container.size_rw.unwrap_or(0).max(0) as u64;
    }
    ui.info(&format!(
        "removed {}",
        crate::ui::count(containers.len(), "container", "containers")
    ));

    let volumes = engine
        .docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(label_filter(LABEL_MANAGED)),
        }))
        .await
        .map_err(|e| Error::engine(format!("cannot list kbuild's volumes: {e}")))?
        .volumes
        .unwrap_or_default();
    let sizes = volume_sizes(&engine, &volumes).await;
    let mut removed_volumes = 0;
    let mut kept_caches = 0;
    for volume in volumes {
        if volume.labels.contains_key(LABEL_CACHE) && !plan.caches {
            kept_caches += 1;
            continue;
        }
        engine
            .docker
            .remove_volume(&volume.name, Some(RemoveVolumeOptions { force: true }))
            .await
            .map_err(|e| Error::engine(format!("cannot remove volume {}: {e}", volume.name)))?;
        if volume
            .labels
            .contains_key(crate::engine::transfer::LABEL_TRANSFER)
        {
            crate::engine::sync::forget(&engine, &volume.name).await;
        }
        reclaimed += sizes.get(&volume.name).copied().unwrap_or(0);
        removed_volumes += 1;
    }
    ui.info(&format!(
        "removed {}",
        crate::ui::count(removed_volumes, "volume", "volumes")
    ));
    if kept_caches > 0 {
        ui.info(&format!(
            "kept {kept_caches} Go cache volume(s); `kbuild clean --caches` removes them too"
        ));
    }

    match owned {
        Some(owner) => {
            for (path, size) in outdir::remove_owned(plan.out, &owner)? {
                ui.info(&format!(
                    "removed {} ({})",
                    path.display(),
                    human_bytes(size)
                ));
                reclaimed += size;
            }
        }
        None => ui.info(&format!(
            "{} does not exist: nothing to remove there",
            plan.out.display()
        )),
    }
    if let Some(tree) = plan.tree {
        for sub in ["_output/dockerized", "_output/local"] {
            reclaimed += remove_dir(&tree.join(sub), ui)?;
        }
    }
    ui.finished(&format!("reclaimed {}", human_bytes(reclaimed)));
    Ok(())
}

fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

/// Volume sizes: from the engine's disk-usage report where it gives them (API >= 1.52), else
/// measured with `du` in a throwaway container of the image that filled the volume.
async fn volume_sizes(
    engine: &DockerEngine,
    volumes: &[bollard::models::Volume],
) -> HashMap<String, u64> {
    let mut sizes = HashMap::new();
    if let Ok(usage) = engine.docker.df(None).await {
        for item in usage.volume_usage.and_then(|v| v.items).unwrap_or_default() {
            if let (Some(name), Some(size)) =
                (item["Name"].as_str(), item["UsageData"]["Size"].as_i64())
            {
                sizes.insert(name.to_string(), size.max(0) as u64);
            }
        }
    }
    for volume in volumes {
        if sizes.contains_key(&volume.name) {
            continue;
        }
        if let Some(image) = volume.labels.get("io.kbuild.image") {
            if let Some(size) = measure(engine, image, &volume.name).await {
                sizes.insert(volume.name.clone(), size);
            }
        }
    }
    sizes
}

/// `du -sk` of a volume, run in `image` (which has coreutils: it ran the build).
async fn measure(engine: &DockerEngine, image: &str, volume: &str) -> Option<u64> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use futures_util::StreamExt;
    engine.image_id(image).await.ok()??;
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["du".into(), "-sk".into(), "/v".into()]),
        labels: Some(HashMap::from([(
            LABEL_MANAGED.to_string(),
            "true".to_string(),
        )])),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:/v:ro")]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .ok()?;
    let guard =
        crate::engine::guard::ContainerGuard::new(engine.docker.clone(), created.id.clone());
    let mut text = String::new();
    if engine
        .docker
        .start_container(
            &created.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .is_ok()
    {
        let mut logs = engine.docker.logs(
            &created.id,
            Some(bollard::query_parameters::LogsOptions {
                follow: true,
                stdout: true,
                ..Default::default()
            }),
        );
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    guard.remove().await;
    text.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(|kib| kib * 1024)
}

/// Removes a directory tree, returning how many bytes its files held.
fn remove_dir(dir: &Path, ui: &Ui) -> Result<u64> {
    if !dir.exists() {
        return Ok(0);
    }
    let size = outdir::dir_size(dir);
    outdir::make_writable(dir);
    std::fs::remove_dir_all(dir).map_err(|e| Error::io("cannot remove", dir, e))?;
    ui.info(&format!(
        "removed {} ({})",
        dir.display(),
        human_bytes(size)
    ));
    Ok(size)
}
