//! What a source volume holds, as kbuild last left it: one record per path of the tree
//! (kind, mode, size, mtime and a sha256 of the content), kept on this machine. Comparing
//! the tree with the listing says what a sync must upload and what it must delete.
//!
//! A listing is trusted only for the volume it was written for: the same engine (its
//! `docker info` ID), the same volume name and generation label (set when the volume is
//! created, so a recreated volume never matches). Anything
//! else (a recreated volume, another engine, a listing written by a sync that did not
//! finish) means a full sync. The listing is deleted before a sync touches the volume and
//! written back (atomically) only once the sync succeeded, so it never claims more than the
//! volume holds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Top-level entries of the tree that are never synced (upstream's rsync excluded _output
/// and _tmp; version facts come from the host, so .git is not needed).
pub const EXCLUDED: &[&str] = &[".git", "_output", "_tmp"];

/// Which volume a listing describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeId {
    /// The engine's `docker info` ID (and data directory).
    pub engine: String,
    pub volume: String,
    /// A label unique to this volume, given when kbuild created it: a volume removed and
    /// created again gets another. (Not the engine's `CreatedAt`: for a local volume that is
    /// the mtime of its top directory, which moves whenever a top-level entry is added.)
    pub generation: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Link,
}

/// One path of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// The mode the archive gives it (files: the owner may write, others may not).
    pub mode: u32,
    pub size: u64,
    /// Nanoseconds since the epoch: with the size, says whether the content may have changed.
    pub mtime_ns: u64,
    /// Regular files: the content's sha256.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Symbolic links: where they point.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
}

impl Entry {
    /// Whether the volume's copy (`self`, from the listing) is what `now` describes.
    fn same_as(&self, now: &Entry) -> bool {
        self.kind == now.kind
            && match self.kind {
                Kind::Dir => true,
                Kind::Link => self.target == now.target,
                Kind::File => {
                    self.mode == now.mode && self.size == now.size && self.sha256 == now.sha256
                }
            }
    }
}

/// A tree's paths (relative, `/`-separated) and what each is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Listing {
    pub volume: Option<VolumeId>,
    pub entries: BTreeMap<String, Entry>,
}

impl Listing {
    /// Bytes of regular files.
    pub fn bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.kind == Kind::File)
            .map(|e| e.size)
            .sum()
    }

    /// Regular files and links.
    pub fn files(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.kind != Kind::Dir)
            .count()
    }
}

/// A scanned tree: its listing, and whether it can be recorded (every name UTF-8).
pub struct Scanned {
    pub listing: Listing,
    pub recordable: bool,
}

/// Walks the tree at `root` (without the excluded top-level entries), reusing the hashes of
/// `previous` for files whose size and mtime did not change, so that a resync reads only
/// what changed. Symbolic links are kept as links; sockets, FIFOs and devices left out.
pub fn scan(root: &Path, previous: Option<&Listing>) -> Result<Scanned> {
    let mut listing = Listing::default();
    let mut recordable = true;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("cannot read", &dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::io("cannot read", &dir, e))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            if rel.as_os_str().is_empty() && EXCLUDED.iter().any(|x| name == *x) {
                continue;
            }
            let entry_rel = rel.join(&name);
            let path = root.join(&entry_rel);
            let Some(key) = entry_rel.to_str().map(str::to_string) else {
                // Not representable in the listing: the tree is synced, but never incrementally.
                recordable = false;
                continue;
            };
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
            let Some(entry) = describe(&path, &meta, previous.and_then(|p| p.entries.get(&key)))?
            else {
                continue;
            };
            if entry.kind == Kind::Dir {
                subdirs.push(entry_rel);
            }
            listing.entries.insert(key, entry);
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(Scanned {
        listing,
        recordable,
    })
}

/// The entry for one path, hashing a file only when `known` cannot vouch for its content.
fn describe(path: &Path, meta: &std::fs::Metadata, known: Option<&Entry>) -> Result<Option<Entry>> {
    use std::os::unix::fs::PermissionsExt;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let kind = meta.file_type();
    let entry = if kind.is_dir() {
        Entry {
            kind: Kind::Dir,
            mode: 0o755,
            size: 0,
            mtime_ns,
            sha256: String::new(),
            target: String::new(),
        }
    } else if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| Error::io("cannot read", path, e))?;
        Entry {
            kind: Kind::Link,
            mode: 0o777,
            size: 0,
            mtime_ns,
            sha256: String::new(),
            target: target.to_string_lossy().into_owned(),
        }
    } else if kind.is_file() {
        let size = meta.len();
        let sha256 = match known {
            Some(k) if k.kind == Kind::File && k.size == size && k.mtime_ns == mtime_ns => {
                k.sha256.clone()
            }
            _ => hash_file(path)?,
        };
        Entry {
            kind: Kind::File,
            mode: (meta.permissions().mode() & 0o777 | 0o600) & 0o755,
            size,
            mtime_ns,
            sha256,
            target: String::new(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(entry))
}

fn hash_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// What a sync does to bring the volume from `previous` to `now`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Paths to delete first (a removed directory stands for everything under it; a path
    /// whose kind changed is deleted and then uploaded).
    pub remove: Vec<String>,
    /// Paths to upload, parents before children.
    pub upload: Vec<String>,
}

/// The changes from what the volume holds to the tree; with no listing, upload everything.
pub fn changes(previous: Option<&Listing>, now: &Listing) -> Changes {
    let Some(previous) = previous else {
        return Changes {
            remove: Vec::new(),
            upload: now.entries.keys().cloned().collect(),
        };
    };
    let mut remove: Vec<String> = Vec::new();
    for (path, was) in &previous.entries {
        let gone = match now.entries.get(path) {
            None => true,
            Some(is) => is.kind != was.kind,
        };
        // Under a directory already removed: `rm -r` of the directory takes it.
        let covered = remove.last().is_some_and(|r| {
            path.strip_prefix(r.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        });
        if gone && !covered {
            remove.push(path.clone());
        }
    }
    let upload = now
        .entries
        .iter()
        .filter(|(path, is)| {
            !previous
                .entries
                .get(*path)
                .is_some_and(|was| was.same_as(is))
        })
        .map(|(path, _)| path.clone())
        .collect();
    Changes { remove, upload }
}

/// Where listings are kept: `<cache>/kbuild/sync/<16 hex of engine and volume>.json`.
pub struct Store {
    path: Option<PathBuf>,
}

impl Store {
    /// The listing file for `volume` on `engine`; None when the cache directory is unknown
    /// (then every sync is a full one).
    pub fn new(cache: Option<&Path>, engine: &str, volume: &str) -> Store {
        let digest = Sha256::digest(format!("{engine}\0{volume}").as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Store {
            path: cache.map(|c| c.join("kbuild").join("sync").join(format!("{hex}.json"))),
        }
    }

    /// The stored listing, if it describes exactly the volume `id` and reads back whole.
    pub fn load(&self, id: &VolumeId) -> Option<Listing> {
        let text = std::fs::read(self.path.as_ref()?).ok()?;
        let listing: Listing = serde_json::from_slice(&text).ok()?;
        // A volume without a generation label cannot be told from a recreated one.
        let trusted = !id.generation.is_empty()
            && listing.volume.as_ref() == Some(id)
            && listing.entries.keys().all(|k| is_plain(k));
        trusted.then_some(listing)
    }

    /// Deletes the stored listing: done before the volume changes, so that a sync that
    /// does not finish (an error, Ctrl-C, a crash) leaves none and the next sync is full.
    pub fn forget(&self) -> Result<()> {
        match &self.path {
            Some(path) => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("cannot remove", path, e)),
            },
            None => Ok(()),
        }
    }

    /// Writes `listing` (a temporary file renamed into place, so a reader never sees half).
    pub fn save(&self, listing: &Listing) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().expect("a listing path has a parent");
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        let tmp = path.with_extension(format!("{}.kbuild-tmp", std::process::id()));
        let text = serde_json::to_vec(listing)
            .map_err(|e| Error::internal(format!("cannot encode the sync listing: {e}")))?;
        std::fs::write(&tmp, text).map_err(|e| Error::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("cannot write", path, e)
        })
    }
}

/// A relative path of plain names: a listing read back from disk never names a path outside
/// the volume (its paths end up in a removal list).
fn is_plain(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in [".git", "_output/bin", "cmd/kubectl", "pkg/a"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        std::fs::write(dir.path().join("_output/bin/old"), "x").unwrap();
        std::fs::write(dir.path().join("cmd/kubectl/main.go"), "package main").unwrap();
        std::fs::write(dir.path().join("pkg/a/a.go"), "package a").unwrap();
        std::os::unix::fs::symlink("cmd", dir.path().join("link")).unwrap();
        dir
    }

    #[test]
    fn a_scan_lists_the_tree_without_git_and_outputs_and_hashes_files() {
        let dir = tree();
        let scanned = scan(dir.path(), None).unwrap();
        assert!(scanned.recordable);
        let names: Vec<_> = scanned.listing.entries.keys().cloned().collect();
        assert_eq!(
            names,
            [
                "cmd",
                "cmd/kubectl",
                "cmd/kubectl/main.go",
                "link",
                "pkg",
                "pkg/a",
                "pkg/a/a.go"
            ]
        );
        let main = &scanned.listing.entries["cmd/kubectl/main.go"];
        let expected: String = Sha256::digest(b"package main")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(main.sha256, expected);
        assert_eq!(main.size, 12);
        assert_eq!(scanned.listing.entries["link"].target, "cmd");
    }

    #[test]
    fn with_no_listing_everything_uploads_and_nothing_is_removed() {
        let dir = tree();
        let now = scan(dir.path(), None).unwrap().listing;
        let changes = changes(None, &now);
        assert!(changes.remove.is_empty());
        assert_eq!(changes.upload.len(), now.entries.len());
    }

    #[test]
    fn after_an_edit_only_the_edited_file_uploads() {
        let dir = tree();
        let before = scan(dir.path(), None).unwrap().listing;
        assert_eq!(changes(Some(&before), &before), Changes::default());
        std::fs::write(dir.path().join("pkg/a/a.go"), "package b").unwrap();
        let after = scan(dir.path(), Some(&before)).unwrap().listing;
        assert_eq!(
            changes(Some(&before), &after),
            Changes {
                remove: vec![],
                upload: vec!["pkg/a/a.go".to_string()]
            }
        );
    }

    #[test]
    fn a_touched_but_unchanged_file_does_not_upload() {
        let dir = tree();
        let before = scan(dir.path(), None).unwrap().listing;
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join("pkg/a/a.go"))
            .unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let after = scan(dir.path(), Some(&before)).unwrap().listing;
        assert_ne!(
            before.entries["pkg/a/a.go"].mtime_ns,
            after.entries["pkg/a/a.go"].mtime_ns
        );
        assert_eq!(changes(Some(&before), &after), Changes::default());
    }

    #[test]
    fn a_removed_directory_is_one_removal_and_a_kind_change_is_removed_then_uploaded() {
        let dir = tree();
        let before = scan(dir.path(), None).unwrap().listing;
        std::fs::remove_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::remove_file(dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("link")).unwrap();
        let after = scan(dir.path(), Some(&before)).unwrap().listing;
        assert_eq!(
            changes(Some(&before), &after),
            Changes {
                remove: vec!["link".to_string(), "pkg".to_string()],
                upload: vec!["link".to_string()]
            }
        );
    }

    #[test]
    fn a_listing_is_trusted_only_for_its_own_volume() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::new(Some(cache.path()), "engine-a", "kbuild-src-x");
        let id = VolumeId {
            engine: "engine-a".into(),
            volume: "kbuild-src-x".into(),
            generation: "1".into(),
        };
        let dir = tree();
        let mut listing = scan(dir.path(), None).unwrap().listing;
        listing.volume = Some(id.clone());
        store.save(&listing).unwrap();
        assert!(store.load(&id).is_some());
        let recreated = VolumeId {
            generation: "2".into(),
            ..id.clone()
        };
        assert!(store.load(&recreated).is_none());
        store.forget().unwrap();
        assert!(store.load(&id).is_none());
    }

    #[test]
    fn a_listing_naming_a_path_outside_the_volume_is_not_trusted() {
        assert!(is_plain("cmd/kubectl/main.go"));
        assert!(!is_plain("../etc"));
        assert!(!is_plain("/etc"));
        assert!(!is_plain("a/../../b"));
        assert!(!is_plain(""));
    }
}
