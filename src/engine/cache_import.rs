//! `kbuild cache import` and `--cache-from`: a verified archive (`cache_manifest::verify`)
//! put into the cache volume as a union. GOCACHE is content-addressed, so an entry the
//! volume has is never overwritten and none is deleted.
//!
//! The entries the volume lacks are first written, re-hashed, into one tar file on the
//! host (an archive changed since it was checked stops here, before the engine is touched).
//! That file is uploaded into a staging directory inside the volume as a single file, and a
//! marker comes last: the engine's archive endpoint unpacks one large file far faster than
//! a thousand small ones. Only when the marker arrived does the helper unpack it there
//! (owned by the build user, since uids differ between CI machines, with the entries'
//! mtimes, since Go trims by age) and link the entries in (`cp -al --no-clobber`: hard
//! links within the volume, so no byte is copied twice, and never over an existing entry);
//! otherwise it removes the staging directory, so a failed upload changes nothing. cp's
//! exit status is not trusted for the skips (some coreutils releases report a skipped file
//! as a failure; 9.1 and 9.7 do not): every staged entry is checked to be in the volume
//! afterwards instead.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use bollard::query_parameters::UploadToContainerOptions;
use bytes::Bytes;

use super::cache::MOUNT;
use super::cache_helper;
use super::cache_manifest::{self as manifest, Entry, HashingReader, Verified};
use super::docker::DockerEngine;
use super::transfer::ChannelWriter;
use crate::error::{Error, Result};
use crate::signals::Interrupt;

const MARKER: &str = ".complete";
const UPLOAD: &str = "entries.tar";

/// Puts the entries of `verified` that are not in `present` into `volume`, owned by
/// `user`; returns how many were added.
pub async fn import(
    engine: &DockerEngine,
    image: &str,
    volume: &str,
    user: (u32, u32),
    verified: &Verified,
    present: &HashSet<String>,
    interrupt: &Interrupt,
) -> Result<usize> {
    let add: Vec<Entry> = verified
        .manifest
        .entries
        .iter()
        .filter(|e| !present.contains(&e.path))
        .cloned()
        .collect();
    if add.is_empty() {
        return Ok(0);
    }
    let staging = format!(".kbuild-import-{}", super::owner::run_id());
    let tops = manifest::TOPS.join(" ");
    let script = format!(
        "set -euo pipefail; s={MOUNT}/{staging}; \
         if [ ! -e \"$s/{MARKER}\" ]; then rm -rf \"$s\"; echo 'the upload did not finish' >&2; exit 3; fi; \
         cd \"$s\"; tar -xf {UPLOAD} --numeric-owner --same-owner -p; rm -f {UPLOAD} {MARKER}; \
         tops=(); for d in {tops}; do if [ -e \"$d\" ]; then tops+=(\"$d\"); fi; done; \
         cp -al --no-clobber \"${{tops[@]}}\" {MOUNT}/ 2>/tmp/cp.err || true; \
         find \"${{tops[@]}}\" -type f -print0 | while IFS= read -r -d '' f; do \
         if [ ! -e \"{MOUNT}/$f\" ]; then echo \"$f was not merged\" >&2; cat /tmp/cp.err >&2; cd /; rm -rf \"$s\"; exit 4; fi; done; \
         cd /; rm -rf \"$s\""
    );
    let helper = cache_helper::helper(engine, image, volume, script, false).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let prefix = staging.clone();
    let origin = verified.origin.clone();
    let entries = add.clone();
    let writer = tokio::task::spawn_blocking(move || {
        write_outer(&origin, &entries, user, &prefix, ChannelWriter::new(tx))
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let upload = engine.docker.upload_to_container(
        &helper.id,
        Some(UploadToContainerOptions {
            path: MOUNT.to_string(),
            ..Default::default()
        }),
        bollard::body_stream(body),
    );
    let uploaded = tokio::select! {
        r = upload => r.map_err(|e| Error::engine(format!("cannot upload the Go cache: {e}"))),
        e = interrupt.wait() => Err(e),
    };
    let written = writer
        .await
        .map_err(|e| Error::internal(format!("the cache upload writer failed: {e}")))?;
    // The helper runs either way: it moves a complete upload in, or removes a partial one.
    let merged = cache_helper::run(engine, &helper, "importing the Go cache").await;
    helper.remove().await;
    written?;
    uploaded?;
    merged?;
    Ok(add.len())
}

/// What the engine receives: the staging directory holding the inner tar as one file, then
/// the marker. The inner tar's size is learned first by writing it with zeros for contents
/// (nothing is read), so it streams straight from the archive, re-hashed on the way.
fn write_outer(
    origin: &Path,
    entries: &[Entry],
    user: (u32, u32),
    prefix: &str,
    sink: ChannelWriter,
) -> Result<()> {
    let io = upload_error(origin);
    let size = write_inner(origin, entries, user, Counted::new(std::io::sink()), true)?.written;
    let mut builder = tar::Builder::new(sink);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h
    };
    let mut h = header(tar::EntryType::Directory, 0o700, 0);
    builder
        .append_data(&mut h, prefix, std::io::empty())
        .map_err(io)?;
    // The inner tar's entry is written by hand: its contents come from a writer.
    let mut h = header(tar::EntryType::Regular, 0o600, size);
    h.set_path(format!("{prefix}/{UPLOAD}")).map_err(io)?;
    h.set_cksum();
    builder.get_mut().write_all(h.as_bytes()).map_err(io)?;
    let written = write_inner(
        origin,
        entries,
        user,
        Counted::new(builder.get_mut()),
        false,
    )?
    .written;
    if written != size {
        return Err(manifest::bad(
            origin,
            "it changed after it was checked".to_string(),
        ));
    }
    let padding = (512 - size % 512) % 512;
    builder
        .get_mut()
        .write_all(&vec![0; padding as usize])
        .map_err(io)?;
    let mut h = header(tar::EntryType::Regular, 0o600, 0);
    builder
        .append_data(&mut h, format!("{prefix}/{MARKER}"), std::io::empty())
        .map_err(io)?;
    let mut sink = builder.into_inner().map_err(io)?;
    sink.flush().map_err(io)?;
    Ok(())
}

/// An I/O error of the upload: the engine's end closed, or the archive unreadable.
fn upload_error(origin: &Path) -> impl Fn(std::io::Error) -> Error + Copy + '_ {
    move |e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => {
            Error::engine("the engine stopped accepting the Go cache upload")
        }
        _ => Error::io("cannot read", origin, e),
    }
}

/// A writer that counts what passes through it.
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Counted<W> {
    fn new(inner: W) -> Counted<W> {
        Counted { inner, written: 0 }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The inner tar of `entries`, owned by the build user, with their mtimes. Each entry's
/// content is hashed again as it is written: an archive changed since it was verified is
/// refused here. With `sizing`, zeros stand in for the contents and nothing is read: the
/// same tar's size (it does not depend on the entries' order).
fn write_inner<W: Write>(
    origin: &Path,
    entries: &[Entry],
    (uid, gid): (u32, u32),
    sink: W,
    sizing: bool,
) -> Result<W> {
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
    let io = upload_error(origin);
    let mut dirs = HashSet::new();
    let mut put = |builder: &mut tar::Builder<W>, e: &Entry, data: &mut dyn Read| {
        let parts: Vec<&str> = e.path.split('/').collect();
        for n in 1..parts.len() {
            let dir = parts[..n].join("/");
            if dirs.insert(dir.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, 0);
                builder
                    .append_data(&mut h, &dir, std::io::empty())
                    .map_err(io)?;
            }
        }
        let mut hashing = HashingReader::new(data.take(e.size));
        let mut h = header(tar::EntryType::Regular, e.mode & 0o755, e.size, e.mtime);
        builder
            .append_data(&mut h, &e.path, &mut hashing)
            .map_err(io)?;
        if !sizing && hashing.finish() != e.sha256 {
            return Err(manifest::bad(
                origin,
                format!("{} changed after it was checked", e.path),
            ));
        }
        Ok(())
    };
    if sizing {
        for e in entries {
            put(&mut builder, e, &mut std::io::repeat(0))?;
        }
    } else if manifest::is_tarball(origin) {
        let wanted: std::collections::HashMap<&str, &Entry> =
            entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let file = std::fs::File::open(origin).map_err(io)?;
        let mut archive = tar::Archive::new(file);
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let path = entry.path().map_err(io)?.to_string_lossy().into_owned();
            if let Some(e) = wanted.get(path.as_str()) {
                put(&mut builder, e, &mut entry)?;
            }
        }
    } else {
        for e in entries {
            let path = origin.join(&e.path);
            let mut file = std::fs::File::open(&path).map_err(io)?;
            put(&mut builder, e, &mut file)?;
        }
    }
    let mut sink = builder.into_inner().map_err(io)?;
    sink.flush().map_err(io)?;
    Ok(sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn entries(dir: &Path) -> Vec<Entry> {
        // One short path, one past the 100 bytes a plain tar header holds, one of odd size.
        let long = format!("pkg/mod/example.com/{}/x.go", "d".repeat(120));
        [
            ("go-build/00/aa-d", 700usize),
            (long.as_str(), 3),
            ("go-build/ff/bb-a", 512),
        ]
        .iter()
        .map(|(path, size)| {
            let data = vec![b'x'; *size];
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &data).unwrap();
            Entry {
                path: path.to_string(),
                size: *size as u64,
                mtime: 1_700_000_000,
                mode: 0o644,
                sha256: hex::encode(Sha256::digest(&data)),
            }
        })
        .collect()
    }

    #[test]
    fn the_sized_inner_tar_is_as_long_as_the_written_one() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries(dir.path());
        let user = (1000, 1000);
        let sized = write_inner(
            dir.path(),
            &entries,
            user,
            Counted::new(std::io::sink()),
            true,
        )
        .unwrap()
        .written;
        let written = write_inner(dir.path(), &entries, user, Vec::new(), false).unwrap();
        assert_eq!(sized, written.len() as u64);
        // And it is a tar of the entries, owned by the build user.
        let mut archive = tar::Archive::new(written.as_slice());
        let files: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type().is_file())
            .map(|e| {
                assert_eq!(e.header().uid().unwrap(), 1000);
                (e.path().unwrap().display().to_string(), e.size())
            })
            .collect();
        let want: Vec<(String, u64)> = entries.iter().map(|e| (e.path.clone(), e.size)).collect();
        assert_eq!(files, want);
    }

    #[test]
    fn an_entry_changed_after_the_check_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries(dir.path());
        std::fs::write(dir.path().join(&entries[0].path), vec![b'y'; 700]).unwrap();
        let err = write_inner(dir.path(), &entries, (0, 0), Vec::new(), false).unwrap_err();
        assert!(
            err.to_string().contains("changed after it was checked"),
            "{err}"
        );
    }
}
