//! Packaging what was built: upstream-named, byte-for-byte reproducible release tarballs
//! with checksums and a manifest, the Docker Desktop extension layout, and verification.
//!
//! - `tarball`: the deterministic tar.gz writer (sorted entries, fixed owners, modes and
//!   times, pinned gzip), hashing while it writes;
//! - `pgzip`: one gzip stream compressed on every core, pigz-style, reproducibly;
//! - `srctar`: kubernetes-src.tar.gz (the tree at its commit, or as it is on disk);
//! - `staged`: kubernetes-manifests.tar.gz and kubernetes.tar.gz, from the tree's own files;
//! - `checksum`: one-pass hashing, sidecars, SHA256SUMS/SHA512SUMS;
//! - `manifest`: manifest.json;
//! - `bintree`: reading the bin/<os>/<arch>/ tree `kbuild package` is given;
//! - `release`: release-tars from a bin/<os>/<arch>/ tree;
//! - `extension`: extension/<image arch>/<os>/<binary> and its metadata fragment;
//! - `extimage`, `extmeta`, `ociimage`: the extension image as an OCI layout (no build step);
//! - `verify`: re-hashing a directory against every claim made about it;
//! - `worker`: running that work on a blocking thread, with progress and Ctrl-C.
//!
//! Nothing here talks to an engine; everything writes through `AtomicFile`, so an
//! artifact either exists complete or not at all.

pub mod bintree;
pub mod checksum;
pub mod extension;
pub mod extimage;
pub mod extmeta;
pub mod manifest;
pub mod ociimage;
pub mod pgzip;
pub mod release;
pub mod srctar;
pub mod staged;
pub mod tarball;
pub mod verify;
pub mod worker;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The suffix of files being written; renamed to their final name when complete.
pub const TMP_SUFFIX: &str = ".kbuild-tmp";

/// A file written under `<name>.kbuild-tmp` and renamed to `<name>` by `commit`;
/// dropped without a commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(TMP_SUFFIX);
        let tmp = PathBuf::from(tmp);
        // A new file that no planted link or leftover can redirect (O_EXCL, O_NOFOLLOW).
        let file = crate::outdir::create_file(&tmp, 0o644)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// Flushes, syncs and renames the file to its final name.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("not committed twice");
        let done = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&self.tmp, &self.path));
        done.map_err(|e| Error::io("cannot write", &self.path, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Shared between packaging threads and the async side: a stop flag the threads check
/// between entries and chunks (set on Ctrl-C/SIGTERM, so that they stop, drop their
/// temporary files and return), and a count of input bytes packaged so far, for progress.
#[derive(Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
}

impl Control {
    pub fn cancel(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn check(&self) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "packaging stopped",
            ))
        } else {
            Ok(())
        }
    }

    pub fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Input bytes packaged so far.
    pub fn progress(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        {
            let mut f = AtomicFile::create(&path).unwrap();
            f.write_all(b"half").unwrap();
            assert!(!path.exists());
        }
        assert!(!path.exists(), "dropped without commit");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp removed"
        );
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_planted_at_the_temporary_name_is_refused_and_its_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("SHA256SUMS.sig");
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(TMP_SUFFIX);
        std::os::unix::fs::symlink(&victim, PathBuf::from(tmp)).unwrap();
        let err = AtomicFile::create(&path).err().expect("a link is refused");
        assert_eq!(err.exit_code(), 8, "{}", err.message);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
}
