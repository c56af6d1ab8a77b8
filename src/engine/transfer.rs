//! Copy transfer, for engines that cannot see the user's files (DOCKER_HOST tcp:// or
//! ssh://, or `--transfer copy`): the source goes up as a tar stream into a labelled
//! volume, the build container mounts that volume where a bind mount would be, and the
//! outputs come back down through the API as a tar stream, extracted safely.
//!
//! Both directions go through a helper container that is created (never started) with the
//! volume mounted: the engine's archive endpoints work on created containers. The volume
//! is removed when the run ends, whatever happens; the Go cache volume stays.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, RemoveVolumeOptions,
    UploadToContainerOptions,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;

use super::docker::DockerEngine;
use super::guard::ContainerGuard;
use super::{CONTAINER_SRC, LABEL_MANAGED, LABEL_SOURCE};
use crate::error::{Error, Result};
use crate::signals::Interrupt;

/// Marks source volumes, so `kbuild clean` can tell them from caches.
pub const LABEL_TRANSFER: &str = "io.kbuild.transfer";
/// Top-level entries of the tree that are never uploaded (upstream's rsync excluded
/// _output and _tmp; version facts come from the host, so .git is not needed).
const EXCLUDED: &[&str] = &[".git", "_output", "_tmp"];
/// Size of the chunks the tar stream is sent in.
const CHUNK: usize = 256 * 1024;

/// How the build container gets the source and gives back the outputs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transfer {
    /// Bind-mount the tree (the engine must see this machine's files)
    Bind,
    /// Upload the tree into a volume and download the outputs through the API
    Copy,
}

/// Whether the endpoint is an engine on another machine (or a VM reached over the network).
pub fn is_remote(endpoint: &str) -> bool {
    ["tcp://", "ssh://", "http://", "https://"]
        .iter()
        .any(|scheme| endpoint.starts_with(scheme))
}

/// The mode to use: the one asked for, else copy for a remote endpoint, else bind.
pub fn choose(requested: Option<Transfer>, endpoint: &str) -> Transfer {
    requested.unwrap_or(if is_remote(endpoint) {
        Transfer::Copy
    } else {
        Transfer::Bind
    })
}

/// The tree's copy on the engine: a labelled volume, removed by `remove` or on drop.
pub struct SourceVolume {
    docker: Docker,
    pub name: String,
    image: String,
    root: PathBuf,
    removed: bool,
}

impl SourceVolume {
    /// Creates the volume and uploads the tree at `root` into it, owned by `user` (uid, gid)
    /// so that the build can write its outputs there.
    pub async fn upload(
        engine: &DockerEngine,
        root: &Path,
        image: &str,
        user: Option<(u32, u32)>,
        interrupt: &Interrupt,
    ) -> Result<SourceVolume> {
        let name = format!("kbuild-src-{}-{}", short_hash(root), std::process::id());
        engine
            .docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(labels(root)),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::engine(format!("cannot create the source volume {name}: {e}")))?;
        let volume = SourceVolume {
            docker: engine.docker.clone(),
            name,
            image: image.to_string(),
            root: root.to_path_buf(),
            removed: false,
        };
        let helper = volume.helper().await?;
        let (uid, gid) = user.unwrap_or((0, 0));
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let tree = root.to_path_buf();
        // Podman writes an archive into a volume only for paths inside its mount: one aimed
        // at the mount point's parent lands in the helper container's own filesystem.
        let layout = if engine.info.product == "Podman" {
            Layout::IntoMount
        } else {
            Layout::MountPointEntry
        };
        let writer =
            tokio::task::spawn_blocking(move || write_tree_tar(&tree, uid, gid, layout, tx));
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let path = match layout {
            // The archive's top entry is the mount point itself, so its owner becomes the build user.
            Layout::MountPointEntry => Path::new(CONTAINER_SRC)
                .parent()
                .expect("CONTAINER_SRC has a parent")
                .display()
                .to_string(),
            Layout::IntoMount => CONTAINER_SRC.to_string(),
        };
        let upload = engine.docker.upload_to_container(
            &helper.id,
            Some(UploadToContainerOptions {
                path,
                ..Default::default()
            }),
            bollard::body_stream(body),
        );
        let uploaded = tokio::select! {
            r = upload => r,
            e = interrupt.wait() => {
                helper.remove().await;
                volume.remove().await;
                return Err(e);
            }
        };
        helper.remove().await;
        let written = writer
            .await
            .map_err(|e| Error::internal(format!("the source archive writer failed: {e}")))?;
        // A failure to read the tree explains a failed upload better than the engine's words.
        let result = match (written, uploaded) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(Error::engine(format!(
                "cannot upload the source to the engine: {e}"
            ))
            .with_hint("check that the engine is reachable and has free disk space")),
            (Ok(_), Ok(())) => Ok(()),
        };
        match result {
            Ok(()) => Ok(volume),
            Err(e) => {
                volume.remove().await;
                Err(e)
            }
        }
    }

    /// Downloads `<CONTAINER_SRC>/<subpath>` (a directory) from the volume and extracts it
    /// safely into `dest`, which then holds the directory's contents.
    pub async fn download(&self, subpath: &str, dest: &Path, interrupt: &Interrupt) -> Result<()> {
        let helper = self.helper().await?;
        let from = format!("{CONTAINER_SRC}/{subpath}/.");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let target = dest.to_path_buf();
        let extractor = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx: &mut rx,
                current: Bytes::new(),
            };
            crate::extract::extract(reader, &target)
        });
        let pump = async {
            let mut stream = self.docker.download_from_container(
                &helper.id,
                Some(DownloadFromContainerOptions { path: from.clone() }),
            );
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| match e {
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 404, ..
                    } => Error::build(format!(
                        "the build left nothing in {CONTAINER_SRC}/{subpath} on the engine"
                    )),
                    e => Error::engine(format!(
                        "lost the Docker engine while downloading the outputs: {e}"
                    ))
                    .with_hint("check that the engine is still running, then run again; nothing was installed"),
                })?;
                if tx.send(chunk).await.is_err() {
                    break; // the extractor stopped: its error says why
                }
            }
            Ok::<(), Error>(())
        };
        let pumped = tokio::select! {
            r = pump => r,
            e = interrupt.wait() => Err(e),
        };
        helper.remove().await;
        let extracted = extractor
            .await
            .map_err(|e| Error::internal(format!("the output extractor failed: {e}")))?;
        match (pumped, extracted) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(_)) => Ok(()),
        }
    }

    /// Removes the volume (and so the uploaded tree and the outputs in it).
    pub async fn remove(mut self) {
        remove_volume(&self.docker, &self.name).await;
        self.removed = true;
    }

    /// A created (never started) container with the volume mounted at CONTAINER_SRC.
    async fn helper(&self) -> Result<ContainerGuard> {
        let mut labels = labels(&self.root);
        labels.insert("io.kbuild.job".to_string(), "transfer".to_string());
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(vec!["true".to_string()]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:{CONTAINER_SRC}", self.name)]),
                network_mode: Some("none".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|e| Error::engine(format!("cannot create the transfer container: {e}")))?;
        Ok(ContainerGuard::new(self.docker.clone(), created.id))
    }
}

impl Drop for SourceVolume {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // Dropped without `remove` (an error path, a cancelled future).
        let name = std::mem::take(&mut self.name);
        super::docker::cleanup_from_drop(move |docker| async move {
            remove_volume(&docker, &name).await
        });
    }
}

async fn remove_volume(docker: &Docker, name: &str) {
    // A volume still in use by a container being removed can take a moment to free.
    for _ in 0..10 {
        match docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => return,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
            // The engine is gone: the labelled volume is left for `kbuild clean`.
            Err(_) => return,
        }
    }
}

fn labels(root: &Path) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_SOURCE.to_string(), root.display().to_string()),
        (LABEL_TRANSFER.to_string(), "source".to_string()),
    ])
}

fn short_hash(root: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(root.display().to_string().as_bytes());
    hex::encode(&digest[..4])
}

/// Writes the tree at `root` as a tar stream into `tx`: top entry `kubernetes/` (the mount
/// point), entries sorted, owned by uid:gid, writable by that owner, nothing for others to
/// write; symbolic links kept as links, special files left out.
/// How the source archive maps onto the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Docker: unpacked into the mount point's parent, with the mount point as top entry.
    MountPointEntry,
    /// Podman: unpacked into the mount point. Its owner stays root, so the archive also
    /// holds an empty `_output`, owned by the build user, for the build to write into.
    IntoMount,
}

fn write_tree_tar(
    root: &Path,
    uid: u32,
    gid: u32,
    layout: Layout,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> Result<u64> {
    let top = match layout {
        Layout::MountPointEntry => Path::new(CONTAINER_SRC)
            .file_name()
            .expect("CONTAINER_SRC has a name")
            .to_owned(),
        Layout::IntoMount => std::ffi::OsString::from("."),
    };
    let sink = ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
        sent: 0,
    };
    let mut builder = tar::Builder::new(sink);
    builder.follow_symlinks(false);
    let header = |kind: tar::EntryType, mode: u32, size: u64, mtime: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        h.set_mtime(mtime);
        h
    };
    let io = |path: &Path, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::engine("the engine stopped accepting the source upload")
        } else {
            Error::io("cannot read", path, e)
        }
    };
    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0);
    builder
        .append_data(&mut h, Path::new(&top), std::io::empty())
        .map_err(|e| io(root, e))?;
    if layout == Layout::IntoMount {
        let mut h = header(tar::EntryType::Directory, 0o755, 0, 0);
        builder
            .append_data(&mut h, Path::new("_output"), std::io::empty())
            .map_err(|e| io(root, e))?;
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| io(&dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| io(&dir, e))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            if rel.as_os_str().is_empty() && EXCLUDED.iter().any(|x| name == *x) {
                continue;
            }
            let path = dir.join(&name);
            let entry_rel = rel.join(&name);
            let in_tar = Path::new(&top).join(&entry_rel);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            use std::os::unix::fs::PermissionsExt;
            let perm = meta.permissions().mode() & 0o777;
            let kind = meta.file_type();
            if kind.is_dir() {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
                builder
                    .append_data(&mut h, &in_tar, std::io::empty())
                    .map_err(|e| io(&path, e))?;
                subdirs.push(entry_rel);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
                builder
                    .append_link(&mut h, &in_tar, &target)
                    .map_err(|e| io(&path, e))?;
            } else if kind.is_file() {
                let mode = (perm | 0o600) & 0o755;
                let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
                let mut h = header(tar::EntryType::Regular, mode, meta.len(), mtime);
                builder
                    .append_data(&mut h, &in_tar, file)
                    .map_err(|e| io(&path, e))?;
            }
            // Sockets, FIFOs and devices have no place in a source tree: left out.
        }
        // Depth-first in sorted order.
        stack.extend(subdirs.into_iter().rev());
    }
    let mut sink = builder.into_inner().map_err(|e| io(root, e))?;
    sink.flush().map_err(|e| io(root, e))?;
    Ok(sink.sent)
}

/// A `Write` that sends fixed-size chunks into a channel (from a blocking thread).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    sent: u64,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A `Read` over chunks received from a channel (on a blocking thread).
struct ChannelReader<'a> {
    rx: &'a mut tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChannelReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A directory removed when dropped: where downloaded outputs wait to be installed.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<parent>/.transfer-<pid>.kbuild-tmp`, emptied first.
    pub fn new(parent: &Path) -> Result<TempDir> {
        let path = parent.join(format!(".transfer-{}.kbuild-tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_endpoints_copy_local_ones_bind() {
        assert_eq!(choose(None, "unix:///var/run/docker.sock"), Transfer::Bind);
        assert_eq!(choose(None, "tcp://10.0.0.2:2375"), Transfer::Copy);
        assert_eq!(choose(None, "ssh://builder@host"), Transfer::Copy);
        assert_eq!(
            choose(Some(Transfer::Copy), "unix:///var/run/docker.sock"),
            Transfer::Copy
        );
        assert_eq!(
            choose(Some(Transfer::Bind), "tcp://127.0.0.1:2375"),
            Transfer::Bind
        );
    }

    /// The entry names of `dir`'s source archive in `layout`, each checked to be owned by
    /// the build user (uid 1234, gid 5678).
    fn entry_names(dir: &std::path::Path, layout: Layout) -> Vec<String> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        write_tree_tar(dir, 1234, 5678, layout, tx).unwrap();
        let mut bytes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            bytes.extend_from_slice(&chunk);
        }
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.header().uid().unwrap(), 1234);
            assert_eq!(entry.header().gid().unwrap(), 5678);
            names.push(entry.path().unwrap().display().to_string());
        }
        names
    }

    #[test]
    fn the_source_archive_is_owned_by_the_build_user_and_excludes_git_and_outputs() {
        let dir = std::env::temp_dir().join(format!("kbuild-srctar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in [".git", "_output/bin", "cmd/kubectl"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join(".git/HEAD"), "x").unwrap();
        std::fs::write(dir.join("_output/bin/old"), "x").unwrap();
        std::fs::write(dir.join("cmd/kubectl/main.go"), "package main").unwrap();
        std::os::unix::fs::symlink("cmd", dir.join("link")).unwrap();
        let names = entry_names(&dir, Layout::MountPointEntry);
        assert_eq!(
            names,
            [
                "kubernetes",
                "kubernetes/cmd",
                "kubernetes/link",
                "kubernetes/cmd/kubectl",
                "kubernetes/cmd/kubectl/main.go"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn for_podman_the_archive_unpacks_into_the_mount_with_a_writable_output_dir() {
        let dir = std::env::temp_dir().join(format!("kbuild-srctar-pm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("_output/bin")).unwrap();
        std::fs::write(dir.join("_output/bin/old"), "x").unwrap();
        std::fs::write(dir.join("Makefile"), "all:").unwrap();
        let names = entry_names(&dir, Layout::IntoMount);
        assert_eq!(names, [".", "_output", "Makefile"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
