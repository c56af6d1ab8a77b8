//! Input fingerprints: a job whose inputs did not change and whose outputs are intact is not
//! run again. The fingerprint covers the tree (the commit plus every uncommitted change, or
//! every file outside a git checkout), the make command, platforms and environment, and the
//! builder image's id. It is stored beside the outputs, in <out>/.kbuild/<job>.json.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::outdir;
use crate::plan::Job;
use crate::source::{git, SourceInfo};

/// What was recorded after a successful build.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Record {
    pub fingerprint: String,
    pub outputs: Vec<OutputStamp>,
}

/// An installed file as it was right after the build: a changed size or mtime means
/// someone touched it, so the job runs again.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct OutputStamp {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

/// Hex sha256 over every input of `job` (its command, variables and output path) run on
/// `image_id` against the tree in `info`. Its mounts are left out: they change where the
/// inputs come from, not what is built. The tree counts by its digest, not by where it is
/// mounted from, and the Go cache volume only makes a build faster (it is named by the
/// image id, which is hashed).
pub fn compute(info: &SourceInfo, job: &Job, image_id: &str) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        hasher.update(name.as_bytes());
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    field("image", image_id.as_bytes());
    field("command", job.command.join("\0").as_bytes());
    for pair in &job.env {
        field("env", pair.as_bytes());
    }
    field("output", job.output_subpath.as_bytes());
    field("tree", tree_digest(info)?.as_bytes());
    Ok(hex::encode(hasher.finalize()))
}

/// The tree's state: for a git checkout the commit and, when it is dirty, the diff against it
/// and the untracked files (ignored ones such as _output do not count); otherwise every
/// file's path and bytes. A saved plan pins it for a tree that is not clean.
pub fn tree_digest(info: &SourceInfo) -> Result<String> {
    let root = &info.root;
    let mut hasher = Sha256::new();
    match &info.commit {
        // A clean checkout is its commit: `git status` found no change and no untracked file.
        Some(commit) if info.tree_state == crate::source::TreeState::Clean => {
            hasher.update(commit.as_bytes());
        }
        Some(commit) => {
            hasher.update(commit.as_bytes());
            hasher.update(git(root, &["diff", "HEAD", "--binary", "--no-ext-diff"])?.as_bytes());
            let untracked = git(root, &["ls-files", "--others", "--exclude-standard", "-z"])?;
            let mut files: Vec<&str> = untracked.split('\0').filter(|f| !f.is_empty()).collect();
            files.sort_unstable();
            for file in files {
                hash_file(&mut hasher, root, Path::new(file))?;
            }
        }
        None => {
            let mut files = Vec::new();
            walk(root, Path::new(""), &mut files)?;
            files.sort();
            for file in files {
                hash_file(&mut hasher, root, &file)?;
            }
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

fn hash_file(hasher: &mut Sha256, root: &Path, rel: &Path) -> Result<()> {
    hasher.update(rel.to_string_lossy().as_bytes());
    hasher.update([0]);
    let path = root.join(rel);
    let Ok(mut file) = std::fs::File::open(&path) else {
        // Deleted between listing and reading, or a dangling link: its absence is the state.
        return Ok(());
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", &path, e))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// Every regular file under `root/rel`, skipping _output and .git.
fn walk(root: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("cannot read", &dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot read", &dir, e))?;
        let name = entry.file_name();
        if rel.as_os_str().is_empty() && (name == "_output" || name == ".git") {
            continue;
        }
        let child = rel.join(&name);
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("cannot read", &entry.path(), e))?;
        if kind.is_dir() {
            walk(root, &child, files)?;
        } else if kind.is_file() {
            files.push(child);
        }
    }
    Ok(())
}

fn record_path(out: &Path, job: &str) -> PathBuf {
    out.join(outdir::MARKER_DIR).join(format!("{job}.json"))
}

fn stamp(path: &Path) -> Option<OutputStamp> {
    // A link never counts as an intact output.
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(OutputStamp {
        path: path.to_path_buf(),
        size: meta.len(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
    })
}

/// The outputs recorded for `job` if its fingerprint matches and every output is intact.
pub fn up_to_date(out: &Path, job: &str, fingerprint: &str) -> Option<Vec<(PathBuf, u64)>> {
    let text = std::fs::read_to_string(record_path(out, job)).ok()?;
    let record: Record = serde_json::from_str(&text).ok()?;
    if record.fingerprint != fingerprint || record.outputs.is_empty() {
        return None;
    }
    let intact = record
        .outputs
        .iter()
        .all(|o| stamp(&o.path).as_ref() == Some(o));
    intact.then(|| {
        record
            .outputs
            .into_iter()
            .map(|o| (o.path, o.size))
            .collect()
    })
}

/// Records a successful build of `job` (written to a new temporary file, then renamed).
pub fn save(out: &Path, job: &str, fingerprint: &str, outputs: &[(PathBuf, u64)]) -> Result<()> {
    let record = Record {
        fingerprint: fingerprint.to_string(),
        outputs: outputs.iter().filter_map(|(p, _)| stamp(p)).collect(),
    };
    outdir::ensure_dir(out, Path::new(outdir::MARKER_DIR))?;
    let text = serde_json::to_string_pretty(&record).expect("record serializes");
    outdir::write_atomic(&record_path(out, job), text.as_bytes())
}

/// Forgets `job`'s record, so that a failed or interrupted build never looks up to date.
pub fn forget(out: &Path, job: &str) {
    let _ = std::fs::remove_file(record_path(out, job));
}

/// Where the Go package count of `job`'s earlier runs is kept: beside its fingerprint, in a
/// file of its own, since a build forgets the fingerprint record when it starts.
fn packages_path(out: &Path, job: &str) -> PathBuf {
    out.join(outdir::MARKER_DIR)
        .join(format!("{job}.packages.json"))
}

/// What earlier runs of `job` compiled, if any run counted packages.
pub fn package_history(out: &Path, job: &str) -> Option<crate::ui::progress::History> {
    let text = std::fs::read_to_string(packages_path(out, job)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Keeps `history` for the next run of `job`; a failure to write only costs the next run
/// its total, so it is ignored.
pub fn save_package_history(out: &Path, job: &str, history: &crate::ui::progress::History) {
    // Best effort: a count that cannot be kept only costs the next run its total.
    let text = serde_json::to_string(history).expect("history serializes");
    let _ = outdir::ensure_dir(out, Path::new(outdir::MARKER_DIR))
        .and_then(|_| outdir::write_atomic(&packages_path(out, job), text.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touched_output_is_not_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("kubectl");
        std::fs::write(&bin, b"binary").unwrap();
        save(dir.path(), "job", "abc", &[(bin.clone(), 6)]).unwrap();
        assert_eq!(
            up_to_date(dir.path(), "job", "abc").unwrap(),
            vec![(bin.clone(), 6)]
        );
        assert!(
            up_to_date(dir.path(), "job", "other").is_none(),
            "another fingerprint"
        );
        std::fs::write(&bin, b"changed!").unwrap();
        assert!(
            up_to_date(dir.path(), "job", "abc").is_none(),
            "a changed output"
        );
        std::fs::remove_file(&bin).unwrap();
        assert!(
            up_to_date(dir.path(), "job", "abc").is_none(),
            "a missing output"
        );
    }

    #[test]
    fn the_package_history_survives_forgetting_the_record() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(package_history(dir.path(), "kubectl"), None);
        let history = crate::ui::progress::History {
            packages: 177,
            complete: true,
        };
        save_package_history(dir.path(), "kubectl", &history);
        forget(dir.path(), "kubectl");
        assert_eq!(package_history(dir.path(), "kubectl"), Some(history));
        assert_eq!(package_history(dir.path(), "kubeadm"), None);
    }
}
