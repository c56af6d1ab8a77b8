//! The portable form of a Go cache volume (`kbuild cache export`): a directory, or an
//! uncompressed tarball, holding `go-build/...` (GOCACHE), `mod/...` (GOMODCACHE, when not
//! empty) and `kbuild-cache.json`, the manifest: the key the cache belongs to and every
//! entry with its size, mtime, mode and sha256.
//!
//! An archive is a supply-chain input (a poisoned entry would be trusted by its key), so it
//! is checked whole before anything reaches a volume: every listed entry present with its
//! digest, nothing else in a tarball, a tarball read to its end (a truncated one fails).
//! In a tarball the manifest comes last, so an export streams straight from the engine.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The manifest's name at the archive's top.
pub const MANIFEST: &str = "kbuild-cache.json";
pub const FORMAT: u32 = 1;
/// The volume's directories that travel (GOCACHE, GOMODCACHE): see `cache::go_env`.
pub const TOPS: &[&str] = &["go-build", "mod"];
/// A manifest larger than this is not one of ours.
const MAX_MANIFEST: u64 = 256 << 20;

/// What a cache belongs to. Go's cache keys already include the toolchain, but a cache made
/// by another image may hold a different Go or C toolchain's outputs under the same inputs
/// (cgo), so kbuild matches the image itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The image's repository digest, or its config digest: the same on every machine and
    /// image store (the engine's image id is not: containerd stores give the manifest's).
    pub image: String,
    /// `repository digest` or `config digest`.
    pub image_digest_of: String,
    /// `go env GOVERSION` in the image.
    pub go: String,
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) with {}",
            self.image, self.image_digest_of, self.go
        )
    }
}

/// One cache file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the volume's mount point: `go-build/ab/abcd...-d`.
    pub path: String,
    pub size: u64,
    /// Seconds since the epoch: Go trims entries unused for 5 days by their mtime.
    pub mtime: u64,
    pub mode: u32,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub key: CacheKey,
    /// Sorted by path.
    pub entries: Vec<Entry>,
}

impl Manifest {
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        bytes.push(b'\n');
        bytes
    }

    fn parse(bytes: &[u8], origin: &Path) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            bad(
                origin,
                format!("its {MANIFEST} is not a kbuild cache manifest: {e}"),
            )
        })?;
        if manifest.format != FORMAT {
            return Err(bad(
                origin,
                format!(
                    "its {MANIFEST} has format {}, this kbuild reads {FORMAT}",
                    manifest.format
                ),
            ));
        }
        for e in &manifest.entries {
            if !valid_path(&e.path) {
                return Err(bad(
                    origin,
                    format!("it lists an entry at an unsafe path: {:?}", e.path),
                ));
            }
        }
        Ok(manifest)
    }
}

/// Whether `path` may be a cache entry: relative, under one of TOPS, no `..`, nothing a
/// shell or a line-based listing could misread.
pub fn valid_path(path: &str) -> bool {
    let mut parts = path.split('/');
    TOPS.contains(&parts.next().unwrap_or(""))
        && path.split('/').count() > 1
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && !path.chars().any(|c| c.is_control())
}

/// Whether `path` is a tarball (else a directory).
pub fn is_tarball(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "tar")
}

/// An archive whose every entry matched its manifest.
#[derive(Debug)]
pub struct Verified {
    pub origin: PathBuf,
    pub manifest: Manifest,
    /// sha256 of the tarball, or of a directory's manifest (which pins every entry).
    pub digest: String,
    pub digest_of: &'static str,
}

/// Reads and checks the archive at `path` whole; nothing is written.
pub fn verify(path: &Path) -> Result<Verified> {
    if is_tarball(path) {
        verify_tar(path)
    } else if path.is_dir() {
        verify_dir(path)
    } else {
        Err(Error::usage(format!(
            "{} is neither a directory nor a .tar file",
            path.display()
        ))
        .with_hint("give the directory or the .tar that `kbuild cache export` wrote"))
    }
}

fn verify_dir(dir: &Path) -> Result<Verified> {
    let mpath = dir.join(MANIFEST);
    let bytes = crate::input::read_capped(&mpath, MAX_MANIFEST, crate::input::Links::Refuse)
        .map_err(|e| bad(dir, format!("its {MANIFEST} cannot be read: {e}")))?;
    let manifest = Manifest::parse(&bytes, dir)?;
    for e in &manifest.entries {
        let file = dir.join(&e.path);
        let meta = std::fs::symlink_metadata(&file)
            .map_err(|_| bad(dir, format!("{} is missing", e.path)))?;
        if !meta.is_file() {
            return Err(bad(dir, format!("{} is not a regular file", e.path)));
        }
        let reader = std::fs::File::open(&file).map_err(|e| Error::io("cannot read", &file, e))?;
        let (size, sha) = hash(reader).map_err(|err| Error::io("cannot read", &file, err))?;
        check_entry(dir, e, size, &sha)?;
    }
    Ok(Verified {
        origin: dir.to_path_buf(),
        digest: hex::encode(Sha256::digest(&bytes)),
        digest_of: "manifest",
        manifest,
    })
}

fn verify_tar(path: &Path) -> Result<Verified> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut whole = HashingReader::new(file);
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest_bytes = None;
    {
        let mut archive = tar::Archive::new(&mut whole);
        let entries = archive.entries().map_err(|e| unreadable(path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| unreadable(path, e))?;
            let name = entry.path().map_err(|e| unreadable(path, e))?;
            let name = name.to_string_lossy().trim_end_matches('/').to_string();
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                return Err(bad(path, format!("{name} is not a regular file")));
            }
            if manifest_bytes.is_some() {
                return Err(bad(path, format!("{name} comes after the manifest")));
            }
            if name == MANIFEST {
                let mut bytes = Vec::new();
                entry
                    .take(MAX_MANIFEST)
                    .read_to_end(&mut bytes)
                    .map_err(|e| unreadable(path, e))?;
                manifest_bytes = Some(bytes);
                continue;
            }
            if !valid_path(&name) || seen.contains_key(&name) {
                return Err(bad(path, format!("it holds an unexpected entry {name:?}")));
            }
            let declared = entry.header().size().unwrap_or(0);
            let (size, sha) = hash(entry).map_err(|e| unreadable(path, e))?;
            if size != declared {
                return Err(bad(path, format!("{name} is cut short")));
            }
            seen.insert(name, (size, sha));
        }
    }
    // Whatever follows the end-of-archive blocks counts toward the digest too.
    std::io::copy(&mut whole, &mut std::io::sink()).map_err(|e| unreadable(path, e))?;
    let Some(bytes) = manifest_bytes else {
        return Err(bad(path, format!("it has no {MANIFEST} (cut short?)")));
    };
    let manifest = Manifest::parse(&bytes, path)?;
    for e in &manifest.entries {
        let Some((size, sha)) = seen.remove(&e.path) else {
            return Err(bad(path, format!("{} is missing", e.path)));
        };
        check_entry(path, e, size, &sha)?;
    }
    if let Some(extra) = seen.keys().next() {
        return Err(bad(path, format!("{extra} is not in its manifest")));
    }
    Ok(Verified {
        origin: path.to_path_buf(),
        digest: whole.finish(),
        digest_of: "archive",
        manifest,
    })
}

fn check_entry(origin: &Path, e: &Entry, size: u64, sha: &str) -> Result<()> {
    if size != e.size || sha != e.sha256 {
        return Err(bad(
            origin,
            format!("{} does not match its manifest (corrupted?)", e.path),
        ));
    }
    Ok(())
}

/// The size and sha256 of what `reader` gives.
pub fn hash(mut reader: impl Read) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(h.finalize())))
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hasher.update(&out[..n]);
        Ok(n)
    }
}

/// A refused archive: bad input (exit 2), and nothing was changed.
pub fn bad(origin: &Path, why: String) -> Error {
    Error::usage(format!(
        "the Go cache at {} is refused: {why}",
        origin.display()
    ))
    .with_hint(
        "nothing was imported; export the cache again (`kbuild cache export`), or build without it",
    )
}

fn unreadable(origin: &Path, e: std::io::Error) -> Error {
    bad(
        origin,
        format!("it cannot be read as a tar archive (corrupted or cut short?): {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_stay_under_the_cache_directories() {
        assert!(valid_path("go-build/ab/abcdef-d"));
        assert!(valid_path("mod/cache/download/x/@v/v1.0.0.zip"));
        for bad in [
            "go-build",
            "other/x",
            "go-build/../x",
            "/go-build/x",
            "go-build//x",
            "go-build/a\nb",
            "go-build/./x",
        ] {
            assert!(!valid_path(bad), "{bad:?}");
        }
    }

    fn tarball(dir: &Path, files: &[(&str, &[u8])], manifest: Option<&Manifest>) -> PathBuf {
        let path = dir.join("c.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        if let Some(m) = manifest {
            let bytes = m.to_bytes();
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, MANIFEST, &bytes[..]).unwrap();
        }
        b.finish().unwrap();
        path
    }

    fn manifest_of(files: &[(&str, &[u8])]) -> Manifest {
        Manifest {
            format: FORMAT,
            key: CacheKey {
                image: "sha256:1".into(),
                image_digest_of: "config digest".into(),
                go: "go1.24.4".into(),
            },
            entries: files
                .iter()
                .map(|(p, d)| Entry {
                    path: p.to_string(),
                    size: d.len() as u64,
                    mtime: 1,
                    mode: 0o644,
                    sha256: hex::encode(Sha256::digest(d)),
                })
                .collect(),
        }
    }

    #[test]
    fn a_tarball_is_checked_whole() {
        let dir = tempfile::tempdir().unwrap();
        let files: &[(&str, &[u8])] = &[("go-build/aa/x-d", b"hello"), ("go-build/bb/y-a", b"z")];
        let m = manifest_of(files);
        let good = tarball(dir.path(), files, Some(&m));
        assert_eq!(verify(&good).unwrap().manifest.entries.len(), 2);

        // One byte changed.
        let changed: &[(&str, &[u8])] = &[("go-build/aa/x-d", b"hellO"), ("go-build/bb/y-a", b"z")];
        let e = verify(&tarball(dir.path(), changed, Some(&m))).unwrap_err();
        assert!(e.message.contains("does not match"), "{}", e.message);
        // No manifest, an entry missing, an entry added.
        assert!(verify(&tarball(dir.path(), files, None)).is_err());
        assert!(verify(&tarball(dir.path(), &files[..1], Some(&m))).is_err());
        let more: &[(&str, &[u8])] = &[files[0], files[1], ("go-build/cc/z-d", b"q")];
        assert!(verify(&tarball(dir.path(), more, Some(&m))).is_err());
        // Cut short anywhere.
        let bytes = std::fs::read(tarball(dir.path(), files, Some(&m))).unwrap();
        for cut in [100, 600, 1100, bytes.len() - 1100] {
            let p = dir.path().join("cut.tar");
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(verify(&p).is_err(), "cut at {cut}");
        }
    }
}
