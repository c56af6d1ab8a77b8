//! Runs that share something take turns: advisory file locks (flock).
//!
//! - The output directory: `<out>/.kbuild.lock`.
//! - The tree: its `_output` (which make writes whatever `--out` says) and, for `--ref`, its
//!   checkout (which a fetch switches). One lock per tree, keyed by its canonical path, in
//!   kbuild's cache (`<cache>/kbuild/locks/tree-<hash>.lock`), so nothing is written in the
//!   tree and a fresh checkout directory can be locked before it exists.
//!
//! Locks are taken in that order, the tree first, so two runs never wait on each other. The
//! kernel releases a lock when its holder exits however it exits (a crash, SIGKILL), so a dead
//! run never leaves it stuck; the file itself stays. A second run waits with a message naming
//! the holder, or fails at once with `--no-wait` (or after `--lock-timeout SECONDS`) with exit
//! code 9. Waiting stops on Ctrl-C / SIGTERM. Lock files are opened without following links.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use sha2::{Digest, Sha256};

use crate::error::{Error, Kind, Result};
use crate::signals::Interrupt;
use crate::ui::Ui;

pub use crate::outdir::LOCK_FILE;
/// How often a waiting run tries again.
const POLL: Duration = Duration::from_millis(200);

/// What to do when another run holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait until it is released (the default).
    Forever,
    /// Fail at once.
    No,
    /// Wait at most this long, then fail.
    For(Duration),
}

static POLICY: OnceLock<Wait> = OnceLock::new();

/// Sets the waiting policy for the whole run (from `--no-wait` / `--lock-timeout`); the
/// first call wins.
pub fn set_policy(wait: Wait) {
    let _ = POLICY.set(wait);
}

fn policy() -> Wait {
    POLICY.get().copied().unwrap_or(Wait::Forever)
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Clear our pid so nobody names a finished run; closing the file releases the lock.
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

/// Takes the lock on the output directory `dir` (created if missing), waiting as the
/// policy says. Use it as `let _lock = lock::acquire(out, ui, interrupt).await?;`.
pub async fn acquire(dir: &Path, ui: &Ui, interrupt: &Interrupt) -> Result<Lock> {
    acquire_with(dir, policy(), ui, interrupt).await
}

/// [`acquire`] with an explicit policy.
pub async fn acquire_with(dir: &Path, wait: Wait, ui: &Ui, interrupt: &Interrupt) -> Result<Lock> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let hint =
        "wait for it to finish (drop --no-wait, or raise --lock-timeout), or use another --out";
    let lock = acquire_existing(dir, wait, hint, ui, interrupt).await?;
    // Holding the lock proves no run writes here: what a killed one left goes now.
    let swept = crate::outdir::sweep_staging(dir)?;
    for (set, how) in &swept.settled {
        let done = match how {
            crate::outdir::Settled::Finished => "finished",
            crate::outdir::Settled::Undone => "undid",
        };
        ui.info(&format!(
            "{done} the replacement of {} that a killed run left half done",
            set.display()
        ));
    }
    // The run's containers are labelled with the `--out` they work for (engine::owner).
    let _ = HELD_OUT.set(out_identity(dir));
    Ok(lock)
}

/// Takes the lock of the existing output directory `dir` (`kbuild clean`, which must not
/// create what it cleans), with `hint` for a run that gives up waiting.
pub async fn acquire_existing(
    dir: &Path,
    wait: Wait,
    hint: &str,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<Lock> {
    let what = format!("the output directory {}", dir.display());
    take(&dir.join(LOCK_FILE), &what, hint, wait, ui, interrupt).await
}

static HELD_OUT: OnceLock<String> = OnceLock::new();

/// The identity of the `--out` whose lock this run took first, if any.
pub fn held_out() -> Option<&'static str> {
    HELD_OUT.get().map(String::as_str)
}

/// A short, stable name for the output directory `dir`: a hash of its canonical path.
pub fn out_identity(dir: &Path) -> String {
    let digest = Sha256::digest(canonical(dir).as_os_str().as_encoded_bytes());
    hex::encode(&digest[..8])
}

/// Takes the lock on the tree (or checkout directory) `root`: its `_output` and, for
/// `--ref`, the checkout itself. Take it before the output directory's lock.
pub async fn acquire_tree(root: &Path, ui: &Ui, interrupt: &Interrupt) -> Result<Lock> {
    let hint = "wait for it to finish (drop --no-wait, or raise --lock-timeout): runs on one tree share its _output and checkout, so they take turns; a copy of the tree (or another --source-dir) builds alongside";
    acquire_tree_with(root, policy(), hint, ui, interrupt).await
}

/// [`acquire_tree`] with an explicit policy, and `hint` for a run that gives up waiting.
pub async fn acquire_tree_with(
    root: &Path,
    wait: Wait,
    hint: &str,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<Lock> {
    let dir = locks_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let key = canonical(root);
    let digest = Sha256::digest(key.as_os_str().as_encoded_bytes());
    let hex = hex::encode(&digest[..8]);
    let what = format!("the tree {} (its _output and checkout)", key.display());
    take(
        &dir.join(format!("tree-{hex}.lock")),
        &what,
        hint,
        wait,
        ui,
        interrupt,
    )
    .await
}

/// [`acquire_tree`] for where `spec` builds: the tree, or the `--ref` checkout directory.
/// Take it before fetching, so that no run switches a checkout another is building.
/// `<cache>/kbuild/locks`, or a directory of this user's under the temporary directory when
/// neither XDG_CACHE_HOME nor HOME says where the cache is.
fn locks_dir() -> Result<PathBuf> {
    if let Some(cache) = crate::env::cache_home() {
        return Ok(cache.join("kbuild").join("locks"));
    }
    let uid = rustix::process::getuid().as_raw();
    let dir = std::env::temp_dir().join(format!("kbuild-locks-{uid}"));
    // Somebody else's directory (or a link) there must not take our locks.
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            if !meta.is_dir() || meta.uid() != uid {
                return Err(Error::new(
                    Kind::Io,
                    format!("{} is not a directory of this user's", dir.display()),
                )
                .with_hint(
                    "set XDG_CACHE_HOME or HOME, so that kbuild keeps its locks in your cache",
                ));
            }
        }
        Err(_) => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io("cannot create", &dir, e))?;
        }
    }
    Ok(dir)
}

/// The canonical form of `path`, which may not exist yet (a fresh checkout directory): its
/// nearest existing ancestor made canonical, with the rest appended.
fn canonical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = existing.canonicalize() {
            return rest.iter().rev().fold(found, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Opens the lock file `path` (never through a link) and takes it, waiting as `wait` says.
async fn take(
    path: &Path,
    what: &str,
    hint: &str,
    wait: Wait,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<Lock> {
    let mut file = open_no_follow(path)?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {}
            Err(e) => {
                return Err(Error::io(
                    "cannot lock",
                    path,
                    std::io::Error::from_raw_os_error(e.raw_os_error()),
                ))
            }
        }
        let holder = holder_pid(&mut file);
        let who = match holder {
            Some(pid) => format!("another kbuild run (pid {pid})"),
            None => "another kbuild run".to_string(),
        };
        let timed_out = match wait {
            Wait::No => true,
            Wait::For(limit) => started.elapsed() >= limit,
            Wait::Forever => false,
        };
        if timed_out {
            return Err(Error::new(Kind::Locked, format!("{who} is using {what}")).with_hint(hint));
        }
        if !told {
            ui.info(&format!(
                "waiting for {who} on {what} to finish (Ctrl-C stops waiting)"
            ));
            told = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            e = interrupt.wait() => return Err(e),
        }
    }
    // Ours: record who holds it, for the message another run prints.
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = writeln!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(Lock { file })
}

/// Opens (creating) a lock file with O_NOFOLLOW: a link planted there would otherwise have
/// its target truncated (issue 10).
fn open_no_follow(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                Error::new(
                    Kind::Io,
                    format!(
                        "{} is a symbolic link: kbuild does not write through links",
                        path.display()
                    ),
                )
                .with_hint("remove the link; kbuild creates its lock file itself")
            } else {
                Error::io("cannot open the lock file", path, e)
            }
        })
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ui() -> Ui {
        Ui::new(false, true, false)
    }

    #[tokio::test]
    async fn a_second_holder_fails_without_waiting_and_succeeds_after_release() {
        let dir = std::env::temp_dir().join(format!("kbuild-lock-test-{}", std::process::id()));
        let never = Interrupt::never();
        let first = acquire_with(&dir, Wait::No, &ui(), &never).await.unwrap();
        let second = acquire_with(&dir, Wait::No, &ui(), &never)
            .await
            .unwrap_err();
        assert_eq!(second.kind, Kind::Locked);
        assert!(second
            .message
            .contains(&format!("pid {}", std::process::id())));
        let timed = acquire_with(&dir, Wait::For(Duration::from_millis(300)), &ui(), &never)
            .await
            .unwrap_err();
        assert_eq!(timed.kind, Kind::Locked);
        drop(first);
        let again = acquire_with(&dir, Wait::No, &ui(), &never).await.unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_linked_lock_file_is_refused_and_its_target_kept() {
        let dir = std::env::temp_dir().join(format!("kbuild-lock-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("precious");
        std::fs::write(&target, "keep me").unwrap();
        std::os::unix::fs::symlink(&target, dir.join(LOCK_FILE)).unwrap();
        let err = acquire_with(&dir, Wait::No, &ui(), &Interrupt::never())
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::Io);
        assert!(err.message.contains("symbolic link"), "{}", err.message);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_directory_is_keyed_by_its_canonical_parent() {
        let tmp = std::env::temp_dir().canonicalize().unwrap();
        let dir = tmp.join(format!("kbuild-canon-{}", std::process::id()));
        assert_eq!(
            canonical(&dir.join("a/../b")),
            tmp.join(dir.file_name().unwrap()).join("a/../b")
        );
        std::fs::create_dir_all(dir.join("a")).unwrap();
        assert_eq!(canonical(&dir.join("a/../b")), dir.join("b"));
        assert_eq!(canonical(&dir.join("a")), dir.join("a"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
