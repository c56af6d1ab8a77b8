//! A build job's full log on disk, with the last lines kept in memory for error messages.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How many of the last lines a failure shows.
const TAIL_LINES: usize = 25;

pub struct JobLog {
    path: PathBuf,
    file: BufWriter<File>,
    tail: VecDeque<String>,
}

impl JobLog {
    /// Creates (truncates) `<dir>/<name>.log`.
    pub fn create(dir: &Path, name: &str) -> Result<JobLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        let path = dir.join(format!("{name}.log"));
        let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
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
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_string());
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
