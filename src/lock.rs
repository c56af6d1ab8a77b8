//! One kbuild run per output directory at a time: an advisory file lock (flock) on
//! `<out>/.kbuild.lock`. The kernel releases it when the holder exits however it exits
//! (a crash, SIGKILL), so a dead run never leaves it stuck; the file itself stays.
//!
//! A second run waits with a message naming the holder, or fails at once with `--no-wait`
//! (or after `--lock-timeout SECONDS`) with exit code 9. Waiting stops on Ctrl-C / SIGTERM.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Kind, Result};
use crate::signals::Interrupt;
use crate::ui::Ui;

/// The lock file's name inside the output directory.
pub const LOCK_FILE: &str = ".kbuild.lock";
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
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("cannot open the lock file", &path, e))?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {}
            Err(e) => {
                return Err(Error::io(
                    "cannot lock",
                    &path,
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
            return Err(Error::new(
                Kind::Locked,
                format!("{who} is using the output directory {}", dir.display()),
            )
            .with_hint(
                "wait for it to finish (drop --no-wait, or raise --lock-timeout), or use another --out",
            ));
        }
        if !told {
            ui.info(&format!(
                "waiting for {who} on {} to finish (Ctrl-C stops waiting)",
                dir.display()
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
}
