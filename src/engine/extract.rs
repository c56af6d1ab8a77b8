//! Safe extraction of tar archives that come from elsewhere (a build container, a remote
//! engine): nothing is ever written outside the target directory.
//!
//! Refused, with an error naming the entry (the extraction stops there):
//! - paths that are absolute or contain `..` (or a Windows prefix);
//! - symbolic links whose target is absolute or leads outside the target directory;
//! - hard links whose target is not a regular file already extracted inside it;
//! - entries whose parent path inside the target goes through a symbolic link
//!   (so a link that is harmless on its own cannot be used to write elsewhere);
//! - device files, FIFOs and other special entries.
//!
//! Modes keep only the permission bits 0o755 (no setuid/setgid/sticky, nothing writable by
//! others); ownership is never applied. An existing file in the way is replaced, not written
//! through.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Kind, Result};

/// Extracts the tar stream `reader` into `dest` (created if missing); returns the regular
/// files written, relative to `dest`.
pub fn extract(reader: impl Read, dest: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dest).map_err(|e| Error::io("cannot create", dest, e))?;
    let mut archive = tar::Archive::new(reader);
    let mut written = Vec::new();
    let entries = archive.entries().map_err(|e| unreadable(dest, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| unreadable(dest, e))?;
        let raw = entry.path().map_err(|e| unreadable(dest, e))?.into_owned();
        let Some(rel) = strict_relative(&raw) else {
            return Err(refused(&raw, "its path is absolute or contains `..`"));
        };
        if rel.as_os_str().is_empty() {
            continue; // "./" itself
        }
        check_no_symlink_ancestors(dest, &rel, &raw)?;
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
        match kind {
            tar::EntryType::Directory => {
                if let Ok(meta) = fs::symlink_metadata(&target) {
                    if !meta.is_dir() {
                        remove(&target)?;
                    }
                }
                fs::create_dir_all(&target).map_err(|e| Error::io("cannot create", &target, e))?;
                set_mode(&target, mode | 0o700)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                make_parent(&target)?;
                replace_nondir(&target)?;
                let mut file =
                    fs::File::create(&target).map_err(|e| Error::io("cannot write", &target, e))?;
                std::io::copy(&mut entry, &mut file)
                    .map_err(|e| Error::io("cannot write", &target, e))?;
                set_mode(&target, mode)?;
                written.push(rel);
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| unreadable(dest, e))?
                    .ok_or_else(|| refused(&raw, "a symbolic link without a target"))?
                    .into_owned();
                let parent = rel.parent().unwrap_or(Path::new(""));
                if link.is_absolute() || safe_relative(&parent.join(&link)).is_none() {
                    return Err(refused(
                        &raw,
                        &format!("a symbolic link to {} points outside", link.display()),
                    ));
                }
                make_parent(&target)?;
                replace_nondir(&target)?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| Error::io("cannot create", &target, e))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| unreadable(dest, e))?
                    .ok_or_else(|| refused(&raw, "a hard link without a target"))?
                    .into_owned();
                let Some(link_rel) = strict_relative(&link).filter(|l| !l.as_os_str().is_empty())
                else {
                    return Err(refused(
                        &raw,
                        &format!("a hard link to {} points outside", link.display()),
                    ));
                };
                check_no_symlink_ancestors(dest, &link_rel, &raw)?;
                let source = dest.join(&link_rel);
                let is_file = fs::symlink_metadata(&source)
                    .map(|m| m.file_type().is_file())
                    .unwrap_or(false);
                if !is_file {
                    return Err(refused(
                        &raw,
                        &format!(
                            "a hard link to {} which is not a file extracted before it",
                            link.display()
                        ),
                    ));
                }
                make_parent(&target)?;
                replace_nondir(&target)?;
                fs::hard_link(&source, &target)
                    .map_err(|e| Error::io("cannot create", &target, e))?;
                written.push(rel);
            }
            // pax/GNU extension headers are consumed by the tar crate; anything else is special.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(refused(
                    &raw,
                    &format!("a special file ({other:?}) has no place in build outputs"),
                ))
            }
        }
    }
    Ok(written)
}

/// The path with `.` removed, if it is relative and never climbs out; `Some("")` for `.`.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                // Allowed inside (a/b/../c) for link targets, never above the root.
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// An entry name: relative, without any `..` (even one that stays inside).
pub(crate) fn strict_relative(path: &Path) -> Option<PathBuf> {
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    safe_relative(path)
}

/// Refuses when any existing ancestor of `rel` inside `dest` is a symbolic link.
pub(crate) fn check_no_symlink_ancestors(dest: &Path, rel: &Path, raw: &Path) -> Result<()> {
    let mut here = dest.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        here.push(part);
        if let Ok(meta) = fs::symlink_metadata(&here) {
            if meta.file_type().is_symlink() {
                return Err(refused(
                    raw,
                    "it would be written through a symbolic link in the archive",
                ));
            }
        }
    }
    Ok(())
}

fn make_parent(target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    Ok(())
}

/// Removes a file or link in the way (never follows it); refuses to replace a directory.
fn replace_nondir(target: &Path) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => Err(Error::new(
            Kind::Engine,
            format!(
                "refused an archive entry: {} is a directory on disk",
                target.display()
            ),
        )),
        Ok(_) => remove(target),
        Err(_) => Ok(()),
    }
}

fn remove(target: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(target).map_err(|e| Error::io("cannot read", target, e))?;
    let result = if meta.is_dir() {
        fs::remove_dir_all(target)
    } else {
        fs::remove_file(target)
    };
    result.map_err(|e| Error::io("cannot remove", target, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("cannot set the mode of", path, e))
}

fn refused(entry: &Path, why: &str) -> Error {
    Error::new(
        Kind::Engine,
        format!(
            "refused an unsafe archive entry \"{}\": {why}",
            entry.display()
        ),
    )
    .with_hint("the engine sent an archive that tries to write outside its directory; nothing outside it was touched. Check the builder image and the engine")
}

fn unreadable(dest: &Path, e: std::io::Error) -> Error {
    Error::new(
        Kind::Engine,
        format!(
            "cannot read the archive being extracted into {}: {e}",
            dest.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar archive built by hand, so that entries a well-behaved writer refuses to
    /// produce (`..`, absolute names) can be written.
    struct Crafted {
        builder: tar::Builder<Vec<u8>>,
    }

    impl Crafted {
        fn new() -> Self {
            Crafted {
                builder: tar::Builder::new(Vec::new()),
            }
        }

        fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            // Write the raw name bytes: set_path would refuse `..` and absolute paths.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(0o755);
            h
        }

        fn file(mut self, name: &str, data: &[u8]) -> Self {
            let mut h = Self::header(name, tar::EntryType::Regular, data.len() as u64);
            h.set_cksum();
            self.builder.append(&h, data).unwrap();
            self
        }

        fn dir(mut self, name: &str) -> Self {
            let mut h = Self::header(name, tar::EntryType::Directory, 0);
            h.set_cksum();
            self.builder.append(&h, std::io::empty()).unwrap();
            self
        }

        fn link(mut self, name: &str, kind: tar::EntryType, target: &str) -> Self {
            let mut h = Self::header(name, kind, 0);
            let bytes = target.as_bytes();
            h.as_old_mut().linkname[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            self.builder.append(&h, std::io::empty()).unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.builder.into_inner().unwrap()
        }
    }

    /// A scratch area with `target` inside it and `outside` beside it.
    fn scratch() -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let target = dir.path().join("target");
        (dir, target)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "kbuild-extract-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// Every file under `dir`, relative.
    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn extracts_a_normal_archive() {
        let (scratch, target) = scratch();
        let tar = Crafted::new()
            .dir("bin/")
            .dir("bin/linux/amd64/")
            .file("bin/linux/amd64/kubectl", b"ELF")
            .link(
                "bin/kubectl",
                tar::EntryType::Symlink,
                "linux/amd64/kubectl",
            )
            .link(
                "bin/kubectl2",
                tar::EntryType::Link,
                "bin/linux/amd64/kubectl",
            )
            .file("./bin/./readme", b"hi")
            .bytes();
        let written = extract(&tar[..], &target).unwrap();
        assert_eq!(
            fs::read(target.join("bin/linux/amd64/kubectl")).unwrap(),
            b"ELF"
        );
        assert_eq!(fs::read(target.join("bin/kubectl")).unwrap(), b"ELF");
        assert_eq!(fs::read(target.join("bin/kubectl2")).unwrap(), b"ELF");
        assert_eq!(written.len(), 3);
        drop(scratch);
    }

    fn refuses(tar: Vec<u8>, what: &str) {
        let (scratch, target) = scratch();
        let err = extract(&tar[..], &target).unwrap_err();
        assert_eq!(err.kind, Kind::Engine, "{what}: {}", err.message);
        assert!(err.message.contains("refused"), "{what}: {}", err.message);
        // Nothing landed beside the target.
        let outside: Vec<_> = listing(scratch.path())
            .into_iter()
            .filter(|p| !p.starts_with("target"))
            .collect();
        assert!(outside.is_empty(), "{what} wrote outside: {outside:?}");
    }

    #[test]
    fn refuses_parent_dir_entries() {
        refuses(Crafted::new().file("../evil", b"x").bytes(), "../evil");
        refuses(
            Crafted::new().file("bin/../../evil", b"x").bytes(),
            "bin/../../evil",
        );
        refuses(
            Crafted::new().file("bin/../evil", b"x").bytes(),
            "bin/../evil (inside, but `..` is refused in entry names)",
        );
    }

    #[test]
    fn refuses_absolute_entries() {
        let (scratch, _) = scratch();
        let abs = scratch.path().join("abs-evil");
        refuses(
            Crafted::new().file(abs.to_str().unwrap(), b"x").bytes(),
            "absolute path",
        );
        assert!(!abs.exists());
    }

    #[test]
    fn refuses_symlinks_out_and_writes_through_links() {
        refuses(
            Crafted::new()
                .link("etc", tar::EntryType::Symlink, "/etc")
                .file("etc/evil", b"x")
                .bytes(),
            "symlink to /etc then a file through it",
        );
        refuses(
            Crafted::new()
                .link("up", tar::EntryType::Symlink, "../..")
                .bytes(),
            "symlink to ../..",
        );
        refuses(
            Crafted::new()
                .dir("a/")
                .link("a/up", tar::EntryType::Symlink, "../../outside")
                .bytes(),
            "nested symlink climbing out",
        );
        // A link that stays inside is fine alone, but nothing is written through it.
        refuses(
            Crafted::new()
                .dir("real/")
                .link("alias", tar::EntryType::Symlink, "real")
                .file("alias/file", b"x")
                .bytes(),
            "a file through an inside symlink",
        );
    }

    #[test]
    fn refuses_hardlinks_outside() {
        refuses(
            Crafted::new()
                .link("passwd", tar::EntryType::Link, "/etc/passwd")
                .bytes(),
            "hard link to /etc/passwd",
        );
        refuses(
            Crafted::new()
                .link("evil", tar::EntryType::Link, "../outside")
                .bytes(),
            "hard link to ../outside",
        );
        refuses(
            Crafted::new()
                .link("missing", tar::EntryType::Link, "not-there")
                .bytes(),
            "hard link to nothing extracted",
        );
    }

    #[test]
    fn refuses_device_files() {
        refuses(
            Crafted::new().link("dev", tar::EntryType::Char, "").bytes(),
            "character device",
        );
    }

    #[test]
    fn strips_setuid_and_world_write() {
        use std::os::unix::fs::PermissionsExt;
        let (scratch, target) = scratch();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("suid").unwrap();
        h.set_size(1);
        h.set_mode(0o4777);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        extract(&b.into_inner().unwrap()[..], &target).unwrap();
        let mode = fs::metadata(target.join("suid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o755);
        drop(scratch);
    }
}
