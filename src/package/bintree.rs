//! The binary tree `kbuild package --bin DIR` packages: `DIR/<os>/<arch>/<binary>`.
//! What it holds is read once, before anything is written: symbolic links and special files
//! are refused (a link would ship whatever it points at under a Kubernetes name), and every
//! file that no tarball will carry is named with the reason, so nothing is dropped unsaid.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kube::component::COMPONENTS;
use crate::kube::release::Layout;
use crate::kube::{Component, Platform};

/// One regular file found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Relative to the tree, e.g. `linux/amd64/kubectl`.
    pub rel: String,
    pub path: PathBuf,
    /// The platform its `<os>/<arch>/` directory names, if upstream has such a platform.
    pub platform: Option<Platform>,
    /// Its file name, when it sits in an `<os>/<arch>/` directory.
    pub file: Option<String>,
    /// Its permission bits.
    pub mode: u32,
}

/// Why an entry of the tree cannot be packaged at all.
pub fn refusal(path: &Path, file_type: std::fs::FileType) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_symlink() {
        let target = crate::input::link_target(path);
        return Some(format!("{} is a symbolic link{target}", path.display()));
    }
    let what = if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        return None;
    };
    Some(format!("{} is {what}, not a regular file", path.display()))
}

/// Every regular file under `bin` (not following links), refusing links and special files
/// with exit 2 (bad input). Directories below `<os>/<arch>/` are not entered; their files
/// are reported as not packaged by `not_packaged`.
pub fn scan(bin: &Path) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    // (directory, path relative to bin, depth): os dirs are depth 1, arch dirs depth 2.
    let mut stack = vec![(bin.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("cannot read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot read", &dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry
                .file_type()
                .map_err(|e| Error::io("cannot read", &path, e))?;
            if let Some(why) = refusal(&path, file_type) {
                refused.push(why);
            } else if file_type.is_dir() && depth < 2 {
                stack.push((path, child, depth + 1));
            } else {
                let mode = entry
                    .metadata()
                    .map_err(|e| Error::io("cannot read", &path, e))?
                    .permissions()
                    .mode();
                let parts: Vec<&str> = child.split('/').collect();
                let platform = (parts.len() == 3)
                    .then(|| {
                        Platform::all()
                            .iter()
                            .copied()
                            .find(|p| p.os == parts[0] && p.arch == parts[1])
                    })
                    .flatten();
                let file = (parts.len() == 3 && file_type.is_file()).then(|| name.clone());
                found.push(Found {
                    rel: if file_type.is_dir() {
                        format!("{child}/")
                    } else {
                        child
                    },
                    path,
                    platform,
                    file,
                    mode,
                });
            }
        }
    }
    if !refused.is_empty() {
        refused.sort();
        // Name the first few in the message and up to 20 more below it, a line each.
        const NAMED: usize = 5;
        let mut shown = refused[..refused.len().min(NAMED)].join("; ");
        if refused.len() > NAMED {
            shown.push_str(&format!(" and {} more", refused.len() - NAMED));
        }
        return Err(Error::usage(format!("cannot package {}: {shown}", bin.display()))
            .with_details(refused.into_iter().skip(NAMED).take(20).collect())
        .with_hint("a binary tree must hold the binaries themselves: replace each link with a copy of the file it points at (cp -L), and remove anything that is not a regular file"));
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// Whether some layout packages `file` for `platform`.
fn packaged(layouts: &[Layout], platform: Platform, file: &str) -> bool {
    layouts.iter().any(|l| {
        l.platform == platform && l.components.iter().any(|c| c.file_name(platform) == file)
    })
}

/// The component whose binary on `platform` is called `file`.
fn component_named(platform: Platform, file: &str) -> Option<&'static Component> {
    COMPONENTS.iter().find(|c| c.file_name(platform) == file)
}

/// Every file of the tree that no tarball carries, with the reason: (path under bin, why).
/// `platforms` are the ones chosen; `has` says whether the source tree has a component.
pub fn not_packaged(
    found: &[Found],
    layouts: &[Layout],
    platforms: &[Platform],
    has: &dyn Fn(&Component) -> bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in found {
        let why = match (f.platform, f.file.as_deref()) {
            (Some(p), Some(file)) if packaged(layouts, p, file) => continue,
            (_, None) => "only files in <os>/<arch>/ directories are packaged".to_string(),
            (None, Some(_)) => {
                "its directory names no platform upstream releases for".to_string()
            }
            (Some(p), Some(_)) if !platforms.contains(&p) => {
                format!("{p} is not among the platforms asked for (--platform)")
            }
            (Some(p), Some(file)) => match component_named(p, file) {
                None => format!("{file} is not a binary upstream's release tarballs carry"),
                Some(c) if !has(c) => format!("the source tree has no {}", c.dir),
                Some(c) if c.sets.iter().all(|s| s.is_test()) => format!(
                    "{} goes in a test tarball, which kbuild package does not write (kbuild quick-release does)",
                    c.name
                ),
                Some(c) if !c.supports(p) => format!(
                    "upstream releases {} for {} only",
                    c.name,
                    crate::kube::platform::list(&c.platforms())
                ),
                Some(c) => format!(
                    "no tarball for {p} is made (the other binaries of {}'s target set are not in the tree)",
                    c.name
                ),
            },
        };
        out.push((f.rel.clone(), why));
    }
    out
}

/// The binaries that will be packaged although they are not executable on disk: the
/// tarball gives them mode 0755 as upstream's does, which the user should know.
/// Returns (path under bin, mode).
pub fn not_executable(found: &[Found], layouts: &[Layout]) -> Vec<(String, u32)> {
    found
        .iter()
        .filter(|f| f.mode & 0o111 == 0)
        .filter(|f| match (f.platform, f.file.as_deref()) {
            (Some(p), Some(file)) => packaged(layouts, p, file),
            _ => false,
        })
        .map(|f| (f.rel.clone(), f.mode & 0o7777))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::release::layouts;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    fn tree(files: &[(&str, u32)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, mode) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"x").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        dir
    }

    #[test]
    fn every_file_no_tarball_carries_is_named_with_its_reason() {
        let dir = tree(&[
            ("linux/amd64/kubectl", 0o644),
            ("linux/amd64/kube-apiserver", 0o755),
            ("linux/amd64/e2e.test", 0o755),
            ("linux/amd64/notes.txt", 0o644),
            ("darwin/arm64/kubectl", 0o755),
            ("darwin/arm64/kube-proxy", 0o755),
            ("plan9/amd64/kubectl", 0o755),
            ("README", 0o644),
        ]);
        let found = scan(dir.path()).unwrap();
        let platforms = [platform("linux/amd64"), platform("darwin/arm64")];
        // A tree with only the client targets and kube-proxy.
        let has = |c: &Component| matches!(c.name, "kubectl" | "kube-proxy" | "e2e.test");
        // Only the client tarballs are made: no node binary but kube-proxy was built.
        let clients = |platforms: &[Platform]| {
            layouts(platforms, &has, false)
                .into_iter()
                .filter(|l| l.kind == crate::kube::release::TarballKind::Client)
                .collect::<Vec<_>>()
        };
        let dropped = not_packaged(&found, &clients(&platforms[..1]), &platforms[..1], &has);
        let text: Vec<String> = dropped.iter().map(|(f, w)| format!("{f}: {w}")).collect();
        assert_eq!(
            text,
            [
                "README: only files in <os>/<arch>/ directories are packaged",
                "darwin/arm64/kube-proxy: darwin/arm64 is not among the platforms asked for (--platform)",
                "darwin/arm64/kubectl: darwin/arm64 is not among the platforms asked for (--platform)",
                "linux/amd64/e2e.test: e2e.test goes in a test tarball, which kbuild package does not write (kbuild quick-release does)",
                "linux/amd64/kube-apiserver: the source tree has no cmd/kube-apiserver",
                "linux/amd64/notes.txt: notes.txt is not a binary upstream's release tarballs carry",
                "plan9/amd64/kubectl: its directory names no platform upstream releases for",
            ]
        );
        let layouts = clients(&platforms);
        let dropped = not_packaged(&found, &layouts, &platforms, &has);
        assert!(dropped.contains(&(
            "darwin/arm64/kube-proxy".to_string(),
            "upstream releases kube-proxy for linux/amd64, linux/arm64, linux/s390x, linux/ppc64le, windows/amd64 only".to_string()
        )), "{dropped:?}");
        assert_eq!(
            not_executable(&found, &layouts),
            [("linux/amd64/kubectl".to_string(), 0o644)]
        );
    }

    #[test]
    fn links_and_fifos_are_refused_as_bad_input() {
        let dir = tree(&[("linux/amd64/kubectl", 0o755)]);
        let arch = dir.path().join("linux/amd64");
        std::fs::remove_file(arch.join("kubectl")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/ls", arch.join("kubectl")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            arch.join("kubeadm"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = scan(dir.path()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.message
                .contains("kubectl is a symbolic link (to /usr/bin/ls)"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("kubeadm is a FIFO, not a regular file"),
            "{}",
            e.message
        );
    }
}
