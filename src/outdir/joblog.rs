//! A build job's full log on disk, with the last lines kept in memory for error messages.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::outdir;

/// Where job logs go under the output directory.
pub const LOGS: &str = "logs";

/// How many of the last lines a failure shows.
const TAIL_LINES: usize = 25;

pub struct JobLog {
    path: PathBuf,
    file: BufWriter<File>,
    tail: VecDeque<String>,
}

impl JobLog {
    /// Creates `<out>/logs/<name>.log` anew (a previous log is replaced; a link there is
    /// refused, never written through).
    pub fn create(out: &Path, name: &str) -> Result<JobLog> {
        let dir = outdir::ensure_dir(out, Path::new(LOGS))?;
        let path = dir.join(format!("{name}.log"));
        let file = outdir::create_file(&path, 0o644)?;
        Ok(JobLog {
            path,
            file: BufWriter::new(file),
            tail: VecDeque::with_capacity(TAIL_LINES),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn line(&mut self, text: &str) -> Result<()> {
        let text = &crate::redact::text(text);
        // `go build -v` naming the packages it compiles is progress, not what went wrong:
        // it stays in the file but out of the tail a failure shows.
        if !crate::ui::progress::is_compiled_package(text) {
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(text.to_string());
        }
        writeln!(self.file, "{text}").map_err(|e| Error::io("cannot write", &self.path, e))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }

    /// The last lines written, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}

impl Drop for JobLog {
    fn drop(&mut self) {
        let _ = self.file.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_are_logged_but_not_in_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = JobLog::create(dir.path(), "kubectl").unwrap();
        log.line("# k8s.io/kubernetes/cmd/kubectl").unwrap();
        log.line("cmd/kubectl/main.go:3:2: undefined: foo").unwrap();
        log.line("k8s.io/kubernetes/pkg/other").unwrap();
        log.flush().unwrap();
        assert_eq!(
            log.tail(),
            [
                "# k8s.io/kubernetes/cmd/kubectl",
                "cmd/kubectl/main.go:3:2: undefined: foo"
            ]
        );
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.contains("k8s.io/kubernetes/pkg/other"), "{text}");
    }
}
