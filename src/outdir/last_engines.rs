//! Where each job of an `--out` last ran (`.kbuild/last-engines.json`). The planner reads it
//! as a fact, read-only, so that with several engines a job goes back to the engine where
//! its Go cache is warm (`resolve::schedule::assign`); a run writes it after its jobs.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::plan::LastEngines;

const FILE: &str = "last-engines.json";

fn path(out: &Path) -> PathBuf {
    out.join(super::MARKER_DIR).join(FILE)
}

/// The record, or an empty one when there is none or it cannot be read: it only steers
/// the assignment, so a damaged record costs a cold cache, never the run.
pub fn read(out: &Path) -> LastEngines {
    std::fs::read(path(out))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Records where `ran` jobs ran, keeping the entries of jobs this run did not have (a
/// build of one platform leaves the others' engines as they were).
pub fn write(out: &Path, ran: impl IntoIterator<Item = (String, String)>) -> Result<()> {
    let mut record = read(out);
    record.extend(ran);
    super::ensure_dir(out, Path::new(super::MARKER_DIR))?;
    let bytes = serde_json::to_vec_pretty(&record).expect("a map of strings serialises");
    super::write_atomic(&path(out), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_adds_to_the_record_and_a_damaged_one_reads_as_empty() {
        let out = tempfile::tempdir().unwrap();
        assert!(read(out.path()).is_empty());
        write(
            out.path(),
            [("client-linux-amd64".to_string(), "a".to_string())],
        )
        .unwrap();
        write(
            out.path(),
            [("client-darwin-arm64".to_string(), "b".to_string())],
        )
        .unwrap();
        let record = read(out.path());
        assert_eq!(record["client-linux-amd64"], "a");
        assert_eq!(record["client-darwin-arm64"], "b");
        std::fs::write(path(out.path()), b"{not json").unwrap();
        assert!(read(out.path()).is_empty());
    }
}
