//! kubernetes-src.tar.gz exactly as upstream's kube::release::package_src_tarball writes
//! it, through the same deterministic writer as every other tarball:
//!
//! - clean git tree: `git archive HEAD`, entries at the top level (no `kubernetes/`
//!   prefix; export-ignore and export-subst apply), re-packed entry by entry; git emits
//!   entries in path order, which is the writer's order, so nothing is buffered. The pax
//!   comment git puts first (the commit id) is not copied: manifest.json records the commit;
//! - any other tree (dirty, or not a git checkout): every top-level entry but those
//!   `kube::release::src_excludes_top` names (`_*`, `.git*`, `.config*`, `.gsutil*`), with
//!   everything under it as it is on disk (ignored files too, as upstream's find and tar
//!   take them), under `kubernetes/` and with no entry for `kubernetes/` itself.
//!
//! Paths given in `exclude` (kbuild's output directory, when it lies inside the tree) are
//! never included.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::tarball::{self, Content, Entry, TarGz, Written, MODE_EXEC, MODE_FILE};
use super::Control;
use crate::error::{Error, Result};
use crate::kube::release::{src_excludes_top, SRC_TREE_PREFIX};
use crate::source::TreeState;

/// What the source tarball holds, for the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SrcContent {
    /// `git archive` of the commit.
    Commit,
    /// The working tree including uncommitted changes.
    WorkingTree,
    /// A directory that is not a git checkout.
    Directory,
}

impl SrcContent {
    pub fn as_str(self) -> &'static str {
        match self {
            SrcContent::Commit => "commit",
            SrcContent::WorkingTree => "working-tree",
            SrcContent::Directory => "directory",
        }
    }
}

/// Writes the source tarball of `root` to `dest`, leaving out every path in `exclude`
/// that lies inside `root`.
pub fn write(
    root: &Path,
    state: TreeState,
    exclude: &[PathBuf],
    dest: &Path,
    mtime: u64,
    cancel: &Control,
) -> Result<(Written, SrcContent)> {
    let excluded = Excluded::new(root, exclude);
    if state == TreeState::Clean {
        let written = from_git_archive(root, &excluded, dest, mtime, cancel)?;
        return Ok((written, SrcContent::Commit));
    }
    let skip = |rel: &str| (!rel.contains('/') && src_excludes_top(rel)) || excluded.covers(rel);
    let entries = tree_entries(root, "", SRC_TREE_PREFIX, &skip)?;
    let content = if state == TreeState::Dirty {
        SrcContent::WorkingTree
    } else {
        SrcContent::Directory
    };
    Ok((
        tarball::write(dest, mtime, entries, false, cancel)?,
        content,
    ))
}

/// Paths inside the tree that are never packaged, relative to the tree.
pub struct Excluded {
    rel: Vec<String>,
}

impl Excluded {
    /// The paths of `exclude` that lie inside `root` (compared after resolving symlinks).
    pub fn new(root: &Path, exclude: &[PathBuf]) -> Excluded {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let rel = exclude
            .iter()
            .filter_map(|p| {
                let abs = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
                let inside = abs.strip_prefix(&root).ok()?;
                let rel = inside.to_string_lossy().trim_matches('/').to_string();
                (!rel.is_empty()).then_some(rel)
            })
            .collect();
        Excluded { rel }
    }

    /// Whether `rel` (relative to the tree) is an excluded path or lies under one.
    pub fn covers(&self, rel: &str) -> bool {
        self.rel.iter().any(|ex| {
            rel == ex
                || rel
                    .strip_prefix(ex.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }
}

/// Entries under `prefix/` for `root/from` and everything below it, as `cp -R` or `tar`
/// takes them: directories (empty ones too), files with their executable bit, symlinks as
/// symlinks. `skip` (given paths relative to the root) prunes an entry and all under it.
/// `from` itself gets no entry.
pub fn tree_entries(
    root: &Path,
    from: &str,
    prefix: &str,
    skip: &dyn Fn(&str) -> bool,
) -> Result<Vec<Entry>> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries = Vec::new();
    let mut stack = vec![from.to_string()];
    while let Some(rel_dir) = stack.pop() {
        let dir = root.join(&rel_dir);
        for child in std::fs::read_dir(&dir).map_err(|e| Error::io("cannot read", &dir, e))? {
            let child = child.map_err(|e| Error::io("cannot read", &dir, e))?;
            let name = child.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            if skip(&rel) {
                continue;
            }
            let src = child.path();
            let meta =
                std::fs::symlink_metadata(&src).map_err(|e| Error::io("cannot read", &src, e))?;
            let inside = format!("{prefix}/{}", rel_from(&rel, from));
            let content = if meta.file_type().is_symlink() {
                let target =
                    std::fs::read_link(&src).map_err(|e| Error::io("cannot read", &src, e))?;
                Content::Symlink {
                    target: target.to_string_lossy().into_owned(),
                }
            } else if meta.is_dir() {
                stack.push(rel);
                Content::Dir
            } else if meta.is_file() {
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    MODE_EXEC
                } else {
                    MODE_FILE
                };
                Content::File { src, mode }
            } else {
                // Sockets and fifos: GNU tar skips them too.
                continue;
            };
            entries.push(Entry {
                path: inside,
                content,
            });
        }
    }
    Ok(entries)
}

/// `rel` relative to `from` (both relative to the tree root).
fn rel_from<'a>(rel: &'a str, from: &str) -> &'a str {
    if from.is_empty() {
        rel
    } else {
        rel.strip_prefix(from)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(rel)
    }
}

fn from_git_archive(
    root: &Path,
    excluded: &Excluded,
    dest: &Path,
    mtime: u64,
    cancel: &Control,
) -> Result<Written> {
    // upstream: `git archive -o kubernetes-src.tar.gz HEAD`, so no --prefix.
    let mut child = Command::new("git")
        .args(["archive", "--format=tar", "HEAD"])
        .current_dir(root)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::source(format!("cannot run git archive: {e}"))
                .with_hint("install git and make sure it is on PATH")
        })?;
    let stdout = child.stdout.take().expect("piped");
    let result = repack(stdout, excluded, dest, mtime, cancel);
    // On an early error, stop git before waiting for it.
    if result.is_err() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child
        .wait()
        .map_err(|e| Error::source(format!("git archive: {e}")))?;
    let written = result?;
    if !status.success() {
        // The temp file was already renamed: remove the artifact made from a failed stream.
        let _ = std::fs::remove_file(dest);
        return Err(Error::source(format!(
            "git archive HEAD failed in {}: {}",
            root.display(),
            stderr.trim()
        )));
    }
    Ok(written)
}

/// Re-packs a tar stream (git archive's) through the deterministic writer.
fn repack(
    stream: impl Read,
    excluded: &Excluded,
    dest: &Path,
    mtime: u64,
    cancel: &Control,
) -> Result<Written> {
    let mut out = TarGz::create(dest, mtime, false, cancel)?;
    let mut archive = tar::Archive::new(stream);
    let bad = |e: std::io::Error| Error::source(format!("cannot read git archive's output: {e}"));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        if excluded.covers(&path) {
            continue;
        }
        match kind {
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            tar::EntryType::Directory => out.dir(&path)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mode = if entry.header().mode().map_err(bad)? & 0o111 != 0 {
                    MODE_EXEC
                } else {
                    MODE_FILE
                };
                let size = entry.size();
                out.file(&path, mode, size, &mut entry)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.symlink(&path, &target)?;
            }
            other => {
                return Err(Error::source(format!(
                    "git archive produced an entry kbuild does not package: {path} ({other:?})"
                )))
            }
        }
    }
    // Read git's trailing padding too: closing the pipe early kills git with SIGPIPE, and its
    // failed exit would then discard a complete tarball.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(bad)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(mut entries: Vec<Entry>) -> Vec<String> {
        tarball::sort(&mut entries);
        entries.iter().map(|e| e.key()).collect()
    }

    #[test]
    fn a_tree_that_is_not_clean_is_its_top_level_entries_under_kubernetes() {
        // Upstream's find | tar --transform on such a tree, listed by GNU tar (tar 1.34):
        // kubernetes/.go-version, kubernetes/cmd/, kubernetes/cmd/kubectl/main.go, ...;
        // no kubernetes/ entry, no _output, .git, .gitignore, .config or .gsutil.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "cmd/kubectl",
            "_output/bin",
            ".git",
            ".config",
            ".gsutil",
            "out/x",
            "empty",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "cmd/kubectl/main.go",
            "cmd/.gitignore",
            "_output/bin/kubectl",
            ".git/HEAD",
            ".gitignore",
            ".go-version",
            "go.mod",
            "out/x/kubectl",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        let out = root.join("out");
        let dest = dir.path().join("src.tar.gz");
        let excluded = Excluded::new(root, &[out, dest.clone()]);
        let skip =
            |rel: &str| (!rel.contains('/') && src_excludes_top(rel)) || excluded.covers(rel);
        let entries = tree_entries(root, "", SRC_TREE_PREFIX, &skip).unwrap();
        assert_eq!(
            keys(entries),
            [
                "kubernetes/.go-version",
                "kubernetes/cmd/",
                "kubernetes/cmd/.gitignore",
                "kubernetes/cmd/kubectl/",
                "kubernetes/cmd/kubectl/main.go",
                "kubernetes/empty/",
                "kubernetes/go.mod",
            ]
        );
    }

    fn listing(tarball: &Path) -> Vec<String> {
        let file = std::fs::File::open(tarball).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                match e.header().entry_type() {
                    tar::EntryType::Directory => format!("{}/", path.trim_end_matches('/')),
                    _ => path,
                }
            })
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn a_clean_tree_is_git_archive_head_at_the_top_level_without_excluded_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("kube");
        for f in ["cmd/kubectl/main.go", "go.mod", "out/kept-by-mistake"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
                .args(args)
                .current_dir(&root)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "x"]);
        let dest = dir.path().join("src.tar.gz");
        let (_, content) = write(
            &root,
            TreeState::Clean,
            &[root.join("out")],
            &dest,
            0,
            &Control::default(),
        )
        .unwrap();
        assert_eq!(content, SrcContent::Commit);
        // `git archive HEAD` lists cmd/, cmd/kubectl/, cmd/kubectl/main.go, go.mod, out/, ...
        assert_eq!(
            listing(&dest),
            ["cmd/", "cmd/kubectl/", "cmd/kubectl/main.go", "go.mod"]
        );
    }

    #[test]
    fn excluded_paths_are_matched_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        let ex = Excluded::new(dir.path(), &[dir.path().join("out"), "/elsewhere".into()]);
        assert!(ex.covers("out"));
        assert!(ex.covers("out/release-tars/x"));
        assert!(!ex.covers("output"));
        assert!(!ex.covers("cmd/out"));
        assert_eq!(ex.rel, ["out"], "paths outside the tree are ignored");
    }
}
