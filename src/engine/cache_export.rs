//! `kbuild cache export`: the cache volume's entries, read through the engine's archive
//! endpoint, written to a directory (incremental: only entries it lacks are written, and
//! the manifest is replaced last, so an interrupted export leaves the old one valid) or to
//! an uncompressed tarball (CI caches compress for themselves).
//!
//! `--max-size` is kbuild's own policy, not Go's: the most recently used entries (by mtime,
//! which Go refreshes on use) are kept up to the size, the rest left out.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bollard::query_parameters::DownloadFromContainerOptions;
use bytes::Bytes;
use futures_util::StreamExt;

use super::cache::MOUNT;
use super::cache_helper::{Listed, Survey};
use super::cache_manifest::{self as manifest, CacheKey, Entry, HashingReader, Manifest, MANIFEST};
use super::docker::DockerEngine;
use super::transfer::ChannelReader;
use crate::error::{Error, Result};
use crate::signals::Interrupt;

/// What an export did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub entries: usize,
    pub bytes: u64,
    /// Entries written by this export (the others were there already).
    pub written: usize,
    /// Entries left out by `--max-size`.
    pub trimmed: usize,
}

/// Writes the cache `survey` found in the volume to `target` under `key`.
pub async fn export(
    engine: &DockerEngine,
    survey: &Survey,
    key: &CacheKey,
    target: &Path,
    max_size: Option<u64>,
    interrupt: &Interrupt,
) -> Result<Exported> {
    let tarball = manifest::is_tarball(target);
    let result = export_to(engine, survey, key, target, tarball, max_size, interrupt).await;
    if result.is_err() && tarball {
        let _ = std::fs::remove_file(partial_name(target));
    }
    result
}

async fn export_to(
    engine: &DockerEngine,
    survey: &Survey,
    key: &CacheKey,
    target: &Path,
    tarball: bool,
    max_size: Option<u64>,
    interrupt: &Interrupt,
) -> Result<Exported> {
    // Every path the directory's previous export listed, whatever its key: those no longer
    // wanted go once the new manifest is in place (nothing else in the directory is touched).
    let previous: Vec<String> = match tarball {
        true => Vec::new(),
        false => read_manifest(target)
            .map(|m| m.entries.into_iter().map(|e| e.path).collect())
            .unwrap_or_default(),
    };
    // What the directory already holds (under the same key) counts as exported.
    let old = if tarball {
        BTreeMap::new()
    } else {
        existing(target, key)
    };
    let mut candidates: BTreeMap<String, Listed> = survey
        .entries
        .iter()
        .map(|l| (l.path.clone(), l.clone()))
        .collect();
    for e in old.values() {
        let newer = candidates.get(&e.path).is_some_and(|l| l.mtime >= e.mtime);
        if !newer {
            let listed = Listed {
                path: e.path.clone(),
                size: e.size,
                mtime: e.mtime,
            };
            candidates.insert(e.path.clone(), listed);
        }
    }
    let (chosen, trimmed) = cap(candidates.into_values().collect(), max_size);
    let fetch: HashSet<String> = chosen
        .iter()
        .filter(|l| tarball || !old.contains_key(&l.path))
        .map(|l| l.path.clone())
        .collect();
    let sink = if tarball {
        Sink::tar(target)?
    } else {
        std::fs::create_dir_all(target).map_err(|e| Error::io("cannot create", target, e))?;
        Sink::Dir(target.to_path_buf())
    };
    let mtimes: BTreeMap<String, u64> = chosen.iter().map(|l| (l.path.clone(), l.mtime)).collect();
    let (fetched, sink) = if fetch.is_empty() {
        (BTreeMap::new(), sink)
    } else {
        download(engine, survey, fetch, mtimes.clone(), sink, interrupt).await?
    };
    let mut entries = Vec::new();
    for l in &chosen {
        if let Some(e) = fetched.get(&l.path) {
            entries.push(e.clone());
        } else if let Some(e) = old.get(&l.path) {
            let mut e = e.clone();
            if l.mtime > e.mtime {
                e.mtime = l.mtime;
                set_mtime(&target.join(&e.path), l.mtime);
            }
            entries.push(e);
        }
        // An entry that went from the volume meanwhile is left out.
    }
    let manifest = Manifest {
        format: manifest::FORMAT,
        key: key.clone(),
        entries,
    };
    sink.finish(&manifest)?;
    if !tarball {
        // Entries of the old export that are no longer wanted (trimmed, or another key).
        let kept: HashSet<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        for path in previous.iter().filter(|p| !kept.contains(p.as_str())) {
            let _ = std::fs::remove_file(target.join(path));
        }
    }
    Ok(Exported {
        entries: manifest.entries.len(),
        bytes: manifest.total_size(),
        written: fetched.len(),
        trimmed,
    })
}

/// The most recently used entries up to `max` bytes, and how many were left out.
fn cap(mut entries: Vec<Listed>, max: Option<u64>) -> (Vec<Listed>, usize) {
    let Some(max) = max else {
        return (entries, 0);
    };
    entries.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| a.path.cmp(&b.path)));
    let mut total = 0u64;
    let keep = entries
        .iter()
        .take_while(|l| {
            total += l.size;
            total <= max
        })
        .count();
    let trimmed = entries.len() - keep;
    entries.truncate(keep);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    (entries, trimmed)
}

/// The entries of an earlier export to `dir` under `key` that are still there unchanged
/// in size (their content was checked when they were written).
fn existing(dir: &Path, key: &CacheKey) -> BTreeMap<String, Entry> {
    let Some(old) = read_manifest(dir) else {
        return BTreeMap::new();
    };
    if &old.key != key {
        return BTreeMap::new();
    }
    old.entries
        .into_iter()
        .filter(|e| {
            std::fs::symlink_metadata(dir.join(&e.path))
                .is_ok_and(|m| m.is_file() && m.len() == e.size)
        })
        .map(|e| (e.path.clone(), e))
        .collect()
}

fn read_manifest(dir: &Path) -> Option<Manifest> {
    let bytes = std::fs::read(dir.join(MANIFEST)).ok()?;
    serde_json::from_slice::<Manifest>(&bytes)
        .ok()
        .filter(|m| m.entries.iter().all(|e| manifest::valid_path(&e.path)))
}

fn set_mtime(path: &Path, mtime: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(time);
    }
}

/// Where exported entries go.
enum Sink {
    Dir(PathBuf),
    Tar {
        target: PathBuf,
        partial: PathBuf,
        builder: tar::Builder<std::io::BufWriter<std::fs::File>>,
    },
}

impl Sink {
    fn tar(target: &Path) -> Result<Sink> {
        let partial = partial_name(target);
        let file =
            std::fs::File::create(&partial).map_err(|e| Error::io("cannot write", &partial, e))?;
        Ok(Sink::Tar {
            target: target.to_path_buf(),
            partial,
            builder: tar::Builder::new(std::io::BufWriter::new(file)),
        })
    }

    /// Writes one entry of `size` bytes from `data`; returns its sha256.
    fn put(
        &mut self,
        path: &str,
        size: u64,
        mtime: u64,
        mode: u32,
        data: impl Read,
    ) -> Result<String> {
        let mut hashing = HashingReader::new(data.take(size));
        match self {
            Sink::Dir(dir) => {
                let rel = Path::new(path);
                super::extract::check_no_symlink_ancestors(dir, rel, rel)?;
                let dest = dir.join(rel);
                let parent = dest.parent().expect("an entry has a parent");
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create", parent, e))?;
                let tmp = partial_name(&dest);
                let mut file =
                    std::fs::File::create(&tmp).map_err(|e| Error::io("cannot write", &tmp, e))?;
                let copied = std::io::copy(&mut hashing, &mut file)
                    .map_err(|e| Error::io("cannot write", &tmp, e))?;
                if copied != size {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(Error::engine(format!("{path} came short from the engine")));
                }
                file.flush()
                    .map_err(|e| Error::io("cannot write", &tmp, e))?;
                let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                file.set_modified(time)
                    .map_err(|e| Error::io("cannot write", &tmp, e))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = file.set_permissions(std::fs::Permissions::from_mode(host_mode(mode)));
                std::fs::rename(&tmp, &dest).map_err(|e| Error::io("cannot write", &dest, e))?;
            }
            Sink::Tar {
                builder, partial, ..
            } => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                h.set_mtime(mtime);
                h.set_mode(host_mode(mode));
                builder
                    .append_data(&mut h, path, &mut hashing)
                    .map_err(|e| Error::io("cannot write", partial, e))?;
            }
        }
        Ok(hashing.finish())
    }

    /// Writes the manifest last, then puts the export in place.
    fn finish(self, manifest: &Manifest) -> Result<()> {
        let bytes = manifest.to_bytes();
        match self {
            Sink::Dir(dir) => {
                let path = dir.join(MANIFEST);
                let tmp = partial_name(&path);
                std::fs::write(&tmp, &bytes).map_err(|e| Error::io("cannot write", &tmp, e))?;
                std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write", &path, e))
            }
            Sink::Tar {
                target,
                partial,
                mut builder,
            } => {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                let io = |e| Error::io("cannot write", &partial, e);
                builder
                    .append_data(&mut h, MANIFEST, &bytes[..])
                    .map_err(io)?;
                let mut w = builder.into_inner().map_err(io)?;
                w.flush().map_err(io)?;
                std::fs::rename(&partial, &target)
                    .map_err(|e| Error::io("cannot write", &target, e))
            }
        }
    }
}

/// Files keep only whether they are executable: owners differ between machines.
fn host_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".kbuild-partial-{}", std::process::id()));
    path.with_file_name(name)
}

/// Streams the volume's cache directories from the engine and writes the `fetch` entries
/// into `sink`; returns them with their digests.
async fn download(
    engine: &DockerEngine,
    survey: &Survey,
    fetch: HashSet<String>,
    mtimes: BTreeMap<String, u64>,
    mut sink: Sink,
    interrupt: &Interrupt,
) -> Result<(BTreeMap<String, Entry>, Sink)> {
    let tops: Vec<&str> = manifest::TOPS
        .iter()
        .copied()
        .filter(|t| fetch.iter().any(|p| p.starts_with(&format!("{t}/"))))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader::new(&mut rx);
        let mut archive = tar::Archive::new(reader);
        // One tar stream per cache directory, one after the other.
        archive.set_ignore_zeros(true);
        let mut got = BTreeMap::new();
        let unreadable = |e: std::io::Error| {
            Error::engine(format!(
                "the engine's archive of the Go cache cannot be read: {e}"
            ))
        };
        for entry in archive.entries().map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()
                .map_err(unreadable)?
                .to_string_lossy()
                .into_owned();
            if !fetch.contains(&path) {
                continue;
            }
            let size = entry.header().size().map_err(unreadable)?;
            let mode = entry.header().mode().unwrap_or(0o644);
            let mtime = mtimes.get(&path).copied().unwrap_or(0);
            let sha256 = sink.put(&path, size, mtime, mode, entry)?;
            let e = Entry {
                path: path.clone(),
                size,
                mtime,
                mode: host_mode(mode),
                sha256,
            };
            got.insert(path, e);
        }
        Ok::<_, Error>((got, sink))
    });
    let pump = async {
        for top in tops {
            let mut stream = engine.docker.download_from_container(
                &survey.helper.id,
                Some(DownloadFromContainerOptions {
                    path: format!("{MOUNT}/{top}"),
                }),
            );
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::engine(format!("lost the engine while reading the Go cache: {e}"))
                })?;
                if tx.send(chunk).await.is_err() {
                    return Ok(()); // the writer stopped: its error says why
                }
            }
        }
        Ok::<(), Error>(())
    };
    let pumped = tokio::select! {
        r = pump => r,
        e = interrupt.wait() => Err(e),
    };
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::internal(format!("the cache writer failed: {e}")))?;
    pumped?;
    written
}
