//! `kbuild clean`: removes what kbuild made for one output directory — its build
//! containers in the engine and the files kbuild recorded writing there — and says how much
//! space came back. The dockerized upstream build is known to eat disk over time (kind#515,
//! test-infra#5617); this is the command that gives it back.
//!
//! It touches only its own (`engine::owner` names the classes): it takes the `--out` lock
//! (and the tree's with `--all`) or refuses at once; it removes only containers labelled with
//! that `--out`, and never one whose run is alive; the source volumes of a tree go with
//! `--all` for that tree, the Go caches with `--caches`, neither while a container uses them;
//! `--engine-wide` extends this to every run's objects, still skipping live ones. In the
//! output directory it removes only recorded files (`outdir::remove_owned`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};

use crate::engine::cache::LABEL_CACHE;
use crate::engine::docker::DockerEngine;
use crate::engine::owner::{self, Liveness, LABEL_LIVE, LABEL_OUT};
use crate::engine::{LABEL_MANAGED, LABEL_SOURCE};
use crate::error::{Error, Result};
use crate::outdir::lock::{self, Lock, Wait};
use crate::outdir::{self, Owner};
use crate::signals::Interrupt;
use crate::ui::{count, Ui};
use crate::units::human_bytes;

pub struct CleanPlan<'a> {
    pub out: &'a Path,
    /// `--kube-root`, when it exists: `--out` may not be it or an ancestor of it.
    pub kube_root: Option<&'a Path>,
    /// Also the Go build and module caches.
    pub caches: bool,
    /// Also the tree's intermediates (`_output/dockerized`, `_output/local`, the jobs' own
    /// `_output/jobs`) and source volumes.
    pub tree: Option<&'a Path>,
    /// Every run's objects in the engine, not only this `--out`'s (live runs' still stay).
    pub engine_wide: bool,
    /// Wait for a run holding a lock rather than refuse at once.
    pub wait: bool,
}

const OUT_HINT: &str =
    "wait for that run to finish, or pass --wait: clean never removes a running build's files";
const TREE_HINT: &str = "wait for that run to finish, or pass --wait: --all removes the tree's _output, which that run is writing";

pub async fn run(plan: &CleanPlan<'_>, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let wait = if plan.wait { Wait::Forever } else { Wait::No };
    // The tree first, then the output directory, in the order every run takes them.
    let _tree_lock = match plan.tree {
        Some(tree) => Some(lock::acquire_tree_with(tree, wait, TREE_HINT, ui, interrupt).await?),
        None => None,
    };
    let (owned, _out_lock) = lock_out(plan, wait, ui, interrupt).await?;
    let engine = DockerEngine::connect().await?;
    let mut reclaimed = clean_containers(&engine, plan, ui).await?;
    reclaimed += clean_volumes(&engine, plan, ui).await?;
    reclaimed += clean_out(plan.out, owned, ui)?;
    if let Some(tree) = plan.tree {
        use crate::engine::{DOCKER_OUTPUT_SUBPATH, HOST_OUTPUT_SUBPATH, JOB_OUTPUTS};
        for sub in [DOCKER_OUTPUT_SUBPATH, HOST_OUTPUT_SUBPATH, JOB_OUTPUTS] {
            reclaimed += remove_dir(&tree.join(sub), ui)?;
        }
    }
    ui.finished(&format!("reclaimed {}", human_bytes(reclaimed)));
    Ok(())
}

/// Refuses a directory kbuild does not own before anything is removed, then takes its lock
/// (an `--out` that does not exist has none to take) and reads the owner file under it.
async fn lock_out(
    plan: &CleanPlan<'_>,
    wait: Wait,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<(Option<Owner>, Option<Lock>)> {
    let owned = outdir::owned_for_clean(plan.out, plan.kube_root)?;
    if owned.is_none() && std::fs::symlink_metadata(plan.out.join(lock::LOCK_FILE)).is_err() {
        return Ok((None, None));
    }
    let held = lock::acquire_existing(plan.out, wait, OUT_HINT, ui, interrupt).await?;
    Ok((
        outdir::owned_for_clean(plan.out, plan.kube_root)?,
        Some(held),
    ))
}

/// Removes the recorded files in `out`; returns their bytes.
fn clean_out(out: &Path, owned: Option<Owner>, ui: &Ui) -> Result<u64> {
    let Some(owner) = owned else {
        ui.info(&format!(
            "{} holds nothing kbuild wrote: nothing to remove there",
            out.display()
        ));
        return Ok(0);
    };
    let removed = outdir::remove_owned(out, &owner)?;
    for (path, size) in &removed.paths {
        ui.detail(&format!(
            "removed {} ({})",
            path.display(),
            human_bytes(*size)
        ));
    }
    ui.info(&format!(
        "removed {} in {}",
        count(
            removed.paths.len(),
            "file or directory",
            "files and directories"
        ),
        out.display()
    ));
    for dir in &removed.kept_dirs {
        ui.info(&format!(
            "kept {}: it holds files kbuild did not write",
            dir.display()
        ));
    }
    Ok(removed.paths.iter().map(|(_, size)| size).sum())
}

/// Why a container in clean's scope stays, or None when it goes.
fn keep_container(
    labels: &HashMap<String, String>,
    state: Option<ContainerSummaryStateEnum>,
) -> Option<String> {
    use ContainerSummaryStateEnum::{PAUSED, RESTARTING, RUNNING};
    let active = matches!(state, Some(RUNNING | PAUSED | RESTARTING));
    match owner::liveness(labels) {
        Liveness::Dead => None,
        Liveness::Live(who) => Some(format!("its run is live ({who})")),
        Liveness::Unknown if labels.contains_key(LABEL_LIVE) => {
            Some("its run is on another host, which this one cannot check".to_string())
        }
        Liveness::Unknown if active => {
            Some("it is running and has no label that tells whether its run is over".to_string())
        }
        Liveness::Unknown => None,
    }
}

fn container_name(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .or_else(|| c.id.clone())
        .unwrap_or_default()
}

/// Removes the containers in scope whose run is over; says which it kept and why.
async fn clean_containers(engine: &DockerEngine, plan: &CleanPlan<'_>, ui: &Ui) -> Result<u64> {
    let ours = lock::out_identity(plan.out);
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
    let (mut removed, mut reclaimed, mut others) = (0, 0u64, 0);
    for container in &containers {
        let labels = container.labels.clone().unwrap_or_default();
        if !plan.engine_wide && labels.get(LABEL_OUT) != Some(&ours) {
            others += 1;
            continue;
        }
        if let Some(why) = keep_container(&labels, container.state) {
            ui.info(&format!(
                "kept container {}: {why}",
                container_name(container)
            ));
            continue;
        }
        let id = container.id.clone().unwrap_or_default();
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match engine.docker.remove_container(&id, Some(options)).await {
            Ok(()) => {}
            // Gone meanwhile (build containers remove themselves once they stop).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(Error::engine(format!("cannot remove container {id}: {e}"))),
        }
        reclaimed += container.size_rw.unwrap_or(0).max(0) as u64;
        removed += 1;
    }
    ui.info(&format!(
        "removed {}",
        count(removed, "container", "containers")
    ));
    if others > 0 {
        ui.info(&format!(
            "left {} of other output directories or runs (`kbuild clean --engine-wide` removes those whose run is over)",
            count(others, "container", "containers")
        ));
    }
    Ok(reclaimed)
}

/// The class of a kbuild volume, and whether `plan` asks for it.
fn volume_in_scope(plan: &CleanPlan<'_>, labels: &HashMap<String, String>) -> bool {
    if labels.contains_key(LABEL_CACHE) {
        return plan.caches;
    }
    let of_tree = match (labels.get(LABEL_SOURCE), plan.tree) {
        (Some(source), Some(tree)) => {
            let source = PathBuf::from(source);
            source == tree || source.canonicalize().is_ok_and(|s| s == tree)
        }
        _ => false,
    };
    of_tree || plan.engine_wide
}

/// Whether any container left (a live run's, or one out of this clean's scope) mounts `volume`.
async fn in_use(engine: &DockerEngine, volume: &str) -> bool {
    let filters = HashMap::from([("volume".to_string(), vec![volume.to_string()])]);
    engine
        .docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map(|c| !c.is_empty())
        .unwrap_or(true)
}

/// Removes the volumes in scope that no container uses; says what it kept.
async fn clean_volumes(engine: &DockerEngine, plan: &CleanPlan<'_>, ui: &Ui) -> Result<u64> {
    let volumes = engine
        .docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(label_filter(LABEL_MANAGED)),
        }))
        .await
        .map_err(|e| Error::engine(format!("cannot list kbuild's volumes: {e}")))?
        .volumes
        .unwrap_or_default();
    let (wanted, out_of_scope): (Vec<_>, Vec<_>) = volumes
        .into_iter()
        .partition(|v| volume_in_scope(plan, &v.labels));
    let sizes = volume_sizes(engine, &wanted).await;
    let (mut removed, mut reclaimed) = (0, 0u64);
    for volume in wanted {
        if in_use(engine, &volume.name).await {
            ui.info(&format!(
                "kept volume {}: a container uses it (a live run's, or one outside this clean)",
                volume.name
            ));
            continue;
        }
        match engine
            .docker
            .remove_volume(&volume.name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Ok(()) => {}
            // Taken by a build that started meanwhile: it stays.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                ui.info(&format!(
                    "kept volume {}: a build started using it",
                    volume.name
                ));
                continue;
            }
            Err(e) => {
                return Err(Error::engine(format!(
                    "cannot remove volume {}: {e}",
                    volume.name
                )))
            }
        }
        if volume
            .labels
            .contains_key(crate::engine::transfer::LABEL_TRANSFER)
        {
            crate::engine::sync::forget(engine, &volume.name).await;
        }
        reclaimed += sizes.get(&volume.name).copied().unwrap_or(0);
        removed += 1;
    }
    ui.info(&format!("removed {}", count(removed, "volume", "volumes")));
    let caches = out_of_scope
        .iter()
        .filter(|v| v.labels.contains_key(LABEL_CACHE))
        .count();
    if caches > 0 {
        ui.info(&format!(
            "kept {caches} Go cache volume(s); `kbuild clean --caches` removes them too"
        ));
    }
    if out_of_scope.len() > caches {
        ui.info(&format!(
            "kept {} of source trees (`--all --kube-root TREE` removes a tree's, `--engine-wide` every unused one)",
            count(out_of_scope.len() - caches, "volume", "volumes")
        ));
    }
    Ok(reclaimed)
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
    if volumes.is_empty() {
        // The engine's disk-usage report is slow on a busy engine: ask only when needed.
        return sizes;
    }
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
        labels: Some(owner::run_labels()),
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
