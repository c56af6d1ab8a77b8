//! Putting a checkout back as it was when getting the source fails: a directory kbuild
//! created is removed, an empty one emptied again, and an existing checkout gets back the
//! refs and shallow boundary a fetch changed. A later run then starts from where the user
//! left it, not from a half-fetched repository.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{git, git_raw};
use crate::error::{Error, Result};
use crate::ui::Ui;

/// How to put the directory back as it was when a fetch fails.
pub(super) enum Undo {
    /// kbuild created this directory (the topmost of those it created): remove it.
    Remove(PathBuf),
    /// The directory was there and empty: empty it again.
    Empty(PathBuf),
    /// An existing checkout: its refs and its shallow boundary as they were.
    Restore(Snapshot),
}

impl Undo {
    /// Whether the checkout is kbuild's own new one (nothing of the user's in it).
    pub(super) fn is_new(&self) -> bool {
        match self {
            Undo::Remove(_) | Undo::Empty(_) => true,
            Undo::Restore(snapshot) => snapshot.refs.is_empty(),
        }
    }

    /// Undoes what the failed run did and returns its error (with a note if undoing failed).
    pub(super) fn apply(&self, dir: &Path, err: Error, ui: &Ui) -> Error {
        let undone = match self {
            Undo::Remove(created) => {
                std::fs::remove_dir_all(created).map_err(|e| Error::io("cannot remove", created, e))
            }
            Undo::Empty(dir) => empty_dir(dir),
            Undo::Restore(snapshot) => snapshot.restore(dir),
        };
        if let Err(e) = undone {
            ui.warn(&format!(
                "could not put {} back as it was: {}",
                dir.display(),
                e.message
            ));
        }
        err
    }
}

fn empty_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))? {
        let path = entry.map_err(|e| Error::io("cannot read", dir, e))?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| Error::io("cannot remove", &path, e))?;
    }
    Ok(())
}

/// What a fetch can change in an existing checkout: its refs and its shallow boundary
/// (objects it adds are unreachable once the refs are back, and git prunes them).
pub(super) struct Snapshot {
    /// refname -> object id.
    pub(super) refs: HashMap<String, String>,
    shallow_file: PathBuf,
    shallow: Option<Vec<u8>>,
}

impl Snapshot {
    pub(super) fn take(dir: &Path) -> Result<Snapshot> {
        let shallow_file = dir.join(git(dir, &["rev-parse", "--git-path", "shallow"])?);
        let shallow = match std::fs::read(&shallow_file) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot read", &shallow_file, e)),
        };
        Ok(Snapshot {
            refs: list_refs(dir)?,
            shallow_file,
            shallow,
        })
    }

    fn restore(&self, dir: &Path) -> Result<()> {
        let now = list_refs(dir)?;
        let mut script = String::new();
        for (name, oid) in &now {
            match self.refs.get(name) {
                Some(old) if old == oid => {}
                Some(old) => script.push_str(&format!("update {name} {old}\n")),
                None => script.push_str(&format!("delete {name}\n")),
            }
        }
        for (name, old) in &self.refs {
            if !now.contains_key(name) {
                script.push_str(&format!("update {name} {old}\n"));
            }
        }
        if !script.is_empty() {
            let out = git_raw(dir, &["update-ref", "--stdin"], Some(script.into_bytes()))?;
            if !out.status.success() {
                return Err(Error::source(format!(
                    "git update-ref failed in {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        let written = match &self.shallow {
            Some(bytes) => std::fs::write(&self.shallow_file, bytes),
            None => match std::fs::remove_file(&self.shallow_file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        written.map_err(|e| Error::io("cannot restore", &self.shallow_file, e))
    }
}

fn list_refs(dir: &Path) -> Result<HashMap<String, String>> {
    let listing = git(dir, &["for-each-ref", "--format=%(objectname) %(refname)"])?;
    Ok(listing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(oid, name)| (name.to_string(), oid.to_string()))
        .collect())
}
