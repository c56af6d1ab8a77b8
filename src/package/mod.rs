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
//! Nothing here talks to an engine; everything writes through `outdir::AtomicFile`, so an
//! artifact either exists complete or not at all. The SBOM and provenance come from
//! `attest`, which this layer calls (attest never calls back up).

pub mod registry;

pub mod bintree;
pub mod checksum;
pub mod extension;
pub mod extimage;
pub mod extmeta;
pub mod imagearchive;
pub mod manifest;
pub mod ociimage;
pub mod pgzip;
pub mod release;
pub mod serverimage;
pub mod srctar;
pub mod staged;
pub mod tarball;
pub mod verify;
pub mod verify_images;
pub mod worker;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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
