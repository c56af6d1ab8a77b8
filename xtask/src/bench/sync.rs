//! f. Incremental source sync (issue 14): the fixture tree padded to about 200 MB with
//! deterministic filler files under `third_party/`, built twice with `--transfer copy
//! --json` on this machine's engine: the first sync uploads the tree, the resync after a
//! one-file edit only that file. The figures are the `sync` event's `bytes_uploaded` and
//! `files_uploaded`, and the seconds from the `sync` phase's start to that event.
//!
//! The tree is a copy of its own with a listing cache of its own (XDG_CACHE_HOME), so the
//! first sync is a full one; its source volume is removed at the end, also on failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::builder_image::IMAGE;
use crate::util::{self, step, Failure};

/// The filler: this many files of this many bytes (with the fixture, about 200 MB).
const FILLER_FILES: usize = 200;
const FILLER_BYTES: usize = 1_000_000;
/// The file the resync's edit changes.
const EDITED: &str = "cmd/kubectl/main.go";

/// One sync as a build reported it.
pub struct Synced {
    pub bytes: u64,
    pub files: u64,
    pub seconds: f64,
}

pub struct Measured {
    pub tree_bytes: u64,
    pub first: Synced,
    pub resync: Synced,
}

impl Measured {
    pub fn markdown(&self) -> String {
        let mb = |b: u64| b as f64 / 1e6;
        format!(
            "| sync of the padded fixture ({:.1} MB) | files | bytes uploaded | seconds |\n\
             |---|---|---|---|\n\
             | first sync (empty volume) | {} | {:.1} MB | {:.2} s |\n\
             | resync after a one-file edit | {} | {} bytes | {:.2} s |\n\
             | resync / first | | {:.5} % | {:.3} |\n\n\
             `kbuild build kubectl --platform linux/amd64 --transfer copy --json` on this machine's engine, \
             twice, editing `{EDITED}` between; the tree is the fixture with {FILLER_FILES} filler files of \
             {FILLER_BYTES} bytes under `third_party/`. Seconds run from the `sync` phase's start to the \
             `sync` event (scan, compare, upload). Target: a resync uploads under 1 % of the first.\n",
            mb(self.tree_bytes),
            self.first.files,
            mb(self.first.bytes),
            self.first.seconds,
            self.resync.files,
            self.resync.bytes,
            self.resync.seconds,
            100.0 * self.resync.bytes as f64 / self.first.bytes.max(1) as f64,
            self.resync.seconds / self.first.seconds.max(f64::EPSILON),
        )
    }
}

/// Removes the tree's source volume when dropped (the sync leaves it for the next build).
struct SourceVolume {
    tree: PathBuf,
}

impl Drop for SourceVolume {
    fn drop(&mut self) {
        let source = format!("label=io.kbuild.source={}", self.tree.display());
        let listed = util::output(Command::new("docker").args([
            "volume",
            "ls",
            "-q",
            "--filter",
            "label=io.kbuild.transfer=source",
            "--filter",
            &source,
        ]));
        for volume in listed.unwrap_or_default().split_whitespace() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", volume])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Pads the tagged tree at `tree` and measures a first sync and a one-file resync.
pub fn measure(kbuild: &Path, tree: &Path, work: &Path) -> Result<Measured, Failure> {
    step("bench f: sync of the fixture padded to about 200 MB");
    pad(tree)?;
    let tree = tree
        .canonicalize()
        .map_err(|e| Failure::new(format!("cannot resolve {}: {e}", tree.display())))?;
    let _volume = SourceVolume { tree: tree.clone() };
    let cache = work.join("sync-cache");
    let out = work.join("sync-out");
    let build = || {
        let mut cmd = Command::new(kbuild);
        cmd.args([
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--image",
            IMAGE,
            "--transfer",
            "copy",
            "--json",
        ])
        .arg("--kube-root")
        .arg(&tree)
        .arg("--out")
        .arg(&out)
        .env("XDG_CACHE_HOME", &cache);
        cmd
    };
    let (first, tree_bytes) = synced(&mut build())?;
    let main = tree.join(EDITED);
    let mut source = std::fs::read_to_string(&main).map_err(|e| Failure::new(e.to_string()))?;
    source.push_str("\nvar benchResync = \"edited\"\n");
    std::fs::write(&main, source).map_err(|e| Failure::new(e.to_string()))?;
    let (resync, _) = synced(&mut build())?;
    Ok(Measured {
        tree_bytes,
        first,
        resync,
    })
}

/// Writes `third_party/bench-filler/blob-NNN.bin`: pseudo-random bytes from a fixed seed, so
/// every run syncs the same tree (and nothing compresses it away).
fn pad(tree: &Path) -> Result<(), Failure> {
    let dir = tree.join("third_party/bench-filler");
    std::fs::create_dir_all(&dir).map_err(|e| Failure::new(e.to_string()))?;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut blob = Vec::with_capacity(FILLER_BYTES + 8);
    for n in 0..FILLER_FILES {
        blob.clear();
        while blob.len() < FILLER_BYTES {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            blob.extend_from_slice(&state.to_le_bytes());
        }
        blob.truncate(FILLER_BYTES);
        let path = dir.join(format!("blob-{n:03}.bin"));
        std::fs::write(&path, &blob)
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Runs one `--json` build and reads its sync figures and the tree's size from its events.
fn synced(cmd: &mut Command) -> Result<(Synced, u64), Failure> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Failure::new(format!("cannot run {}: {e}", util::show(cmd))))?;
    util::check(cmd, out.status)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let find = |pred: &dyn Fn(&str) -> bool, what: &str| {
        lines.iter().copied().find(|l| pred(l)).ok_or_else(|| {
            Failure::new(format!(
                "`{}` printed no {what} event:\n{stdout}",
                util::show(cmd)
            ))
        })
    };
    let started = find(
        &|l| string_field(l, "event") == Some("phase") && string_field(l, "phase") == Some("sync"),
        "sync phase",
    )?;
    let event = find(&|l| string_field(l, "event") == Some("sync"), "sync")?;
    let number = |line: &str, key: &str| {
        number_field(line, key)
            .ok_or_else(|| Failure::new(format!("no number {key:?} in the event {line}")))
    };
    let synced = Synced {
        bytes: number(event, "bytes_uploaded")? as u64,
        files: number(event, "files_uploaded")? as u64,
        seconds: number(event, "elapsed")? - number(started, "elapsed")?,
    };
    Ok((synced, number(event, "tree_bytes")? as u64))
}

/// The raw text after `"key":` in one line of compact JSON (kbuild's `--json` events, where
/// these keys are top-level and unique).
fn raw_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    Some(&line[start..])
}

/// A number value, e.g. `"elapsed":1.25`.
fn number_field(line: &str, key: &str) -> Option<f64> {
    let raw = raw_field(line, key)?;
    let end = raw
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(raw.len());
    raw[..end].parse().ok()
}

/// A string value without escapes, e.g. `"event":"sync"`.
fn string_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let raw = raw_field(line, key)?.strip_prefix('"')?;
    Some(&raw[..raw.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_a_sync_event() {
        let line = r#"{"event":"sync","elapsed":3.5,"message":"sync: 1 file","bytes_uploaded":2048,"files_uploaded":1,"tree_bytes":200123456,"volume":"kbuild-src-x"}"#;
        assert_eq!(string_field(line, "event"), Some("sync"));
        assert_eq!(number_field(line, "elapsed"), Some(3.5));
        assert_eq!(number_field(line, "bytes_uploaded"), Some(2048.0));
        assert_eq!(number_field(line, "tree_bytes"), Some(200_123_456.0));
        assert_eq!(string_field(line, "phase"), None);
        assert_eq!(number_field(line, "message"), None);
    }
}
