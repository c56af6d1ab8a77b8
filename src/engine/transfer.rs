//! Copy transfer, for engines that cannot see the user's files (DOCKER_HOST tcp:// or
//! ssh://, or `--transfer copy`): the tree is synced into a labelled volume that stays on
//! the engine between runs (`sync` uploads only what changed), the build container mounts
//! that volume where a bind mount would be, and the outputs come back down through the API
//! as a tar stream, extracted safely.
//!
//! Both directions go through a helper container that is created (never started) with the
//! volume mounted: the engine's archive endpoints work on created containers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, DownloadFromContainerOptions};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;

use super::docker::DockerEngine;
use super::guard::ContainerGuard;
use super::listing::{Entry, Kind};
use super::{CONTAINER_SRC, LABEL_MANAGED, LABEL_SOURCE};
use crate::error::{Error, Result};
use crate::signals::Interrupt;

/// Marks source volumes, so `kbuild clean` can tell them from caches.
pub const LABEL_TRANSFER: &str = "io.kbuild.transfer";
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

/// The tree's copy on the engine: a labelled volume, kept between runs (`kbuild clean`
/// removes it).
pub struct SourceVolume {
    docker: Docker,
    pub name: String,
    image: String,
    root: PathBuf,
}

impl SourceVolume {
    /// The volume `name` holding the tree at `root`; helper containers run `image`.
    pub fn new(engine: &DockerEngine, name: &str, image: &str, root: &Path) -> SourceVolume {
        SourceVolume {
            docker: engine.docker.clone(),
            name: name.to_string(),
            image: image.to_string(),
            root: root.to_path_buf(),
        }
    }

    /// Downloads `<CONTAINER_SRC>/<subpath>` (a directory) from the volume and extracts it
    /// safely into `dest`, which then holds the directory's contents.
    pub async fn download(&self, subpath: &str, dest: &Path, interrupt: &Interrupt) -> Result<()> {
        let helper = self.helper(vec!["true".to_string()]).await?;
        let from = format!("{CONTAINER_SRC}/{subpath}/.");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let target = dest.to_path_buf();
        let extractor = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx: &mut rx,
                current: Bytes::new(),
            };
            crate::engine::extract::extract(reader, &target)
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

    /// A created container running `cmd` as root, with the volume mounted at CONTAINER_SRC
    /// and no network. Archive transfers need it only created; removals start it.
    pub(super) async fn helper(&self, cmd: Vec<String>) -> Result<ContainerGuard> {
        let mut labels = labels(&self.root);
        labels.extend(super::owner::run_labels());
        labels.insert("io.kbuild.job".to_string(), "transfer".to_string());
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(cmd),
            user: Some("0:0".to_string()),
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

/// The labels of a source volume and of its helper containers.
pub(super) fn labels(root: &Path) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_SOURCE.to_string(), root.display().to_string()),
        (LABEL_TRANSFER.to_string(), "source".to_string()),
    ])
}

/// How the source archive maps onto the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// Docker: unpacked into the mount point's parent, with the mount point as top entry
    /// (so its owner becomes the build user).
    MountPointEntry,
    /// Podman: unpacked into the mount point (one aimed at the mount point's parent lands in
    /// the helper container's own filesystem). Its owner stays root, so the archive also
    /// holds an empty `_output`, owned by the build user, for the build to write into.
    IntoMount,
}

impl Layout {
    pub(super) fn for_engine(engine: &DockerEngine) -> Layout {
        if engine.info.product == "Podman" {
            Layout::IntoMount
        } else {
            Layout::MountPointEntry
        }
    }

    /// Where in the helper container the archive is unpacked.
    pub(super) fn upload_path(self) -> String {
        match self {
            Layout::MountPointEntry => Path::new(CONTAINER_SRC)
                .parent()
                .expect("CONTAINER_SRC has a parent")
                .display()
                .to_string(),
            Layout::IntoMount => CONTAINER_SRC.to_string(),
        }
    }
}

/// Writes the `entries` (paths relative to `root`, parents before children, as a listing
/// describes them) as a tar stream into `tx`, after the top entry (`kubernetes/`, the mount
/// point, or `.` and `_output` for podman): owned by uid:gid, writable by that owner,
/// nothing for others to write; links kept as links. Returns the bytes sent.
pub(super) fn write_entries_tar(
    root: &Path,
    entries: &[(String, Entry)],
    (uid, gid): (u32, u32),
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
    for (rel, entry) in entries {
        let path = root.join(rel);
        let in_tar = Path::new(&top).join(rel);
        let mtime = entry.mtime_ns / 1_000_000_000;
        match entry.kind {
            Kind::Dir => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
                builder
                    .append_data(&mut h, &in_tar, std::io::empty())
                    .map_err(|e| io(&path, e))?;
            }
            Kind::Link => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
                builder
                    .append_link(&mut h, &in_tar, &entry.target)
                    .map_err(|e| io(&path, e))?;
            }
            Kind::File => {
                let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
                // The size the listing records, whatever the file does meanwhile: a file
                // that shrank fails the sync instead of corrupting the archive.
                let mut content = ExactReader {
                    inner: file.take(entry.size),
                    left: entry.size,
                };
                let mut h = header(tar::EntryType::Regular, entry.mode, entry.size, mtime);
                builder
                    .append_data(&mut h, &in_tar, &mut content)
                    .map_err(|e| io(&path, e))?;
            }
        }
    }
    let mut sink = builder.into_inner().map_err(|e| io(root, e))?;
    sink.flush().map_err(|e| io(root, e))?;
    Ok(sink.sent)
}

/// Reads exactly `left` bytes, or fails: a file changed while it was being archived.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 && self.left > 0 && !out.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being uploaded; run again",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `Write` that sends fixed-size chunks into a channel (from a blocking thread).
pub(super) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    sent: u64,
}

impl ChannelWriter {
    /// A writer into `tx` (also used by the Go cache's upload).
    pub(super) fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            sent: 0,
        }
    }
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
pub(super) struct ChannelReader<'a> {
    rx: &'a mut tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl<'a> ChannelReader<'a> {
    /// A reader of what arrives on `rx` (also used by the Go cache's download).
    pub(super) fn new(rx: &'a mut tokio::sync::mpsc::Receiver<Bytes>) -> ChannelReader<'a> {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
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
        let listing = crate::engine::listing::scan(dir, None).unwrap().listing;
        let entries: Vec<_> = listing.entries.into_iter().collect();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        write_entries_tar(dir, &entries, (1234, 5678), layout, tx).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        for sub in [".git", "_output/bin", "cmd/kubectl"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join(".git/HEAD"), "x").unwrap();
        std::fs::write(dir.join("_output/bin/old"), "x").unwrap();
        std::fs::write(dir.join("cmd/kubectl/main.go"), "package main").unwrap();
        std::os::unix::fs::symlink("cmd", dir.join("link")).unwrap();
        let names = entry_names(dir, Layout::MountPointEntry);
        assert_eq!(
            names,
            [
                "kubernetes",
                "kubernetes/cmd",
                "kubernetes/cmd/kubectl",
                "kubernetes/cmd/kubectl/main.go",
                "kubernetes/link",
            ]
        );
    }

    #[test]
    fn for_podman_the_archive_unpacks_into_the_mount_with_a_writable_output_dir() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::create_dir_all(dir.join("_output/bin")).unwrap();
        std::fs::write(dir.join("_output/bin/old"), "x").unwrap();
        std::fs::write(dir.join("Makefile"), "all:").unwrap();
        let names = entry_names(dir, Layout::IntoMount);
        assert_eq!(names, [".", "_output", "Makefile"]);
    }

    #[test]
    fn a_file_that_shrinks_while_it_is_archived_fails_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![7u8; 4096]).unwrap();
        let listing = crate::engine::listing::scan(dir.path(), None)
            .unwrap()
            .listing;
        std::fs::write(dir.path().join("big"), b"short").unwrap();
        let entries: Vec<_> = listing.entries.into_iter().collect();
        let (tx, _rx) = tokio::sync::mpsc::channel(1024);
        let err = write_entries_tar(dir.path(), &entries, (0, 0), Layout::MountPointEntry, tx)
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
