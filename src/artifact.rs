//! What kbuild records of a file it wrote, shared by the layers that write and describe
//! artifacts (package, attest): its digests, computed in the same pass as the bytes are
//! written, and the records manifest.json and the attestations are made of. A leaf module:
//! it uses no other part of kbuild.

use std::io::{self, Read, Write};
#[cfg(test)]
use std::path::Path;

use sha2::{Digest, Sha256, Sha512};

/// The two digests kbuild publishes for every artifact, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digests {
    pub sha256: String,
    pub sha512: String,
}

/// A writer that feeds everything written through it to SHA-256 and SHA-512 while
/// passing it on, and counts the bytes (digest 0.11 has no `io::Write` impl of its own).
/// sha2 uses the CPU's SHA extensions (SHA-256) and AVX2 (SHA-512) when it has them,
/// detected at run time: both together still run several times faster than deflate.
pub struct HashingWriter<W> {
    inner: W,
    sha256: Sha256,
    sha512: Sha512,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            sha256: Sha256::new(),
            sha512: Sha512::new(),
            written: 0,
        }
    }

    /// The inner writer, the number of bytes written and their digests.
    pub fn finish(self) -> (W, u64, Digests) {
        let digests = Digests {
            sha256: hex::encode(self.sha256.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
        };
        (self.inner, self.written, digests)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer accepted, so a short write stays consistent.
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.sha512.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes a file in one streaming pass; returns its size and digests.
#[cfg(test)]
pub fn hash_file(path: &Path) -> io::Result<(u64, Digests)> {
    hash_reader(std::fs::File::open(path)?)
}

/// Hashes everything `file` yields in one streaming pass; returns its size and digests.
pub fn hash_reader(mut file: impl Read) -> io::Result<(u64, Digests)> {
    let mut hasher = HashingWriter::new(io::sink());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.write_all(&buf[..n])?;
    }
    let (_, size, digests) = hasher.finish();
    Ok((size, digests))
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRecord {
    /// The origin remote's URL, else the tree's path.
    pub repo: Option<String>,
    /// The ref asked for, else the branch checked out (None when detached).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    pub git_version: String,
    /// clean, dirty or archive.
    pub tree_state: String,
    pub source_date_epoch: u64,
    /// What kubernetes-src.tar.gz holds: commit, working-tree or directory.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub src_content: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toolchain {
    /// The image the binaries were built in; None when kbuild packaged binaries it did not build.
    pub builder_image: Option<String>,
    pub builder_image_id: Option<String>,
    /// The Go version the binaries were linked with.
    pub go_version: Option<String>,
    /// Where `goVersion` was read from.
    pub go_version_from: String,
    /// The Go version the tree pins in `.go-version`.
    pub go_version_pinned: Option<String>,
    pub compressor: String,
    pub gzip_level: u32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Relative to the manifest's directory.
    pub file: String,
    /// src, client, node, server, manifests, final, or extension-binary.
    pub kind: String,
    pub components: Vec<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub sha512: String,
    /// Checksum files beside it (`<file>.sha256`, `<file>.sha512`).
    #[serde(default)]
    pub sidecars: Vec<String>,
    /// Entries in the tarball.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entry_count: Option<usize>,
    /// Path, type and mode of every entry (the source tarball's are counted, not listed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contents: Option<Vec<Listed>>,
    /// The file's mode on disk, for files that are not tarballs (extension binaries).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<String>,
}

/// One entry as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listed {
    /// As GNU tar lists it: directories end with `/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Octal, e.g. "0755".
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, size, d) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(size, 3);
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.sha512.starts_with("ddaf35a193617aba"));
        assert_eq!(d.sha512.len(), 128);
    }
}
