//! Who owns an object in the engine, so that `kbuild clean` removes only its own.
//!
//! Three classes, each with its own rule:
//! - run-scoped containers (builds, transfer and cache helpers) carry the owning `--out`
//!   (a hash of its canonical path), the run id and a liveness label: host, boot, pid and
//!   the process's start time, so a pid reused by another process is not taken for the run;
//! - tree-scoped volumes (the source volumes of `sync`) carry the tree (`LABEL_SOURCE`);
//! - global caches (the Go cache volumes) carry `crate::engine::cache::LABEL_CACHE`.

use std::collections::HashMap;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::LABEL_MANAGED;

/// The `--out` a run-scoped container works for (`crate::outdir::lock::out_identity`).
pub const LABEL_OUT: &str = "io.kbuild.out";
/// The run that created the container.
pub const LABEL_RUN: &str = "io.kbuild.run";
/// `<host>/<boot id>/<pid>/<start time>` of the process that created the container.
pub const LABEL_LIVE: &str = "io.kbuild.live";

/// This process as a liveness label sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Process {
    host: String,
    boot: String,
    pid: u32,
    /// Field 22 of /proc/<pid>/stat: clock ticks after boot.
    start: u64,
}

impl Process {
    fn label(&self) -> String {
        format!("{}/{}/{}/{}", self.host, self.boot, self.pid, self.start)
    }

    fn parse(label: &str) -> Option<Process> {
        let mut parts = label.rsplitn(4, '/');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let boot = parts.next()?.to_string();
        let host = parts.next()?.to_string();
        Some(Process {
            host,
            boot,
            pid,
            start,
        })
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of `pid` (field 22 of /proc/<pid>/stat), or None when it is gone.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_time_of(&stat)
}

/// The command name (field 2) is in parentheses and may hold spaces or parentheses itself,
/// so fields are counted from after its last `)`: field 3 is the first there.
fn start_time_of(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn me() -> &'static Process {
    static ME: OnceLock<Process> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        Process {
            host: read_trimmed("/proc/sys/kernel/hostname"),
            boot: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    })
}

/// This run's id: unique per process on a host (pid and start time), short for a label.
pub fn run_id() -> String {
    let digest = Sha256::digest(me().label().as_bytes());
    hex::encode(&digest[..6])
}

/// The labels of a run-scoped container: kbuild's, the run's, its liveness and, once the
/// run holds an `--out` lock, that `--out`.
pub fn run_labels() -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_RUN.to_string(), run_id()),
        (LABEL_LIVE.to_string(), me().label()),
    ]);
    if let Some(out) = crate::outdir::lock::held_out() {
        labels.insert(LABEL_OUT.to_string(), out.to_string());
    }
    labels
}

/// Whether the run that made an object is still running, as far as this host can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Its process runs: says which (`pid N on HOST`).
    Live(String),
    /// Provably over: this host, and its process is gone, or the pid is another process's now,
    /// or the host rebooted since.
    Dead,
    /// No liveness label, or another host's process: nothing proves it is over.
    Unknown,
}

/// The liveness of the run named by `labels` (a container's).
pub fn liveness(labels: &HashMap<String, String>) -> Liveness {
    let Some(run) = labels.get(LABEL_LIVE).and_then(|l| Process::parse(l)) else {
        return Liveness::Unknown;
    };
    judge(&run, me(), start_time(run.pid))
}

/// `run` seen from `here`, where `now_started` is the start time of `run.pid` on this host now.
fn judge(run: &Process, here: &Process, now_started: Option<u64>) -> Liveness {
    if run.host != here.host || here.boot.is_empty() {
        return Liveness::Unknown;
    }
    if run.boot != here.boot || now_started != Some(run.start) {
        return Liveness::Dead;
    }
    Liveness::Live(format!("pid {} on {}", run.pid, run.host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, start: u64) -> Process {
        Process {
            host: "box".into(),
            boot: "b-1".into(),
            pid,
            start,
        }
    }

    #[test]
    fn the_start_time_is_field_22_whatever_the_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 50";
        assert_eq!(start_time_of(stat), Some(987654));
        assert!(start_time(std::process::id()).is_some());
    }

    #[test]
    fn a_label_round_trips() {
        let p = Process {
            host: "my-host".into(),
            boot: "0a1b-2c".into(),
            pid: 12,
            start: 345,
        };
        assert_eq!(Process::parse(&p.label()), Some(p));
        assert_eq!(Process::parse("garbage"), None);
    }

    #[test]
    fn only_this_hosts_gone_or_reused_pids_are_dead() {
        let here = process(1, 1);
        let run = process(77, 500);
        assert!(matches!(judge(&run, &here, Some(500)), Liveness::Live(_)));
        assert_eq!(judge(&run, &here, None), Liveness::Dead, "gone");
        assert_eq!(judge(&run, &here, Some(900)), Liveness::Dead, "pid reused");
        let rebooted = Process {
            boot: "b-2".into(),
            ..process(1, 1)
        };
        assert_eq!(judge(&run, &rebooted, Some(500)), Liveness::Dead);
        let elsewhere = Process {
            host: "other".into(),
            ..process(1, 1)
        };
        assert_eq!(judge(&run, &elsewhere, None), Liveness::Unknown);
    }

    #[test]
    fn this_process_is_live() {
        let labels = run_labels();
        assert!(matches!(liveness(&labels), Liveness::Live(_)));
        assert_eq!(liveness(&HashMap::new()), Liveness::Unknown);
    }
}
