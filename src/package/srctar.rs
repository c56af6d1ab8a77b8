//! kubernetes-src.tar.gz: the source that was built, under `kubernetes/`, written through
//! the same deterministic writer as every other tarball.
//!
//! - clean git tree: `git archive HEAD` (so export-ignore and export-subst apply, as in
//!   upstream's clean case), re-packed entry by entry; git emits entries in path order,
//!   which is the writer's order, so nothing is buffered;
//! - dirty git tree: the working tree as built, i.e. tracked files with their uncommitted
//!   changes plus untracked files git does not ignore, minus top-level `_*` (upstream tars
//!   the working tree minus `_*` and `.git*` when the tree is dirty); the manifest says so;
//! - not a git checkout: the directory minus top-level `_*`, `.git*`, `.config*`, `.gsutil*`
//!   (upstream's exclusions).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::tarball::{self, Content, Entry, TarGz, Written, MODE_EXEC, MODE_FILE};
use super::Control;
use crate::error::{Error, Result};
use crate::source::TreeState;

/// Every path in the source tarball starts with this directory, as upstream's does.
pub const PREFIX: &str = "kubernetes";

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

/// Writes the source tarball of `root` to `dest`.
pub fn write(
    root: &Path,
    state: TreeState,
    dest: &Path,
    mtime: u64,
    cancel: &Control,
) -> Result<(Written, SrcContent)> {
    match state {
        TreeState::Clean => Ok((
            from_git_archive(root, dest, mtime, cancel)?,
            SrcContent::Commit,
        )),
        TreeState::Dirty => {
            let files = git_ls_files(root)?;
            let entries = entries_for(root, files.into_iter().filter(|p| !excluded_dirty(p)))?;
            Ok((
                tarball::write(dest, mtime, entries, false, cancel)?,
                SrcContent::WorkingTree,
            ))
        }
        TreeState::Archive => {
            let files = walk(root)?;
            let entries = entries_for(root, files.into_iter().filter(|p| !excluded_archive(p)))?;
            Ok((
                tarball::write(dest, mtime, entries, false, cancel)?,
                SrcContent::Directory,
            ))
        }
    }
}

fn top(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Upstream excludes top-level `_*` (build outputs) from a dirty tree's source tarball.
fn excluded_dirty(path: &str) -> bool {
    top(path).starts_with('_')
}

/// ... and `.git*`, `.config*` and `.gsutil*` too when it tars a directory.
fn excluded_archive(path: &str) -> bool {
    let t = top(path);
    ["_", ".git", ".config", ".gsutil"]
        .iter()
        .any(|p| t.starts_with(p))
}

fn from_git_archive(root: &Path, dest: &Path, mtime: u64, cancel: &Control) -> Result<Written> {
    let mut child = Command::new("git")
        .args([
            "archive",
            "--format=tar",
            &format!("--prefix={PREFIX}/"),
            "HEAD",
        ])
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
    let result = repack(stdout, dest, mtime, cancel);
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
fn repack(stream: impl Read, dest: &Path, mtime: u64, cancel: &Control) -> Result<Written> {
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

/// Tracked files (with their working-tree content) and untracked files git does not ignore.
fn git_ls_files(root: &Path) -> Result<Vec<String>> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| Error::source(format!("cannot run git ls-files: {e}")))?;
    if !out.status.success() {
        return Err(Error::source(format!(
            "git ls-files failed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut files: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Every file and symlink under `root`, relative, skipping `.git`.
fn walk(root: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io("cannot read", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("cannot read", &dir, e))?;
            let child = rel.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("cannot read", &entry.path(), e))?;
            if kind.is_dir() {
                stack.push(child);
            } else {
                found.push(child.to_string_lossy().into_owned());
            }
        }
    }
    Ok(found)
}

/// Entries under `kubernetes/` for files (relative to `root`), with every parent directory.
/// Missing files (deleted but still tracked) and directories (submodules) are skipped.
fn entries_for(root: &Path, files: impl Iterator<Item = String>) -> Result<Vec<Entry>> {
    use std::os::unix::fs::PermissionsExt;
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert(PREFIX.to_string());
    let mut entries = Vec::new();
    for rel in files {
        let src = root.join(&rel);
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        let path = format!("{PREFIX}/{rel}");
        let content = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| Error::io("cannot read", &src, e))?;
            Content::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else if meta.is_file() {
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                MODE_EXEC
            } else {
                MODE_FILE
            };
            Content::File { src, mode }
        } else {
            continue;
        };
        let mut parent = Path::new(&path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            if !dirs.insert(p.to_string_lossy().into_owned()) {
                break;
            }
            parent = p.parent();
        }
        entries.push(Entry { path, content });
    }
    entries.extend(dirs.into_iter().map(Entry::dir));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_follow_upstream() {
        assert!(excluded_dirty("_output/bin/kubectl"));
        assert!(!excluded_dirty(".gitignore"));
        assert!(!excluded_dirty("cmd/_x/main.go"));
        assert!(excluded_archive(".git/config"));
        assert!(excluded_archive(".gsutil/x"));
        assert!(!excluded_archive("cmd/kubectl/main.go"));
    }

    #[test]
    fn parents_are_added_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cmd/kubectl")).unwrap();
        std::fs::write(dir.path().join("cmd/kubectl/main.go"), "package main").unwrap();
        std::fs::write(dir.path().join("go.mod"), "module k8s.io/kubernetes").unwrap();
        let mut entries = entries_for(
            dir.path(),
            [
                "cmd/kubectl/main.go".to_string(),
                "go.mod".to_string(),
                "gone.txt".to_string(),
            ]
            .into_iter(),
        )
        .unwrap();
        tarball::sort(&mut entries);
        let keys: Vec<String> = entries.iter().map(|e| e.key()).collect();
        assert_eq!(
            keys,
            [
                "kubernetes/",
                "kubernetes/cmd/",
                "kubernetes/cmd/kubectl/",
                "kubernetes/cmd/kubectl/main.go",
                "kubernetes/go.mod"
            ]
        );
    }
}
