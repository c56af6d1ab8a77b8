//! Incremental source sync for copy transfer: each engine keeps one labelled source volume
//! per tree, and a sync sends it only what changed since the last one.
//!
//! kbuild keeps a listing of what the volume holds on this machine (see `listing`). A sync
//! compares the tree with it, deletes the paths that went (a helper container runs `rm` over
//! a NUL-separated list uploaded as a file: no path ever passes through a shell), then
//! uploads the added and changed files in one tar stream. With no listing it trusts (the
//! first sync, a recreated volume, another engine, a sync that did not finish) the volume is
//! emptied and everything is uploaded. The outputs of the previous run are deleted on every
//! sync, so a download only ever brings back this run's. The listing holds while builds
//! write only under `_output` (KUBE_OUTPUT_SUBPATH), as upstream's make does; `kbuild clean`
//! removes the volume when in doubt.

use super::listing;

use std::collections::HashMap;
use std::path::Path;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::UploadToContainerOptions;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;

use super::docker::DockerEngine;
use super::guard::ContainerGuard;
use super::transfer::{labels, write_entries_tar, Layout, SourceVolume};
use super::{CONTAINER_SRC, DOCKER_OUTPUT_SUBPATH, LABEL_MANAGED};
use crate::error::{Error, Result};
use crate::signals::Interrupt;
use crate::units::human_bytes;
use listing::{Listing, Store, VolumeId};

/// A random value given to a source volume when it is created (see `listing::VolumeId`).
pub const LABEL_GENERATION: &str = "io.kbuild.sync.generation";
/// Where the removal helper finds its list of paths (in its own filesystem, not the volume).
const REMOVAL_LIST: &str = "/kbuild-remove.list";

/// The source volume a copy-transfer build of the tree at `root` mounts: one per tree and
/// engine, named from the tree's path only (so a plan can name it before anything runs).
pub fn source_volume_name(root: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let base: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(32)
        .collect();
    if base.is_empty() {
        format!("kbuild-src-{hex}")
    } else {
        format!("kbuild-src-{base}-{hex}")
    }
}

/// What a sync did, for the report and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub volume: String,
    /// No listing could be trusted: the volume was emptied and the whole tree uploaded.
    pub full: bool,
    /// Files and links uploaded.
    pub files_uploaded: usize,
    /// Bytes of the files uploaded: comparable with `tree_bytes`.
    pub content_bytes_uploaded: u64,
    /// Bytes of the archive sent to the engine (0 when nothing changed): the files' bytes
    /// with the tar headers and padding (512 bytes and more a file), so more than them.
    pub bytes_uploaded: u64,
    /// Paths deleted from the volume (a removed directory counts once).
    pub paths_removed: usize,
    /// Files and links in the tree, and the bytes of its files.
    pub tree_files: usize,
    pub tree_bytes: u64,
}

impl SyncReport {
    /// `sync: 1 of 10 files (2.0 KiB of 5.0 MiB) uploaded to tcp://builder:2375 in a 3.0 KiB
    /// archive`: files with files, their bytes with the tree's, and the archive on its own.
    pub fn summary(&self, endpoint: &str) -> String {
        let mut line = format!(
            "sync: {} of {} ({} of {}) uploaded to {endpoint}",
            self.files_uploaded,
            crate::ui::count(self.tree_files, "file", "files"),
            human_bytes(self.content_bytes_uploaded),
            human_bytes(self.tree_bytes),
        );
        if self.bytes_uploaded > 0 {
            line.push_str(&format!(
                " in a {} archive",
                human_bytes(self.bytes_uploaded)
            ));
        }
        if self.paths_removed > 0 {
            line.push_str(&format!("; {} removed", self.paths_removed));
        }
        if self.full {
            line.push_str(" (full sync: no listing of the volume to compare with)");
        }
        line
    }
}

/// Brings the engine's source volume for the tree at `root` up to date, files owned by
/// `user` (uid, gid) so that the build can write its outputs there. Helper containers run
/// `image`. The volume stays when the run ends.
pub async fn sync(
    engine: &DockerEngine,
    root: &Path,
    image: &str,
    user: Option<(u32, u32)>,
    interrupt: &Interrupt,
) -> Result<(SourceVolume, SyncReport)> {
    let name = source_volume_name(root);
    let (id, fresh) = ensure_volume(engine, &name, root).await?;
    let store = Store::new(crate::env::cache_home().as_deref(), &id.engine, &name);
    let previous = store.load(&id);
    // From here on the volume may change: no listing may vouch for it until the sync is done.
    store.forget()?;
    let tree = root.to_path_buf();
    let known = previous.clone();
    let scanned = tokio::task::spawn_blocking(move || listing::scan(&tree, known.as_ref()))
        .await
        .map_err(|e| Error::internal(format!("the tree scan failed: {e}")))??;
    if interrupt.fired() {
        return Err(interrupt.wait().await);
    }
    let changes = listing::changes(previous.as_ref(), &scanned.listing);
    let volume = SourceVolume::new(engine, &name, image, root);

    let full = previous.is_none();
    let removal = if full && !fresh {
        Removal::Everything
    } else {
        // Last run's outputs go too, or they would come back with this run's.
        let mut paths = changes.remove.clone();
        paths.push(DOCKER_OUTPUT_SUBPATH.to_string());
        Removal::Paths(paths)
    };
    if !(fresh && full) {
        remove(engine, &volume, &removal, interrupt).await?;
    }

    let uploads: Vec<_> = changes
        .upload
        .iter()
        .map(|p| (p.clone(), scanned.listing.entries[p].clone()))
        .collect();
    let bytes_uploaded = if uploads.is_empty() && !full {
        0
    } else {
        let user = user.unwrap_or((0, 0));
        upload(engine, &volume, root, uploads, user, interrupt).await?
    };

    let report = SyncReport {
        volume: name,
        full,
        files_uploaded: changes
            .upload
            .iter()
            .filter(|p| scanned.listing.entries[*p].kind != listing::Kind::Dir)
            .count(),
        content_bytes_uploaded: changes
            .upload
            .iter()
            .map(|p| &scanned.listing.entries[p])
            .filter(|e| e.kind == listing::Kind::File)
            .map(|e| e.size)
            .sum(),
        bytes_uploaded,
        paths_removed: match removal {
            Removal::Paths(_) => changes.remove.len(),
            Removal::Everything => 0,
        },
        tree_files: scanned.listing.files(),
        tree_bytes: scanned.listing.bytes(),
    };
    if scanned.recordable {
        let mut listing: Listing = scanned.listing;
        listing.volume = Some(id);
        store.save(&listing)?;
    }
    Ok((volume, report))
}

/// Forgets what kbuild knew of the source volume `volume` (`kbuild clean` removed it).
pub async fn forget(engine: &DockerEngine, volume: &str) {
    if let Ok(id) = engine_id(engine).await {
        let cache = crate::env::cache_home();
        let _ = Store::new(cache.as_deref(), &id, volume).forget();
    }
}

/// Runs `work` unless the run is interrupted first (the listing is already gone). Only work
/// on a container that exists: a container creation cut short would leave one nobody knows.
async fn guarded<T>(
    work: impl std::future::Future<Output = Result<T>>,
    interrupt: &Interrupt,
) -> Result<T> {
    tokio::select! {
        r = work => r,
        e = interrupt.wait() => Err(e),
    }
}

/// What names the engine in a listing: its `docker info` ID and data directory (Docker 20.10
/// derives the ID from /etc/docker/key.json, so two daemons of one machine share it).
async fn engine_id(engine: &DockerEngine) -> Result<String> {
    let info = engine
        .docker
        .info()
        .await
        .map_err(|e| Error::engine(format!("cannot ask the engine who it is: {e}")))?;
    let id = info
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| engine.info.endpoint.clone());
    Ok(format!("{id} {}", info.docker_root_dir.unwrap_or_default()))
}

/// Finds the volume `name` or creates it; returns what identifies it and whether it is new.
async fn ensure_volume(engine: &DockerEngine, name: &str, root: &Path) -> Result<(VolumeId, bool)> {
    let engine_id = engine_id(engine).await?;
    let id = |generation: String| VolumeId {
        engine: engine_id.clone(),
        volume: name.to_string(),
        generation,
    };
    match engine.docker.inspect_volume(name).await {
        Ok(found) => {
            if found.labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
                return Err(Error::engine(format!(
                    "the engine has a volume {name} that kbuild did not make"
                ))
                .with_hint(format!(
                    "kbuild keeps the tree there for copy transfer: remove or rename that volume (docker volume rm {name})"
                )));
            }
            let generation = found.labels.get(LABEL_GENERATION).cloned();
            Ok((id(generation.unwrap_or_default()), false))
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            let generation = generation();
            let mut labels: HashMap<String, String> = labels(root);
            labels.insert(LABEL_GENERATION.to_string(), generation.clone());
            engine
                .docker
                .create_volume(VolumeCreateRequest {
                    name: Some(name.to_string()),
                    labels: Some(labels),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    Error::engine(format!("cannot create the source volume {name}: {e}"))
                })?;
            Ok((id(generation), true))
        }
        Err(e) => Err(Error::engine(format!(
            "cannot inspect the source volume {name}: {e}"
        ))),
    }
}

/// A value no other volume of this name had: the time and this process.
fn generation() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}-{:x}", std::process::id())
}

enum Removal {
    /// Everything in the volume (nothing says what it holds).
    Everything,
    /// These paths, relative to the tree.
    Paths(Vec<String>),
}

/// Deletes from the volume with a short root container: `find -delete` for everything, or
/// `xargs -0 rm -rf` over a list it reads from a file uploaded beside it.
async fn remove(
    engine: &DockerEngine,
    volume: &SourceVolume,
    removal: &Removal,
    interrupt: &Interrupt,
) -> Result<()> {
    let cmd: Vec<String> = match removal {
        Removal::Everything => ["find", CONTAINER_SRC, "-mindepth", "1", "-delete"]
            .map(str::to_string)
            .to_vec(),
        Removal::Paths(_) => ["xargs", "-0", "-r", "-a", REMOVAL_LIST, "rm", "-rf", "--"]
            .map(str::to_string)
            .to_vec(),
    };
    let helper = volume.helper(cmd).await?;
    let work = async {
        if let Removal::Paths(paths) = removal {
            upload_removal_list(engine, &helper, paths).await?;
        }
        run_to_end(engine, &helper).await
    };
    let result = guarded(work, interrupt).await;
    helper.remove().await;
    result.map_err(|e| {
        e.with_hint("check that the engine is reachable; the next run syncs the whole tree again")
    })
}

/// Puts the NUL-separated list of absolute paths to remove at REMOVAL_LIST in the helper.
async fn upload_removal_list(
    engine: &DockerEngine,
    helper: &ContainerGuard,
    paths: &[String],
) -> Result<()> {
    let mut list = Vec::new();
    for path in paths {
        list.extend_from_slice(format!("{CONTAINER_SRC}/{path}").as_bytes());
        list.push(0);
    }
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(list.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    let name = REMOVAL_LIST.trim_start_matches('/');
    archive
        .append_data(&mut header, name, &list[..])
        .and_then(|_| archive.finish())
        .map_err(|e| Error::internal(format!("cannot write the removal list: {e}")))?;
    let bytes = archive
        .into_inner()
        .map_err(|e| Error::internal(format!("cannot write the removal list: {e}")))?;
    engine
        .docker
        .upload_to_container(
            &helper.id,
            Some(UploadToContainerOptions {
                path: "/".to_string(),
                ..Default::default()
            }),
            bollard::body_full(Bytes::from(bytes)),
        )
        .await
        .map_err(|e| Error::engine(format!("cannot upload the list of removed files: {e}")))
}

/// Starts the helper and waits for it to exit successfully.
async fn run_to_end(engine: &DockerEngine, helper: &ContainerGuard) -> Result<()> {
    let failed = |e: bollard::errors::Error| {
        Error::engine(format!(
            "cannot delete removed files from the source volume: {e}"
        ))
    };
    engine
        .docker
        .start_container(
            &helper.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(failed)?;
    let mut wait = engine.docker.wait_container(
        &helper.id,
        None::<bollard::query_parameters::WaitContainerOptions>,
    );
    while let Some(item) = wait.next().await {
        item.map_err(failed)?;
    }
    Ok(())
}

/// Uploads `entries` of the tree at `root` in one tar stream; returns the bytes sent.
async fn upload(
    engine: &DockerEngine,
    volume: &SourceVolume,
    root: &Path,
    entries: Vec<(String, listing::Entry)>,
    user: (u32, u32),
    interrupt: &Interrupt,
) -> Result<u64> {
    let helper = volume.helper(vec!["true".to_string()]).await?;
    let layout = Layout::for_engine(engine);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let tree = root.to_path_buf();
    let writer =
        tokio::task::spawn_blocking(move || write_entries_tar(&tree, &entries, user, layout, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let uploading = engine.docker.upload_to_container(
        &helper.id,
        Some(UploadToContainerOptions {
            path: layout.upload_path(),
            ..Default::default()
        }),
        bollard::body_stream(body),
    );
    let uploaded = match guarded(async { Ok(uploading.await) }, interrupt).await {
        Ok(uploaded) => uploaded,
        Err(stopped) => {
            helper.remove().await;
            return Err(stopped);
        }
    };
    helper.remove().await;
    let written = writer
        .await
        .map_err(|e| Error::internal(format!("the source archive writer failed: {e}")))?;
    // A failure to read the tree explains a failed upload better than the engine's words.
    match (written, uploaded) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(Error::engine(format!(
            "cannot upload the source to the engine: {e}"
        ))
        .with_hint("check that the engine is reachable and has free disk space")),
        (Ok(sent), Ok(())) => Ok(sent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_name_comes_from_the_tree_path_only() {
        let a = source_volume_name(Path::new("/home/me/kubernetes"));
        assert_eq!(a, source_volume_name(Path::new("/home/me/kubernetes")));
        assert!(a.starts_with("kbuild-src-kubernetes-"), "{a}");
        assert_ne!(a, source_volume_name(Path::new("/home/you/kubernetes")));
        // Docker's rule for volume names: [a-zA-Z0-9][a-zA-Z0-9_.-]*
        let odd = source_volume_name(Path::new("/tmp/k8s tree (copy)"));
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "{odd}"
        );
        assert_eq!(
            source_volume_name(Path::new("/")).len(),
            "kbuild-src-".len() + 16
        );
    }

    #[test]
    fn the_summary_says_files_bytes_and_where() {
        let report = SyncReport {
            volume: "v".into(),
            full: false,
            files_uploaded: 1,
            content_bytes_uploaded: 2048,
            bytes_uploaded: 3072,
            paths_removed: 2,
            tree_files: 10,
            tree_bytes: 5 * 1024 * 1024,
        };
        assert_eq!(
            report.summary("tcp://builder:2375"),
            "sync: 1 of 10 files (2.0 KiB of 5.0 MiB) uploaded to tcp://builder:2375 in a 3.0 KiB archive; 2 removed"
        );
        // Nothing changed: nothing sent, and no archive to speak of.
        let unchanged = SyncReport {
            files_uploaded: 0,
            content_bytes_uploaded: 0,
            bytes_uploaded: 0,
            paths_removed: 0,
            ..report
        };
        assert_eq!(
            unchanged.summary("tcp://builder:2375"),
            "sync: 0 of 10 files (0 B of 5.0 MiB) uploaded to tcp://builder:2375"
        );
    }
}
